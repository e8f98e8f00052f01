"""Compressed computation: the bigram toy and the residual-MLP toy, batched over instances.

**The bigram toy** (seed 002's question on SPD). Each instance has a vocabulary of T tokens
with random unit embeddings A_t (first position) and B_t (second position) in a residual
stream of D dims, and K known bigrams (t1, t2), each with its own random unit output vector
v_{t1 t2}. A sample is a residual r = A_{t1} + B_{t2} + ε (ε ~ N(0, σ²/D · I), "interference
from other aspects") with target v_{t1 t2}; with ``unknown_fraction`` > 0 some samples are a
uniformly random pair, whose target is 0 unless the pair happens to be known. An MLP of width
M, out = W_out ReLU(W_in r + b_in), must write v for each known bigram; K may exceed D (up to
T², quadratically many in the vocabulary). :class:`BigramSource` yields rows [r | target]
(width 2D), so the trainer's batches carry their own targets; :class:`BigramMLP` trains with
W_in frozen at its random init (``train_in=False``, a buffer) or trained.

A bigram k is **stored** when the noise-free output o_k = MLP(A_{t1} + B_{t2}) is closer (in
Euclidean distance) to v_k than to every other known v_j and to 0 (the "no bigram" output).
With unit v's this is o·v_k > max(max_{j≠k} o·v_j, 1/2): :func:`stored_bigrams`.

**The residual-MLP toy** (compressed computation; Braun et al. 2025, "Interpretability in
Parameter Space" (APD), and Bushnaq, Braun & Sharkey 2025 (SPD), section 4): N sparse signed
features x are embedded into a residual stream by a fixed random W_E (N × D, unit rows),
r = x W_E; one MLP with M < N neurons adds h = W_out ReLU(W_in r + b_in); the output is read
back with W_Eᵀ: y' = (r + h) W_Eᵀ; the target is y = x + ReLU(x), so the MLP must compute N
ReLUs with fewer than N neurons. :class:`ResidualMLP` trains on
:class:`toymodels.data.SparseFeatures` with ``magnitude="signed"``.

Both models implement the trainer's protocol (:mod:`toymodels.protocols`) and the hooks
:mod:`toymodels.spd` decomposes (``spd_weights`` and ``spd_forward``).

>>> from toymodels.compressed import BigramSource, BigramMLP, BigramMLPConfig, stored_bigrams
>>> from toymodels.train import TrainConfig, train
>>> src = BigramSource(d_resid=16, n_tokens=12, n_bigrams=[24, 48], n_instances=2, seed=1)
>>> mlp = BigramMLP(BigramMLPConfig(d_resid=16, d_mlp=32, n_instances=2, train_in=False))
>>> train(mlp, src, TrainConfig(steps=2000, lr=3e-3, quiet=True))
>>> stored_bigrams(mlp, src).count          # (2,) bigrams stored per instance
"""
from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable

import torch
from torch import nn

from .._validate import check_bool, check_float, check_int, check_seed
from ..data.features import Source, _instance_index
from ..device import derive_seed, make_generator, resolve_device
from .spd import folded_weight

Layer = Callable[[str, torch.Tensor], torch.Tensor]
"""``layer(name, a)``: the product of the weight matrix ``name`` (I, out, in) with inputs
a (I, B, in) -> (I, B, out); :mod:`toymodels.spd` swaps it for masked subcomponents."""


def _unit_rows(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)


