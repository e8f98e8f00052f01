"""Published results, reproduced (topic ``published``): SPD's Table 1 and its compressed computation.

Bushnaq, Braun & Sharkey 2025, "Stochastic Parameter Decomposition" (reference implementation
``goodfire-ai/spd``). Each claim reruns one published experiment with the paper's settings
(``--budget paper``) or a cheaper budget where the numbers still reproduce, and reports
``reproduces`` or ``differs`` against the paper's numbers.

- ``published.spd_tms_5_2``, ``published.spd_tms_40_10``, ``published.spd_tms_5_2_id``,
  ``published.spd_tms_40_10_id``: Table 1, the mean max cosine similarity (MMCS) and the mean L2
  ratio (ML2R) of SPD's subcomponents of W against the columns of W (:func:`mmcs_ml2r`), means
  over seeds trained side by side on the instance axis. Reproduces when MMCS >= 0.99 and
  |ML2R − paper| <= 0.03.
- ``published.spd_resid_mlp1``: the one-layer residual MLP (100 features, 50 neurons): W_in splits
  into one subcomponent per feature, whose neuron contributions match the target's, and W_out is
  one high-rank block of about 50 live subcomponents (:func:`resid_mlp_summary`).

Targets are trained as the paper trains them (AdamW, weight decay 0.01): :func:`paper_tms_target`
and :func:`paper_resid_target`.

Why 5 → 2 merged (issue 21). At the default budget (C = 20, leaky-hard masks, Kaiming gates, a
200-step faithfulness warm-up, Adam 1e-2 cosine to 0, 3000 steps x 1024) most seeds recover one
subcomponent per feature (MMCS 1.000, ML2R 1.004-1.006), but some fall into a local minimum of
the SPD loss: one feature j is carried by the two subcomponents of its pentagon neighbours, each a
rank-1 piece U_c (a e_j + b e_k)ᵀ whose column for j points at the neighbour k (about 70° off)
and whose two columns for j sum to W_{:,j}; the input e_j then fires two gates (importance 2
instead of 1) and W has 4 live subcomponents for 5 features (ML2R about 0.6-0.8: feature j's
best-cosine subcomponent is a dead one). Faithfulness is exact there, so only the importance
penalty can undo it, and no setting undoes it on the seed that merges: 2x steps, 4x batch, C = 10,
importance 1e-3, lr 3e-3 and the reference's current code path (no faithfulness term after the
warm-up, a delta component) keep it; the old gate initialisation leaves 5 live with ML2R 0.80;
no warm-up leaves both seeds unconverged; importance 1e-2 merges both seeds. The paper's own
learning rate and batch (Adam 1e-3 cosine, batch 4096; 3 seeds at ``--seed 0``, one thread)
at a quarter and half of its 40k steps (10k: 25 minutes, 20k: 48 minutes) leave that seed at
MMCS 0.962 both times (ML2R 1.000 and 1.009, W_T 4 live; the other two seeds MMCS 1.000, ML2R
1.005 / 1.009): the sharing is partial there but does not go away with more steps.
Default budgets (one thread each on the 2-core host; the paper's lr and sample counts are
out of a CPU's reach, so the default trades steps for a larger lr and was kept only where the
numbers reproduce). 40-10 (C = 200, one seed): 2000 x 256 at lr 1e-2 left 55 live W
subcomponents (MMCS 0.89), 6000 x 512 at 3e-3 left 47 (0.946); 10k x 256 at 5e-3 gave 40
live, MMCS 0.991 / 0.999 and ML2R 1.011 / 1.015 (seeds 0 / 1), 12k x 256 MMCS 0.994, ML2R
1.015 (about 8 minutes): the default. 40-10+ID at 10k x 256: MMCS 0.996, ML2R 1.013, the
identity as 10 live subcomponents (11 minutes). resid_mlp1 (the paper's 10k-step target, about
75 s with the folded forward): SPD 5000 x 1024 at the paper's 2e-3 owned 70% of the features
with 69 live W_out subcomponents; 6000 x 512 at 5e-3 owned 94% (50 live, correlation 0.988);
at 1e-2 100%, 50 live, correlation 1.000 (9 minutes): the default. Before the gate MLPs became
one function and the residual MLP was folded into its feature basis
(:func:`toymodels.research.spd.folded_weight`), resid_mlp1 alone took over 20 minutes at
half these steps.
The committed report (``make gallery-published``, 2 workers, 31 minutes): resid_mlp1 reproduces
on both seeds (100% owned, 50 live W_out, correlation 1.000); 40-10 with two seeds on the
instance axis MMCS 0.983 / 0.998 (inconclusive: the first seed short of 0.99 at this budget),
40-10+ID 0.977 / 0.985 with 42 / 40 live W subcomponents (differs: not converged at this
budget, though a one-seed run of the same settings gave MMCS 1.000, ML2R 1.023); 5-2 2 of 3
seeds (the first shares: ML2R 0.80; inconclusive) and 5-2+ID differs (ML2R 0.81). The 5-2
seeds sit on a knife edge: the fused gate MLP changed only float rounding, and the first seed
went from ML2R 1.004 to 0.80. The paper's budget (``--budget paper``) is hours per row on a
CPU; it wants a GPU.
Measured at the default budget on one thread (before those speed-ups; the same settings):
three seeds reproduce on 3 of 3 for two draws
(``--seed`` 0 and 1: ML2R 1.004/1.005/1.005 and 1.005/1.002/1.005, about 3 minutes each); the
2-seed draw at seed 0 merged on its second seed, the one-seed target of ``spd.tms_components``
shares too (W cosines down to 0.59), and the +ID row at two seeds differs (ML2R 0.81).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from toymodels.data import SparseFeatures
from toymodels.device import derive_seed
from toymodels.experiments import train_tms
from toymodels.models import TMSConfig
from toymodels.research.compressed import ResidualMLP, ResidualMLPConfig
from toymodels.research.spd import SPDConfig, SPDModel, TiedTarget, causal_importance, train_spd
from toymodels.train import TrainConfig, train

from .registry import Context, Result, claim

MMCS_MIN = 0.99
"""A TMS row reproduces when the mean max cosine similarity is at least this ..."""
ML2R_TOL = 0.03
"""... and the mean L2 ratio is within this of the paper's."""
CI_ON = 0.5
"""Causal importance at or above this counts as firing (the owned-feature test)."""
CI_ALIVE = 0.1
"""A subcomponent is live when its causal importance exceeds this on some probe (the reference's
``ci_alive_threshold``)."""
PROBE_VALUE = 0.75
"""The one-hot probes' value (the paper's x_i = 0.75)."""


