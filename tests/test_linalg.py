"""toymodels.linalg: Haar-random orthogonal matrices."""
import math

import pytest
import torch

from toymodels.measures.linalg import random_orthogonal


@pytest.mark.parametrize("d", [1, 2, 5, 17])
def test_random_orthogonal_is_orthogonal(d):
    g = torch.Generator().manual_seed(d)
    q = random_orthogonal(d, generator=g, dtype=torch.float64)
    assert q.shape == (d, d) and q.dtype == torch.float64
    assert torch.allclose(q.T @ q, torch.eye(d, dtype=torch.float64), atol=1e-12)
    q32 = random_orthogonal(d, generator=torch.Generator().manual_seed(d))
    assert q32.dtype == torch.float32
    assert torch.allclose(q32.double(), q, atol=1e-6)  # same draw, cast after


def test_random_orthogonal_deterministic_per_seed():
    a = random_orthogonal(6, generator=torch.Generator().manual_seed(3))
    b = random_orthogonal(6, generator=torch.Generator().manual_seed(3))
    c = random_orthogonal(6, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_random_orthogonal_is_haar():
    """Haar moments in d = 3: E[Q_11] = 0, E[tr Q] = 0, E[(tr Q)²] = 1, E[det Q] = 0.
    The QR factor without the sign fix has E[Q_11] ≈ -0.5 and det Q = +1 always."""
    g = torch.Generator().manual_seed(0)
    n = 2000
    qs = torch.stack([random_orthogonal(3, generator=g, dtype=torch.float64) for _ in range(n)])
    tr = qs.diagonal(dim1=1, dim2=2).sum(-1)
    se = 4 / math.sqrt(n)  # every statistic has variance <= 1 (|Q_11| <= 1, Var tr = 1, |det| = 1)
    assert abs(qs[:, 0, 0].mean().item()) < se
    assert abs(tr.mean().item()) < se
    assert abs(tr.square().mean().item() - 1.0) < 2 * se
    assert abs(torch.linalg.det(qs).mean().item()) < se


def test_random_orthogonal_rejects_bad_size():
    with pytest.raises(ValueError, match="d must be"):
        random_orthogonal(0)
    with pytest.raises(ValueError, match="d must be"):
        random_orthogonal(2.5)
