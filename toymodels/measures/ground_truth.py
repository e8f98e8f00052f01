"""Ground-truth scores of an SAE's *firing* against the true features (pure functions).

Inputs: codes (I, B, F) of the SAE and the true coefficients (I or 1, B, N) of the same
batch (:meth:`toymodels.hierarchy.HierarchicalFeatures.sample_with_truth`); a latent
*fires* where its code is nonzero, a feature is *active* where its coefficient is.

- :func:`firing_scores`: for every (latent j, feature n) pair, with tp_jn = #{b: j fires and
  n active}, precision = tp / #fires(j), recall = tp / #active(n) and
  F1 = 2 tp / (#fires(j) + #active(n)) (the harmonic mean of the two, defined whenever
  either count is positive) — the per-latent scores of SAELens's synthetic evaluation
  (``sae_lens.synthetic``), each latent matched to the feature of its best F1.
- :func:`uniqueness`: distinct features among the matches of the alive latents ÷ alive latents
  (1: no two latents track the same feature).
- :func:`absorption`: feature absorption on a hierarchy (Chanin et al. 2024, "A is for
  Absorption"): for a parent p, its latent ℓ_p (the latent of best F1 with p) should fire
  whenever p is active; the absorption rate is the fraction of samples with p and one of its
  children active in which ℓ_p is silent — the child's latent has absorbed the parent
  direction. ``baseline`` is the same fraction over samples with p active and no child (a
  latent that misses p anyway is not absorbing); ``excess`` = rate − baseline.
- :func:`splitting`: a feature is split when two or more latents track it, i.e. have it as
  their best-F1 match with precision >= ``precision`` (each fires mostly when it is active).

Undefined values are NaN (a latent that never fired has no precision), never a silent 0.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch


def _as_float(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.float64)


def _check(codes: torch.Tensor, truth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if codes.ndim == 2:
        codes = codes[None]
    if truth.ndim == 2:
        truth = truth[None]
    if codes.ndim != 3 or truth.ndim != 3:
        raise ValueError(f"codes must be (I, B, F) and truth (I or 1, B, N); got {tuple(codes.shape)} and {tuple(truth.shape)}")
    if truth.shape[1] != codes.shape[1] or truth.shape[0] not in (1, codes.shape[0]):
        raise ValueError(f"codes {tuple(codes.shape)} and truth {tuple(truth.shape)} must share the batch (and instances)")
    if codes.shape[1] == 0:
        raise ValueError("empty batch: give at least one sample")
    return codes != 0, (truth != 0).expand(codes.shape[0], -1, -1)


def firing_scores(codes: torch.Tensor, truth: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per (latent, feature) pair (I, F, N): ``tp``, ``precision``, ``recall``, ``f1``; per
    latent (I, F): ``match`` (the feature of best F1), ``latent_precision``,
    ``latent_recall``, ``latent_f1`` at that match and ``fires`` (count); per feature (I, N):
    ``active`` (count) and ``feature_f1`` (the best F1 any latent reaches)."""
    fire, act = _check(codes, truth)
    fire_f, act_f = _as_float(fire), _as_float(act)
    tp = torch.bmm(fire_f.transpose(1, 2), act_f)  # (I, F, N)
    n_fire = fire_f.sum(1)  # (I, F)
    n_act = act_f.sum(1)  # (I, N)
    nan = torch.tensor(float("nan"), dtype=torch.float64, device=tp.device)
    precision = torch.where(n_fire[..., None] > 0, tp / n_fire[..., None].clamp_min(1), nan)
    recall = torch.where(n_act[:, None, :] > 0, tp / n_act[:, None, :].clamp_min(1), nan)
    denom = n_fire[..., None] + n_act[:, None, :]
    f1 = torch.where(denom > 0, 2 * tp / denom.clamp_min(1), nan)
    best = torch.nan_to_num(f1, nan=-1.0)
    match = best.argmax(-1)  # (I, F)
    pick = lambda t: t.gather(-1, match[..., None])[..., 0]  # noqa: E731
    return {
        "tp": tp, "precision": precision, "recall": recall, "f1": f1,
        "match": match, "latent_precision": pick(precision), "latent_recall": pick(recall), "latent_f1": pick(f1),
        "fires": n_fire, "active": n_act,
        "feature_f1": torch.nan_to_num(f1, nan=-1.0).amax(1).where(n_act > 0, nan),
    }


