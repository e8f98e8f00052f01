"""Hessians of toy models: Hessian-vector products, Lanczos, Hutchinson and stochastic Lanczos
quadrature (seed 004: the top and bottom Hessian eigenvalues, and more, come from
Hessian-vector products alone; the Hessian itself never has to be stored).

Everything is meant to run in float64; the claims check it there.

- :mod:`.hvp`      Hessian-vector products and a toy-model instance's loss as a function of θ
- :mod:`.lanczos`  Lanczos, Gauss quadrature, Hutchinson, stochastic Lanczos quadrature
- :mod:`.claims`   the registered claims (and :func:`random_symmetric`, their test matrices)

Every public name is importable from here, as before the split.
"""
from .hvp import *  # noqa: F401,F403
from .hvp import __all__ as _hvp_all
from .lanczos import *  # noqa: F401,F403
from .lanczos import __all__ as _lanczos_all
from .claims import random_symmetric  # noqa: E402  (registers the claims)

__all__ = [*_hvp_all, *_lanczos_all, "random_symmetric"]
