"""Sparse linear connections between two dictionaries (seed 000's question on "Finding Sparse
Linear Connections between Features in LLMs").

Given SAEs on two layers, fit a map from layer-1 latent activations z1 (F1 of them) to
layer-2 latent activations z2 (F2): W is F2 × F1, so an L1 penalty on W asks each layer-2
latent to depend on few layer-1 latents — a sparse connection graph. (On a d_model × d_model
map between the residual streams the same penalty would mean nothing: its entries are not
features.) The fit, per instance:

    min_{W, c}  1/(2B) Σ_b ||z2_b − W z1_b − c||²  +  λ ||W||_1

by FISTA (Beck & Teboulle 2009): a gradient step on the quadratic (through the Gram matrices
z1ᵀz1/B, z2ᵀz1/B, so B never enters the loop) and soft-thresholding of W; step 1/L with L the
largest eigenvalue of the quadratic's Hessian.

The test bed is :class:`TwoLayerToy`, batched over instances: layer-1 features f1 (N1,
sparse) sit at directions E1 in R^{D1}; layer-2 features are f2 = ReLU(C f1) with a random
sparse non-negative C (N2 × N1; each layer-2 feature has 1..``max_parents`` parents, by
default disjoint parent sets), read from layer 1 through E1ᵀ and written at directions E2 in
R^{D2}:

    h1 = E1 f1,    h2 = E2 ReLU(C E1ᵀ h1).

With D ≥ N the directions are orthonormal (E1ᵀ h1 = f1 exactly); the true connection graph
is C ≠ 0. :func:`match_latents` pairs SAE latents with true features (Hungarian algorithm on
decoder/feature cosines) and :func:`score_graph` compares the recovered graph |W| > τ with the
truth (precision, recall).

>>> import torch
>>> from toymodels.connections import ConnectionsConfig, build_two_layer, layer_source, paired_latents, \\
...     fit_sparse_map, match_latents, connections_in_feature_basis, score_graph
>>> from toymodels.sae import SAEConfig, build_sae
>>> from toymodels.train import TrainConfig, train
>>> cfg = ConnectionsConfig(n_instances=2)
>>> model = build_two_layer(cfg, seed=0)
>>> saes = []
>>> for layer, (d, n) in enumerate([(cfg.d_model_1, cfg.n_features_1), (cfg.d_model_2, cfg.n_features_2)], 1):
...     sae = build_sae(SAEConfig(d_model=d, dict_size=n, n_instances=2, l1_coefficient=0.01), seed=layer)
...     _ = train(sae, layer_source(model, layer, seed=layer), TrainConfig(steps=2000, batch_size=512, quiet=True))
...     saes.append(sae)
>>> z1, z2 = paired_latents(model, *saes, n_samples=8192, seed=9)
>>> W, c = fit_sparse_map(z1, z2, l1=1e-3)                         # (I, F2, F1), (I, F2)
>>> m1, m2 = match_latents(saes[0], model.E1), match_latents(saes[1], model.E2)
>>> s = score_graph(connections_in_feature_basis(W, m1, m2), model.graph())
>>> s["precision"], s["recall"]                                    # one value per instance  # doctest: +SKIP
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from .._validate import check_float, check_int, check_nonneg, check_seed, check_tensor
from ..data.features import FeatureDrivenSource, SparseFeatures, _instance_index
from ..device import derive_seed, make_generator, resolve_device
from ..measures.linalg import random_orthogonal

__all__ = [
    "ConnectionsConfig", "TwoLayerToy", "build_two_layer", "LayerActivations", "layer_source", "paired_latents",
    "fit_sparse_map", "match_latents", "connections_in_feature_basis", "score_graph",
]


@dataclass(frozen=True)
class ConnectionsConfig:
    """Shape of the two-layer toy model whose layer-2 features are sparse functions of layer 1's."""

    n_features_1: int = 12
    """N1, layer-1 features."""
    n_features_2: int = 8
    """N2, layer-2 features."""
    d_model_1: int = 16
    """D1, layer-1 width. D1 >= N1 gives orthonormal feature directions; less gives random unit ones."""
    d_model_2: int = 12
    """D2, layer-2 width (orthonormal directions when D2 >= N2)."""
    max_parents: int = 2
    """Each layer-2 feature reads 1..max_parents distinct layer-1 features (in [1, N1])."""
    shared_parents: bool = False
    """False: parent sets are disjoint (each layer-1 feature feeds at most one layer-2 feature;
    needs N2 <= N1). True: parents drawn independently, so a layer-1 feature may feed several
    layer-2 features — then those co-fire as a fixed "packet" whenever it fires, and an SAE on
    layer 2 tends to learn the packets (sparser) instead of the layer-2 features."""
    weight_low: float = 0.5
    """Connection weights are drawn uniformly from [weight_low, weight_high] (positive: f2 = C f1 >= 0)."""
    weight_high: float = 1.0
    """Upper end of the connection weights (>= weight_low)."""
    feature_probability: float = 0.05
    """Each layer-1 feature is active with this probability (magnitudes Uniform[0, 1])."""
    n_instances: int = 1
    """I, independent models (each its own random graph and directions)."""

    def __post_init__(self) -> None:
        check_int("n_features_1", self.n_features_1, 1)
        check_int("n_features_2", self.n_features_2, 1)
        check_int("d_model_1", self.d_model_1, 1)
        check_int("d_model_2", self.d_model_2, 1)
        check_int("max_parents", self.max_parents, 1, self.n_features_1)
        if not isinstance(self.shared_parents, bool):
            raise ValueError(f"shared_parents must be True or False, got {self.shared_parents!r}")
        if not self.shared_parents and self.n_features_2 > self.n_features_1:
            raise ValueError(f"n_features_2 must be in [1, n_features_1 = {self.n_features_1}] with disjoint parents "
                             f"(shared_parents=False); got {self.n_features_2}")
        check_float("weight_low", self.weight_low, 0.0, math.inf, lo_open=True)
        check_float("weight_high", self.weight_high, self.weight_low, math.inf)
        check_float("feature_probability", self.feature_probability, 0.0, 1.0, lo_open=True)
        check_int("n_instances", self.n_instances, 1)


