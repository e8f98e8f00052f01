"""Hessians of toy models: Hessian-vector products, Lanczos, Hutchinson and stochastic Lanczos
quadrature (seed 004: the top and bottom Hessian eigenvalues, and more, come from
Hessian-vector products alone; the Hessian itself never has to be stored).

* :func:`hvp` — H(θ)·v = d/dε ∇L(θ + εv)|₀, forward-mode differentiation of the reverse-mode
  gradient (Pearlmutter 1994), through ``torch.func``; cost a small multiple of one gradient.
* :func:`lanczos` — m steps of Lanczos (1950) with full reorthogonalisation: an orthonormal
  Q (m, n) and a tridiagonal T = Q A Qᵀ. :func:`ritz` gives its eigenvalues θ_k (Ritz values)
  and the squared first components τ_k of its eigenvectors, the nodes and weights of the Gauss
  quadrature for the spectral measure of A seen from the start vector (Golub & Meurant).
* :func:`hutchinson_trace` — tr A ≈ mean zᵀAz over random probes (Hutchinson 1989), with the
  exact single-probe variances of :func:`hutchinson_variance` (Avron & Toledo 2011).
* :func:`slq_density` — the spectral density (1/n) Σ_i δ(t − λ_i), Gaussian-broadened, by
  stochastic Lanczos quadrature (Lin, Saad & Yang 2016; Ubaru, Chen & Saad 2017; used on neural
  network Hessians by Ghorbani, Krishnan & Xiao 2019), next to :func:`exact_density`.
* :func:`toy_model_instance_loss` — one instance of a trained batched toy model as a scalar
  function of that instance's flattened parameters (for ReLUOutput: W (M, N) then b (N,)),
  on a fixed batch, ready for HVPs, and for small models :func:`toy_model_loss_hessian`.

Everything is meant to run in float64; the claims below check it there.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch.func import functional_call, grad, hessian as _func_hessian, jacrev, jvp, vmap

from toymodels._validate import check_choice, check_float, check_int
from toymodels.device import derive_seed

from .registry import Context, Result, claim, holds_if

__all__ = [
    "PROBE_KINDS",
    "ParamFlattener",
    "flatten_params",
    "hvp",
    "hvp_operator",
    "explicit_hessian",
    "as_matvec",
    "LanczosResult",
    "lanczos",
    "tridiagonal",
    "ritz",
    "gauss_quadrature",
    "quadratic_form_moments",
    "ExtremeEigs",
    "lanczos_extreme_eigs",
    "lanczos_spectrum",
    "probe_vectors",
    "TraceEstimate",
    "hutchinson_samples",
    "hutchinson_trace",
    "hutchinson_variance",
    "rademacher_exact_moments",
    "slq_quadrature",
    "broadened_density",
    "slq_density",
    "exact_density",
    "numerical_rank",
    "random_symmetric",
    "InstanceLoss",
    "toy_model_instance_loss",
    "toy_model_loss_hessian",
]

PROBE_KINDS = ("rademacher", "gaussian")
Matvec = Callable[[torch.Tensor], torch.Tensor]


# ----------------------------------------------------------------------------- parameters


class ParamFlattener:
    """Turns a dict of tensors into one flat vector and back, in a fixed order.

    ``flatten`` concatenates ``p.reshape(-1)`` in the order of the template's keys (row-major
    within each tensor); ``unflatten`` is its inverse. Both work inside ``torch.func``
    transforms, so a loss of a dict can be differentiated as a loss of a flat vector.
    """

    def __init__(self, template: Mapping[str, torch.Tensor]) -> None:
        if not isinstance(template, Mapping) or not template:
            raise ValueError("a ParamFlattener needs a non-empty dict of tensors")
        for k, p in template.items():
            if not isinstance(p, torch.Tensor):
                raise ValueError(f"parameter {k!r} must be a tensor, got {type(p).__name__}")
        self.names = tuple(template)
        self.shapes = tuple(tuple(template[k].shape) for k in self.names)
        self.numels = tuple(int(math.prod(s)) for s in self.shapes)
        self.dim = int(sum(self.numels))

    def flatten(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """(dim,) vector: the tensors' entries one after another."""
        if set(params) != set(self.names):
            raise ValueError(f"expected parameters {list(self.names)}, got {list(params)}")
        for k, s in zip(self.names, self.shapes):
            if tuple(params[k].shape) != s:
                raise ValueError(f"parameter {k!r} must have shape {s}, got {tuple(params[k].shape)}")
        return torch.cat([params[k].reshape(-1) for k in self.names])

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """The dict whose :meth:`flatten` is ``flat`` (views into it)."""
        if flat.ndim != 1 or flat.shape[0] != self.dim:
            raise ValueError(f"flat parameters must have shape ({self.dim},), got {tuple(flat.shape)}")
        parts = torch.split(flat, list(self.numels))
        return {k: t.view(s) for k, t, s in zip(self.names, parts, self.shapes)}

    def slices(self) -> dict[str, slice]:
        """Where each tensor sits in the flat vector."""
        out, start = {}, 0
        for k, n in zip(self.names, self.numels):
            out[k] = slice(start, start + n)
            start += n
        return out


def flatten_params(params: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, ParamFlattener]:
    """``(flat, flattener)`` for a dict of tensors; ``flattener.unflatten(flat)`` gives them back."""
    fl = ParamFlattener(params)
    return fl.flatten(params), fl


# ----------------------------------------------------------------------------- HVPs


def _like(name: str, v: Any, ref: torch.Tensor) -> torch.Tensor:
    if not isinstance(v, torch.Tensor):
        v = torch.as_tensor(np.asarray(v, dtype=np.float64))
    if tuple(v.shape) != tuple(ref.shape):
        raise ValueError(f"{name} must have shape {tuple(ref.shape)}, got {tuple(v.shape)}")
    return v.to(device=ref.device, dtype=ref.dtype)


def hvp(loss_fn: Callable[[Any], torch.Tensor], params: Any, v: Any) -> Any:
    """Hessian-vector product H(θ)·v of a scalar loss, without forming H.

    Formula: H(θ)v = d/dε ∇L(θ + εv) at ε = 0 — the forward-mode (jvp) derivative of the
    reverse-mode gradient, "forward-over-reverse" (Pearlmutter 1994, "Fast exact multiplication
    by the Hessian"; ``torch.func.jvp(torch.func.grad(L), (θ,), (v,))``). Exact to rounding
    (no finite differences); cost a small multiple of one gradient; memory O(dim θ).

    ``params`` is a tensor (any shape; ``v`` the same shape) or a dict of tensors, in which
    case ``v`` is a dict of the same shapes (the result is a dict) or a flat vector in
    :class:`ParamFlattener` order (the result is flat). ``loss_fn`` must return a scalar and be
    written with torch operations. Use float64 for accuracy to ~1e-14.
    """
    if isinstance(params, torch.Tensor):
        v = _like("v", v, params)
        return jvp(grad(loss_fn), (params,), (v,))[1]
    if isinstance(params, Mapping):
        fl = ParamFlattener(params)
        flat_out = isinstance(v, torch.Tensor)
        if flat_out:
            if v.ndim != 1 or v.shape[0] != fl.dim:
                raise ValueError(f"a flat v must have shape ({fl.dim},) for these parameters, got {tuple(v.shape)}")
            ref = next(iter(params.values()))
            vd = fl.unflatten(v.to(device=ref.device, dtype=ref.dtype))
        elif isinstance(v, Mapping):
            if set(v) != set(fl.names):
                raise ValueError(f"v must have the keys {list(fl.names)}, got {list(v)}")
            vd = {k: _like(f"v[{k!r}]", v[k], params[k]) for k in fl.names}
        else:
            raise ValueError(f"v must be a tensor or a dict of tensors, got {type(v).__name__}")
        p = {k: params[k] for k in fl.names}
        out = jvp(grad(loss_fn), (p,), (vd,))[1]
        return fl.flatten(out) if flat_out else out
    raise ValueError(f"params must be a tensor or a dict of tensors, got {type(params).__name__}")


