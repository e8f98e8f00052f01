"""Figure 9: firing frequencies and high-frequency pruning of an SAE on a toy model.

An L1 sweep of ReLU SAEs (one batched run per row) on the hidden activations of a trained toy
model (:func:`theory.sae.pruning.pruning_curve`, the experiment of the claim
``sae.high_frequency_pruning``). Top row: the claim's setting — the hidden layer also carries
dense features in extra dimensions that the readout ignores (:class:`theory.sae.pruning.NullSpaceModel`).
Bottom row: the control, the plain toy model (its readout has full rank). Left: the
firing-frequency histogram of every SAE (log x). Middle and right: the lowest-λ SAE pruned by
removing its highest-frequency latents until L0 reaches a target, against removing latents in
random order and against the SAEs trained at higher λ — MSE and the toy model's loss with the
SAE spliced into its hidden layer.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from theory.sae.pruning import NULL_SPACE, NullSpaceModel, pruning_curve
from theory.sae.stability import trained_toy_model

from .common import plt, savefig

PRESETS = {
    "tiny": {"model": (32, 8, 0.03, 500), "l1": (0.15, 0.25, 0.5), "steps": 400, "n_eval": 2048, "orders": 4,
             "targets": 6},
    "quick": {"model": (64, 16, 0.04, 2000), "l1": (0.15, 0.2, 0.3, 0.5), "steps": 3000, "n_eval": 8192, "orders": 16,
              "targets": 14},
    "full": {"model": (128, 32, 0.02, 6000), "l1": (0.1, 0.15, 0.2, 0.3, 0.5), "steps": 10000, "n_eval": 32768,
             "orders": 32, "targets": 20},
}


def make(cfg: dict, out_dir: Path, device: torch.device) -> list[Path]:
    n, m, p, model_steps = cfg["model"]
    model = trained_toy_model(n, m, p, steps=model_steps, device=device)
    null = NullSpaceModel(model, **NULL_SPACE)
    kw = dict(l1_coefficients=cfg["l1"], steps=cfg["steps"], n_eval=cfg["n_eval"], n_targets=cfg["targets"],
              n_random_orders=cfg["orders"], device=device)
    fig, axes = plt.subplots(2, 3, figsize=(16, 9.4))
    _row(axes[0], pruning_curve(null, feature_probability=null.feature_probabilities(p), **kw), cfg, p,
         f"+ {null.n_dense} dense features (p = {null.p_dense:g}) in {null.n_null} dims the readout ignores")
    _row(axes[1], pruning_curve(model, feature_probability=p, **kw), cfg, p, "control: the plain toy model")
    fig.suptitle(f"High-frequency pruning of ReLU SAEs on a toy model ({n} sparse features in {m} dims)", fontsize=12)
    fig.tight_layout()
    return [savefig(fig, out_dir, "fig09_frequency_pruning")]


def _row(axes, r, cfg: dict, p: float, setting: str) -> None:
    """One setting: frequency histograms, then the MSE and downstream pruning curves."""
    ax0, ax1, ax2 = axes
    lams = r.l1_coefficients
    colors = plt.cm.viridis(np.linspace(0.0, 0.85, len(lams)))

    # ---- firing-frequency histograms
    lo = min(1e-4, float(r.frequency[r.frequency > 0].min()) / 2)
    bins = np.logspace(np.log10(lo), 0, 36)
    for j, lam in enumerate(lams):
        f = r.frequency[j]
        dead = int((f == 0).sum())
        ax0.hist(f[f > 0], bins=bins, histtype="step", lw=2.2 if j == 0 else 1.4, color=colors[j],
                 label=f"λ={lam:g}: L0 {r.trained['l0'][j]:.1f}" + (f", {dead} dead" if dead else ""))
    m0 = r.matched[0]
    order = np.sort(r.frequency[0])[::-1]
    thr = order[m0["removed"] - 1] if m0["removed"] else 1.0
    ax0.axvline(thr, color="crimson", ls="--", lw=1.2)
    ax0.text(thr, ax0.get_ylim()[1] * 0.97, f" pruning λ={lams[0]:g} to L0 {m0['target_l0']:.1f}\n removes the "
             f"{m0['removed']} latents\n at frequency ≥ {thr:.3g}", color="crimson", fontsize=8, va="top")
    ax0.axvline(p, color="gray", ls=":", lw=1, label=f"true feature frequency {p:g}")
    ax0.set_xscale("log")
    ax0.set_xlabel("firing frequency of a latent")
    ax0.set_ylabel("latents")
    ax0.set_title(f"{setting}\n{r.frequency.shape[1]} latents", fontsize=10)
    ax0.legend(fontsize=8, loc="upper left")

    # ---- pruning curves
    for ax, key, label in ((ax1, "mse", "reconstruction MSE"), (ax2, "downstream", "toy-model loss, SAE spliced in")):
        bf, ro = r.by_frequency, r.random_order
        ax.plot(bf["l0"], bf[key], "o-", color="crimson", ms=4,
                label=f"λ={lams[0]:g} SAE, highest-frequency latents removed")
        ax.plot(ro["l0"], ro[key], "s-", color="tab:gray", ms=3,
                label=f"same SAE, random latents removed ({cfg['orders']} orders)")
        ax.fill_between(ro["l0"], ro[key] - ro[f"{key}_std"], ro[key] + ro[f"{key}_std"], color="tab:gray", alpha=0.2)
        ax.plot(r.trained["l0"], r.trained[key], "-", color="k", lw=0.8, zorder=1)
        for j, lam in enumerate(lams):
            ax.plot(r.trained["l0"][j], r.trained[key][j], "*", ms=13, color=colors[j], mec="k", zorder=5,
                    label="SAEs trained at each λ" if j == 0 else None)
            if ax is ax1:
                ax.annotate(f"λ={lam:g}", (r.trained["l0"][j], r.trained[key][j]), xytext=(6, -13 if j % 2 else 6),
                            textcoords="offset points", fontsize=8)
        ax.axvline(r.true_l0, color="gray", ls=":", lw=1,
                   label=f"true L0 of the data ({r.true_l0:.2g})" if ax is ax1 else None)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 3.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("L0 (active latents per sample)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    ax2.axhline(r.clean_loss, color="tab:green", ls="--", lw=1, label="clean (no SAE)")
    ax2.axhline(r.zero_ablated_loss, color="tab:red", ls="--", lw=1, label="hidden layer zeroed")
    ax1.set_title(f"MSE: at L0 {m0['target_l0']:.1f} pruned / trained = {m0['pruned_mse'] / m0['trained_mse']:.2f}",
                  fontsize=10)
    ax2.set_title(f"downstream: at L0 {m0['target_l0']:.1f} pruned / trained = "
                  f"{m0['pruned_downstream'] / m0['trained_downstream']:.3f}", fontsize=10)
    ax1.legend(fontsize=7.5, loc="lower left")
    ax2.legend(fontsize=7.5, loc="lower left")
