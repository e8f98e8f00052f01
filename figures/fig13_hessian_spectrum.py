"""Figure 13: the loss-Hessian spectrum of a trained toy model, by stochastic Lanczos quadrature
(Hessian-vector products only) against the exact eigendecomposition.

One instance of a ReLU-output toy model (Elhage et al. 2022) is trained on sparse features; its
loss on a fixed batch, as a function of the instance's parameters (W, b), is differentiated in
float64. Panels:

a. the Gaussian-broadened spectral density (1/n) Σ N(t; λ_i, σ²) — exact (from
   ``torch.linalg.eigvalsh`` of the explicit Hessian, also as a histogram) and by SLQ
   (Lin, Saad & Yang 2016; Ghorbani, Krishnan & Xiao 2019), on a log density axis so that the
   few large outliers and the bulk near zero show together;
b. the same spectrum on a log |λ| axis, eigenvalues per decade, positive and negative
   separately; eigenvalues with |λ| below ``floor_rtol``·max|λ| (numerically zero) are counted
   in a separate bar on the left instead of being sent to −∞;
c. how fast Lanczos finds the extreme eigenvalues: |θ − λ| / ||H|| against the step count.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from theory.hessian import (
    broadened_density,
    lanczos,
    slq_quadrature,
    toy_model_instance_loss,
)
from toymodels.data import SparseFeatures
from toymodels.device import derive_seed
from toymodels.experiments import train_tms
from toymodels.models import TMSConfig
from toymodels.train import TrainConfig

from .common import savefig

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(n_features=8, d_hidden=3, steps=200, feature_probability=0.1, importance_decay=0.8,
                 hessian_batch=512, lanczos_steps=12, n_probes=6, sigma_frac=0.02, floor_rtol=1e-7, seed=0),
    "quick": dict(n_features=20, d_hidden=5, steps=2000, feature_probability=0.05, importance_decay=0.8,
                  hessian_batch=2048, lanczos_steps=40, n_probes=30, sigma_frac=0.01, floor_rtol=1e-7, seed=0),
    "full": dict(n_features=30, d_hidden=8, steps=6000, feature_probability=0.05, importance_decay=0.85,
                 hessian_batch=2048, lanczos_steps=80, n_probes=60, sigma_frac=0.005, floor_rtol=1e-7, seed=0),
}


def _log_density(values: np.ndarray, weights: np.ndarray, grid: np.ndarray, width: float) -> np.ndarray:
    """Σ_j w_j N(u; log10 values_j, width²): counts per decade of |λ|."""
    if values.size == 0:
        return np.zeros_like(grid)
    u = np.log10(values)
    k = np.exp(-0.5 * ((grid[:, None] - u[None, :]) / width) ** 2) / (width * math.sqrt(2 * math.pi))
    return k @ weights


def make(cfg: dict[str, Any], out_dir: Path, device: torch.device) -> list[Path]:
    import matplotlib.pyplot as plt

    n, m = cfg["n_features"], cfg["d_hidden"]
    trained = train_tms(TMSConfig(n_features=n, d_hidden=m, importance_decay=cfg["importance_decay"]),
                    cfg["feature_probability"], seed=cfg["seed"], device=device,
                    train=TrainConfig(steps=cfg["steps"], batch_size=1024, lr=3e-3, quiet=True, eval_samples=4096,
                                      log_every=100))
    model = trained.model
    x = SparseFeatures(n, cfg["feature_probability"], seed=derive_seed(cfg["seed"], "fig13") % 2**31,
                       device=device).sample(cfg["hessian_batch"])
    il = toy_model_instance_loss(model, 0, x)
    dim = il.dim

    # exact spectrum
    H = il.hessian(chunk_size=64 if dim > 200 else None)
    ev = torch.linalg.eigvalsh(0.5 * (H + H.T)).cpu().numpy()
    hnorm = float(np.abs(ev).max())

    # stochastic Lanczos quadrature, HVPs only
    gen = torch.Generator()
    gen.manual_seed(derive_seed(cfg["seed"], "fig13-slq") % 2**63)
    m_steps = min(cfg["lanczos_steps"], dim)
    nodes, weights = slq_quadrature(il.hvp, dim, m_steps, cfg["n_probes"], "rademacher", gen, device)
    nodes_np, weights_np = nodes.cpu().numpy().ravel(), weights.cpu().numpy().ravel()

    # Lanczos convergence of the extremes (one run, all dim steps; its prefixes are shorter runs)
    run = lanczos(il.hvp, dim, dim, generator=gen, device=device)
    T = run.tridiagonal()
    steps = np.arange(1, dim + 1)
    err_top, err_bot = np.empty(dim), np.empty(dim)
    for j in steps:
        th = torch.linalg.eigvalsh(T[:j, :j]).numpy()
        err_top[j - 1] = abs(th[-1] - ev[-1]) / hnorm
        err_bot[j - 1] = abs(th[0] - ev[0]) / hnorm

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))

    # (a) linear λ, log density
    ax = axes[0]
    lo, hi = float(ev.min()), float(ev.max())
    pad = 0.05 * (hi - lo + 1e-30)
    grid = np.linspace(lo - pad, hi + pad, 1500)
    sigma = cfg["sigma_frac"] * (hi - lo + 1e-30)
    exact = broadened_density(torch.as_tensor(ev), torch.full((dim,), 1.0 / dim, dtype=torch.float64), grid, sigma).numpy()
    slq = broadened_density(nodes, weights, grid, sigma).numpy()
    ax.hist(ev, bins=60, range=(grid[0], grid[-1]), density=True, color="0.82", label="exact eigenvalues (histogram)")
    ax.plot(grid, exact, color="k", lw=1.6, label=f"exact, broadened (σ = {sigma:.2g})")
    ax.plot(grid, slq, color="tab:red", lw=1.4, ls="--", label=f"SLQ: {cfg['n_probes']} probes × {m_steps} steps")
    floor_d = max(1e-6 * float(exact.max()), 1e-300)
    ax.set_yscale("log")
    ax.set_ylim(floor_d, 3 * float(max(exact.max(), slq.max())))
    ax.set_xlabel("eigenvalue λ")
    ax.set_ylabel("spectral density (log scale)")
    ax.set_title(f"(a) loss-Hessian density, dim {dim}")
    ax.legend(fontsize=7, loc="upper right")

    # (b) log |λ| axis, per sign, with a bar for numerical zeros
    ax = axes[1]
    floor = cfg["floor_rtol"] * hnorm
    top_dec = math.ceil(math.log10(hnorm)) + 0.2
    nz = np.abs(ev)[np.abs(ev) >= floor]
    smallest = float(nz.min()) if nz.size else floor
    bot_dec = max(math.floor(math.log10(floor)), math.floor(math.log10(smallest)) - 1)
    ugrid = np.linspace(bot_dec, top_dec, 800)
    width = 0.12
    colours = {1: "tab:blue", -1: "tab:orange"}
    for sgn, name in ((1, "λ > 0"), (-1, "λ < 0")):
        sel = (np.sign(ev) == sgn) & (np.abs(ev) >= floor)
        d_ex = _log_density(np.abs(ev[sel]), np.ones(sel.sum()), ugrid, width)
        sel_n = (np.sign(nodes_np) == sgn) & (np.abs(nodes_np) >= floor)
        d_slq = _log_density(np.abs(nodes_np[sel_n]), dim * weights_np[sel_n], ugrid, width)
        ax.plot(ugrid, d_ex, color=colours[sgn], lw=1.6, label=f"exact, {name} ({int(sel.sum())})")
        ax.plot(ugrid, d_slq, color=colours[sgn], lw=1.3, ls="--", label=f"SLQ, {name} ({dim * weights_np[sel_n].sum():.1f})")
        ax.plot(np.log10(np.abs(ev[sel])), np.full(sel.sum(), -0.02 * dim if sgn > 0 else -0.05 * dim), "|",
                color=colours[sgn], ms=6)
    n0_ex = int((np.abs(ev) < floor).sum())
    n0_slq = float(dim * weights_np[np.abs(nodes_np) < floor].sum())
    ax.bar([bot_dec - 0.6], [n0_ex], width=0.35, color="0.4", label=f"|λ| < {cfg['floor_rtol']:g}·max: exact {n0_ex}")
    ax.bar([bot_dec - 0.2], [n0_slq], width=0.35, color="0.75", hatch="//", label=f"… SLQ estimate {n0_slq:.1f}")
    ax.axvline(bot_dec, color="0.6", lw=0.8, ls=":")
    ax.set_xlabel("log10 |λ|")
    ax.set_ylabel("eigenvalues per decade")
    ax.set_title("(b) log |λ|, by sign (ticks: exact eigenvalues)")
    ax.legend(fontsize=7, loc="upper left")

    # (c) convergence of the extreme Ritz values
    ax = axes[2]
    eps = 1e-17
    ax.semilogy(steps, err_top + eps, color="tab:blue", label=f"largest: λ = {ev[-1]:.3g}")
    ax.semilogy(steps, err_bot + eps, color="tab:orange", label=f"smallest: λ = {ev[0]:.3g}")
    ax.axhline(1e-8, color="0.5", lw=0.8, ls=":", label="1e-8 · ||H||")
    ax.set_xlabel("Lanczos steps (Hessian-vector products)")
    ax.set_ylabel("|θ − λ| / ||H||")
    ax.set_title("(c) extreme Ritz values converge")
    ax.legend(fontsize=7)

    loss = float(trained.loss[0])
    fig.suptitle(f"Toy model n={n}, m={m}, S={1 - cfg['feature_probability']:.2f}, importance {cfg['importance_decay']}^i, "
                 f"{cfg['steps']} steps, loss {loss:.3g}: Hessian spectrum from HVPs (SLQ) vs exact", fontsize=10)
    fig.tight_layout()
    return [savefig(fig, out_dir, "fig13_hessian_spectrum")]