# ====================================================================== the bigram task
@dataclass(frozen=True)
class BigramTask:
    """The fixed structure of I bigram tasks (T tokens, D dims, at most K known bigrams).

    Instance i's task depends only on (seed, i, T, D): its known bigrams are the first K_i
    pairs of one random permutation of the T² pairs, so a task with more bigrams extends one
    with fewer (nested sweeps over K compare like with like)."""

    A: torch.Tensor
    """(I, T, D) unit embeddings of the first token."""
    B: torch.Tensor
    """(I, T, D) unit embeddings of the second token."""
    pairs: torch.Tensor
    """(I, K, 2) long: the known bigrams (t1, t2), K = max_i K_i (rows past K_i unused)."""
    v: torch.Tensor
    """(I, K, D) unit output vectors v_{t1 t2} of the known bigrams."""
    n_bigrams: torch.Tensor
    """(I,) long: K_i, the number of known bigrams of instance i."""
    lookup: torch.Tensor
    """(I, T²) long: pair index t1·T + t2 -> its row in ``pairs``, or −1 when unknown."""

    @property
    def n_tokens(self) -> int:
        return int(self.A.shape[1])

    @property
    def d_resid(self) -> int:
        return int(self.A.shape[2])

    def subset(self, idx: torch.Tensor) -> "BigramTask":
        return BigramTask(*(t[idx] for t in (self.A, self.B, self.pairs, self.v, self.n_bigrams, self.lookup)))

    def residuals(self) -> torch.Tensor:
        """(I, K, D) noise-free residual streams A_{t1} + B_{t2} of the known bigrams."""
        t1, t2 = self.pairs[..., 0], self.pairs[..., 1]
        return self.A.gather(1, t1[..., None].expand(-1, -1, self.d_resid)) + \
            self.B.gather(1, t2[..., None].expand(-1, -1, self.d_resid))


