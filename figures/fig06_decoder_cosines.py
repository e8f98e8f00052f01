"""Figure 6: how orthogonal are an SAE's decoder directions? (seed 000's histograms, on a toy).

A ReLU SAE L1 sweep (one batched run) on sparse features embedded at random unit directions
(:func:`theory.interference.decoder_geometry_experiment`, isotropic condition).
Panels 1-3: each latent's k-th largest |cos| to the other latents (k = 1, 10, 100) for the SAE
instance that recovers the features best (highest MMCS) and the least sparse one, against
random unit vectors in the same dimension (sampled, and the exact order-statistic density).
Panel 4: the median over latents of the k-th neighbour |cos| for every k and every instance,
with the exact median and 5-95% band for random directions.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.stats
import torch

from theory.interference import decoder_geometry_experiment, inner_product_tail
from toymodels.measures.cosines import decoder_cosine_stats, knn_cosine_quantile_random

from .common import plt, savefig

PRESETS = {
    "tiny": dict(n_features=64, d=8, dict_size=128, l1_coefficient=(0.1, 0.3), steps=60, batch_size=256,
                 n_random=2, n_k=6),
    "quick": dict(n_features=128, d=32, dict_size=128, l1_coefficient=(0.03, 0.1, 0.3, 1.0), steps=2000, lr=3e-3,
                  batch_size=512, n_random=8, n_k=24),
    # larger than the catalogue's toy; seed 000's own SAE had d = 768 and 24576 latents
    "full": dict(n_features=1024, d=128, dict_size=1024, l1_coefficient=(0.03, 0.1, 0.3, 1.0, 3.0), steps=20000,
                 lr=3e-3, batch_size=2048, n_random=16, n_k=40),
}


def _knn_density(k: int, m: int, d: int, grid: np.ndarray) -> np.ndarray:
    """Exact density of one vector's k-th largest |cos| among m random unit vectors in R^d."""
    cdf = scipy.stats.binom.cdf(k - 1, m - 1, inner_product_tail(grid, d))
    return np.gradient(cdf, grid)


def make(cfg: dict, out_dir: Path, device: torch.device) -> list[Path]:
    exp_kw = {k: v for k, v in cfg.items() if k != "n_k"}
    ex = decoder_geometry_experiment(**exp_kw, conditions=("isotropic",), device=device)
    iso = ex["conditions"]["isotropic"]
    sweep, sae_stats, rnd, d, m = iso["sweep"], iso["sae"], ex["random"], ex["d"], ex["m"]
    ks = sorted(ex["predicted_median"])
    best = int(np.nanargmax(sweep.mmcs))
    low = int(np.argmin(sweep.values))

    fig, axes = plt.subplots(1, len(ks) + 1, figsize=(4.2 * (len(ks) + 1), 4.0))
    for ax, k in zip(axes, ks):
        pooled = rnd.knn[k].ravel()
        lo, hi = 0.0, float(max(pooled.max(), sae_stats.knn[k].max())) * 1.02
        bins = np.linspace(lo, min(hi, 1.0), 40)
        ax.hist(pooled, bins=bins, density=True, color="0.75",
                label=f"random unit vectors ({rnd.knn[k].shape[0]} draws)")
        grid = np.linspace(1e-4, min(hi, 1.0), 400)
        ax.plot(grid, _knn_density(k, m, d, grid), color="k", lw=1.2, label="random: exact law")
        ax.hist(sae_stats.knn[k][best], bins=bins, density=True, histtype="step", lw=2, color="tab:blue",
                label=f"SAE best MMCS (λ={sweep.values[best]:.2g}, MMCS {sweep.mmcs[best]:.2f})")
        if low != best:
            ax.hist(sae_stats.knn[k][low], bins=bins, density=True, histtype="step", lw=2, color="tab:orange",
                    label=f"SAE least sparse (λ={sweep.values[low]:.2g}, L0 {sweep.l0[low]:.0f})")
        ax.axvline(ex["predicted_median"][k], color="k", ls=":", lw=1, label="random: exact median")
        ax.set_title(f"{k}{'st' if k == 1 else 'th'} nearest neighbour")
        ax.set_xlabel(f"|cos| to the {k}{'st' if k == 1 else 'th'} most similar other latent")
        ax.set_ylabel("density")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper left")

    # panel 4: median k-th neighbour |cos| vs k
    ax = axes[-1]
    kk = np.unique(np.geomspace(1, m - 1, cfg["n_k"]).round().astype(int))
    all_stats = decoder_cosine_stats(sweep.sae, kk)
    q = {a: np.array([knn_cosine_quantile_random(int(k), m, d, a) for k in kk]) for a in (0.05, 0.5, 0.95)}
    ax.fill_between(kk, q[0.05], q[0.95], color="0.85", label="random: exact 5–95%")
    ax.plot(kk, q[0.5], color="k", lw=1.5, label="random: exact median")
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(sweep.values)))
    for i, c in enumerate(colors):
        med = [all_stats.knn_median[int(k)][i] for k in kk]
        ax.plot(kk, med, "o-", ms=3, color=c,
                label=f"SAE λ={sweep.values[i]:.2g} (L0 {sweep.l0[i]:.1f}, MMCS {sweep.mmcs[i]:.2f})")
    ax.set_xscale("log")
    ax.set_xlabel("neighbour rank k")
    ax.set_ylabel("median over latents of k-th largest |cos|")
    ax.set_title("all ranks, all instances")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=6.5)
    fig.suptitle(f"Decoder directions of a ReLU SAE (F = {m}, d = {d}) on {cfg['n_features']} sparse features "
                 f"at random directions, vs {m} random unit vectors in $\\mathbb{{R}}^{{{d}}}$", fontsize=11)
    fig.tight_layout()
    return [savefig(fig, out_dir, "fig06_decoder_cosines")]
