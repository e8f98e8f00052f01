"""The experiments layer for toy models: build a source and a model, train, keep the best seed.

Every "sparsity sweep", "importance grid" or "best of N seeds" in the CLI, the figures and
the theory checks is one call to :func:`train_tms`: the C configurations of ``cfg`` (its
``n_instances``) times ``best_of`` seeds train as one instance-batched run, laid out
configuration-major (configuration c owns trained instances [c·N, (c+1)·N)), and the
lowest-loss seed of each configuration is kept. Seeds follow ``toymodels tms``: the model is
initialised from ``seed`` and the data from ``derive_seed(seed, "data")``.

>>> from toymodels.experiments import train_tms
>>> run = train_tms(TMSConfig(5, 2, n_instances=3), [0.3, 0.1, 0.03], train=TrainConfig(steps=2000), best_of=4)
>>> run.loss, run.metrics["dimensionality"]          # (3,), one list of D_i per configuration
"""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import torch

from ._validate import as_instance_tensor, check_choice, check_int, check_seed
from .measures.analysis import classify_geometry, dimensions_per_feature, feature_dimensionality, feature_norms
from .data.features import MAGNITUDES, SparseFeatures
from .device import derive_seed, resolve_device
from .models import TMSConfig, ToyModel, build_model, importance_vector
from .train.runs import save_weights, write_json
from .train.loop import TrainConfig, TrainResult, best_of as keep_best
from .train.loop import train as train_model


@dataclass
class TMSRun:
    """What :func:`train_tms` returns. C configurations, N = ``best_of`` seeds each."""

    model: ToyModel
    """The kept instances: C of them, instance c the lowest-loss seed of configuration c."""
    loss: torch.Tensor
    """(C,) final loss of each kept instance (on the CPU)."""
    feature_probability: torch.Tensor
    """(C,) — or (C, N features) when given per feature — each configuration's probability."""
    all_losses: torch.Tensor
    """(C·N,) final loss of every trained instance, configuration-major."""
    chosen: torch.Tensor
    """(C,) index of each kept instance among the C·N trained ones."""
    result: TrainResult
    """The trainer's result for the whole C·N-instance run (its ``model`` holds every seed)."""
    metrics: dict[str, Any]
    """The keys ``toymodels tms`` writes to metrics.json: the trainer's, plus loss,
    feature_probability, dimensionality, dimensions_per_feature, feature_norms, geometry and,
    when best_of > 1, all_losses, best_of and chosen_instances."""
    source: SparseFeatures
    """The data source the C·N instances trained on (per-instance streams)."""
    best_of: int = 1


def per_configuration(name: str, value: Any, n_configs: int, n_features: int) -> torch.Tensor:
    """A scalar, (C,) or (C, N) value as a float32 tensor (C,) or (C, N) on the CPU; a wrong
    length or a non-number raises ValueError naming ``name``."""
    t = as_instance_tensor(name, value, n_configs, n_features)
    return t[:, 0].contiguous() if t.shape[-1] == 1 and torch.as_tensor(value).ndim < 2 else t


