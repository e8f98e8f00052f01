"""Geometry of trained toy models: pure functions of the weights W (..., M, N).

Columns W_i are feature directions; Ŵ_i = W_i / ||W_i||. Formulas from Elhage et al. 2022,
"Toy Models of Superposition", sections 3–6. Every function reads W without gradient
tracking and returns detached tensors (no ``grad_fn``): pass ``model.W`` directly.
"""
from __future__ import annotations

from typing import Any

import torch

# Fractional dimensionalities that trained models stick to, and the tight frame behind each
# (k unit vectors spanning d dims: every D_i = d/k).
STICKY_DIMENSIONALITIES: dict[str, tuple[float, int]] = {
    "dedicated": (1.0, 1),
    "tetrahedron": (3 / 4, 4),
    "triangle": (2 / 3, 3),
    "antipodal pair": (1 / 2, 2),
    "pentagon": (2 / 5, 5),
    "square antiprism": (3 / 8, 8),
}


def _weights(W: torch.Tensor) -> torch.Tensor:
    """W detached, checked to be a floating tensor (..., M, N)."""
    if not isinstance(W, torch.Tensor) or W.ndim < 2 or not W.is_floating_point():
        desc = f"{W.dtype} tensor of shape {tuple(W.shape)}" if isinstance(W, torch.Tensor) else type(W).__name__
        raise ValueError(f"W must be a floating-point tensor shaped (..., M, N); got {desc}")
    return W.detach()


def feature_norms(W: torch.Tensor) -> torch.Tensor:
    """||W_i||, shape (..., N)."""
    return _weights(W).norm(dim=-2)


def _unit_columns(W: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    n = W.norm(dim=-2, keepdim=True)
    return torch.where(n > eps, W / n.clamp_min(eps), torch.zeros_like(W))


def superposition(W: torch.Tensor) -> torch.Tensor:
    """Σ_{j≠i} (Ŵ_i · W_j)², shape (..., N): how much other features project onto feature i's
    direction (0 for an orthogonal feature; 0 for a zero column).

    Ŵ_i of a feature with a negligible but nonzero norm is an arbitrary direction, so its value
    is meaningless: mask such features with :func:`feature_norms` (figures use ||W_i|| > 0.1).
    """
    W = _weights(W)
    proj = _unit_columns(W).transpose(-1, -2) @ W  # (..., N, N): Ŵ_i · W_j
    sq = proj.square()
    return sq.sum(-1) - sq.diagonal(dim1=-2, dim2=-1)


def dimensions_per_feature(W: torch.Tensor) -> torch.Tensor:
    """M / ||W||_F², shape (...): hidden dimensions per represented feature."""
    W = _weights(W)
    m = W.shape[-2]
    return m / W.square().sum(dim=(-2, -1))


def feature_dimensionality(W: torch.Tensor) -> torch.Tensor:
    """D_i = ||W_i||² / Σ_j (Ŵ_i · W_j)² (j includes i), shape (..., N).

    A feature with a dimension to itself has D_i = 1; k features forming a tight frame in d
    dims each have d/k; a zero column gets 0, never NaN. For any W, Σ_i D_i ≤ M.
    """
    W = _weights(W)
    sq_norm = W.square().sum(dim=-2)  # (..., N)
    proj = _unit_columns(W).transpose(-1, -2) @ W  # (..., N, N)
    denom = proj.square().sum(-1)  # includes j = i: ||W_i||² + superposition
    safe = denom > 1e-12 * sq_norm.amax(dim=-1, keepdim=True).clamp_min(1e-30)
    return torch.where(safe & (sq_norm > 0), sq_norm / denom.clamp_min(1e-30), torch.zeros_like(sq_norm))


def interference_groups(W: torch.Tensor, threshold: float = 0.1, norm_threshold: float = 0.1) -> list[Any]:
    """Connected groups of represented features (||W_i|| > norm_threshold) whose unit
    directions overlap, |Ŵ_i · Ŵ_j| > threshold. W is one (M, N) matrix, or a batch
    (..., M, N) such as a model's (I, M, N) weights: then one list of groups per matrix,
    nested like the batch axes (as :func:`feature_dimensionality` keeps them)."""
    W = _weights(W)
    if W.ndim > 2:
        return [interference_groups(w, threshold, norm_threshold) for w in W]
    from scipy.sparse.csgraph import connected_components

    alive = (feature_norms(W) > norm_threshold).cpu().numpy()
    u = _unit_columns(W)
    adj = ((u.T @ u).abs() > threshold).cpu().numpy() & alive[:, None] & alive[None, :]
    _, label = connected_components(adj, directed=False)  # a dead feature is a component of its own
    groups: dict[int, list[int]] = {}
    for i in range(W.shape[1]):  # by smallest member, each group ascending
        if alive[i]:
            groups.setdefault(int(label[i]), []).append(i)
    return list(groups.values())


def classify_geometry(
    W: torch.Tensor, tol: float = 0.05, threshold: float = 0.1, norm_threshold: float = 0.1
) -> list[Any]:
    """A label per feature of one (M, N) matrix: 'not represented' (||W_i|| ≤ norm_threshold),
    one of :data:`STICKY_DIMENSIONALITIES` when D_i is within ``tol`` of d/k *and* the feature's
    interference group has k members, else 'other'. A batch (..., M, N), such as a model's
    (I, M, N) weights, gives one list of labels per matrix, nested like the batch axes."""
    W = _weights(W)
    if W.ndim > 2:
        return [classify_geometry(w, tol, threshold, norm_threshold) for w in W]
    dims = feature_dimensionality(W).cpu().tolist()
    norms = feature_norms(W).cpu().tolist()
    size = {i: len(g) for g in interference_groups(W, threshold, norm_threshold) for i in g}
    labels = []
    for i, (d, nrm) in enumerate(zip(dims, norms)):
        if nrm <= norm_threshold:
            labels.append("not represented")
            continue
        label = "other"
        for name, (value, k) in STICKY_DIMENSIONALITIES.items():
            if abs(d - value) <= tol and size.get(i) == k:
                label = name
                break
        labels.append(label)
    return labels
