"""Synthetic data, born on the device.

Every source samples a tensor shaped (I, B, D) — instances, batch, dimension — on its
device from seeded ``torch.Generator``\\ s; nothing goes through numpy. A source with
``n_instances=1`` is *shared*: one stream yields batches shared by all instances of a model
(an SAE L1 sweep sees the same data in every instance); models broadcast that leading 1.

A source with ``n_instances > 1`` has per-instance streams: instances are grouped in fixed
blocks of :data:`STREAM_BLOCK` (256) consecutive instances, block b drawing from its own
generator (seed ``derive_seed(seed, "block", b)``) with the vectorised maths of a whole
block at once, so nothing an instance samples depends on the instances of other blocks.
``source.subset(idx)`` forks the generators of the blocks holding ``idx`` and draws those
blocks whole, so its j-th instance gets exactly — bit for bit — what ``source`` gives
instance ``idx[j]``, and a chunked run trains every instance on the data of the unchunked
run (same sequence of ``sample`` calls). The cost: one generator call per block and draw
(the vectorised cost of the old single stream when I <= 256; a 6400-instance sweep makes 25
calls per draw, not 6400), and a subset draws the whole blocks holding its instances (a
contiguous chunk: at most 2·255 extra rows).

Sources: :class:`SparseFeatures` (the toy-model and SAE ground truth), :class:`GaussianMixture`,
:class:`UnitCube`, and :class:`ModelActivations` (the hidden layer of a toy model fed with
sparse features — trained, or random-weight as a control).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .._validate import (
    as_instance_tensor,
    check_choice,
    check_float,
    check_int,
    check_positive,
    check_seed,
    check_tensor_range,
)
from ..measures.linalg import random_orthogonal
from ..device import derive_seed, make_generator, resolve_device

MAGNITUDES = ("uniform", "constant", "signed")


STREAM_BLOCK = 256
"""Instances per stream block of a per-instance source (see the module docstring)."""


def block_seed(seed: int, block: int) -> int:
    """The seed of stream block ``block`` (instances [block·G, (block+1)·G)) of a source."""
    return derive_seed(seed, "block", block)


def _instance_index(index: Any, n_instances: int) -> list[int]:
    """``index`` (int, slice, sequence or tensor) as a list of distinct instance numbers."""
    try:
        idx = torch.arange(n_instances)[index if not isinstance(index, list) else torch.as_tensor(index, dtype=torch.long)]
    except (IndexError, TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"index {index!r} does not select instances of a source with {n_instances}: {e}") from None
    out = idx.reshape(-1).tolist()
    if len(set(out)) != len(out):
        raise ValueError(f"index {index!r} repeats an instance; a source subset takes each instance once")
    return out


def _fork_generator(g: torch.Generator) -> torch.Generator:
    new = torch.Generator(device=g.device)
    new.set_state(g.get_state())
    return new


class Source:
    """Base class: seeded generators on a device — one shared stream, or per-instance streams
    drawn in blocks of :data:`STREAM_BLOCK` instances — with a restorable state.

    ``per_instance`` (default: ``n_instances > 1``) gives instance i the stream of its block
    (seed ``block_seed(seed, i // G)``). Internally a source samples *rows*: every row of the
    blocks it holds, in block order; ``_take`` picks its instances among them (a subset holds
    whole blocks and draws them whole, so each instance gets exactly the parent's data).
    """

    n_instances: int
    dim: int

    def __init__(
        self,
        seed: int,
        device: str | torch.device,
        n_instances: int = 1,
        *,
        per_instance: bool | None = None,
    ) -> None:
        self.seed = check_seed("seed", seed)
        self.device = resolve_device(device)
        self.n_instances = check_int("n_instances", n_instances, 1)
        self.per_instance = self.n_instances > 1 if per_instance is None else bool(per_instance)
        n, size = self.n_instances, STREAM_BLOCK
        if self.per_instance:
            starts = list(range(0, n, size))
            self.generators = [make_generator(block_seed(self.seed, b), self.device) for b in range(len(starts))]
            self._blocks = [(b, s, min(s + size, n)) for b, s in enumerate(starts)]
        else:
            self.generators = [make_generator(self.seed, self.device)]
            self._blocks = [(0, 0, n)]
        self._take: torch.Tensor | None = None  # (I,) rows of this source's instances, None: all rows
        self._n_rows = n

    @property
    def generator(self) -> torch.Generator:
        """The shared stream's generator (block 0's for a per-instance source)."""
        return self.generators[0]

    @property
    def shared(self) -> bool:
        """True when one stream feeds every instance (an ``n_instances = 1`` source, or toy-model
        activations of shared features). For chunked training, a source with
        ``n_instances == 1`` is rewound for every chunk; any other is split with
        :meth:`subset`, which keeps each instance's data exactly."""
        return not self.per_instance

    def sample(self, batch_size: int) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_state(self) -> torch.Tensor:
        """The RNG state, to checkpoint and resume exactly: a byte tensor (S,) for a shared
        stream, (blocks, S) for per-instance streams."""
        if not self.per_instance:
            return self.generators[0].get_state()
        return torch.stack([g.get_state() for g in self.generators])

    def set_state(self, state: torch.Tensor) -> None:
        """Continue from a state returned by :meth:`get_state` of a source of the same shape."""
        if not isinstance(state, torch.Tensor) or state.dtype != torch.uint8:
            raise ValueError(f"a data-stream state must be a uint8 tensor from get_state(), got {type(state).__name__}")
        state = state.cpu()
        want = (len(self.generators),) if self.per_instance else ()
        if tuple(state.shape[:-1]) != want:
            kind = f"{len(self.generators)} per-instance stream block(s)" if self.per_instance else "one shared stream"
            raise ValueError(
                f"the data-stream state has shape {tuple(state.shape)} but this source has {kind} "
                "(the state comes from a different source or an older version)"
            )
        try:
            for g, s in zip(self.generators, state if self.per_instance else [state]):
                g.set_state(s.clone())  # a fresh tensor: set_state misreads a row view (torch crashes on one)
        except RuntimeError as e:
            raise ValueError(f"the data-stream state does not fit this source's generators on {self.device}: {e}") from None

    def spec(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _fork(self, parent: "Source", idx: list[int]) -> list[int]:
        """Make this source (built for ``len(idx)`` instances) draw ``parent``'s instances
        ``idx``: copy the generators of the blocks holding them (a fork — sampling the subset
        never moves the parent) and return the parent rows it keeps, in block order."""
        rows = idx if parent._take is None else [int(parent._take[i]) for i in idx]
        wanted = set(rows)
        keep, blocks, gens = [], [], []
        for gi, s, e in parent._blocks:
            if wanted.isdisjoint(range(s, e)):
                continue
            blocks.append((len(gens), len(keep), len(keep) + e - s))
            gens.append(_fork_generator(parent.generators[gi]))
            keep.extend(range(s, e))
        pos = {r: j for j, r in enumerate(keep)}
        take = [pos[r] for r in rows]
        self.per_instance = parent.per_instance
        self.generators, self._blocks, self._n_rows = gens, blocks, len(keep)
        self._take = None if take == list(range(len(keep))) else torch.tensor(take, device=self.device)
        return keep

    def _gather(self, x: torch.Tensor) -> torch.Tensor:
        """This source's instances among the rows (I, ...) of a per-row tensor."""
        return x if self._take is None else x.index_select(0, self._take)

    def _rand(self, g: torch.Generator, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.rand(*shape, generator=g, device=self.device, dtype=dtype)


def check_compatible(model: Any, source: Any) -> None:
    """Raise ValueError, naming both sides, unless ``source``'s batches fit ``model``: the
    batch width ``source.dim`` equals the model's input width (``n_features`` of a toy model,
    ``d_model`` of an SAE), ``source.n_instances`` is 1 (shared) or the model's
    ``n_instances``, and both live on the same device type. Trainers call it before any work."""
    width_name = next((n for n in ("input_dim", "n_features", "d_model") if hasattr(model, n)), None)
    if width_name is None:
        raise ValueError(f"{type(model).__name__} declares no input width (n_features or d_model)")
    width = int(getattr(model, width_name))
    if int(source.dim) != width:
        raise ValueError(
            f"the data source yields batches of width {source.dim} ({type(source).__name__}.dim) but the model "
            f"expects {width_name} = {width}"
        )
    n_inst = int(model.n_instances)
    if int(source.n_instances) not in (1, n_inst):
        raise ValueError(
            f"the data source has {source.n_instances} instances but the model has {n_inst}; use 1 (shared) or the same"
        )
    params = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    if params is not None and torch.device(source.device).type != params.device.type:
        raise ValueError(f"the data source is on {source.device} but the model is on {params.device}; use one device")


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

    Cost: an instance whose probabilities are all at most ``sparse_threshold`` samples its
    independent features by geometric skipping — gaps between active entries are
    Geometric(p), thinned to per-feature probabilities — so its work grows with the number of
    active features, not N; the others draw a dense uniform per entry. Each instance picks
    its path from its own probabilities. With an embedding and only sparse instances, the
    dense (I, B, N) tensor is never formed.
    """

    RICHER_OPTIONS = ("hierarchy", "firing", "zipf_exponent", "magnitude_distribution", "magnitude_mean",
                      "magnitude_std", "correlation_rank", "correlation_strength")
    """Keyword arguments that make ``SparseFeatures(...)`` build the richer ground truth of
    :class:`toymodels.hierarchy.HierarchicalFeatures` (a subclass: same streams, same API):
    ``hierarchy=[(parent, [children...], mutually_exclusive), ...]``, ``firing="zipf"`` with
    ``zipf_exponent``, magnitude distributions and low-rank correlated firing."""

    def __new__(cls, *args: Any, **kwargs: Any) -> "SparseFeatures":
        if cls is SparseFeatures and any(k in kwargs for k in SparseFeatures.RICHER_OPTIONS):
            if SparseFeatures.richer_class is None:
                raise ValueError(f"{sorted(set(kwargs) & set(SparseFeatures.RICHER_OPTIONS))} need toymodels.hierarchy")
            cls = SparseFeatures.richer_class
        return super().__new__(cls)

    richer_class: "type[SparseFeatures] | None" = None
    """Set by :mod:`toymodels.hierarchy` when it loads (``import toymodels`` loads it), so
    this module never imports its own subclass."""

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
        self.n_features = check_int("n_features", n_features, 1)
        super().__init__(seed, device, n_instances)
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
        self.embed_seed = self.seed if embed_seed is None else check_seed("embed_seed", embed_seed)
        self.directions: torch.Tensor | None = None  # (I, N, D) unit rows
        if self.d_embed is not None:
            g = make_generator(derive_seed(self.embed_seed, "embedding"), self.device)
            d = torch.randn(self.n_instances, self.n_features, self.d_embed, generator=g, device=self.device)
            self.directions = d / d.norm(dim=-1, keepdim=True)
        self.dim = self.d_embed if self.d_embed is not None else self.n_features
        self._set_rows(p, self.directions)

    def _set_rows(self, p_cpu: torch.Tensor, directions: torch.Tensor | None) -> None:
        """The per-row settings (every row of the blocks held) and each row's sampling path,
        from its own probabilities."""
        self._p_cpu = p_cpu  # (rows, 1) or (rows, N) float32, for decisions without a device sync
        self._p = p_cpu.to(self.device)
        self._dirs = directions
        # compare in the probabilities' own float32, so p = 0.05 counts as 0.05
        self._sparse_row = (p_cpu.amax(dim=-1) <= torch.tensor(self.sparse_threshold, dtype=torch.float32)).tolist()
        n_ind = self.n_features - self.n_corr - self.n_anti
        p_ind = p_cpu if p_cpu.shape[-1] == 1 else p_cpu[:, self.n_features - n_ind :]
        # One uniform serves both firing and magnitude: the feature fires when u > 1 − p
        # (probability p) and then (u − (1 − p)) / p is Uniform(0, 1], so
        # x = relu(u · (1/p) + (1 − 1/p)): a multiply, an add and a relu, in place.
        # (Below p = 0.01 the quotient would keep too few bits of u.)
        lo = p_ind.amin(dim=-1).tolist() if n_ind else [0.0] * p_cpu.shape[0]
        self._one_draw = [self.magnitude == "uniform" and n_ind > 0 and v >= 1e-2 for v in lo]
        if any(self._one_draw):
            p64 = p_ind.double().clamp_min(1e-2)  # rows below 0.01 draw twice and never use these
            self._inv_p = (1.0 / p64).float().to(self.device)[:, None, :]  # (rows, 1, 1 or n_ind)
            self._shift = (1.0 - 1.0 / p64).float().to(self.device)[:, None, :]

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

    def subset(self, index: torch.Tensor | list[int] | slice | int) -> "SparseFeatures":
        """The same source restricted to some instances (for chunked sweeps): instance j of
        the subset gets exactly the data this source gives instance ``index[j]``, from a
        fork of its stream (sampling the subset does not advance this source)."""
        idx = _instance_index(index, self.n_instances)
        new = SparseFeatures(
            self.n_features,
            self.feature_probability.cpu()[idx],
            len(idx),
            magnitude=self.magnitude,
            correlated_groups=self.correlated_groups,
            anticorrelated_groups=self.anticorrelated_groups,
            group_size=self.group_size,
            sparse_threshold=self.sparse_threshold,
            seed=self.seed,
            device=self.device,
        )
        rows = new._fork(self, idx)
        new.embed_seed = self.embed_seed
        if self.directions is not None:
            new.d_embed, new.dim = self.d_embed, self.d_embed
            new.directions = self.directions[torch.tensor(idx, device=self.device)]
        rows_t = torch.tensor(rows)
        new._set_rows(self._p_cpu[rows_t], None if self._dirs is None else self._dirs[rows_t.to(self.device)])
        return new

    @property
    def expected_l0(self) -> torch.Tensor:
        """Expected number of active features per sample, per instance (I,)."""
        return self.feature_probability.expand(self.n_instances, self.n_features).sum(-1)

    def _magnitudes(self, g: torch.Generator, *shape: int) -> torch.Tensor:
        if self.magnitude == "constant":
            return torch.ones(shape, device=self.device)
        u = self._rand(g, *shape)
        return 2 * u - 1 if self.magnitude == "signed" else u

    def _select(self, t: torch.Tensor, rows: list[int]) -> torch.Tensor:
        """Rows ``rows`` (a contiguous run, the common case, is a view)."""
        if rows == list(range(rows[0], rows[0] + len(rows))):
            return t[rows[0] : rows[0] + len(rows)]
        return t[torch.tensor(rows, device=t.device)]

    # ------------------------------------------------------------------ sampling
    def sample(self, batch_size: int) -> torch.Tensor:
        """A batch (I, B, D): D = N, or ``d_embed`` with an embedding."""
        batch_size = check_int("batch_size", batch_size, 1)
        parts = [self._sample_block(batch_size, self.generators[gi], s, e) for gi, s, e in self._blocks]
        return self._gather(parts[0] if len(parts) == 1 else torch.cat(parts))

    def _sample_block(self, batch_size: int, g: torch.Generator, s: int, e: int) -> torch.Tensor:
        """Rows [s, e) (one stream block), (e - s, B, D), dense rows drawn first."""
        de = [r for r in range(s, e) if not self._sparse_row[r]]
        dirs = None if self._dirs is None else self._dirs[s:e]
        if not de:
            coo = SparseBatch(*self._coo_rows(batch_size, g, list(range(s, e))), (e - s, batch_size, self.n_features))
            return coo.embed(dirs) if dirs is not None else coo.to_dense()
        if len(de) == e - s:
            x = self._dense_rows(batch_size, g, de)
        else:
            x = torch.empty(e - s, batch_size, self.n_features, device=self.device)
            sp = [r for r in range(s, e) if self._sparse_row[r]]
            if de[-1] - de[0] + 1 == len(de):  # a run of dense rows (a sweep's dense end): drawn in place
                self._dense_rows(batch_size, g, de, out=x[de[0] - s : de[-1] - s + 1])
            else:
                x.index_copy_(0, torch.tensor(de, device=self.device) - s, self._dense_rows(batch_size, g, de))
            if sp[-1] - sp[0] + 1 == len(sp):
                x[sp[0] - s : sp[-1] - s + 1].zero_()
            else:
                x.index_fill_(0, torch.tensor(sp, device=self.device) - s, 0.0)
            a, r, f, v = self._coo_rows(batch_size, g, sp)
            x.index_put_((torch.tensor(sp, device=self.device)[a] - s, r, f), v)
        return x if dirs is None else torch.bmm(x, dirs)

    def sample_coo(self, batch_size: int) -> SparseBatch:
        """The feature coefficients (I, B, N) as a :class:`SparseBatch`, every instance by
        geometric skipping (cost ∝ active features, whatever the probabilities)."""
        batch_size = check_int("batch_size", batch_size, 1)
        parts = []
        for gi, s, e in self._blocks:
            a, r, f, v = self._coo_rows(batch_size, self.generators[gi], list(range(s, e)))
            parts.append((a + s, r, f, v))
        i, r, f, v = parts[0] if len(parts) == 1 else (torch.cat(t) for t in zip(*parts))
        if self._take is not None:  # rows -> this source's instances
            inv = torch.full((self._n_rows,), -1, dtype=torch.long, device=self.device)
            inv[self._take] = torch.arange(self.n_instances, device=self.device)
            i = inv[i]
            keep = i >= 0
            i, r, f, v = i[keep], r[keep], f[keep], v[keep]
        return SparseBatch(i, r, f, v, (self.n_instances, batch_size, self.n_features))

    def _coo_rows(self, batch_size: int, g: torch.Generator, rows: list[int]):
        """(position in ``rows``, batch row, feature, value) of rows ``rows``, sparse path."""
        parts = []
        if self.n_corr + self.n_anti:
            grp = self._sample_groups(batch_size, g, rows)
            a, r, f = grp.nonzero(as_tuple=True)
            parts.append((a, r, f, grp[a, r, f]))
        n_ind = self.n_features - self.n_corr - self.n_anti
        if n_ind:
            parts.append(self._sample_independent_sparse(batch_size, g, rows, n_ind, self.n_corr + self.n_anti))
        return parts[0] if len(parts) == 1 else tuple(torch.cat(t) for t in zip(*parts))

    def _dense_rows(
        self, batch_size: int, g: torch.Generator, rows: list[int], out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Dense coefficients (len(rows), B, N) of rows ``rows`` (written into ``out`` if given)."""
        n_ind = self.n_features - self.n_corr - self.n_anti
        parts = []
        if self.n_corr + self.n_anti:
            parts.append(self._sample_groups(batch_size, g, rows))
        if n_ind:
            one = [self._one_draw[r] for r in rows]
            if all(one):  # one (A, B, n) buffer: u becomes x in place, two passes after the draw
                shape = (len(rows), batch_size, n_ind)
                if out is not None and not parts:  # drawn straight into the caller's rows
                    u = torch.rand(shape, generator=g, device=self.device, out=out)
                else:
                    u = self._rand(g, *shape)
                parts.append(self._one_draw_values(u, rows))
            else:
                u = self._rand(g, len(rows), batch_size, n_ind)
                # keep(m) = m where u < p, else 0: threshold_backward(m, p − u, 0) is one fused
                # kernel (a bool mask and `where` cost ~20x more on CPU).
                p3 = self._select(self._independent_p(n_ind), rows)[:, None, :]  # (A, 1, 1 or n_ind)
                two = [j for j, o in enumerate(one) if not o]
                mags = self._magnitudes(g, len(two), batch_size, n_ind)
                if len(two) == len(rows):
                    x = torch.ops.aten.threshold_backward.grad_input(mags, torch.sub(p3, u), 0.0, grad_input=mags)
                else:
                    x = torch.empty_like(u)
                    j1 = [j for j, o in enumerate(one) if o]
                    t1, t2 = torch.tensor(j1, device=self.device), torch.tensor(two, device=self.device)
                    x[t1] = self._one_draw_values(u[t1], [rows[j] for j in j1])
                    x[t2] = torch.ops.aten.threshold_backward(mags, p3[t2] - u[t2], 0.0)
                parts.append(x)
        x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
        if out is None or x is out:
            return x
        return out.copy_(x)

    def _one_draw_values(self, u: torch.Tensor, rows: list[int]) -> torch.Tensor:
        """x = relu(u · (1/p) + (1 − 1/p)) in ``u``'s buffer, for uniforms u (A, B, n) of
        one-draw rows ``rows``: the feature fires when u > 1 − p (probability p) and its
        magnitude (u − (1 − p)) / p is then Uniform(0, 1] (Elhage et al. 2022's Uniform[0, 1]
        magnitudes, up to float rounding), so one uniform decides both.

        Three in-place elementwise kernels over the whole block (a multiply, an add, a relu:
        each rounding is IEEE's, so the bits depend on neither the batch shape nor the thread
        count; a broadcast ``addcmul`` is slower on CPU, and row-by-row loops spin-wait in
        every parallel region when torch runs several threads on a busy machine)."""
        return u.mul_(self._select(self._inv_p, rows)).add_(self._select(self._shift, rows)).clamp_min_(0.0)

    def _independent_p(self, n_ind: int) -> torch.Tensor:
        p = self._p
        return p if p.shape[-1] == 1 else p[:, self.n_features - n_ind :]

    def _sample_groups(self, batch_size: int, g: torch.Generator, rows: list[int]) -> torch.Tensor:
        """Dense (len(rows), B, n_corr + n_anti) block for the grouped features."""
        n_i, s = len(rows), self.group_size
        p = self._select(self._p, rows).expand(n_i, self.n_features)
        out = []
        if self.correlated_groups:
            gp = p[:, 0 : self.n_corr : s]  # (A, G): each group's first feature
            gate = self._rand(g, n_i, batch_size, self.correlated_groups) < gp[:, None, :]
            mags = self._magnitudes(g, n_i, batch_size, self.correlated_groups, s)
            out.append((mags * gate[..., None]).reshape(n_i, batch_size, self.n_corr))
        if self.anticorrelated_groups:
            k = self.anticorrelated_groups
            gp = p[:, self.n_corr : self.n_corr + self.n_anti : s]  # (A, G)
            u = self._rand(g, n_i, batch_size, k)
            active = u < gp[:, None, :] * s
            which = (self._rand(g, n_i, batch_size, k) * s).long().clamp_(max=s - 1)
            onehot = torch.nn.functional.one_hot(which, s).to(torch.float32) * active[..., None]
            mags = self._magnitudes(g, n_i, batch_size, k, 1)
            out.append((onehot * mags).reshape(n_i, batch_size, self.n_anti))
        return torch.cat(out, dim=-1)

    def _sample_independent_sparse(self, batch_size: int, g: torch.Generator, rows: list[int], n_ind: int, offset: int):
        """Geometric skipping over the flattened (B, n_ind) positions of each row.

        With q the largest probability of the row, the gap before the next candidate is
        Geometric(q): floor(log U / log(1 - q)). A candidate at feature f is kept with
        probability p_f / q (thinning), so each entry is active with probability exactly p_f.

        Each row draws as many uniforms as its own q needs (a rectangle padded to the widest
        row, padding turned into log 0 = −inf: a gap past the end), in rounds until it passes
        the end; everything else is vectorised over the rows.
        """
        n_a, dev = len(rows), self.device
        p = self._select(self._independent_p(n_ind), rows)  # (A, 1) or (A, n_ind)
        p_cpu = self._p_cpu if self._p_cpu.shape[-1] == 1 else self._p_cpu[:, self.n_features - n_ind :]
        q_cpu = p_cpu[torch.tensor(rows)].amax(dim=-1).double()  # (A,)
        q = q_cpu.to(dev)
        length = batch_size * n_ind
        log1mq = torch.log1p(-q.clamp(max=1 - 1e-12)).clamp(max=-1e-300)  # (A,) < 0
        n_draw = [self._draws_per_round(mu) for mu in (q_cpu * length).tolist()]
        last = torch.full((n_a, 1), -1, dtype=torch.long, device=dev)
        active = list(range(n_a))
        found = []  # (position in rows, flat position) per round
        while active:
            sizes = [n_draw[a] for a in active]
            width = max(sizes)
            logu = torch.log(1.0 - self._rand(g, len(active), width, dtype=torch.float64))  # 1 − U in (0, 1]
            if min(sizes) < width:
                cols = torch.arange(width, device=dev)
                logu.masked_fill_(cols[None, :] >= torch.tensor(sizes, device=dev)[:, None], -math.inf)
            act = None if len(active) == n_a else torch.tensor(active, device=dev)
            lq = log1mq if act is None else log1mq[act]
            gaps = torch.floor(logu / lq[:, None]).clamp_(max=length).long()
            pos = (last if act is None else last[act]) + torch.cumsum(gaps + 1, dim=1)
            j, k = (pos < length).nonzero(as_tuple=True)
            found.append((j if act is None else act[j], pos[j, k]))
            ends = pos.gather(1, torch.tensor(sizes, device=dev)[:, None] - 1)  # (active, 1) last real draw
            if act is None:
                last = ends
            else:
                last[act] = ends
            active = [a for a, d in zip(active, (ends[:, 0] >= length).tolist()) if not d]
        a_idx, flat = (torch.cat(t) for t in zip(*found)) if len(found) > 1 else found[0]
        if len(found) > 1:  # entries row-major, positions ascending, as one round gives
            order = torch.argsort(a_idx * length + flat, stable=True)
            a_idx, flat = a_idx[order], flat[order]
        row, feat = flat // n_ind, flat % n_ind
        if p.shape[-1] > 1:  # thinning to per-feature probabilities
            keep = self._rand(g, a_idx.numel(), dtype=torch.float64) * q[a_idx] < p[a_idx, feat].double()
            a_idx, row, feat = a_idx[keep], row[keep], feat[keep]
        return a_idx, row, feat + offset, self._magnitudes(g, a_idx.numel())

    @staticmethod
    def _draws_per_round(mu: float) -> int:
        """Uniforms a row draws per round of geometric skipping when it expects ``mu``
        candidates: enough that a second round is rare (mean + 6 standard deviations)."""
        return int(mu + 6 * math.sqrt(mu) + 16)


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
        super().__init__(seed, device, n_instances)
        self.n_components = check_int("n_components", n_components, 1)
        self.dim = check_int("dim", dim, 1)
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

    def subset(self, index: Any) -> "GaussianMixture":
        """The chosen instances, with exactly the data this source gives them (a fork)."""
        idx = _instance_index(index, self.n_instances)
        new = GaussianMixture(self.n_components, self.dim, len(idx), means=self.means, scales=self.scales,
                              weights=self.weights, seed=self.seed, device=self.device)
        new.mean_scale = self.mean_scale
        new._fork(self, idx)
        return new

    def sample_with_labels(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch (I, B, D) and its component labels (I, B)."""
        batch_size = check_int("batch_size", batch_size, 1)
        xs, cs = [], []
        for gi, s, e in self._blocks:
            g, n = self.generators[gi], (e - s) * batch_size
            comp = torch.multinomial(self.weights, n, replacement=True, generator=g)
            eps = torch.randn(n, self.dim, generator=g, device=self.device)
            xs.append((self.means[comp] + self.scales[comp] * eps).view(e - s, batch_size, self.dim))
            cs.append(comp.view(e - s, batch_size))
        x, comp = (xs[0], cs[0]) if len(xs) == 1 else (torch.cat(xs), torch.cat(cs))
        return self._gather(x), self._gather(comp)

    def sample(self, batch_size: int) -> torch.Tensor:
        return self.sample_with_labels(batch_size)[0]


class UnitCube(Source):
    """Uniform points in [0, 1]^D (D = 2: the unit square) — no sparse features at all."""

    def __init__(self, dim: int, n_instances: int = 1, *, seed: int = 0, device: str | torch.device = "cpu") -> None:
        super().__init__(seed, device, n_instances)
        self.dim = check_int("dim", dim, 1)

    def spec(self) -> dict[str, Any]:
        return {"kind": "unit-cube", "dim": self.dim, "n_instances": self.n_instances, "seed": self.seed}

    def subset(self, index: Any) -> "UnitCube":
        """The chosen instances, with exactly the data this source gives them (a fork)."""
        idx = _instance_index(index, self.n_instances)
        new = UnitCube(self.dim, len(idx), seed=self.seed, device=self.device)
        new._fork(self, idx)
        return new

    def sample(self, batch_size: int) -> torch.Tensor:
        batch_size = check_int("batch_size", batch_size, 1)
        parts = [self._rand(self.generators[gi], e - s, batch_size, self.dim) for gi, s, e in self._blocks]
        return self._gather(parts[0] if len(parts) == 1 else torch.cat(parts))


class FeatureDrivenSource(Source):
    """A source computed from a :class:`SparseFeatures` (``self.features``), which owns every
    random stream: generators, per-instance flag and RNG state are the features'."""

    features: SparseFeatures

    def _attach(self, model: Any, features: SparseFeatures, dim: int) -> None:
        self.model, self.features = model, features
        self.device, self.seed = features.device, features.seed
        self.n_instances = model.n_instances
        self.dim = dim

    @property
    def generators(self) -> list[torch.Generator]:  # type: ignore[override]
        return self.features.generators

    @property
    def per_instance(self) -> bool:  # type: ignore[override]
        return self.features.per_instance

    def get_state(self) -> torch.Tensor:
        return self.features.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.features.set_state(state)


class ModelActivations(FeatureDrivenSource):
    """Hidden activations h = model.hidden(x) of a toy model fed by a :class:`SparseFeatures`.

    ``model`` is any batched toy model with ``hidden(x)`` and ``n_instances``/``d_hidden``
    (trained, or freshly initialised as the random-weight control of seed 003). Ground-truth
    directions in hidden space are the model's feature columns (:attr:`directions`). The
    streams are the features': shared (one batch x for every model instance) or per instance.
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
        if features.per_instance and features.n_instances != model.n_instances:
            raise ValueError("per-instance features must have as many instances as the model")
        self._attach(model, features, model.d_hidden)

    def subset(self, index: Any) -> "ModelActivations":
        """The chosen model instances on a fork of the features' streams: their own streams
        (per-instance features) or the shared one from its current state, so every chunk of
        model instances sees the batches x of an unchunked run."""
        idx = _instance_index(index, self.n_instances)
        feats = self.features.subset(idx if self.features.per_instance else [0])
        return ModelActivations(self.model.subset(idx), feats)

    @property
    def directions(self) -> torch.Tensor:
        """(I, N, M): feature i's direction in hidden space, W[:, :, i]."""
        return self.model.feature_directions().detach()

    def spec(self) -> dict[str, Any]:
        return {"kind": "tms", "features": self.features.spec(), "model": self.model.spec()}

    @torch.no_grad()
    def sample(self, batch_size: int) -> torch.Tensor:
        return self.model.hidden(self.features.sample(batch_size))


class BoundFeatures:
    """Sparse features whose second half is a fixed linear map of the first (seed 004's
    matrix-binding picture; the data the ``bound`` SAE, W_dec = [W_half; W_half R_map], is for).

    H = ``n_base`` base directions u_j (uniform random unit vectors in R^d) and their partners
    v_j = u_j R (row vectors; R a fixed Haar-random rotation, :func:`toymodels.linalg.random_orthogonal`,
    or with ``binding="gaussian"`` a Gaussian matrix scaled by 1/sqrt(d)). The 2H features —
    u_j ("feature j in slot 1") and v_j ("feature j in slot 2") — fire independently, slot 1 with
    probability p, slot 2 with ``slot2_ratio``·p, magnitudes as in :class:`SparseFeatures`; a
    sample is x = Σ_j a_j u_j + Σ_j b_j v_j. :attr:`directions` (1, 2H, d) are the ground-truth
    rows in the layout of the ``bound`` SAE (first half, then partners, same order),
    :attr:`binding` the map R (d, d). With H <= d any pairing of 2H directions is some linear
    map, so the binding only constrains when H > d. Sampling goes through
    :meth:`SparseFeatures.sample_coo`, so it costs in proportion to the active features.
    """

    n_instances = 1

    def __init__(
        self,
        n_base: int,
        d: int,
        feature_probability: float,
        *,
        slot2_ratio: float = 1.0,
        binding: str = "rotation",
        magnitude: str = "uniform",
        seed: int = 0,
        device: str | torch.device = "cpu",
    ) -> None:

        self.n_base = check_int("n_base", n_base, 1)
        self.dim = check_int("d", d, 2)
        p = check_float("feature_probability", feature_probability, 0.0, 1.0)
        self.slot2_ratio = check_float("slot2_ratio", slot2_ratio, 0.0, math.inf)
        if p * self.slot2_ratio > 1:
            raise ValueError(f"slot2_ratio · feature_probability must be <= 1, got {p * self.slot2_ratio}")
        self.binding_kind = check_choice("binding", binding, ("rotation", "gaussian"))
        self.seed = check_int("seed", seed, 0)
        self.device = resolve_device(device)
        probs = torch.cat([torch.full((n_base,), p), torch.full((n_base,), p * self.slot2_ratio)])[None]
        self.features = SparseFeatures(2 * n_base, probs, magnitude=magnitude, seed=seed, device=self.device)
        g = make_generator(derive_seed(seed, "bound-features"), self.device)
        base = torch.randn(n_base, self.dim, generator=g, device=self.device)
        base = base / base.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(base.dtype).tiny)
        if binding == "rotation":
            A = random_orthogonal(self.dim, generator=g)
        else:
            A = torch.randn(self.dim, self.dim, generator=g, device=self.device) / math.sqrt(self.dim)
        self.binding = A
        self.directions = torch.cat([base, base @ A])[None]  # (1, 2H, d)
        self.feature_probability = p

    @property
    def n_features(self) -> int:
        return 2 * self.n_base

    @property
    def expected_l0(self) -> float:
        """E[L0] = H p (1 + slot2_ratio)."""
        return self.n_base * self.feature_probability * (1 + self.slot2_ratio)

    def sample(self, batch_size: int) -> torch.Tensor:
        """A batch (1, B, d)."""
        return self.features.sample_coo(batch_size).embed(self.directions)

    def get_state(self) -> torch.Tensor:
        return self.features.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.features.set_state(state)

    def spec(self) -> dict[str, Any]:
        return {"kind": "bound-features", "n_base": self.n_base, "d": self.dim,
                "feature_probability": self.feature_probability, "slot2_ratio": self.slot2_ratio,
                "binding": self.binding_kind, "magnitude": self.features.magnitude, "seed": self.seed}


class FiniteSample(Source):
    """Batches drawn uniformly with replacement from fixed point sets (a finite training set).

    ``points`` (P, N, D) holds P sets of up to N points; set j uses its first ``sizes[j]``
    points (default: all N). Instance i draws from set ``group[i]``, so a sweep over dictionary
    sizes trains every size on the same training points. Draws come from the source's own
    seeded generator (each instance its own indices).
    """

    def __init__(self, points: torch.Tensor, group: list[int] | tuple[int, ...], *,
                 sizes: list[int] | tuple[int, ...] | None = None, seed: int = 0,
                 device: str | torch.device = "cpu") -> None:
        super().__init__(seed, device)
        if points.ndim != 3 or points.shape[1] < 1:
            raise ValueError(
                f"points must be shaped (sets, points, dim) with at least one point, got {tuple(points.shape)}")
        n_sets, n_max = int(points.shape[0]), int(points.shape[1])
        self.points = points.to(self.device, torch.float32)
        group = [int(g) for g in group]
        if not group or min(group) < 0 or max(group) >= n_sets:
            raise ValueError(f"group must be a non-empty list of set indices in [0, {n_sets - 1}], got {group}")
        sizes = [n_max] * n_sets if sizes is None else [int(v) for v in sizes]
        if len(sizes) != n_sets or min(sizes) < 1 or max(sizes) > n_max:
            raise ValueError(f"sizes must give one count in [1, {n_max}] per set ({n_sets}), got {sizes}")
        self.sizes = torch.tensor(sizes, dtype=torch.float64, device=self.device)
        self.group = torch.tensor(group, dtype=torch.long, device=self.device)
        self.n_instances = len(group)
        self.dim = int(points.shape[-1])

    def spec(self) -> dict[str, Any]:
        return {"kind": "finite-sample", "n_sets": int(self.points.shape[0]), "sizes": self.sizes.long().tolist(),
                "dim": self.dim, "group": self.group.tolist(), "seed": self.seed}

    def sample(self, batch_size: int) -> torch.Tensor:
        """A batch (I, B, D): instance i's points drawn uniformly from its set."""
        u = torch.rand(self.n_instances, batch_size, generator=self.generator, device=self.device,
                       dtype=torch.float64)
        n = self.sizes[self.group][:, None]
        idx = (u * n).long().clamp_max_(n.long() - 1)
        return self.points[self.group[:, None], idx]
