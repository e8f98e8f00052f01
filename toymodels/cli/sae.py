"""``toymodels sae``: train a sweep of SAEs on synthetic data or toy-model activations.

    toymodels sae --data features --arch topk --n-features 128 --d-model 64 \\
        --dict-size 256 --k 2 8 --instances 4 --steps 3000 --out runs/sae-k

writes DIR/config.json, model.safetensors, history.json and metrics.json (per-instance lists
l0, mse, fvu, shrinkage, dead_fraction, ..., mmcs and mcc when the data has ground truth).
Every input is checked before training; bad input exits with code 2 and one line.

Flags come from :class:`SAEData` (below), :class:`toymodels.sae.SAEConfig`, each
architecture's ``Options`` (``toymodels.sae.ARCHITECTURES[name].Options``),
:class:`toymodels.train.TrainConfig` and the run settings: one field with its docstring is
one flag.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import configargs
from .._validate import check_choice, check_float, check_int
from ..models import MODEL_KINDS
from ..sae import ARCHITECTURES, SAEConfig
from ..sae.registry import k_archs
from . import _common

DATA_KINDS = ("features", "tms", "gaussian-mixture", "unit-cube", "activations")
DEFAULT_N_FEATURES, DEFAULT_D_MODEL, DEFAULT_K = 128, 64, 8
FVU_CEILING = 2.0
"""An SAE whose fraction of variance unexplained ends above this has not converged."""


@dataclass(frozen=True)
class SAEData:
    """What the SAEs are trained on (the ``data`` flags of ``toymodels sae``)."""

    data: str = "features"
    """features: sparse features along N random unit directions in D dims (ground truth
    known); tms: hidden activations of a toy model; gaussian-mixture, unit-cube: featureless
    controls; activations: your own (N, D) array from --activations."""
    n_features: int | None = None
    """N ground-truth features (default 128; for --data tms the toy model's N)."""
    d_model: int | None = None
    """D, the activation width (default 64; for --data tms the toy model's hidden width)."""
    feature_probability: float | None = None
    """Probability that a feature is active (default 3/N: about three active features; for
    --tms-run the run's own p of the chosen instance)."""
    n_components: int = 12
    """Components of --data gaussian-mixture."""
    tms_run: str | None = None
    """--data tms: a run folder written by `toymodels tms`."""
    tms_instance: int = 0
    """Which instance of --tms-run to read."""
    random_weights: bool = False
    """--data tms: a freshly initialised toy model N -> D (the random-weight control)."""
    tms_model: str = "relu-output"
    """Kind of the --random-weights toy model."""
    activations: str | None = None
    """--data activations: a .npy, .pt or .safetensors file (tensor key "activations") holding
    an (N, D) float array; read memory-mapped, the last --holdout of its rows held out for the
    metrics. --d-model defaults to D."""
    holdout: float = 0.1
    """--data activations: the fraction of rows (the file's last ones) kept out of training and
    used for the final metrics."""
    truth: str | None = None
    """--data activations: a (G, D) array of known true directions (.npy, .pt or .safetensors,
    tensor key "truth"); metrics.json then scores the SAEs against them as for synthetic data
    (mmcs, mcc, and per latent its matched direction and cosine)."""
    truth_codes: str | None = None
    """--data activations with --truth: an (N, G) array of the known firing (nonzero where
    direction g is active in row n; .npy, or tensor key "codes"); metrics.json then holds, per
    latent, its best-F1 direction and the precision, recall and F1 of its firing there, on the
    held-out rows."""
    firing: str = "constant"
    """--data features: constant (every feature fires with --feature-probability) or zipf
    (rates ∝ rank^-a with mean --feature-probability; toymodels.hierarchy)."""
    zipf_exponent: float = 1.0
    """--firing zipf: the exponent a >= 0."""
    hierarchy: str | None = None
    """--data features: PxC, P parent features each with C children that fire only with their
    parent (features 0, its children, the next parent, ...; toymodels.hierarchy.tree)."""
    hierarchy_exclusive: bool = True
    """--hierarchy: at most one child of a parent fires per sample."""

    def __post_init__(self) -> None:
        check_choice("data", self.data, DATA_KINDS)
        if self.n_features is not None:
            check_int("n_features", self.n_features, 1)
        if self.d_model is not None:
            check_int("d_model", self.d_model, 1)
        if self.feature_probability is not None:
            check_float("feature_probability", self.feature_probability, 0.0, 1.0, lo_open=True)
        check_int("n_components", self.n_components, 1)
        check_int("tms_instance", self.tms_instance, 0)
        check_choice("tms_model", self.tms_model, MODEL_KINDS)
        if self.tms_run is not None and not str(self.tms_run).strip():
            raise ValueError("--tms-run must name a folder, got an empty string")
        if self.data != "tms" and (self.tms_run is not None or self.random_weights):
            raise ValueError("--tms-run and --random-weights only apply to --data tms")
        check_float("holdout", self.holdout, 0.0, 1.0, hi_open=True)
        if self.data == "activations" and (self.activations is None or not str(self.activations).strip()):
            raise ValueError("--data activations needs --activations PATH (a .npy, .pt or .safetensors file)")
        if self.data != "activations" and self.activations is not None:
            raise ValueError("--activations only applies to --data activations")
        if self.truth is not None and not str(self.truth).strip():
            raise ValueError("--truth must name a file, got an empty string")
        if self.truth_codes is not None and self.truth is None:
            raise ValueError("--truth-codes needs --truth (the directions whose firing it records)")
        if self.truth is not None and self.data != "activations":
            raise ValueError(f"--truth only applies to --data activations (--data {self.data} knows its own directions, "
                             "or has none)")
        check_choice("firing", self.firing, ("constant", "zipf"))
        check_float("zipf_exponent", self.zipf_exponent, 0.0, 64.0)
        if self.hierarchy is not None:
            self.hierarchy_shape()

    def hierarchy_shape(self) -> tuple[int, int]:
        """(parents P, children C) of --hierarchy PxC."""
        try:
            p, c = (int(v) for v in str(self.hierarchy).lower().split("x"))
        except ValueError:
            raise ValueError(f"--hierarchy must look like PxC (e.g. 4x3: 4 parents with 3 children each), got {self.hierarchy!r}") from None
        if p < 1 or c < 1:
            raise ValueError(f"--hierarchy {self.hierarchy}: P and C must be >= 1")
        return p, c

    def ignored(self) -> list[str]:
        """Flags given a non-default value that the chosen --data does not use."""
        unused = {
            "features": ("n_components", "tms_instance", "tms_model"),
            "tms": ("n_components",),
            "gaussian-mixture": ("n_features", "feature_probability", "tms_instance", "tms_model"),
            "unit-cube": ("n_features", "feature_probability", "n_components", "tms_instance", "tms_model"),
            "activations": ("n_features", "feature_probability", "n_components", "tms_instance", "tms_model"),
        }[self.data]
        if self.data != "activations":
            unused += ("holdout",)
        if self.data != "features":
            unused += ("firing", "zipf_exponent", "hierarchy", "hierarchy_exclusive")
        if self.data == "tms" and not self.random_weights:
            unused += ("tms_model",)
        if self.data == "tms" and self.random_weights:
            unused += ("tms_instance",)
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        return ["--" + n.replace("_", "-") for n in unused if getattr(self, n) != defaults[n]]


SAE_FLAGS = {"n_instances": "--instances", "jumprelu_init_threshold": "--jumprelu-threshold"}
SAE_ALIASES = {"jumprelu_init_threshold": ["--jumprelu-init-threshold"]}
SAE_METAVARS = {"l1_coefficient": ("L", "L_LAST"), "k": ("K", "K_LAST")}
SAE_DEFAULTS = {"dict_size": None, "l1_coefficient": [0.1], "k": None}
SAE_HELPS = {
    "arch": f"Architecture, one of {', '.join(ARCHITECTURES)} (toymodels.sae.ARCHITECTURES; default relu).",
    "dict_size": "F latents (default 4 * D).",
    "k": "topk/batchtopk: active latents per sample, one value or two log-spaced across instances (default 8).",
    "l1_coefficient": "Sparsity coefficient (L1; L0 for jumprelu): one value, or two log-spaced across instances (default 0.1).",
}


def _options_class(arch: str) -> type | None:
    opts = getattr(ARCHITECTURES[arch], "Options", None)
    return opts if dataclasses.is_dataclass(opts) else None


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sae",
        help="train sparse autoencoders (an L1 or k sweep over instances)",
        description="Train I SAEs side by side on synthetic data or a toy model's activations; write "
        "config.json, model.safetensors, history.json and metrics.json into --out.",
        epilog=_common.EXIT_CODES,
    )
    d = p.add_argument_group("data")
    configargs.add_arguments(d, SAEData, metavars={"feature_probability": "P", "tms_run": "DIR", "activations": "PATH",
                                                   "truth": "PATH", "truth_codes": "PATH"})
    s = p.add_argument_group("sparse autoencoder")
    configargs.add_arguments(
        s, SAEConfig, flags=SAE_FLAGS, aliases=SAE_ALIASES, negate={"tied_init": "--untied-init"},
        defaults=SAE_DEFAULTS, helps=SAE_HELPS, metavars=SAE_METAVARS, exclude=["d_model", "options"],
    )
    for arch in ARCHITECTURES:  # each architecture's own options (a flag shared by two is added once)
        opts = _options_class(arch)
        if opts is not None:
            configargs.add_arguments(s, opts, flags=SAE_FLAGS, dest_from_flag=True, skip_existing=True)
    _common.add_run_arguments(p, out="runs/sae")
    _common.add_train_arguments(p, steps=3000, batch_size=1024, lr=1e-3)
    p.set_defaults(_flag_dests={s: a.dest for a in p._actions for s in a.option_strings})
    p.set_defaults(func=run_sae)


