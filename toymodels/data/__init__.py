"""Data sources: every stream of batches a model or SAE trains on.

- :mod:`.features` — synthetic sources: sparse features (importance, correlation, ground-truth
  directions), Gaussian mixtures, the unit square/cube, a toy model's hidden activations.
- :mod:`.hierarchy` — hierarchical and zipfian firing (``SparseFeatures(..., hierarchy=...)``).
- :mod:`.activations` — your own activations (tensors, arrays, ``.npy``/``.pt``/``.safetensors``).
"""
from .features import (
    MAGNITUDES,
    STREAM_BLOCK,
    BoundFeatures,
    FeatureDrivenSource,
    FiniteSample,
    GaussianMixture,
    ModelActivations,
    Source,
    SparseBatch,
    SparseFeatures,
    UnitCube,
    block_seed,
    check_compatible,
)
from .hierarchy import HierarchicalFeatures  # registers SparseFeatures(..., hierarchy=...)
from .activations import Activations, as_source

__all__ = [
    "MAGNITUDES",
    "STREAM_BLOCK",
    "Activations",
    "BoundFeatures",
    "FeatureDrivenSource",
    "FiniteSample",
    "GaussianMixture",
    "HierarchicalFeatures",
    "ModelActivations",
    "Source",
    "SparseBatch",
    "SparseFeatures",
    "UnitCube",
    "as_source",
    "block_seed",
    "check_compatible",
]
