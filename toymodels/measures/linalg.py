"""Small linear-algebra helpers shared by the package, theory checks and figures."""
from __future__ import annotations

import torch

from .._validate import check_int


def random_orthogonal(
    d: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """A Haar-random orthogonal (d, d) matrix.

    Q R = G for a Gaussian G (entries N(0, 1)), then Q · diag(sign(diag R)): the sign fix
    makes the distribution exactly Haar (Mezzadri 2007, "How to generate random matrices from
    the classical compact groups", Notices of the AMS 54). The Gaussian is drawn in float64
    from ``generator`` (on ``device``), so the result is reproducible per seed and device;
    numpy callers can seed a ``torch.Generator`` from their rng and call ``.numpy()``.
    """
    d = check_int("d", d, 1)
    if generator is not None:
        device = generator.device
    g = torch.randn(d, d, generator=generator, dtype=torch.float64, device=device)
    q, r = torch.linalg.qr(g)
    s = torch.sign(torch.diagonal(r))
    s = torch.where(s == 0, torch.ones_like(s), s)
    return (q * s[None, :]).to(dtype)
