"""Synthetic data, born on the device.

Every source samples a tensor shaped (I, B, D) — instances, batch, dimension — on its
device from its own seeded ``torch.Generator``; nothing goes through numpy. A source with
``n_instances=1`` yields batches shared by all instances of a model (an SAE L1 sweep sees the
same data in every instance); models broadcast that leading 1.

Sources: :class:`SparseFeatures` (the toy-model and SAE ground truth), :class:`GaussianMixture`,
:class:`UnitCube`, and :class:`ModelActivations` (the hidden layer of a toy model fed with
sparse features — trained, or random-weight as a control).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ._validate import (
    as_instance_tensor,
    check_choice,
    check_float,
    check_int,
    check_positive,
    check_tensor_range,
)
from .device import derive_seed, make_generator, resolve_device

MAGNITUDES = ("uniform", "constant", "signed")


class Source:
    """Base class: a seeded generator on a device, with a restorable RNG state."""

    n_instances: int
    dim: int

    def __init__(self, seed: int, device: str | torch.device) -> None:
        self.seed = check_int("seed", seed, 0)
        self.device = resolve_device(device)
        self.generator = make_generator(self.seed, self.device)

    def sample(self, batch_size: int) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_state(self) -> torch.Tensor:
        """The RNG state, to checkpoint and resume a stream exactly."""
        return self.generator.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state.cpu() if self.device.type == "cpu" else state)

    def spec(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _rand(self, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.rand(*shape, generator=self.generator, device=self.device, dtype=dtype)


@dataclass(frozen=True)
class SparseBatch:
    """A sparse batch in coordinate form: entry ``k`` is ``value[k]`` at
    (instance[k], row[k], feature[k]) of a dense (I, B, N) tensor."""

    instance: torch.Tensor
    row: torch.Tensor
    feature: torch.Tensor
    value: torch.Tensor
    shape: tuple[int, int, int]

    @property
    def nnz(self) -> int:
        return int(self.value.numel())

    def to_dense(self) -> torch.Tensor:
        x = torch.zeros(self.shape, device=self.value.device, dtype=self.value.dtype)
        x[self.instance, self.row, self.feature] = self.value
        return x

    def embed(self, directions_IND: torch.Tensor) -> torch.Tensor:
        """x_b = Σ_f c_bf d_f for per-instance directions (I or 1, N, D): cost ∝ nnz · D."""
        n_inst, batch, _ = self.shape
        d = directions_IND.shape[-1]
        inst = self.instance if directions_IND.shape[0] > 1 else torch.zeros_like(self.instance)
        rows = directions_IND[inst, self.feature] * self.value[:, None]  # (nnz, D)
        out = torch.zeros(n_inst * batch, d, device=self.value.device, dtype=self.value.dtype)
        out.index_add_(0, self.instance * batch + self.row, rows)
        return out.view(n_inst, batch, d)


class SparseFeatures(Source):
    """N features, feature i active independently with probability p_i; active magnitudes
    Uniform[0,1] (``magnitude='uniform'``), 1 (``'constant'``) or Uniform[-1,1] (``'signed'``).

    Elhage et al. 2022 (Toy Models of Superposition), section 2: x_i = 0 with probability
    S = 1 - p, else its magnitude. ``feature_probability`` is a scalar, one value per instance
    (I,), or one per instance and feature (I, N).

    Feature groups (Elhage et al. 2022, section 7): the first ``correlated_groups *
    group_size`` features form groups that fire together (all or none, with the probability
    of the group's first feature, magnitudes independent); the next ``anticorrelated_groups *
    group_size`` form groups of which at most one fires (each with its own probability p,
    so the group is active with probability group_size · p ≤ 1). The rest are independent.

    ``d_embed``: a fixed random embedding — N unit-norm directions in ``d_embed`` dims per
    instance (Sharkey, Braun & Millidge 2022) — so samples are x = Σ_i c_i d_i in R^D and the
    ground truth is :attr:`directions` (I, N, D).

    Cost: when every probability is at most ``sparse_threshold`` the independent features are
    sampled by geometric skipping — gaps between active entries are Geometric(p), thinned to
    per-feature probabilities — so work grows with the number of active features, not N.
    With an embedding, the dense (I, B, N) tensor is never formed.
    """

    def __init__(
        self,
        n_features: int,
        feature_probability: float | Any = 0.05,
        n_instances: int = 1,
        *,
        magnitude: str = "uniform",
        correlated_groups: int = 0,
        anticorrelated_groups: int = 0,
        group_size: int = 2,
        d_embed: int | None = None,
        embed_seed: int | None = None,
        sparse_threshold: float = 0.1,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__(seed, device)
        self.n_features = check_int("n_features", n_features, 1)
        self.n_instances = check_int("n_instances", n_instances, 1)
        self.magnitude = check_choice("magnitude", magnitude, MAGNITUDES)
        self.correlated_groups = check_int("correlated_groups", correlated_groups, 0)
        self.anticorrelated_groups = check_int("anticorrelated_groups", anticorrelated_groups, 0)
        self.group_size = check_int("group_size", group_size, 1)
        self.sparse_threshold = check_float("sparse_threshold", sparse_threshold, 0.0, 1.0)
        n_grouped = (self.correlated_groups + self.anticorrelated_groups) * self.group_size
        if n_grouped > self.n_features:
            raise ValueError(
                f"correlated_groups + anticorrelated_groups = {self.correlated_groups + self.anticorrelated_groups}"
                f" groups of group_size {self.group_size} need {n_grouped} features, more than n_features = {self.n_features}"
            )
        p = as_instance_tensor("feature_probability", feature_probability, self.n_instances, self.n_features)
        check_tensor_range("feature_probability", p, 0.0, 1.0)
        self.n_corr = self.correlated_groups * self.group_size
        self.n_anti = self.anticorrelated_groups * self.group_size
        if self.n_anti:
            p_full = p.expand(self.n_instances, self.n_features)
            group_p = p_full[:, self.n_corr : self.n_corr + self.n_anti : self.group_size]
            if (group_p * self.group_size > 1).any():
                raise ValueError(
                    "feature_probability * group_size must be <= 1 for anticorrelated groups "
                    f"(at most one feature of a group fires); got p = {group_p.max().item():.4g}, group_size = {self.group_size}"
                )
        self.feature_probability = p.to(self.device)  # (I, 1) or (I, N)
        self.d_embed = None if d_embed is None else check_int("d_embed", d_embed, 1)
        self.embed_seed = self.seed if embed_seed is None else check_int("embed_seed", embed_seed, 0)
        self.directions: torch.Tensor | None = None  # (I, N, D) unit rows
        if self.d_embed is not None:
            g = make_generator(derive_seed(self.embed_seed, "embedding"), self.device)
            d = torch.randn(self.n_instances, self.n_features, self.d_embed, generator=g, device=self.device)
            self.directions = d / d.norm(dim=-1, keepdim=True)
        self.dim = self.d_embed if self.d_embed is not None else self.n_features

    # ------------------------------------------------------------------ helpers
    def spec(self) -> dict[str, Any]:
        p = self.feature_probability
        return {
            "kind": "features",
            "n_features": self.n_features,
            "n_instances": self.n_instances,
            "feature_probability": p.squeeze(-1).tolist() if p.shape[-1] == 1 else p.tolist(),
            "magnitude": self.magnitude,
            "correlated_groups": self.correlated_groups,
            "anticorrelated_groups": self.anticorrelated_groups,
            "group_size": self.group_size,
            "d_embed": self.d_embed,
            "embed_seed": self.embed_seed,
            "seed": self.seed,
        }

    def subset(self, index: torch.Tensor | list[int] | slice, seed: int | None = None) -> "SparseFeatures":
        """The same source restricted to some instances (for chunked sweeps)."""
        idx = torch.arange(self.n_instances)[index]
        new = SparseFeatures(
            self.n_features,
            self.feature_probability.cpu()[idx],
            len(idx),
            magnitude=self.magnitude,
            correlated_groups=self.correlated_groups,
            anticorrelated_groups=self.anticorrelated_groups,
            group_size=self.group_size,
            sparse_threshold=self.sparse_threshold,
            seed=self.seed if seed is None else seed,
            device=self.device,
        )
        if self.directions is not None:
            new.d_embed, new.dim, new.directions = self.d_embed, self.d_embed, self.directions[idx.to(self.device)]
        return new

    @property
    def expected_l0(self) -> torch.Tensor:
        """Expected number of active features per sample, per instance (I,)."""
        return self.feature_probability.expand(self.n_instances, self.n_features).sum(-1)

    def _magnitudes(self, *shape: int) -> torch.Tensor:
        if self.magnitude == "constant":
            return torch.ones(shape, device=self.device)
        u = self._rand(*shape)
        return 2 * u - 1 if self.magnitude == "signed" else u

    # ------------------------------------------------------------------ sampling
    def sample(self, batch_size: int) -> torch.Tensor:
        """A batch (I, B, D): D = N, or ``d_embed`` with an embedding."""
        batch_size = check_int("batch_size", batch_size, 1)
        if self._use_sparse():
            coo = self.sample_coo(batch_size)
            return coo.embed(self.directions) if self.directions is not None else coo.to_dense()
        x = self._sample_dense(batch_size)
        return x if self.directions is None else torch.bmm(x, self.directions)

    def _use_sparse(self) -> bool:
        # compare in the probabilities' own float32, so p = 0.05 counts as 0.05
        return bool(self.feature_probability.max() <= torch.tensor(self.sparse_threshold, dtype=torch.float32))

    def sample_coo(self, batch_size: int) -> SparseBatch:
        """The feature coefficients (I, B, N) as a :class:`SparseBatch`; cost ∝ active features."""
        batch_size = check_int("batch_size", batch_size, 1)
        parts = []
        if self.n_corr + self.n_anti:
            g = self._sample_groups(batch_size)
            i, r, f = g.nonzero(as_tuple=True)
            parts.append((i, r, f, g[i, r, f]))
        n_ind = self.n_features - self.n_corr - self.n_anti
        if n_ind:
            parts.append(self._sample_independent_sparse(batch_size, n_ind, self.n_corr + self.n_anti))
        i, r, f, v = (torch.cat(t) for t in zip(*parts))
        return SparseBatch(i, r, f, v, (self.n_instances, batch_size, self.n_features))

    def _sample_dense(self, batch_size: int) -> torch.Tensor:
        n_ind = self.n_features - self.n_corr - self.n_anti
        blocks = []
        if self.n_corr + self.n_anti:
            blocks.append(self._sample_groups(batch_size))
        if n_ind:
            p = self._independent_p(n_ind)  # (I, 1) or (I, n_ind)
            u = self._rand(self.n_instances, batch_size, n_ind)
            p3 = p[:, None, :]
            # keep(v) = v where u < p, else 0: threshold_backward(v, p − u, 0) is one fused
            # kernel (a bool mask and `where` cost ~20x more on CPU).
            if self.magnitude == "uniform" and float(p.min()) >= 1e-2:
                # One uniform draw serves both: given u < p, u / p is Uniform[0, 1).
                blocks.append(torch.ops.aten.threshold_backward(u / p3, p3 - u, 0.0))
            else:
                mags = self._magnitudes(self.n_instances, batch_size, n_ind)
                blocks.append(torch.ops.aten.threshold_backward(mags, p3 - u, 0.0))
        return blocks[0] if len(blocks) == 1 else torch.cat(blocks, dim=-1)

    def _independent_p(self, n_ind: int) -> torch.Tensor:
        p = self.feature_probability
        return p if p.shape[-1] == 1 else p[:, self.n_features - n_ind :]

    def _sample_groups(self, batch_size: int) -> torch.Tensor:
        """Dense (I, B, n_corr + n_anti) block for the grouped features."""
        n_i, s = self.n_instances, self.group_size
        p = self.feature_probability.expand(n_i, self.n_features)
        out = []
        if self.correlated_groups:
            gp = p[:, 0 : self.n_corr : s]  # (I, G): each group's first feature
            gate = self._rand(n_i, batch_size, self.correlated_groups) < gp[:, None, :]
            mags = self._magnitudes(n_i, batch_size, self.correlated_groups, s)
            out.append((mags * gate[..., None]).reshape(n_i, batch_size, self.n_corr))
        if self.anticorrelated_groups:
            g = self.anticorrelated_groups
            gp = p[:, self.n_corr : self.n_corr + self.n_anti : s]  # (I, G)
            u = self._rand(n_i, batch_size, g)
            active = u < gp[:, None, :] * s
            which = (self._rand(n_i, batch_size, g) * s).long().clamp_(max=s - 1)
            onehot = torch.nn.functional.one_hot(which, s).to(torch.float32) * active[..., None]
            mags = self._magnitudes(n_i, batch_size, g, 1)
            out.append((onehot * mags).reshape(n_i, batch_size, self.n_anti))
        return torch.cat(out, dim=-1)

    def _sample_independent_sparse(self, batch_size: int, n_ind: int, offset: int):
        """Geometric skipping over the flattened (B, n_ind) positions of each instance.

        With q the largest probability of the instance, the gap before the next candidate is
        Geometric(q): floor(log U / log(1 - q)). A candidate at feature f is kept with
        probability p_f / q (thinning), so each entry is active with probability exactly p_f.
        """
        p = self._independent_p(n_ind)  # (I, 1) or (I, n_ind)
        q = p.max(dim=-1).values.double()  # (I,)
        length = batch_size * n_ind
        log1mq = torch.log1p(-q.clamp(max=1 - 1e-12)).clamp(max=-1e-300)  # (I,) < 0
        mu = float(q.max()) * length
        n_draw = int(mu + 6 * math.sqrt(mu) + 16)
        pos_chunks, last = [], torch.full((self.n_instances, 1), -1, dtype=torch.long, device=self.device)
        while True:
            u = 1.0 - self._rand(self.n_instances, n_draw, dtype=torch.float64)  # (0, 1]
            gaps = torch.floor(torch.log(u) / log1mq[:, None]).clamp_(max=length).long()
            pos = last + torch.cumsum(gaps + 1, dim=1)
            pos_chunks.append(pos)
            last = pos[:, -1:]
            if bool((last >= length).all()):
                break
        pos = torch.cat(pos_chunks, dim=1) if len(pos_chunks) > 1 else pos_chunks[0]
        inst, k = (pos < length).nonzero(as_tuple=True)
        flat = pos[inst, k]
        row, feat = flat // n_ind, flat % n_ind
        if p.shape[-1] > 1:  # thinning to per-feature probabilities
            keep = self._rand(inst.numel(), dtype=torch.float64) * q[inst] < p[inst, feat].double()
            inst, row, feat = inst[keep], row[keep], feat[keep]
        return inst, row, feat + offset, self._magnitudes(inst.numel())


class GaussianMixture(Source):
    """K Gaussian components in D dims: x = μ_k + σ_k ⊙ ε, k ~ Categorical(weights).

    ``means`` (K, D) default to N(0, mean_scale²) draws from ``seed``; ``scales`` is a scalar,
    (K,) or (K, D); ``weights`` (K,) are normalised. A featureless control for SAEs (seed 001).
    """

    def __init__(
        self,
        n_components: int,
        dim: int,
        n_instances: int = 1,
        *,
        means: Any = None,
        scales: Any = 0.1,
        weights: Any = None,
        mean_scale: float = 1.0,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__(seed, device)
        self.n_components = check_int("n_components", n_components, 1)
        self.dim = check_int("dim", dim, 1)
        self.n_instances = check_int("n_instances", n_instances, 1)
        self.mean_scale = check_positive("mean_scale", mean_scale)
        k, d = self.n_components, self.dim
        if means is None:
            g = make_generator(derive_seed(self.seed, "means"), self.device)
            means = torch.randn(k, d, generator=g, device=self.device) * self.mean_scale
        means = torch.as_tensor(means, dtype=torch.float32, device=self.device)
        if means.shape != (k, d):
            raise ValueError(f"means must be shaped (n_components, dim) = ({k}, {d}), got {tuple(means.shape)}")
        if not torch.isfinite(means).all():
            raise ValueError("means must be finite (found NaN or inf)")
        scales = torch.as_tensor(scales, dtype=torch.float32, device=self.device)
        if scales.ndim == 0:
            scales = scales.expand(k)
        if scales.ndim == 1:
            if scales.shape[0] != k:
                raise ValueError(f"scales must be a scalar, ({k},) or ({k}, {d}); got {tuple(scales.shape)}")
            scales = scales[:, None].expand(k, d)
        if scales.shape != (k, d):
            raise ValueError(f"scales must be a scalar, ({k},) or ({k}, {d}); got {tuple(scales.shape)}")
        check_tensor_range("scales", scales, 0.0, math.inf)
        weights = torch.ones(k) if weights is None else torch.as_tensor(weights, dtype=torch.float32)
        if weights.shape != (k,):
            raise ValueError(f"weights must be shaped (n_components,) = ({k},), got {tuple(weights.shape)}")
        check_tensor_range("weights", weights, 0.0, math.inf)
        if float(weights.sum()) <= 0:
            raise ValueError("weights must have a positive sum")
        self.means = means
        self.scales = scales.contiguous()
        self.weights = (weights / weights.sum()).to(self.device)

    def spec(self) -> dict[str, Any]:
        return {
            "kind": "gaussian-mixture",
            "n_components": self.n_components,
            "dim": self.dim,
            "n_instances": self.n_instances,
            "means": self.means.tolist(),
            "scales": self.scales.tolist(),
            "weights": self.weights.tolist(),
            "seed": self.seed,
        }

    def sample_with_labels(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch (I, B, D) and its component labels (I, B)."""
        batch_size = check_int("batch_size", batch_size, 1)
        n = self.n_instances * batch_size
        comp = torch.multinomial(self.weights, n, replacement=True, generator=self.generator)
        eps = torch.randn(n, self.dim, generator=self.generator, device=self.device)
        x = self.means[comp] + self.scales[comp] * eps
        return x.view(self.n_instances, batch_size, self.dim), comp.view(self.n_instances, batch_size)

    def sample(self, batch_size: int) -> torch.Tensor:
        return self.sample_with_labels(batch_size)[0]


class UnitCube(Source):
    """Uniform points in [0, 1]^D (D = 2: the unit square) — no sparse features at all."""

    def __init__(self, dim: int, n_instances: int = 1, *, seed: int = 0, device: str | torch.device = "cpu") -> None:
        super().__init__(seed, device)
        self.dim = check_int("dim", dim, 1)
        self.n_instances = check_int("n_instances", n_instances, 1)

    def spec(self) -> dict[str, Any]:
        return {"kind": "unit-cube", "dim": self.dim, "n_instances": self.n_instances, "seed": self.seed}

    def sample(self, batch_size: int) -> torch.Tensor:
        batch_size = check_int("batch_size", batch_size, 1)
        return self._rand(self.n_instances, batch_size, self.dim)


class ModelActivations(Source):
    """Hidden activations h = model.hidden(x) of a toy model fed by a :class:`SparseFeatures`.

    ``model`` is any batched toy model with ``hidden(x)`` and ``n_instances``/``d_hidden``
    (trained, or freshly initialised as the random-weight control of seed 003). Ground-truth
    directions in hidden space are the model's feature columns (:attr:`directions`).
    """

    def __init__(self, model: Any, features: SparseFeatures) -> None:
        if not hasattr(model, "hidden"):
            raise ValueError("model must be a toy model with a hidden(x) method (see toymodels.models)")
        if features.dim != model.n_features:
            raise ValueError(
                f"features have dim {features.dim} but the model expects n_features = {model.n_features}"
            )
        if features.n_instances not in (1, model.n_instances):
            raise ValueError(
                f"features have {features.n_instances} instances; the model has {model.n_instances} (use 1 or the same)"
            )
        self.model, self.features = model, features
        self.device = features.device
        self.generator = features.generator
        self.seed = features.seed
        self.n_instances = model.n_instances
        self.dim = model.d_hidden

    @property
    def directions(self) -> torch.Tensor:
        """(I, N, M): feature i's direction in hidden space, W[:, :, i]."""
        return self.model.feature_directions().detach()

    def spec(self) -> dict[str, Any]:
        return {"kind": "tms", "features": self.features.spec(), "model": self.model.spec()}

    @torch.no_grad()
    def sample(self, batch_size: int) -> torch.Tensor:
        return self.model.hidden(self.features.sample(batch_size))
