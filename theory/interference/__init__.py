"""Interference between random directions (seed 000, "Some costs of superposition").

:mod:`.mathematics` holds the laws — the exact law of <u, v>, the noise of k active features,
reading superposed features out and its capacity, the largest coherence, the Welch bound, and
anisotropic directions; :mod:`.decoders` the SAE decoder-geometry experiment on structured
features; :mod:`.claims` the checks of topic ``interference``. Every public name of the
mathematics and the experiment is importable from here.
"""
from __future__ import annotations

from . import claims  # noqa: F401  (registers the claims)
from .decoders import *  # noqa: F401,F403
from .decoders import __all__ as _decoders_all
from .mathematics import *  # noqa: F401,F403
from .mathematics import __all__ as _mathematics_all

__all__ = [*_mathematics_all, *_decoders_all]