def make_bigram_task(n_instances: int, d_resid: int, n_tokens: int, n_bigrams: Any, *, seed: int = 0,
                     device: str | torch.device = "cpu") -> BigramTask:
    """I random bigram tasks: A, B ~ uniform on the unit sphere of R^D, the known bigrams the
    first K_i pairs of a random permutation of the T² pairs, v ~ uniform on the sphere.
    ``n_bigrams``: one K for every instance or one per instance, each in [1, T²]."""
    n_i = check_int("n_instances", n_instances, 1)
    d = check_int("d_resid", d_resid, 1)
    t = check_int("n_tokens", n_tokens, 1)
    seed = check_seed("seed", seed)
    if isinstance(n_bigrams, numbers.Integral) and not isinstance(n_bigrams, bool):
        ks = [n_bigrams] * n_i
    elif isinstance(n_bigrams, torch.Tensor) and n_bigrams.ndim == 1:
        ks = n_bigrams.tolist()
    elif isinstance(n_bigrams, (list, tuple)):
        ks = list(n_bigrams)
    else:
        raise ValueError(f"n_bigrams must be one integer or a sequence of one per instance ({n_i}), got {n_bigrams!r}")
    if len(ks) != n_i:
        raise ValueError(f"n_bigrams must be one integer or one per instance ({n_i}), got {len(ks)} values")
    ks = [check_int("n_bigrams", k, 1, t * t) for k in ks]
    dev = resolve_device(device)
    k_max = max(ks)
    A, B, P, V, L = [], [], [], [], []
    for i in range(n_i):
        g = make_generator(derive_seed(seed, "bigram-task", i, t, d), dev)
        A.append(_unit_rows(torch.randn(t, d, generator=g, device=dev)))
        B.append(_unit_rows(torch.randn(t, d, generator=g, device=dev)))
        perm = torch.randperm(t * t, generator=g, device=dev)
        v_all = _unit_rows(torch.randn(t * t, d, generator=g, device=dev))  # v of the j-th pair in perm order
        P.append(torch.stack([perm[:k_max] // t, perm[:k_max] % t], dim=-1))
        V.append(v_all[:k_max])
        look = torch.full((t * t,), -1, dtype=torch.long, device=dev)
        look[perm[: ks[i]]] = torch.arange(ks[i], device=dev)
        L.append(look)
    return BigramTask(torch.stack(A), torch.stack(B), torch.stack(P), torch.stack(V),
                      torch.tensor(ks, dtype=torch.long, device=dev), torch.stack(L))


class BigramSource(Source):
    """Samples of the bigram task: rows [r | target] of width 2D (see the module docstring).

    A sample picks a known bigram uniformly (k = ⌊u·K_i⌋) — or, with probability
    ``unknown_fraction``, a uniform pair of the T² — and adds Gaussian interference of norm
    about ``noise``. Per-instance streams as every :class:`toymodels.data.Source`; the task
    (embeddings, bigrams, v's) comes from ``task_seed`` (default ``seed``).
    """

    def __init__(
        self,
        d_resid: int,
        n_tokens: int,
        n_bigrams: Any,
        n_instances: int = 1,
        *,
        noise: float = 0.0,
        unknown_fraction: float = 0.0,
        seed: int = 0,
        task_seed: int | None = None,
        device: str | torch.device = "cpu",
        _task: BigramTask | None = None,
    ) -> None:
        super().__init__(seed, device, n_instances)
        self.d_resid = check_int("d_resid", d_resid, 1)
        self.n_tokens = check_int("n_tokens", n_tokens, 1)
        self.noise = check_float("noise", noise, 0.0, math.inf, hi_open=True)
        self.unknown_fraction = check_float("unknown_fraction", unknown_fraction, 0.0, 1.0)
        self.task_seed = self.seed if task_seed is None else check_seed("task_seed", task_seed)
        self.task = _task if _task is not None else make_bigram_task(
            self.n_instances, d_resid, n_tokens, n_bigrams, seed=self.task_seed, device=self.device)
        self.dim = 2 * self.d_resid

    @property
    def n_bigrams(self) -> torch.Tensor:
        return self.task.n_bigrams

    def spec(self) -> dict[str, Any]:
        return {"kind": "bigrams", "d_resid": self.d_resid, "n_tokens": self.n_tokens,
                "n_bigrams": self.task.n_bigrams.tolist(), "n_instances": self.n_instances,
                "noise": self.noise, "unknown_fraction": self.unknown_fraction, "seed": self.seed,
                "task_seed": self.task_seed}

    def subset(self, index: Any) -> "BigramSource":
        """The chosen instances, with their tasks and exactly the data this source gives them."""
        idx = _instance_index(index, self.n_instances)
        new = BigramSource(self.d_resid, self.n_tokens, 1, len(idx), noise=self.noise,
                           unknown_fraction=self.unknown_fraction, seed=self.seed, task_seed=self.task_seed,
                           device=self.device, _task=self.task.subset(torch.tensor(idx, device=self.device)))
        new._fork(self, idx)
        return new

    def sample_pairs(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch (I, B, 2D) and each sample's pair index t1·T + t2 (I, B)."""
        batch_size = check_int("batch_size", batch_size, 1)
        us, es = [], []
        for gi, s, e in self._blocks:
            g = self.generators[gi]
            us.append(self._rand(g, e - s, batch_size, 3, dtype=torch.float64))
            es.append(torch.randn(e - s, batch_size, self.d_resid, generator=g, device=self.device))
        u = self._gather(us[0] if len(us) == 1 else torch.cat(us))
        eps = self._gather(es[0] if len(es) == 1 else torch.cat(es))
        task, t = self.task, self.n_tokens
        k = (u[..., 0] * task.n_bigrams[:, None]).long().clamp_(max=task.pairs.shape[1] - 1)  # (I, B)
        known = task.pairs.gather(1, k[..., None].expand(-1, -1, 2))  # (I, B, 2)
        pair = known[..., 0] * t + known[..., 1]
        if self.unknown_fraction > 0:
            rand_pair = (u[..., 2] * (t * t)).long().clamp_(max=t * t - 1)
            pair = torch.where(u[..., 1] < self.unknown_fraction, rand_pair, pair)
        d = self.d_resid
        t1, t2 = pair // t, pair % t
        r = task.A.gather(1, t1[..., None].expand(-1, -1, d)) + task.B.gather(1, t2[..., None].expand(-1, -1, d))
        if self.noise > 0:
            r = r + eps * (self.noise / math.sqrt(d))
        row = task.lookup.gather(1, pair)  # (I, B), −1: unknown
        target = task.v.gather(1, row.clamp(min=0)[..., None].expand(-1, -1, d)) * (row >= 0)[..., None]
        return torch.cat([r, target], dim=-1), pair

    def sample(self, batch_size: int) -> torch.Tensor:
        """A batch (I, B, 2D): residual r, then the target vector."""
        return self.sample_pairs(batch_size)[0]


# ====================================================================== shared model machinery
def _model_index(index: Any, n_instances: int) -> torch.Tensor:
    """``index`` (int, slice, sequence or tensor) as a 1-D long tensor of instance numbers."""
    try:
        return torch.arange(n_instances)[index].reshape(-1)
    except (IndexError, TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"index {index!r} does not select instances of a model with {n_instances}: {e}") from None


class _Batched(nn.Module):
    """subset / load_instances / spec for a model built from a frozen config with
    ``n_instances`` and a seed; every parameter and buffer has the instance axis first."""

    config: Any
    family: str

    def __init__(self, config: Any, seed: int, device: str | torch.device) -> None:
        super().__init__()
        self.config = config
        self.seed = check_seed("seed", seed)
        self.device_ = resolve_device(device)
        self._gen = make_generator(derive_seed(self.seed, self.family), self.device_)

    @property
    def n_instances(self) -> int:
        return self.config.n_instances

    def _randn(self, *shape: int, std: float) -> torch.Tensor:
        return torch.randn(*shape, generator=self._gen, device=self.device_) * std

    def spec(self) -> dict[str, Any]:
        return {"family": self.family, **asdict(self.config), "seed": self.seed}

    def loss_and_grad(self, x: torch.Tensor) -> torch.Tensor:
        """Per-instance loss (I,), with every parameter's ``.grad`` filled (autograd)."""
        loss = self._loss(x)
        loss.sum().backward()
        return loss.detach()

    @torch.no_grad()
    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Per-instance loss (I,), no gradient."""
        return self._loss(x)

    def _loss(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _tensors(self) -> list[torch.Tensor]:
        return [*self.parameters(), *self.buffers()]

    def subset(self, index: Any) -> "_Batched":
        """A new model holding the chosen instances (parameters and buffers copied)."""
        idx = _model_index(index, self.n_instances)
        new = type(self)(replace(self.config, n_instances=len(idx)), seed=self.seed, device=self.device_)
        with torch.no_grad():
            for p, q in zip(self._tensors(), new._tensors()):
                q.copy_(p[idx.to(p.device)])
        return new

    @torch.no_grad()
    def load_instances(self, index: Any, other: "_Batched") -> None:
        """Copy ``other``'s instances into instances ``index`` (parameters and buffers)."""
        idx = _model_index(index, self.n_instances).to(self.device_)
        if type(other) is not type(self) or replace(other.config, n_instances=self.config.n_instances) != self.config:
            raise ValueError(f"other must be a {type(self).__name__} with the same config except n_instances, "
                             f"got {type(other).__name__} {getattr(other, 'config', None)}")
        if other.n_instances != len(idx):
            raise ValueError(f"other has {other.n_instances} instances for the {len(idx)} of index")
        for p, q in zip(self._tensors(), other._tensors()):
            p[idx] = q.to(p.device)

    def _check(self, x: Any, width: int) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[-1] != width \
                or x.shape[0] not in (1, self.n_instances) or x.shape[1] == 0:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be a tensor shaped (1 or n_instances = {self.n_instances}, batch >= 1, "
                             f"{width}); got {got}")
        return x


# ====================================================================== the bigram MLP
@dataclass(frozen=True)
class BigramMLPConfig:
    """An MLP out = W_out ReLU(W_in r + b_in) on the bigram task."""

    d_resid: int = 32
    """D, the residual-stream width (the source's d_resid)."""
    d_mlp: int = 64
    """M, the number of MLP neurons."""
    n_instances: int = 1
    """I, independent MLPs trained side by side."""
    train_in: bool = True
    """Train W_in and b_in; False keeps them at their random init (W_in ~ N(0, 1/D), b_in = 0)."""

    def __post_init__(self) -> None:
        check_int("d_resid", self.d_resid, 1)
        check_int("d_mlp", self.d_mlp, 1)
        check_int("n_instances", self.n_instances, 1)
        if not isinstance(self.train_in, bool):
            raise ValueError(f"train_in must be True or False, got {self.train_in!r}")


class BigramMLP(_Batched):
    """out = W_out ReLU(W_in r + b_in), W_in (I, M, D), b_in (I, M), W_out (I, D, M); the loss
    is the mean over batch and dims of (out − target)², target the second half of a batch row.

    With ``train_in=False`` W_in and b_in are buffers (random features; only W_out trains)."""

    family = "bigram-mlp"

    def __init__(self, config: BigramMLPConfig, *, seed: int = 0, device: str | torch.device = "cpu") -> None:
        if not isinstance(config, BigramMLPConfig):
            raise ValueError(f"config must be a BigramMLPConfig, got {type(config).__name__}")
        super().__init__(config, seed, device)
        i, m, d = config.n_instances, config.d_mlp, config.d_resid
        w_in, b_in = self._randn(i, m, d, std=1 / math.sqrt(d)), torch.zeros(i, m, device=self.device_)
        if config.train_in:
            self.W_in_IMD, self.b_in_IM = nn.Parameter(w_in), nn.Parameter(b_in)
        else:
            self.register_buffer("W_in_IMD", w_in)
            self.register_buffer("b_in_IM", b_in)
        self.W_out_IDM = nn.Parameter(self._randn(i, d, m, std=1 / math.sqrt(m)))
        self.activation_width = 4 * d + 2 * m

    @property
    def input_dim(self) -> int:
        """The width of a batch row: residual (D) then target (D)."""
        return 2 * self.config.d_resid

    def spd_weights(self) -> dict[str, torch.Tensor]:
        """The matrices :mod:`toymodels.spd` decomposes: W_in (I, M, D), W_out (I, D, M)."""
        return {"W_in": self.W_in_IMD, "W_out": self.W_out_IDM}

    def spd_forward(self, x: torch.Tensor, layer: Layer) -> torch.Tensor:
        """The output (I, B, D) of batch rows x (I or 1, B, 2D) with matrix products by ``layer``."""
        r = x[..., : self.config.d_resid]
        return layer("W_out", torch.relu(layer("W_in", r) + self.b_in_IM[:, None, :]))

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """The output (I, B, D) for residual streams r (I or 1, B, D)."""
        d = self.config.d_resid
        if not isinstance(r, torch.Tensor) or r.ndim != 3 or r.shape[-1] != d \
                or r.shape[0] not in (1, self.n_instances) or r.shape[1] == 0:
            got = tuple(r.shape) if isinstance(r, torch.Tensor) else type(r).__name__
            raise ValueError(f"r must be a tensor shaped (1 or n_instances = {self.n_instances}, batch >= 1, "
                             f"d_resid = {d}); got {got}")
        return self.spd_forward(r, self.plain_layer)

    def plain_layer(self, name: str, a: torch.Tensor) -> torch.Tensor:
        return torch.matmul(a, self.spd_weights()[name].transpose(1, 2))

    def _loss(self, x: torch.Tensor) -> torch.Tensor:
        x = self._check(x, self.input_dim)
        out = self.spd_forward(x, self.plain_layer)
        return (out - x[..., self.config.d_resid:]).square().mean(dim=(1, 2))


@dataclass
class StoredBigrams:
    """What :func:`stored_bigrams` returns."""

    count: torch.Tensor
    """(I,) long: bigrams stored per instance."""
    stored: torch.Tensor
    """(I, K) bool: bigram k of instance i is stored (False past K_i)."""
    cosine: torch.Tensor
    """(I, K): cos(o_k, v_k), the output's cosine with its own target."""


@torch.no_grad()
def stored_bigrams(model: BigramMLP, source_or_task: BigramSource | BigramTask) -> StoredBigrams:
    """Which known bigrams the MLP stores. With o_k = MLP(A_{t1} + B_{t2}) (no noise), bigram k
    is stored iff its v_k is the nearest (Euclidean) of {v_1, …, v_{K_i}, 0}; for unit v's,
    o·v_k > max(max_{j≠k} o·v_j, 1/2). Bigrams past K_i never count."""
    if not isinstance(model, BigramMLP):
        raise ValueError(f"model must be a BigramMLP, got {type(model).__name__}")
    if not isinstance(source_or_task, (BigramSource, BigramTask)):
        raise ValueError(f"source_or_task must be a BigramSource or a BigramTask, got {type(source_or_task).__name__}")
    task = source_or_task.task if isinstance(source_or_task, BigramSource) else source_or_task
    if task.d_resid != model.config.d_resid:
        raise ValueError(f"source_or_task has d_resid = {task.d_resid}; the model has d_resid = {model.config.d_resid}")
    if int(task.A.shape[0]) != model.n_instances:
        raise ValueError(f"source_or_task has {int(task.A.shape[0])} instances; the model has {model.n_instances}")
    o = model(task.residuals().to(model.W_out_IDM.device))  # (I, K, D)
    v = task.v.to(o.device)
    dots = torch.bmm(o, v.transpose(1, 2))  # (I, K, K): o_k · v_j
    k_max = v.shape[1]
    valid = torch.arange(k_max, device=o.device)[None, :] < task.n_bigrams.to(o.device)[:, None]  # (I, K)
    own = dots.diagonal(dim1=1, dim2=2)
    others = dots.masked_fill(torch.eye(k_max, dtype=torch.bool, device=o.device)[None] | ~valid[:, None, :], -math.inf)
    stored = (own > others.amax(dim=2)) & (own > 0.5) & valid
    cos = own / o.norm(dim=-1).clamp_min(1e-12)
    return StoredBigrams(stored.sum(1), stored, cos)


# ====================================================================== the residual MLP
@dataclass(frozen=True)
class ResidualMLPConfig:
    """The compressed-computation toy: y' = (r + W_out ReLU(W_in r + b_in)) W_Eᵀ, r = x W_E."""

    n_features: int = 100
    """N, the sparse input features (each needs a ReLU computed)."""
    d_embed: int = 1000
    """D, the residual-stream width (APD used 1000)."""
    d_mlp: int = 50
    """M, the MLP neurons (fewer than N: computation in superposition)."""
    n_instances: int = 1
    """I, independent models trained side by side."""
    embed_seed: int = 0
    """Seed of the fixed random embedding W_E (unit rows), instance i from (embed_seed, i)."""

    def __post_init__(self) -> None:
        check_int("n_features", self.n_features, 1)
        check_int("d_embed", self.d_embed, 1)
        check_int("d_mlp", self.d_mlp, 1)
        check_int("n_instances", self.n_instances, 1)
        check_seed("embed_seed", self.embed_seed)


class ResidualMLP(_Batched):
    """y' = (r + W_out ReLU(W_in r + b_in)) W_Eᵀ with r = x W_E; target y = x + ReLU(x);
    loss = mean over batch and features of (y' − y)². W_E (I, N, D) is a fixed buffer,
    W_in (I, M, D), b_in (I, M), W_out (I, D, M) train (Braun et al. 2025, APD, section 3.3)."""

    family = "residual-mlp"

    def __init__(self, config: ResidualMLPConfig, *, seed: int = 0, device: str | torch.device = "cpu") -> None:
        if not isinstance(config, ResidualMLPConfig):
            raise ValueError(f"config must be a ResidualMLPConfig, got {type(config).__name__}")
        super().__init__(config, seed, device)
        i, n, d, m = config.n_instances, config.n_features, config.d_embed, config.d_mlp
        emb = []
        for k in range(i):
            g = make_generator(derive_seed(config.embed_seed, "residual-embedding", k), self.device_)
            emb.append(_unit_rows(torch.randn(n, d, generator=g, device=self.device_)))
        self.register_buffer("W_E_IND", torch.stack(emb))
        self.W_in_IMD = nn.Parameter(self._randn(i, m, d, std=1 / math.sqrt(d)))
        self.b_in_IM = nn.Parameter(torch.zeros(i, m, device=self.device_))
        self.W_out_IDM = nn.Parameter(self._randn(i, d, m, std=1 / math.sqrt(m)))
        self.activation_width = 3 * n + 3 * d + 2 * m

    @property
    def n_features(self) -> int:
        return self.config.n_features

    @property
    def input_dim(self) -> int:
        return self.config.n_features

    def spd_weights(self) -> dict[str, torch.Tensor]:
        """W_in (I, M, D) and W_out (I, D, M); the embedding is fixed, not decomposed."""
        return {"W_in": self.W_in_IMD, "W_out": self.W_out_IDM}

    def spd_forward(self, x: torch.Tensor, layer: Layer) -> torch.Tensor:
        r = torch.matmul(x, self.W_E_IND)  # (I, B, D)
        r = r + layer("W_out", torch.relu(layer("W_in", r) + self.b_in_IM[:, None, :]))
        return torch.matmul(r, self.W_E_IND.transpose(1, 2))

    def spd_folds(self) -> dict[str, tuple[torch.Tensor | None, torch.Tensor | None]]:
        """The residual stream is r = x W_E and is read only through W_Eᵀ: W_in reads x W_E
        and W_out's output is read through W_Eᵀ, so both fold into the N-wide feature basis
        (:func:`toymodels.research.spd.folded_weight`)."""
        E = self.W_E_IND
        return {"W_in": (E, None), "W_out": (None, E.transpose(1, 2))}

    def spd_forward_folded(self, x: torch.Tensor, layer: Layer) -> torch.Tensor:
        """:meth:`spd_forward` in the feature basis: y' = x (W_E W_Eᵀ) + layer("W_out", ReLU(layer("W_in", x)
        + b_in)) with the layers folded (W_in W_Eᵀ, W_E W_out): no D-wide tensor per sample."""
        gram = torch.matmul(self.W_E_IND, self.W_E_IND.transpose(1, 2))  # (I, N, N)
        h = torch.relu(layer("W_in", x) + self.b_in_IM[:, None, :])
        return torch.matmul(x, gram) + layer("W_out", h)

    def plain_layer(self, name: str, a: torch.Tensor) -> torch.Tensor:
        return torch.matmul(a, self.spd_weights()[name].transpose(1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """y' (I, B, N) for features x (I or 1, B, N), computed in the feature basis
        (:meth:`spd_forward_folded`: the same function as :meth:`spd_forward` up to float
        rounding; a training step about 20x cheaper at D = 1000, N = 100 on a 2-core CPU)."""
        folds = self.spd_folds()
        eff = {name: folded_weight(W, folds[name]) for name, W in self.spd_weights().items()}
        return self.spd_forward_folded(self._check(x, self.n_features),
                                       lambda name, a: torch.matmul(a, eff[name].transpose(1, 2)))

    def _loss(self, x: torch.Tensor) -> torch.Tensor:
        y = self.forward(x)
        return (y - (x + torch.relu(x))).square().mean(dim=(1, 2))


# ====================================================================== experiments
@dataclass
class BigramCapacity:
    """What :func:`bigram_capacity` returns, for W widths and G bigram counts per width."""

    widths: list[int]
    """M, the MLP widths."""
    n_bigrams: list[list[int]]
    """K grid per width (W lists of G counts)."""
    stored: list[list[int]]
    """Bigrams stored per (width, K) — the best of the seeds."""
    capacity: list[int]
    """Per width: max over the K grid of the bigrams stored."""
    final_loss: list[list[float]]
    """Final training loss per (width, K), the kept seed."""
    d_resid: int
    train_in: bool


def bigram_capacity(
    widths: list[int],
    *,
    d_resid: int = 16,
    n_tokens: int = 24,
    k_factors: tuple[float, ...] = (0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0, 5.6),
    train_in: bool = False,
    noise: float = 0.0,
    seeds: int = 1,
    train: Any = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> BigramCapacity:
    """How many known bigrams an MLP of each width stores (:func:`stored_bigrams`).

    For width M the task is trained with K = round(f·M) known bigrams for every f in
    ``k_factors`` (capped at T²) × ``seeds`` model seeds, as one instance-batched run per
    width through :func:`toymodels.train.train`; the capacity at M is the most bigrams stored
    over the K grid (each K keeping its best seed). Instance j's task comes from
    (``seed``, j): its known bigrams are the first K of one random order of the T² pairs."""
    from ..train.loop import TrainConfig, train as train_model

    cfg_train = train if train is not None else TrainConfig(steps=1500, batch_size=256, lr=3e-3, schedule="cosine",
                                                            final_lr_fraction=0.1, quiet=True, eval_samples=2048)
    seeds = check_int("seeds", seeds, 1)
    if isinstance(widths, (str, bytes)) or not isinstance(widths, (list, tuple, range)) or not widths:
        raise ValueError(f"widths must be a non-empty list of MLP widths, got {widths!r}")
    widths = [check_int("widths", m, 1) for m in widths]
    d_resid = check_int("d_resid", d_resid, 1)
    n_tokens = check_int("n_tokens", n_tokens, 1)
    if isinstance(k_factors, (str, bytes)) or not isinstance(k_factors, (list, tuple)) or not k_factors:
        raise ValueError(f"k_factors must be a non-empty tuple of positive numbers, got {k_factors!r}")
    k_factors = tuple(check_float("k_factors", f, 0.0, math.inf, lo_open=True, hi_open=True) for f in k_factors)
    train_in = check_bool("train_in", train_in)
    noise = check_float("noise", noise, 0.0, math.inf, hi_open=True)
    seed = check_seed("seed", seed)
    if train is not None and not isinstance(train, TrainConfig):
        raise ValueError(f"train must be a TrainConfig or None, got {type(train).__name__}")
    caps, stored_all, ks_all, losses_all = [], [], [], []
    for m in widths:
        ks = sorted({min(n_tokens * n_tokens, max(1, round(f * m))) for f in k_factors})
        k_inst = [k for k in ks for _ in range(seeds)]
        src = BigramSource(d_resid, n_tokens, k_inst, len(k_inst), noise=noise, seed=derive_seed(seed, "data", m),
                           task_seed=seed, device=device)
        model = BigramMLP(BigramMLPConfig(d_resid, m, len(k_inst), train_in=train_in),
                          seed=derive_seed(seed, "model", m), device=device)
        res = train_model(model, src, cfg_train)
        count = stored_bigrams(model, src).count.view(len(ks), seeds).cpu()
        loss = res.final_loss.view(len(ks), seeds)
        best = count.amax(dim=1)
        stored_all.append(best.tolist())
        losses_all.append(loss.gather(1, count.argmax(dim=1, keepdim=True))[:, 0].tolist())
        ks_all.append(ks)
        caps.append(int(best.max()))
    return BigramCapacity(list(widths), ks_all, stored_all, caps, losses_all, d_resid, train_in)


def fit_power_law(x: list[float], y: list[float]) -> tuple[float, float]:
    """Least-squares fit of log y = α log x + c over the points with y > 0: (α, e^c)."""
    for name, v in (("x", x), ("y", y)):
        if isinstance(v, (str, bytes)) or not isinstance(v, (list, tuple)) and not isinstance(v, torch.Tensor):
            raise ValueError(f"{name} must be a list of numbers, got {v!r}")
    x = [check_float("x", a) for a in x]
    y = [check_float("y", b) for b in y]
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    pts = [(math.log(a), math.log(b)) for a, b in zip(x, y) if b > 0 and a > 0]
    if len(pts) < 2:
        return math.nan, math.nan
    n = len(pts)
    mx, my = sum(p[0] for p in pts) / n, sum(p[1] for p in pts) / n
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    if sxx == 0:
        return math.nan, math.nan
    alpha = sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx
    return alpha, math.exp(my - alpha * mx)