def _directions(n: int, d: int, i: int, g: torch.Generator) -> torch.Tensor:
    """(I, d, n) unit columns: orthonormal when d >= n, else random unit vectors."""
    if d >= n:
        return torch.stack([random_orthogonal(d, generator=g)[:, :n] for _ in range(i)])
    e = torch.randn(i, d, n, generator=g, dtype=torch.float64)
    return (e / e.norm(dim=1, keepdim=True)).float()


class TwoLayerToy(nn.Module):
    """h1 = E1 f1, h2 = E2 ReLU(C E1ᵀ h1), batched over instances (buffers, nothing trains).

    E1 (I, D1, N1), C (I, N2, N1) sparse non-negative, E2 (I, D2, N2)."""

    def __init__(self, config: ConnectionsConfig, *, seed: int = 0, device: str | torch.device = "cpu") -> None:
        super().__init__()
        if not isinstance(config, ConnectionsConfig):
            raise ValueError(f"config must be a ConnectionsConfig, got {type(config).__name__}")
        self.config, self.seed = config, check_seed("seed", seed)
        self.device_ = resolve_device(device)
        c = config
        g = make_generator(derive_seed(self.seed, "two-layer"), torch.device("cpu"))
        E1 = _directions(c.n_features_1, c.d_model_1, c.n_instances, g)
        E2 = _directions(c.n_features_2, c.d_model_2, c.n_instances, g)
        C = torch.zeros(c.n_instances, c.n_features_2, c.n_features_1)
        for i in range(c.n_instances):
            sizes = torch.randint(1, c.max_parents + 1, (c.n_features_2,), generator=g)
            while not c.shared_parents and int(sizes.sum()) > c.n_features_1:  # disjoint sets must fit in N1
                big = torch.nonzero(sizes > 1).flatten()
                sizes[big[int(torch.randint(len(big), (1,), generator=g))]] -= 1
            order = torch.randperm(c.n_features_1, generator=g)
            start = 0
            for j in range(c.n_features_2):
                k = int(sizes[j])
                if c.shared_parents:
                    parents = torch.randperm(c.n_features_1, generator=g)[:k]
                else:
                    parents, start = order[start:start + k], start + k
                C[i, j, parents] = c.weight_low + (c.weight_high - c.weight_low) * torch.rand(k, generator=g)
        self.register_buffer("E1", E1.to(self.device_))
        self.register_buffer("E2", E2.to(self.device_))
        self.register_buffer("C", C.to(self.device_))

    @property
    def n_instances(self) -> int:
        return self.config.n_instances

    def graph(self) -> torch.Tensor:
        """(I, N2, N1) bool: the true connections C ≠ 0."""
        return self.C != 0

    def _check_in(self, name: str, x: Any, width: int, what: str) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[0] not in (1, self.n_instances) \
                or x.shape[2] != width or not x.dtype.is_floating_point:
            got = (tuple(x.shape), x.dtype) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{name} must be a float tensor shaped (1 or n_instances = {self.n_instances}, batch, "
                             f"{what} = {width}); got {got}")
        return x

    def features_2(self, f1_IBN: torch.Tensor) -> torch.Tensor:
        """f2 = ReLU(C f1), (I, B, N2)."""
        self._check_in("f1", f1_IBN, self.config.n_features_1, "n_features_1")
        return torch.relu(torch.einsum("ibn,ikn->ibk", f1_IBN, self.C))

    def layer_1(self, f1_IBN: torch.Tensor) -> torch.Tensor:
        """h1 = E1 f1, (I, B, D1)."""
        self._check_in("f1", f1_IBN, self.config.n_features_1, "n_features_1")
        return torch.einsum("ibn,idn->ibd", f1_IBN, self.E1)

    def layer_2(self, h1_IBD: torch.Tensor) -> torch.Tensor:
        """h2 = E2 ReLU(C E1ᵀ h1), (I, B, D2): layer 2 computed from layer 1's activations."""
        self._check_in("h1", h1_IBD, self.config.d_model_1, "d_model_1")
        read = torch.einsum("ibd,idn->ibn", h1_IBD, self.E1)
        return torch.einsum("ibk,idk->ibd", self.features_2(read), self.E2)

    def forward(self, f1_IBN: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both layers' activations (h1 (I, B, D1), h2 (I, B, D2)) for layer-1 features f1."""
        h1 = self.layer_1(f1_IBN)
        return h1, self.layer_2(h1)

    def spec(self) -> dict[str, Any]:
        return {"family": "two-layer", **asdict(self.config), "seed": self.seed}

    def subset(self, index: Any) -> "TwoLayerToy":
        """The chosen instances as a model of their own (same directions and graphs)."""
        idx = _instance_index(index, self.n_instances)
        new = TwoLayerToy.__new__(TwoLayerToy)
        nn.Module.__init__(new)
        new.config = ConnectionsConfig(**{**asdict(self.config), "n_instances": len(idx)})
        new.seed, new.device_ = self.seed, self.device_
        t = torch.tensor(idx, device=self.device_)
        for name in ("E1", "E2", "C"):
            new.register_buffer(name, getattr(self, name).index_select(0, t))
        return new


def build_two_layer(config: ConnectionsConfig, *, seed: int = 0, device: str | torch.device = "cpu") -> TwoLayerToy:
    """A :class:`TwoLayerToy` with directions and graph drawn from ``seed`` (on the CPU, so the
    same seed gives the same model on every device)."""
    return TwoLayerToy(config, seed=seed, device=device)


class LayerActivations(FeatureDrivenSource):
    """Activations of one layer (1 or 2) of a :class:`TwoLayerToy` fed by per-instance sparse
    layer-1 features — a data source for an SAE on that layer."""

    def __init__(self, model: TwoLayerToy, layer: int, features: SparseFeatures) -> None:
        if not isinstance(model, TwoLayerToy):
            raise ValueError(f"model must be a TwoLayerToy, got {type(model).__name__}")
        self.layer = check_int("layer", layer, 1, 2)
        if not isinstance(features, SparseFeatures):
            raise ValueError(f"features must be a SparseFeatures source, got {type(features).__name__}")
        if features.dim != model.config.n_features_1:
            raise ValueError(f"features have dim {features.dim}; the model has n_features_1 = {model.config.n_features_1}")
        if features.n_instances != model.n_instances:
            raise ValueError(f"features have {features.n_instances} instances; the model has {model.n_instances}")
        self._attach(model, features, model.config.d_model_1 if self.layer == 1 else model.config.d_model_2)

    def subset(self, index: Any) -> "LayerActivations":
        idx = _instance_index(index, self.n_instances)
        return LayerActivations(self.model.subset(idx), self.layer, self.features.subset(idx))

    @property
    def directions(self) -> torch.Tensor:
        """(I, N, D): the layer's true feature directions as rows."""
        return (self.model.E1 if self.layer == 1 else self.model.E2).transpose(1, 2)

    def spec(self) -> dict[str, Any]:
        return {"kind": "two-layer", "layer": self.layer, "features": self.features.spec(), "model": self.model.spec()}

    @torch.no_grad()
    def sample(self, batch_size: int) -> torch.Tensor:
        h1, h2 = self.model(self.features.sample(batch_size))
        return h1 if self.layer == 1 else h2


def layer_source(model: TwoLayerToy, layer: int, *, seed: int = 0) -> LayerActivations:
    """A :class:`LayerActivations` on fresh per-instance features with the model's probability."""
    if not isinstance(model, TwoLayerToy):
        raise ValueError(f"model must be a TwoLayerToy, got {type(model).__name__}")
    check_int("layer", layer, 1, 2)
    seed = check_seed("seed", seed)
    f = SparseFeatures(model.config.n_features_1, model.config.feature_probability, model.n_instances,
                       seed=seed, device=model.device_)
    return LayerActivations(model, layer, f)


@torch.no_grad()
def paired_latents(model: TwoLayerToy, sae_1: Any, sae_2: Any, *, n_samples: int = 16384, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """SAE codes of both layers on the same inputs: z1 (I, B, F1), z2 (I, B, F2)."""
    n_samples = check_int("n_samples", n_samples, 1)
    if not isinstance(model, TwoLayerToy):
        raise ValueError(f"model must be a TwoLayerToy, got {type(model).__name__}")
    seed = check_seed("seed", seed)
    for name, sae, d in (("sae_1", sae_1, model.config.d_model_1), ("sae_2", sae_2, model.config.d_model_2)):
        if not hasattr(sae, "encode") or not hasattr(sae, "d_model"):
            raise ValueError(f"{name} must be an SAE (encode, d_model), got {type(sae).__name__}")
        if int(sae.d_model) != d or int(getattr(sae, "n_instances", model.n_instances)) != model.n_instances:
            raise ValueError(f"{name} must have d_model = {d} and n_instances = {model.n_instances} (layer {name[-1]}); "
                             f"got d_model = {sae.d_model}, n_instances = {getattr(sae, 'n_instances', None)}")
    f = SparseFeatures(model.config.n_features_1, model.config.feature_probability, model.n_instances,
                       seed=seed, device=model.device_)
    h1, h2 = model(f.sample(n_samples))
    return sae_1.encode(h1.to(sae_1.dtype)), sae_2.encode(h2.to(sae_2.dtype))


@torch.no_grad()
def fit_sparse_map(z1_IBF: torch.Tensor, z2_IBG: torch.Tensor, *, l1: float, iters: int = 2000,
                   tol: float = 1e-7) -> tuple[torch.Tensor, torch.Tensor]:
    """The L1-penalised linear map from layer-1 to layer-2 latents, per instance, by FISTA:

        min_{W, c} 1/(2B) Σ_b ||z2_b − W z1_b − c||² + l1 ||W||_1,   W (I, F2, F1), c (I, F2).

    With S11 = z1ᵀz1/B, S21 = z2ᵀz1/B, m1 = mean z1, m2 = mean z2 the gradient is
    ∇_W = W S11 + c m1ᵀ − S21, ∇_c = W m1 + c − m2; the step is 1/L, L the largest
    eigenvalue of [[S11, m1], [m1ᵀ, 1]]; W is soft-thresholded by l1/L (c is not penalised).
    Stops when no entry moves more than ``tol`` (relative to max |W|, at least 1) or after
    ``iters`` steps. Float64 inside, float32 out."""
    check_tensor("z1", z1_IBF, ndim=3, floating=True)
    check_tensor("z2", z2_IBG, ndim=3, floating=True)
    if z1_IBF.shape[:2] != z2_IBG.shape[:2]:
        raise ValueError(f"z1 and z2 must be (I, B, F1) and (I, B, F2) with the same I and B; got "
                         f"{tuple(z1_IBF.shape)} and {tuple(z2_IBG.shape)}")
    l1 = check_nonneg("l1", l1)
    iters = check_int("iters", iters, 1)
    tol = check_nonneg("tol", tol)
    z1, z2 = z1_IBF.double(), z2_IBG.double()
    n_i, b, f1 = z1.shape
    f2 = z2.shape[-1]
    S11 = z1.transpose(1, 2) @ z1 / b            # (I, F1, F1)
    S21 = z2.transpose(1, 2) @ z1 / b            # (I, F2, F1)
    m1, m2 = z1.mean(1), z2.mean(1)              # (I, F1), (I, F2)
    H = torch.zeros(n_i, f1 + 1, f1 + 1, dtype=torch.float64, device=z1.device)
    H[:, :f1, :f1], H[:, :f1, f1], H[:, f1, :f1], H[:, f1, f1] = S11, m1, m1, 1.0
    L = torch.linalg.eigvalsh(H)[:, -1].clamp_min(1e-12)[:, None, None]  # (I, 1, 1)
    W = torch.zeros(n_i, f2, f1, dtype=torch.float64, device=z1.device)
    c = m2.clone()
    yW, yc, t = W.clone(), c.clone(), 1.0
    for _ in range(iters):
        gW = yW @ S11 + yc[:, :, None] * m1[:, None, :] - S21
        gc = (yW @ m1[:, :, None])[..., 0] + yc - m2
        W_new = yW - gW / L
        W_new = W_new.sign() * (W_new.abs() - l1 / L).clamp_min(0.0)
        c_new = yc - gc / L[:, :, 0]
        t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
        mom = (t - 1) / t_new
        yW, yc = W_new + mom * (W_new - W), c_new + mom * (c_new - c)
        moved = float((W_new - W).abs().max())
        W, c, t = W_new, c_new, t_new
        if moved <= tol * max(1.0, float(W.abs().max())):
            break
    return W.float(), c.float()


def _dec_and_truth(sae: Any, directions_IDN: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if not hasattr(sae, "decoder_directions"):
        raise ValueError(f"sae must be an SAE (decoder_directions), got {type(sae).__name__}")
    dec = sae.decoder_directions().detach().double().cpu()
    check_tensor("directions_IDN", directions_IDN, ndim=3)
    truth = directions_IDN.detach().double().cpu()
    if truth.shape[0] != dec.shape[0] or truth.shape[1] != dec.shape[1]:
        raise ValueError(f"directions_IDN must be shaped (n_instances = {dec.shape[0]}, d_model = {dec.shape[1]}, N) "
                         f"like the SAE's decoder; got {tuple(truth.shape)}")
    return dec, truth


@torch.no_grad()
def match_latents(sae: Any, directions_IDN: torch.Tensor) -> torch.Tensor:
    """(I, N) index of the SAE latent matched to each true feature: the one-to-one matching
    (Hungarian algorithm, scipy's linear_sum_assignment) maximising the summed cosine between
    decoder directions (I, D, F) and feature directions (I, D, N); needs F >= N."""
    from scipy.optimize import linear_sum_assignment

    dec, truth = _dec_and_truth(sae, directions_IDN)
    if dec.shape[-1] < truth.shape[-1]:
        raise ValueError(f"the SAE has {dec.shape[-1]} latents, fewer than the {truth.shape[-1]} features to match")
    cos = (dec / dec.norm(dim=1, keepdim=True).clamp_min(1e-12)).transpose(1, 2) @ \
        (truth / truth.norm(dim=1, keepdim=True).clamp_min(1e-12))  # (I, F, N)
    out = torch.empty(cos.shape[0], cos.shape[2], dtype=torch.long)
    for i in range(cos.shape[0]):
        rows, cols = linear_sum_assignment(cos[i].numpy(), maximize=True)
        out[i, torch.as_tensor(cols)] = torch.as_tensor(rows)
    return out


def matched_cosines(sae: Any, directions_IDN: torch.Tensor, match_IN: torch.Tensor) -> torch.Tensor:
    """(I, N) cosine between each true feature and its matched latent's decoder direction."""
    dec, truth = _dec_and_truth(sae, directions_IDN)
    _check_match("match_IN", match_IN, truth.shape[0], truth.shape[2], dec.shape[2])
    picked = torch.gather(dec, 2, match_IN[:, None, :].expand(-1, dec.shape[1], -1))
    return torch.nn.functional.cosine_similarity(picked, truth, dim=1).float()


def _check_match(name: str, m: Any, n_i: int, n: int, n_latents: int) -> None:
    if not isinstance(m, torch.Tensor) or m.ndim != 2 or m.shape != (n_i, n) \
            or m.dtype.is_floating_point or m.dtype == torch.bool:
        got = (tuple(m.shape), m.dtype) if isinstance(m, torch.Tensor) else type(m).__name__
        raise ValueError(f"{name} must be an integer tensor shaped (n_instances = {n_i}, {n}); got {got}")
    if m.numel() and (int(m.min()) < 0 or int(m.max()) >= n_latents):
        raise ValueError(f"{name} must hold latent indices in [0, {n_latents - 1}], got values in "
                         f"[{int(m.min())}, {int(m.max())}]")


def connections_in_feature_basis(W_IGF: torch.Tensor, match_1: torch.Tensor, match_2: torch.Tensor) -> torch.Tensor:
    """W restricted to matched latents and reordered by true feature: (I, N2, N1)."""
    check_tensor("W_IGF", W_IGF, ndim=3, finite=False)
    W = W_IGF.detach().cpu()
    if not isinstance(match_1, torch.Tensor) or not isinstance(match_2, torch.Tensor):
        raise ValueError("match_1 and match_2 must be (I, N) long tensors from match_latents")
    _check_match("match_1", match_1, W.shape[0], match_1.shape[-1] if match_1.ndim else 0, W.shape[2])
    _check_match("match_2", match_2, W.shape[0], match_2.shape[-1] if match_2.ndim else 0, W.shape[1])
    match_1, match_2 = match_1.cpu(), match_2.cpu()
    rows = torch.gather(W, 1, match_2[:, :, None].expand(-1, -1, W.shape[2]))
    return torch.gather(rows, 2, match_1[:, None, :].expand(-1, rows.shape[1], -1))


def score_graph(W_INM: torch.Tensor, truth_INM: torch.Tensor, *, threshold: float = 0.1) -> dict[str, list[float]]:
    """Precision and recall of the recovered edges |W| > threshold against the true edges,
    per instance: precision = TP / (TP + FP), recall = TP / (TP + FN) (1.0 when the
    denominator is 0); plus the pooled values over instances."""
    threshold = check_nonneg("threshold", threshold)
    check_tensor("W_INM", W_INM, ndim=3, nonempty=False, finite=False)
    if bool(torch.isnan(W_INM).any()):
        raise ValueError("W_INM must not contain NaN (an edge's presence would be undecided)")
    if not isinstance(truth_INM, torch.Tensor):
        raise ValueError(f"truth_INM must be a torch tensor, got {type(truth_INM).__name__}")
    if truth_INM.is_floating_point() and bool(torch.isnan(truth_INM).any()):
        raise ValueError("truth_INM must not contain NaN (its nonzero entries are the true edges)")
    if W_INM.shape != truth_INM.shape:
        raise ValueError(f"recovered and true graphs differ in shape: {tuple(W_INM.shape)} vs {tuple(truth_INM.shape)}")
    pred, true = W_INM.abs() > threshold, truth_INM.bool().to(W_INM.device)
    tp = (pred & true).sum((1, 2)).double()
    fp = (pred & ~true).sum((1, 2)).double()
    fn = (~pred & true).sum((1, 2)).double()

    def ratio(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.where(b > 0, a / b.clamp_min(1), torch.ones_like(a))

    return {"precision": ratio(tp, tp + fp).tolist(), "recall": ratio(tp, tp + fn).tolist(),
            "pooled_precision": float(ratio(tp.sum(), tp.sum() + fp.sum())),
            "pooled_recall": float(ratio(tp.sum(), tp.sum() + fn.sum())),
            "true_edges": true.sum((1, 2)).tolist(), "found_edges": pred.sum((1, 2)).tolist()}
