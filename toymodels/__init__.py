"""toymodels: batched toy models of superposition, sparse autoencoders and the analysis
around them. Every model carries a leading instance axis, so a sweep is one training run.

>>> from toymodels import SparseFeatures, TMSConfig, build_model
>>> from toymodels.train import TrainConfig, train
>>> from toymodels.experiments import train_tms      # build, train, best-of-N in one call
"""
__version__ = "0.1.0"

from .analysis import classify_geometry, feature_dimensionality  # noqa: E402
from .data import GaussianMixture, ModelActivations, SparseFeatures, UnitCube, check_compatible  # noqa: E402
from .hierarchy import HierarchicalFeatures  # noqa: E402,F401  (registers SparseFeatures(..., hierarchy=...))
from .device import resolve_device  # noqa: E402
from .models import TMSConfig, build_model  # noqa: E402
from .train import TrainConfig, TrainingDiverged, best_of  # noqa: E402
from .experiments import TMSRun, train_tms  # noqa: E402
from .linalg import random_orthogonal  # noqa: E402

__all__ = [
    "GaussianMixture",
    "HierarchicalFeatures",
    "ModelActivations",
    "SparseFeatures",
    "TMSConfig",
    "TMSRun",
    "TrainConfig",
    "TrainingDiverged",
    "UnitCube",
    "best_of",
    "build_model",
    "check_compatible",
    "classify_geometry",
    "feature_dimensionality",
    "random_orthogonal",
    "resolve_device",
    "train_tms",
]
