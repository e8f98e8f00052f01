"""Configs are the CLI: flags generated from dataclass fields, types and docstrings
(:mod:`toymodels.configargs`); every flag of the hand-written CLI keeps its name and default;
no import circle between the commands, and the core never imports the CLI."""
import argparse
import ast
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from toymodels.cli import configargs
from toymodels.cli import build_parser
from toymodels.models import TMSConfig
from toymodels.sae import SAEConfig
from toymodels.train import TrainConfig

MODES = ("fast", "slow")
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Toy:
    """A config with one field of every supported kind."""

    steps: int = 10
    """Optimizer steps."""
    rate: float = 0.5
    """A rate in (0, 1]."""
    mode: str = "fast"
    """fast or slow."""
    verbose: bool = False
    """Say more."""
    tied: bool = True
    """Tie the weights."""
    limit: int | None = None
    """An optional limit."""
    sweep: float | tuple[float, ...] = 0.1
    """One value or one per instance."""
    pair: tuple[float, float] = (0.9, 0.99)
    """Two numbers."""
    color: str = field(default="red", metadata={"flag": "--colour", "choices": ("red", "blue")})
    """A field with its own flag name and choices."""

    def __post_init__(self) -> None:
        from toymodels._validate import check_choice, check_float

        check_choice("mode", self.mode, MODES)
        check_float("rate", self.rate, 0.0, 1.0, lo_open=True)


def _parser(**kw):
    p = argparse.ArgumentParser()
    configargs.add_arguments(p, Toy, **kw)
    return p


def test_field_docs_are_the_string_under_each_field():
    docs = configargs.field_docs(Toy)
    assert docs["steps"] == "Optimizer steps." and docs["color"] == "A field with its own flag name and choices."
    assert configargs.field_docs(TrainConfig)["lr"] == "Peak learning rate."
    assert configargs.field_docs(TMSConfig)["n_features"] == "N, the number of input features."


def test_every_kind_of_field_round_trips():
    p = _parser(negate={"tied": "--untied"})
    assert configargs.build(Toy, p.parse_args([])) == Toy()
    args = p.parse_args(["--steps", "3", "--rate", "0.25", "--mode", "slow", "--verbose", "--untied", "--limit", "7",
                         "--sweep", "0.1", "0.2", "--pair", "0.5", "0.6", "--colour", "blue"])
    assert configargs.build(Toy, args) == Toy(3, 0.25, "slow", True, False, 7, (0.1, 0.2), (0.5, 0.6), "blue")


def test_choices_come_from_the_validator_constant_and_metadata():
    p = _parser()
    with pytest.raises(SystemExit):
        p.parse_args(["--mode", "medium"])  # MODES, read from check_choice in __post_init__
    with pytest.raises(SystemExit):
        p.parse_args(["--colour", "green"])  # metadata choices
    assert "--color" not in p.format_help()  # metadata flag replaces the field name


def test_help_is_the_docstring_with_the_default():
    text = " ".join(_parser(defaults={"steps": 99}).format_help().split())
    assert "Optimizer steps. (default 99)" in text and "A rate in (0, 1]. (default 0.5)" in text


def test_bad_values_fail_in_the_dataclass_naming_the_field():
    with pytest.raises(ValueError, match="rate"):
        configargs.build(Toy, _parser().parse_args(["--rate", "2"]))


