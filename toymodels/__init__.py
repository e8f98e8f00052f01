"""toymodels: batched toy models of superposition, sparse autoencoders and the analysis
around them. Every model carries a leading instance axis, so a sweep is one training run.

>>> from toymodels import SparseFeatures, TMSConfig, build_model
>>> from toymodels.train import TrainConfig, train
"""
__version__ = "0.1.0"

from .analysis import classify_geometry, feature_dimensionality  # noqa: E402
from .data import GaussianMixture, ModelActivations, SparseFeatures, UnitCube  # noqa: E402
from .device import resolve_device  # noqa: E402
from .models import TMSConfig, build_model  # noqa: E402
from .train import TrainConfig, TrainingDiverged, best_of  # noqa: E402

__all__ = [
    "GaussianMixture",
    "ModelActivations",
    "SparseFeatures",
    "TMSConfig",
    "TrainConfig",
    "TrainingDiverged",
    "UnitCube",
    "best_of",
    "build_model",
    "classify_geometry",
    "feature_dimensionality",
    "resolve_device",
]