def hvp_operator(loss_fn: Callable[[Any], torch.Tensor], params: Any) -> Matvec:
    """v ↦ H(θ)v on flat vectors (θ a flat tensor, or a dict flattened by :class:`ParamFlattener`),
    ready for :func:`lanczos`, :func:`hutchinson_trace` and :func:`slq_density`."""
    if isinstance(params, torch.Tensor) and params.ndim != 1:
        shape = params.shape
        return lambda v: hvp(loss_fn, params, v.reshape(shape)).reshape(-1)
    return lambda v: hvp(loss_fn, params, v)


def explicit_hessian(loss_fn: Callable[[Any], torch.Tensor], params: Any, mode: str = "forward-over-reverse",
                     chunk_size: int | None = None) -> torch.Tensor:
    """The full Hessian (dim, dim) of a scalar loss in flat-parameter coordinates.

    ``mode='forward-over-reverse'`` is ``torch.func.hessian`` (jacfwd of jacrev);
    ``'reverse-over-reverse'`` is jacrev of jacrev, an independent differentiation path.
    ``chunk_size`` bounds how many columns are differentiated at once (memory for large
    batches); for forward-over-reverse it builds the columns as H e_i by :func:`hvp`.
    Memory O(dim²): for small models and for checking :func:`hvp`.
    """
    if chunk_size is not None:
        chunk_size = check_int("chunk_size", chunk_size, 1)
    check_choice("mode", mode, ("forward-over-reverse", "reverse-over-reverse"))
    if isinstance(params, Mapping):
        flat, fl = flatten_params(params)
        f = lambda t: loss_fn(fl.unflatten(t))  # noqa: E731
    elif isinstance(params, torch.Tensor):
        shape = params.shape
        flat = params.reshape(-1)
        f = lambda t: loss_fn(t.view(shape))  # noqa: E731
    else:
        raise ValueError(f"params must be a tensor or a dict of tensors, got {type(params).__name__}")
    if mode == "forward-over-reverse":
        if chunk_size is None:
            return _func_hessian(f)(flat)
        eye = torch.eye(flat.shape[0], dtype=flat.dtype, device=flat.device)
        return vmap(lambda e: jvp(grad(f), (flat,), (e,))[1], chunk_size=chunk_size)(eye)
    return jacrev(jacrev(f), chunk_size=chunk_size)(flat)


# ----------------------------------------------------------------------------- operators


def as_matvec(A: Any, dim: int | None = None) -> tuple[Matvec, int, torch.Tensor | None]:
    """``(matvec, dim, matrix)`` from a square matrix (tensor or array; ``matrix`` is it in
    float64) or from a callable v ↦ Av (``dim`` required; ``matrix`` is None).

    Raises ValueError for a non-square or non-finite matrix, a missing or wrong ``dim``.
    """
    if callable(A) and not isinstance(A, (torch.Tensor, np.ndarray)):
        if dim is None:
            raise ValueError("dim is required when A is a function v -> Av")
        return A, check_int("dim", dim, 1), None
    if isinstance(A, torch.Tensor):
        M = A.detach()
        M = M.to(torch.float64) if M.dtype != torch.float64 else M
    else:
        try:
            M = torch.as_tensor(np.asarray(A, dtype=np.float64))
        except (TypeError, ValueError):
            raise ValueError(f"A must be a square matrix or a function v -> Av, got {type(A).__name__}") from None
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise ValueError(f"A must be a square matrix, got shape {tuple(M.shape)}")
    if M.shape[0] == 0:
        raise ValueError("A must be at least 1 x 1")
    if not bool(torch.isfinite(M).all()):
        raise ValueError("A must be finite (found NaN or inf)")
    n = M.shape[0]
    if dim is not None and check_int("dim", dim, 1) != n:
        raise ValueError(f"dim = {dim} does not match the matrix size {n}")
    return (lambda v: M @ v), n, M


def _generator(generator: torch.Generator | int | None) -> torch.Generator:
    if isinstance(generator, torch.Generator):
        return generator
    g = torch.Generator()
    g.manual_seed(0 if generator is None else int(generator))
    return g


