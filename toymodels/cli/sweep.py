"""``toymodels sweep SPEC.toml --out DIR``: a grid of ``tms`` or ``sae`` runs from one spec file.

The spec's keys are the command's own flag names with underscores, checked against the
command's generated parser (:mod:`toymodels.configargs`): a typo'd key, an empty grid or a
value of the wrong type or range fails in one line, exit code 2, before any job runs. Each
grid point becomes the config dict that :mod:`toymodels.sweep` packs, runs and tabulates.
"""
from __future__ import annotations

import argparse
import copy
import itertools
import json
from dataclasses import asdict, dataclass
from typing import Any

from . import configargs
from .._validate import check_choice, check_float, check_int

SET_BY_SWEEP = ("help", "out", "instances", "resume", "overwrite", "threads", "device", "quiet", "prefetch_elements",
                "tms_run", "tms_instance", "random_weights", "tms_model")
"""Flags of tms/sae that a sweep decides itself (a spec giving one is refused)."""


@dataclass(frozen=True)
class SweepSettings:
    """How a sweep runs (the flags of ``toymodels sweep``)."""

    out: str = "runs/sweep"
    """Sweep folder: DIR/results.csv and one run folder per job in DIR/jobs/<id>/."""
    backend: str = "local"
    """local (this machine) or ray (a Ray cluster; pip install 'toymodels[ray]')."""
    address: str | None = None
    """--backend ray: the cluster address (default: a running cluster, else a local one)."""
    workers: int = 1
    """Worker processes of one CPU thread each (local backend)."""
    device: str = "auto"
    """Device of every job: auto picks CUDA when present."""
    max_pack: int | None = None
    """At most this many grid points per job (default: what fits in memory, at most 4096)."""
    max_retries: int = 3
    """Retries of a job whose worker process died."""

    def __post_init__(self) -> None:
        from ..sweep import BACKENDS

        check_choice("backend", self.backend, BACKENDS)
        check_int("workers", self.workers, 1)
        check_int("max_retries", self.max_retries, 0)
        if self.max_pack is not None:
            check_int("max_pack", self.max_pack, 1)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="run a grid of tms or sae runs from a spec file (resumable; local or Ray)",
        description="Run every point of SPEC's grid (command, [fixed], [grid]; keys are the command's flag names "
        "with underscores), packed into instance-batched jobs; write DIR/results.csv and DIR/jobs/<id>/. "
        "Running it again runs only the points not done.",
        epilog="Exit codes: 0 every point done; 1 some point failed (see the error column); 2 bad spec or input "
        "(one line, nothing run).",
    )
    p.add_argument("spec", metavar="SPEC.toml", help="the sweep spec (TOML)")
    configargs.add_arguments(p, SweepSettings, metavars={"out": "DIR", "address": "ADDR", "workers": "N"},
                             choices={"backend": ("local", "ray")})
    p.set_defaults(func=run_sweep_command, _commands=sub)


# ---------------------------------------------------------------------- spec keys -> flags
def _key(option: str) -> str:
    return option.lstrip("-").replace("-", "_")


