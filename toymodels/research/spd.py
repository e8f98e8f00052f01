"""Stochastic parameter decomposition (SPD; Bushnaq, Braun & Sharkey 2025), batched over instances.

Each decomposed weight matrix W (out × in) of a trained *target* model is written as a sum
of C rank-1 subcomponents, Ŵ = Σ_c U_c V_cᵀ (U (I, C, out), V (I, C, in)). Subcomponent c
has a causal-importance function: a small MLP (1 → H → 1, GELU) of its inner activation
s_c = V_c·a (a the matrix's input), squashed to [0, 1] by a hard sigmoid,
g_c = σ_H(Γ_c(s_c)). Masks m_c = g_c + (1 − g_c) u_c, u_c ~ U(0, 1), scale the subcomponents:
the masked layer computes Σ_c m_c U_c (V_c·a). The loss, per instance:

- faithfulness   L_F  = mean over all decomposed entries of (W − Ŵ)²
- stochastic reconstruction  L_SR = mean (f(x | masked Ŵ for every matrix) − f(x | W))²
- layerwise reconstruction   L_SRL = mean over matrices of the same with one matrix masked
- importance minimality      L_IM = Σ_matrices Σ_c mean_batch |g_c|^p

L = β_F L_F + β_SR L_SR + β_SRL L_SRL + β_IM L_IM. As in the reference implementation
(``goodfire-ai/spd``, ``sigmoid_type: leaky_hard``), the masks use the hard sigmoid whose
gradient leaks (slope ``leak``) below 0 only in the direction that opens a closed gate
(:func:`leaky_hard_mask`; ``sigmoid="lower_leaky"`` is the earlier form with leak·x in the
forward pass too) and the importance penalty the upper-leaky one (slope ``leak`` above 1). The
gates start closed (``gate_init="kaiming"``), and :func:`train_spd` first fits Σ U Vᵀ to the
weights alone (:func:`faithfulness_warmup`, 200 AdamW steps at 0.01, weight decay 0.1), as the
reference does. ``delta_component=True`` adds the reference's masked residual W − Ŵ.

The uniforms u come with the batch: :class:`MaskedSource` appends Σ C columns of U(0, 1) to
every row of the target's source, so the masks live in the data stream (per-instance streams,
exact resume and chunking like every other source) and :class:`SPDModel` trains with the one
trainer, :func:`toymodels.train.train`.

A target is any batched model with ``spd_weights()`` (name -> (I, out, in)) and
``spd_forward(x, layer)`` (its forward with every decomposed product done by
``layer(name, a)``; a target whose matrices read and write a wide stream only through fixed
maps may also offer ``spd_folds()`` and ``spd_forward_folded``, see :func:`folded_weight`): :mod:`toymodels.compressed`'s models have them, and :func:`as_target`
adapts the tied-weight toy models of :mod:`toymodels.models` (W and Wᵀ decomposed
separately, as the paper does for TMS).

>>> from toymodels.spd import SPDConfig, train_spd, causal_importance
>>> run = train_spd(tms_model, SparseFeatures(5, 0.05), SPDConfig(n_components=10),
...                 TrainConfig(steps=4000, lr=2e-3, quiet=True))
>>> g = causal_importance(run.model, torch.eye(5)[None])   # {"W": (I, 5, C), "W_T": (I, 5, C)}
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from .._validate import (check_bool, check_choice, check_float, check_int, check_nonneg, check_positive,
                         check_seed, check_tensor)
from ..data.features import UnitCube
from ..device import derive_seed, make_generator
from ..train.loop import TrainConfig, TrainResult, train


# ====================================================================== targets
class TiedTarget(nn.Module):
    """A tied-weight toy model (:class:`toymodels.models.ReLUOutput`, ``Linear``, ``HiddenReLU``)
    as an SPD target: x' = σ(Wᵀ ρ(W x) + b) with W (decomposed as "W", in = N) and Wᵀ
    (decomposed as "W_T", in = M) two matrices."""

    def __init__(self, model: nn.Module, *, identity: bool = False) -> None:
        super().__init__()
        if not hasattr(model, "W_IMN") or not hasattr(model, "b_IN"):
            raise ValueError(f"{type(model).__name__} is not a tied-weight toy model (needs W_IMN and b_IN)")
        check_bool("identity", identity)
        self.model = model
        self.n_features = model.n_features
        self.identity = identity
        """An identity matrix "ID" (M × M) after the hidden layer, decomposed too (the paper's +ID
        models): x' = σ(Wᵀ I ρ(W x) + b), the same function."""

    @property
    def n_instances(self) -> int:
        return self.model.n_instances

    @property
    def input_dim(self) -> int:
        return self.model.n_features

    def spd_weights(self) -> dict[str, torch.Tensor]:
        W = self.model.W_IMN
        if not self.identity:
            return {"W": W, "W_T": W.transpose(1, 2)}
        i, m = W.shape[0], W.shape[1]
        eye = torch.eye(m, device=W.device, dtype=W.dtype).expand(i, m, m)
        return {"W": W, "ID": eye, "W_T": W.transpose(1, 2)}

    def spd_forward(self, x: torch.Tensor, layer: Callable[[str, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        h = layer("W", x)
        if self.model._hidden_relu:
            h = torch.relu(h)
        if self.identity:
            h = layer("ID", h)
        z = layer("W_T", h) + self.model.b_IN[:, None, :]
        return torch.relu(z) if self.model._relu else z

    def subset(self, index: Any) -> "TiedTarget":
        return TiedTarget(self.model.subset(index), identity=self.identity)

    def spec(self) -> dict[str, Any]:
        return {**self.model.spec(), "spd_identity": True} if self.identity else self.model.spec()


def as_target(model: nn.Module) -> nn.Module:
    """``model`` as an SPD target: itself when it has ``spd_weights``/``spd_forward``, a
    :class:`TiedTarget` for a tied-weight toy model; anything else raises ValueError."""
    if hasattr(model, "spd_weights") and hasattr(model, "spd_forward"):
        return model
    if hasattr(model, "W_IMN") and hasattr(model, "_relu"):
        return TiedTarget(model)
    raise ValueError(f"{type(model).__name__} cannot be decomposed: give it spd_weights() and spd_forward(x, layer)")


def folded_weight(W: torch.Tensor, fold: tuple[torch.Tensor | None, torch.Tensor | None]) -> torch.Tensor:
    """W (I, out, in) seen through a target's fold (R_in, R_out): R_outᵀ W R_inᵀ.

    A target whose matrix always reads an input a = a' R_in (R_in (I, k, in), e.g. a residual
    stream x W_E) and whose output is only ever read as out R_out (R_out (I, out, k'), e.g. an
    unembedding W_Eᵀ) declares ``spd_folds() -> {name: (R_in or None, R_out or None)}`` and
    ``spd_forward_folded(x, layer)``, its forward in which ``layer(name, a')`` returns
    a' (R_outᵀ W R_inᵀ)ᵀ. SPD then works in the narrow basis: a subcomponent U_c V_cᵀ becomes
    (R_outᵀ U_c)(R_in V_c)ᵀ, its inner activation V_c·a = (R_in V_c)·a' is unchanged, and so are
    every loss and causal importance (up to float rounding); only faithfulness, which is about
    W itself, stays in the full basis. For the residual MLP (residual width 1000, 100 features)
    this made an SPD step about 4-5x cheaper (measured on a 2-core CPU)."""
    r_in, r_out = fold
    if r_in is not None:
        W = torch.matmul(W, r_in.transpose(-1, -2))
    if r_out is not None:
        W = torch.matmul(r_out.transpose(-1, -2), W)
    return W


def _target_width(target: Any) -> int:
    for name in ("input_dim", "n_features", "d_model"):
        if hasattr(target, name):
            return int(getattr(target, name))
    raise ValueError(f"{type(target).__name__} declares no input width (input_dim or n_features)")


# ====================================================================== config
SIGMOIDS = ("leaky_hard", "lower_leaky")
"""The masks' squashing choices (:attr:`SPDConfig.sigmoid`)."""
GATE_INITS = ("kaiming", "legacy")
"""The causal-importance MLPs' initialisations (:attr:`SPDConfig.gate_init`)."""


@dataclass(frozen=True)
class SPDConfig:
    """Settings of a stochastic parameter decomposition (Bushnaq, Braun & Sharkey 2025)."""

    n_components: int = 20
    """C, rank-1 subcomponents per decomposed matrix."""
    gate_hidden: int = 16
    """H, hidden width of each subcomponent's causal-importance MLP."""
    p: float = 1.0
    """Exponent of the importance-minimality penalty Σ|g|^p, in (0, 2]."""
    faithfulness: float = 1.0
    """β_F, coefficient of the faithfulness loss."""
    reconstruction: float = 1.0
    """β_SR, coefficient of the stochastic reconstruction loss (all matrices masked)."""
    layerwise: float = 1.0
    """β_SRL, coefficient of the layerwise stochastic reconstruction loss (one matrix masked)."""
    importance: float = 3e-3
    """β_IM, coefficient of the importance-minimality loss."""
    leak: float = 0.01
    """Slope of the leaky hard sigmoids outside [0, 1], in [0, 1)."""
    seed: int = 0
    """Seed of the subcomponents' and gates' initialisation."""
    sigmoid: str = "leaky_hard"
    """Squashing of the masks' gates: ``leaky_hard`` (as the reference implementation: the mask
    is the plain hard sigmoid clamp(x, 0, 1), and below 0 a gradient of slope ``leak`` flows only
    where it would raise the logit) or ``lower_leaky`` (the mask itself is ``leak``·x below 0,
    so it can go negative: this package's first form). The importance penalty always uses the
    upper-leaky hard sigmoid."""
    gate_init: str = "kaiming"
    """Initialisation of the causal-importance MLPs: ``kaiming`` (as the reference: input weights
    N(0, 2), output weights N(0, 1/H), biases 0, so gates start near 0) or ``legacy`` (input
    weights N(0, 1), input biases N(0, 0.01), output bias 0.5, so gates start near 1/2)."""
    faithfulness_warmup_steps: int = 200
    """Steps of faithfulness-only training of U and V (AdamW) before the SPD loss, in
    :func:`train_spd` (0: none)."""
    faithfulness_warmup_lr: float = 0.01
    """Learning rate of the faithfulness warm-up."""
    faithfulness_warmup_weight_decay: float = 0.1
    """AdamW weight decay of the faithfulness warm-up."""
    delta_component: bool = False
    """Add the residual W − Σ_c U_c V_cᵀ to every masked matrix, scaled by its own U(0, 1) mask
    (the reference implementation's ``use_delta_component``; one more uniform per matrix)."""

    def __post_init__(self) -> None:
        check_int("n_components", self.n_components, 1)
        check_int("gate_hidden", self.gate_hidden, 1)
        check_float("p", self.p, 0.0, 2.0, lo_open=True)
        for name in ("faithfulness", "reconstruction", "layerwise", "importance"):
            check_nonneg(name, getattr(self, name))
        check_float("leak", self.leak, 0.0, 1.0, hi_open=True)
        check_seed("seed", self.seed)
        check_choice("sigmoid", self.sigmoid, SIGMOIDS)
        check_choice("gate_init", self.gate_init, GATE_INITS)
        check_int("faithfulness_warmup_steps", self.faithfulness_warmup_steps, 0)
        check_positive("faithfulness_warmup_lr", self.faithfulness_warmup_lr)
        check_nonneg("faithfulness_warmup_weight_decay", self.faithfulness_warmup_weight_decay)
        check_bool("delta_component", self.delta_component)

    @property
    def n_uniform_per_matrix(self) -> int:
        """Uniforms per decomposed matrix in every batch row: C, plus 1 with the delta component."""
        return self.n_components + int(self.delta_component)


def _check_squash(x: Any, leak: Any) -> None:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch tensor, got {type(x).__name__}")
    check_float("leak", leak, 0.0, 1.0, hi_open=True)


def lower_leaky_hard_sigmoid(x: torch.Tensor, leak: float) -> torch.Tensor:
    """leak·x for x < 0, x on [0, 1], 1 above (the masks' squashing)."""
    _check_squash(x, leak)
    return torch.where(x < 0, leak * x, x.clamp(max=1.0))


def upper_leaky_hard_sigmoid(x: torch.Tensor, leak: float) -> torch.Tensor:
    """0 for x < 0, x on [0, 1], 1 + leak·(x − 1) above (the importance penalty's squashing)."""
    _check_squash(x, leak)
    return torch.where(x > 1, 1 + leak * (x - 1), x.clamp(min=0.0))


class _LeakyHardMask(torch.autograd.Function):
    """clamp(x, 0, 1) forward; backward the identity on (0, 1], and below 0 slope ``leak`` for
    gradients that raise x (negative upstream gradient), zero otherwise."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, leak: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.leak = leak
        return x.clamp(0.0, 1.0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        zero = torch.zeros_like(grad)
        below = torch.where(grad < 0, ctx.leak * grad, zero)
        return torch.where(x <= 0, below, torch.where(x <= 1, grad, zero)), None


class _GateMLP(torch.autograd.Function):
    """The causal-importance MLPs of all subcomponents at once, Γ_c(s) = Σ_h w2_ch GELU(w1_ch s
    + b1_ch) + b2_c, on inner activations laid out (I, C, B) so that every reduction over the
    hidden units or the batch is one batched matmul. Hand-derived backward: the (I, C, B, H)
    hidden tensor is written five times per step instead of the dozen passes (and allocations)
    autograd makes of the broadcast expression; the values are the same up to float summation
    order (tests/test_spd.py compares both)."""

    @staticmethod
    def forward(ctx: Any, s: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor,
                b2: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        i, c, b = s.shape
        h = w1.shape[-1]
        z = torch.addcmul(b1[:, :, None, :], s[..., None], w1[:, :, None, :])  # (I, C, B, H)
        act = F.gelu(z)
        out = torch.baddbmm(b2.reshape(i * c, 1, 1), act.view(i * c, b, h), w2.reshape(i * c, h, 1))
        ctx.save_for_backward(s, w1, w2, z, act)
        return out.view(i, c, b)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):  # type: ignore[override]
        s, w1, w2, z, act = ctx.saved_tensors
        i, c, b, h = z.shape
        grad = grad.contiguous()
        g = grad.view(i * c, 1, b)
        d_w2 = torch.bmm(g, act.view(i * c, b, h)).view(i, c, h)
        gz = torch.mul(grad[..., None], w2[:, :, None, :])  # ∂L/∂act, then ∂L/∂z in place
        torch.ops.aten.gelu_backward.grad_input(gz, z, grad_input=gz)
        gz2 = gz.view(i * c, b, h)
        d_s = torch.bmm(gz2, w1.reshape(i * c, h, 1)).view(i, c, b) if ctx.needs_input_grad[0] else None
        d_w1 = torch.bmm(s.reshape(i * c, 1, b), gz2).view(i, c, h)
        return d_s, d_w1, gz.sum(2), d_w2, grad.sum(-1)


def gate_mlp(s_ICB: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor) -> torch.Tensor:
    """Γ_c(s) for inner activations (I, C, B) and per-subcomponent weights w1, b1, w2 (I, C, H),
    b2 (I, C): (I, C, B) (see :class:`_GateMLP`)."""
    return _GateMLP.apply(s_ICB.contiguous(), w1, b1, w2, b2)


def leaky_hard_mask(x: torch.Tensor, leak: float) -> torch.Tensor:
    """The reference implementation's mask squashing: the hard sigmoid clamp(x, 0, 1), whose
    gradient below 0 is ``leak`` times the upstream gradient where that would raise x, else 0."""
    _check_squash(x, leak)
    return _LeakyHardMask.apply(x, float(leak))


# ====================================================================== the source
class MaskedSource:
    """The target's source with Σ_l C_l uniform columns appended to every row (the u of the
    stochastic masks m = g + (1 − g) u). Per-instance when the base is; ``subset`` keeps each
    instance's data and uniforms."""

    def __init__(self, base: Any, n_uniform: int, *, seed: int = 0, _cube: UnitCube | None = None) -> None:
        missing = [a for a in ("sample", "n_instances", "dim", "device", "get_state", "set_state", "spec", "subset")
                   if not hasattr(base, a)]
        if missing:
            raise ValueError(f"base must be a data source (toymodels.data.Source); {type(base).__name__} lacks {missing}")
        self.base = base
        self.n_uniform = check_int("n_uniform", n_uniform, 1)
        self.seed = check_seed("seed", seed)
        self.device = base.device
        self.n_instances = int(base.n_instances)
        self.cube = _cube if _cube is not None else UnitCube(
            self.n_uniform, self.n_instances, seed=derive_seed(self.seed, "spd-masks"), device=self.device)
        self.dim = int(base.dim) + self.n_uniform

    def sample(self, batch_size: int) -> torch.Tensor:
        """A batch (I, B, D_base + Σ C): the base rows, then the uniforms."""
        return torch.cat([self.base.sample(batch_size), self.cube.sample(batch_size)], dim=-1)

    def get_state(self) -> tuple[Any, torch.Tensor]:
        return (self.base.get_state(), self.cube.get_state())

    def set_state(self, state: Any) -> None:
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise ValueError("a MaskedSource state is a pair (base state, mask state) from get_state()")
        self.base.set_state(state[0])
        self.cube.set_state(state[1])

    def spec(self) -> dict[str, Any]:
        return {"kind": "spd-masked", "base": self.base.spec(), "n_uniform": self.n_uniform, "seed": self.seed}

    def subset(self, index: Any) -> "MaskedSource":
        return MaskedSource(self.base.subset(index), self.n_uniform, seed=self.seed, _cube=self.cube.subset(index))


# ====================================================================== the model
class SPDModel(nn.Module):
    """SPD of a frozen target (see the module docstring). Batches are rows
    [target input | Σ C uniforms] from :class:`MaskedSource`. Only the subcomponents and the
    gates are :meth:`parameters`; the target rides along frozen (in ``state_dict``)."""

    family = "spd"

    def __init__(self, target: nn.Module, config: SPDConfig, *, _copy: bool = True) -> None:
        super().__init__()
        if not isinstance(config, SPDConfig):
            raise ValueError(f"config must be an SPDConfig, got {type(config).__name__}")
        target = as_target(target)
        if _copy:  # a private frozen copy: the caller's model is never touched
            target = target.subset(torch.arange(target.n_instances))
        for p in target.parameters():
            p.requires_grad_(False)
        self.target = target
        self.config = config
        weights = target.spd_weights()
        self.names = tuple(weights)
        i, c, h = target.n_instances, config.n_components, config.gate_hidden
        dev = next(iter(weights.values())).device
        g = make_generator(derive_seed(config.seed, "spd-init"), dev)
        self.U, self.V = nn.ParameterDict(), nn.ParameterDict()
        self.gate_w1, self.gate_b1, self.gate_w2, self.gate_b2 = (nn.ParameterDict() for _ in range(4))
        for name, W in weights.items():
            n_out, n_in = W.shape[1], W.shape[2]
            self.V[name] = nn.Parameter(torch.randn(i, c, n_in, generator=g, device=dev) / math.sqrt(n_in))
            self.U[name] = nn.Parameter(torch.randn(i, c, n_out, generator=g, device=dev) / math.sqrt(c))
            if config.gate_init == "kaiming":  # Kaiming normal (ReLU gain) in, linear out, zero biases
                w1 = torch.randn(i, c, h, generator=g, device=dev) * math.sqrt(2.0)
                b1 = torch.zeros(i, c, h, device=dev)
                b2 = torch.zeros(i, c, device=dev)
            else:
                w1 = torch.randn(i, c, h, generator=g, device=dev)
                b1 = torch.randn(i, c, h, generator=g, device=dev) * 0.1
                b2 = torch.ones(i, c, device=dev) * 0.5
            self.gate_w1[name] = nn.Parameter(w1)
            self.gate_b1[name] = nn.Parameter(b1)
            self.gate_w2[name] = nn.Parameter(torch.randn(i, c, h, generator=g, device=dev) / math.sqrt(h))
            self.gate_b2[name] = nn.Parameter(b2)
        self.target_dim = _target_width(target)
        self.input_dim = self.target_dim + config.n_uniform_per_matrix * len(self.names)
        self.activation_width = self.target_dim + c * len(self.names) * (4 + 3 * h)

    # ------------------------------------------------------------------ protocol
    @property
    def n_instances(self) -> int:
        return self.target.n_instances

    @property
    def n_components(self) -> int:
        return self.config.n_components

    def parameters(self, recurse: bool = True):  # type: ignore[override]
        """The trainable tensors: subcomponents and gates (the target is frozen)."""
        return (p for p in super().parameters(recurse) if p.requires_grad)

    def spec(self) -> dict[str, Any]:
        return {"family": self.family, **asdict(self.config), "target": self.target.spec()}

    def subset(self, index: Any) -> "SPDModel":
        idx = torch.arange(self.n_instances)[index].reshape(-1)
        new = SPDModel(self.target.subset(idx), self.config, _copy=False)
        with torch.no_grad():
            for p, q in zip(self.parameters(), new.parameters()):
                q.copy_(p[idx.to(p.device)])
        return new

    @torch.no_grad()
    def load_instances(self, index: Any, other: "SPDModel") -> None:
        idx = torch.arange(self.n_instances)[index].reshape(-1).to(next(self.parameters()).device)
        for p, q in zip(self.parameters(), other.parameters()):
            p[idx] = q.to(p.device)

    # ------------------------------------------------------------------ maths
    def component_weights(self) -> dict[str, torch.Tensor]:
        """Ŵ = Σ_c U_c V_cᵀ per matrix, (I, out, in)."""
        return {n: torch.bmm(self.U[n].transpose(1, 2), self.V[n]) for n in self.names}

    def gate_logits(self, name: str, inner: torch.Tensor) -> torch.Tensor:
        """Γ_c(s_c) for inner activations s (I, B, C): a 1 → H → 1 GELU MLP per subcomponent."""
        return gate_mlp(inner.transpose(1, 2), self.gate_w1[name], self.gate_b1[name], self.gate_w2[name],
                        self.gate_b2[name]).transpose(1, 2)

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Batch rows -> (target input, {name: uniforms (I or 1, B, C, or C + 1 with the delta
        component, whose mask is the last)})."""
        if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[-1] != self.input_dim \
                or x.shape[0] not in (1, self.n_instances) or x.shape[1] == 0:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be shaped (1 or n_instances = {self.n_instances}, batch >= 1, "
                             f"{self.input_dim} = target input {self.target_dim} + {len(self.names)} × C uniforms); "
                             f"got {got}")
        c, d = self.config.n_uniform_per_matrix, self.target_dim
        return x[..., :d], {n: x[..., d + k * c: d + (k + 1) * c] for k, n in enumerate(self.names)}

    def mask_squash(self, logit: torch.Tensor) -> torch.Tensor:
        """The masks' squashing of gate logits (:attr:`SPDConfig.sigmoid`)."""
        if self.config.sigmoid == "leaky_hard":
            return leaky_hard_mask(logit, self.config.leak)
        return lower_leaky_hard_sigmoid(logit, self.config.leak)

    def working_basis(self) -> tuple[Callable[..., torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor],
                                     dict[str, torch.Tensor]]:
        """(forward, W, U, V) as the losses use them: the target's own, or folded into its narrow
        basis where the target declares ``spd_folds`` (see :func:`folded_weight`)."""
        W = self.target.spd_weights()
        folds = self.target.spd_folds() if hasattr(self.target, "spd_folds") else None
        if not folds:
            return self.target.spd_forward, W, dict(self.U), dict(self.V)
        U, V = {}, {}
        for n in self.names:
            r_in, r_out = folds.get(n, (None, None))
            V[n] = self.V[n] if r_in is None else torch.matmul(self.V[n], r_in.transpose(1, 2))
            U[n] = self.U[n] if r_out is None else torch.matmul(self.U[n], r_out)
        return (self.target.spd_forward_folded, {n: folded_weight(W[n], folds.get(n, (None, None))) for n in self.names},
                U, V)

    def losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each loss term per instance (I,): faithfulness, reconstruction, layerwise, importance."""
        cfg = self.config
        inp, u = self.split(x)
        W_full = self.target.spd_weights()
        W_hat = self.component_weights()
        n_entries = sum(w[0].numel() for w in W_full.values())
        faith = sum((W_full[n] - W_hat[n]).square().flatten(1).sum(1) for n in self.names) / n_entries
        forward, W, U, V = self.working_basis()

        def plain(name: str, a: torch.Tensor) -> torch.Tensor:
            return torch.matmul(a, W[name].transpose(1, 2))

        # One plain pass gives the target output and records each matrix's input, from which
        # its gates are computed (causal importances see the target's activations, not masks).
        acts: dict[str, torch.Tensor] = {}

        def record(name: str, a: torch.Tensor) -> torch.Tensor:
            acts[name] = a
            return plain(name, a)

        with torch.no_grad():
            y = forward(inp, record)
        masks, imp = {}, 0.0
        c = cfg.n_components
        delta = {n: W[n] - torch.bmm(U[n].transpose(1, 2), V[n]) for n in self.names} if cfg.delta_component else {}
        for n in self.names:
            inner = torch.matmul(acts[n], V[n].transpose(1, 2))  # (I, B, C)
            logit = self.gate_logits(n, inner)
            g_mask = self.mask_squash(logit)
            masks[n] = g_mask + (1 - g_mask) * u[n][..., :c]
            g_imp = upper_leaky_hard_sigmoid(logit, cfg.leak)
            imp = imp + (g_imp.abs() + 1e-12).pow(cfg.p).sum(-1).mean(-1)

        def masked(only: str | None) -> Callable[[str, torch.Tensor], torch.Tensor]:
            def layer(name: str, a: torch.Tensor) -> torch.Tensor:
                if only is not None and name != only:
                    return plain(name, a)
                inner = torch.matmul(a, V[name].transpose(1, 2)) * masks[name]
                out = torch.matmul(inner, U[name])
                if cfg.delta_component:  # the residual W − Ŵ, under its own uniform mask
                    out = out + u[name][..., c:] * torch.matmul(a, delta[name].transpose(1, 2))
                return out
            return layer

        def mse(out: torch.Tensor) -> torch.Tensor:
            return (out - y).square().mean(dim=(1, 2))

        recon = mse(forward(inp, masked(None)))
        zero = torch.zeros_like(recon)
        layerwise = sum((mse(forward(inp, masked(n))) for n in self.names), zero) / len(self.names) \
            if cfg.layerwise > 0 else zero
        return {"faithfulness": faith, "reconstruction": recon, "layerwise": layerwise,
                "importance": imp if isinstance(imp, torch.Tensor) else zero}

    def _total(self, x: torch.Tensor) -> torch.Tensor:
        cfg, L = self.config, self.losses(x)
        return (cfg.faithfulness * L["faithfulness"] + cfg.reconstruction * L["reconstruction"]
                + cfg.layerwise * L["layerwise"] + cfg.importance * L["importance"])

    @torch.no_grad()
    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Per-instance total SPD loss (I,), no gradient."""
        return self._total(x)

    def loss_and_grad(self, x: torch.Tensor) -> torch.Tensor:
        """Per-instance total SPD loss (I,), gradients filled by autograd."""
        loss = self._total(x)
        loss.sum().backward()
        return loss.detach()


# ====================================================================== analysis
@torch.no_grad()
def causal_importance(spd: SPDModel, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """g_c = σ_H(Γ_c(V_c·a)) (plain hard sigmoid, no leak) of every subcomponent on target
    inputs x (I or 1, B, D_target): {name: (I, B, C)}."""
    if not isinstance(spd, SPDModel):
        raise ValueError(f"spd must be an SPDModel, got {type(spd).__name__}")
    check_tensor("x", x, ndim=3, floating=True, finite=False)
    if x.shape[0] not in (1, spd.n_instances) or x.shape[1] == 0 or x.shape[2] != spd.target_dim:
        raise ValueError(f"x must be shaped (1 or n_instances = {spd.n_instances}, batch >= 1, "
                         f"target input {spd.target_dim}); got {tuple(x.shape)}")
    forward, W, _, V = spd.working_basis()
    acts: dict[str, torch.Tensor] = {}

    def record(name: str, a: torch.Tensor) -> torch.Tensor:
        acts[name] = a
        return torch.matmul(a, W[name].transpose(1, 2))

    forward(x, record)
    return {n: spd.gate_logits(n, torch.matmul(acts[n], V[n].transpose(1, 2))).clamp(0.0, 1.0)
            for n in spd.names}


@torch.no_grad()
def rank_one_cosine(U: torch.Tensor, V: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Frobenius cosine of rank-1 matrices U_c V_cᵀ and u_j v_jᵀ: cos(U_c, u_j)·cos(V_c, v_j).
    U (..., C, out), V (..., C, in), u (..., J, out), v (..., J, in) -> (..., C, J)."""
    for name, t in (("U", U), ("V", V), ("u", u), ("v", v)):
        check_tensor(name, t, floating=True)
        if t.ndim < 2:
            raise ValueError(f"{name} must have at least 2 dimensions (..., rows, width), got shape {tuple(t.shape)}")
    if U.shape[-2] != V.shape[-2]:
        raise ValueError(f"U and V must have the same number C of subcomponents, got {U.shape[-2]} and {V.shape[-2]}")
    if u.shape[-2] != v.shape[-2]:
        raise ValueError(f"u and v must have the same number J of rank-1 matrices, got {u.shape[-2]} and {v.shape[-2]}")
    if U.shape[-1] != u.shape[-1]:
        raise ValueError(f"U and u must have the same out width, got {U.shape[-1]} and {u.shape[-1]}")
    if V.shape[-1] != v.shape[-1]:
        raise ValueError(f"V and v must have the same in width, got {V.shape[-1]} and {v.shape[-1]}")
    lead = {tuple(t.shape[:-2]) for t in (U, V, u, v)}
    try:
        torch.broadcast_shapes(*lead)
    except RuntimeError:
        raise ValueError(f"U, V, u and v must share their leading (instance) dimensions, got {sorted(lead)}") from None
    def unit(t: torch.Tensor) -> torch.Tensor:
        return t / t.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return (unit(U) @ unit(u).transpose(-1, -2)) * (unit(V) @ unit(v).transpose(-1, -2))


def faithfulness_warmup(spd: SPDModel, steps: int | None = None) -> torch.Tensor:
    """Fit Σ_c U_c V_cᵀ to the target's weights alone, before the SPD loss (as the reference
    implementation does): ``steps`` (default ``config.faithfulness_warmup_steps``) AdamW steps
    at ``faithfulness_warmup_lr`` with ``faithfulness_warmup_weight_decay`` on U and V only.
    Returns the per-instance faithfulness loss (I,) after the warm-up."""
    if not isinstance(spd, SPDModel):
        raise ValueError(f"spd must be an SPDModel, got {type(spd).__name__}")
    cfg = spd.config
    steps = cfg.faithfulness_warmup_steps if steps is None else check_int("steps", steps, 0)
    W = {n: w.detach() for n, w in spd.target.spd_weights().items()}
    n_entries = sum(w[0].numel() for w in W.values())

    def faith() -> torch.Tensor:
        W_hat = spd.component_weights()
        return sum((W[n] - W_hat[n]).square().flatten(1).sum(1) for n in spd.names) / n_entries

    if steps > 0:
        params = [*spd.U.values(), *spd.V.values()]
        opt = torch.optim.AdamW(params, lr=cfg.faithfulness_warmup_lr, weight_decay=cfg.faithfulness_warmup_weight_decay)
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            faith().sum().backward()  # instances are independent: the sum's gradient is each one's
            opt.step()
        for p in params:
            p.grad = None
    with torch.no_grad():
        return faith()


@dataclass
class SPDRun:
    """What :func:`train_spd` returns."""

    model: SPDModel
    source: MaskedSource
    result: TrainResult


def train_spd(target: nn.Module, source: Any, config: SPDConfig, train_config: TrainConfig, *,
              mask_seed: int | None = None, out: Any = None) -> SPDRun:
    """Decompose ``target`` (trained, frozen) on batches of ``source`` (its own kind of data)
    with :func:`toymodels.train.train`, after :func:`faithfulness_warmup`; uniforms for the
    masks from ``mask_seed`` (default ``config.seed``)."""
    if not isinstance(config, SPDConfig):
        raise ValueError(f"config must be an SPDConfig, got {type(config).__name__}")
    if not isinstance(train_config, TrainConfig):
        raise ValueError(f"train_config must be a TrainConfig, got {type(train_config).__name__}")
    if mask_seed is not None:
        check_seed("mask_seed", mask_seed)
    if not hasattr(source, "sample") or not hasattr(source, "n_instances") or not hasattr(source, "dim"):
        raise ValueError(f"source must be a data source (toymodels.data.Source), got {type(source).__name__}")
    t = as_target(target)
    if int(source.n_instances) not in (1, int(t.n_instances)):
        raise ValueError(f"source has {source.n_instances} instances; the target has {t.n_instances}")
    if int(source.dim) != _target_width(t):
        raise ValueError(f"source has dim {source.dim}; the target's input width is {_target_width(t)}")
    model = SPDModel(target, config)
    faithfulness_warmup(model)
    src = MaskedSource(source, model.input_dim - model.target_dim,
                       seed=config.seed if mask_seed is None else mask_seed)
    result = train(model, src, train_config, out)
    return SPDRun(model, src, result)