# ---------------------------------------------------------------------- data
def _tms_model(data: SAEData, seed: int, device: torch.device) -> tuple[Any, dict[str, Any]]:
    """The toy model for --data tms and what we know of its data (probability, magnitude)."""
    from ..device import derive_seed
    from ..models import TMSConfig, build_model
    from ..train.runs import load_model, read_json

    if data.tms_run is not None and data.random_weights:
        raise ValueError("give either --tms-run DIR or --random-weights, not both")
    if data.tms_run is None and not data.random_weights:
        raise ValueError(
            "--data tms needs a toy model: --tms-run DIR (a folder written by `toymodels tms`) "
            "or --random-weights (a random toy model, the control)"
        )
    if data.random_weights:
        n = data.n_features or DEFAULT_N_FEATURES
        m = data.d_model or DEFAULT_D_MODEL
        cfg = TMSConfig(n_features=n, d_hidden=m, n_instances=1, kind=data.tms_model)
        model = build_model(cfg, seed=derive_seed(seed, "tms-model"), device=device)
        return model, {"magnitude": "signed" if data.tms_model == "computation" else "uniform"}
    run = Path(data.tms_run)
    if not (run / "config.json").is_file() or not (run / "model.safetensors").is_file():
        raise ValueError(f"--tms-run {run} is not a finished `toymodels tms` run folder (config.json and model.safetensors needed)")
    model = load_model(run, device)
    if getattr(model, "family", None) != "tms":
        raise ValueError(f"--tms-run {run} holds a {getattr(model, 'family', '?')!r} model, not a toy model")
    if not 0 <= data.tms_instance < model.n_instances:
        raise ValueError(f"--tms-instance must be in [0, {model.n_instances - 1}] for {run}, got {data.tms_instance}")
    info: dict[str, Any] = {}
    config = read_json(run / "config.json")
    spec = config.get("data", {}) if isinstance(config, dict) else {}
    probs = spec.get("feature_probability")
    # The data instance that trained model instance i: with best-of-N the kept instances
    # are config["chosen_instances"] of the I*N trained ones.
    chosen = config.get("chosen_instances") if isinstance(config, dict) else None
    src_index = chosen[data.tms_instance] if isinstance(chosen, list) and len(chosen) == model.n_instances else data.tms_instance
    if isinstance(probs, list) and src_index < len(probs):
        p = probs[src_index]
        info["feature_probability"] = p[0] if isinstance(p, list) and len(set(p)) == 1 else p
    elif isinstance(probs, (int, float)):
        info["feature_probability"] = probs
    info["magnitude"] = spec.get("magnitude", "uniform")
    model = model.subset([data.tms_instance])
    for flag, given, actual in (("--n-features", data.n_features, model.n_features), ("--d-model", data.d_model, model.d_hidden)):
        if given is not None and given != actual:
            raise ValueError(f"{flag} {given} does not match the toy model in {run} ({actual}); leave it out or make them equal")
    for prm in model.parameters():
        prm.requires_grad_(False)
    return model, info


