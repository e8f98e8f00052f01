"""``toymodels tms``: train a sweep of toy models of superposition into a run folder.

Flags come from :class:`toymodels.models.TMSConfig`, :class:`TMSSettings` (below),
:class:`toymodels.train.TrainConfig` and :class:`RunSettings`: one field with its docstring
is one flag.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass

from . import configargs
from .._validate import check_int
from ..models import TMSConfig
from . import _common

TMS_FLAGS = {"kind": "--model", "n_instances": "--instances"}


@dataclass(frozen=True)
class TMSSettings:
    """The sweep of a ``toymodels tms`` run."""

    feature_probability: float | tuple[float, ...] = 0.05
    """One value for all instances, or two: log-spaced from P to P_LAST across instances."""
    best_of: int = 1
    """Train N seeds of every instance and keep the lowest-loss one."""

    def __post_init__(self) -> None:
        p = self.feature_probability
        if isinstance(p, tuple) and len(p) not in (1, 2):
            raise ValueError("--feature-probability takes one value (P) or two (P P_LAST)")
        check_int("best_of", self.best_of, 1)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tms",
        help="train toy models of superposition (a sweep over instances)",
        description="Train I toy models side by side; write config.json, model.safetensors, "
        "metrics.json and history.json into --out.",
        epilog=_common.EXIT_CODES,
    )
    configargs.add_arguments(p, TMSConfig, flags=TMS_FLAGS, include=["kind", "n_features", "d_hidden", "n_instances"])
    configargs.add_arguments(p, TMSSettings, include=["feature_probability"], metavars={"feature_probability": ("P", "P_LAST")})
    configargs.add_arguments(p, TMSConfig, include=["importance_decay"])
    configargs.add_arguments(p, TMSSettings, include=["best_of"])
    _common.add_run_arguments(p, out="runs/tms")
    _common.add_train_arguments(p, steps=5000, batch_size=1024, lr=1e-3)
    p.set_defaults(func=run_tms)


def run_tms(args: argparse.Namespace) -> int:
    from ..device import set_threads
    from ..experiments import train_tms
    from ..train.runs import write_json

    run = _common.run_settings(args)
    sweep = configargs.build(TMSSettings, args)
    cfg = configargs.build(TMSConfig, args)
    tcfg = _common.train_config(args)
    probs = _common.sweep_probabilities(sweep.feature_probability, cfg.n_instances)
    out = _common.check_output_dir(run.out)
    run_flags = _common.train_flags(run)
    n_trained = cfg.n_instances * sweep.best_of
    threads = set_threads(run.threads, work=n_trained * tcfg.batch_size * cfg.n_features * cfg.d_hidden * 2)
    tr = train_tms(cfg, probs, train=tcfg, best_of=sweep.best_of, seed=run.seed, magnitude=None, device=run.device,
                   out=out, quiet=None, **run_flags)
    losses, metrics = tr.loss, tr.metrics
    # The all-zero output scores mean_i(I_i) * E[x^2] = mean_i(I_i) * p / 3 (magnitudes uniform
    # on [0, 1] or [-1, 1]); a kept model above it after training has not converged.
    zero_loss = (tr.model.importance.mean(dim=1).cpu() * probs / 3).tolist()
    trainer_ok = tr.result.converged[tr.chosen].tolist() if tr.result.converged is not None else None
    converged = _common.converged(trainer_ok, losses.tolist(), zero_loss)
    metrics.update(converged=converged, non_converged_instances=[i for i, ok in enumerate(converged) if not ok],
                   threads=threads)
    write_json(out / "metrics.json", metrics)
    print(f"trained {n_trained} instance(s) of {cfg.kind} {cfg.n_features}->{cfg.d_hidden} "
          f"for {tcfg.steps} steps on {tr.result.device} in {tr.result.train_seconds:.2f} s ({threads} thread(s))")
    print(f"{'inst':>4} {'p':>9} {'loss':>10}  geometry")
    for i in range(len(losses)):
        labels = metrics["geometry"][i]
        summary = ", ".join(f"{labels.count(l)} {l}" for l in dict.fromkeys(labels))
        print(f"{i:>4} {probs[i].item():>9.4g} {losses[i].item():>10.4g}  {summary}")
    print(f"run folder: {out}")
    _common.warn_not_converged("tms", converged, losses.tolist(), "above the all-zero output's loss or grown tenfold")
    return 0
