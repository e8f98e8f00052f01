"""The compiled fused toy-model step (:class:`toymodels.train.accel.fused.FusedTMSStep`)."""
from __future__ import annotations

from typing import Any

import torch

from ..accel.fused import FusedTMSStep
from .eager import EagerStep


class FusedStep:
    """The first step of a call runs eagerly (it creates, or on resume touches, the Adam
    state); from the second on, a :class:`FusedTMSStep` compiled once shares that state, so
    checkpoints and resume see the optimizer as usual. A short last block is copied into a
    full-length buffer so its slices keep the strides the step was compiled for (other
    strides recompile)."""

    compiled = True

    def __init__(self, model: Any, opt: torch.optim.Optimizer, config: Any, eager: EagerStep, step0: int,
                 block_samples: int) -> None:
        self.model, self.opt, self.config, self.eager = model, opt, config, eager
        self.step0, self.block_samples = step0, block_samples
        self.fused: FusedTMSStep | None = None

    def prepare(self, block: torch.Tensor) -> torch.Tensor:
        if block.shape[1] >= self.block_samples:
            return block
        full = block.new_empty(block.shape[0], self.block_samples, block.shape[2])
        full[:, : block.shape[1]] = block
        return full

    def __call__(self, x: torch.Tensor, step: int, lr: float) -> torch.Tensor:
        if self.fused is None and step > self.step0:  # the optimizer state exists: share it
            self.fused = FusedTMSStep(self.model, self.config, compile=True, optimizer=self.opt)
        if self.fused is None:
            return self.eager(x, step, lr)
        return self.fused(x, lr)

    def close(self) -> None:
        pass
