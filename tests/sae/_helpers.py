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


def moved_sae(arch: str, n: int = 2, seed: int = 0, *, log_thresholds: bool = False, moved: bool = True):
    """A D = 6, F = 12 SAE (k = 2 where the arch uses k, b_dec zero at init) whose parameters
    moved off their initialisation as training would move them: every parameter + 0.3 · N(0, 1),
    a BatchTopK threshold in (0.01, 0.71), and with ``log_thresholds`` JumpReLU log thresholds
    3 · N(0, 1) (far from their shared initial value). ``moved=False``: the initialisation."""
    kw = dict(arch=arch, d_model=6, dict_size=12, n_instances=n, b_dec_init="zeros")
    if ARCHITECTURES[arch].uses_k:
        kw["k"] = 2
    sae = build_sae(SAEConfig(**kw), seed=seed)
    if not moved:
        return sae
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for _, p in sae.named_parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
        if hasattr(sae, "threshold_I"):
            sae.threshold_I.copy_(torch.rand(n, generator=g) * 0.7 + 0.01)
        if log_thresholds and hasattr(sae, "log_threshold_IF"):
            sae.log_threshold_IF.copy_(torch.randn(sae.log_threshold_IF.shape, generator=g) * 3)
    return sae
