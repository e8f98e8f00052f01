"""``toymodels sae``: train a sweep of SAEs on synthetic data or toy-model activations.

    toymodels sae --data features --arch topk --n-features 128 --d-model 64 \\
        --dict-size 256 --k 2 8 --instances 4 --steps 3000 --out runs/sae-k

writes DIR/config.json, model.safetensors, history.json and metrics.json (per-instance lists
l0, mse, fvu, shrinkage, dead_fraction, ..., mmcs and mcc when the data has ground truth).
Every input is checked before training; bad input exits with code 2 and one line.
"""
from __future__ import annotations

import argparse
import sys
import dataclasses
from pathlib import Path
from typing import Any

import torch

DATA_KINDS = ("features", "tms", "gaussian-mixture", "unit-cube")


def add_sae_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``sae`` subcommand (called by :func:`toymodels.cli.build_parser`)."""
    from ..cli import _positive_int, add_train_arguments
    from ..models import MODEL_KINDS
    from .config import B_DEC_INITS
    from .registry import arch_names

    p = sub.add_parser(
        "sae",
        help="train sparse autoencoders (an L1 or k sweep over instances)",
        description="Train I SAEs side by side on synthetic data or a toy model's activations; write "
        "config.json, model.safetensors, history.json and metrics.json into --out.",
    )
    d = p.add_argument_group("data")
    d.add_argument("--data", choices=DATA_KINDS, default="features",
                   help="features: sparse features along N random unit directions in D dims (ground truth known); "
                        "tms: hidden activations of a toy model; gaussian-mixture, unit-cube: featureless controls")
    d.add_argument("--n-features", type=_positive_int, default=None, help="N ground-truth features (default 128)")
    d.add_argument("--d-model", type=_positive_int, default=None,
                   help="D, the activation width (default 64; for --data tms the toy model's hidden width)")
    d.add_argument("--feature-probability", type=float, default=None, metavar="P",
                   help="probability that a feature is active (default 3/N: about three active features)")
    d.add_argument("--n-components", type=_positive_int, default=12, help="components of --data gaussian-mixture (default 12)")
    d.add_argument("--tms-run", type=Path, default=None, metavar="DIR", help="--data tms: a run folder written by `toymodels tms`")
    d.add_argument("--tms-instance", type=int, default=0, help="which instance of --tms-run to read (default 0)")
    d.add_argument("--random-weights", action="store_true",
                   help="--data tms: a freshly initialised toy model N -> D (the random-weight control)")
    d.add_argument("--tms-model", choices=MODEL_KINDS, default="relu-output", help="kind of the --random-weights toy model")
    s = p.add_argument_group("sparse autoencoder")
    s.add_argument("--arch", choices=arch_names(), default="relu", help="architecture (default relu)")
    s.add_argument("--dict-size", type=int, default=None, help="F latents (default 4 * D)")
    s.add_argument("--l1-coefficient", type=float, nargs="+", default=[0.1], metavar=("L", "L_LAST"),
                   help="sparsity coefficient (L1; L0 for jumprelu): one value, or two log-spaced across instances (default 0.1)")
    s.add_argument("--k", type=int, nargs="+", default=None, metavar=("K", "K_LAST"),
                   help="topk/batchtopk: active latents per sample, one value or two log-spaced across instances (default 8)")
    s.add_argument("--instances", type=_positive_int, default=1, help="I SAEs trained side by side (default 1)")
    s.add_argument("--aux-k", type=int, default=None, help="dead latents in the aux-k loss (default D/2; 0: off)")
    s.add_argument("--aux-coefficient", type=float, default=1 / 32, help="weight of the aux-k loss (default 1/32)")
    s.add_argument("--dead-window", type=int, default=200, help="steps without firing after which a latent is dead (default 200)")
    s.add_argument("--decoder-orthogonality", type=float, default=0.0, help="coefficient of the mean squared decoder cosine (default 0)")
    s.add_argument("--untied-init", action="store_true", help="do not initialise the encoder as the decoder's transpose")
    s.add_argument("--b-dec-init", choices=B_DEC_INITS, default="geometric-median", help="b_dec from the first batch")
    s.add_argument("--sparsity-warmup-steps", type=int, default=0, help="ramp the sparsity coefficient linearly over N steps")
    s.add_argument("--resample-every", type=int, default=0, help="resample dead latents every N steps (default 0: never)")
    s.add_argument("--jumprelu-bandwidth", type=float, default=0.05, help="jumprelu: STE kernel width ε (default 0.05)")
    s.add_argument("--jumprelu-threshold", type=float, default=0.1, help="jumprelu: initial threshold (default 0.1)")
    s.add_argument("--threshold-ema", type=float, default=0.01, help="batchtopk: EMA rate of the inference threshold")
    s.add_argument("--eval-samples", type=_positive_int, default=16384, help="fresh samples for the final metrics (default 16384)")
    p.add_argument("--out", type=Path, default=Path("runs/sae"), help="run folder (default runs/sae)")
    add_train_arguments(p, steps=3000, batch_size=1024, lr=1e-3)
    p.set_defaults(func=run_sae)


# ---------------------------------------------------------------------- data
def _tms_model(args: argparse.Namespace, device: torch.device) -> tuple[Any, dict[str, Any]]:
    """The toy model for --data tms and what we know of its data (probability, magnitude)."""
    from ..device import derive_seed
    from ..models import TMSConfig, build_model
    from ..runs import load_model, read_json

    if args.tms_run is not None and args.random_weights:
        raise ValueError("give either --tms-run DIR or --random-weights, not both")
    if args.tms_run is None and not args.random_weights:
        raise ValueError(
            "--data tms needs a toy model: --tms-run DIR (a folder written by `toymodels tms`) "
            "or --random-weights (a random toy model, the control)"
        )
    if args.random_weights:
        n = args.n_features or 128
        m = args.d_model or 64
        cfg = TMSConfig(n_features=n, d_hidden=m, n_instances=1, kind=args.tms_model)
        model = build_model(cfg, seed=derive_seed(args.seed, "tms-model"), device=device)
        return model, {"magnitude": "signed" if args.tms_model == "computation" else "uniform"}
    run = Path(args.tms_run)
    if not (run / "config.json").exists() or not (run / "model.safetensors").exists():
        raise ValueError(f"--tms-run {run} is not a finished `toymodels tms` run folder (config.json and model.safetensors needed)")
    model = load_model(run, device)
    if getattr(model, "family", None) != "tms":
        raise ValueError(f"--tms-run {run} holds a {getattr(model, 'family', '?')!r} model, not a toy model")
    if not 0 <= args.tms_instance < model.n_instances:
        raise ValueError(f"--tms-instance must be in [0, {model.n_instances - 1}] for {run}, got {args.tms_instance}")
    info: dict[str, Any] = {}
    data = read_json(run / "config.json").get("data", {})
    probs = data.get("feature_probability")
    if isinstance(probs, list) and len(probs) == model.n_instances:
        info["feature_probability"] = probs[args.tms_instance]
    elif isinstance(probs, (int, float)):
        info["feature_probability"] = probs
    info["magnitude"] = data.get("magnitude", "uniform")
    model = model.subset([args.tms_instance])
    for flag, given, actual in (("--n-features", args.n_features, model.n_features), ("--d-model", args.d_model, model.d_hidden)):
        if given is not None and given != actual:
            raise ValueError(f"{flag} {given} does not match the toy model in {run} ({actual}); leave it out or make them equal")
    for p in model.parameters():
        p.requires_grad_(False)
    return model, info


def build_source(args: argparse.Namespace, device: torch.device) -> Any:
    """The data source the flags describe (validated; nothing trained yet)."""
    from ..data import GaussianMixture, ModelActivations, SparseFeatures, UnitCube
    from ..device import derive_seed

    seed = derive_seed(args.seed, "data")
    if args.data != "tms" and (args.tms_run is not None or args.random_weights):
        raise ValueError("--tms-run and --random-weights only apply to --data tms")
    if args.data == "features":
        n, d = args.n_features or 128, args.d_model or 64
        p = args.feature_probability if args.feature_probability is not None else min(1.0, 3.0 / n)
        return SparseFeatures(n, p, 1, d_embed=d, seed=seed, device=device)
    if args.data == "tms":
        model, info = _tms_model(args, device)
        p = args.feature_probability
        if p is None:
            p = info.get("feature_probability", min(1.0, 3.0 / model.n_features))
        feats = SparseFeatures(model.n_features, p, 1, magnitude=info.get("magnitude", "uniform"), seed=seed, device=device)
        return ModelActivations(model, feats)
    d = args.d_model or 64
    if args.data == "gaussian-mixture":
        return GaussianMixture(args.n_components, d, 1, seed=seed, device=device)
    return UnitCube(d, 1, seed=seed, device=device)


# ---------------------------------------------------------------------- run
def run_sae(args: argparse.Namespace) -> int:
    from ..cli import train_config_from_args
    from ..device import resolve_device
    from ..train import train
    from . import build_sae
    from .config import K_ARCHS, SAEConfig
    from .evaluate import evaluate_sae

    device = resolve_device(args.device)
    source = build_source(args, device)
    n_i = args.instances
    from ..cli import sweep_values

    l1 = sweep_values(args.l1_coefficient, n_i, "--l1-coefficient")
    k = None
    if args.arch in K_ARCHS:
        k = sweep_values(args.k or [8], n_i, "--k", integer=True)
    elif args.k is not None:  # one command line can drive every --arch: say it, do not fail
        print(f"toymodels sae: note: --k applies to topk and batchtopk; ignored for --arch {args.arch}", file=sys.stderr)
    cfg = SAEConfig(
        arch=args.arch,
        d_model=source.dim,
        dict_size=args.dict_size if args.dict_size is not None else 4 * source.dim,
        n_instances=n_i,
        l1_coefficient=tuple(l1),
        k=None if k is None else tuple(k),
        aux_k=args.aux_k,
        aux_coefficient=args.aux_coefficient,
        dead_window=args.dead_window,
        decoder_orthogonality=args.decoder_orthogonality,
        tied_init=not args.untied_init,
        b_dec_init=args.b_dec_init,
        sparsity_warmup_steps=args.sparsity_warmup_steps,
        resample_every=args.resample_every,
        jumprelu_bandwidth=args.jumprelu_bandwidth,
        jumprelu_init_threshold=args.jumprelu_threshold,
        threshold_ema=args.threshold_ema,
    )
    tcfg = dataclasses.replace(train_config_from_args(args), eval_samples=args.eval_samples)
    sae = build_sae(cfg, seed=args.seed, device=device)

    def metrics(model: Any) -> dict[str, Any]:
        out = evaluate_sae(model, source, n_samples=args.eval_samples)
        out["l1_coefficient"] = list(cfg.per_instance("l1_coefficient"))
        if k is not None:
            out["k"] = list(k)
        out["data"] = args.data
        out["arch"] = args.arch
        return out

    result = train(sae, source, tcfg, args.out, resume=args.resume, metrics=metrics, desc=f"sae {args.arch} x{n_i}")
    m = result.metrics
    print(f"trained {n_i} {args.arch} SAE(s), D={cfg.d_model} F={cfg.dict_size}, on {args.data} data, "
          f"{tcfg.steps} steps on {result.device} in {result.train_seconds:.2f} s")
    sweep = "k" if k is not None else "l1"
    head = f"{'inst':>4} {sweep:>9} {'l0':>8} {'fvu':>8} {'shrink':>7} {'dead':>6}"
    has_truth = "mmcs" in m
    print(head + (f" {'mmcs':>6} {'mcc':>6}" if has_truth else ""))
    for i in range(n_i):
        val = k[i] if k is not None else l1[i]
        row = (f"{i:>4} {val:>9.4g} {m['l0'][i]:>8.3f} {m['fvu'][i]:>8.4f} {m['shrinkage'][i]:>7.3f} "
               f"{m['dead_fraction'][i]:>6.3f}")
        if has_truth:
            row += f" {m['mmcs'][i]:>6.3f} {m['mcc'][i]:>6.3f}"
        print(row)
    print(f"run folder: {args.out}")
    return 0