def train_tms(
    cfg: TMSConfig,
    feature_probability: float | Sequence[float] | torch.Tensor,
    *,
    train: TrainConfig,
    best_of: int = 1,
    seed: int = 0,
    magnitude: str | None = "uniform",
    device: str | torch.device = "cpu",
    out: str | Path | None = None,
    importance: Any = None,
    quiet: bool | None = True,
    data_seed: int | None = None,
    model_seed: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    desc: str | None = None,
) -> TMSRun:
    """Train ``cfg.n_instances`` configurations × ``best_of`` seeds of a toy model in one batched
    run on :class:`~toymodels.data.SparseFeatures`, and keep the lowest-loss seed of each.

    - ``feature_probability``: a scalar, one per configuration (C,), or (C, N).
    - ``importance``: None (``cfg.importance_decay``\\ **i), a vector (N,) shared by all, or
      (C, N) per configuration; it is repeated over the seeds.
    - ``magnitude``: of active features (uniform, constant, signed); the computation model
      (target |x|) is always fed signed inputs, as ``toymodels tms`` does, and None picks that
      default for every kind.
    - Seeds: model weights from ``model_seed`` (default ``seed``), data from ``data_seed``
      (default ``derive_seed(seed, "data")``); each trained instance has its own data stream.
    - ``out``: a run folder, written as ``toymodels tms`` writes it (with best_of > 1,
      model.safetensors holds the kept instances and config.json records ``best_of`` and
      ``chosen_instances``). ``resume``/``overwrite`` go to the trainer.
    - ``quiet``: no progress bar (None keeps ``train.quiet``).

    Best-of-N (Elhage et al. 2022 train several seeds and report the lowest loss): with
    losses L_{c,s}, configuration c keeps s* = argmin_s L_{c,s}.
    """
    best_of = check_int("best_of", best_of, 1)
    if not isinstance(cfg, TMSConfig):
        raise ValueError(f"cfg must be a TMSConfig, got {type(cfg).__name__}")
    if not isinstance(train, TrainConfig):
        raise ValueError(f"train must be a TrainConfig, got {type(train).__name__}")
    if magnitude is None or cfg.kind == "computation":
        magnitude = "signed" if cfg.kind == "computation" else "uniform"
    check_choice("magnitude", magnitude, MAGNITUDES)
    seed = check_seed("seed", seed)
    dev = resolve_device(device)
    n_cfg, n = cfg.n_instances, cfg.n_features
    probs = per_configuration("feature_probability", feature_probability, n_cfg, n)
    imp = None
    if importance is not None:
        imp = torch.as_tensor(importance, dtype=torch.float32).detach().cpu()
        if imp.ndim == 2 and imp.shape[0] == n_cfg and imp.shape[0] > 1:
            imp = imp.repeat_interleave(best_of, 0)
        elif imp.ndim == 2 and imp.shape[0] == 1:
            imp = imp[0]
        elif imp.ndim != 1:
            raise ValueError(
                f"importance must be a vector ({n},) or one row per configuration ({n_cfg}, {n}); got shape {tuple(imp.shape)}"
            )
    full = replace(cfg, n_instances=n_cfg * best_of)
    tcfg = train if quiet is None or train.quiet == bool(quiet) else replace(train, quiet=bool(quiet))
    source = SparseFeatures(
        n,
        probs.repeat_interleave(best_of, 0),
        full.n_instances,
        magnitude=magnitude,
        seed=derive_seed(seed, "data") if data_seed is None else data_seed,
        device=dev,
    )
    model = build_model(full, importance=imp, seed=seed if model_seed is None else model_seed, device=dev)
    out = Path(out) if out is not None else None
    result = train_model(model, source, tcfg, out, resume=resume, overwrite=overwrite,
                         desc=desc or f"tms x{full.n_instances}")
    all_losses = result.final_loss
    metrics = dict(result.metrics)
    if best_of > 1:
        kept, chosen = keep_best(result.model, all_losses, best_of)
        metrics["all_losses"] = all_losses.tolist()
        metrics["best_of"] = best_of
        metrics["chosen_instances"] = chosen.tolist()
    else:
        kept, chosen = result.model, torch.arange(n_cfg)
    losses = all_losses[chosen]
    metrics.update(tms_metrics(kept))
    metrics["loss"] = losses.tolist()
    metrics["feature_probability"] = probs.tolist()
    if out is not None:
        if best_of > 1:
            save_weights(out / "model.safetensors", kept)
            write_json(out / "config.json", {
                "model": kept.spec(), "data": source.spec(), "train": asdict(tcfg),
                "best_of": best_of, "chosen_instances": metrics["chosen_instances"],
            })
        write_json(out / "metrics.json", metrics)
    return TMSRun(
        model=kept, loss=losses, feature_probability=probs, all_losses=all_losses, chosen=chosen,
        result=result, metrics=metrics, source=source, best_of=best_of,
    )


def tms_metrics(model: ToyModel) -> dict[str, Any]:
    """Per-instance geometry of a trained toy model (Elhage et al. 2022, sections 3–6):
    dimensionality D_i, dimensions per feature M/||W||_F², feature norms ||W_i|| and the
    geometry labels of :func:`~toymodels.analysis.classify_geometry`, as JSON-ready lists."""
    W = model.W.detach()
    return {
        "dimensionality": feature_dimensionality(W).cpu().tolist(),
        "dimensions_per_feature": dimensions_per_feature(W).cpu().tolist(),
        "feature_norms": feature_norms(W).cpu().tolist(),
        "geometry": [classify_geometry(W[i]) for i in range(W.shape[0])],
    }


def grid(**axes: Sequence[Any]) -> dict[str, list[Any]]:
    """The Cartesian product of named axes, first axis slowest, as one list per name of
    length C = Π |axis| — the configuration order of an instance-batched sweep.

    >>> grid(decay=[1.0, 0.7], p=[0.1, 0.01])
    {'decay': [1.0, 1.0, 0.7, 0.7], 'p': [0.1, 0.01, 0.1, 0.01]}
    """
    names = list(axes)
    rows = list(itertools.product(*(list(axes[k]) for k in names)))
    return {k: [r[i] for r in rows] for i, k in enumerate(names)}


def importance_rows(n_features: int, decays: Sequence[float]) -> torch.Tensor:
    """(C, N) importances, row c = decays[c]**i (Elhage et al. 2022, section 2)."""
    return torch.stack([importance_vector(n_features, float(d)) for d in decays])
