"""``toymodels`` command line: ``toymodels tms ...`` trains a sweep of toy models into a run
folder (``toymodels --help`` lists every subcommand)."""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import torch

from . import __version__
from .device import DEVICE_CHOICES, derive_seed, resolve_device


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def add_train_arguments(p: argparse.ArgumentParser, *, steps: int, batch_size: int, lr: float) -> None:
    """The training flags every subcommand shares."""
    g = p.add_argument_group("training")
    g.add_argument("--steps", type=int, default=steps, help=f"optimizer steps (default {steps})")
    g.add_argument("--batch-size", type=_positive_int, default=batch_size, help=f"samples per step (default {batch_size})")
    g.add_argument("--lr", type=float, default=lr, help=f"peak learning rate (default {lr:g})")
    g.add_argument("--optimizer", choices=("adam", "adamw"), default="adam")
    g.add_argument("--weight-decay", type=float, default=0.0)
    g.add_argument("--warmup-steps", type=int, default=0)
    g.add_argument("--schedule", choices=("constant", "cosine", "linear"), default="constant")
    g.add_argument("--checkpoint-every", type=int, default=1000, help="checkpoint interval in steps (0: never)")
    g.add_argument("--max-instances-per-chunk", type=_positive_int, default=None,
                   help="train at most this many instances at once (default: as many as fit)")
    g.add_argument("--resume", action="store_true", help="continue from DIR/checkpoint.pt")
    g.add_argument("--seed", type=int, default=0, help="seed for weights and data (default 0)")
    g.add_argument("--device", choices=DEVICE_CHOICES, default="auto", help="auto picks CUDA when present")
    g.add_argument("--quiet", action="store_true", help="no progress bar")


def train_config_from_args(args: argparse.Namespace):
    from .train import TrainConfig

    return TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup_steps,
        schedule=args.schedule,
        checkpoint_every=args.checkpoint_every,
        max_instances_per_chunk=args.max_instances_per_chunk,
        quiet=args.quiet,
    )


