"""Figure 16: which two directions a sparse dictionary prefers for clusters at y, z and y + z.

Data: three equally weighted clusters at y = (1, 0), z = (0, 1) and y + z. Dictionary: two unit
atoms at angles θ₁, θ₂ from y. Loss: the mean over the clusters of
min_{c ≥ 0} ||x − Dc||² + λ(c₁ + c₂) (an SAE with unit-norm decoder and the best possible codes),
minimised over the angles (``theory.sae.optimal_two_latent_angles``: exact inner lasso, grid then
zoom over the angles).

Left: the optimal angles against λ. For small λ the atoms sit at y and z (the composition is
reconstructed for free); as λ grows both tilt toward y + z, by δ ≈ λ/2 radians at first (the
closed form of the symmetric branch is the thin line); at λ ≈ 0.92 the optimum jumps to an
asymmetric pair (one atom back at y, the other near 54°, or the mirror image), then keeps a
single atom along y + z, and for λ ≥ 2√2 codes nothing. Stars: the catalogue's "0/90 at
λ = 0.01, 6/84 at λ = 0.3".
Right: the clusters, the optimal atoms and the reconstructions D c of the clusters at two λ.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from theory.sae import (
    CATALOGUE_ANGLES,
    COMPOSITION_CLUSTERS,
    composition_jump_lambda,
    decoder_from_angles,
    optimal_two_latent_angles,
    symmetric_optimal_tilt,
)

from .common import plt, savefig

PRESETS = {
    "tiny": {"n_lam": 7, "grid_step_deg": 5.0, "n_starts": 3, "show_lams": (0.01, 0.9)},
    "quick": {"n_lam": 48, "grid_step_deg": 2.0, "n_starts": 6, "show_lams": (0.01, 0.9)},
    "full": {"n_lam": 140, "grid_step_deg": 1.0, "n_starts": 8, "show_lams": (0.01, 0.9)},
}

LAM_RANGE = (1e-3, 4.0)
ATOM_COLORS = ("tab:blue", "tab:red")
SHOW_STYLES = (("-", 0.45), ("-", 1.0))


def _optimum(lam: float, cfg: dict):
    return optimal_two_latent_angles(lam, grid_step_deg=cfg["grid_step_deg"], n_starts=cfg["n_starts"], tol_deg=1e-5)


def _follow(ang: np.ndarray) -> np.ndarray:
    """Order each row (atom pair) so that each atom continues its own curve: the cost of an order
    is the distance to each column's last used angle, 90° where used meets unused (NaN)."""
    out = ang.copy()
    last = out[0].copy()

    def cost(pair: np.ndarray) -> float:
        d = np.abs(pair - last)
        return float(np.where(np.isfinite(d), d, np.where(np.isfinite(pair) == np.isfinite(last), 0.0, 90.0)).sum())

    for i in range(1, len(out)):
        if cost(out[i][::-1]) < cost(out[i]):
            out[i] = out[i][::-1]
        last = np.where(np.isfinite(out[i]), out[i], last)
    return out