# Every flag of `toymodels tms --help` and `toymodels sae --help` before the generated CLI,
# with its default (None: decided later from other flags).
OLD_FLAGS = {
    "tms": {
        "--model": "relu-output", "--n-features": 5, "--d-hidden": 2, "--instances": 1, "--feature-probability": 0.05,
        "--importance-decay": 1.0, "--best-of": 1, "--out": "runs/tms", "--steps": 5000, "--batch-size": 1024,
        "--lr": 1e-3, "--optimizer": "adam", "--weight-decay": 0.0, "--warmup-steps": 0, "--schedule": "constant",
        "--checkpoint-every": 1000, "--max-instances-per-chunk": None, "--resume": False, "--seed": 0,
        "--device": "auto", "--quiet": False,
    },
    "sae": {
        "--data": "features", "--n-features": None, "--d-model": None, "--feature-probability": None,
        "--n-components": 12, "--tms-run": None, "--tms-instance": 0, "--random-weights": False,
        "--tms-model": "relu-output", "--arch": "relu", "--dict-size": None, "--l1-coefficient": [0.1], "--k": None,
        "--instances": 1, "--aux-k": None, "--aux-coefficient": 1 / 32, "--dead-window": 200,
        "--decoder-orthogonality": 0.0, "--untied-init": True, "--b-dec-init": "geometric-median",
        "--sparsity-warmup-steps": 0, "--resample-every": 0, "--jumprelu-bandwidth": 0.05,
        "--jumprelu-threshold": 0.1, "--threshold-ema": 0.01, "--eval-samples": 16384, "--out": "runs/sae",
        "--steps": 3000, "--batch-size": 1024, "--lr": 1e-3, "--optimizer": "adam", "--weight-decay": 0.0,
        "--warmup-steps": 0, "--schedule": "constant", "--checkpoint-every": 1000, "--max-instances-per-chunk": None,
        "--resume": False, "--seed": 0, "--device": "auto", "--quiet": False,
    },
}


def _subparser(cmd):
    p = build_parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[cmd]


@pytest.mark.parametrize("cmd, flag", [(c, f) for c in OLD_FLAGS for f in OLD_FLAGS[c]])
def test_every_old_flag_keeps_its_name_and_default(cmd, flag):
    sp = _subparser(cmd)
    action = next((a for a in sp._actions if flag in a.option_strings), None)
    assert action is not None, f"{cmd} lost {flag}"
    default = action.default
    if flag == "--untied-init":  # store_false on tied_init (default True): same meaning as before
        assert action.const is False and default is True
        return
    assert default == OLD_FLAGS[cmd][flag] or [default] == OLD_FLAGS[cmd][flag], (flag, default)


def test_sae_flags_reach_the_config(tmp_path):
    sp = _subparser("sae")
    args = sp.parse_args(["--untied-init", "--jumprelu-threshold", "0.3", "--arch", "jumprelu", "--aux-k", "0"])
    assert args.tied_init is False and args.aux_k == 0
    from toymodels.cli.sae import _options

    opts = _options("jumprelu", args)
    assert 0.3 in opts.values()  # the arch's own Options receives --jumprelu-threshold


@pytest.mark.parametrize("cmd", ["tms", "sae"])
def test_every_train_config_field_is_a_flag(cmd):
    """Adding a TrainConfig field with its docstring adds the flag to both commands."""
    flags = {s for a in _subparser(cmd)._actions for s in a.option_strings}
    for f in dataclasses.fields(TrainConfig):
        assert "--" + f.name.replace("_", "-") in flags, f.name


def test_every_sae_config_field_is_a_flag():
    flags = {s for a in _subparser("sae")._actions for s in a.option_strings}
    names = {f.name for f in dataclasses.fields(SAEConfig)} - {"d_model", "options", "n_instances"}
    for name in names:
        assert "--" + name.replace("_", "-") in flags or name == "jumprelu_init_threshold", name


def _imports(path):
    """Module names imported by a file (relative imports resolved against toymodels)."""
    tree = ast.parse(path.read_text())
    pkg = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = pkg.rsplit(".", node.level - 1)[0] if node.level else ""
            mod = ".".join(x for x in (base, node.module) if x)
            out |= {f"{mod}.{a.name}" for a in node.names} if node.module is None else {mod}
    return out


def test_no_import_circle_and_the_core_does_not_import_the_cli():
    cli = ROOT / "toymodels" / "cli"
    for name in ("sae", "tms", "_common"):
        others = {f"toymodels.cli.{o}" for o in ("sae", "tms")} - {f"toymodels.cli.{name}"}
        bad = {m for m in _imports(cli / f"{name}.py") if m in others or m == "toymodels.cli"}
        assert not bad, (name, bad)
    assert not (ROOT / "toymodels" / "sae" / "cli.py").exists()
    for path in (ROOT / "toymodels").rglob("*.py"):
        if cli in path.parents or path.name == "__main__.py":  # `python -m toymodels` is the CLI
            continue
        assert not any(m == "toymodels.cli" or m.startswith("toymodels.cli.") for m in _imports(path)), path