# ====================================================================== metrics
@torch.no_grad()
def mmcs_ml2r(spd: SPDModel, W_IMN: torch.Tensor, name: str = "W") -> tuple[np.ndarray, np.ndarray]:
    """Per instance: MMCS = mean_j max_c cos(U_c V_{c,j}, W_{:,j}) and ML2R = mean_j
    ‖U_{c*} V_{c*,j}‖ / ‖W_{:,j}‖ (c* the best-cosine subcomponent) of matrix ``name`` (default W,
    out = M, in = N; for W_T the target's columns are the rows of W). Returns two (I,) arrays."""
    U, V = spd.U[name].detach(), spd.V[name].detach()  # (I, C, out), (I, C, in)
    W = spd.target.spd_weights()[name].detach()  # (I, out, in)
    cols = U[:, :, None, :] * V[:, :, :, None]  # (I, C, in, out): column j of subcomponent c
    tgt = W.transpose(1, 2)[:, None]  # (I, 1, in, out)
    cn, tn = cols.norm(dim=-1), tgt.norm(dim=-1)
    cos = (cols * tgt).sum(-1) / (cn * tn).clamp_min(1e-12)  # (I, C, in)
    best, idx = cos.max(dim=1)  # (I, in)
    ratio = cn.gather(1, idx[:, None]).squeeze(1) / tn.squeeze(1).clamp_min(1e-12)
    return best.mean(-1).cpu().numpy(), ratio.mean(-1).cpu().numpy()


@torch.no_grad()
def live_counts(spd: SPDModel, probes: torch.Tensor, threshold: float = CI_ALIVE) -> dict[str, np.ndarray]:
    """Per matrix, the (I,) number of subcomponents whose causal importance exceeds ``threshold``
    on some probe (probes (1 or I, B, D))."""
    g = causal_importance(spd, probes)
    return {n: (v.amax(1) > threshold).sum(-1).cpu().numpy() for n, v in g.items()}


