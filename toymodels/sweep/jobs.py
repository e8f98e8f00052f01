"""Grid points, their packing into jobs, job ids, and running one job into a run folder.

A *point* is one grid point's full configuration — a JSON-ready dict that alone determines
its result (model, data, training settings, the per-instance values, the seed); its id is
a hash of that dict. Points that differ only in per-instance values (tms:
``feature_probability``, ``importance_decay``, ``seed``; sae: ``l1_coefficient``, ``seed``) share shapes and train as the instances of one batched job, up to a cap derived
from memory. A job's id is a hash of its points' ids, so a changed spec makes new jobs for
exactly the changed points; points already done are never packed again.

Packing never changes a result: each instance gets its point's own data stream
(:class:`~toymodels.sweep.streams.PointStreams`), its own initial weights (built as a
one-instance model from the point's seed and copied in), steps under Adam on a loss summed
over instances (the job padded so the fused Adam kernel treats every instance alike, see
:func:`padding`), and is evaluated on its own stream with a fixed batch size, one CPU thread.
So a point trained in any job equals the point trained alone, bit for bit on the CPU
(tests/test_sweep.py checks it).

Each job writes an ordinary run folder ``DIR/jobs/<id>/`` (config.json, model.safetensors,
history.json, metrics.json from :func:`toymodels.train.train`), plus ``points.json`` (the
points, in instance order) and, last and atomically, ``results.json`` (one row per point).
A job interrupted after a checkpoint (``checkpoint_every`` steps) resumes from it when the
sweep runs again, exactly as if it had not stopped.
"""
from __future__ import annotations

import hashlib
import json
import math
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch

PER_INSTANCE: dict[str, tuple[str, ...]] = {
    "tms": ("feature_probability", "importance_decay", "seed"),
    "sae": ("l1_coefficient", "seed"),
}
"""Config keys that may differ between the instances of one job, per command. Not ``k``: a
topk run with several k selects ``max(k)`` latents sorted (one k: unsorted), which sums an
instance's code in another order than alone (about 1e-7 apart), so each k is its own job."""

MAX_PACK = 4096
"""At most this many points per job (bounds a job's per-step overhead and its loss on a crash)."""

EVAL_BATCH = 8192
"""Batch of the final evaluation: fixed, so a point's loss does not depend on its job."""

ID_LENGTH = 16


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def point_id(config: dict[str, Any]) -> str:
    """sha256 of the point's canonical JSON config, first 16 hex digits."""
    return hashlib.sha256(_canonical(config).encode()).hexdigest()[:ID_LENGTH]


def pack_key(config: dict[str, Any]) -> str:
    """What points must share to be packed: everything but the command's per-instance keys."""
    per = PER_INSTANCE[config["command"]]
    return _canonical({k: v for k, v in config.items() if k not in per})


def job_id(point_ids: Sequence[str]) -> str:
    """sha256 of the sorted point ids, first 16 hex digits."""
    return hashlib.sha256("\n".join(sorted(point_ids)).encode()).hexdigest()[:ID_LENGTH]


@dataclass(frozen=True)
class Job:
    """Points (id, config) trained as the instances of one batched run."""

    id: str
    command: str
    points: tuple[tuple[str, dict[str, Any]], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "command": self.command, "points": [list(p) for p in self.points]}


def plan_jobs(points: Sequence[tuple[str, dict[str, Any]]], *, cap: int | Callable[[dict[str, Any]], int] = MAX_PACK,
              workers: int = 1) -> list[Job]:
    """Group points by :func:`pack_key` (in first-seen order), split each group into jobs of
    at most ``cap`` points (a number, or a function of the group's first config), and no
    bigger than an even share of the ``workers`` (so every worker has a job). Deterministic:
    the same points give the same jobs and ids."""
    groups: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for pid, cfg in points:
        groups.setdefault(pack_key(cfg), []).append((pid, cfg))
    n_groups = len(groups)
    jobs = []
    for members in groups.values():
        c = cap(members[0][1]) if callable(cap) else cap
        if c < 1:
            raise ValueError(f"cap must be at least 1, got {c}")
        share = math.ceil(len(members) * n_groups / max(1, workers)) if workers > 1 else len(members)
        size = max(1, min(c, share, len(members)))
        for s in range(0, len(members), size):
            part = tuple(members[s : s + size])
            jobs.append(Job(job_id([p for p, _ in part]), part[0][1]["command"], part))
    return jobs


