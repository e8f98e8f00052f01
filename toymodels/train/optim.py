"""The optimizer and the reference training step: Adam/AdamW on torch's fused kernels
(:class:`LeanAdam`), the model's optional step hooks, and :func:`optimizer_step`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks

from ..protocols import AfterStep, BeforeStep, TrainableModel
from .config import TrainConfig


class _LeanFusedStep:
    """Adam/AdamW whose steps, once the state exists, call the fused kernel directly.

    torch.optim's bookkeeping around ``_fused_adam_`` costs about three times the kernel
    itself on a tiny model (25 µs vs 7 µs a step); this calls the same kernel with the same
    state tensors, so results are bit-identical, ``state``/``state_dict`` keep their usual
    layout (checkpoints, an SAE zeroing the moments of resampled latents), and anything
    unusual (several groups, a missing gradient, amsgrad) falls back to the parent's step.
    """

    _kernel_name: str

    def step(self, closure=None):  # type: ignore[override]
        lists = getattr(self, "_lean", None)
        if closure is not None or lists is None or not self._lean_step(lists):
            parent = super().step
            func = getattr(parent, "__func__", parent)
            # Once any plain Adam exists, torch has wrapped Adam.step with its hook runner too:
            # this step's own wrapper already ran the hooks, so call the parent unwrapped.
            loss = func.__wrapped__(self, closure) if getattr(func, "hooked", False) else parent(closure)
            self._lean = self._collect()
            return loss
        return None

    def fast_step(self) -> None:
        """:meth:`step` without torch.optim's per-call wrapper around it (a profiler
        ``record_function`` and the hook loops, about as long as the fused kernel itself on a
        toy model); the wrapped :meth:`step` whenever a step hook is registered, on the first
        step (the state does not exist yet) and wherever the lean path does not apply."""
        lists = getattr(self, "_lean", None)
        if (lists is None or self._optimizer_step_pre_hooks or self._optimizer_step_post_hooks
                or _global_optimizer_pre_hooks or _global_optimizer_post_hooks or not self._lean_step(lists)):
            self.step()

    def _lean_step(self, lists) -> bool:
        """The fused kernel on the collected state; False (nothing done) if a gradient is missing."""
        params, exp_avgs, exp_avg_sqs, steps = lists
        grads = [p.grad for p in params]
        if any(g is None for g in grads):
            return False
        g = self.param_groups[0]
        torch._foreach_add_(steps, 1)
        getattr(torch, self._kernel_name)(
            params, grads, exp_avgs, exp_avg_sqs, [], steps,
            amsgrad=False, lr=g["lr"], beta1=g["betas"][0], beta2=g["betas"][1],
            weight_decay=g["weight_decay"], eps=g["eps"], maximize=False, grad_scale=None, found_inf=None,
        )
        return True

    def _collect(self):
        if len(self.param_groups) != 1:
            return None
        g = self.param_groups[0]
        if not g.get("fused") or g.get("amsgrad") or g.get("maximize") or g.get("differentiable"):
            return None
        params = g["params"]
        if not all(p in self.state and "exp_avg" in self.state[p] for p in params):
            return None
        st = [self.state[p] for p in params]
        return params, [s["exp_avg"] for s in st], [s["exp_avg_sq"] for s in st], [s["step"] for s in st]

    def load_state_dict(self, state_dict):  # type: ignore[override]
        super().load_state_dict(state_dict)
        self._lean = None


class LeanAdam(_LeanFusedStep, torch.optim.Adam):
    _kernel_name = "_fused_adam_"


class LeanAdamW(_LeanFusedStep, torch.optim.AdamW):
    _kernel_name = "_fused_adamw_"


def make_optimizer(params: list[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    kw = dict(lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    lean, plain = (LeanAdamW, torch.optim.AdamW) if config.optimizer == "adamw" else (LeanAdam, torch.optim.Adam)
    if hasattr(torch, lean._kernel_name):
        try:
            return lean(params, fused=True, **kw)
        except (RuntimeError, TypeError, ValueError):  # dtype/device without a fused kernel
            pass
    return plain(params, foreach=True, **kw)


@dataclass(frozen=True)
class _Hooks:
    """The optional hooks a model implements, looked up once (not on every step)."""

    before: Callable[..., Any] | None
    after: Callable[..., Any] | None

    @classmethod
    def of(cls, model: TrainableModel) -> "_Hooks":
        return cls(
            model.before_optimizer_step if isinstance(model, BeforeStep) else None,
            model.after_optimizer_step if isinstance(model, AfterStep) else None,
        )


def optimizer_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    step: int,
    params: list[torch.nn.Parameter] | None = None,
    hooks: _Hooks | None = None,
) -> torch.Tensor:
    """One training step exactly as :func:`train` takes it: clear the gradients, fill them
    with ``model.loss_and_grad(x)``, call ``before_optimizer_step(step)`` if the model has it
    (:class:`~toymodels.protocols.BeforeStep`), step the optimizer, then
    ``after_optimizer_step(step, x)`` (:class:`~toymodels.protocols.AfterStep`).
    Returns the (I,) losses."""
    if hooks is None:
        hooks = _Hooks.of(model)
    for p in model.parameters() if params is None else params:
        p.grad = None
    loss = model.loss_and_grad(x)
    if hooks.before is not None:
        hooks.before(step)
    fast = getattr(optimizer, "fast_step", None)  # LeanAdam/LeanAdamW: the same kernel, unwrapped
    optimizer.step() if fast is None else fast()
    if hooks.after is not None:
        hooks.after(step, x)
    return loss
