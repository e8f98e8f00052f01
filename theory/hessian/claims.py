"""Hessians of toy models: the claims (see ``python -m theory --only hessian``)."""
from __future__ import annotations

import itertools
import math
from typing import Any

import torch

from toymodels.data import SparseFeatures
from toymodels.device import derive_seed
from toymodels.experiments import train_tms
from toymodels.measures.linalg import random_orthogonal
from toymodels.models import TMSConfig, build_model
from toymodels.train import TrainConfig

from ..registry import Context, Result, claim, holds_if
from .hvp import ParamFlattener, explicit_hessian, hvp, toy_model_instance_loss
from .lanczos import (
    PROBE_KINDS, hutchinson_samples, hutchinson_variance, lanczos, numerical_rank, quadratic_form_moments,
    rademacher_exact_moments,
)

__all__ = ["random_symmetric"]


# ----------------------------------------------------------------------------- claims


def _torch_gen(ctx: Context, *keys: object) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(derive_seed(ctx.seed, "hessian", *keys))
    return g


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
    U = random_orthogonal(n, generator=g, dtype=torch.float64)
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
    n_enum, max_n = ctx.pick(6, 25, 60), ctx.pick(8, 12, 14)
    g = _torch_gen(ctx, "hutchinson_variance")
    worst_mean, worst_var = 0.0, 0.0
    for t in range(n_enum):
        n = int(torch.randint(1, max_n + 1, (1,), generator=g))
        A = torch.randn(n, n, generator=g, dtype=torch.float64)
        A = (A + A.T) / 2
        if t % 5 == 1:
            A = torch.diag(torch.diagonal(A))  # diagonal: zero Rademacher variance
        A = A.to(ctx.device)
        mean, var = rademacher_exact_moments(A)
        scale = float(A.square().sum()) + 1e-300
        worst_mean = max(worst_mean, abs(mean - float(torch.trace(A))) / math.sqrt(scale))
        worst_var = max(worst_var, abs(var - hutchinson_variance(A, "rademacher")) / scale)
    # empirical: many probes, compared within 5 standard errors of the sample variance
    n = ctx.pick(10, 30, 50)
    K = ctx.pick(20_000, 200_000, 1_000_000)
    A, _ = random_symmetric(n, "spread", g)
    A = (A + torch.diag(torch.rand(n, generator=g, dtype=torch.float64))).to(ctx.device)
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
    searches=True,
)
def _check_toy_model_spectrum(ctx: Context) -> Result:
    n, mh, steps, batch = ctx.pick((10, 3, 300, 512), (20, 5, 1000, 2048), (40, 8, 3000, 4096))
    model = train_tms(TMSConfig(n_features=n, d_hidden=mh, importance_decay=0.8), 0.05,
                      seed=derive_seed(ctx.seed, "hessian", "toy_model_spectrum", "train"), device=ctx.device,
                      train=TrainConfig(steps=steps, batch_size=1024, lr=3e-3, quiet=True, eval_samples=2048,
                                        log_every=100)).model
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
