"""Known true directions: read them from a file, score an SAE against them, and recover them
for a finished run.

- :func:`read_truth`: a (G, D) array of known directions from ``.npy`` / ``.pt`` /
  ``.safetensors`` (tensor key ``truth``), validated (2-D, real numbers, finite, no zero row,
  width D) — what ``toymodels sae --data activations --truth PATH`` reads.
- :func:`latent_matches`: per latent, its best cosine with any true direction and its
  partner in the one-to-one (Hungarian) matching that :func:`toymodels.measures.metrics.mcc`
  scores; the cosine matrix ordered by that matching, for plots.
- :func:`run_truth`: the true directions of each instance of a finished SAE run, where they
  are known: synthetic features rebuilt from the seeds in config.json (``--data features``,
  sweeps of it), or the ``--truth`` file recorded in metrics.json. Every recovery is checked
  against the ``mmcs`` the run itself recorded, so directions that do not reproduce (another
  device's random stream, an edited file) are refused rather than shown.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..measures import metrics as M

TRUTH_EXTENSIONS = (".npy", ".pt", ".safetensors")
TRUTH_KEY = "truth"
"""The tensor key of a ``.safetensors`` or ``.pt`` (dict) truth file."""
MMCS_TOLERANCE = 1e-4
"""Recovered directions must reproduce the run's recorded mmcs to this (absolute)."""


# ---------------------------------------------------------------------- reading
def _load_2d(p: Path, key: str, flag: str) -> torch.Tensor:
    """The tensor in ``p`` (.npy, or key ``key`` of a .safetensors/.pt file), on the CPU;
    one ValueError line naming ``flag`` for anything unreadable."""
    ext = p.suffix.lower()
    if ext not in TRUTH_EXTENSIONS:
        raise ValueError(f"{flag} {p}: unknown extension {ext or '(none)'!r}; use one of {', '.join(TRUTH_EXTENSIONS)}")
    if not p.is_file():
        raise ValueError(f"{flag} {p}: no such file")
    try:
        if ext == ".npy":
            arr = np.load(p, allow_pickle=False)
            if arr.dtype.kind not in "fiub":
                raise ValueError(f"holds dtype {arr.dtype}, need real numbers")
            if arr.dtype.kind == "b":  # kept bool: directions refuse it, firing codes take it
                return torch.from_numpy(np.ascontiguousarray(arr))
            return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float64))
        if ext == ".safetensors":
            from safetensors.torch import load_file

            tensors = load_file(str(p))
            if key not in tensors:
                raise ValueError(f"has no tensor named {key!r} (it holds {sorted(tensors)[:8]})")
            return tensors[key]
        obj = torch.load(p, map_location="cpu", weights_only=True)
        if isinstance(obj, dict):
            if key not in obj:
                raise ValueError(f"holds a dict without key {key!r} (keys {sorted(map(str, obj))[:8]})")
            obj = obj[key]
        if not isinstance(obj, torch.Tensor):
            raise ValueError(f"holds a {type(obj).__name__}, need a tensor or a dict with key {key!r}")
        return obj
    except ValueError as e:
        raise ValueError(f"{flag} {p}: {' '.join(str(e).split())[:200]}") from None
    except Exception as e:  # noqa: BLE001 - a damaged file of any of the three formats
        raise ValueError(f"{flag} {p}: not a readable {ext} file ({' '.join(str(e).split())[:120]})") from None


def read_truth(path: str | Path, width: int | None = None, *, flag: str = "--truth",
               width_from: str = "the activations") -> torch.Tensor:
    """The (G, D) array of known directions in ``path`` as float32 rows on the CPU.

    Refused with one ValueError line naming ``flag``: an unknown extension, a missing or
    unreadable file, a missing ``truth`` key, an array that is not 2-D with at least one row,
    a non-numeric dtype, a NaN or infinity, an all-zero row (a direction needs a norm), or,
    with ``width``, a width D other than ``width`` (``width_from`` names what sets it)."""
    p = Path(path)
    t = _load_2d(p, TRUTH_KEY, flag)
    if t.dtype == torch.bool or t.is_complex():
        raise ValueError(f"{flag} {p}: holds dtype {t.dtype}, need real numbers")
    if t.ndim != 2 or t.shape[0] < 1 or t.shape[1] < 1:
        raise ValueError(f"{flag} {p}: must be a (G, D) array of G >= 1 directions, got shape {tuple(t.shape)}")
    if width is not None and t.shape[1] != width:
        raise ValueError(f"{flag} {p} has shape {tuple(t.shape)}, but {width_from} have width D = {width}: "
                         f"the directions must be (G, {width})")
    t64 = t.to(torch.float64)
    bad = ~torch.isfinite(t64).all(dim=1)
    if bool(bad.any()):
        raise ValueError(f"{flag} {p}: row {int(bad.nonzero()[0, 0])} holds a NaN or an infinity")
    zero = t64.norm(dim=1) == 0
    if bool(zero.any()):
        raise ValueError(f"{flag} {p}: row {int(zero.nonzero()[0, 0])} is all zeros (a direction needs a nonzero norm)")
    return t64.to(torch.float32).contiguous()


