"""LeanAdam.fast_step: torch.optim's fused kernel without the per-call wrapper, the same bits
as ``step()``, and the wrapped step whenever a hook is registered."""
import pytest
import torch

from toymodels.train.optim import LeanAdam


def _pair():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 3, generator=g)
    grads = [torch.randn(4, 3, generator=g) for _ in range(5)]
    return w, grads


def _run(use_fast: bool, hook=None):
    w0, grads = _pair()
    p = torch.nn.Parameter(w0.clone())
    opt = LeanAdam([p], lr=1e-2, fused=True)
    if hook is not None:
        opt.register_step_pre_hook(hook)
    for g in grads:
        p.grad = g.clone()
        opt.fast_step() if use_fast else opt.step()
    return p.detach().clone(), opt.state_dict()


def test_fast_step_is_step_bit_for_bit():
    (a, sa), (b, sb) = _run(False), _run(True)
    assert torch.equal(a, b)
    assert torch.equal(sa["state"][0]["exp_avg"], sb["state"][0]["exp_avg"])
    assert float(sa["state"][0]["step"]) == float(sb["state"][0]["step"]) == 5.0


@pytest.mark.parametrize("fast", [True, False])
def test_a_registered_hook_runs_once_on_every_step(fast):
    """Once per step, also after a plain Adam exists in the process (torch then wraps Adam.step
    with its hook runner as well, and the first LeanAdam step, which goes through the parent,
    ran the hooks twice)."""
    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
    calls = []
    _run(fast, hook=lambda opt, args, kwargs: calls.append(1))
    assert len(calls) == 5
