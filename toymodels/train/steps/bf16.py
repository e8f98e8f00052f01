"""bf16 matmuls around any step strategy (:mod:`toymodels.train.accel.precision`)."""
from __future__ import annotations

from typing import Any, Callable

import torch

from ..accel.precision import GradDtypeGuard, bf16_grad_error


def then(first: Callable[[], Any], hook: Callable[..., Any] | None) -> Callable[..., Any]:
    """A before-step hook that calls ``first()`` and then ``hook(step)`` (if any)."""
    def before(step: int) -> None:
        first()
        if hook is not None:
            hook(step)

    return before


class Bf16Step:
    """``inner`` under a :class:`GradDtypeGuard` (bf16 gradients of hand-derived models cast
    back to fp32 before the update, through the before-hook ``choose_step`` installed): a
    dtype error of the model's step becomes the ValueError naming ``matmul_precision``;
    ``close()`` puts every parameter's ``grad_dtype`` back."""

    def __init__(self, inner: Any, guard: GradDtypeGuard, model: Any) -> None:
        self.inner, self.guard, self.model = inner, guard, model
        self.compiled = inner.compiled

    def prepare(self, block: torch.Tensor) -> torch.Tensor:
        return self.inner.prepare(block)

    def __call__(self, x: torch.Tensor, step: int, lr: float) -> torch.Tensor:
        try:
            return self.inner(x, step, lr)
        except RuntimeError as e:
            if "dtype" in str(e):
                raise bf16_grad_error(self.model, e) from None
            raise

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            self.guard.restore()
