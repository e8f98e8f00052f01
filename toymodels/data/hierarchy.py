"""Richer ground truth: feature hierarchies and zipfian firing rates on top of
:class:`toymodels.data.SparseFeatures`.

    src = HierarchicalFeatures(64, 0.04, d_embed=32, firing="zipf", zipf_exponent=1.0,
                               hierarchy=[(0, [1, 2, 3], True), (4, [5, 6], False)])

- ``firing="zipf"``: feature i (rank i + 1) fires with probability p_i ∝ (i + 1)^(−a),
  scaled so that the mean of p over the N features is the given ``feature_probability``
  (a scalar or one per instance), each p_i capped at 1 (the cap's excess is spread over the
  others, so the mean stays exact while it fits: mean p <= 1). ``firing="constant"``: the
  given probabilities as they are (scalar, per instance, or per instance and feature).
- ``hierarchy``: a list of (parent, [children...], mutually_exclusive). A child can fire only
  when its parent fires: it is drawn with its own probability p_c (then the probability
  *given* its parent) and dropped when the parent is silent, so its marginal rate is
  p_c · P(parent). With ``mutually_exclusive=True``, when several children of that parent
  would fire in a sample, one of them, chosen uniformly at random, is kept. Hierarchies nest
  (a child may be a parent of its own children); a feature has at most one parent and there
  are no cycles. This is the toy of Nabeshima (2024) and Bussmann et al. (2025) on which
  feature absorption shows (:mod:`toymodels.ground_truth`).
- ``correlation_rank`` r > 0: low-rank correlated firing (a Gaussian copula): per sample
  z = F ξ + sqrt(1 − ρ²) ε with ξ ~ N(0, I_r), ε ~ N(0, I_N) and fixed factors F (N, r)
  whose rows have norm ρ = ``correlation_strength``; feature i fires when
  z_i > Φ⁻¹(1 − p_i), so its rate stays p_i while corr(z_i, z_j) = F_i·F_j. Drawn densely
  (cost ∝ B·N, not the active features).
- ``magnitude_distribution``: active magnitudes drawn from ``"exponential"`` (mean
  ``magnitude_mean``) or ``"folded-normal"`` (|N(magnitude_mean, magnitude_std²)|) instead of
  the base's uniform/constant/signed.

Sampling cost stays proportional to the active features on the sparse path (per level of the
hierarchy: a sort of the active entries' keys and a binary search), and the draws come from
each instance block's own generator after the base draw, so the per-instance streams keep
their guarantee: instance i's data is the same in any subset or chunk. Works with
``d_embed`` and instances like :class:`~toymodels.data.SparseFeatures`.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import torch

from .._validate import check_bool, check_choice, check_float, check_int
from .features import SparseFeatures
from ..device import derive_seed, make_generator

FIRING = ("constant", "zipf")
MAGNITUDE_DISTRIBUTIONS = ("exponential", "folded-normal")


def zipf_probabilities(n_features: int, mean_probability: Any, exponent: float) -> torch.Tensor:
    """p (I, N) with p_i ∝ (i + 1)^(−a) and mean_i p_i = ``mean_probability`` (scalar or (I,)),
    each p_i <= 1: capped entries are set to 1 and the rest rescaled to keep the mean."""
    n_features = check_int("n_features", n_features, 1)
    a = check_float("zipf_exponent", exponent, 0.0, 64.0)
    if isinstance(mean_probability, (str, bytes, bool)):
        raise ValueError(f"feature_probability must be a number or one per instance, got {mean_probability!r}")
    try:
        m = torch.as_tensor(mean_probability, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"feature_probability must be a number or one per instance, got {mean_probability!r}") from None
    if m.ndim > 1 or m.numel() == 0:
        raise ValueError(f"feature_probability (the mean firing rate with firing='zipf') must be a scalar or one per "
                         f"instance (I,), got shape {tuple(m.shape)}")
    m = m.reshape(-1)
    if bool(((m <= 0) | (m > 1) | torch.isnan(m)).any()):
        raise ValueError(f"feature_probability (the mean firing rate with firing='zipf') must be in (0, 1], got {m.tolist()}")
    w = torch.arange(1, n_features + 1, dtype=torch.float64).pow(-a)  # (N,)
    out = []
    for mean in m.tolist():
        total = mean * n_features
        capped = torch.zeros(n_features, dtype=torch.bool)
        for _ in range(n_features + 1):  # water-filling: at most N rounds
            free = ~capped
            p = torch.where(capped, torch.ones_like(w), w * (total - capped.sum()) / w[free].sum())
            over = p > 1
            if not bool((over & free).any()):
                break
            capped |= over
        out.append(p.clamp(max=1.0))
    return torch.stack(out).to(torch.float32)


def _is_index(v: Any) -> bool:
    """An integer (Python, numpy or a 0-d integer tensor), not a bool, float or text."""
    if isinstance(v, torch.Tensor):
        return v.ndim == 0 and not v.dtype.is_floating_point and v.dtype != torch.bool
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and type(v).__name__ != "bool_"


class Hierarchy:
    """A validated forest over the features: ``parent`` (N,) (−1 for roots), ``depth`` (N,)
    (0 for roots), and the mutually exclusive parents. Built from the list form
    [(parent, [children...], mutually_exclusive), ...]."""

    def __init__(self, spec: Sequence[Any], n_features: int) -> None:
        n_features = check_int("n_features", n_features, 1)
        parent = [-1] * n_features
        exclusive: set[int] = set()
        self.spec: list[tuple[int, list[int], bool]] = []
        if not isinstance(spec, (list, tuple)):
            raise ValueError(f"hierarchy must be a list of (parent, [children...], mutually_exclusive), got {type(spec).__name__}")
        for j, item in enumerate(spec):
            try:
                p, children, me = item
            except (TypeError, ValueError):
                raise ValueError(f"hierarchy[{j}] must be (parent, [children...], mutually_exclusive), got {item!r}") from None
            if not _is_index(p):
                raise ValueError(f"hierarchy[{j}]: the parent must be an integer feature index, got {p!r}")
            if (isinstance(children, torch.Tensor) or type(children).__name__ == "ndarray") and children.ndim == 1:
                children = list(children)  # its elements keep their integer (or not) dtype
            if not isinstance(children, (list, tuple, range)) or not all(_is_index(c) for c in children):
                raise ValueError(f"hierarchy[{j}]: children must be a list of integer feature indices, got {children!r}")
            p, children = int(p), [int(c) for c in children]
            if len(set(children)) != len(children):
                raise ValueError(f"hierarchy[{j}]: children {children} repeat a feature")
            if not isinstance(me, bool):
                raise ValueError(f"hierarchy[{j}]: mutually_exclusive must be True or False, got {me!r}")
            if not children:
                raise ValueError(f"hierarchy[{j}]: parent {p} needs at least one child")
            for f in (p, *children):
                if not 0 <= f < n_features:
                    raise ValueError(f"hierarchy[{j}]: feature {f} is not in [0, n_features - 1 = {n_features - 1}]")
            for c in children:
                if c == p:
                    raise ValueError(f"hierarchy[{j}]: feature {p} cannot be its own child")
                if parent[c] != -1:
                    raise ValueError(f"hierarchy[{j}]: feature {c} already has parent {parent[c]}; a feature has at most one parent")
                parent[c] = p
            if me:
                exclusive.add(p)
            self.spec.append((p, children, me))
        depth = [0] * n_features
        for f in range(n_features):  # walk up; a walk longer than N is a cycle
            d, cur = 0, f
            while parent[cur] != -1:
                cur, d = parent[cur], d + 1
                if d > n_features:
                    raise ValueError(f"hierarchy has a cycle through feature {f}")
            depth[f] = d
        self.n_features = n_features
        self.parent = torch.tensor(parent, dtype=torch.long)
        self.depth = torch.tensor(depth, dtype=torch.long)
        self.exclusive = torch.zeros(n_features, dtype=torch.bool)
        if exclusive:
            self.exclusive[list(exclusive)] = True
        self.max_depth = max(depth) if depth else 0
        self._on: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def _tensors(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        key = str(device)
        if key not in self._on:
            self._on[key] = (self.parent.to(device), self.depth.to(device), self.exclusive.to(device))
        return self._on[key]

    def apply_coo(self, a: torch.Tensor, r: torch.Tensor, f: torch.Tensor, v: torch.Tensor, batch: int,
                  g: torch.Generator) -> tuple[torch.Tensor, ...]:
        """Entries (row a, sample r, feature f, value v) with every child whose parent is silent
        dropped and one child kept per exclusive parent and sample; level by level from the
        roots down (a dropped child drops its own children). Cost O(nnz log nnz) per level."""
        parent, depth, excl = self._tensors(v.device)
        n = self.n_features
        for d in range(1, self.max_depth + 1):
            if f.numel() == 0:
                break
            base = (a * batch + r) * n
            keys, _ = torch.sort(base + f)
            is_child = depth[f] == d
            pkey = base + parent[f].clamp_min(0)
            pos = torch.searchsorted(keys, pkey).clamp_max(keys.numel() - 1)
            present = keys[pos] == pkey
            keep = ~is_child | present
            a, r, f, v, pkey, is_child = a[keep], r[keep], f[keep], v[keep], pkey[keep], is_child[keep]
            me = is_child & excl[parent[f].clamp_min(0)]
            if bool(me.any()):
                idx = me.nonzero().flatten()
                u = torch.rand(idx.numel(), generator=g, device=v.device, dtype=torch.float64)
                groups, inv = torch.unique(pkey[idx], return_inverse=True)
                best = torch.full((groups.numel(),), -1.0, dtype=torch.float64, device=v.device)
                best.scatter_reduce_(0, inv, u, reduce="amax")
                drop = idx[u < best[inv]]
                keep = torch.ones_like(me)
                keep[drop] = False
                a, r, f, v = a[keep], r[keep], f[keep], v[keep]
        return a, r, f, v

    def apply_dense(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """The same rule on dense coefficients (A, B, N), in place; returns x."""
        for d in range(1, self.max_depth + 1):
            for p, children, me in self.spec:
                if int(self.depth[children[0]]) != d:
                    continue
                cols = torch.tensor(children, device=x.device)
                x[..., cols] *= (x[..., p] != 0).to(x.dtype)[..., None]
                if me:
                    act = x[..., cols] != 0
                    u = torch.rand(act.shape, generator=g, device=x.device, dtype=torch.float64)
                    u = torch.where(act, u, torch.full_like(u, -1.0))
                    win = torch.nn.functional.one_hot(u.argmax(-1), len(children)).to(torch.bool)
                    x[..., cols] *= (win & act).to(x.dtype)
        return x

    def effective_probabilities(self, p: torch.Tensor) -> torch.Tensor:
        """Marginal firing rates (I, N) from the drawn rates p (I, N) when no parent is
        exclusive: p_c · P(parent), down the tree. ValueError with exclusive parents (no
        closed form: estimate from samples)."""
        if bool(self.exclusive.any()):
            raise ValueError("the marginal firing rates of mutually exclusive children have no closed form; estimate them from samples")
        out = p.clone()
        for d in range(1, self.max_depth + 1):
            kids = (self.depth == d).nonzero().flatten().to(p.device)
            out[:, kids] = out[:, kids] * out[:, self.parent[kids].to(p.device)]
        return out


class HierarchicalFeatures(SparseFeatures):
    """:class:`~toymodels.data.SparseFeatures` with a feature hierarchy and zipfian firing
    rates (see the module docstring); every other argument as for ``SparseFeatures``
    (grouped features excepted: a hierarchy replaces them)."""

    def __init__(
        self,
        n_features: int,
        feature_probability: float | Any = 0.05,
        n_instances: int = 1,
        *,
        hierarchy: Sequence[Any] | None = None,
        firing: str = "constant",
        zipf_exponent: float = 1.0,
        magnitude_distribution: str | None = None,
        magnitude_mean: float = 1.0,
        magnitude_std: float = 0.5,
        correlation_rank: int = 0,
        correlation_strength: float = 0.5,
        **kw: Any,
    ) -> None:
        check_choice("firing", firing, FIRING)
        n_features = check_int("n_features", n_features, 1)
        n_instances = check_int("n_instances", n_instances, 1)
        if magnitude_distribution is not None:
            check_choice("magnitude_distribution", magnitude_distribution, MAGNITUDE_DISTRIBUTIONS)
            if kw.get("magnitude", "constant") != "constant":
                raise ValueError("give magnitude or magnitude_distribution, not both")
            kw["magnitude"] = "constant"  # the base draws no magnitudes; _magnitudes below does
        self.magnitude_distribution = magnitude_distribution
        self.magnitude_mean = check_float("magnitude_mean", magnitude_mean, 0.0, lo_open=True)
        self.magnitude_std = check_float("magnitude_std", magnitude_std, 0.0)
        self.correlation_rank = check_int("correlation_rank", correlation_rank, 0, int(n_features))
        self.correlation_strength = check_float("correlation_strength", correlation_strength, 0.0, 1.0, hi_open=True)
        self.factors = None
        if self.correlation_rank:
            kw["sparse_threshold"] = 0.0  # correlated firing is drawn densely (every entry needs its latent value)
        if kw.get("correlated_groups") or kw.get("anticorrelated_groups"):
            raise ValueError("correlated/anticorrelated groups and a hierarchy do not combine; use one")
        self.firing = firing
        self.zipf_exponent = check_float("zipf_exponent", zipf_exponent, 0.0, 64.0)
        self.mean_probability = feature_probability
        if firing == "zipf":
            feature_probability = zipf_probabilities(int(n_features), feature_probability, zipf_exponent)
            if feature_probability.shape[0] not in (1, n_instances):
                raise ValueError(f"feature_probability (the mean firing rate with firing='zipf') must be a scalar or one "
                                 f"per instance ({n_instances}), got {feature_probability.shape[0]} values")
            if feature_probability.shape[0] == 1 and n_instances > 1:
                feature_probability = feature_probability.expand(int(n_instances), -1).clone()
        if hierarchy is not None and not isinstance(hierarchy, (list, tuple)):
            raise ValueError(f"hierarchy must be a list of (parent, [children...], mutually_exclusive), got {type(hierarchy).__name__}")
        self.hierarchy_spec = [] if hierarchy is None else list(hierarchy)
        self.hierarchy = Hierarchy(self.hierarchy_spec, int(n_features))
        super().__init__(n_features, feature_probability, n_instances, **kw)
        if self.correlation_rank:
            g = make_generator(derive_seed(self.seed, "correlation"), self.device)
            u = torch.randn(int(n_features), self.correlation_rank, generator=g, device=self.device)
            self.factors = self.correlation_strength * u / u.norm(dim=-1, keepdim=True)  # (N, r), rows of norm ρ


    def _magnitudes(self, g: torch.Generator, *shape: int) -> torch.Tensor:
        """Active magnitudes: the base's, or with ``magnitude_distribution`` Exponential(mean)
        (−mean·log U) or a folded normal |N(mean, std²)|."""
        if self.magnitude_distribution is None:
            return super()._magnitudes(g, *shape)
        if self.magnitude_distribution == "exponential":
            u = self._rand(g, *shape)
            return -self.magnitude_mean * torch.log1p(-u)
        z = torch.randn(shape, generator=g, device=self.device)
        return (self.magnitude_mean + self.magnitude_std * z).abs()

    # the two row samplers of SparseFeatures, then the hierarchy with the block's generator
    def _coo_rows(self, batch_size: int, g: torch.Generator, rows: list[int]):
        a, r, f, v = super()._coo_rows(batch_size, g, rows)
        if self.hierarchy.max_depth == 0:
            return a, r, f, v
        return self.hierarchy.apply_coo(a, r, f, v, batch_size, g)

    def _correlated_rows(self, batch_size: int, g: torch.Generator, rows: list[int]) -> torch.Tensor:
        """Low-rank Gaussian-copula firing: z = F ξ + sqrt(1 − ρ²) ε per sample (unit
        variance, corr(z_i, z_j) = F_i·F_j), feature i fires when z_i > Φ⁻¹(1 − p_i)
        (marginal rate exactly p_i), then a magnitude; dense, (A, B, N)."""
        n_a, n = len(rows), self.n_features
        xi = torch.randn(n_a, batch_size, self.correlation_rank, generator=g, device=self.device)
        eps = torch.randn(n_a, batch_size, n, generator=g, device=self.device)
        z = xi @ self.factors.T + math.sqrt(1 - self.correlation_strength ** 2) * eps
        p = self._p_cpu[torch.tensor(rows)].double().clamp(1e-12, 1 - 1e-12)  # (A, 1 or N): each row's own rates
        thr = math.sqrt(2.0) * torch.erfinv(1 - 2 * p)  # Φ⁻¹(1 − p)
        return (z > thr.float().to(self.device)[:, None, :]).to(torch.float32) * self._magnitudes(g, n_a, batch_size, n)

    def _dense_rows(self, batch_size: int, g: torch.Generator, rows: list[int], out: torch.Tensor | None = None) -> torch.Tensor:
        if self.correlation_rank:
            x = self._correlated_rows(batch_size, g, rows)
        else:
            x = super()._dense_rows(batch_size, g, rows)
        if self.hierarchy.max_depth:
            x = self.hierarchy.apply_dense(x, g)
        return x if out is None else out.copy_(x)

    def subset(self, index: Any) -> "HierarchicalFeatures":
        new = super().subset(index)
        new.__class__ = HierarchicalFeatures
        new.firing, new.zipf_exponent, new.mean_probability = self.firing, self.zipf_exponent, self.mean_probability
        new.hierarchy_spec, new.hierarchy = self.hierarchy_spec, self.hierarchy
        new.magnitude_distribution = self.magnitude_distribution
        new.magnitude_mean, new.magnitude_std = self.magnitude_mean, self.magnitude_std
        new.correlation_rank, new.correlation_strength, new.factors = self.correlation_rank, self.correlation_strength, self.factors
        return new

    def spec(self) -> dict[str, Any]:
        return {**super().spec(), "kind": "hierarchical-features", "firing": self.firing, "zipf_exponent": self.zipf_exponent,
                "hierarchy": [[p, list(c), me] for p, c, me in self.hierarchy_spec],
                "magnitude_distribution": self.magnitude_distribution, "magnitude_mean": self.magnitude_mean,
                "magnitude_std": self.magnitude_std, "correlation_rank": self.correlation_rank,
                "correlation_strength": self.correlation_strength}

    @property
    def expected_l0(self) -> torch.Tensor:
        """Expected active features per sample (I,) (ValueError with exclusive children)."""
        p = self.feature_probability.expand(self.n_instances, self.n_features)
        return self.hierarchy.effective_probabilities(p).sum(-1)

    def sample_with_truth(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(x (I, B, D), the true coefficients (I, B, N)) of one batch, for the metrics of
        :mod:`toymodels.ground_truth` (sparse path: the whole batch as coordinates)."""
        coo = self.sample_coo(batch_size)
        c = coo.to_dense()
        return (coo.embed(self.directions) if self.directions is not None else c), c


def tree(n_parents: int, n_children: int, *, mutually_exclusive: bool = True, start: int = 0) -> list[tuple[int, list[int], bool]]:
    """A two-level hierarchy: parents start, start + n_children + 1, ... each followed by its
    ``n_children`` children (features are numbered parent, its children, next parent, ...)."""
    n_parents = check_int("n_parents", n_parents, 1)
    n_children = check_int("n_children", n_children, 1)
    start = check_int("start", start, 0)
    mutually_exclusive = check_bool("mutually_exclusive", mutually_exclusive)
    out, f = [], start
    for _ in range(n_parents):
        out.append((f, list(range(f + 1, f + 1 + n_children)), mutually_exclusive))
        f += n_children + 1
    return out


__all__ = ["FIRING", "Hierarchy", "HierarchicalFeatures", "tree", "zipf_probabilities"]


SparseFeatures.richer_class = HierarchicalFeatures  # SparseFeatures(..., hierarchy=...) builds one