# ---------------------------------------------------------------------- running one job
@contextmanager
def _one_thread(device: torch.device) -> Iterator[None]:
    """One intra-op thread on the CPU: reductions then never split an instance's sum
    differently with the number of instances (and workers do not oversubscribe cores)."""
    if device.type != "cpu":
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _train_config(cfg: dict[str, Any]) -> Any:
    from ..train.loop import TrainConfig

    t = dict(cfg["train"])
    t["betas"] = tuple(t.get("betas", (0.9, 0.999)))
    # Step-by-step sampling (a prefetch block's size would depend on the job's instances) and
    # no trainer evaluation (its batch depends on free memory): the job evaluates itself.
    t.update(prefetch_elements=0, eval_samples=1, quiet=True)
    return TrainConfig(**t)


def run_job(job: dict[str, Any], out: str | Path, device: str = "auto") -> list[dict[str, Any]]:
    """Train ``job`` (a :meth:`Job.to_dict`) into ``out/jobs/<id>/`` and return one result
    row per point: id, job, instance, status (done | failed), loss, converged, the command's metrics,
    error. A job that raises fails alone: its rows carry the error line, and its
    results.json records them (a failed point is tried again by the next run)."""
    from ..device import resolve_device
    from ..train.runs import write_json

    folder = Path(out) / "jobs" / job["id"]
    points = [(pid, cfg) for pid, cfg in job["points"]]
    dev = resolve_device(device)
    try:
        with _one_thread(dev):
            runner = {"tms": _run_tms, "sae": _run_sae}[job["command"]]
            folder.mkdir(parents=True, exist_ok=True)
            write_json(folder / "points.json", [{"id": pid, "config": cfg} for pid, cfg in points])
            rows = runner([cfg for _, cfg in points], folder, dev)
        results = [{"id": pid, "job": job["id"], "instance": i, "status": "done", **row, "error": ""}
                   for i, ((pid, _), row) in enumerate(zip(points, rows))]
    except Exception as e:  # noqa: BLE001 - a bad job fails alone, with its error in the table
        line = " ".join(f"{type(e).__name__}: {e}".split())[:500]
        results = [{"id": pid, "job": job["id"], "instance": i, "status": "failed", "error": line}
                   for i, (pid, _) in enumerate(points)]
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "error.txt").write_text(traceback.format_exc())
        except OSError:
            pass
    try:
        write_json(folder / "results.json", results)
    except OSError:
        pass
    return results


VECTOR_ALIGN = 64
"""Floats per parameter that a job's instances fill up to a multiple of (see :func:`padding`)."""


def padding(model: Any) -> int:
    """How many instances a job's instance count must be a multiple of, so that every
    parameter tensor holds a multiple of :data:`VECTOR_ALIGN` floats (``model`` has one
    instance).

    torch's fused CPU Adam steps the vector-width body of a tensor with SIMD arithmetic and
    the leftover tail with scalar code, which round differently: an element's update would
    depend on where its instance sits in the job. Padded, every element is stepped by the
    SIMD body (whose lanes are independent), so instance i updates as it would alone."""
    need = 1
    for prm in model.parameters():
        k = prm.numel() // max(1, int(model.n_instances))
        step = VECTOR_ALIGN // math.gcd(VECTOR_ALIGN, k)
        need = need * step // math.gcd(need, step)
    return need


def _pad(configs: list[dict[str, Any]], multiple: int) -> list[dict[str, Any]]:
    """``configs`` followed by copies of the first, up to a multiple of ``multiple`` (the
    copies train beside the others and are dropped from the results)."""
    n = len(configs)
    return configs + [configs[0]] * (-n % multiple)


