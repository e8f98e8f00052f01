"""Toy models of superposition: the geometry and the small exact results behind it.

Model and data (Elhage et al. 2022, "Toy Models of Superposition", section 2): feature x_i is 0
with probability S = 1 - p and Uniform[0, 1] otherwise, independently; the model is
x' = ReLU(WᵀW x + b) with W in R^{m x n}; the loss is E Σ_i I_i (x_i - x'_i)².
(``toymodels`` averages over the n features instead of summing: its loss is this one / n.)

The mathematics lives in submodules, the ``tms.*`` claims in :mod:`theory.tms.claims`:

* :mod:`.frames` — unit-norm tight frames (digon, triangle, pentagon, tetrahedron, square
  antiprism) whose features have dimensionality d/k, and the sticky-value statistics;
* :mod:`.two_feature` — the 2 → 1 model: the paper's three configurations (sympy), the exact
  loss of any (W, b) and its global optimum with its phase;
* :mod:`.linear` — the optimum of the linear model (a weighted Eckart–Young projection);
* :mod:`.crowding` — the p → 0 loss of k equally spaced features in two dimensions.
"""
from .crowding import best_polygon, crowding_prediction, polygon_feature_loss
from .frames import (
    STICKY_VALUES,
    TIGHT_FRAMES,
    block_frame,
    circle_interference,
    digon,
    equally_spaced,
    frame_dimensionality,
    is_tight_frame,
    nearest_value,
    pentagon,
    random_rotation,
    square_antiprism,
    sticky_null_fraction,
    tetrahedron,
    tight_frame,
    triangle,
)
from .linear import linear_optimum, uniform_feature_variance
from .two_feature import (
    ANTIPODAL_MODES,
    TWO_FEATURE_PHASES,
    TwoFeatureDerivation,
    TwoFeatureOptimum,
    antipodal_optimum,
    optimal_two_feature,
    two_feature_boundary,
    two_feature_derivation,
    two_feature_loss,
    two_feature_losses,
    two_feature_optimum_phase,
    two_feature_phase,
)
from . import claims  # noqa: E402,F401  (registers the tms.* claims)

__all__ = [
    "STICKY_VALUES", "TIGHT_FRAMES", "equally_spaced", "digon", "triangle", "pentagon", "tetrahedron",
    "square_antiprism", "tight_frame", "block_frame", "random_rotation", "is_tight_frame", "frame_dimensionality",
    "circle_interference", "uniform_feature_variance", "TwoFeatureDerivation", "two_feature_derivation",
    "two_feature_losses", "two_feature_boundary", "antipodal_optimum", "two_feature_phase", "ANTIPODAL_MODES",
    "two_feature_loss", "optimal_two_feature", "TwoFeatureOptimum", "two_feature_optimum_phase",
    "TWO_FEATURE_PHASES", "linear_optimum", "polygon_feature_loss", "best_polygon", "crowding_prediction",
    "nearest_value", "sticky_null_fraction",
]
