"""``jumprelu`` (Rajamanoharan et al. 2024, "Jumping Ahead: Improving Reconstruction
Fidelity with JumpReLU Sparse Autoencoders").

    π = (x − b_dec) W_enc + b_enc,   f = JumpReLU_θ(π) = π ⊙ H(π − θ),   θ = exp(log_threshold)
    L = mean_b ||x − x̂||² + λ · mean_b Σ_j H(π_j − θ_j)          (an L0 penalty)

H has zero derivative almost everywhere, so θ learns through straight-through estimators
with the rectangle kernel K(u) = 1[|u| < 1/2] of bandwidth ε (the paper's eqs. 11–12):

    ∂JumpReLU_θ(π)/∂θ := −(θ/ε) K((π − θ)/ε),     ∂H(π − θ)/∂θ := −(1/ε) K((π − θ)/ε),

while ∂JumpReLU/∂π = H(π − θ) as usual and the L0 term sends no gradient to π.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from .._validate import check_positive
from .base import SAE
from .registry import register


@dataclass(frozen=True)
class JumpReLUOptions:
    """Options of ``jumprelu``."""

    bandwidth: float = field(default=0.05, metadata={"flag": "--jumprelu-bandwidth"})
    """ε > 0, the width of the rectangle kernel in the straight-through estimator. The
    paper's 0.001 (with θ = 0.001 at init) suits activations normalised to E||x||² = D over
    ~10⁵ steps; toy data with O(1) activations trains in a few thousand steps with 0.05."""
    init_threshold: float = field(default=0.1, metadata={"flag": "--jumprelu-threshold"})
    """The initial threshold θ > 0 of every latent (stored as log θ). See ``bandwidth``."""

    def __post_init__(self) -> None:
        for name in ("bandwidth", "init_threshold"):
            object.__setattr__(self, name, check_positive(name, getattr(self, name)))


def _rectangle(u: torch.Tensor) -> torch.Tensor:
    return (u.abs() < 0.5).to(u.dtype)


class JumpReLUFunction(torch.autograd.Function):
    """π ⊙ H(π − θ) with the STE gradient for θ; ``eps`` is the bandwidth ε."""

    @staticmethod
    def forward(ctx, pre: torch.Tensor, theta: torch.Tensor, eps: float) -> torch.Tensor:
        ctx.save_for_backward(pre, theta)
        ctx.eps = eps
        return pre * (pre > theta)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        pre, theta = ctx.saved_tensors
        eps = ctx.eps
        g_pre = g * (pre > theta) if ctx.needs_input_grad[0] else None
        g_theta = None
        if ctx.needs_input_grad[1]:
            g_theta = -(theta / eps) * _rectangle((pre - theta) / eps) * g
            g_theta = _sum_to(g_theta, theta.shape)
        return g_pre, g_theta, None


class StepFunction(torch.autograd.Function):
    """H(π − θ) with the STE gradient for θ (none for π); ``eps`` is the bandwidth ε."""

    @staticmethod
    def forward(ctx, pre: torch.Tensor, theta: torch.Tensor, eps: float) -> torch.Tensor:
        ctx.save_for_backward(pre, theta)
        ctx.eps = eps
        return (pre > theta).to(pre.dtype)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        pre, theta = ctx.saved_tensors
        eps = ctx.eps
        g_theta = None
        if ctx.needs_input_grad[1]:
            g_theta = _sum_to(-(1.0 / eps) * _rectangle((pre - theta) / eps) * g, theta.shape)
        return None, g_theta, None


def _sum_to(t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum a broadcast gradient back to ``shape``."""
    while t.ndim > len(shape):
        t = t.sum(0)
    for ax, n in enumerate(shape):
        if n == 1 and t.shape[ax] != 1:
            t = t.sum(ax, keepdim=True)
    return t


def jumprelu(pre: torch.Tensor, theta: torch.Tensor, eps: float) -> torch.Tensor:
    """π ⊙ H(π − θ), differentiable in θ through the rectangle-kernel STE."""
    return JumpReLUFunction.apply(pre, theta, eps)


def step(pre: torch.Tensor, theta: torch.Tensor, eps: float) -> torch.Tensor:
    """H(π − θ), differentiable in θ through the rectangle-kernel STE."""
    return StepFunction.apply(pre, theta, eps)


@register
class JumpReLUSAE(SAE):
    """JumpReLU SAE: per-latent learned thresholds θ = exp(log_threshold_IF), L0 penalty."""

    arch = "jumprelu"
    Options = JumpReLUOptions
    legacy_options = {"jumprelu_bandwidth": "bandwidth", "jumprelu_init_threshold": "init_threshold"}

    def _init_parameters(self) -> None:
        self._init_standard()
        self.log_threshold_IF = nn.Parameter(
            torch.full((self.n_instances, self.dict_size), self.latent_init_value("log_threshold_IF"), device=self.device_)
        )

    def latent_init_value(self, name: str) -> float:
        return math.log(self.options.init_threshold) if name == "log_threshold_IF" else 0.0

    @property
    def threshold(self) -> torch.Tensor:
        """θ (I, F)."""
        return torch.exp(self.log_threshold_IF)

    def encode(self, x: torch.Tensor, *, train: bool = False) -> torch.Tensor:
        pre = self.pre_activations(self._check_input(x))
        return pre * (pre > self.threshold[:, None, :])

    def _forward_terms(self, x: torch.Tensor, train: bool):
        pre = self.pre_activations(x)
        theta = self.threshold[:, None, :]
        eps = self.options.bandwidth
        f = jumprelu(pre, theta, eps)
        x_hat = self.decode(f)
        bsz = x.shape[1]
        mse = (x - x_hat).square().sum(dim=(1, 2)) / bsz
        l0 = step(pre, theta, eps).sum(dim=(1, 2)) / bsz
        return {"mse": mse, "sparsity": l0}, (f.detach() != 0).any(dim=1)
