"""The registry of SAE architectures: name → class, filled by discovery.

An architecture is one module in ``toymodels/sae/`` whose :class:`~toymodels.sae.base.SAE`
subclass is decorated with :func:`register`. :func:`discover` imports every module of the
package except the shared machinery (:data:`NOT_ARCHITECTURES`), so a new architecture
module is found without editing any list.

Each registered class carries its own options as a frozen dataclass ``cls.Options`` (every
field with a default and a docstring under it; ``metadata={"flag": "--name"}`` fixes the CLI
flag, otherwise it is ``--`` + the name with dashes). :func:`make_options` validates a dict or
an instance against it for :class:`~toymodels.sae.config.SAEConfig`.
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from typing import Any

ARCHITECTURES: dict[str, Any] = {}
"""Architecture name → :class:`toymodels.sae.base.SAE` subclass."""

NOT_ARCHITECTURES = frozenset({"base", "config", "registry", "cli", "sweep", "evaluate", "sparse"})
"""Modules of ``toymodels.sae`` that hold shared machinery, not an architecture (the CLI and
the sweep helpers import the package, so importing them during discovery would be a circle)."""


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """An architecture without options of its own."""


def register(cls: Any) -> Any:
    """Class decorator: make ``cls`` buildable by its ``arch`` name. ``cls.Options`` must be
    a frozen dataclass whose fields all have defaults."""
    name = getattr(cls, "arch", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__} needs a class attribute arch = '<name>' to be registered")
    if name in ARCHITECTURES and ARCHITECTURES[name] is not cls:
        raise ValueError(f"an SAE architecture named {name!r} is already registered ({ARCHITECTURES[name].__name__})")
    opts = getattr(cls, "Options", None)
    if not (isinstance(opts, type) and dataclasses.is_dataclass(opts) and opts.__dataclass_params__.frozen):
        raise TypeError(f"{cls.__name__}.Options must be a frozen dataclass (use NoOptions when there are none)")
    try:
        opts()
    except TypeError as e:
        raise TypeError(f"every field of {cls.__name__}.Options needs a default: {e}") from None
    ARCHITECTURES[name] = cls
    return cls


def discover() -> None:
    """Import every architecture module of ``toymodels.sae`` (each registers its classes)."""
    pkg = importlib.import_module(__package__)
    for mod in pkgutil.iter_modules(pkg.__path__):
        if not mod.name.startswith("_") and mod.name not in NOT_ARCHITECTURES:
            importlib.import_module(f"{__package__}.{mod.name}")


def arch_names() -> tuple[str, ...]:
    """The registered architecture names, sorted (independent of the import order)."""
    return tuple(sorted(ARCHITECTURES))


def k_archs() -> tuple[str, ...]:
    """Architectures whose sparsity is set by ``k`` rather than a penalty (``uses_k``), sorted."""
    return tuple(n for n in arch_names() if ARCHITECTURES[n].uses_k)


def make_options(arch: str, value: Any) -> Any:
    """``value`` (None, a dict of option fields, or an ``Options`` instance) as an instance of
    ``ARCHITECTURES[arch].Options``; unknown keys and another architecture's options raise
    ValueError naming them."""
    opts = ARCHITECTURES[arch].Options
    if value is None:
        return opts()
    if isinstance(value, opts):
        return value
    names = [f.name for f in dataclasses.fields(opts)]
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(
                f"options has unknown key(s) {unknown} for arch {arch!r}; its options are {names or 'none'}"
            )
        try:
            return opts(**value)
        except ValueError as e:
            raise ValueError(f"options for arch {arch!r}: {e}") from None
    raise ValueError(
        f"options must be a dict of {arch!r} options {names or '(none)'} or a {opts.__qualname__}; "
        f"got {type(value).__name__}"
    )