def build_source(data: SAEData, seed: int, device: torch.device) -> tuple[Any, dict[str, Any]]:
    """The data source the flags describe (validated; nothing trained yet) and a summary of
    it for the console (the feature probability used, the toy-model instance)."""
    from ..data.features import GaussianMixture, ModelActivations, SparseFeatures, UnitCube
    from ..device import derive_seed

    dseed = derive_seed(seed, "data")
    if data.data == "features":
        n, d = data.n_features or DEFAULT_N_FEATURES, data.d_model or DEFAULT_D_MODEL
        p = data.feature_probability if data.feature_probability is not None else min(1.0, 3.0 / n)
        if data.firing != "constant" or data.hierarchy is not None:
            from ..data.hierarchy import HierarchicalFeatures, tree

            hier = None
            if data.hierarchy is not None:
                n_p, n_c = data.hierarchy_shape()
                if n_p * (n_c + 1) > n:
                    raise ValueError(f"--hierarchy {data.hierarchy} needs {n_p * (n_c + 1)} features, more than --n-features {n}")
                hier = tree(n_p, n_c, mutually_exclusive=data.hierarchy_exclusive)
            src = HierarchicalFeatures(n, p, 1, hierarchy=hier, firing=data.firing, zipf_exponent=data.zipf_exponent,
                                       d_embed=d, seed=dseed, device=device)
            return src, {"p": p}
        return SparseFeatures(n, p, 1, d_embed=d, seed=dseed, device=device), {"p": p}
    if data.data == "tms":
        model, info = _tms_model(data, seed, device)
        p = data.feature_probability
        origin = "--feature-probability"
        if p is None:
            if "feature_probability" in info:
                p, origin = info["feature_probability"], f"the p of instance {data.tms_instance} of {data.tms_run}"
            else:
                p, origin = min(1.0, 3.0 / model.n_features), "3/N"
        feats = SparseFeatures(model.n_features, p, 1, magnitude=info.get("magnitude", "uniform"), seed=dseed, device=device)
        summary = {"p": p, "p_from": origin}
        if data.tms_run is not None:
            summary["tms_instance"] = data.tms_instance
        return ModelActivations(model, feats), summary
    if data.data == "activations":
        from ..data.activations import Activations

        src = Activations(data.activations, holdout=data.holdout, seed=dseed, device=device)
        if data.d_model is not None and data.d_model != src.dim:
            raise ValueError(f"--d-model {data.d_model} does not match the {src.dim} columns of {data.activations}; leave it out")
        return src, {"rows": src.n_rows, "heldout": src.n_heldout}
    d = data.d_model or DEFAULT_D_MODEL
    if data.data == "gaussian-mixture":
        return GaussianMixture(data.n_components, d, 1, seed=dseed, device=device), {}
    return UnitCube(d, 1, seed=dseed, device=device), {}


