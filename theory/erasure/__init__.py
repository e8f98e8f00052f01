"""Linear concept erasure (topic ``erasure``): LEACE and why equal class means do not bound accuracy.

LEACE (Belrose et al. 2023, "LEACE: Perfect linear concept erasure in closed form") maps

    r(x) = x − W⁺ P W (x − μ),   W = (Σ_XX^{1/2})⁺,   P = orthogonal projection onto col(W Σ_XZ),

with Z the one-hot class label. Afterwards Cov(r(X), Z) = 0, i.e. every class has the same
mean, and for any convex loss no affine predictor of Z beats the best constant one.

Equal means are a statement about convex losses, not about accuracy: a dataset whose two class
means coincide can still be classified far above chance by a linear threshold, because
accuracy depends on where most of each class's mass sits (its median), which a few far-away
points can leave untouched while they drag the mean back (seed 001's comment).

Public functions: :func:`leace_fit` / :func:`leace_erase` (the map), :func:`class_means`,
:func:`label_cross_covariance`, :func:`data_scale`, :func:`best_linear_accuracy` /
:func:`best_linear_classifier` (best affine threshold classifier on a finite weighted
dataset), :func:`threshold_accuracy` and :func:`best_threshold_1d` (exact, also on
:class:`fractions.Fraction` data), :func:`fit_logistic` (weighted multinomial logistic
regression), :func:`equal_means_example` and :func:`equal_means_family` (the
counterexample), :func:`random_erasure_dataset` (test data with degeneracies).

- :mod:`.leace`        input validation and the LEACE map
- :mod:`.classifiers`  linear classifiers on finite weighted data, the equal-means counterexample
- :mod:`.claims`       the registered claims and their random test datasets

Every public name is importable from here, as before the split.
"""
from .leace import *  # noqa: F401,F403
from .leace import __all__ as _leace_all
from .classifiers import *  # noqa: F401,F403
from .classifiers import __all__ as _classifiers_all
from .claims import random_erasure_dataset  # noqa: E402  (registers the claims)

__all__ = [*_leace_all, *_classifiers_all, "random_erasure_dataset"]
