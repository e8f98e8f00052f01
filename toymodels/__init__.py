"""toymodels: batched toy models of superposition, sparse autoencoders and the analysis
around them. Every model carries a leading instance axis, so a sweep is one training run.

>>> from toymodels import SparseFeatures, TMSConfig, build_model
>>> from toymodels.train import TrainConfig, train
>>> from toymodels.experiments import train_tms      # build, train, best-of-N in one call
"""
__version__ = "0.1.0"

import importlib as _importlib
import importlib.abc as _abc
import importlib.util as _util
import sys as _sys

MOVED_MODULES = {
    "toymodels.activations": "toymodels.data.activations",
    "toymodels.hierarchy": "toymodels.data.hierarchy",
    "toymodels.runs": "toymodels.train.runs",
    "toymodels.datathread": "toymodels.train.datathread",
    "toymodels.accel": "toymodels.train.accel",
    "toymodels.metrics": "toymodels.measures.metrics",
    "toymodels.analysis": "toymodels.measures.analysis",
    "toymodels.ground_truth": "toymodels.measures.ground_truth",
    "toymodels.linalg": "toymodels.measures.linalg",
    "toymodels.causal": "toymodels.research.causal",
    "toymodels.compressed": "toymodels.research.compressed",
    "toymodels.connections": "toymodels.research.connections",
    "toymodels.spd": "toymodels.research.spd",
    "toymodels.configargs": "toymodels.cli.configargs",
}
"""Modules that moved into subpackages, by their old names: ``import toymodels.spd`` still
gives :mod:`toymodels.research.spd` (the same module object, loaded once, on first use)."""


def _moved_target(name: str) -> str | None:
    for old, new in MOVED_MODULES.items():
        if name == old or name.startswith(old + "."):
            return new + name[len(old):]
    return None


class _MovedModules(_abc.MetaPathFinder, _abc.Loader):
    """Finds a moved module under its old name and hands back the module at its new place."""

    def find_spec(self, fullname, path=None, target=None):  # noqa: ANN001 - importlib's signature
        new = _moved_target(fullname)
        if new is None:
            return None
        return _util.spec_from_loader(fullname, self, is_package=True)

    def create_module(self, spec):  # noqa: ANN001
        return _importlib.import_module(_moved_target(spec.name))

    def exec_module(self, module):  # noqa: ANN001 - already executed under its new name
        pass


if not any(isinstance(f, _MovedModules) for f in _sys.meta_path):
    _sys.meta_path.insert(0, _MovedModules())

from .measures.analysis import classify_geometry, feature_dimensionality  # noqa: E402
from .data.features import GaussianMixture, ModelActivations, SparseFeatures, UnitCube, check_compatible  # noqa: E402
from .data.hierarchy import HierarchicalFeatures  # noqa: E402,F401  (registers SparseFeatures(..., hierarchy=...))
from .device import resolve_device  # noqa: E402
from .models import TMSConfig, build_model  # noqa: E402
from .train.loop import TrainConfig, TrainingDiverged, best_of  # noqa: E402
from .experiments import TMSRun, train_tms  # noqa: E402
from .measures.linalg import random_orthogonal  # noqa: E402
from .workbench.run import Run, load_run  # noqa: E402

__all__ = [
    "GaussianMixture",
    "HierarchicalFeatures",
    "ModelActivations",
    "Run",
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
    "load_run",
    "random_orthogonal",
    "resolve_device",
    "train_tms",
]
