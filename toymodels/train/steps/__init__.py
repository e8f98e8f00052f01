"""Training-step strategies: how one optimizer step is taken, chosen once per chunk.

Every strategy is a :class:`Step`: ``step(x, step, lr) -> (I,) losses`` takes one optimizer
step on the batch ``x`` (the trainer sets the optimizer's learning rate to ``lr`` before the
call; strategies that keep their own copy read ``lr``), ``prepare(block)`` sees each block of
data once before its steps (the fused step pads a short last block), ``close()`` undoes
whatever the strategy changed outside itself, and ``compiled`` says whether the step runs
compiled code (the data thread stays off for it). The trainer's loop calls only these.

- :mod:`.eager` — the reference: :func:`toymodels.train.optim.optimizer_step`.
- :mod:`.fused` — the compiled fused toy-model step (:mod:`toymodels.train.accel.fused`).
- :mod:`.graphed` — eager warm-up on a side stream, then one CUDA graph replay per step
  (:mod:`toymodels.train.accel.graphs`).
- :mod:`.bf16` — wraps any of them under bf16 autocast: hand-derived bf16 gradients cast
  back to fp32, a clear error where a model's step cannot take bf16.

A new speed trick is a new module here and one line in :func:`choose_step`, never a branch
in the loop.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from ...protocols import StreamSource, TrainableModel
from ..accel.fused import use_fused_step
from ..accel.graphs import use_cuda_graph
from ..accel.precision import GradDtypeGuard
from ..config import TrainConfig
from ..optim import _Hooks
from .bf16 import Bf16Step, then
from .eager import EagerStep
from .fused import FusedStep
from .graphed import GraphReplayStep


@runtime_checkable
class Step(Protocol):
    """One training step as the trainer's loop takes it (see the module docstring)."""

    compiled: bool

    def prepare(self, block: torch.Tensor) -> torch.Tensor: ...

    def __call__(self, x: torch.Tensor, step: int, lr: float) -> torch.Tensor: ...

    def close(self) -> None: ...


def batch_elements(source: StreamSource, config: TrainConfig) -> int:
    """Floats in one step's batch (instances × batch × width)."""
    return max(1, int(source.n_instances)) * config.batch_size * int(source.dim)


def choose_step(
    model: TrainableModel,
    opt: torch.optim.Optimizer,
    params: list[torch.nn.Parameter],
    config: TrainConfig,
    source: StreamSource,
    step0: int,
    k: int,
) -> Step:
    """The strategy of a chunk's steps: the fused step when ``config.fused_step`` picks it,
    else graph replay when ``config.cuda_graph`` picks it, else eager; under bf16 matmuls
    wrapped in :class:`~.bf16.Bf16Step`. ``step0`` is the chunk's first step in this call
    (the fused step and graph capture start from an optimizer that has stepped), ``k`` the
    steps per block of data."""
    dev = next(model.parameters()).device
    hooks = _Hooks.of(model)
    guard = GradDtypeGuard(params) if config.matmul_precision == "bf16" else None
    if guard is not None:
        hooks = _Hooks(then(guard.fix, hooks.before), hooks.after)
    eager = EagerStep(model, opt, params, hooks)
    inner: Step
    if use_fused_step(config.fused_step, model, dev, config.matmul_precision):
        inner = FusedStep(model, opt, config, eager, step0, config.batch_size * k)
    elif use_cuda_graph(config.cuda_graph, model, opt, dev, batch_elements(source, config)):
        inner = GraphReplayStep(model, opt, eager, None if guard is None else guard.fix, dev, step0)
    else:
        inner = eager
    return inner if guard is None else Bf16Step(inner, guard, model)


__all__ = ["Bf16Step", "EagerStep", "FusedStep", "GraphReplayStep", "Step", "batch_elements", "choose_step"]
