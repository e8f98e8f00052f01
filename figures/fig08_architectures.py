"""Figure 8: SAE architectures on one toy problem — FVU vs L0 frontier, and shrinkage.

Sparse features embedded at random unit directions; one batched sweep per architecture (the
L1 coefficient for relu/gated/rescaled, the L0 coefficient for jumprelu, k for topk/batchtopk).
Left: fraction of variance unexplained against L0 (lower-left is better). Middle: the relative
reconstruction bias γ = E||x̂||² / E[x·x̂] (1 = no shrinkage; below 1 reconstructions are too
short). Right: recovery of the true features (MMCS). Gated vs rescaled is the claim
``sae.gated_vs_rescaled``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from toymodels import SparseFeatures
from toymodels.sae.sweep import architecture_frontier

from .common import plt, savefig

ARCHS = ("relu", "gated", "rescaled", "topk", "batchtopk", "jumprelu")
STYLE = {
    "relu": dict(color="tab:blue", marker="o"),
    "gated": dict(color="tab:red", marker="s"),
    "rescaled": dict(color="tab:orange", marker="s", ls="--"),
    "topk": dict(color="tab:green", marker="^"),
    "batchtopk": dict(color="tab:olive", marker="v", ls="--"),
    "jumprelu": dict(color="tab:purple", marker="D"),
}
# JumpReLU's defaults (θ0 = ε = 1e-3) suit normalised language-model activations and long
# runs; on these toy scales the threshold would need ~10⁴ steps to reach O(0.1).
JUMPRELU = dict(options=dict(init_threshold=0.1, bandwidth=0.05))  # JumpReLU's own options (toymodels.sae.jumprelu)


def _sweeps(n: int) -> dict[str, tuple]:
    return {
        "relu": tuple(np.geomspace(0.05, 1.5, n)),
        "gated": tuple(np.geomspace(0.1, 3.0, n)),
        "rescaled": tuple(np.geomspace(0.1, 3.0, n)),
        "topk": tuple(int(k) for k in np.unique(np.geomspace(1, 12, n).round())),
        "batchtopk": tuple(int(k) for k in np.unique(np.geomspace(1, 12, n).round())),
        "jumprelu": tuple(np.geomspace(0.003, 0.3, n)),
    }


PRESETS = {
    "tiny": dict(n_features=16, d=8, dict_size=32, expected_l0=2.0, n_sweep=3, steps=40, batch_size=256, lr=1e-3),
    # the gallery image: trained to convergence (at 1000 steps and lr 1e-3 ReLU's shrinkage was not yet
    # monotonic in L0 and the Gated SAE overshot, γ = 1.08)
    "quick": dict(n_features=32, d=16, dict_size=64, expected_l0=3.0, n_sweep=6, steps=3000, batch_size=512, lr=3e-3),
    "full": dict(n_features=512, d=128, dict_size=2048, expected_l0=5.0, n_sweep=10, steps=20000, batch_size=2048,
                 lr=3e-3),
}


def make(cfg: dict, out_dir: Path, device: torch.device) -> list[Path]:
    n, d = cfg["n_features"], cfg["d"]
    src = SparseFeatures(n, cfg["expected_l0"] / n, d_embed=d, seed=0, device=device)
    res = architecture_frontier(src, {a: _sweeps(cfg["n_sweep"])[a] for a in ARCHS}, dict_size=cfg["dict_size"],
                                arch_options={"jumprelu": JUMPRELU}, steps=cfg["steps"], batch_size=cfg["batch_size"],
                                lr=cfg["lr"])
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15.5, 4.5))
    for arch, r in res.items():
        order = np.argsort(r.l0)
        st = STYLE[arch]
        kw = dict(color=st["color"], marker=st["marker"], ls=st.get("ls", "-"), ms=5,
                  label=f"{arch} ({'k' if r.parameter == 'k' else 'λ'} sweep)")
        ax1.plot(r.l0[order], r.fvu[order], **kw)
        ax2.plot(r.l0[order], r.shrinkage[order], **kw)
        ax3.plot(r.l0[order], r.mmcs[order], **kw)
    for ax in (ax1, ax2, ax3):
        ax.set_xscale("log")
        ax.set_xlabel("L0 (active latents per sample)")
        ax.axvline(cfg["expected_l0"], color="0.5", ls=":", lw=1)
        ax.grid(alpha=0.3, which="both")
    ax1.set_yscale("log")
    ax1.set_ylabel("FVU (fraction of variance unexplained)")
    ax1.set_title("sparsity–reconstruction frontier")
    ax2.axhline(1.0, color="k", lw=1)
    ax2.set_ylabel("γ = E‖x̂‖² / E[x·x̂]   (< 1: shrinkage)")
    ax2.set_title("shrinkage")
    ax3.set_ylabel("MMCS with the true features")
    ax3.set_title("feature recovery")
    ax1.legend(fontsize=7.5)
    ax3.text(cfg["expected_l0"], ax3.get_ylim()[0], " true E[L0]", color="0.4", fontsize=8, va="bottom")
    fig.suptitle(f"SAE architectures, F = {cfg['dict_size']} latents, on N = {n} sparse features at random directions "
                 f"in d = {d} ({cfg['steps']} steps each, lr {cfg['lr']:g})", fontsize=11)
    fig.tight_layout()
    return [savefig(fig, out_dir, "fig08_architectures")]