def uniqueness(match: torch.Tensor, alive: torch.Tensor | None = None) -> torch.Tensor:
    """(distinct features among the matches of alive latents) / (alive latents), per
    instance (I,); NaN for an instance without an alive latent. ``match`` (I, F) long,
    ``alive`` (I, F) bool (default: all)."""
    if match.ndim == 1:
        match = match[None]
    alive = torch.ones_like(match, dtype=torch.bool) if alive is None else alive.reshape(match.shape).to(torch.bool)
    out = []
    for m, a in zip(match, alive):
        n = int(a.sum())
        out.append(float("nan") if n == 0 else len(set(m[a].tolist())) / n)
    return torch.tensor(out, dtype=torch.float64)


def absorption(
    codes: torch.Tensor,
    truth: torch.Tensor,
    hierarchy: Sequence[Any],
    *,
    parent_latent: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Absorption on a hierarchy [(parent, [children...], mutually_exclusive), ...] (see the
    module docstring). Returns per parent (I, P): ``rate``, ``baseline``, ``excess``,
    ``latent`` (ℓ_p: the given ``parent_latent`` (I, P) or the latent of best F1 with p) and
    ``n`` (samples with p and a child active); per instance (I,): ``mean_rate``,
    ``mean_excess`` (means over the parents with such samples)."""
    fire, act = _check(codes, truth)
    parents = [int(p) for p, _, _ in hierarchy]
    if parent_latent is None:
        f1 = torch.nan_to_num(firing_scores(codes, truth)["f1"], nan=-1.0)  # (I, F, N)
        parent_latent = f1[:, :, parents].argmax(1)  # (I, P)
    parent_latent = parent_latent.reshape(fire.shape[0], len(parents))
    n_i = fire.shape[0]
    rate = torch.full((n_i, len(parents)), float("nan"), dtype=torch.float64)
    base = rate.clone()
    count = torch.zeros(n_i, len(parents), dtype=torch.long)
    for j, (p, children, _) in enumerate(hierarchy):
        lat = fire[torch.arange(n_i), :, parent_latent[:, j]]  # (I, B): ℓ_p fires
        with_child = act[:, :, p] & act[:, :, list(children)].any(-1)
        alone = act[:, :, p] & ~act[:, :, list(children)].any(-1)
        for i in range(n_i):
            n = int(with_child[i].sum())
            count[i, j] = n
            if n:
                rate[i, j] = float((~lat[i] & with_child[i]).sum()) / n
            m = int(alone[i].sum())
            if m:
                base[i, j] = float((~lat[i] & alone[i]).sum()) / m
    excess = rate - base
    return {"rate": rate, "baseline": base, "excess": excess, "latent": parent_latent, "n": count,
            "mean_rate": torch.nanmean(rate, dim=1), "mean_excess": torch.nanmean(excess, dim=1)}


def splitting(codes: torch.Tensor, truth: torch.Tensor, *, precision: float = 0.5) -> dict[str, torch.Tensor]:
    """Per feature (I, N): ``trackers`` (latents whose best-F1 match is the feature with
    precision >= ``precision``) and ``split`` (trackers >= 2); per instance (I,): ``rate``,
    the split fraction among the features that were active in the batch."""
    s = firing_scores(codes, truth)
    n_i, n_f = s["match"].shape
    n_n = s["active"].shape[1]
    tracking = torch.nan_to_num(s["latent_precision"], nan=0.0) >= precision  # (I, F)
    trackers = torch.zeros(n_i, n_n, dtype=torch.long)
    trackers.scatter_add_(1, s["match"].cpu(), tracking.cpu().long())
    split = trackers >= 2
    seen = s["active"].cpu() > 0
    rate = (split & seen).sum(1).double() / seen.sum(1).clamp_min(1).double()
    rate = torch.where(seen.any(1), rate, torch.full_like(rate, float("nan")))
    return {"trackers": trackers, "split": split, "rate": rate}


__all__ = ["absorption", "firing_scores", "splitting", "uniqueness"]
