"""Small builders shared by the SAE tests: tiny configs, data, the trainer's step."""
from __future__ import annotations

import torch

from toymodels.sae import ARCHITECTURES, SAEConfig, build_sae, sae_from_spec
from toymodels.train import TrainConfig, make_optimizer, optimizer_step


def tiny(arch: str, **kw) -> SAEConfig:
    """D = 6, F = 12, two instances with different sparsity settings (k where the arch uses k)."""
    n = kw.get("n_instances", 2)
    base = dict(arch=arch, d_model=6, dict_size=12, n_instances=2, l1_coefficient=(0.05, 0.2) if n == 2 else 0.1,
                b_dec_init="zeros")
    if ARCHITECTURES[arch].uses_k:
        base["k"] = (2, 3) if n == 2 else 2
    base.update(kw)
    return SAEConfig(**base)


def data(n_inst: int, bsz: int, d: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Sparse non-negative inputs (n_inst, bsz, d)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n_inst, bsz, d, generator=g, dtype=dtype)
    return x * (torch.rand(n_inst, bsz, d, generator=g, dtype=dtype) < 0.5)


def run_steps(sae, xs, opt=None):
    """What the trainer does each step."""
    opt = opt or make_optimizer(list(sae.parameters()), TrainConfig(lr=1e-2))
    sae.attach_optimizer(opt)
    for x in xs:
        optimizer_step(sae, opt, x, 0)
    return opt


def perturbed(sae, seed: int = 0, scale: float = 0.1):
    """Add Gaussian noise to every parameter (away from the symmetric initialisation)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in sae.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return sae


def twin(sae):
    """A fresh SAE from ``sae``'s spec with its state (same dtype)."""
    other = sae_from_spec(sae.spec()).to(sae.dtype)
    other.load_state_dict(sae.state_dict())
    return other


def clear_grads(*models) -> None:
    for m in models:
        for p in m.parameters():
            p.grad = None


def assert_same_grads(a, b, rtol: float = 1e-10, atol: float = 1e-12) -> None:
    """Every parameter of ``a`` and ``b`` has a gradient, and they agree."""
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert p.grad is not None and q.grad is not None, name
        torch.testing.assert_close(p.grad, q.grad, rtol=rtol, atol=atol, msg=name)


__all__ = ["assert_same_grads", "build_sae", "clear_grads", "data", "perturbed", "run_steps", "tiny", "twin"]