def make(cfg: dict, out_dir: Path, device: torch.device) -> list[Path]:
    lam_jump = composition_jump_lambda()  # where the symmetric pair stops being optimal (≈ 0.924)
    extra = [0.01, 0.3, lam_jump - 1e-3, lam_jump + 1e-3, 1.5, 2.0]  # the catalogue's λ, both sides of the jump
    lams = np.unique(np.concatenate([np.geomspace(*LAM_RANGE, cfg["n_lam"]), extra]))
    ang = _follow(np.stack([_optimum(lam, cfg).angles_deg for lam in lams]))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12.5, 5.0), gridspec_kw={"width_ratios": [1.35, 1]})

    # ---- left: optimal angles vs λ
    sym_l = np.geomspace(LAM_RANGE[0], 1.4, 200)
    sym_d = np.array([symmetric_optimal_tilt(v) for v in sym_l])
    stable = sym_l <= lam_jump
    for lo, hi, ls in ((stable, None, "-"), (~stable, None, ":")):
        ax.plot(sym_l[lo], sym_d[lo], ls, color="0.55", lw=1, zorder=1)
        ax.plot(sym_l[lo], 90 - sym_d[lo], ls, color="0.55", lw=1, zorder=1)
    ax.plot([], [], "-", color="0.55", lw=1, label="symmetric branch (closed form; dotted: no longer optimal)")
    names = ("atom starting at y", "atom starting at z")
    for j in (0, 1):
        a = ang[:, j]
        left = lams < lam_jump  # no line across the jump
        for part in (left, ~left):
            ax.plot(lams[part], a[part], "-o", color=ATOM_COLORS[j], ms=3.5, lw=1.6,
                    label=names[j] if part is left else None)
    for lam, (t1, t2) in CATALOGUE_ANGLES.items():
        ax.plot([lam, lam], [t1, t2], "*", color="gold", mec="k", ms=14, zorder=6,
                label="catalogue: 0/90 at λ=0.01, 6/84 at λ=0.3" if lam == 0.01 else None)
    ax.axhline(45, color="k", ls="--", lw=0.8)
    ax.text(LAM_RANGE[0] * 1.15, 46.5, "y + z direction (45°)", fontsize=8)
    ax.axvline(lam_jump, color="k", lw=0.8, ls=":")
    ax.text(lam_jump * 0.95, 30, f"jump at λ ≈ {lam_jump:.2f}", rotation=90, fontsize=8, ha="right", va="center")
    ax.annotate("one atom stays at y,\nthe other turns to y + z\n(or the mirror image)", (1.25, 2), xytext=(0.12, 20),
                fontsize=8, arrowprops={"arrowstyle": "->", "color": "0.3", "lw": 0.8})
    ax.axvline(2 * math.sqrt(2), color="k", lw=0.8, ls=":")
    ax.text(2 * math.sqrt(2) * 0.95, 30, "λ = 2√2: all codes 0", rotation=90, fontsize=8, ha="right", va="center")
    ax.set_xscale("log")
    ax.set_xlim(*LAM_RANGE)
    ax.set_ylim(-5, 95)
    ax.set_yticks([0, 15, 30, 45, 60, 75, 90])
    ax.set_xlabel("λ (L1 coefficient)")
    ax.set_ylabel("optimal atom angle from y (degrees)")
    ax.set_title("optimal 2-atom dictionary: mean over clusters of min$_{c≥0}$ ‖x − Dc‖² + λ‖c‖₁",
                 fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(0.0, 0.6), framealpha=0.95)

    # ---- right: clusters, atoms and reconstructions at two λ
    X = COMPOSITION_CLUSTERS
    ax2.scatter(X[:, 0], X[:, 1], s=260, color="0.85", edgecolor="k", zorder=2, label="clusters y, z, y + z")
    for (x, yv), name in zip(X, ("y", "z", "y + z")):
        ax2.annotate(name, (x, yv), xytext=(10, 8), textcoords="offset points", fontsize=10)
    for (lam, (ls, alpha)) in zip(cfg["show_lams"], SHOW_STYLES):
        o = _optimum(lam, cfg)
        D = decoder_from_angles(np.nan_to_num(o.angles_deg))
        label = f"λ = {lam:g}: atoms at " + "° / ".join(f"{a:.1f}" for a in o.angles_deg) + "°"
        for j in range(2):
            if not o.used[j]:
                continue
            ax2.annotate("", xy=D[:, j], xytext=(0, 0),
                         arrowprops={"arrowstyle": "-|>", "color": ATOM_COLORS[j], "lw": 2.2, "alpha": alpha, "ls": ls})
        R = o.codes @ D.T  # reconstructions (3, 2)
        ax2.plot([], [], color="k", lw=2.2, alpha=alpha, label=label)
        ax2.scatter(R[:, 0], R[:, 1], s=45, marker="x" if lam == cfg["show_lams"][0] else "D",
                    color="k", alpha=alpha, zorder=4, label=f"λ = {lam:g}: reconstructions Dc")
    ax2.plot([0, 1.5], [0, 1.5], "k--", lw=0.8)
    ax2.set_xlim(-0.15, 1.55)
    ax2.set_ylim(-0.15, 1.55)
    ax2.set_aspect("equal")
    ax2.set_xlabel("y coordinate")
    ax2.set_ylabel("z coordinate")
    ax2.set_title("optimal unit atoms (arrows; faint: the smaller λ) tilt toward y + z", fontsize=10)
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8, loc="upper left", framealpha=0.95)
    fig.tight_layout()
    return [savefig(fig, out_dir, "fig16_composition_preference")]
