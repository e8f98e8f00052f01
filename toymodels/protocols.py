"""What the trainer needs from a data source and from a model, as ``typing.Protocol``s.

Any object with these members trains: the toy models (:mod:`toymodels.models`), the SAEs
(:mod:`toymodels.sae`) and every source of :mod:`toymodels.data` match them structurally,
without inheriting from anything here. Optional trainer hooks are separate one-method
protocols, so :func:`toymodels.train.train` checks each with ``isinstance`` (they are
``runtime_checkable``) instead of ``getattr`` on a name that a typo would silently miss.

Shapes: a batch is (I or 1, B, D) — instances, batch, input dimension.
"""
from __future__ import annotations

from typing import Any, Iterator, Protocol, runtime_checkable

import torch


@runtime_checkable
class StreamSource(Protocol):
    """A seeded stream of batches on a device, whose RNG state can be saved and restored."""

    n_instances: int
    """I: batches are (I, B, dim); 1 means one batch shared by every model instance."""
    dim: int
    """D, the last axis of a batch."""
    device: torch.device
    """Where batches are born."""

    def sample(self, batch_size: int) -> torch.Tensor:
        """A batch (I, B, D) drawn from the stream."""
        ...

    def get_state(self) -> Any:
        """The RNG state (tensors), to checkpoint the stream."""
        ...

    def set_state(self, state: Any) -> None:
        """Continue the stream from a state returned by :meth:`get_state`."""
        ...

    def spec(self) -> dict[str, Any]:
        """JSON-ready settings (saved as ``config.json``'s ``data``)."""
        ...


@runtime_checkable
class Source(StreamSource, Protocol):
    """A stream source that can be restricted to some instances: ``subset(idx)`` keeps the
    streams of the chosen instances, so chunked training sees the data of an unchunked run."""

    def subset(self, index: Any) -> "Source":
        """The same source restricted to instances ``index``."""
        ...


@runtime_checkable
class TrainableModel(Protocol):
    """I independent models batched over a leading instance axis."""

    @property
    def n_instances(self) -> int:
        """I."""
        ...

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Per-instance loss (I,) at inference, no gradient."""
        ...

    def loss_and_grad(self, x: torch.Tensor) -> torch.Tensor:
        """Per-instance training loss (I,) with every parameter's ``.grad`` filled."""
        ...

    def spec(self) -> dict[str, Any]:
        """JSON-ready description (saved as ``config.json``'s ``model``)."""
        ...

    def subset(self, index: Any) -> "TrainableModel":
        """A new model holding the chosen instances."""
        ...

    def load_instances(self, index: Any, other: Any) -> None:
        """Copy ``other``'s instances into instances ``index``."""
        ...

    def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]:
        ...

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        ...

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        ...


@runtime_checkable
class BeforeStep(Protocol):
    """Hook called after the gradients are filled and before the optimizer steps
    (an SAE projects the radial part out of its unit-norm decoder rows' gradients)."""

    def before_optimizer_step(self, step: int) -> None:
        ...


@runtime_checkable
class AfterStep(Protocol):
    """Hook called after the optimizer step with the step's batch (an SAE renormalises its
    decoder, counts the step and resamples dead latents)."""

    def after_optimizer_step(self, step: int, x: torch.Tensor) -> None:
        ...


@runtime_checkable
class AttachesOptimizer(Protocol):
    """Hook called once per chunk with the optimizer (an SAE resets the Adam moments of
    latents it resamples)."""

    def attach_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        ...


@runtime_checkable
class MemoryHint(Protocol):
    """Floats per sample per instance that a training step holds (for the memory estimate)."""

    activation_width: int


def missing_members(obj: object, *names: str) -> list[str]:
    """The names in ``names`` that ``obj`` lacks (for an error that says what is missing)."""
    return [n for n in names if not hasattr(obj, n)]


STREAM_SOURCE_MEMBERS = ("n_instances", "dim", "device", "sample", "get_state", "set_state", "spec")
MODEL_MEMBERS = (
    "n_instances", "loss", "loss_and_grad", "spec", "subset", "load_instances",
    "parameters", "state_dict", "load_state_dict",
)
