"""Graph-replayed training steps for tiny models on CUDA.

A tiny model (8 instances of 5 -> 2) spends its step launching kernels, not computing:
forward, backward and the Adam update are a few dozen launches of a few microseconds of
work each. :class:`GraphedStep` records one whole step — ``loss_and_grad`` on a static
input buffer, the step counters and the fused Adam/AdamW kernel with the learning rate
read from a device tensor — as a CUDA graph once, then replays it: one launch a step.

What stays outside the graph, so everything the trainer promises keeps working:

- the data: the trainer still draws k steps of data in one ``source.sample`` call (the same
  stream, the same RNG states in checkpoints) and copies each step's slice into the static
  input before the replay;
- the learning rate: written into the device tensor only when the schedule changes it;
- the NaN guard, history and progress bar: the static loss is read every ``log_every``
  steps (not every step), checkpoints every ``checkpoint_every``, exactly as eagerly —
  parameters and Adam moments are updated in place, so ``state_dict()`` sees them.

The first :data:`WARMUP_STEPS` steps of a chunk run eagerly on a side stream (they create
the Adam state and let cuBLAS and the caching allocator settle, as capture requires); the
graph takes over from there. Models with step hooks (an SAE's decoder renormalisation or
dead-latent resampling, which branch on the data in Python) are never graphed.

Replays give the same losses as the eager step up to float rounding (the same kernels on
the same data; the learning rate as a tensor instead of a Python float).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch

CUDA_GRAPH_MODES = ("off", "on", "auto")
WARMUP_STEPS = 3
"""Eager steps before capture (creates the optimizer state; capture needs a warm device)."""
AUTO_MAX_ELEMENTS = 1 << 20
"""``cuda_graph = "auto"`` graphs a step whose batch has at most this many floats
(instances × batch × width): below it a step is bound by kernel launches, not arithmetic."""


def lean_state(opt: torch.optim.Optimizer) -> tuple[list, list, list, list] | None:
    """(params, exp_avgs, exp_avg_sqs, steps) of a single-group fused Adam/AdamW whose state
    exists (after its first step), or None."""
    collect = getattr(opt, "_collect", None)
    return collect() if collect is not None else None


def fused_kernel(opt: torch.optim.Optimizer) -> Callable[..., Any]:
    """The fused Adam/AdamW kernel ``opt`` steps with."""
    name = getattr(opt, "_kernel_name", None)
    if name is None or not hasattr(torch, name):
        raise ValueError(f"{type(opt).__name__} has no fused kernel to capture")
    return getattr(torch, name)


def functional_step(
    model: Any,
    opt: torch.optim.Optimizer,
    state: tuple[list, list, list, list],
    x: torch.Tensor,
    lr: torch.Tensor,
    fix_grads: Callable[[], None] | None = None,
) -> torch.Tensor:
    """One training step without Python-side state: ``loss_and_grad(x)``, the step counters
    +1 and the fused Adam/AdamW kernel with a tensor learning rate — exactly what
    :meth:`toymodels.train.LeanAdam.step` computes, in a form CUDA graphs can record (it
    runs eagerly on any device too). Gradients are overwritten, not accumulated: call it
    with ``p.grad = None`` or on a model whose ``loss_and_grad`` assigns ``.grad``."""
    loss = model.loss_and_grad(x)
    if fix_grads is not None:
        fix_grads()
    params, exp_avgs, exp_avg_sqs, steps = state
    g = opt.param_groups[0]
    torch._foreach_add_(steps, 1)
    fused_kernel(opt)(
        params, [p.grad for p in params], exp_avgs, exp_avg_sqs, [], steps,
        amsgrad=False, lr=lr, beta1=g["betas"][0], beta2=g["betas"][1],
        weight_decay=g["weight_decay"], eps=g["eps"], maximize=False, grad_scale=None, found_inf=None,
    )
    return loss


def ineligible(model: Any, opt: torch.optim.Optimizer, device: torch.device) -> str | None:
    """Why a step of ``model`` with ``opt`` on ``device`` cannot be graphed, or None."""
    from ...protocols import AfterStep, AttachesOptimizer, BeforeStep

    if device.type != "cuda":
        return f"CUDA graphs need a CUDA device; the model is on {device.type}"
    if isinstance(model, (BeforeStep, AfterStep, AttachesOptimizer)):
        return f"{type(model).__name__} has step hooks (Python logic between steps) that a graph cannot replay"
    if getattr(opt, "_kernel_name", None) is None or len(opt.param_groups) != 1 or not opt.param_groups[0].get("fused"):
        return "the optimizer is not a single-group fused Adam/AdamW"
    if not hasattr(torch.cuda, "CUDAGraph"):  # pragma: no cover - every CUDA build has it
        return "this torch has no CUDA graphs"
    return None


def use_cuda_graph(mode: str, model: Any, opt: torch.optim.Optimizer, device: torch.device, batch_elements: int) -> bool:
    """Whether the trainer graphs the steps: ``off`` never; ``on`` always, raising a
    ValueError naming ``cuda_graph`` and the reason when it cannot (on the CPU, a model with
    step hooks, ...); ``auto`` when it can and a step's batch has at most
    :data:`AUTO_MAX_ELEMENTS` floats (off on the CPU)."""
    if mode not in CUDA_GRAPH_MODES:
        raise ValueError(f"cuda_graph must be one of {', '.join(CUDA_GRAPH_MODES)}; got {mode!r}")
    if mode == "off":
        return False
    why = ineligible(model, opt, device)
    if mode == "on" and why is not None:
        raise ValueError(f"cuda_graph = 'on' cannot be honoured: {why}; use cuda_graph = 'auto' or 'off'")
    return why is None and (mode == "on" or batch_elements <= AUTO_MAX_ELEMENTS)


@contextmanager
def side_stream(device: torch.device) -> Iterator[None]:
    """Run the body on a fresh CUDA side stream, ordered after and before the current one
    (graph warm-up must not run on the capturing stream's history)."""
    cur = torch.cuda.current_stream(device)
    s = torch.cuda.Stream(device)
    s.wait_stream(cur)
    with torch.cuda.stream(s):
        yield
    cur.wait_stream(s)


class GraphedStep:
    """One captured training step, replayed by calling it: ``step(x, lr) -> loss (I,)``.

    ``x`` is copied into the static input (it must have the captured shape); the returned
    loss is the graph's static output, valid until the next replay (read it, or clone it,
    before calling again). Capture it after at least one eager optimizer step (the Adam
    state must exist)."""

    def __init__(self, model: Any, opt: torch.optim.Optimizer, x: torch.Tensor, lr: float,
                 fix_grads: Callable[[], None] | None = None) -> None:
        state = lean_state(opt)
        if state is None:
            raise ValueError("capture a graph after the first optimizer step (the fused Adam state must exist)")
        self.device = x.device
        self.static_x = x.detach().clone()
        self.lr = float(lr)
        self.lr_t = torch.tensor(self.lr, dtype=torch.float32, device=self.device)
        self.shape = tuple(x.shape)
        for p in state[0]:
            p.grad = None  # the captured backward allocates fresh gradients, overwritten per replay
        torch.cuda.synchronize(self.device)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_loss = functional_step(model, opt, state, self.static_x, self.lr_t, fix_grads)

    def __call__(self, x: torch.Tensor, lr: float) -> torch.Tensor:
        if tuple(x.shape) != self.shape:
            raise ValueError(f"a graphed step takes batches shaped {self.shape}; got {tuple(x.shape)}")
        if lr != self.lr:
            self.lr = float(lr)
            self.lr_t.fill_(self.lr)
        self.static_x.copy_(x)
        self.graph.replay()
        return self.static_loss
