"""Spectra from matrix-vector products alone: Lanczos, Hutchinson and stochastic Lanczos quadrature.

* :func:`lanczos` — m steps of Lanczos (1950) with full reorthogonalisation: an orthonormal
  Q (m, n) and a tridiagonal T = Q A Qᵀ. :func:`ritz` gives its eigenvalues θ_k (Ritz values)
  and the squared first components τ_k of its eigenvectors, the nodes and weights of the Gauss
  quadrature for the spectral measure of A seen from the start vector (Golub & Meurant).
* :func:`hutchinson_trace` — tr A ≈ mean zᵀAz over random probes (Hutchinson 1989), with the
  exact single-probe variances of :func:`hutchinson_variance` (Avron & Toledo 2011).
* :func:`slq_density` — the spectral density (1/n) Σ_i δ(t − λ_i), Gaussian-broadened, by
  stochastic Lanczos quadrature (Lin, Saad & Yang 2016; Ubaru, Chen & Saad 2017; used on neural
  network Hessians by Ghorbani, Krishnan & Xiao 2019), next to :func:`exact_density`.

A matrix is a square tensor/array or a function v ↦ Av (:func:`as_matvec`), e.g. an HVP.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from toymodels._validate import check_choice, check_float, check_int

__all__ = ["PROBE_KINDS", "as_matvec", "LanczosResult", "lanczos", "tridiagonal", "ritz", "gauss_quadrature",
           "quadratic_form_moments", "ExtremeEigs", "lanczos_extreme_eigs", "lanczos_spectrum", "probe_vectors",
           "TraceEstimate", "hutchinson_samples", "hutchinson_trace", "hutchinson_variance",
           "rademacher_exact_moments", "slq_quadrature", "broadened_density", "slq_density", "exact_density",
           "numerical_rank"]

PROBE_KINDS = ("rademacher", "gaussian")
Matvec = Callable[[torch.Tensor], torch.Tensor]


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
