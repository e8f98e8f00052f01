"""Input checks shared by every config and generator.

Each check raises ``ValueError`` naming the offending field and the allowed range, so a
bad value fails at construction, before any work is done.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import torch


def check_int(name: str, value: Any, lo: int = 1, hi: int | None = None) -> int:
    """An integer in [lo, hi]: Python, numpy or torch integers; bools and floats (even 5.0)
    are rejected, so a float never slips into a shape and fails later."""
    rng = f"[{lo}, {hi}]" if hi is not None else f"[{lo}, inf)"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer in {rng}, got {value!r} ({type(value).__name__})")
    value = int(value)  # numpy and torch integers too
    if value < lo or (hi is not None and value > hi):
        raise ValueError(f"{name} must be an integer in {rng}, got {value}")
    return value


SEED_MAX = 2**64 - 1


def check_seed(name: str, value: Any) -> int:
    """A seed: an integer in [0, 2**64 - 1] (what ``torch.Generator.manual_seed`` accepts)."""
    return check_int(name, value, 0, SEED_MAX)


def check_float(
    name: str,
    value: Any,
    lo: float = -math.inf,
    hi: float = math.inf,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    """A finite (unless a bound is infinite) real number in the given interval; text and
    booleans are rejected (``"0.1"`` is not a number)."""
    if isinstance(value, (str, bytes, bool)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {value!r}") from None
    rng = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
    if math.isnan(value):
        raise ValueError(f"{name} must be a number in {rng}, got NaN")
    bad = value < lo or value > hi or (lo_open and value == lo) or (hi_open and value == hi)
    if bad:
        raise ValueError(f"{name} must be in {rng}, got {value}")
    return value


def check_positive(name: str, value: Any) -> float:
    return check_float(name, value, 0.0, math.inf, lo_open=True, hi_open=True)


def check_nonneg(name: str, value: Any) -> float:
    return check_float(name, value, 0.0, math.inf, hi_open=True)


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_tensor_range(
    name: str, t: torch.Tensor, lo: float, hi: float, *, lo_open: bool = False
) -> torch.Tensor:
    """Every entry finite and within [lo, hi] (or (lo, hi] with ``lo_open``)."""
    if torch.isnan(t).any():
        raise ValueError(f"{name} must contain numbers in [{lo}, {hi}], found NaN")
    bad = (t < lo) | (t > hi) | ((t == lo) if lo_open else torch.zeros_like(t, dtype=torch.bool))
    if bad.any():
        v = t[bad].flatten()[0].item()
        rng = f"{'(' if lo_open else '['}{lo}, {hi}]"
        raise ValueError(f"{name} must have every entry in {rng}, found {v}")
    return t


def as_instance_tensor(
    name: str,
    value: float | Sequence[float] | torch.Tensor,
    n_instances: int,
    n_features: int | None = None,
    *,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """A scalar, per-instance (I,), or per-instance-and-feature (I, N) value as an (I, 1) or
    (I, N) float tensor on the CPU. Text, booleans and non-numbers raise naming ``name``."""
    if isinstance(value, (str, bytes, bool)) or (isinstance(value, torch.Tensor) and value.dtype == torch.bool):
        raise ValueError(f"{name} must be a number or a sequence/tensor of numbers, got {value!r}")
    try:
        t = torch.as_tensor(value, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{name} must be a number or a sequence/tensor of numbers, got {value!r}") from None
    if t.ndim == 0:
        t = t.expand(n_instances).reshape(n_instances, 1)
    elif t.ndim == 1:
        if t.shape[0] != n_instances:
            raise ValueError(f"{name} has {t.shape[0]} values but there are {n_instances} instances")
        t = t.reshape(n_instances, 1)
    elif t.ndim == 2:
        if t.shape[0] == 1 and n_instances > 1:  # one row shared by every instance
            t = t.expand(n_instances, t.shape[1])
        if t.shape[0] != n_instances or (n_features is not None and t.shape[1] not in (1, n_features)):
            raise ValueError(
                f"{name} must be shaped (instances, features) = ({n_instances}, {n_features}), got {tuple(t.shape)}"
            )
    else:
        raise ValueError(f"{name} must be a scalar, (instances,) or (instances, features); got shape {tuple(t.shape)}")
    return t.to(dtype).contiguous()


def check_bool(name: str, value: Any) -> bool:
    """True or False (numpy bools too); 0/1, text and None are rejected."""
    if not isinstance(value, bool) and type(value).__name__ != "bool_":
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_tensor(
    name: str,
    x: Any,
    *,
    ndim: int | Sequence[int] | None = None,
    finite: bool = True,
    floating: bool = False,
    nonempty: bool = True,
) -> torch.Tensor:
    """A torch tensor with ``ndim`` dimensions (one or a choice), real numbers (no bool or
    complex), every entry finite (``finite``), floating point (``floating``) and at least one
    entry (``nonempty``); returns it unchanged."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch tensor, got {type(x).__name__}")
    if ndim is not None:
        dims = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in dims:
            want = " or ".join(map(str, dims))
            raise ValueError(f"{name} must have {want} dimensions, got shape {tuple(x.shape)}")
    if x.dtype == torch.bool or x.is_complex():
        raise ValueError(f"{name} must hold real numbers, got dtype {x.dtype}")
    if floating and not x.dtype.is_floating_point:
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if nonempty and x.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(x.shape)}")
    if finite and x.dtype.is_floating_point and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite, found NaN or inf")
    return x