def _options(arch: str, args: argparse.Namespace) -> dict[str, Any]:
    """The chosen architecture's options from the flags (a note for another architecture's
    option given a non-default value)."""
    dests = getattr(args, "_flag_dests", {})
    mine = _arch_flags(arch)
    out: dict[str, Any] = {}
    for name in ARCHITECTURES:
        opts = _options_class(name)
        if opts is None:
            continue
        for spec in configargs.field_specs(opts, flags=SAE_FLAGS):
            if spec.flag not in dests:
                continue
            value = getattr(args, dests[spec.flag])
            if name == arch:
                out[spec.name] = tuple(value) if isinstance(value, list) else value
            elif spec.flag not in mine and value != spec.default:
                _common.note("sae", f"{spec.flag} applies to --arch {name}; ignored for --arch {arch}")
                mine.add(spec.flag)  # say it once
    return out


def _arch_flags(arch: str) -> set[str]:
    opts = _options_class(arch)
    return {s.flag for s in configargs.field_specs(opts, flags=SAE_FLAGS)} if opts else set()


# ---------------------------------------------------------------------- run
def run_sae(args: argparse.Namespace) -> int:
    from ..device import resolve_device, set_threads
    from ..train.loop import train
    from ..sae import build_sae
    from ..sae.evaluate import evaluate_sae

    run = _common.run_settings(args)
    data = configargs.build(SAEData, args)
    for flag in data.ignored():
        _common.note("sae", f"{flag} does not apply to --data {data.data}; ignored")
    tcfg = _common.train_config(args)
    arch, n_i = args.arch, args.n_instances
    check_int("n_instances", n_i, 1)
    l1 = _common.sweep_values(args.l1_coefficient, n_i, "--l1-coefficient")
    k = None
    if arch in k_archs():
        k = _common.sweep_values(args.k or [DEFAULT_K], n_i, "--k", integer=True)
    elif args.k is not None:  # one command line can drive every --arch: say it, do not fail
        _common.note("sae", f"--k applies to topk and batchtopk; ignored for --arch {arch}")
    out = _common.check_output_dir(run.out)
    run_flags = _common.train_flags(run)
    device = resolve_device(run.device)
    source, summary = build_source(data, run.seed, device)
    truth = None
    if data.truth is not None:  # checked against the activations' width before any training
        from ..workbench.truth import read_truth

        truth = read_truth(data.truth, width=source.dim, flag="--truth",
                           width_from=f"the activations {data.activations} (shape ({summary['rows']}, {source.dim}))")
    codes = None
    if data.truth_codes is not None:
        from ..workbench.truth import read_codes

        codes = read_codes(data.truth_codes, rows=int(summary["rows"]), features=int(truth.shape[0]))
    dict_size = args.dict_size if args.dict_size is not None else 4 * source.dim
    if k is not None and not args.k and dict_size >= 1 and max(k) >= dict_size:  # SAEConfig names the field k
        raise ValueError(f"--k defaults to {DEFAULT_K}, which keeps all F = {dict_size} latents of --arch {arch} "
                         f"(no sparsity); give --k below --dict-size")
    overrides: dict[str, Any] = dict(d_model=source.dim, dict_size=dict_size, n_instances=n_i, l1_coefficient=tuple(l1),
                                     k=None if k is None else tuple(k))
    opts = _options(arch, args)
    if "options" in {f.name for f in dataclasses.fields(SAEConfig)}:
        overrides["options"] = opts
    cfg = configargs.build(SAEConfig, args, **overrides)
    threads = set_threads(run.threads, work=n_i * tcfg.batch_size * cfg.d_model * cfg.dict_size * 2)
    sae = build_sae(cfg, seed=run.seed, device=device)
    if "p" in summary:
        where = f" from {summary['p_from']}" if "p_from" in summary else ""
        inst = f", toy-model instance {summary['tms_instance']}" if "tms_instance" in summary else ""
        print(f"data: {data.data}, feature probability p = {summary['p']:.4g}{where}{inst}")
    if "heldout" in summary:
        print(f"data: activations from {data.activations}, {summary['rows']} rows, the last {summary['heldout']} held out")

    def metrics(model: Any) -> dict[str, Any]:
        m = evaluate_sae(model, source, n_samples=tcfg.eval_samples, truth="auto" if truth is None else truth[None])
        if truth is not None:  # mmcs and mcc come from evaluate_sae, as for synthetic data
            from ..workbench.truth import latent_matches

            s = latent_matches(model.decoder_directions(), truth[None])
            m.update(truth_file=str(Path(data.truth).resolve()), truth_shape=list(truth.shape),
                     truth_match=s["match"].tolist(), truth_cosine=s["best"].tolist())
        if codes is not None:  # per-latent precision/recall/F1 of the firing, on the rows evaluate_sae scored
            from ..workbench.truth import firing_against_codes

            first = source.n_train if source.n_heldout else 0
            rows = torch.arange(first, source.n_rows)  # the held-out rows (all rows with --holdout 0)
            m.update(firing_against_codes(model, source._rows(rows), codes[first:]))
        if arch not in k_archs():  # a k-sparse SAE has no sparsity penalty: record none
            m["l1_coefficient"] = list(cfg.per_instance("l1_coefficient"))
        if k is not None:
            m["k"] = list(k)
        m["data"] = data.data
        m["arch"] = arch
        return m

    result = train(sae, source, tcfg, out, metrics=metrics, desc=f"sae {arch} x{n_i}", **run_flags)
    m = result.metrics
    # FVU above 2: the reconstruction is worse than twice predicting the mean.
    trainer_ok = result.converged.tolist() if getattr(result, "converged", None) is not None else None
    converged = _common.converged(trainer_ok, m["fvu"], [FVU_CEILING] * n_i)
    m["converged"] = converged
    m["non_converged_instances"] = [i for i, ok in enumerate(converged) if not ok]
    m["threads"] = threads
    if "p" in summary:
        m["feature_probability"] = summary["p"]
    if "tms_instance" in summary:
        m["tms_instance"] = summary["tms_instance"]
    from ..train.runs import write_json

    write_json(out / "metrics.json", m)
    print(f"trained {n_i} {arch} SAE(s), D={cfg.d_model} F={cfg.dict_size}, on {data.data} data, "
          f"{tcfg.steps} steps on {result.device} in {result.train_seconds:.2f} s ({threads} thread(s))")
    sweep = "k" if k is not None else ("l0 coef" if arch == "jumprelu" else "l1")
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
    print(f"run folder: {out}")
    _common.warn_not_converged("sae", converged, result.final_loss.tolist(), f"fvu above {FVU_CEILING:g} or loss grown tenfold")
    return 0


__all__ = ["DATA_KINDS", "SAEData", "add_parser", "build_source", "run_sae"]