# ====================================================================== TMS (Table 1)
TMS_ROWS: dict[str, dict[str, Any]] = {
    "5_2": {"n": 5, "m": 2, "identity": False, "paper": (1.000, 0.993), "paper_sd": (0.000, 0.002)},
    "40_10": {"n": 40, "m": 10, "identity": False, "paper": (1.000, 1.010), "paper_sd": (0.000, 0.007)},
    "5_2_id": {"n": 5, "m": 2, "identity": True, "paper": (1.000, 0.992), "paper_sd": (0.000, 0.010)},
    "40_10_id": {"n": 40, "m": 10, "identity": True, "paper": (1.000, 1.031), "paper_sd": (0.000, 0.001)},
}
"""Table 1's rows: shapes and the paper's (MMCS, ML2R) with their standard deviations."""


def paper_tms_target(n: int, m: int, *, seeds: int, steps: int = 10_000, batch_size: int | None = None,
                     feature_probability: float = 0.05, seed: int = 0, device: Any = "cpu") -> Any:
    """The paper's TMS target, ``seeds`` of them on the instance axis: x' = ReLU(WᵀW x + b),
    features Uniform[0, 1] with probability 0.05, AdamW (weight decay 0.01) at a constant 5e-3,
    10k steps, batch 1024 (N = 5) or 8192 (N = 40)."""
    bs = batch_size or (1024 if n <= 5 else 8192)
    tr = TrainConfig(steps=steps, batch_size=bs, lr=5e-3, optimizer="adamw", weight_decay=0.01, quiet=True,
                     eval_samples=4096)
    return train_tms(TMSConfig(n, m, n_instances=seeds), feature_probability, train=tr, seed=seed,
                     device=device).model


@dataclass
class TMSOutcome:
    """One Table-1 row as run: per-seed MMCS/ML2R of W, live subcomponents, seconds."""

    mmcs: np.ndarray
    ml2r: np.ndarray
    mmcs_wt: np.ndarray
    live: dict[str, np.ndarray]
    seconds: float
    settings: dict[str, Any]
    spd: Any = None
    """The trained :class:`SPDModel` (for figures)."""
    tms: Any = None
    """The target toy model (for figures)."""


def tms_spd_configs(s: dict[str, Any], *, seed: int = 0) -> tuple[SPDConfig, TrainConfig]:
    """The SPD and training configurations of TMS settings ``s`` (keys of :data:`PAPER_TMS`
    ``[row]``, plus optional ``faithfulness``, ``delta_component``, ``sigmoid``, ``gate_init``,
    ``final_lr_fraction``): Adam with a cosine schedule, 16 GELU units per gate."""
    cfg = SPDConfig(n_components=s["C"], importance=s["importance"], p=s["p"], gate_hidden=16,
                    faithfulness=s.get("faithfulness", 1.0), seed=seed,
                    faithfulness_warmup_steps=s.get("warmup_steps", 200),
                    delta_component=s.get("delta_component", False), sigmoid=s.get("sigmoid", "leaky_hard"),
                    gate_init=s.get("gate_init", "kaiming"))
    tr = TrainConfig(steps=s["steps"], batch_size=s["batch_size"], lr=s["lr"], schedule="cosine",
                     final_lr_fraction=s.get("final_lr_fraction", 0.0), quiet=True, eval_samples=1024)
    return cfg, tr


def run_tms_row(row: str, s: dict[str, Any], *, seed: int = 0, device: Any = "cpu") -> TMSOutcome:
    """Train the row's target (``s['seeds']`` seeds) and decompose it with the settings ``s``
    (keys of :data:`PAPER_TMS` ``[row]``)."""
    t0 = time.perf_counter()
    r = TMS_ROWS[row]
    n, m = r["n"], r["m"]
    if s.get("target", "paper") == "paper":
        tms = paper_tms_target(n, m, seeds=s["seeds"], steps=s["target_steps"], seed=seed, device=device)
    else:  # the first spd.tms_components target: Adam at 1e-2, best of 2 seeds
        tms = train_tms(TMSConfig(n, m, n_instances=s["seeds"]), 0.05, best_of=2, seed=seed, device=device,
                        train=TrainConfig(steps=s["target_steps"], batch_size=1024, lr=1e-2, quiet=True)).model
    target = TiedTarget(tms, identity=r["identity"])
    cfg, tr = tms_spd_configs(s, seed=seed)
    data = SparseFeatures(n, 0.05, seed=derive_seed(seed, "published-spd-data"), device=device)
    run = train_spd(target, data, cfg, tr)
    mm, ml = mmcs_ml2r(run.model, tms.W_IMN, "W")
    mt, _ = mmcs_ml2r(run.model, tms.W_IMN, "W_T")
    probes = (PROBE_VALUE * torch.eye(n, device=tms.W_IMN.device))[None]
    return TMSOutcome(mm, ml, mt, live_counts(run.model, probes), time.perf_counter() - t0, dict(s), run.model, tms)


