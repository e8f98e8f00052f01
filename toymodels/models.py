"""Toy models of superposition, batched over a leading instance axis.

Shapes: I instances, B batch, N features, M hidden. ``W_IMN`` holds one (M, N) matrix per
instance whose columns W_i are the feature directions (Elhage et al. 2022).

- :class:`ReLUOutput`  x' = ReLU(WᵀW x + b)
- :class:`Linear`      x' = WᵀW x + b
- :class:`HiddenReLU`  x' = ReLU(Wᵀ ReLU(W x) + b)          (the "neuron" model)
- :class:`ComputationModel`  y' = ReLU(W2 ReLU(W1 x) + b), target |x|, signed inputs

Loss (Elhage et al. 2022, eq. 2): L = E_x Σ_i I_i (t_i − x'_i)², taken as the mean over batch
and features per instance and summed over instances, so each instance trains independently
under Adam (Adam is invariant to the scale of each parameter's gradient).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ._validate import as_instance_tensor, check_choice, check_int, check_positive, check_seed, check_tensor_range
from .device import make_generator, resolve_device, run_in_lanes

MODEL_KINDS = ("relu-output", "linear", "hidden-relu", "computation")


@dataclass(frozen=True)
class TMSConfig:
    """Shape and importance of a batched toy model."""

    n_features: int = 5
    """N, the number of input features."""
    d_hidden: int = 2
    """M, the hidden width. At most N for ``relu-output`` and ``linear`` (wider shows no superposition)."""
    n_instances: int = 1
    """I, independent models trained side by side (a sweep or seed axis)."""
    kind: str = "relu-output"
    """One of relu-output, linear, hidden-relu, computation."""
    importance_decay: float = 1.0
    """Feature i has importance decay**i (Elhage et al. use 0.7 for n = 20, m = 5)."""

    def __post_init__(self) -> None:
        check_int("n_features", self.n_features, 1)
        check_int("d_hidden", self.d_hidden, 1)
        check_int("n_instances", self.n_instances, 1)
        check_choice("kind", self.kind, MODEL_KINDS)
        check_positive("importance_decay", self.importance_decay)
        if self.kind in ("relu-output", "linear") and self.d_hidden > self.n_features:
            raise ValueError(
                f"d_hidden must be in [1, n_features = {self.n_features}] for kind {self.kind!r} "
                f"(a hidden layer wider than the input has no reason to superpose); got {self.d_hidden}"
            )


def importance_vector(n_features: int, decay: float) -> torch.Tensor:
    """I_i = decay**i, shape (N,)."""
    return decay ** torch.arange(n_features, dtype=torch.float32)


class ToyModel(nn.Module):
    """Common machinery: importance-weighted loss, instance subsets, specs.

    ``importance``: None (decay**i from the config), a vector (N,) shared by every instance,
    or (I, N) per instance and feature.
    """

    kind: ClassVar[str]
    family: ClassVar[str] = "tms"
    activation_width: int  # floats per sample per instance, for the memory estimate

    def __init__(
        self,
        config: TMSConfig,
        *,
        importance: Any = None,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        if config.kind != self.kind:
            config = TMSConfig(**{**asdict(config), "kind": self.kind})
        if not isinstance(config, TMSConfig):
            raise ValueError(f"config must be a TMSConfig, got {type(config).__name__}")
        self.config = config
        self.seed = check_seed("seed", seed)
        self.device_ = resolve_device(device)
        n, i = config.n_features, config.n_instances
        if importance is None:
            imp = importance_vector(n, config.importance_decay)[None, :]
        else:
            imp = torch.as_tensor(importance, dtype=torch.float32)
            if imp.ndim == 1:  # a vector is one importance per feature, shared by every instance
                if imp.shape[0] != n:
                    raise ValueError(f"importance as a vector must have n_features = {n} entries, got {imp.shape[0]}; "
                                     "use shape (n_instances, n_features) for per-instance importances")
                imp = imp[None, :]
            imp = as_instance_tensor("importance", imp, i, n)
            check_tensor_range("importance", imp, 0.0, math.inf)
        self.register_buffer("importance", imp.expand(i, n).contiguous().to(self.device_))  # (I, N)
        self._gen = make_generator(self.seed, self.device_)

    # ------------------------------------------------------------------ shapes
    @property
    def n_instances(self) -> int:
        return self.config.n_instances

    @property
    def n_features(self) -> int:
        return self.config.n_features

    @property
    def d_hidden(self) -> int:
        return self.config.d_hidden

    def _init_weight(self, *shape: int) -> nn.Parameter:
        """Xavier-normal per (M, N) matrix: std = sqrt(2 / (fan_in + fan_out))."""
        std = math.sqrt(2.0 / (shape[-1] + shape[-2]))
        w = torch.randn(*shape, generator=self._gen, device=self.device_) * std
        return nn.Parameter(w)

    # ------------------------------------------------------------------ maths
    def target(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def check_input(self, x: Any) -> torch.Tensor:
        """``x`` as a batch this model takes: a tensor (I or 1, B >= 1, N) in the weights'
        dtype; anything else raises ValueError naming the shape or dtype expected."""
        W = self.W
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"x must be a torch.Tensor shaped (1 or n_instances, batch, n_features); got {type(x).__name__}")
        n_i, n = W.shape[0], W.shape[-1]
        if x.ndim != 3 or x.shape[-1] != n or x.shape[0] not in (1, n_i):
            raise ValueError(
                f"x must be shaped (1 or n_instances = {n_i}, batch, n_features = {n}); got {tuple(x.shape)}"
            )
        if x.shape[1] == 0:
            raise ValueError(f"x is an empty batch (shape {tuple(x.shape)}); give at least one sample")
        if x.dtype != W.dtype:
            raise ValueError(f"x must have the model's dtype {W.dtype}, got {x.dtype} (convert with x.to({W.dtype}))")
        return x

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The hidden layer h (I, B, M) of a batch x (I or 1, B, N)."""
        return self._hidden(self.check_input(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The output x' (I, B, N) of a batch x (I or 1, B, N)."""
        return self._readout(self._hidden(self.check_input(x)))

    def _hidden(self, x_IBN: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _readout(self, h_IBM: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def W(self) -> torch.Tensor:
        """The (I, M, N) matrix whose columns are the feature directions."""
        raise NotImplementedError  # pragma: no cover

    def feature_directions(self) -> torch.Tensor:
        """(I, N, M): feature i's hidden-space direction W_i."""
        return self.W.transpose(1, 2)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Per-instance loss (I,): mean over batch and features of I_i (t_i − x'_i)²."""
        x = self.check_input(x)
        err = self.target(x) - self._readout(self._hidden(x))
        return (self.importance[:, None, :] * err.square()).mean(dim=(1, 2))

    def loss_and_grad(self, x: torch.Tensor) -> torch.Tensor:
        """Per-instance loss (I,), with ``.grad`` of every parameter filled in (autograd)."""
        loss = self.loss(x)
        loss.sum().backward()
        return loss.detach()

    # ------------------------------------------------------------------ bookkeeping
    def spec(self) -> dict[str, Any]:
        return {"family": "tms", **asdict(self.config), "seed": self.seed}

    def subset(self, index: Any) -> "ToyModel":
        """A new model holding the chosen instances (weights copied)."""
        idx = torch.arange(self.n_instances)[index]
        cfg = TMSConfig(**{**asdict(self.config), "n_instances": len(idx)})
        imp = self.importance[idx.to(self.device_)]
        new = type(self)(cfg, importance=imp.cpu(), seed=self.seed, device=self.device_)
        with torch.no_grad():
            for (name, p), q in zip(self.named_parameters(), new.parameters()):
                q.copy_(p[idx.to(p.device)])
        return new

    @torch.no_grad()
    def load_instances(self, index: Any, other: "ToyModel") -> None:
        """Copy ``other``'s weights into instances ``index`` of this model."""
        idx = torch.arange(self.n_instances)[index].to(self.device_)
        for p, q in zip(self.parameters(), other.parameters()):
            p[idx] = q.to(p.device)


class _TiedWeights(ToyModel):
    """Models reading and writing features with the same W (I, M, N) and a bias b (I, N):
    x' = ReLU(Wᵀ h + b) with h = ``_hidden(x)``."""

    _hidden_relu: ClassVar[bool] = False
    _relu: ClassVar[bool] = True

    def __init__(self, config: TMSConfig, **kw: Any) -> None:
        super().__init__(config, **kw)
        i, m, n = config.n_instances, config.d_hidden, config.n_features
        self.W_IMN = self._init_weight(i, m, n)
        self.b_IN = nn.Parameter(torch.zeros(i, n, device=self.device_))
        self.activation_width = 3 * n + (2 * m if self._hidden_relu else m)

    @property
    def W(self) -> torch.Tensor:
        return self.W_IMN

    def _hidden(self, x_IBN: torch.Tensor) -> torch.Tensor:
        h = torch.matmul(x_IBN, self.W_IMN.transpose(1, 2))  # (I, B, M)
        return torch.relu(h) if self._hidden_relu else h

    def _readout(self, h_IBM: torch.Tensor) -> torch.Tensor:
        z = torch.baddbmm(self.b_IN[:, None, :], h_IBM, self.W_IMN)
        return torch.relu(z) if self._relu else z


class ReLUOutput(_TiedWeights):
    """x' = ReLU(WᵀW x + b), W (I, M, N), b (I, N). Elhage et al. 2022, section 2."""

    kind = "relu-output"

    chunk_elements: ClassVar[int] = 1 << 14
    """On CPU with one torch thread, a batch with at least this many entries B·N per
    instance is processed one instance at a time (see :meth:`loss_and_grad`); smaller ones,
    and any batch when torch runs several threads, in one batched pass."""

    @torch.no_grad()
    def loss_and_grad(self, x_IBN: torch.Tensor) -> torch.Tensor:
        """Loss and hand-derived gradients, no autograd graph (the hot path of TMS sweeps).

        With h = W x, z = Wᵀh + b, r = σ(z) − x and g = ∂L/∂z = (2/BN) I ⊙ r ⊙ σ'(z):
        ∂L/∂b = Σ_B g,  ∂L/∂W = h gᵀ + (W g) xᵀ  (W enters twice).

        Small batches are computed feature-major for all instances at once — (I, N, B)
        views, batch as the long GEMM axis — which runs 3–5x faster than batch-major products
        when M and N are tiny (5 → 2). On CPU with one thread, large ones (B·N >=
        :attr:`chunk_elements`) go instance by instance, batch-major, through (B, N) work
        buffers kept between steps, so every elementwise pass reads and writes cache-resident
        memory instead of fresh (I, B, N) tensors (:meth:`_loss_and_grad_per_instance`).
        With several threads the batched pass stays: it splits whole instances among the
        threads, while eleven small kernels per instance would each open a parallel region,
        and threads that spin-wait there on a busy machine made that path 20x slower.
        The two paths agree to float rounding (the tests compare both with autograd).
        """
        self.check_input(x_IBN)
        bsz, n = x_IBN.shape[1], x_IBN.shape[2]
        if x_IBN.device.type == "cpu" and bsz * n >= self.chunk_elements and torch.get_num_threads() == 1:
            return self._loss_and_grad_per_instance(x_IBN)
        W, b = self.W_IMN, self.b_IN
        xT = x_IBN.transpose(1, 2)  # (I or 1, N, B), a view
        if xT.device.type == "cpu":  # one small copy: three products and a pass with a contiguous x run 2-3x faster
            xT = xT.contiguous()
        hT = torch.matmul(W, xT)  # (I, M, B)
        zT = torch.baddbmm(b[:, :, None], W.transpose(1, 2), hT)  # (I, N, B)
        # Three (I, N, B) buffers in all: z (then σ(z) in place), r, g; σ'(z) masks g into z's
        # buffer, and the linear model's r overwrites z (each fresh buffer costs about a pass).
        rT = torch.sub(zT.clamp_min_(0.0), xT) if self._relu else zT.sub_(xT)  # z's buffer holds σ(z)
        gT = rT * (self.importance[:, :, None] * (2.0 / (bsz * n)))
        loss = (gT * rT).sum(dim=(1, 2)).mul_(0.5)
        if self._relu:  # σ'(z): keep g where σ(z) > 0, i.e. z > 0 (one fused kernel, no bool mask)
            gT = torch.ops.aten.threshold_backward.grad_input(gT, zT, 0.0, grad_input=zT)
        gW = torch.bmm(hT, gT.transpose(1, 2))  # (I, M, N)
        gW.baddbmm_(torch.bmm(W, gT), xT.transpose(1, 2).expand(W.shape[0], -1, -1))
        W.grad = gW
        b.grad = gT.sum(dim=2)
        return loss

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Per-instance loss (I,). Without autograd on CPU, a batch of more than
        :attr:`eval_rows` entries per instance is evaluated instance by instance in lanes,
        in pieces of rows (:meth:`_loss_per_instance`: the final evaluation's 8192-sample
        batches of 20 x 200 -> 20 no longer allocate four (I, B, N) tensors, 2x faster); equal to
        the batched expression up to float rounding (test). Smaller batches, where the handover
        to the lanes would cost more than the cache saves, take the batched expression."""
        x = self.check_input(x)
        if (not torch.is_grad_enabled() and x.device.type == "cpu" and x.shape[1] * x.shape[2] > self.eval_rows
                and x.dtype == self.W_IMN.dtype):
            return self._loss_per_instance(x)
        return super().loss(x)

    def _work_buffers(self, bsz: int, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(B, N) z, r, g and (M, B) hᵀ, (∂L/∂h)ᵀ work buffers, reused while the shape holds."""
        n, m = self.n_features, self.d_hidden
        key = (bsz, like.dtype, like.device)
        ws = getattr(self, "_ws", None)
        if ws is None or ws[0] != key:
            mk = lambda *s: torch.empty(*s, dtype=like.dtype, device=like.device)  # noqa: E731
            ws = (key, (mk(bsz, n), mk(bsz, n), mk(bsz, n), mk(m, bsz), mk(m, bsz)))
            self._ws = ws
        return ws[1]

    def _loss_and_grad_per_instance(self, x_IBN: torch.Tensor) -> torch.Tensor:
        """:meth:`loss_and_grad` one instance at a time, in reused buffers — z, r, g (B, N)
        batch-major, the hidden layer as hᵀ (M, B) (the faster GEMM orientations):
        h = x Wᵀ, a = σ(hW + b), r = a − x, g = s ⊙ r with s = (2/BN) I, L = ½ Σ g·r, then g
        masked where a = 0 (σ'(z) = 0 exactly where σ(z) = 0); ∂L/∂W = hᵀg + (gWᵀ)ᵀx,
        ∂L/∂b = Σ_B g. Same maths as the batched path; each instance's result depends on its
        own weights and data only (bit for bit, whatever the other instances)."""
        W, b = self.W_IMN.detach(), self.b_IN.detach()
        n_i, bsz, n = W.shape[0], x_IBN.shape[1], x_IBN.shape[2]
        z, r, g, hT, ghT = self._work_buffers(bsz, x_IBN)
        s = self.importance * (2.0 / (bsz * n))  # (I, N)
        gW, gb = torch.empty_like(W), torch.empty_like(b)
        loss = torch.empty(n_i, dtype=W.dtype, device=W.device)
        shared = x_IBN.shape[0] == 1
        for i in range(n_i):
            x, Wi = x_IBN[0 if shared else i], W[i]
            torch.mm(Wi, x.t(), out=hT)  # hidden layer kept (M, B): the faster GEMM orientations
            torch.addmm(b[i], hT.t(), Wi, out=z)
            if self._relu:
                z.clamp_min_(0.0)
            torch.sub(z, x, out=r)
            torch.mul(r, s[i], out=g)
            torch.dot(g.view(-1), r.view(-1), out=loss[i])
            if self._relu:  # σ'(z): keep g where σ(z) > 0
                torch.ops.aten.threshold_backward.grad_input(g, z, 0.0, grad_input=g)
            torch.mm(hT, g, out=gW[i])
            torch.mm(Wi, g.t(), out=ghT)
            gW[i].addmm_(ghT, x)
            torch.sum(g, dim=0, out=gb[i])
        self.W_IMN.grad = gW
        self.b_IN.grad = gb
        return loss.mul_(0.5)

    eval_rows: ClassVar[int] = 1 << 18
    """:meth:`_loss_per_instance` works through an instance's batch in pieces of about this
    many entries (rows x N; at least one row): a piece's buffers stay in the core's cache."""

    @torch.no_grad()
    def _loss_per_instance(self, x_IBN: torch.Tensor) -> torch.Tensor:
        """:meth:`loss` without autograd, one instance at a time in lanes, each instance's batch
        in pieces of about :attr:`eval_rows` entries: z = σ(x Wᵀ W + b) into a reused buffer,
        then (z − x)² ⊙ I summed per piece; the pieces' sums are added in float64 and divided by
        B·N. Equal to the batched expression up to float rounding."""
        W, b = self.W_IMN.detach(), self.b_IN.detach()
        n_i, bsz, n = W.shape[0], x_IBN.shape[1], x_IBN.shape[2]
        rows = max(1, min(bsz, self.eval_rows // max(1, n)))
        imp = self.importance
        totals = torch.zeros(n_i, dtype=torch.float64, device=W.device)
        shared = x_IBN.shape[0] == 1

        def lane(j: int, start: int, stop: int) -> None:
            h = torch.empty(rows, W.shape[1], dtype=W.dtype, device=W.device)
            z = torch.empty(rows, n, dtype=W.dtype, device=W.device)
            for i in range(start, stop):
                xi, Wi = x_IBN[0 if shared else i], W[i]
                acc = 0.0
                for r0 in range(0, bsz, rows):
                    xr = xi[r0 : r0 + rows]
                    k = xr.shape[0]
                    hk, zk = h[:k], z[:k]
                    torch.mm(xr, Wi.t(), out=hk)
                    torch.addmm(b[i], hk, Wi, out=zk)
                    if self._relu:
                        zk.clamp_min_(0.0)
                    zk.sub_(xr).square_().mul_(imp[i])
                    acc += float(zk.sum(dtype=torch.float64))
                totals[i] = acc

        run_in_lanes(lane, n_i)
        return totals.div_(bsz * n).to(W.dtype)


class Linear(ReLUOutput):
    """x' = WᵀW x + b: with MSE it learns the top-M features, no superposition (seed 002)."""

    kind = "linear"
    _relu = False


class HiddenReLU(_TiedWeights):
    """x' = ReLU(Wᵀ ReLU(W x) + b): a privileged hidden basis (Elhage et al. 2022, section 9)."""

    kind = "hidden-relu"
    _hidden_relu = True


class ComputationModel(ToyModel):
    """y' = ReLU(W2 ReLU(W1 x) + b) trained to compute |x| from signed inputs
    (Elhage et al. 2022, section 10, "computation in superposition"). W1 (I, M, N) reads
    features into M neurons, W2 (I, N, M) writes them back."""

    kind = "computation"

    def __init__(self, config: TMSConfig, **kw: Any) -> None:
        super().__init__(config, **kw)
        i, m, n = config.n_instances, config.d_hidden, config.n_features
        self.W1_IMN = self._init_weight(i, m, n)
        self.W2_INM = self._init_weight(i, n, m)
        self.b_IN = nn.Parameter(torch.zeros(i, n, device=self.device_))
        self.activation_width = 3 * n + 2 * m

    @property
    def W(self) -> torch.Tensor:
        return self.W1_IMN

    def target(self, x: torch.Tensor) -> torch.Tensor:
        return x.abs()

    def _hidden(self, x_IBN: torch.Tensor) -> torch.Tensor:
        return torch.relu(torch.matmul(x_IBN, self.W1_IMN.transpose(1, 2)))

    def _readout(self, h_IBM: torch.Tensor) -> torch.Tensor:
        return torch.relu(torch.baddbmm(self.b_IN[:, None, :], h_IBM, self.W2_INM.transpose(1, 2)))


MODELS: dict[str, type[ToyModel]] = {
    cls.kind: cls for cls in (ReLUOutput, Linear, HiddenReLU, ComputationModel)
}


def build_model(config: TMSConfig, **kw: Any) -> ToyModel:
    """The model class named by ``config.kind``."""
    return MODELS[config.kind](config, **kw)


def model_from_spec(spec: dict[str, Any], device: str | torch.device = "cpu") -> ToyModel:
    """Rebuild an (untrained) model from :meth:`ToyModel.spec`; load weights separately.
    Unknown keys raise (a typo or another family's spec is never silently dropped)."""
    known = set(TMSConfig.__dataclass_fields__) | {"family", "seed"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ValueError(f"unknown toy-model setting(s) {unknown}; known: {sorted(known)}")
    if spec.get("family", "tms") != "tms":
        raise ValueError(f"spec is for model family {spec['family']!r}, not a toy model ('tms')")
    fields = {k: spec[k] for k in TMSConfig.__dataclass_fields__ if k in spec}
    return build_model(TMSConfig(**fields), seed=spec.get("seed", 0), device=device)