CODES_KEY = "codes"
"""The tensor key of the known firing in a .pt/.safetensors ``--truth-codes`` file."""


def read_codes(path: str | Path, rows: int, features: int, *, flag: str = "--truth-codes") -> torch.Tensor:
    """The (N, G) known firing in ``path`` as a bool tensor (nonzero = feature g is active in
    row n): one row per row of the activations file, one column per ``--truth`` direction.
    One ValueError line naming ``flag`` for a shape other than (``rows``, ``features``) or a
    NaN or infinity."""
    p = Path(path)
    t = _load_2d(p, CODES_KEY, flag)
    if t.is_complex() or t.ndim != 2:
        raise ValueError(f"{flag} {p}: must be a real (N, G) array, got {'complex' if t.is_complex() else tuple(t.shape)}")
    if tuple(t.shape) != (rows, features):
        raise ValueError(f"{flag} {p} has shape {tuple(t.shape)}; it must be ({rows}, {features}): one row per row "
                         f"of the activations, one column per --truth direction")
    if t.dtype != torch.bool and not bool(torch.isfinite(t.to(torch.float64)).all()):
        raise ValueError(f"{flag} {p}: holds a NaN or an infinity")
    return t != 0


def firing_against_codes(sae: Any, x: torch.Tensor, codes: torch.Tensor, batch: int = 4096) -> dict[str, list]:
    """Per latent (I, F), against the known firing ``codes`` (B, G) of the rows ``x`` (B, D):
    the best-F1 feature (``truth_latent_match``) and the precision, recall and F1 there
    (:func:`toymodels.measures.ground_truth.firing_scores`; NaN, written null, for a latent
    that never fired)."""
    from ..measures.ground_truth import firing_scores

    with torch.no_grad():
        fired = torch.cat([sae.encode(x[s:s + batch].to(sae.dtype)[None]) != 0 for s in range(0, len(x), batch)], 1)
    sc = firing_scores(fired, codes[None].to(fired.device))
    return {"truth_latent_match": sc["match"].tolist(), "truth_latent_precision": sc["latent_precision"].tolist(),
            "truth_latent_recall": sc["latent_recall"].tolist(), "truth_latent_f1": sc["latent_f1"].tolist()}


