"""Figure 21: feature absorption on a hierarchical, zipfian ground truth, for every SAE
architecture as the dictionary grows.

Ground truth (:class:`toymodels.hierarchy.HierarchicalFeatures`): N features at random unit
directions in d dims, firing rates ∝ rank^(−1) (zipf), the first ones arranged as parents,
each with mutually exclusive children that can fire only with their parent (Nabeshima's
Matryoshka toy; Bussmann et al. 2025). Every architecture is trained on it at dictionary
sizes F (k = the true mean L0 for the k-sparse ones; one L1/L0 coefficient for the others,
their L0 shown in the right panel). Left: MCC of the decoder with the true directions.
Middle: absorption — the fraction of samples with a parent and one of its children active in
which the parent's latent (its best-F1 latent) is silent (:func:`toymodels.ground_truth.absorption`).
Matryoshka against BatchTopK at the same k (the same training L0) is the comparison of
Bussmann et al.; the numbers are printed on the figure, whatever they show.
"""
from __future__ import annotations

from pathlib import Path


import torch

from toymodels import metrics as M
from toymodels.ground_truth import absorption
from toymodels.hierarchy import HierarchicalFeatures, tree
from toymodels.sae import arch_names
from toymodels.sae.registry import ARCHITECTURES
from toymodels.sae.sweep import train_sae_sweep

from .common import plt, savefig

L1 = {"relu": 0.3, "gated": 0.6, "rescaled": 0.6, "bound": 0.3, "jumprelu": 0.05}
OPTIONS = {"jumprelu": dict(options=dict(init_threshold=0.1, bandwidth=0.05))}

PRESETS = {
    "tiny": dict(n_parents=2, n_children=3, n_extra=4, d=8, p=0.15, dict_sizes=(8, 16), steps=30, batch_size=128,
                 lr=3e-3, eval=1024, archs=("topk", "batchtopk", "matryoshka")),
    "quick": dict(n_parents=4, n_children=3, n_extra=16, d=16, p=0.1, dict_sizes=(16, 32, 64), steps=600,
                  batch_size=256, lr=3e-3, eval=4096, archs=None),
    "full": dict(n_parents=16, n_children=4, n_extra=176, d=64, p=0.03, dict_sizes=(64, 128, 256, 512), steps=8000,
                 batch_size=1024, lr=2e-3, eval=16384, archs=None),
}


def measure(cfg: dict, device: torch.device) -> dict:
    """Per architecture and dictionary size: mcc, absorption (mean over parents), l0."""
    hier = tree(cfg["n_parents"], cfg["n_children"], mutually_exclusive=True)
    n = cfg["n_parents"] * (cfg["n_children"] + 1) + cfg["n_extra"]
    src = HierarchicalFeatures(n, cfg["p"], hierarchy=hier, firing="zipf", zipf_exponent=1.0, d_embed=cfg["d"], seed=0,
                               device=device)
    x_eval, c_eval = src.sample_with_truth(cfg["eval"])
    k = max(1, int(round(float((c_eval != 0).sum(-1).float().mean()))))
    archs = cfg["archs"] or arch_names()
    out: dict = {"k": k, "n_features": n, "archs": {}}
    for arch in archs:
        rows = []
        for f in cfg["dict_sizes"]:
            kw = dict(k=[min(k, f - 1)]) if ARCHITECTURES[arch].uses_k else dict(l1_coefficient=[L1.get(arch, 0.3)])
            res = train_sae_sweep(src, arch=arch, dict_size=f, steps=cfg["steps"], batch_size=cfg["batch_size"],
                                  lr=cfg["lr"], eval_samples=cfg["eval"], **kw, **OPTIONS.get(arch, {}))
            sae = res.sae
            with torch.no_grad():
                codes = sae.encode(x_eval)
            truth_cols = src.directions.transpose(1, 2)
            mcc = float(M.mcc(sae.decoder_directions(), truth_cols).reshape(-1)[0])
            ab = absorption(codes, c_eval, hier)
            rows.append(dict(dict_size=f, mcc=mcc, absorption=float(ab["mean_rate"][0]),
                             excess=float(ab["mean_excess"][0]), l0=float((codes != 0).sum(-1).float().mean())))
        out["archs"][arch] = rows
    return out


def make(cfg: dict, out_dir: Path, device: torch.device) -> list[Path]:
    res = measure(cfg, device)
    fig, axes = plt.subplots(1, 3, figsize=(15.5, 4.5))
    cmap = plt.get_cmap("tab10")
    for j, (arch, rows) in enumerate(res["archs"].items()):
        fs = [r["dict_size"] for r in rows]
        kw = dict(color=cmap(j % 10), marker="o", lw=2.5 if arch in ("matryoshka", "batchtopk") else 1.2,
                  ls="-" if arch != "batchtopk" else "--", label=arch)
        for ax, key in zip(axes, ("mcc", "absorption", "l0")):
            ax.plot(fs, [r[key] for r in rows], **kw)
    for ax, title in zip(axes, ("MCC with the true directions", "absorption rate (parent latent silent\nwhen a child fires)",
                                "L0 of the codes")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("dictionary size F")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[2].axhline(res["k"], color="0.5", ls=":", lw=1, label=f"k = {res['k']} (true mean L0)")
    axes[0].legend(fontsize=7.5)
    axes[2].legend(fontsize=7.5)
    m, b = res["archs"].get("matryoshka"), res["archs"].get("batchtopk")
    if m and b:
        txt = "absorption at k = {}:  ".format(res["k"]) + ",  ".join(
            f"F={rm['dict_size']}: matryoshka {rm['absorption']:.2f} vs batchtopk {rb['absorption']:.2f}" for rm, rb in zip(m, b))
        fig.text(0.5, -0.02, txt, ha="center", fontsize=9)
    fig.suptitle(f"Hierarchical zipfian ground truth: N = {res['n_features']} features in d = {cfg['d']}, "
                 f"{cfg['n_parents']} parents x {cfg['n_children']} exclusive children ({cfg['steps']} steps)", fontsize=11)
    fig.tight_layout()
    return [savefig(fig, out_dir, "fig21_hierarchy_absorption")]


__all__ = ["PRESETS", "make", "measure"]