# ====================================================================== compressed computation
def paper_resid_target(*, seeds: int, steps: int, batch_size: int = 2048, seed: int = 0, device: Any = "cpu"
                       ) -> ResidualMLP:
    """The paper's one-layer residual MLP (100 features, residual width 1000, 50 neurons,
    y = x + ReLU(x)), ``seeds`` on the instance axis: features Uniform[−1, 1] with probability
    0.01, AdamW (weight decay 0.01) at 3e-3 with cosine decay, batch 2048. The MLP has no
    biases (the reference's ``in_bias=False``): b_in is held at 0."""
    model = ResidualMLP(ResidualMLPConfig(100, 1000, 50, n_instances=seeds, embed_seed=seed), seed=seed, device=device)
    model.b_in_IM.requires_grad_(False)  # no biases, as the paper's model; Adam skips a grad-less tensor
    data = SparseFeatures(100, 0.01, seeds, magnitude="signed", seed=derive_seed(seed, "published-resid-data"),
                          device=device)
    train(model, data, TrainConfig(steps=steps, batch_size=batch_size, lr=3e-3, optimizer="adamw", weight_decay=0.01,
                                   schedule="cosine", final_lr_fraction=0.0, quiet=True, eval_samples=2048))
    return model


@dataclass
class ResidOutcome:
    """``published.spd_resid_mlp1`` as run, per seed."""

    owned: np.ndarray
    """Fraction of features owned by a W_in subcomponent (important on its probe, no other's)."""
    w_out_live: np.ndarray
    w_in_live: np.ndarray
    corr: np.ndarray
    """Correlation of the target's and the owning subcomponents' neuron contributions."""
    seconds: float