def sweep_values(values: Sequence[float], n: int, flag: str, *, integer: bool = False) -> list[Any]:
    """One value for every instance, or two: log-spaced from the first to the last across
    the n instances (rounded for integers)."""
    if len(values) not in (1, 2):
        raise ValueError(f"{flag} takes one value or two (first and last of a log-spaced sweep); got {len(values)}")
    if len(values) == 1:
        return [values[0]] * n
    lo, hi = float(values[0]), float(values[1])
    if not (lo > 0 and hi > 0 and math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{flag} values must be positive and finite to be log-spaced, got {values[0]} and {values[1]}")
    pts = [lo] if n == 1 else torch.logspace(math.log10(lo), math.log10(hi), n, dtype=torch.float64).tolist()
    return [int(round(v)) for v in pts] if integer else pts


def sweep_probabilities(values: Sequence[float], n: int) -> torch.Tensor:
    """One value for every instance, or two log-spaced from the first to the last."""
    for name, v in zip(("P", "P_LAST"), values):
        if len(values) == 2 and not 0 < float(v) <= 1:
            raise ValueError(f"--feature-probability {name} must be in (0, 1] to be log-spaced, got {v}")
    return torch.tensor(sweep_values(values, n, "--feature-probability"), dtype=torch.float32)


# ---------------------------------------------------------------------- tms
def _add_tms(sub: argparse._SubParsersAction) -> None:
    from .models import MODEL_KINDS

    p = sub.add_parser(
        "tms",
        help="train toy models of superposition (a sweep over instances)",
        description="Train I toy models side by side; write config.json, model.safetensors, "
        "metrics.json and history.json into --out.",
    )
    p.add_argument("--model", choices=MODEL_KINDS, default="relu-output", help="toy model (default relu-output)")
    p.add_argument("--n-features", type=_positive_int, default=5, help="N input features (default 5)")
    p.add_argument("--d-hidden", type=_positive_int, default=2, help="M hidden dims (default 2)")
    p.add_argument("--instances", type=_positive_int, default=1, help="I instances (default 1)")
    p.add_argument("--feature-probability", type=float, nargs="+", default=[0.05], metavar=("P", "P_LAST"),
                   help="one value for all instances, or two: log-spaced from P to P_LAST across instances")
    p.add_argument("--importance-decay", type=float, default=1.0, help="importance of feature i is R**i (default 1)")
    p.add_argument("--best-of", type=_positive_int, default=1,
                   help="train N seeds of every instance and keep the lowest-loss one (default 1)")
    p.add_argument("--out", type=Path, default=Path("runs/tms"), help="run folder (default runs/tms)")
    add_train_arguments(p, steps=5000, batch_size=1024, lr=1e-3)
    p.set_defaults(func=run_tms)


def run_tms(args: argparse.Namespace) -> int:
    from .analysis import classify_geometry, dimensions_per_feature, feature_dimensionality, feature_norms
    from .data import SparseFeatures
    from .models import TMSConfig, build_model
    from .runs import save_weights, write_json
    from .train import best_of, train

    if len(args.feature_probability) > 2:
        raise ValueError("--feature-probability takes one value (P) or two (P P_LAST)")
    device = resolve_device(args.device)
    cfg = TMSConfig(
        n_features=args.n_features,
        d_hidden=args.d_hidden,
        n_instances=args.instances * args.best_of,
        kind=args.model,
        importance_decay=args.importance_decay,
    )
    tcfg = train_config_from_args(args)
    probs = sweep_probabilities(args.feature_probability, args.instances)
    source = SparseFeatures(
        args.n_features,
        probs.repeat_interleave(args.best_of),
        cfg.n_instances,
        magnitude="signed" if args.model == "computation" else "uniform",
        seed=derive_seed(args.seed, "data"),
        device=device,
    )
    model = build_model(cfg, seed=args.seed, device=device)
    result = train(model, source, tcfg, args.out, resume=args.resume, desc=f"tms x{cfg.n_instances}")
    model, losses = result.model, result.final_loss
    metrics = dict(result.metrics)
    if args.best_of > 1:
        model, chosen = best_of(model, losses, args.best_of)
        metrics["all_losses"] = losses.tolist()
        metrics["best_of"] = args.best_of
        metrics["chosen_instances"] = chosen.tolist()
        losses = losses[chosen]
    W = model.W.detach()
    metrics.update(
        loss=losses.tolist(),
        feature_probability=probs.tolist(),
        dimensionality=feature_dimensionality(W).cpu().tolist(),
        dimensions_per_feature=dimensions_per_feature(W).cpu().tolist(),
        feature_norms=feature_norms(W).cpu().tolist(),
        geometry=[classify_geometry(W[i]) for i in range(W.shape[0])],
    )
    if args.best_of > 1:
        save_weights(args.out / "model.safetensors", model)
        write_json(args.out / "config.json", {
            "model": model.spec(), "data": source.spec(), "train": asdict(tcfg),
            "best_of": args.best_of, "chosen_instances": metrics["chosen_instances"],
        })
    write_json(args.out / "metrics.json", metrics)
    print(f"trained {cfg.n_instances} instance(s) of {args.model} {args.n_features}->{args.d_hidden} "
          f"for {tcfg.steps} steps on {result.device} in {result.train_seconds:.2f} s")
    print(f"{'inst':>4} {'p':>9} {'loss':>10}  geometry")
    for i in range(len(losses)):
        labels = metrics["geometry"][i]
        summary = ", ".join(f"{labels.count(l)} {l}" for l in dict.fromkeys(labels))
        print(f"{i:>4} {probs[i].item():>9.4g} {losses[i].item():>10.4g}  {summary}")
    print(f"run folder: {args.out}")
    return 0


# ---------------------------------------------------------------------- entry point
SUBCOMMANDS = [_add_tms]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="toymodels",
        description="Toy models of superposition and sparse autoencoders: batched sweeps into run folders.",
    )
    parser.add_argument("--version", action="version", version=f"toymodels {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    try:
        from .sae.cli import add_sae_parser
    except ImportError:  # the SAE package is optional while it is being built
        pass
    else:
        add_sae_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ValueError as e:  # bad input: one clear line, no traceback
        print(f"toymodels {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