def _randn(n: int, gen: torch.Generator, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    if gen.device.type == device.type:
        return torch.randn(n, generator=gen, device=device, dtype=dtype)
    return torch.randn(n, generator=gen, device=gen.device, dtype=dtype).to(device)


# ----------------------------------------------------------------------------- Lanczos


@dataclass
class LanczosResult:
    """m Lanczos steps: T = tridiag(betas, alphas, betas) = Q A Qᵀ with Q (m, n) orthonormal rows,
    q_1 = v0/||v0||, and A q_m = β_{m-1} q_{m-1} + α_m q_m + ``beta_next`` q_{m+1}.

    A zero in ``betas`` marks a restart: the Krylov space became invariant and a fresh random
    vector orthogonal to Q continued the run (``restarts`` counts them)."""

    alphas: torch.Tensor
    betas: torch.Tensor
    beta_next: float
    Q: torch.Tensor | None = None
    restarts: int = 0

    @property
    def steps(self) -> int:
        return int(self.alphas.shape[0])

    def tridiagonal(self) -> torch.Tensor:
        return tridiagonal(self.alphas, self.betas)

    def ritz(self) -> tuple[torch.Tensor, torch.Tensor]:
        return ritz(self.alphas, self.betas)


def lanczos(
    matvec: Any,
    dim: int | None = None,
    m: int = 20,
    v0: Any = None,
    *,
    generator: torch.Generator | int | None = None,
    return_q: bool = False,
    breakdown: str = "restart",
    breakdown_tol: float = 1e-12,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device | None = None,
) -> LanczosResult:
    """m steps of the symmetric Lanczos process with full reorthogonalisation.

    Recurrence (Lanczos 1950; Golub & Van Loan, Matrix Computations, §10.1): q_1 = v0/||v0||,
    w = A q_j, α_j = q_jᵀ w, w ← w − Σ_{i<=j} q_i (q_iᵀ w) (classical Gram–Schmidt done twice,
    which keeps Q orthonormal to rounding — no ghost eigenvalues), β_j = ||w||, q_{j+1} = w/β_j.
    Then Q A Qᵀ = T = tridiag(β, α, β) exactly in exact arithmetic.

    ``matvec``: a symmetric square matrix or a function v ↦ Av on (dim,) tensors (e.g.
    :func:`hvp_operator`). ``v0``: the start vector (any nonzero scale; random Gaussian from
    ``generator`` if None). When β_j <= ``breakdown_tol``·||T||, the Krylov space is invariant:
    ``breakdown='restart'`` continues with a random vector orthogonal to Q (β_j recorded as 0,
    so with m = dim the Ritz values are the whole spectrum, multiplicities included);
    ``'stop'`` returns the shorter run. Raises ValueError for m < 1 or m > dim.
    """
    mv, n, M = as_matvec(matvec, dim)
    m = check_int("m", m, 1)
    if m > n:
        raise ValueError(f"m must be in [1, dim = {n}] (at most dim orthonormal Lanczos vectors), got {m}")
    check_choice("breakdown", breakdown, ("restart", "stop"))
    check_float("breakdown_tol", breakdown_tol, 0.0, 1.0)
    gen = _generator(generator)
    if device is None:
        device = M.device if M is not None else (v0.device if isinstance(v0, torch.Tensor) else torch.device("cpu"))
    device = torch.device(device)
    if M is not None:
        M = M.to(device=device, dtype=dtype)
        mv = lambda v: M @ v  # noqa: E731
    if v0 is None:
        q = _randn(n, gen, device, dtype)
    else:
        q = v0.detach() if isinstance(v0, torch.Tensor) else torch.as_tensor(np.asarray(v0, dtype=np.float64))
        q = q.to(device=device, dtype=dtype)
        if tuple(q.shape) != (n,):
            raise ValueError(f"v0 must have shape ({n},), got {tuple(q.shape)}")
        if not bool(torch.isfinite(q).all()):
            raise ValueError("v0 must be finite")
    nrm = torch.linalg.vector_norm(q)
    if float(nrm) == 0.0:
        raise ValueError("v0 must be nonzero")
    q = q / nrm
    Q = torch.zeros(m, n, device=device, dtype=dtype)
    alphas = torch.zeros(m, dtype=dtype)
    betas = torch.zeros(max(m - 1, 0), dtype=dtype)
    scale, restarts, beta_next, steps = 0.0, 0, 0.0, m
    for j in range(m):
        Q[j] = q
        w = mv(q)
        if tuple(w.shape) != (n,):
            raise ValueError(f"matvec must map shape ({n},) to ({n},), returned {tuple(w.shape)}")
        w = w.to(dtype)
        a = float(torch.dot(q, w))
        alphas[j] = a
        B = Q[: j + 1]
        w = w - B.T @ (B @ w)
        w = w - B.T @ (B @ w)
        b = float(torch.linalg.vector_norm(w))
        scale = max(scale, abs(a), b, abs(float(betas[j - 1])) if j > 0 else 0.0)
        if j == m - 1:
            beta_next = b
            break
        if b <= breakdown_tol * scale or b == 0.0:
            if breakdown == "stop":
                beta_next, steps = b, j + 1
                break
            restarts += 1
            z = _randn(n, gen, device, dtype)
            for _ in range(3):
                z = z - B.T @ (B @ z)
            q = z / torch.linalg.vector_norm(z)
            betas[j] = 0.0
        else:
            betas[j] = b
            q = w / b
    return LanczosResult(
        alphas=alphas[:steps].clone(),
        betas=betas[: steps - 1].clone(),
        beta_next=float(beta_next),
        Q=Q[:steps].clone() if return_q else None,
        restarts=restarts,
    )


def tridiagonal(alphas: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
    """The dense symmetric tridiagonal matrix with diagonal ``alphas`` (k,) and off-diagonal ``betas`` (k−1,)."""
    alphas = torch.as_tensor(alphas, dtype=torch.float64)
    betas = torch.as_tensor(betas, dtype=torch.float64)
    if alphas.ndim != 1 or betas.ndim != 1 or betas.shape[0] != max(alphas.shape[0] - 1, 0):
        raise ValueError(f"need alphas (k,) and betas (k-1,), got {tuple(alphas.shape)} and {tuple(betas.shape)}")
    T = torch.diag(alphas)
    if betas.numel():
        T = T + torch.diag(betas, 1) + torch.diag(betas, -1)
    return T


def ritz(alphas: torch.Tensor, betas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ritz values θ_k (ascending) and Gauss-quadrature weights τ_k of a Lanczos tridiagonal.

    With T = U diag(θ) Uᵀ, τ_k = U_{1k}² (squared first components; Σ τ_k = 1). Golub & Welsch
    (1969), Golub & Meurant: for unit v = q_1, Σ_k τ_k f(θ_k) is the k-point Gauss rule for
    vᵀ f(A) v = ∫ f dμ_v, exact for polynomials of degree <= 2k − 1.
    """
    T = tridiagonal(alphas, betas)
    theta, U = torch.linalg.eigh(T)
    return theta, U[0].square()


def gauss_quadrature(theta: torch.Tensor, tau: torch.Tensor, f: Callable[[torch.Tensor], torch.Tensor]) -> float:
    """Σ_k τ_k f(θ_k): the Lanczos estimate of vᵀ f(A) v for unit v."""
    return float((tau * f(theta)).sum())


def quadratic_form_moments(matvec: Any, v: torch.Tensor, p_max: int, dim: int | None = None) -> torch.Tensor:
    """vᵀ A^p v for p = 0..p_max, from ⌈p_max/2⌉ products: vᵀA^p v = (A^⌈p/2⌉ v)ᵀ (A^⌊p/2⌋ v)."""
    mv, n, M = as_matvec(matvec, dim if dim is not None else (v.shape[0] if callable(matvec) else None))
    p_max = check_int("p_max", p_max, 0)
    v = v.to(torch.float64)
    if M is not None:
        M = M.to(v.device)
        mv = lambda u: M @ u  # noqa: E731
    powers = [v]
    for _ in range((p_max + 1) // 2):
        powers.append(mv(powers[-1]))
    out = torch.zeros(p_max + 1, dtype=torch.float64)
    for p in range(p_max + 1):
        out[p] = torch.dot(powers[(p + 1) // 2], powers[p // 2])
    return out


@dataclass
class ExtremeEigs:
    """Extreme Ritz values of a Lanczos run and their residual bounds.

    ``largest`` descending, ``smallest`` ascending; each Ritz value θ has an eigenvalue of A within
    its ``*_bound`` = β_next·|last component of its T-eigenvector| (Parlett, The Symmetric
    Eigenvalue Problem, §13.2)."""

    largest: torch.Tensor
    smallest: torch.Tensor
    largest_bound: torch.Tensor
    smallest_bound: torch.Tensor
    steps: int


def lanczos_extreme_eigs(
    matvec: Any,
    dim: int | None = None,
    m: int = 30,
    k: int = 1,
    v0: Any = None,
    *,
    generator: torch.Generator | int | None = None,
    device: str | torch.device | None = None,
) -> ExtremeEigs:
    """The k largest and k smallest eigenvalues of symmetric A from m Lanczos steps (see :func:`lanczos`).

    Ritz values lie inside [λ_min, λ_max] and approach the extremes first (Kaniel–Paige
    bounds); each comes with an a-posteriori residual bound."""
    res = lanczos(matvec, dim, m, v0, generator=generator, device=device)
    T = res.tridiagonal()
    theta, U = torch.linalg.eigh(T)
    bound = abs(res.beta_next) * U[-1].abs()
    k = check_int("k", k, 1, res.steps)
    return ExtremeEigs(
        largest=theta.flip(0)[:k], smallest=theta[:k],
        largest_bound=bound.flip(0)[:k], smallest_bound=bound[:k], steps=res.steps,
    )


def lanczos_spectrum(matvec: Any, dim: int | None = None, *, generator: torch.Generator | int | None = None,
                     device: str | torch.device | None = None) -> torch.Tensor:
    """All dim eigenvalues (ascending) of symmetric A from dim Lanczos steps with restarts on
    breakdown: Q is then a full orthonormal basis and T = Q A Qᵀ is similar to A, so its
    eigenvalues are A's, multiplicities included, from dim matrix-vector products."""
    _, n, _ = as_matvec(matvec, dim)
    res = lanczos(matvec, n, n, None, generator=generator, device=device)
    return torch.linalg.eigvalsh(res.tridiagonal())


# ----------------------------------------------------------------------------- Hutchinson


def probe_vectors(n_probes: int, dim: int, kind: str = "rademacher", generator: torch.Generator | int | None = None,
                  dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> torch.Tensor:
    """(n_probes, dim) probes with E[z zᵀ] = I: random signs (``rademacher``) or N(0, 1) (``gaussian``)."""
    n_probes, dim = check_int("n_probes", n_probes, 1), check_int("dim", dim, 1)
    check_choice("kind", kind, PROBE_KINDS)
    gen = _generator(generator)
    if kind == "rademacher":
        z = torch.randint(0, 2, (n_probes, dim), generator=gen, device=gen.device).to(dtype) * 2 - 1
    else:
        z = torch.randn(n_probes, dim, generator=gen, device=gen.device, dtype=dtype)
    return z.to(device)


def hutchinson_samples(matvec: Any, dim: int | None = None, n_probes: int = 100, kind: str = "rademacher",
                       generator: torch.Generator | int | None = None,
                       device: str | torch.device | None = None) -> torch.Tensor:
    """zᵀAz for n_probes independent probes (n_probes,); each has mean tr A. Probes live on
    ``device`` (default: the matrix's, or the CPU for a function)."""
    mv, n, M = as_matvec(matvec, dim)
    dev = torch.device(device) if device is not None else (M.device if M is not None else torch.device("cpu"))
    if M is not None:
        M = M.to(dev)
    Z = probe_vectors(n_probes, n, kind, generator, device=dev)
    if M is not None:
        return ((Z @ M) * Z).sum(dim=1)
    return torch.stack([torch.dot(z, mv(z).to(device=z.device, dtype=z.dtype)) for z in Z])


@dataclass
class TraceEstimate:
    """Hutchinson's estimate of tr A: the probe mean, its standard error, the samples."""

    estimate: float
    std_error: float
    samples: torch.Tensor

    def __float__(self) -> float:
        return self.estimate


def hutchinson_trace(matvec: Any, dim: int | None = None, n_probes: int = 100, kind: str = "rademacher",
                     generator: torch.Generator | int | None = None,
                     device: str | torch.device | None = None) -> TraceEstimate:
    """tr A ≈ (1/K) Σ_k z_kᵀ A z_k with E[z zᵀ] = I (Hutchinson 1989): unbiased, with single-probe
    variance :func:`hutchinson_variance`, so the K-probe estimate has variance that over K.
    ``kind``: ``rademacher`` (random signs) or ``gaussian``."""
    s = hutchinson_samples(matvec, dim, n_probes, kind, generator, device).cpu()
    se = float(s.std(unbiased=True) / math.sqrt(len(s))) if len(s) > 1 else math.inf
    return TraceEstimate(float(s.mean()), se, s)


def _square_matrix(name: str, A: Any) -> torch.Tensor:
    _, _, M = as_matvec(A)
    return M


def hutchinson_variance(A: Any, kind: str = "rademacher") -> float:
    """Exact variance of one probe's zᵀAz (Hutchinson 1989; Avron & Toledo 2011, JACM 58(2)).

    With S = (A + Aᵀ)/2 (zᵀAz = zᵀSz): Rademacher Var = 2(||S||_F² − Σ_i S_ii²) (the diagonal is
    read exactly: z_i² = 1); Gaussian Var = 2||S||_F² = 2 Σ λ_i(S)². For symmetric A, S = A.
    """
    check_choice("kind", kind, PROBE_KINDS)
    M = _square_matrix("A", A)
    S = 0.5 * (M + M.T)
    fro2 = float(S.square().sum())
    if kind == "gaussian":
        return 2.0 * fro2
    return 2.0 * (fro2 - float(torch.diagonal(S).square().sum()))


def rademacher_exact_moments(A: Any) -> tuple[float, float]:
    """(mean, variance) of zᵀAz over all 2^n sign vectors, by enumeration (n <= 20)."""
    M = _square_matrix("A", A)
    n = M.shape[0]
    if n > 20:
        raise ValueError(f"enumerating 2^n sign vectors needs n <= 20, got {n}")
    idx = torch.arange(2**n, device=M.device)
    bits = (idx[:, None] >> torch.arange(n, device=M.device)) & 1
    Z = bits.to(torch.float64) * 2 - 1
    q = ((Z @ M) * Z).sum(dim=1)
    mean = float(q.mean())
    return mean, float((q - mean).square().mean())


# ----------------------------------------------------------------------------- spectral density


def slq_quadrature(matvec: Any, dim: int | None = None, m: int = 30, n_probes: int = 10, kind: str = "rademacher",
                   generator: torch.Generator | int | None = None,
                   device: str | torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stochastic Lanczos quadrature nodes and weights, each (n_probes, m).

    For probes z_l normalised to unit length, m Lanczos steps give Ritz values θ_k^(l) and
    weights τ_k^(l); E[z_lᵀ f(A) z_l / ||z_l||²] = tr f(A)/n for Rademacher probes (exactly
    1/n · tr for Gaussian too, by rotation invariance), so the measure Σ_l Σ_k (τ_k^(l)/n_probes)
    δ(t − θ_k^(l)) estimates the spectral density (1/n) Σ_i δ(t − λ_i) (Ubaru, Chen & Saad 2017).
    The weights returned already include the 1/n_probes and sum to 1.
    """
    mv, n, M = as_matvec(matvec, dim)
    Z = probe_vectors(check_int("n_probes", n_probes, 1), n, kind, generator)
    gen = _generator(generator)
    nodes, weights = [], []
    for z in Z:
        res = lanczos(M if M is not None else mv, n, m, z, generator=gen, device=device)
        th, tau = res.ritz()
        nodes.append(th)
        weights.append(tau / len(Z))
    return torch.stack(nodes), torch.stack(weights)


def broadened_density(nodes: Any, weights: Any, grid: Any, sigma: float) -> torch.Tensor:
    """Σ_j w_j · N(t; x_j, σ²) on ``grid``: a weighted point measure smoothed by a Gaussian of width σ."""
    sigma = check_float("sigma", sigma, 0.0, math.inf, lo_open=True)
    x = torch.as_tensor(nodes, dtype=torch.float64).reshape(-1).cpu()
    w = torch.as_tensor(weights, dtype=torch.float64).reshape(-1).cpu()
    t = torch.as_tensor(grid, dtype=torch.float64).reshape(-1).cpu()
    if x.shape != w.shape:
        raise ValueError(f"nodes and weights must have the same size, got {x.numel()} and {w.numel()}")
    k = torch.exp(-0.5 * ((t[:, None] - x[None, :]) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    return k @ w


def slq_density(matvec: Any, dim: int | None = None, m: int = 30, n_probes: int = 10, grid: Any = None,
                sigma: float = 0.01, kind: str = "rademacher", generator: torch.Generator | int | None = None,
                device: str | torch.device | None = None) -> torch.Tensor:
    """The Gaussian-broadened spectral density φ_σ(t) = (1/n) Σ_i N(t; λ_i, σ²) estimated by
    stochastic Lanczos quadrature: Σ_l Σ_k (τ_k^(l)/n_probes) N(t; θ_k^(l), σ²) (see
    :func:`slq_quadrature`; Lin, Saad & Yang 2016, SIAM Review 58(1); Ghorbani et al. 2019).
    Integrates to 1 over the real line. ``grid`` is required."""
    if grid is None:
        raise ValueError("grid (the points t at which to evaluate the density) is required")
    nodes, weights = slq_quadrature(matvec, dim, m, n_probes, kind, generator, device)
    return broadened_density(nodes, weights, grid, sigma)


def exact_density(eigenvalues: Any, grid: Any, sigma: float) -> torch.Tensor:
    """φ_σ(t) = (1/n) Σ_i N(t; λ_i, σ²) from the full eigendecomposition (the reference for SLQ)."""
    ev = torch.as_tensor(eigenvalues, dtype=torch.float64).reshape(-1)
    if ev.numel() == 0:
        raise ValueError("need at least one eigenvalue")
    return broadened_density(ev, torch.full_like(ev, 1.0 / ev.numel()), grid, sigma)


def numerical_rank(eigenvalues: Any, rtol: float = 1e-8, atol: float = 0.0) -> int:
    """#{i : |λ_i| > max(atol, rtol · max_j |λ_j|)} — the numerical rank of a symmetric matrix from its
    eigenvalues (singular values |λ_i| against a threshold relative to the largest, as in
    Golub & Van Loan §5.4.1 and ``numpy.linalg.matrix_rank``)."""
    rtol = check_float("rtol", rtol, 0.0, math.inf)
    atol = check_float("atol", atol, 0.0, math.inf)
    a = torch.as_tensor(eigenvalues, dtype=torch.float64).abs().reshape(-1)
    if a.numel() == 0:
        return 0
    thr = max(atol, rtol * float(a.max()))
    return int((a > thr).sum())


# ----------------------------------------------------------------------------- toy models


@dataclass
class InstanceLoss:
    """One instance's loss as a function of its flat parameters, with HVPs and the Hessian."""

    fn: Callable[[torch.Tensor], torch.Tensor]
    params: torch.Tensor
    flattener: ParamFlattener

    @property
    def dim(self) -> int:
        return int(self.params.shape[0])

    def __call__(self, flat: torch.Tensor | None = None) -> torch.Tensor:
        return self.fn(self.params if flat is None else flat)

    def grad(self) -> torch.Tensor:
        return grad(self.fn)(self.params)

    def hvp(self, v: torch.Tensor) -> torch.Tensor:
        """H·v (see :func:`hvp`)."""
        return hvp(self.fn, self.params, v)

    def hessian(self, mode: str = "forward-over-reverse", chunk_size: int | None = None) -> torch.Tensor:
        """The explicit (dim, dim) Hessian (see :func:`explicit_hessian`)."""
        return explicit_hessian(self.fn, self.params, mode, chunk_size)


def toy_model_instance_loss(model: torch.nn.Module, instance: int, x: torch.Tensor,
                            dtype: torch.dtype = torch.float64) -> InstanceLoss:
    """The loss of one instance of a batched toymodels model as a function of that instance's
    flattened parameters, on the fixed batch ``x``.

    L(θ) = mean_{b, i} I_i (t_i(x_b) − x'_i(x_b; θ))², the per-instance loss of
    ``model.loss`` (Elhage et al. 2022, eq. 2), with θ the instance's slice of every parameter
    concatenated in ``named_parameters`` order — for ReLUOutput θ = (W (M, N) row-major, b (N,)),
    dim = M·N + N. The model's own forward is reused through ``torch.func.functional_call`` with
    the instance's parameters given a leading axis of 1, in ``dtype`` (float64 by default).
    ``x``: (B, N), or (1 or I, B, N) (the instance's slice is used).
    """
    if not (hasattr(model, "importance") and hasattr(model, "target") and hasattr(model, "n_instances")):
        raise ValueError("model must be a batched toymodels model (with importance, target and n_instances)")
    n_inst = int(model.n_instances)
    instance = check_int("instance", instance, 0, n_inst - 1)
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a tensor, got {type(x).__name__}")
    if x.ndim == 3:
        if x.shape[0] not in (1, n_inst):
            raise ValueError(f"x has {x.shape[0]} instances; the model has {n_inst}")
        x = x[instance if x.shape[0] > 1 else 0]
    if x.ndim != 2:
        raise ValueError(f"x must be (B, N) or (I, B, N), got shape {tuple(x.shape)}")
    params = {name: p.detach()[instance].to(dtype) for name, p in model.named_parameters()}
    x = x.detach().to(device=next(iter(params.values())).device, dtype=dtype)
    imp_all = model.importance
    imp = imp_all[instance if imp_all.shape[0] > 1 else 0].detach().to(dtype)
    tgt = model.target(x[None]).to(dtype)
    flat, fl = flatten_params(params)

    def fn(theta: torch.Tensor) -> torch.Tensor:
        p = {k: v.unsqueeze(0) for k, v in fl.unflatten(theta).items()}
        out = functional_call(model, p, (x[None],))
        return (imp * (tgt - out).square()).mean()

    return InstanceLoss(fn, flat, fl)


def toy_model_loss_hessian(model: torch.nn.Module, instance: int, x: torch.Tensor,
                           dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The explicit (dim, dim) loss Hessian of one instance (see :func:`toy_model_instance_loss`),
    by ``torch.func.hessian``. For small models: memory O(dim²)."""
    return toy_model_instance_loss(model, instance, x, dtype).hessian()


# ----------------------------------------------------------------------------- claims


def _torch_gen(ctx: Context, *keys: object) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(derive_seed(ctx.seed, "hessian", *keys))
    return g


def _random_orthogonal(n: int, g: torch.Generator) -> torch.Tensor:
    Qm, R = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return Qm * torch.sign(torch.diagonal(R))


def random_symmetric(n: int, spectrum: str, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, eigenvalues): A = U diag(λ) Uᵀ with Haar U and max |λ| = 1; ``spectrum`` is one of
    ``spread`` (uniform in [−1, 1]), ``repeated`` (a few distinct values), ``zeros`` (half of
    them 0), ``clustered`` (tight clusters), ``psd`` (in [0, 1])."""
    u = torch.rand(n, generator=g, dtype=torch.float64)
    if spectrum == "spread":
        lam = 2 * u - 1
    elif spectrum == "repeated":
        vals = torch.tensor([-0.7, 0.2, 0.2, 1.0], dtype=torch.float64)
        lam = vals[torch.randint(0, 4, (n,), generator=g)]
    elif spectrum == "zeros":
        lam = (2 * u - 1) * (torch.arange(n) % 2 == 0)
    elif spectrum == "clustered":
        centres = torch.tensor([-1.0, 0.0, 0.5], dtype=torch.float64)
        lam = centres[torch.randint(0, 3, (n,), generator=g)] + 1e-3 * u
    elif spectrum == "psd":
        lam = u
    else:
        raise ValueError(f"unknown spectrum {spectrum!r}")
    if float(lam.abs().max()) == 0.0:
        lam[0] = 1.0
    lam = lam / lam.abs().max()
    U = _random_orthogonal(n, g)
    A = (U * lam) @ U.T
    return 0.5 * (A + A.T), lam


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(a - b) / max(float(torch.linalg.vector_norm(b)), 1e-300))


@claim(
    "hessian.hvp_exact",
    status="proven",
    statement="""A Hessian-vector product computed by differentiating the gradient in the direction v
    (forward mode over reverse mode, Pearlmutter's method) equals the explicit product H·v to rounding:
    in float64 the relative error is below 1e-8 for random smooth losses (cubic polynomials,
    log-cosh plus quartic terms, losses of several parameter tensors) and for the loss of one instance
    of a ReLU-output toy model, and it needs only O(dim) memory, never the dim x dim Hessian.""",
    source="Seed 004 (Hessian eigenvalues from Jacobian-vector products, without the Hessian in memory); "
    "Pearlmutter 1994, 'Fast exact multiplication by the Hessian', Neural Computation 6(1).",
)
def _check_hvp_exact(ctx: Context) -> Result:
    g = _torch_gen(ctx, "hvp_exact")
    dev = ctx.device
    trials = ctx.pick(3, 12, 40)
    tol = 1e-8
    worst = {"cubic_vs_analytic": 0.0, "logcosh_vs_analytic": 0.0, "dict_vs_explicit": 0.0,
             "toy_model_vs_explicit": 0.0, "toy_loss_vs_model": 0.0, "large_dim_vs_analytic": 0.0}

    def rnd(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64).to(dev)

    for t in range(trials):
        d = int(torch.randint(2, 25, (1,), generator=g))
        x0, v = rnd(d), rnd(d)
        # cubic: f = ½xᵀAx + (1/6) Σ C_ijk x_i x_j x_k + cᵀx, H = A_sym + C·x
        A, c = rnd(d, d), rnd(d)
        C = rnd(d, d, d)
        C = sum(C.permute(*p) for p in itertools.permutations(range(3))) / 6
        f = lambda x: 0.5 * x @ A @ x + torch.einsum("ijk,i,j,k->", C, x, x, x) / 6 + c @ x  # noqa: E731
        H = 0.5 * (A + A.T) + torch.einsum("ijk,k->ij", C, x0)
        worst["cubic_vs_analytic"] = max(worst["cubic_vs_analytic"], _rel_err(hvp(f, x0, v), H @ v))
        # log-cosh + quartic: f = Σ log cosh(Bx) + ¼(xᵀx)², H = Bᵀ diag(sech²(Bx)) B + (xᵀx) I + 2 x xᵀ
        Bm = rnd(d + 3, d)
        f2 = lambda x: torch.log(torch.cosh(Bm @ x)).sum() + 0.25 * (x @ x) ** 2  # noqa: E731
        s2 = 1 / torch.cosh(Bm @ x0) ** 2
        H2 = Bm.T @ (s2[:, None] * Bm) + (x0 @ x0) * torch.eye(d, dtype=torch.float64, device=dev) + 2 * torch.outer(x0, x0)
        worst["logcosh_vs_analytic"] = max(worst["logcosh_vs_analytic"], _rel_err(hvp(f2, x0, v), H2 @ v))
        # a loss of two tensors: dict params, flat and dict v, vs jacrev-of-jacrev
        a, b = int(torch.randint(1, 5, (1,), generator=g)), int(torch.randint(1, 5, (1,), generator=g))
        P = {"W": rnd(a, b), "u": rnd(b)}
        f3 = lambda p: torch.tanh(p["W"] @ p["u"]).square().sum() + torch.sin(p["u"]).sum() * (p["W"] ** 2).sum()  # noqa: E731
        Hd = explicit_hessian(f3, P, mode="reverse-over-reverse")
        vf = rnd(a * b + b)
        worst["dict_vs_explicit"] = max(worst["dict_vs_explicit"], _rel_err(hvp(f3, P, vf), Hd @ vf))
        vd = ParamFlattener(P).unflatten(vf)
        worst["dict_vs_explicit"] = max(worst["dict_vs_explicit"], _rel_err(ParamFlattener(P).flatten(hvp(f3, P, vd)), Hd @ vf))

    # a toy model instance (random weights, random biases so that some ReLUs are off)
    from toymodels.data import SparseFeatures
    from toymodels.models import TMSConfig, build_model

    for t in range(ctx.pick(1, 3, 6)):
        n, mh = int(torch.randint(3, 13, (1,), generator=g)), int(torch.randint(1, 4, (1,), generator=g))
        mh = min(mh, n)
        model = build_model(TMSConfig(n_features=n, d_hidden=mh, n_instances=2, importance_decay=0.8),
                            seed=derive_seed(ctx.seed, "hvp_model", t) % 2**31, device=dev)
        with torch.no_grad():
            model.b_IN.copy_(0.3 * torch.randn(tuple(model.b_IN.shape), generator=g).to(model.b_IN))
        x = SparseFeatures(n, 0.3, seed=t, device=dev).sample(256)
        il = toy_model_instance_loss(model, 1, x)
        with torch.no_grad():
            lm = float(model.loss(x)[1])
        worst["toy_loss_vs_model"] = max(worst["toy_loss_vs_model"], abs(float(il().detach()) - lm) / max(lm, 1e-30))
        Ht = il.hessian(mode="reverse-over-reverse")
        vt = rnd(il.dim)
        worst["toy_model_vs_explicit"] = max(worst["toy_model_vs_explicit"], _rel_err(il.hvp(vt), Ht @ vt))

    # large dim: f = Σ log cosh(x_i) + (uᵀx)³/6, H = diag(sech² x) + (uᵀx) u uᵀ — H itself would need dim²·8 bytes
    big = ctx.pick(20_000, 200_000, 1_000_000)
    u, x0, v = rnd(big) / math.sqrt(big), rnd(big), rnd(big)
    f4 = lambda x: torch.log(torch.cosh(x)).sum() + (u @ x) ** 3 / 6  # noqa: E731
    Hv = v / torch.cosh(x0) ** 2 + (u @ x0) * (u @ v) * u
    worst["large_dim_vs_analytic"] = _rel_err(hvp(f4, x0, v), Hv)
    # float32 loss of the model vs float64: only the float64 HVP is held to 1e-8
    gate = {k: val for k, val in worst.items() if k != "toy_loss_vs_model"}
    ok = max(gate.values()) < tol and worst["toy_loss_vs_model"] < 1e-5
    return Result(
        verdict=holds_if(ok),
        predicted={"relative_error": 0.0},
        observed={"max_relative_error": max(gate.values()), **worst},
        tolerance={"relative_error": tol, "toy_loss_vs_model (float32 model)": 1e-5},
        detail=(f"{trials} random cubic and log-cosh+quartic losses vs their analytic Hessians, {trials} two-tensor "
                f"losses and {ctx.pick(1, 3, 6)} ReLU-output toy-model instances vs the explicit Hessian by "
                f"reverse-over-reverse differentiation (an independent path); plus one dim = {big:,} loss whose "
                f"Hessian would take {big * big * 8 / 2**30:,.0f} GiB, checked against its analytic H·v. "
                f"Worst relative error {max(gate.values()):.2e}."),
    )


@claim(
    "hessian.lanczos_moments",
    status="proven",
    statement="""After m Lanczos steps on a symmetric matrix A from a unit vector v, the Ritz values θ_k
    (eigenvalues of the tridiagonal T) and weights τ_k (squared first components of T's eigenvectors)
    form an m-point Gauss quadrature for the spectral measure of A seen from v: Σ_k τ_k θ_k^p = vᵀA^p v
    for every p <= 2m − 1. At p = 2m the rule is off by exactly (β_1 β_2 ⋯ β_m)², the squared product of
    the off-diagonals and the final residual norm, so it fails there unless the Krylov space is invariant.""",
    source="Golub & Meurant, 'Matrices, moments and quadrature' (1994) and Matrices, Moments and Quadrature "
    "with Applications (2010), ch. 6; Golub & Welsch 1969. Seed 004 (Hessian spectra from Lanczos).",
)
def _check_lanczos_moments(ctx: Context) -> Result:
    g = _torch_gen(ctx, "lanczos_moments")
    trials = ctx.pick(10, 120, 600)
    spectra = ("spread", "repeated", "zeros", "clustered", "psd")
    tol, tol_gap = 1e-10, 1e-8
    worst, worst_gap, failed_at_2m, invariant = 0.0, 0.0, 0, 0
    worst_where = ""
    for t in range(trials):
        n = int(torch.randint(2, ctx.pick(20, 40, 60), (1,), generator=g))
        m = int(torch.randint(1, min(n, 14) + 1, (1,), generator=g))
        kind = spectra[t % len(spectra)]
        A, _ = random_symmetric(n, kind, g)
        A = A.to(ctx.device)
        v = torch.randn(n, generator=g, dtype=torch.float64).to(ctx.device)
        v = v / v.norm()
        res = lanczos(A, m=m, v0=v, generator=g)
        theta, tau = res.ritz()
        exact = quadratic_form_moments(A, v, 2 * m)
        quad = torch.stack([(tau * theta.pow(p)).sum() for p in range(2 * m + 1)])
        err = (quad - exact).abs()  # ||A||₂ = ||v|| = 1, so this is relative to ||A||₂^p ||v||²
        e = float(err[: 2 * m].max())
        if e > worst:
            worst, worst_where = e, f"n={n}, m={m}, {kind}"
        if res.restarts or res.steps < m:
            invariant += 1
        gap_pred = float(torch.prod(torch.cat([res.betas, torch.tensor([res.beta_next], dtype=torch.float64)])) ** 2)
        gap_obs = float(exact[2 * m] - quad[2 * m])
        worst_gap = max(worst_gap, abs(gap_obs - gap_pred))
        failed_at_2m += int(abs(gap_obs) > tol)
    ok = worst <= tol and worst_gap <= tol_gap
    return Result(
        verdict=holds_if(ok),
        predicted={"moment_error_p<=2m-1": 0.0, "error_at_p=2m": "(β_1⋯β_m)²"},
        observed={"max_moment_error_p<=2m-1": worst, "max_|gap_2m - (β_1⋯β_m)²|": worst_gap,
                  "trials_failing_at_p=2m": failed_at_2m, "trials": trials},
        tolerance={"moments (relative to ||A||^p ||v||²)": tol, "gap at 2m": tol_gap},
        detail=(f"{trials} random symmetric matrices (n up to {ctx.pick(19, 39, 59)}; spectra spread, repeated, "
                f"half zero, clustered, PSD; ||A||₂ = 1), m from 1 to 14, unit start vector. Worst error for "
                f"p <= 2m−1: {worst:.2e} ({worst_where}). At p = 2m the rule missed by more than {tol:g} in "
                f"{failed_at_2m}/{trials} trials, always by (β_1⋯β_m)² (worst mismatch {worst_gap:.1e}); "
                f"{invariant} runs hit an invariant Krylov space, where the rule is exact for every p."),
    )


@claim(
    "hessian.hutchinson_variance",
    status="proven",
    statement="""For symmetric A, Hutchinson's one-probe estimate zᵀAz of tr A is unbiased with variance
    2(||A||_F² − Σ_i A_ii²) for random-sign (Rademacher) probes and 2||A||_F² for standard Gaussian
    probes: exactly, over all 2^n sign vectors, and empirically over many random probes.""",
    source="Hutchinson 1989, 'A stochastic estimator of the trace of the influence matrix', Comm. Stat. "
    "Simul. Comput. 18(3); Avron & Toledo 2011, JACM 58(2). Seed 004 (Hessian traces from HVPs).",
)
def _check_hutchinson_variance(ctx: Context) -> Result:
    g = _torch_gen(ctx, "hutchinson_variance")
    dev = ctx.device
    n_enum = ctx.pick(6, 25, 60)
    max_n = ctx.pick(8, 12, 14)
    worst_mean, worst_var = 0.0, 0.0
    for t in range(n_enum):
        n = int(torch.randint(1, max_n + 1, (1,), generator=g))
        A = torch.randn(n, n, generator=g, dtype=torch.float64)
        A = (A + A.T) / 2
        if t % 5 == 1:
            A = torch.diag(torch.diagonal(A))  # diagonal: zero Rademacher variance
        A = A.to(dev)
        mean, var = rademacher_exact_moments(A)
        scale = float(A.square().sum()) + 1e-300
        worst_mean = max(worst_mean, abs(mean - float(torch.trace(A))) / math.sqrt(scale))
        worst_var = max(worst_var, abs(var - hutchinson_variance(A, "rademacher")) / scale)
    # empirical: many probes, compared within 5 standard errors of the sample variance
    n = ctx.pick(10, 30, 50)
    K = ctx.pick(20_000, 200_000, 1_000_000)
    A, _ = random_symmetric(n, "spread", g)
    A = (A + torch.diag(torch.rand(n, generator=g, dtype=torch.float64))).to(dev)
    emp: dict[str, Any] = {}
    z_scores = []
    for kind in PROBE_KINDS:
        s = hutchinson_samples(A, n_probes=K, kind=kind, generator=g)
        mu, var = float(s.mean()), float(s.var(unbiased=True))
        c = s - mu
        se_var = math.sqrt(max(float(c.pow(4).mean()) - var**2, 0.0) / K)
        se_mu = math.sqrt(var / K)
        pred = hutchinson_variance(A, kind)
        z_scores += [abs(var - pred) / se_var, abs(mu - float(torch.trace(A))) / se_mu]
        emp[kind] = {"predicted_var": pred, "empirical_var": var, "z_var": abs(var - pred) / se_var,
                     "z_mean": abs(mu - float(torch.trace(A))) / se_mu}
    ok = worst_mean < 1e-10 and worst_var < 1e-10 and max(z_scores) < 5.0
    return Result(
        verdict=holds_if(ok),
        predicted={"rademacher": emp["rademacher"]["predicted_var"], "gaussian": emp["gaussian"]["predicted_var"],
                   "enumeration_error": 0.0},
        observed={"rademacher": emp["rademacher"]["empirical_var"], "gaussian": emp["gaussian"]["empirical_var"],
                  "enumeration_var_error": worst_var, "enumeration_mean_error": worst_mean,
                  "max_z": max(z_scores)},
        tolerance={"enumeration (relative to ||A||_F²)": 1e-10, "empirical": "5 standard errors"},
        detail=(f"Exact: all 2^n sign vectors for {n_enum} random symmetric matrices with n <= {max_n} (every fifth "
                f"diagonal, variance 0): mean = tr A and variance = formula to {max(worst_mean, worst_var):.1e}. "
                f"Empirical: {K:,} probes of each kind on one {n}x{n} matrix; sample variances within "
                f"{max(z_scores):.2f} standard errors of the formulas (and means of tr A)."),
    )


def _trained_toy_model(n: int, m: int, steps: int, p: float, decay: float, device: torch.device, seed: int = 0):
    from toymodels.data import SparseFeatures
    from toymodels.models import TMSConfig, build_model
    from toymodels.train import TrainConfig, train

    model = build_model(TMSConfig(n_features=n, d_hidden=m, importance_decay=decay), seed=seed, device=device)
    src = SparseFeatures(n, p, seed=seed + 1, device=device)
    train(model, src, TrainConfig(steps=steps, batch_size=1024, lr=3e-3, quiet=True, eval_samples=2048, log_every=100))
    return model


@claim(
    "hessian.toy_model_spectrum",
    status="empirical",
    statement="""For a trained ReLU-output toy model (one instance, loss on a fixed batch, float64), Lanczos
    from Hessian-vector products alone recovers the loss Hessian's spectrum as computed by
    torch.linalg.eigvalsh of the explicit Hessian: the top eigenvalues within 1e-8 of the spectral norm
    after at most half as many steps as there are parameters, the bottom eigenvalue (which sits next to
    a cluster of near-zero eigenvalues and converges last) and every other eigenvalue within 1e-8 of
    the spectral norm after a full run (dim steps, restarted on breakdown), and hence the numerical
    rank at every relative tolerance tried. Every intermediate Ritz value lies inside the spectrum.""",
    source="Seed 004 (top/bottom Hessian eigenvalues and the rank without the Hessian in memory); "
    "Ghorbani, Krishnan & Xiao 2019, 'An investigation into neural net optimization via Hessian "
    "eigenvalue density'; Parlett, The Symmetric Eigenvalue Problem (interlacing of Ritz values).",
)
def _check_toy_model_spectrum(ctx: Context) -> Result:
    n, mh, steps, batch = ctx.pick((10, 3, 300, 512), (20, 5, 1000, 2048), (40, 8, 3000, 4096))
    model = _trained_toy_model(n, mh, steps, 0.05, 0.8, ctx.device, seed=ctx.seed)
    from toymodels.data import SparseFeatures

    x = SparseFeatures(n, 0.05, seed=derive_seed(ctx.seed, "hessian_batch") % 2**31, device=ctx.device).sample(batch)
    il = toy_model_instance_loss(model, 0, x)
    H = il.hessian(chunk_size=64 if il.dim > 200 else None)
    ev = torch.linalg.eigvalsh(0.5 * (H + H.T)).cpu()
    hnorm = float(ev.abs().max())
    g = _torch_gen(ctx, "toy_model_spectrum")
    dim, k, tol = il.dim, 3, 1e-8
    res = lanczos(il.hvp, dim, dim, generator=g, device=ctx.device)  # its first j steps are the j-step run
    T = res.tridiagonal()
    top_steps = bottom_steps = None
    outside = 0.0
    for j in range(1, dim + 1):
        th = torch.linalg.eigvalsh(T[:j, :j])
        outside = max(outside, float(ev[0] - th[0]) / hnorm, float(th[-1] - ev[-1]) / hnorm)
        kk = min(k, j)
        if top_steps is None and float((th.flip(0)[:kk] - ev.flip(0)[:kk]).abs().max()) / hnorm < tol and kk == k:
            top_steps, top_ritz = j, th.flip(0)[:k]
        if bottom_steps is None and abs(float(th[0] - ev[0])) / hnorm < tol:
            bottom_steps = j
    full = torch.linalg.eigvalsh(T)
    full_err = float((full - ev).abs().max()) / hnorm
    rtols = (1e-2, 1e-3, 1e-4, 1e-6)
    rank_exact = {str(r): numerical_rank(ev, r) for r in rtols}
    rank_lanczos = {str(r): numerical_rank(full, r) for r in rtols}
    margin = min(float((ev.abs() - r * hnorm).abs().min()) / hnorm for r in rtols)
    ok = (
        top_steps is not None and top_steps <= max(k, dim // 2)
        and bottom_steps is not None and full_err < tol and outside <= tol and rank_exact == rank_lanczos
    )
    return Result(
        verdict=holds_if(ok),
        predicted={"top": ev.flip(0)[:k].tolist(), "bottom": float(ev[0]), "rank": rank_exact},
        observed={"top": top_ritz.tolist() if top_steps else None, "bottom": float(full[0]), "rank": rank_lanczos,
                  "steps_top": top_steps, "steps_bottom": bottom_steps, "max_error_full_run": full_err},
        tolerance={"eigenvalues (relative to ||H||₂)": tol, "steps_top": f"<= dim/2 = {max(k, dim // 2)}",
                   "rank": "equal"},
        detail=(f"ReLU-output toy model n={n}, m={mh} (dim {dim}), {steps} Adam steps at feature probability 0.05, "
                f"importance 0.8^i; Hessian on a fixed batch of {batch}, ||H|| = {hnorm:.3g}, spectrum "
                f"[{float(ev[0]):.2e}, {float(ev[-1]):.2e}]. Lanczos reached the top {k} eigenvalues after "
                f"{top_steps} steps and the bottom one after {bottom_steps} of {dim}; the full run matches every "
                f"eigenvalue to {full_err:.1e}·||H||, and no intermediate Ritz value left the spectrum by more "
                f"than {max(outside, 0.0):.1e}·||H||. Ranks at rtol {list(rtols)}: {list(rank_exact.values())} "
                f"(the eigenvalue nearest a threshold is {margin:.1e}·||H|| from it)."),
    )
