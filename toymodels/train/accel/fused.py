"""A fused training step for the tied-weight toy models (``relu-output``, ``linear``).

:func:`tms_adam_step` is one pure function of tensors — forward, the hand-derived gradient
of :meth:`toymodels.models.ReLUOutput.loss_and_grad` and the Adam/AdamW update, all in
place — so ``torch.compile`` can fuse its elementwise work (residual, importance weighting,
ReLU mask, the moment updates and the parameter update) around the three batched matmuls.
:class:`FusedTMSStep` holds the Adam state and calls it, compiled or not.

Maths (Elhage et al. 2022, eq. 2; Kingma & Ba 2015): h = W x, z = Wᵀh + b, r = σ(z) − x,
g = (2/BN) I ⊙ r ⊙ σ'(z), L = ½ Σ g ⊙ r / … (the model's mean loss), ∂L/∂b = Σ_B g,
∂L/∂W = h gᵀ + (W g) xᵀ; then m ← β₁m + (1−β₁)∇, v ← β₂v + (1−β₂)∇², θ ← θ − (lr/(1−β₁ᵗ))
m / (√v/√(1−β₂ᵗ) + ε) (plus λθ in ∇ for adam, θ ← (1−lr·λ)θ first for adamw).

The reference stays :func:`toymodels.train.optimizer_step` with the fused torch optimizer;
this path agrees with it to float rounding (tested on the CPU, eager and compiled).
Triton is never imported here: ``torch.compile`` brings its own code generator on CUDA.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

FUSED_KINDS = ("relu-output", "linear")
FUSED_STEP_MODES = ("off", "on", "auto")


def tms_adam_step(
    W: torch.Tensor, b: torch.Tensor, mW: torch.Tensor, vW: torch.Tensor, mb: torch.Tensor, vb: torch.Tensor,
    t: torch.Tensor, x: torch.Tensor, imp: torch.Tensor, lr: torch.Tensor,
    beta1: float, beta2: float, eps: float, weight_decay: float, relu: bool, decoupled: bool,
    t_b: torch.Tensor | None = None,
) -> torch.Tensor:
    """One step of a tied-weight toy model, updating W (I, M, N), b (I, N), the Adam moments
    and the step count t (a 0-d tensor; ``t_b``, b's own counter as torch's optimizer keeps
    one per parameter, is advanced alongside when given) in place; returns the per-instance
    loss (I,) at the weights before the update. ``x`` (I or 1, B, N), ``imp`` (I, N), ``lr`` a
    0-d tensor."""
    bsz, n = x.shape[1], x.shape[2]
    xT = x.transpose(1, 2)  # (I or 1, N, B)
    hT = torch.matmul(W, xT)  # (I, M, B)
    zT = torch.baddbmm(b[:, :, None], W.transpose(1, 2), hT)  # (I, N, B)
    rT = (torch.relu(zT) if relu else zT) - xT
    gT = rT * (imp[:, :, None] * (2.0 / (bsz * n)))
    loss = (gT * rT).sum(dim=(1, 2)) * 0.5
    if relu:
        gT = torch.where(zT > 0, gT, torch.zeros_like(gT))
    gW = torch.bmm(hT, gT.transpose(1, 2)) + torch.bmm(torch.bmm(W, gT), xT.transpose(1, 2).expand(W.shape[0], -1, -1))
    gb = gT.sum(dim=2)
    t.add_(1)
    if t_b is not None:
        t_b.add_(1)
    bc1 = 1 - beta1 ** t
    bc2_sqrt = (1 - beta2 ** t).sqrt()
    for p, g, m, v in ((W, gW, mW, vW), (b, gb, mb, vb)):
        if weight_decay:
            if decoupled:
                p.mul_(1 - lr * weight_decay)
            else:
                g = g + weight_decay * p
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        p.sub_((lr / bc1) * m / (v.sqrt() / bc2_sqrt + eps))
    return loss


class FusedTMSStep:
    """Adam/AdamW training steps of a ``relu-output`` or ``linear`` toy model through
    :func:`tms_adam_step`: ``step(x, lr) -> loss (I,)``. ``compile=True`` wraps it in
    ``torch.compile`` (``mode`` as given; ``"reduce-overhead"`` adds CUDA graphs on CUDA).

    The model's parameters are updated in place; the moments live here (zeros at start,
    like a fresh torch optimizer), with ``betas``, ``weight_decay`` and the optimizer kind of
    a :class:`toymodels.train.TrainConfig` — or, with ``optimizer`` (a fused
    Adam/AdamW over [W, b] that has stepped once), they are that optimizer's state tensors,
    updated in place, so its ``state_dict()`` (checkpoints, resume) stays current and the
    trainer can switch between the two paths at any step. Compiled with static shapes:
    a batch of another shape or strides (a slice of a longer block) compiles again, so feed
    it slices of equal-length blocks."""

    def __init__(self, model: Any, config: Any, *, compile: bool = False, mode: str | None = None,
                 optimizer: torch.optim.Optimizer | None = None) -> None:
        why = unsupported(model)
        if why is not None:
            raise ValueError(why)
        self.model = model
        W, b = model.W_IMN, model.b_IN
        eps, self.t_b = 1e-8, None
        if optimizer is None:
            self.moments = [torch.zeros_like(W), torch.zeros_like(W), torch.zeros_like(b), torch.zeros_like(b)]
            self.t = torch.zeros((), dtype=torch.float32, device=W.device)
        else:
            groups = optimizer.param_groups
            if len(groups) != 1 or len(groups[0]["params"]) != 2 or groups[0]["params"][0] is not W or groups[0]["params"][1] is not b:
                raise ValueError("the fused step shares the state of an optimizer over exactly [W_IMN, b_IN]")
            sw, sb = optimizer.state.get(W), optimizer.state.get(b)
            if not sw or not sb or "exp_avg" not in sw or not torch.is_tensor(sw["step"]) or sw["step"].device != W.device:
                raise ValueError("the optimizer must have stepped once, with its step counts on the parameters' device (fused Adam)")
            self.moments = [sw["exp_avg"], sw["exp_avg_sq"], sb["exp_avg"], sb["exp_avg_sq"]]
            self.t, self.t_b = sw["step"], sb["step"]
            eps = float(groups[0]["eps"])
        self.lr_t = torch.zeros((), dtype=torch.float32, device=W.device)
        self.lr: float | None = None
        self.hyper = dict(beta1=float(config.betas[0]), beta2=float(config.betas[1]), eps=eps,
                          weight_decay=float(config.weight_decay), relu=model.kind == "relu-output",
                          decoupled=config.optimizer == "adamw")
        self.fn: Callable[..., torch.Tensor] = tms_adam_step
        self.graphs = compile and mode == "reduce-overhead"
        if compile:
            self.fn = torch.compile(tms_adam_step, mode=mode, fullgraph=True, dynamic=False)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, lr: float) -> torch.Tensor:
        if lr != self.lr:
            self.lr = lr
            self.lr_t.fill_(lr)
        if self.graphs:  # each call is a new step for cudagraph trees
            torch.compiler.cudagraph_mark_step_begin()
        m = self.model
        return self.fn(m.W_IMN, m.b_IN, *self.moments, self.t, x, m.importance, self.lr_t, **self.hyper, t_b=self.t_b)


def unsupported(model: Any) -> str | None:
    """Why :class:`FusedTMSStep` cannot train ``model``, or None."""
    kind = getattr(model, "kind", None)
    if kind not in FUSED_KINDS or getattr(model, "family", None) != "tms" or not hasattr(model, "W_IMN"):
        return f"the fused step supports the toy-model kinds {', '.join(FUSED_KINDS)}; got {type(model).__name__} ({kind!r})"
    if model.W_IMN.dtype != torch.float32:
        return f"the fused step runs in float32; the model is {model.W_IMN.dtype}"
    return None


def use_fused_step(mode: str, model: Any, device: torch.device, precision: str = "fp32") -> bool:
    """Whether the trainer takes its steps through :class:`FusedTMSStep`: ``off`` never;
    ``on`` always (compiled for the CPU too), raising a ValueError naming ``fused_step`` and
    the reason when it cannot (another model, bf16 matmuls); ``auto`` when it can, on CUDA."""
    if mode not in FUSED_STEP_MODES:
        raise ValueError(f"fused_step must be one of {', '.join(FUSED_STEP_MODES)}; got {mode!r}")
    if mode == "off":
        return False
    why = unsupported(model)
    if why is None and precision == "bf16":
        why = "bf16 autocast is not part of the fused step (use matmul_precision fp32 or tf32)"
    if mode == "on" and why is not None:
        raise ValueError(f"fused_step = 'on' cannot be honoured: {why}; use fused_step = 'auto' or 'off'")
    return why is None and (mode == "on" or torch.device(device).type == "cuda")
