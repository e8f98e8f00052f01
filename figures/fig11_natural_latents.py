"""Figure 11 — natural latents: bounds against actual errors, and the two searches.

(a) mediator determines redund (Wentworth & Lorell, arXiv:2509.03780 Thm 1): H(Λ'|Λ) against
    I(X1;X2|Λ) + H(Λ'|X1) + H(Λ'|X2) over random joints of (X1, X2, Λ, Λ'); every point lies on
    or below y = x.
(b) its stochastic analogue for Λ ⊥ Λ' | X: I(Λ';X|Λ) against I(X1;X2|Λ) + I(Λ';X1|X2) + I(Λ';X2|X1).
(c) KL resampling: the largest I(Γ;X1|X2)/eps found by search (binary joints) at each eps,
    against the withdrawn lemma's 9 — the ratio passes 9 near eps = 1e-4 and keeps growing;
    pinned counterexamples marked.
(d) deterministic-latent conjecture: (best deterministic latent's max error)/(stochastic eps)
    for every searched joint — no growth as eps shrinks in this search.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from figures.common import savefig
from theory import natural_latents as nl

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"seed": 0, "n_joints": 120, "kl_targets": (1e-4,), "kl_starts": 2, "kl_maxiter": 400,
             "det_shapes": ((2, 2, 2),), "det_random": 20, "det_starts": 0, "det_maxiter": 100, "det_targets": (1e-2,),
             "all_shapes": (), "all_targets": (), "all_starts": 0},
    "quick": {"seed": 0, "n_joints": 1500, "kl_targets": (1e-2, 1e-3, 1e-4, 1e-5), "kl_starts": 8, "kl_maxiter": 1200,
              "det_shapes": ((2, 2, 2), (2, 2, 3)), "det_random": 150, "det_starts": 2, "det_maxiter": 400,
              "det_targets": (1e-2, 1e-3), "all_shapes": ((3, 2, 2),), "all_targets": (1e-3, 1e-4, 1e-5), "all_starts": 3},
    "full": {"seed": 0, "n_joints": 6000, "kl_targets": (1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6),
             "kl_starts": 24, "kl_maxiter": 3000, "det_shapes": ((2, 2, 2), (2, 2, 3), (2, 3, 2), (2, 3, 3)),
             "det_random": 500, "det_starts": 6, "det_maxiter": 1500, "det_targets": (1e-2, 1e-3, 1e-4),
             "all_shapes": ((2, 2, 2), (3, 2, 2)), "all_targets": (1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8), "all_starts": 6},
}


def _bound_points(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(RHS, LHS) pairs for the deterministic and the stochastic mediator-determines-redund bounds."""
    det, sto = [], []
    for k in range(n):
        PX = nl.random_joint(tuple(rng.integers(1, 4, size=2)), rng, float(rng.choice([0.2, 1.0])))
        a = float(rng.choice([0.05, 0.3, 1.0]))
        K1 = nl.random_kernel(PX.shape, int(rng.integers(2, 4)), rng, a)
        K2 = nl.random_kernel(PX.shape, int(rng.integers(2, 4)), rng, a)
        P = nl.latent_pair_joint(PX, K1, K2)
        med = nl.conditional_mutual_information(P, 0, 1, 2)
        if k % 2:  # an arbitrary joint for the deterministic bound (no independence needed)
            Pd = nl.random_joint(tuple(rng.integers(1, 4, size=4)), rng, float(rng.choice([0.1, 1.0])))
            det.append((nl.conditional_mutual_information(Pd, 0, 1, 2) + nl.conditional_entropy(Pd, 3, 0)
                        + nl.conditional_entropy(Pd, 3, 1), nl.conditional_entropy(Pd, 3, 2)))
        else:
            det.append((med + nl.conditional_entropy(P, 3, 0) + nl.conditional_entropy(P, 3, 1), nl.conditional_entropy(P, 3, 2)))
        sto.append((med + nl.conditional_mutual_information(P, 3, 0, 1) + nl.conditional_mutual_information(P, 3, 1, 0),
                    nl.conditional_mutual_information(P, 3, (0, 1), 2)))
    return np.array(det), np.array(sto)


def _scatter_bound(ax: plt.Axes, pts: np.ndarray, xlabel: str, ylabel: str, title: str) -> None:
    ax.scatter(pts[:, 0], pts[:, 1], s=6, alpha=0.5, color="tab:blue", lw=0)
    hi = max(pts.max(), 1e-3) * 1.05
    ax.plot([0, hi], [0, hi], color="k", lw=1, label="y = x (bound)")
    ax.set_xlim(0, hi)
    ax.set_ylim(0, hi)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    above = int(np.sum(pts[:, 1] > pts[:, 0] + 1e-12))
    ax.text(0.97, 0.03, f"{len(pts)} joints, {above} above the line", transform=ax.transAxes, ha="right", fontsize=8)


