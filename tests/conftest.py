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


# ---------------------------------------------------------------------- device
# `pytest --device cuda` (`make test DEVICE=cuda`) runs the device-aware tests — those taking
# the `device` fixture — on CUDA; the CPU stays the default. `@pytest.mark.requires_cuda`
# marks tests that only make sense on CUDA (graph capture, CUDA kernels): skipped without a GPU.
def pytest_addoption(parser):
    parser.addoption(
        "--device", action="store", default="cpu", choices=("cpu", "cuda"),
        help="device for the tests taking the `device` fixture (default cpu)",
    )


def pytest_configure(config):
    config.addinivalue_line("markers", "requires_cuda: needs a CUDA device (skipped without one)")
    if config.getoption("--device") == "cuda" and not torch.cuda.is_available():
        raise pytest.UsageError("--device cuda was given but torch.cuda.is_available() is False (no GPU or a CPU build of torch)")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (torch.cuda.is_available() is False)")
    for item in items:
        if "requires_cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def device(request) -> torch.device:
    """The device the run was asked for (`--device`, default cpu)."""
    return torch.device(request.config.getoption("--device"))
