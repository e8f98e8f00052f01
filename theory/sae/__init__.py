"""Claims about sparse autoencoders (topic ``sae``).

- :mod:`.analytic`   exact claims: the composed-latent bias interval, composition preference
- :mod:`.geometry`   decoder geometry vs random directions, gated vs rescaled, bound dictionaries
- :mod:`.stability`  seed stability on trained vs random toy models, featureless data
- :mod:`.pruning`    high-frequency pruning, with dense features in the readout's null space

Importing this package registers every claim of the topic.
"""
from .analytic import *  # noqa: F401,F403
from .analytic import __all__ as _analytic_all
from . import geometry, pruning, stability  # noqa: E402,F401  (each registers its claims)

__all__ = list(_analytic_all)
