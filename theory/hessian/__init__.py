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

Everything is meant to run in float64; the claims check it there.

- :mod:`.hvp`      Hessian-vector products and a toy-model instance's loss as a function of θ
- :mod:`.lanczos`  Lanczos, Gauss quadrature, Hutchinson, stochastic Lanczos quadrature
- :mod:`.claims`   the registered claims (and :func:`random_symmetric`, their test matrices)

Every public name is importable from here, as before the split.
"""
from .hvp import *  # noqa: F401,F403
from .hvp import __all__ as _hvp_all
from .lanczos import *  # noqa: F401,F403
from .lanczos import __all__ as _lanczos_all
from .claims import random_symmetric  # noqa: E402  (registers the claims)

__all__ = [*_hvp_all, *_lanczos_all, "random_symmetric"]