# ---------------------------------------------------------------------- scores
def latent_matches(decoder: torch.Tensor, truth: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per latent, against true directions.

    ``decoder`` (I, D, F) columns (:meth:`toymodels.sae.SAE.decoder_directions`), ``truth``
    (I or 1, G, D) rows. Returns ``cosine`` (I, F, G), the signed cosines
    (:func:`toymodels.measures.metrics.cosine_matrix`); ``best`` (I, F), each latent's largest
    cosine with any direction; ``match`` (I, F) long, its partner in the one-to-one matching
    maximising the summed cosine (the Hungarian matching behind ``mcc``), -1 for a latent
    left over when F > G."""
    from scipy.optimize import linear_sum_assignment

    if decoder.ndim != 3 or truth.ndim != 3 or truth.shape[-1] != decoder.shape[-2]:
        raise ValueError(f"decoder must be (I, D, F) and truth (I or 1, G, D) sharing D; got "
                         f"{tuple(decoder.shape)} and {tuple(truth.shape)}")
    cos = M.cosine_matrix(decoder, truth.transpose(-1, -2).to(decoder.device))  # (I, F, G)
    match = torch.full(cos.shape[:2], -1, dtype=torch.long)
    for i, c in enumerate(cos.double().cpu().numpy()):
        if np.isfinite(c).all():
            rows, cols = linear_sum_assignment(c, maximize=True)
            match[i, torch.as_tensor(rows)] = torch.as_tensor(cols)
    return {"cosine": cos, "best": cos.amax(dim=-1), "match": match}


def matched_order(match: torch.Tensor, best: torch.Tensor) -> list[int]:
    """Latent order for a cosine-matrix plot of one instance: the matched latents in the
    order of their true directions (so the matrix shows a diagonal), then the unmatched ones
    by decreasing best cosine. ``match`` (F,) and ``best`` (F,) of :func:`latent_matches`."""
    matched = sorted((int(g), j) for j, g in enumerate(match.tolist()) if g >= 0)
    rest = sorted((j for j, g in enumerate(match.tolist()) if g < 0), key=lambda j: -float(best[j]))
    return [j for _, j in matched] + rest


# ---------------------------------------------------------------------- a run's truth
@dataclass(frozen=True)
class KnownTruth:
    """The true directions of a run's instances (``rows[i]``: (G, D) of instance i) and where
    they come from; or ``rows`` None and ``reason`` saying why they are not known."""

    rows: list[torch.Tensor] | None
    reason: str


def run_truth(run: Any) -> KnownTruth:
    """The true directions of each instance of a finished SAE run (a :class:`~toymodels.
    workbench.run.Run`), checked against the mmcs recorded in its metrics.json."""
    if run.kind != "sae":
        return KnownTruth(None, f"a {run.kind} run has no latents to match")
    data = run.config.get("data", {})
    kind = data.get("kind") if isinstance(data, dict) else None
    metrics = run.metrics
    try:
        if isinstance(metrics.get("truth_file"), str):
            rows = [read_truth(metrics["truth_file"], flag="truth_file")] * run.n_instances
            where = f"--truth {metrics['truth_file']}"
        elif kind in ("features", "hierarchical-features"):
            rows = _feature_rows(data, run) * (run.n_instances if _n(data) == 1 else 1)
            where = "synthetic features rebuilt from config.json"
        elif kind == "point-streams":
            streams, order = data.get("streams", []), data.get("rows", [])
            per_stream = [_feature_rows(s, run)[0] if isinstance(s, dict) and s.get("kind") in
                          ("features", "hierarchical-features") else None for s in streams]
            rows = [per_stream[order[i]] for i in range(run.n_instances)]
            if any(r is None for r in rows):
                return KnownTruth(None, "the sweep's data has no known directions")
            where = "each point's synthetic features, rebuilt from config.json"
        elif kind == "activations":
            return KnownTruth(None, "--data activations without --truth: no known directions")
        elif kind == "tms":
            return KnownTruth(None, "--data tms: the toy model's weights are not stored in this run")
        else:
            return KnownTruth(None, f"--data {kind}: featureless data, no true directions")
    except ValueError as e:
        return KnownTruth(None, " ".join(str(e).split()))
    if len(rows) != run.n_instances:
        return KnownTruth(None, f"config.json's data has {len(rows)} instances, the run {run.n_instances}")
    recorded = metrics.get("mmcs")
    if not isinstance(recorded, list) or len(recorded) < run.n_instances:
        return KnownTruth(None, "metrics.json has no mmcs to check the rebuilt directions against")
    dec = run.model.decoder_directions()
    for i, r in enumerate(rows):
        mine = float(M.mmcs(dec[i : i + 1], r.to(dec.device, dec.dtype).T[None])[0])
        want = recorded[i]
        if not isinstance(want, (int, float)) or not abs(mine - float(want)) <= MMCS_TOLERANCE:
            return KnownTruth(None, f"rebuilt directions ({where}) do not reproduce metrics.json's mmcs of "
                                    f"instance {i} ({mine:.5f} vs {want}); not shown")
    return KnownTruth(rows, where)


def _n(spec: dict[str, Any]) -> int:
    return int(spec.get("n_instances", 1))


def _feature_rows(spec: dict[str, Any], run: Any) -> list[torch.Tensor]:
    """The directions (G, D) per data instance of a SparseFeatures spec: the standard basis
    without ``d_embed``, else the same random embedding, drawn by SparseFeatures itself from
    ``embed_seed`` on the run's device type (a CUDA run's stream cannot be redrawn on a CPU)."""
    from ..data.features import SparseFeatures

    n, d, s = int(spec["n_features"]), spec.get("d_embed"), _n(spec)
    if d is None:
        return [torch.eye(n)] * s
    device = str(run.metrics.get("device", "cpu"))
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"the synthetic directions were drawn on {device}, which this machine lacks")
    src = SparseFeatures(n, 0.5, s, d_embed=int(d), embed_seed=int(spec["embed_seed"]),
                         device=device if device.startswith("cuda") else "cpu")
    return [src.directions[i].cpu().float() for i in range(s)]


__all__ = ["KnownTruth", "MMCS_TOLERANCE", "TRUTH_EXTENSIONS", "TRUTH_KEY", "latent_matches", "matched_order",
           "read_truth", "run_truth"]
