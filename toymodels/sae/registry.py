"""The registry of SAE architectures: name → class.

An architecture is one module in ``toymodels/sae/`` whose class is decorated with
:func:`register`, plus one import line in ``toymodels/sae/__init__.py``.
"""
from __future__ import annotations

from typing import Any

ARCHITECTURES: dict[str, Any] = {}
"""Architecture name → :class:`toymodels.sae.base.SAE` subclass, in registration order."""


def register(cls: Any) -> Any:
    """Class decorator: make ``cls`` buildable by its ``arch`` name."""
    name = getattr(cls, "arch", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__} needs a class attribute arch = '<name>' to be registered")
    if name in ARCHITECTURES and ARCHITECTURES[name] is not cls:
        raise ValueError(f"an SAE architecture named {name!r} is already registered ({ARCHITECTURES[name].__name__})")
    ARCHITECTURES[name] = cls
    return cls


def arch_names() -> tuple[str, ...]:
    """The registered architecture names, in registration order."""
    return tuple(ARCHITECTURES)