def command_flags(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Spec key -> argparse action, for every long flag of a command's parser."""
    out = {}
    for a in parser._actions:
        for s in a.option_strings:
            if s.startswith("--") and not (isinstance(a, argparse.BooleanOptionalAction) and s.startswith("--no-")):
                out[_key(s)] = a
    return out


def _type_name(a: argparse.Action) -> str:
    if a.nargs == 0:
        return "a boolean (true or false)"
    t = a.type
    name = {int: "an integer", float: "a number", str: "a string"}.get(t, "a boolean (true or false)" if t is not None and getattr(t, "__name__", "") == "_parse_bool" else "a string")
    if isinstance(a.nargs, int) and a.nargs > 1:
        return f"a list of {a.nargs} values, each {name}"
    return name


def check_value(where: str, a: argparse.Action, v: Any) -> Any:
    """``v`` as the action would store it (one value for a sweep flag); ValueError naming
    ``where`` when its type or choice is wrong."""
    bad = ValueError(f"{where} = {v!r}: expected {_type_name(a)}" + (f" in {list(a.choices)}" if a.choices else ""))
    if a.nargs == 0:  # store_true / store_false / --flag/--no-flag
        if not isinstance(v, bool):
            raise bad
        return (not v) if isinstance(a, argparse._StoreFalseAction) else v
    if isinstance(a.nargs, int) and a.nargs > 1:
        if not isinstance(v, list) or len(v) != a.nargs:
            raise bad
        return [check_value(where, _Scalar(a), x) for x in v]
    if isinstance(v, list):
        raise bad
    t = a.type
    if t is int and (isinstance(v, bool) or not isinstance(v, int)):
        raise bad
    if t is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise bad
        v = float(v)
    if t is str and not isinstance(v, str):
        raise bad
    if t is not None and getattr(t, "__name__", "") == "_parse_bool" and not isinstance(v, bool):
        raise bad
    if a.choices and v not in a.choices:
        raise bad
    return [v] if a.nargs in ("+", "*") else v


class _Scalar(argparse.Action):
    def __init__(self, a: argparse.Action) -> None:
        super().__init__(option_strings=a.option_strings, dest=a.dest, type=a.type, choices=a.choices)


def _base_namespace(parser: argparse.ArgumentParser) -> argparse.Namespace:
    return parser.parse_args([])


# ---------------------------------------------------------------------- points -> configs
def _train_dict(ns: argparse.Namespace) -> dict[str, Any]:
    from . import _common

    t = asdict(_common.train_config(ns))
    check_int("steps", t["steps"], 1)  # steps = 0 would "finish" every point untrained
    for k in ("quiet", "prefetch_elements"):
        t.pop(k, None)
    t["betas"] = list(t["betas"])
    return t


def tms_config(ns: argparse.Namespace) -> dict[str, Any]:
    from ..models import TMSConfig
    from . import _common
    from .tms import TMSSettings

    model = configargs.build(TMSConfig, ns, n_instances=1)
    settings = configargs.build(TMSSettings, ns)
    if settings.best_of != 1:
        raise ValueError("best_of must be 1 in a sweep; put the seeds on a grid axis (seed = [0, 1, 2, 3]) instead")
    p = settings.feature_probability
    p = p[0] if isinstance(p, tuple) else p
    check_float("feature_probability", p, 0.0, 1.0)
    m = asdict(model)
    r = m.pop("importance_decay")
    m.pop("n_instances")
    seed = _common.run_settings(ns).seed
    check_int("seed", seed, 0, 2**63 - 1)
    return {"command": "tms", "model": m, "importance_decay": float(r), "feature_probability": float(p),
            "seed": int(seed), "train": _train_dict(ns)}


def sae_config(ns: argparse.Namespace) -> dict[str, Any]:
    from ..sae import SAEConfig
    from ..sae.registry import k_archs
    from . import _common
    from .sae import DEFAULT_D_MODEL, DEFAULT_K, DEFAULT_N_FEATURES, SAEData, _options

    data = configargs.build(SAEData, ns)
    if data.data == "tms":
        raise ValueError("data = 'tms' is not supported in a sweep yet; use features, gaussian-mixture or unit-cube")
    n = data.n_features or DEFAULT_N_FEATURES
    d = data.d_model or DEFAULT_D_MODEL
    p = data.feature_probability if data.feature_probability is not None else min(1.0, 3.0 / n)
    arch = ns.arch
    if ns.k and arch not in k_archs():
        raise ValueError(f"k = {ns.k[0]} has no effect for arch {arch!r} (k applies to {', '.join(sorted(k_archs()))}); "
                         "remove it")
    l1 = float(ns.l1_coefficient[0])
    k = (int(ns.k[0]) if ns.k else DEFAULT_K) if arch in k_archs() else None
    dict_size = ns.dict_size if ns.dict_size is not None else 4 * d
    cfg = configargs.build(SAEConfig, ns, d_model=d, dict_size=dict_size, n_instances=1, l1_coefficient=l1, k=k,
                           options=_options(arch, ns))
    s = cfg.to_dict()
    for key in ("l1_coefficient", "k", "n_instances"):
        s.pop(key, None)
    seed = _common.run_settings(ns).seed
    check_int("seed", seed, 0, 2**63 - 1)
    return {"command": "sae", "data": {"data": data.data, "n_features": n, "d_model": d, "feature_probability": float(p),
                                       "n_components": data.n_components},
            "sae": s, "l1_coefficient": l1, "k": k, "seed": int(seed), "train": _train_dict(ns)}


def spec_points(spec: Any, parser: argparse.ArgumentParser) -> list[Any]:
    """The grid points of ``spec`` as :class:`toymodels.sweep.Point`\\ s, every key, type
    and value checked against the command's ``parser`` (one-line ValueError)."""
    from ..sweep import Point

    from ..sweep.runner import check_n_points

    check_n_points(spec.n_points)  # before any work: a huge grid would not finish planning
    flags = command_flags(parser)
    checked: dict[str, Any] = {}
    for table, values in (("fixed", spec.fixed), ("grid", spec.grid)):
        for key, v in values.items():
            if key not in flags:
                near = [k for k in flags if k not in SET_BY_SWEEP and (k.startswith(key[:4]) or key in k)][:3]
                hint = f" (did you mean {', '.join(near)}?)" if near else ""
                raise ValueError(f"{spec.path}: {table}.{key} is not a flag of `toymodels {spec.command}`{hint}")
            if key in SET_BY_SWEEP:
                raise ValueError(f"{spec.path}: {table}.{key} is set by the sweep itself; remove it")
            a = flags[key]
            if table == "grid":
                checked[key] = [check_value(f"{spec.path}: grid.{key} entry", a, x) for x in v]
                seen: dict[str, Any] = {}
                for raw, x in zip(v, checked[key]):
                    norm = json.dumps(x, sort_keys=True)
                    if norm in seen:  # 1 and 1.0 for a number flag: one value, one point
                        raise ValueError(f"{spec.path}: grid.{key} gives the value {x!r} twice ({seen[norm]!r} and "
                                         f"{raw!r}); each point must be distinct")
                    seen[norm] = raw
            else:
                checked[key] = check_value(f"{spec.path}: fixed.{key}", a, v)
    base = _base_namespace(parser)
    for key in spec.fixed:
        setattr(base, flags[key].dest, checked[key])
    build = tms_config if spec.command == "tms" else sae_config
    grid_keys = list(spec.grid)
    # Grid keys that only set one per-instance value of the config (tms: feature_probability,
    # importance_decay, seed; sae: l1_coefficient, seed) are checked once per value and
    # patched in; the config is built once per combination of the other keys (a 64 x 64 x 4
    # phase diagram builds 133 configs, not 16384).
    patch = {k: PATCHABLE[spec.command][k] for k in grid_keys if k in PATCHABLE[spec.command]}
    other = [k for k in grid_keys if k not in patch]

    def built(combo: dict[str, int]) -> dict[str, Any]:
        ns = copy.copy(base)
        for key, j in combo.items():
            setattr(ns, flags[key].dest, checked[key][j])
        try:
            return build(ns)
        except ValueError as e:
            labels = {k: spec.grid[k][j] for k, j in combo.items()}
            raise ValueError(f"{spec.path}: grid point {labels}: {' '.join(str(e).split())}") from None

    _check_effect(spec, flags, checked, base, built)
    first = {k: 0 for k in patch}
    patched: dict[tuple[str, int], Any] = {}
    for key in patch:
        for j in range(len(spec.grid[key])):
            patched[key, j] = built({**first, key: j})[patch[key]]
    points = []
    for combo in itertools.product(*(range(len(spec.grid[k])) for k in other)):
        cfg0 = built({**first, **dict(zip(other, combo))})
        for pcombo in itertools.product(*(range(len(spec.grid[k])) for k in patch)):
            idx = {**dict(zip(other, combo)), **dict(zip(patch, pcombo))}
            cfg = dict(cfg0)
            for key, j in zip(patch, pcombo):
                cfg[patch[key]] = patched[key, j]
            points.append((tuple(idx[k] for k in grid_keys), cfg))
    points.sort(key=lambda t: t[0])  # the grid's order: first key slowest
    return [Point(labels={k: spec.grid[k][j] for k, j in zip(grid_keys, idx)}, config=cfg) for idx, cfg in points]


def _check_effect(spec: Any, flags: dict[str, argparse.Action], checked: dict[str, Any],
                  base: argparse.Namespace, built: Any) -> None:
    """Every spec value must reach the point: a value that leaves the point's config as it
    is without it (a setting the sweep cannot apply, e.g. ``firing`` or ``k`` for a relu SAE)
    is refused by name, as are two grid values that give one point. Each key is tried on
    its own, the grid's other keys at their first value."""
    defaults = _base_namespace_defaults(flags)
    first = {k: 0 for k in spec.grid}

    def same_without(ns_change: dict[str, Any], combo: dict[str, int]) -> bool | None:
        try:
            a = built(combo)
        except ValueError:
            return None  # an invalid point: the point's own build reports it
        saved = {d: getattr(base, d) for d in ns_change}
        try:
            for d, val in ns_change.items():
                setattr(base, d, val)
            try:
                b = built(combo)
            except ValueError:
                return False  # the value changes what is valid: it takes effect
        finally:
            for d, val in saved.items():
                setattr(base, d, val)
        return a == b

    for key in spec.fixed:
        a = flags[key]
        default = defaults[a.dest]
        if default is None or _same_value(checked[key], default):
            continue
        if same_without({a.dest: default}, first):
            raise ValueError(f"{spec.path}: fixed.{key} = {spec.fixed[key]!r} has no effect on a "
                             f"`toymodels {spec.command}` sweep point (the sweep cannot apply it here); remove it")
    for key, vals in spec.grid.items():
        a = flags[key]
        configs: dict[str, int] = {}
        for j in range(len(vals)):
            try:
                cfg = built({**first, key: j})
            except ValueError:
                continue
            norm = json.dumps(cfg, sort_keys=True)
            if norm in configs:
                raise ValueError(f"{spec.path}: grid.{key} values {vals[configs[norm]]!r} and {vals[j]!r} give the "
                                 f"same point (the sweep cannot apply grid.{key} here); remove one")
            configs[norm] = j
        default = defaults[a.dest]
        if len(vals) == 1 and default is not None and not _same_value(checked[key][0], default):
            # a one-value axis acts like a fixed value: it must change the point
            try:
                cfg, cfg_default = built(first), built({k: j for k, j in first.items() if k != key})
            except ValueError:
                continue
            if cfg == cfg_default:
                raise ValueError(f"{spec.path}: grid.{key} = {vals!r} has no effect on a `toymodels "
                                 f"{spec.command}` sweep point (the sweep cannot apply it here); remove it")


def _base_namespace_defaults(flags: dict[str, argparse.Action]) -> dict[str, Any]:
    return {a.dest: a.default for a in flags.values()}


def _same_value(x: Any, default: Any) -> bool:
    if isinstance(default, tuple):
        default = list(default)
    if isinstance(x, list) and not isinstance(default, list):
        return len(x) == 1 and x[0] == default
    return x == default


PATCHABLE = {
    "tms": {"feature_probability": "feature_probability", "importance_decay": "importance_decay", "seed": "seed"},
    "sae": {"l1_coefficient": "l1_coefficient", "seed": "seed"},
}
"""Spec key -> the config key it alone sets (checked per value, patched into each point)."""


def run_sweep_command(args: argparse.Namespace) -> int:
    from ..sweep import load_spec, run_sweep
    from ._common import check_output_dir

    settings = configargs.build(SweepSettings, args)
    spec = load_spec(args.spec)
    commands = args._commands.choices
    points = spec_points(spec, commands[spec.command])
    out = check_output_dir(settings.out)
    report = run_sweep(spec.command, points, out, grid_keys=list(spec.grid), backend=settings.backend,
                       workers=settings.workers, address=settings.address, device=settings.device,
                       cap=settings.max_pack, max_retries=settings.max_retries)
    print(f"{report.n_points} point(s): {report.already_done} already done, {len(report.jobs)} job(s) run "
          f"({report.done} done, {report.failed} failed) in {report.seconds:.1f} s")
    print(f"results: {report.results}")
    return 1 if report.failed else 0
