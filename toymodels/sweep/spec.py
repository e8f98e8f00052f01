"""A sweep spec file: which command, the values every point shares, and the grid.

    command = "tms"
    [fixed]
    n_features = 2
    d_hidden = 1
    steps = 2000
    [grid]
    feature_probability = [0.01, 0.1, 1.0]
    importance_decay = [0.5, 1.0, 2.0]
    seed = [0, 1, 2, 3]

Keys are the command's flag names with underscores (``--batch-size`` -> ``batch_size``);
every ``[grid]`` value is a non-empty list and the grid is their Cartesian product, first
key slowest. This module checks the file's structure (tables, lists, scalars) only; which
keys and values a command accepts is checked against the command's own flags by the
command line (:mod:`toymodels.cli.sweep`), before any job runs.
"""
from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COMMANDS = ("tms", "sae")
TOP_LEVEL = ("command", "fixed", "grid")

Scalar = (bool, int, float, str)


@dataclass(frozen=True)
class Spec:
    """A parsed spec: ``command``, ``fixed`` values and ``grid`` axes (key -> list)."""

    command: str
    fixed: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)
    path: str = "<spec>"

    def points(self) -> list[dict[str, Any]]:
        """One dict of grid values per point, the product of the axes (first axis slowest)."""
        keys = list(self.grid)
        return [dict(zip(keys, combo)) for combo in itertools.product(*(self.grid[k] for k in keys))]

    @property
    def n_points(self) -> int:
        n = 1
        for v in self.grid.values():
            n *= len(v)
        return n


def _check_value(where: str, value: Any) -> None:
    """A spec value: a scalar, or (for a flag taking several numbers, e.g. betas) a flat list."""
    if isinstance(value, Scalar):
        return
    if isinstance(value, list) and value and all(isinstance(v, Scalar) for v in value):
        return
    raise ValueError(f"{where} must be a number, a string, a boolean or a flat list of them; got {value!r}")


def parse_spec(data: dict[str, Any], path: str = "<spec>") -> Spec:
    """A :class:`Spec` from the parsed TOML ``data``; a structural problem raises ValueError
    with one line naming ``path`` and the key."""
    unknown = [k for k in data if k not in TOP_LEVEL]
    if unknown:
        raise ValueError(f"{path}: unknown top-level key(s) {unknown}; a spec has command, [fixed] and [grid]")
    command = data.get("command")
    if command not in COMMANDS:
        raise ValueError(f"{path}: command must be one of {', '.join(repr(c) for c in COMMANDS)}; got {command!r}")
    fixed, grid = data.get("fixed", {}), data.get("grid")
    if not isinstance(fixed, dict):
        raise ValueError(f"{path}: [fixed] must be a table of key = value")
    if not isinstance(grid, dict) or not grid:
        raise ValueError(f"{path}: the [grid] table is missing or empty; give at least one key = [values]")
    for k, v in fixed.items():
        _check_value(f"{path}: fixed.{k}", v)
    for k, v in grid.items():
        if not isinstance(v, list):
            raise ValueError(f"{path}: grid.{k} must be a list of values, got {v!r}")
        if not v:
            raise ValueError(f"{path}: grid.{k} is an empty list (the grid would have no points)")
        for x in v:
            _check_value(f"{path}: grid.{k} entry", x)
        if len({repr(x) for x in v}) != len(v):
            raise ValueError(f"{path}: grid.{k} repeats a value ({v!r}); each point must be distinct")
    both = sorted(set(fixed) & set(grid))
    if both:
        raise ValueError(f"{path}: {both} appear in both [fixed] and [grid]; keep each key in one table")
    return Spec(command=command, fixed=dict(fixed), grid={k: list(v) for k, v in grid.items()}, path=path)


def load_spec(path: str | Path) -> Spec:
    """Read and structurally check a TOML spec file (one-line ValueError on any problem)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ValueError(f"cannot read spec {path}: {e.strerror or e}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path} is not valid TOML: {e}") from None
    return parse_spec(data, str(path))
