"""Graph-replayed steps on CUDA (:class:`toymodels.train.accel.graphs.GraphedStep`)."""
from __future__ import annotations

from typing import Any, Callable

import torch

from ..accel.graphs import WARMUP_STEPS, GraphedStep, side_stream
from .eager import EagerStep


class GraphReplayStep:
    """The first :data:`~toymodels.train.accel.graphs.WARMUP_STEPS` steps of a call run
    eagerly on a side stream (they create the Adam state and settle the allocator, as
    capture requires); the next one is captured and every step after it is one replay. The
    returned loss of a replay is the graph's static output, read only at log steps."""

    compiled = False

    def __init__(self, model: Any, opt: torch.optim.Optimizer, eager: EagerStep,
                 fix_grads: Callable[[], None] | None, device: torch.device, step0: int) -> None:
        self.model, self.opt, self.eager, self.fix_grads, self.device = model, opt, eager, fix_grads, device
        self.warm_until = step0 + WARMUP_STEPS
        self.graphed: GraphedStep | None = None

    def prepare(self, block: torch.Tensor) -> torch.Tensor:
        return block

    def __call__(self, x: torch.Tensor, step: int, lr: float) -> torch.Tensor:
        if self.graphed is None and step >= self.warm_until:
            self.graphed = GraphedStep(self.model, self.opt, x, lr, self.fix_grads)
        if self.graphed is not None:
            return self.graphed(x, lr)  # one replay
        with side_stream(self.device):  # warm-up before capture, off the capturing stream
            return self.eager(x, step, lr).clone()

    def close(self) -> None:
        pass