def _fit(model: Any, source: Any, tcfg: Any, folder: Path, desc: str) -> Any:
    """Train into the job's folder: resume from its checkpoint when an interrupted run of
    this job left one (same job id: same points and settings; the trainer refuses anything
    else, and then the job starts over)."""
    from ..train.runs import RunFolderError
    from ..train.loop import train

    if any(folder.glob("checkpoint*.pt")):
        try:
            return train(model, source, tcfg, folder, resume=True, desc=desc)
        except RunFolderError:
            pass
    return train(model, source, tcfg, folder, overwrite=True, desc=desc)


def _seed_groups(configs: Sequence[dict[str, Any]], key: Any) -> dict[Any, list[int]]:
    groups: dict[Any, list[int]] = {}
    for i, c in enumerate(configs):
        groups.setdefault(key(c), []).append(i)
    return groups


def _streams(configs: Sequence[dict[str, Any]], key: Any, make: Any) -> Any:
    """A PointStreams with one stream per distinct ``key(config)`` (built by ``make``),
    buffered in blocks fixed by the (shared) batch size, width and steps."""
    from .streams import PointStreams, block_samples

    groups = _seed_groups(configs, key)
    order = list(groups)
    rows = [0] * len(configs)
    for j, k in enumerate(order):
        for i in groups[k]:
            rows[i] = j
    streams = [make(configs[groups[k][0]]) for k in order]
    t = configs[0]["train"]
    block = block_samples(int(t.get("batch_size", 1024)), int(streams[0].dim), int(t.get("steps", 5000)))
    return PointStreams(streams, rows, block)


def _run_tms(configs: list[dict[str, Any]], folder: Path, dev: torch.device) -> list[dict[str, Any]]:
    from ..data.features import SparseFeatures
    from ..device import derive_seed
    from ..measures.analysis import feature_dimensionality
    from ..experiments import tms_metrics
    from ..models import TMSConfig, build_model, importance_vector
    from ..train.runs import write_json
    from ..train.loop import evaluate

    c0 = configs[0]
    n_real = len(configs)
    base = TMSConfig(**{**c0["model"], "n_instances": 1})
    configs = _pad(configs, padding(build_model(base, device=dev)))
    n_i = len(configs)
    magnitude = "signed" if base.kind == "computation" else "uniform"
    n = base.n_features
    source = _streams(
        configs, lambda c: (c["feature_probability"], c["seed"]),
        lambda c: SparseFeatures(n, c["feature_probability"], 1, magnitude=magnitude,
                                 seed=derive_seed(c["seed"], "data"), device=dev),
    )
    imp = torch.stack([importance_vector(n, float(c["importance_decay"])) for c in configs])
    cfg = TMSConfig(**{**c0["model"], "n_instances": n_i})
    model = build_model(cfg, importance=imp, seed=c0["seed"], device=dev)
    for seed, idx in _seed_groups(configs, lambda c: c["seed"]).items():
        alone = build_model(base, seed=seed, device=dev)  # the point's own initial weights
        model.load_instances(idx, alone)
    tcfg = _train_config(c0)
    result = _fit(model, source, tcfg, folder, f"sweep tms x{n_i}")
    model = result.model
    loss = evaluate(model, source, int(c0["train"].get("eval_samples", 16384)), EVAL_BATCH)[:n_real]
    if n_i > n_real:
        model = model.subset(list(range(n_real)))
    configs = configs[:n_real]
    metrics = dict(result.metrics)
    metrics.update(tms_metrics(model))
    metrics["loss"] = loss.tolist()
    metrics["feature_probability"] = [float(c["feature_probability"]) for c in configs]
    metrics["importance_decay"] = [float(c["importance_decay"]) for c in configs]
    metrics["seed"] = [int(c["seed"]) for c in configs]
    metrics["padding_instances"] = n_i - n_real
    write_json(folder / "metrics.json", metrics)
    W = model.W.detach()
    # Per instance (a batched reduction may round an instance differently beside others).
    dims = [feature_dimensionality(W[i : i + 1])[0].double().mean().item() for i in range(n_real)]
    ok = _converged(result, loss)
    return [{"loss": float(loss[i]), "converged": ok[i], "dimensionality": dims[i]} for i in range(n_real)]


