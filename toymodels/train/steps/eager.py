"""The eager step, the reference every other strategy is checked against."""
from __future__ import annotations

import torch

from ..optim import _Hooks, optimizer_step


class EagerStep:
    """:func:`toymodels.train.optim.optimizer_step` with the model's hooks looked up once:
    clear the gradients, ``loss_and_grad``, the before-hook, the optimizer, the after-hook."""

    compiled = False

    def __init__(self, model: torch.nn.Module, opt: torch.optim.Optimizer, params: list[torch.nn.Parameter],
                 hooks: _Hooks) -> None:
        self.model, self.opt, self.params, self.hooks = model, opt, params, hooks

    def prepare(self, block: torch.Tensor) -> torch.Tensor:
        return block

    def __call__(self, x: torch.Tensor, step: int, lr: float) -> torch.Tensor:
        # the module's name, looked up per call: tests (and tools) wrap optimizer_step here
        return optimizer_step(self.model, self.opt, x, step, self.params, self.hooks)

    def close(self) -> None:
        pass
