"""Sparse linear connections between two dictionaries (topic ``connections``; seed 000).

Seed 000 asks what W maps between in "Finding Sparse Linear Connections between Features in
LLMs": from layer-1 SAE latents (F1) to layer-2 SAE latents (F2), so W is F2 × F1 and an L1
penalty on it asks for a sparse connection graph between features (on a d_model × d_model
map the penalty would have no feature meaning). Here the truth is known: a two-layer toy
model whose layer-2 features are sparse non-negative combinations of layer-1 features
(:class:`toymodels.connections.TwoLayerToy`); an SAE is trained on each layer, the latents are
matched to the true features (Hungarian algorithm on decoder/feature cosines), W is fitted
with an L1 penalty (FISTA) and its support compared with the true graph.

:func:`recover_connections` runs the whole pipeline (the claim and figure 20 both call it).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from toymodels.research.connections import (
    ConnectionsConfig, build_two_layer, connections_in_feature_basis, fit_sparse_map, layer_source,
    match_latents, matched_cosines, paired_latents, score_graph,
)
from toymodels.device import derive_seed

from .registry import Context, Result, claim, holds_if

MAP_L1 = 1e-3
"""λ of the L1 penalty on W (latent codes are O(1))."""
EDGE_THRESHOLD = 0.1
"""An entry |W_jk| > 0.1 counts as a recovered edge (true weights are in [0.5, 1])."""
SAE_L1 = 0.03
TARGET = 0.9


def recover_connections(ctx: Context, *, n_instances: int | None = None, steps: int | None = None,
                        config: ConnectionsConfig | None = None, map_l1: float = MAP_L1) -> dict[str, Any]:
    """Build the two-layer toy (``n_instances`` random graphs), train a ReLU SAE on each layer
    (dictionary size = number of features, dead latents resampled), match latents to features,
    fit W with the L1 penalty and score its support. Returns the scores, the matched cosines,
    the true graph C (I, N2, N1) and the recovered W in the feature basis (I, N2, N1)."""
    from toymodels.sae import SAEConfig, build_sae
    from toymodels.train import TrainConfig, train

    n_i = n_instances if n_instances is not None else ctx.pick(2, 4, 8)
    steps = steps if steps is not None else ctx.pick(600, 1000, 2000)
    cfg = config if config is not None else ConnectionsConfig(n_instances=n_i)
    if cfg.n_instances != n_i:
        cfg = ConnectionsConfig(**{**cfg.__dict__, "n_instances": n_i})
    model = build_two_layer(cfg, seed=ctx.seed, device=ctx.device)
    saes, cos = [], []
    for layer, (d, n, E) in enumerate([(cfg.d_model_1, cfg.n_features_1, model.E1),
                                        (cfg.d_model_2, cfg.n_features_2, model.E2)], 1):
        sae = build_sae(SAEConfig(d_model=d, dict_size=n, n_instances=n_i, l1_coefficient=SAE_L1, resample_every=250),
                        seed=derive_seed(ctx.seed, "connections-sae", layer) % 2**32, device=ctx.device)
        train(sae, layer_source(model, layer, seed=derive_seed(ctx.seed, "connections-data", layer) % 2**32),
              TrainConfig(steps=steps, batch_size=512, lr=1e-2, quiet=True, eval_samples=1024))
        saes.append(sae)
    m1, m2 = match_latents(saes[0], model.E1), match_latents(saes[1], model.E2)
    cos = [matched_cosines(saes[0], model.E1, m1), matched_cosines(saes[1], model.E2, m2)]
    z1, z2 = paired_latents(model, *saes, n_samples=ctx.pick(4096, 16384, 65536),
                            seed=derive_seed(ctx.seed, "connections-fit") % 2**32)
    W, _ = fit_sparse_map(z1, z2, l1=map_l1)
    W_feat = connections_in_feature_basis(W, m1, m2)
    truth = model.C.detach().cpu()
    s = score_graph(W_feat, truth, threshold=EDGE_THRESHOLD)
    return {"scores": s, "cos_1": cos[0], "cos_2": cos[1], "C": truth, "W": W_feat, "W_latents": W.cpu(),
            "z1": z1, "z2": z2, "match_1": m1, "match_2": m2, "n_instances": n_i, "steps": steps, "config": cfg}


EASY = ConnectionsConfig()
"""The easy regime of ``connections.sparse_map``: N1 = 12 layer-1 features in D1 = 16 dims and
N2 = 8 layer-2 features in D2 = 12 (orthonormal directions: no superposition), disjoint parent
sets of 1-2 features."""
SHARED_PARENTS = ConnectionsConfig(shared_parents=True)
"""As :data:`EASY` but parents drawn independently, so one layer-1 feature may feed several
layer-2 features (``connections.sparse_map_shared_parents``)."""
SUPERPOSED = ConnectionsConfig(d_model_1=8)
"""As :data:`EASY` but the 12 layer-1 features share D1 = 8 dims (random unit directions: in
superposition), so layer 2 reads E1ᵀ h1 with interference (``connections.sparse_map_superposed``)."""


def _regime(cfg: ConnectionsConfig) -> str:
    """The regime in words, from the config (so the detail cannot drift from what ran)."""
    d1 = ("orthonormal" if cfg.d_model_1 >= cfg.n_features_1
          else f"superposed: {cfg.n_features_1} features in {cfg.d_model_1} dims")
    d2 = ("orthonormal" if cfg.d_model_2 >= cfg.n_features_2
          else f"superposed: {cfg.n_features_2} features in {cfg.d_model_2} dims")
    parents = "shared (drawn independently)" if cfg.shared_parents else "disjoint"
    return (f"N1 = {cfg.n_features_1} -> N2 = {cfg.n_features_2} features, D1 = {cfg.d_model_1} ({d1}), "
            f"D2 = {cfg.d_model_2} ({d2}), 1-{cfg.max_parents} parents per layer-2 feature, {parents} parent sets, "
            f"p = {cfg.feature_probability}")


def graph_result(ctx: Context, cfg: ConnectionsConfig, note: str = "") -> Result:
    """The verdict of one regime: :func:`recover_connections` on ``cfg``; holds when the pooled
    precision and recall are both >= :data:`TARGET`."""
    r = recover_connections(ctx, config=cfg)
    s = r["scores"]
    ok = s["pooled_precision"] >= TARGET and s["pooled_recall"] >= TARGET
    return Result(
        verdict=holds_if(ok),
        predicted={"precision": f">= {TARGET}", "recall": f">= {TARGET}"},
        observed={"precision": round(s["pooled_precision"], 4), "recall": round(s["pooled_recall"], 4),
                  "precision_per_instance": [round(v, 3) for v in s["precision"]],
                  "recall_per_instance": [round(v, 3) for v in s["recall"]],
                  "true_edges": s["true_edges"], "found_edges": s["found_edges"],
                  "min_matched_cosine_layer_1": round(float(r["cos_1"].min()), 4),
                  "min_matched_cosine_layer_2": round(float(r["cos_2"].min()), 4)},
        tolerance={"precision": 1 - TARGET, "recall": 1 - TARGET},
        detail=(f"{r['n_instances']} random graphs ({_regime(r['config'])}), SAEs trained {r['steps']} steps "
                f"(dictionary = number of features, L1 {SAE_L1}, dead latents resampled), W fitted by FISTA with L1 "
                f"{MAP_L1}, edges |W| > {EDGE_THRESHOLD}; pooled over instances: precision "
                f"{s['pooled_precision']:.3f}, recall {s['pooled_recall']:.3f} (target >= {TARGET} each). " + note),
    )


@claim(
    "connections.sparse_map",
    status="empirical",
    statement="""W maps layer-1 SAE latent activations (F1) to layer-2 SAE latent activations (F2), so
    it is F2 × F1 and an L1 penalty on it asks for a sparse feature-to-feature graph (on a
    d_model × d_model map the penalty would mean nothing). In the easy regime — a two-layer toy
    model without superposition (12 layer-1 features in 16 orthonormal directions, 8 layer-2
    features in 12) whose layer-2 features are known sparse non-negative combinations of
    layer-1 features with disjoint parent sets of 1-2 features — with a ReLU SAE per layer and
    latents matched to features by the Hungarian algorithm on decoder cosines, the L1-fitted W
    (edges |W| > 0.1) recovers the true connection graph with precision and recall >= 0.9.
    The hard regimes are connections.sparse_map_shared_parents and
    connections.sparse_map_superposed.""",
    source="seed 000 (comment on Finding Sparse Linear Connections between Features in LLMs)",
    searches=True,
)
def check_sparse_map(ctx: Context) -> Result:
    return graph_result(ctx, EASY, "The easy regime only: shared parents and superposed layer-1 features are "
                                   "connections.sparse_map_shared_parents and connections.sparse_map_superposed.")


@claim(
    "connections.sparse_map_shared_parents",
    status="empirical",
    statement="""The pipeline of connections.sparse_map (ReLU SAE per layer, Hungarian matching on
    decoder cosines, L1-fitted F2 × F1 map, edges |W| > 0.1) on the same two-layer toy without
    superposition, but with shared parents: each layer-2 feature's 1-2 parents are drawn
    independently, so one layer-1 feature may feed several layer-2 features. Predicted as for
    the easy regime: precision and recall of the recovered graph >= 0.9.""",
    source="seed 000 (comment on Finding Sparse Linear Connections between Features in LLMs); the hard "
    "regime an independent audit measured (recall 0.80)",
    searches=True,
)
def check_sparse_map_shared_parents(ctx: Context) -> Result:
    return graph_result(ctx, SHARED_PARENTS, "With shared parents a layer-1 feature's children co-fire as a fixed "
                                             "packet whenever it fires, which a layer-2 SAE can learn instead of the "
                                             "children: then the graph is not identifiable from the SAEs.")


@claim(
    "connections.sparse_map_superposed",
    status="empirical",
    statement="""The pipeline of connections.sparse_map on the two-layer toy with disjoint parent sets
    but layer-1 features in superposition (12 features at random unit directions in 8 dims; layer
    2 reads E1ᵀ h1, which carries the interference of the other layer-1 features). Predicted as for
    the easy regime: precision and recall of the recovered graph >= 0.9.""",
    source="seed 000 (comment on Finding Sparse Linear Connections between Features in LLMs); the hard "
    "regime an independent audit measured (precision 0.40)",
    searches=True,
)
def check_sparse_map_superposed(ctx: Context) -> Result:
    return graph_result(ctx, SUPERPOSED, "In superposition layer 2 reads E1ᵀ h1 = E1ᵀE1 f1: every layer-1 feature "
                                         "leaks into the children of the others (through the ReLU), so the true "
                                         "map from layer-1 to layer-2 features is no longer C alone.")


def graph_summary(r: dict[str, Any]) -> dict[str, Any]:
    """JSON-friendly numbers of a :func:`recover_connections` result (for figures and reports)."""
    s = r["scores"]
    return {k: s[k] for k in ("pooled_precision", "pooled_recall", "true_edges", "found_edges")} | {
        "min_cos": [float(r["cos_1"].min()), float(r["cos_2"].min())],
        "max_abs_offgraph": float(np.abs((r["W"] * (r["C"] == 0)).numpy()).max()),
    }