def _converged(result: Any, loss: torch.Tensor) -> list[bool]:
    """Per real instance: the job's final loss is finite and at most
    :data:`~toymodels.train.NONCONVERGENCE_FACTOR` times the instance's initial training loss
    (:func:`~toymodels.train.converged_instances`; initial loss unknown, e.g. a reused run:
    finite)."""
    from ..train.loop import converged_instances

    init = result.initial_loss
    init = None if init is None else init.detach().cpu()[: len(loss)]
    return [bool(x) for x in converged_instances(init, loss.detach().cpu())]


def sae_source(data: dict[str, Any], seed: int, device: torch.device) -> Any:
    """The one-instance source ``toymodels sae --data ...`` uses for ``seed``."""
    from ..data.features import GaussianMixture, SparseFeatures, UnitCube
    from ..device import derive_seed

    dseed = derive_seed(seed, "data")
    kind = data["data"]
    if kind == "features":
        return SparseFeatures(data["n_features"], data["feature_probability"], 1, d_embed=data["d_model"],
                              seed=dseed, device=device)
    if kind == "gaussian-mixture":
        return GaussianMixture(data["n_components"], data["d_model"], 1, seed=dseed, device=device)
    if kind == "unit-cube":
        return UnitCube(data["d_model"], 1, seed=dseed, device=device)
    raise ValueError(f"data {kind!r} is not supported in a sweep (features, gaussian-mixture or unit-cube)")


def _sae_config(c: dict[str, Any], n_i: int, l1: Any, k: Any) -> Any:
    from ..sae import SAEConfig

    return SAEConfig.from_dict({**c["sae"], "n_instances": n_i, "l1_coefficient": l1, "k": k})


def _run_sae(configs: list[dict[str, Any]], folder: Path, dev: torch.device) -> list[dict[str, Any]]:
    from ..train.runs import write_json
    from ..sae import build_sae, evaluate_sae, ground_truth_directions
    from ..train.loop import evaluate

    c0 = configs[0]
    n_real = len(configs)
    alone = [build_sae(_sae_config(c, 1, float(c["l1_coefficient"]), c["k"]), seed=c["seed"], device=dev)
             for c in configs]  # each point's own initial weights and instance seeds
    configs = _pad(configs, padding(alone[0]))
    alone += [alone[0]] * (len(configs) - n_real)
    n_i = len(configs)
    ks = [c["k"] for c in configs]
    cfg = _sae_config(c0, n_i, tuple(float(c["l1_coefficient"]) for c in configs),
                      None if ks[0] is None else tuple(int(k) for k in ks))
    source = _streams(configs, lambda c: c["seed"], lambda c: sae_source(c["data"], c["seed"], dev))
    sae = build_sae(cfg, seed=c0["seed"], device=dev)
    for i, a in enumerate(alone):
        sae.load_instances([i], a)
    tcfg = _train_config(c0)
    result = _fit(sae, source, tcfg, folder, f"sweep sae x{n_i}")
    sae = result.model
    n_eval = int(c0["train"].get("eval_samples", 16384))
    loss = evaluate(sae, source, n_eval, EVAL_BATCH)[:n_real]
    configs, ks, n_i = configs[:n_real], ks[:n_real], n_real
    truths = [ground_truth_directions(s) for s in source.streams]  # each stream's own truth (1, N, D)
    # One instance at a time: batched metrics (the cosine matrices behind mmcs) round an
    # instance differently with other instances beside it; a subset sees the same data.
    per = [evaluate_sae(sae.subset([i]), source.subset([i]), n_samples=min(n_eval, 8192),
                        truth=truths[source.rows[i]]) for i in range(n_i)]
    m = {key: [v for p in per for v in p[key]] for key, val in per[0].items() if isinstance(val, list)}
    metrics = {**dict(result.metrics), **m, "loss": loss.tolist(),
               "l1_coefficient": [c["l1_coefficient"] for c in configs], "k": ks, "seed": [c["seed"] for c in configs],
               "padding_instances": len(alone) - n_real}
    write_json(folder / "metrics.json", metrics)
    rows = []
    ok = _converged(result, loss)
    for i in range(n_i):
        row = {"loss": float(loss[i]), "converged": ok[i], "l0": float(m["l0"][i]), "fvu": float(m["fvu"][i])}
        row["mmcs"] = float(m["mmcs"][i]) if "mmcs" in m else ""
        rows.append(row)
    return rows
