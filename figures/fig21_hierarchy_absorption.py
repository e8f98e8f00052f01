"""Figure 21: feature absorption on a hierarchical, zipfian ground truth, for every SAE
architecture as the dictionary grows.

Ground truth (:class:`toymodels.hierarchy.HierarchicalFeatures`, constant magnitudes): N
features at random unit directions in d dims; the first ones are parents (rate
``p_parent``), each with mutually exclusive children that can fire only with their parent
(each drawn with ``p_child`` given the parent, one kept: Nabeshima's Matryoshka toy,
Bussmann et al. 2025); the other features are independent with zipfian rates ∝ rank^(−1)
(mean ``p``). Every architecture is trained on it at dictionary sizes F, two seeds each
(instances; the curves are their means): k = the true mean L0 for the k-sparse ones, one
L1/L0 coefficient for the others (their L0 in the right panel). Left: MCC of the decoder with the true directions.
Middle: absorption — the fraction of samples with a parent and one of its children active in
which the parent's latent (its best-F1 latent) is silent (:func:`toymodels.ground_truth.absorption`).
Matryoshka against BatchTopK at the same k (the same training L0) is the comparison of
Bussmann et al.; the numbers are printed on the figure, whatever they show.
"""
from __future__ import annotations

from pathlib import Path


import torch

from toymodels.measures import metrics as M
from toymodels.measures.ground_truth import absorption
from toymodels.data.hierarchy import HierarchicalFeatures, tree, zipf_probabilities
from toymodels.sae import arch_names
from toymodels.sae.registry import ARCHITECTURES
from toymodels.sae.sweep import train_sae_sweep

from .common import plt, savefig

L1 = {"relu": 0.3, "gated": 0.6, "rescaled": 0.6, "bound": 0.3, "jumprelu": 0.05}
OPTIONS = {"jumprelu": dict(options=dict(init_threshold=0.1, bandwidth=0.05))}

PRESETS = {
    "tiny": dict(n_parents=2, n_children=3, n_extra=4, d=8, p=0.05, p_parent=0.2, p_child=0.3, dict_sizes=(8, 16),
                 steps=30, batch_size=128, lr=3e-3, eval=1024, archs=("batchtopk", "matryoshka")),
    "quick": dict(n_parents=4, n_children=3, n_extra=16, d=16, p=0.04, p_parent=0.2, p_child=0.3, dict_sizes=(16, 32, 64),
                  steps=400, batch_size=256, lr=3e-3, eval=2048, archs=None),
    "full": dict(n_parents=16, n_children=4, n_extra=176, d=64, p=0.01, p_parent=0.1, p_child=0.25,
                 dict_sizes=(64, 128, 256, 512), steps=8000, batch_size=1024, lr=2e-3, eval=16384, archs=None),
}


def measure(cfg: dict, device: torch.device) -> dict:
    """Per architecture and dictionary size: mcc, absorption (mean over parents), l0."""
    hier = tree(cfg["n_parents"], cfg["n_children"], mutually_exclusive=True)
    n_tree = cfg["n_parents"] * (cfg["n_children"] + 1)
    n = n_tree + cfg["n_extra"]
    p = torch.empty(1, n)
    p[0, n_tree:] = zipf_probabilities(cfg["n_extra"], cfg["p"], 1.0)[0]
    for parent, children, _ in hier:
        p[0, parent], p[0, children] = cfg["p_parent"], cfg["p_child"]
    src = HierarchicalFeatures(n, p, hierarchy=hier, magnitude="constant", d_embed=cfg["d"], seed=0, device=device)
    x_eval, c_eval = src.sample_with_truth(cfg["eval"])
    k = max(1, int(round(float((c_eval != 0).sum(-1).float().mean()))))
    archs = cfg["archs"] or arch_names()
    out: dict = {"k": k, "n_features": n, "archs": {}}
    for arch in archs:
        rows = []
        for f in cfg["dict_sizes"]:
            kw = dict(k=[min(k, f - 1)] * 2) if ARCHITECTURES[arch].uses_k else dict(l1_coefficient=[L1.get(arch, 0.3)] * 2)
            res = train_sae_sweep(src, arch=arch, dict_size=f, steps=cfg["steps"], batch_size=cfg["batch_size"],
                                  lr=cfg["lr"], eval_samples=cfg["eval"], **kw, **OPTIONS.get(arch, {}))
            sae = res.sae
            with torch.no_grad():
                codes = sae.encode(x_eval)
            truth_cols = src.directions.transpose(1, 2)
            mcc = M.mcc(sae.decoder_directions(), truth_cols).reshape(-1)
            ab = absorption(codes, c_eval, hier)
            rows.append(dict(dict_size=f, mcc=float(mcc.mean()), absorption=float(ab["mean_rate"].mean()),
                             absorption_seeds=ab["mean_rate"].tolist(), excess=float(ab["mean_excess"].mean()),
                             l0=float((codes != 0).sum(-1).float().mean())))
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
                 f"{cfg['n_parents']} parents x {cfg['n_children']} exclusive children, p_parent = {cfg['p_parent']}, "
                 f"p_child|parent = {cfg['p_child']} ({cfg['steps']} steps, 2 seeds)", fontsize=11)
    fig.tight_layout()
    return [savefig(fig, out_dir, "fig21_hierarchy_absorption")]


__all__ = ["PRESETS", "make", "measure"]

