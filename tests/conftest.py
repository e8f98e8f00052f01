"""Shared test set-up: hypothesis profiles and small helpers."""
import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# `ci` keeps the suite fast on a 2-core machine; `thorough` is for `make test-all`.
settings.register_profile(
    "ci", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile(
    "thorough", max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=10, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

torch.set_num_threads(1)


@pytest.fixture
def tmp_run(tmp_path):
    """A fresh run folder path."""
    return tmp_path / "run"
