"""Natural latents (topic ``natural_latents``): the mathematics and its claims.

- :mod:`.measures`  information measures on finite joints, the three errors (contract:
  ``mediation_error``, ``redundancy_error``, ``deterministic_redundancy_error``), constructions,
  deterministic latents, resampling
- :mod:`.search`    searches over softmax-parametrised joints for worst cases
- :mod:`.claims`    the registered claims and the pinned counterexamples

Every public name of the three modules is importable from here, as before the split.
"""
from .measures import *  # noqa: F401,F403
from .measures import __all__ as _measures_all
from .search import *  # noqa: F401,F403
from .search import __all__ as _search_all
from .claims import KL_RESAMPLING_ALL_ERRORS_COUNTEREXAMPLES, KL_RESAMPLING_COUNTEREXAMPLES  # noqa: E402  (registers the claims)
from .measures import _kl_resampling_fast  # noqa: F401  (tests compare it with the slow path)

__all__ = [*_measures_all, *_search_all, "KL_RESAMPLING_COUNTEREXAMPLES", "KL_RESAMPLING_ALL_ERRORS_COUNTEREXAMPLES"]