@torch.no_grad()
def resid_mlp_summary(spd: SPDModel, model: ResidualMLP) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(owned fraction, live W_in, live W_out, neuron-contribution correlation), each (I,).

    Probes: x = 0.75 e_i. Feature i is *owned* when some W_in subcomponent has causal importance
    >= 0.5 on e_i's probe and < 0.5 on every other one. Neuron contributions of feature i:
    c_k = ReLU(W_in r_i)_k · (W_out[:, k] · r_i) with r_i = 0.75 W_E[i] (neuron k's activation
    times what it writes onto feature i's read-off), for the target, and with W_in replaced by the
    best-owning subcomponent U_c V_cᵀ (the most important owner on e_i; a feature without an owner
    takes its most important subcomponent). The correlation is Pearson's over all (i, k)."""
    n = model.n_features
    probes = (PROBE_VALUE * torch.eye(n, device=model.W_E_IND.device))[None].expand(spd.n_instances, n, n)
    g = causal_importance(spd, probes.contiguous())
    gin = g["W_in"]  # (I, probes, C)
    on = gin >= CI_ON
    sole = on & (on.sum(1, keepdim=True) == 1)  # fires on exactly this probe
    owned = sole.any(-1)  # (I, N)
    score = torch.where(sole, gin, gin - 2.0)  # prefer a sole owner, else the most important
    best = score.argmax(-1)  # (I, N)
    r = probes.contiguous() @ model.W_E_IND  # (I, N, D)
    W_in, W_out = model.W_in_IMD, model.W_out_IDM  # (I, M, D), (I, D, M)
    act_t = torch.relu(r @ W_in.transpose(1, 2) + model.b_in_IM[:, None])  # (I, N, M)
    U, V = spd.U["W_in"], spd.V["W_in"]  # (I, C, M), (I, C, D)
    Ub = torch.gather(U, 1, best[..., None].expand(-1, -1, U.shape[-1]))  # (I, N, M)
    Vb = torch.gather(V, 1, best[..., None].expand(-1, -1, V.shape[-1]))  # (I, N, D)
    act_s = torch.relu((r * Vb).sum(-1, keepdim=True) * Ub + model.b_in_IM[:, None])
    write = r @ W_out  # (I, N, M): W_out[:, k] · r_i
    ct, cs = (act_t * write).flatten(1), (act_s * write).flatten(1)
    ct, cs = ct - ct.mean(1, keepdim=True), cs - cs.mean(1, keepdim=True)
    corr = (ct * cs).sum(1) / (ct.norm(dim=1) * cs.norm(dim=1)).clamp_min(1e-12)
    live = {k: (v.amax(1) > CI_ALIVE).sum(-1) for k, v in g.items()}
    return (owned.float().mean(-1).cpu().numpy(), live["W_in"].cpu().numpy(), live["W_out"].cpu().numpy(),
            corr.cpu().numpy())


def run_resid_mlp1(s: dict[str, Any], *, seed: int = 0, device: Any = "cpu") -> ResidOutcome:
    """Train the residual MLP(s) and decompose W_in and W_out with the settings ``s``."""
    t0 = time.perf_counter()
    model = paper_resid_target(seeds=s["seeds"], steps=s["target_steps"], batch_size=s["target_batch_size"],
                               seed=seed, device=device)
    cfg = SPDConfig(n_components=s["C"], importance=s["importance"], p=s["p"], gate_hidden=16, seed=seed,
                    faithfulness_warmup_steps=s.get("warmup_steps", 200))
    tr = TrainConfig(steps=s["steps"], batch_size=s["batch_size"], lr=s["lr"], schedule="constant", quiet=True,
                     eval_samples=1024)
    data = SparseFeatures(100, 0.01, magnitude="signed", seed=derive_seed(seed, "published-resid-spd"), device=device)
    run = train_spd(model, data, cfg, tr)
    owned, lin, lout, corr = resid_mlp_summary(run.model, model)
    return ResidOutcome(owned, lout, lin, corr, time.perf_counter() - t0)


# ====================================================================== settings per budget
PAPER_TMS: dict[str, dict[str, Any]] = {
    row: {"seeds": 3, "target_steps": 10_000, "C": 20 if TMS_ROWS[row]["n"] == 5 else 200,
          "importance": 3e-3 if TMS_ROWS[row]["n"] == 5 else 1e-4, "p": 1.0 if TMS_ROWS[row]["n"] == 5 else 2.0,
          "steps": 40_000, "batch_size": 4096, "lr": 1e-3, "warmup_steps": 200}
    for row in TMS_ROWS
}
"""The paper's TMS settings exactly (Appendix: SPD 40k steps, batch 4096, Adam at peak 1e-3 with a
cosine schedule, faithfulness/recon/layerwise coefficients 1, 16 GELU units per gate; C, the
leaky hard sigmoid and the 200-step faithfulness warm-up at 0.01 from the reference configs;
targets: AdamW 0.01, 5e-3 constant, 10k steps, batch 1024 or 8192). Three seeds."""
PAPER_RESID: dict[str, Any] = {"seeds": 1, "target_steps": 10_000, "target_batch_size": 2048, "C": 100,
                               "importance": 1e-5, "p": 2.0, "steps": 30_000, "batch_size": 2048, "lr": 2e-3,
                               "warmup_steps": 200}
"""The paper's resid_mlp1 settings (Adam at a constant 2e-3, batch 2048, C = 100, importance
minimality 1e-5 with p = 2, 30k steps; target AdamW 0.01, 3e-3 cosine, batch 2048)."""


def _settings(ctx: Context, row: str) -> dict[str, Any]:
    """The settings of ``row`` (a :data:`TMS_ROWS` key or ``resid_mlp1``) at ctx's budget: the
    paper's exactly at ``paper``, else cheaper ones (:meth:`Context.pick`)."""
    paper = PAPER_RESID if row == "resid_mlp1" else PAPER_TMS[row]
    if getattr(ctx, "budget", "") == "paper":
        return dict(paper)
    if row == "resid_mlp1":
        return {**paper, **ctx.pick(
            {"seeds": 1, "target_steps": 30, "target_batch_size": 256, "steps": 8, "batch_size": 64},
            {"seeds": 2, "target_steps": 10_000, "target_batch_size": 2048, "steps": 6000, "batch_size": 512,
             "lr": 1e-2},
            {"seeds": 2, "target_steps": 10_000, "target_batch_size": 2048, "steps": 10_000, "batch_size": 2048})}
    small = TMS_ROWS[row]["n"] == 5
    return {**paper, **ctx.pick(
        {"seeds": 1, "target_steps": 50, "steps": 10, "batch_size": 64, "warmup_steps": 5},
        {"seeds": 3 if row == "5_2" else 2, "target_steps": 10_000, "steps": 3000, "batch_size": 1024, "lr": 1e-2}
        if small else {"seeds": 2, "target_steps": 3000, "steps": 12_000, "batch_size": 256, "lr": 5e-3},
        {"seeds": 3, "target_steps": 10_000, "steps": 20_000, "batch_size": 4096})}


def _tms_claim(row: str, ctx: Context) -> Result:
    s = _settings(ctx, row)
    o = run_tms_row(row, s, seed=ctx.seed, device=ctx.device)
    p_mmcs, p_ml2r = TMS_ROWS[row]["paper"]
    mmcs, ml2r = float(o.mmcs.mean()), float(o.ml2r.mean())
    ok = mmcs >= MMCS_MIN and abs(ml2r - p_ml2r) <= ML2R_TOL
    per_seed = [(m >= MMCS_MIN and abs(l - p_ml2r) <= ML2R_TOL) for m, l in zip(o.mmcs, o.ml2r)]
    n = TMS_ROWS[row]["n"]
    detail = (f"{len(o.mmcs)} seeds (instance axis): MMCS per seed {np.round(o.mmcs, 3).tolist()}, ML2R "
              f"{np.round(o.ml2r, 3).tolist()}; live subcomponents "
              f"(g > {CI_ALIVE} on some x = {PROBE_VALUE} e_i, {n} features) "
              + ", ".join(f"{k} {v.tolist()}" for k, v in o.live.items())
              + f". SPD C = {s['C']}, {s['steps']} steps x batch {s['batch_size']} (paper 40 000 x 4096), Adam "
              f"{s['lr']:g} cosine, importance {s['importance']:g} p = {s['p']:g}, faithfulness warm-up "
              f"{s['warmup_steps']} steps; target AdamW 0.01, 5e-3, {s['target_steps']} steps. {o.seconds:.0f} s.")
    if not ok:
        w_live = o.live["W"]
        bad = [k for k, v in enumerate(per_seed) if not v]
        merged = [k for k in bad if w_live[k] < n]
        unconv = [k for k in bad if w_live[k] > n]
        why = []
        if merged:
            why.append(f"seed(s) {merged} kept fewer live W subcomponents than features: a feature carried by "
                       "subcomponents that also serve its neighbours (rank-1 pieces mixing two features), a local "
                       "minimum of the SPD loss" + (
                           " that twice the steps, four times the batch, lr 3e-3, C = 10, importance 1e-3, the old "
                           "gate initialisation and the reference's delta-component path all kept on the 5-2 seed "
                           "that merged" if n == 5 else ""))
        if unconv:
            why.append(f"seed(s) {unconv} had more live W subcomponents than features (not converged)")
        rest = [k for k in bad if k not in merged and k not in unconv]
        for k in rest:
            off = ([f"MMCS {o.mmcs[k]:.3f} < {MMCS_MIN}: some feature's best subcomponent points off its column"]
                   if o.mmcs[k] < MMCS_MIN else []) + \
                  ([f"ML2R {o.ml2r[k]:.3f}: some feature's best-cosine subcomponent far from its norm, the same "
                    "sharing, partly"] if abs(o.ml2r[k] - p_ml2r) > ML2R_TOL else [])
            why.append(f"seed {k} had one live W subcomponent per feature but " + "; ".join(off))
        cfg_name = "tms_" + row.replace("_id", "-id").replace("_", "-", 1)
        detail += (" Differs at this budget: " + "; ".join(why) + f". Code path followed: the reference's "
                   f"{cfg_name} config (leaky-hard sigmoid, C = {PAPER_TMS[row]['C']}, faithfulness warm-up 200 "
                   f"steps at 0.01, weight decay 0.1, importance {PAPER_TMS[row]['importance']:g} p = "
                   f"{PAPER_TMS[row]['p']:g}, stochastic and layerwise reconstruction 1, Adam cosine)"
                   + ("" if s["steps"] < PAPER_TMS[row]["steps"] else "; at the paper's budget") + ".")
    return Result("reproduces" if ok else "differs", {"mmcs": p_mmcs, "ml2r": p_ml2r},
                  {"mmcs": round(mmcs, 4), "ml2r": round(ml2r, 4)},
                  {"mmcs": f">= {MMCS_MIN}", "ml2r": f"paper ± {ML2R_TOL}"}, detail,
                  budget_stable=all(v == ok for v in per_seed) if len(per_seed) > 1 else None)


_SOURCE = ("Bushnaq, Braun & Sharkey 2025, Stochastic Parameter Decomposition, Table 1 and Appendix "
           "(reference implementation goodfire-ai/spd, spd/experiments/tms/*.yaml)")


def _tms_statement(label: str) -> str:
    return (f"Stochastic parameter decomposition of the {label} toy model of superposition recovers the "
            "columns of W: the mean over features of the best cosine between a subcomponent's column and W's "
            "column is 1.000, and the mean norm ratio of the best-matching columns is the paper's (Table 1).")


@claim("published.spd_tms_5_2", status="published", statement=_tms_statement("5 → 2"), source=_SOURCE,
       searches=True)
def check_spd_tms_5_2(ctx: Context) -> Result:
    return _tms_claim("5_2", ctx)


@claim("published.spd_tms_40_10", status="published", statement=_tms_statement("40 → 10"), source=_SOURCE,
       searches=True)
def check_spd_tms_40_10(ctx: Context) -> Result:
    return _tms_claim("40_10", ctx)


@claim("published.spd_tms_5_2_id", status="published",
       statement=_tms_statement("5 → 2 with an identity matrix after the hidden layer (+ID)"), source=_SOURCE,
       searches=True)
def check_spd_tms_5_2_id(ctx: Context) -> Result:
    return _tms_claim("5_2_id", ctx)


@claim("published.spd_tms_40_10_id", status="published",
       statement=_tms_statement("40 → 10 with an identity matrix after the hidden layer (+ID)"), source=_SOURCE,
       searches=True)
def check_spd_tms_40_10_id(ctx: Context) -> Result:
    return _tms_claim("40_10_id", ctx)


@claim(
    "published.spd_resid_mlp1",
    status="published",
    statement="""On the one-layer residual MLP that computes 100 ReLUs with 50 neurons (compressed
    computation), SPD splits W_in into one subcomponent per feature (causally important on that
    feature's one-hot input and no other's), whose neuron contributions match the target's, and finds
    W_out as one block of about 50 live subcomponents.""",
    source="Bushnaq, Braun & Sharkey 2025, Stochastic Parameter Decomposition, section 4.2, Figures 6-7 "
           "(reference config spd/experiments/resid_mlp/resid_mlp1_config.yaml)",
    searches=True,
)
def check_spd_resid_mlp1(ctx: Context) -> Result:
    s = _settings(ctx, "resid_mlp1")
    o = run_resid_mlp1(s, seed=ctx.seed, device=ctx.device)
    owned, live, corr = float(o.owned.mean()), float(o.w_out_live.mean()), float(o.corr.mean())

    def reproduces(owned: float, live: float, corr: float) -> bool:
        return bool(owned >= 0.95 and 40 <= live <= 60 and corr >= 0.9)

    ok = reproduces(owned, live, corr)
    per_seed = [reproduces(a, b, c) for a, b, c in zip(o.owned, o.w_out_live, o.corr)]
    detail = (f"{len(o.owned)} seed(s): owned {np.round(o.owned, 3).tolist()}, live W_in {o.w_in_live.tolist()}, "
              f"live W_out {o.w_out_live.tolist()}, neuron-contribution correlation {np.round(o.corr, 3).tolist()}. "
              f"SPD C = {s['C']}, {s['steps']} steps x batch {s['batch_size']} (paper 30 000 x 2048), Adam "
              f"{s['lr']:g} constant, importance {s['importance']:g} p = {s['p']:g}; target {s['target_steps']} steps "
              f"(AdamW 0.01, 3e-3 cosine, batch {s['target_batch_size']}, no MLP bias). {o.seconds:.0f} s.")
    return Result("reproduces" if ok else "differs",
                  {"w_in_features_owned": ">= 0.95", "w_out_live": "about 50 (40-60)", "neuron_contribution_corr": ">= 0.9"},
                  {"w_in_features_owned": round(owned, 4), "w_out_live": live, "neuron_contribution_corr": round(corr, 4)},
                  {"w_in_features_owned": 0.95, "w_out_live": [40, 60], "neuron_contribution_corr": 0.9}, detail,
                  budget_stable=all(v == ok for v in per_seed) if len(per_seed) > 1 else None)