def make(cfg: dict[str, Any], out_dir: Path, device: Any = None) -> list[Path]:
    rng = np.random.default_rng(cfg["seed"])
    det_pts, sto_pts = _bound_points(rng, cfg["n_joints"])

    kl = list(nl.kl_resampling_curve(rng, cfg["kl_targets"], n_starts=cfg["kl_starts"], maxiter=cfg["kl_maxiter"]).values())
    pinned = {k: nl.kl_resampling_errors(P) for k, P in nl.KL_RESAMPLING_COUNTEREXAMPLES.items()}
    # the stronger hypothesis: all three errors (mediation too) <= eps
    all_pinned = {}
    for k, P in nl.KL_RESAMPLING_ALL_ERRORS_COUNTEREXAMPLES.items():
        eps = max(nl.stochastic_errors(P).values())
        all_pinned[k] = (eps, nl.kl_resampling_errors(P)["resampled"] / eps)
    all_curves = {shape: nl.search_kl_resampling_all_errors(cfg["all_targets"], shape, n_starts=cfg["all_starts"],
                                                             seed=cfg["seed"])
                  for shape in cfg["all_shapes"]}
    conj = nl.search_deterministic_conjecture(rng, cfg["det_shapes"], n_random=cfg["det_random"], n_starts=cfg["det_starts"],
                                              maxiter=cfg["det_maxiter"], eps_targets=cfg["det_targets"])

    fig, axes = plt.subplots(2, 2, figsize=(11, 9.5))
    _scatter_bound(axes[0, 0], det_pts, "I(X1;X2|Λ) + H(Λ'|X1) + H(Λ'|X2)  [nats]", "H(Λ'|Λ)  [nats]",
                   "(a) mediator determines redund (arXiv:2509.03780)")
    _scatter_bound(axes[0, 1], sto_pts, "I(X1;X2|Λ) + I(Λ';X1|X2) + I(Λ';X2|X1)", "I(Λ';X|Λ)",
                   "(b) stochastic version, Λ ⊥ Λ' | X")

    ax = axes[1, 0]
    good = [r for r in kl if r["in_band"]]
    if good:
        ax.plot([r["eps"] for r in good], [r["ratio"] for r in good], "o-", color="tab:red", label="search: best ratio at each eps")
    ax.scatter([r["eps"] for r in pinned.values()], [r["ratio"] for r in pinned.values()], marker="*", s=140,
               color="tab:purple", zorder=5, label="pinned counterexamples")
    for shape, curve in all_curves.items():
        ok = [r for r in curve.values() if r["in_band"]]
        ax.plot([r["eps"] for r in ok], [r["ratio"] for r in ok], "s-", ms=4,
                label=f"all three errors <= eps, X1 with {shape[0]} values: search")
    ax.scatter([e for e, _ in all_pinned.values()], [r for _, r in all_pinned.values()], marker="D", s=60,
               color="tab:blue", zorder=5, label="pinned, all three errors <= eps")
    ax.axhline(9, color="k", ls="--", lw=1, label="withdrawn lemma: ratio <= 9")
    ax.set_xscale("log")
    ax.set_xlabel("eps = max of the errors the hypothesis bounds  [nats]")
    ax.set_ylabel("I(Γ;X1|X2) / eps,  Γ ~ P[Λ|X1]")
    ax.set_title("(c) KL resampling: redundancy errors only (binary), or all three errors", fontsize=10)
    ax.legend(fontsize=8)

    ax = axes[1, 1]
    pts = conj["points"]
    if len(pts):
        ax.scatter(pts[:, 0], pts[:, 1], s=8, alpha=0.5, lw=0, color="tab:green", label="searched joints")
        ax.scatter([conj["eps"]], [conj["ratio"]], marker="*", s=140, color="tab:orange", zorder=5,
                   label=f"worst found: {conj['ratio']:.2f}")
    ax.set_xscale("log")
    ax.set_xlabel("stochastic eps = max(mediation, redundancy errors)  [nats]")
    ax.set_ylabel("best deterministic latent's max error / eps")
    ax.set_title("(d) deterministic-latent conjecture: search", fontsize=10)
    ax.legend(fontsize=8)

    fig.suptitle("Natural latents (Wentworth & Lorell): bounds vs actual errors, and counterexample searches", fontsize=11)
    fig.tight_layout()
    return [savefig(fig, out_dir, "fig11_natural_latents")]
