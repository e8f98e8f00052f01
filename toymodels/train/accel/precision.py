"""Matmul precision of a training run: fp32 (the reference), TF32 or bf16.

- ``fp32``: IEEE float32 matmuls. On CUDA the TF32 switches are turned off for the run
  (whatever the process set globally) and restored afterwards; the CPU is untouched.
- ``tf32``: CUDA matmuls and convolutions on TensorFloat-32 cores (10-bit mantissa inputs,
  fp32 accumulation; Ampere and later). A no-op on the CPU, which has no TF32.
- ``bf16``: the model's loss and gradient run under ``torch.autocast(dtype=torch.bfloat16)``
  (matmul inputs in bfloat16, 7-bit mantissa); parameters, Adam moments and the update
  stay fp32. Allowed on the CPU too (autocast supports it there; it is rarely faster, but it
  makes the path testable without a GPU). A model whose gradients are hand-derived
  (``loss_and_grad`` assigning ``.grad`` itself) gets its bf16 gradients cast back to the
  parameters' dtype after each step; one whose hand-derived step cannot run under autocast
  at all is refused before any work (:func:`check_bf16`).

Parameters and checkpoints are fp32 under every setting; only the arithmetic changes, so
a run's results depend on the setting (it is part of the run's settings and of resume).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch

MATMUL_PRECISIONS = ("fp32", "tf32", "bf16")


@contextmanager
def matmul_precision(precision: str, device: torch.device | str) -> Iterator[None]:
    """Run the body with ``precision`` (one of :data:`MATMUL_PRECISIONS`) on ``device``;
    every global switch it changes is restored on exit."""
    if precision not in MATMUL_PRECISIONS:
        raise ValueError(f"matmul_precision must be one of {', '.join(MATMUL_PRECISIONS)}; got {precision!r}")
    device = torch.device(device)
    if device.type != "cuda":
        if precision == "bf16":
            with torch.autocast(device.type, dtype=torch.bfloat16):
                yield
        else:
            yield  # fp32 is the CPU's only float32 matmul; tf32 is a no-op here
        return
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    try:
        if precision == "bf16":
            # no weight-cast cache: a CUDA graph may capture the step (autocast's cache
            # and graph capture do not mix)
            with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
                yield
        else:
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


class GradDtypeGuard:
    """Lets hand-derived gradients of another dtype (bf16 under autocast) be assigned to
    fp32 parameters, and casts them back after each step (``fix()``); ``restore()`` puts
    every parameter's ``grad_dtype`` back. Torch builds without ``grad_dtype`` accept only
    same-dtype gradients: there a hand-derived model under bf16 raises a ValueError naming
    ``matmul_precision`` from :func:`bf16_grad_error`."""

    def __init__(self, params: list[torch.nn.Parameter]) -> None:
        self.params = params
        self.saved = []
        for p in params:
            if hasattr(p, "grad_dtype"):
                self.saved.append((p, p.grad_dtype))
                p.grad_dtype = None

    def fix(self) -> None:
        for p in self.params:
            if p.grad is not None and p.grad.dtype != p.dtype:
                p.grad = p.grad.to(p.dtype)

    def restore(self) -> None:
        for p, dt in self.saved:
            if p.grad is not None and p.grad.dtype != p.dtype:
                p.grad = p.grad.to(p.dtype)
            p.grad_dtype = dt
        self.saved = []


def bf16_grad_error(model: object, err: Exception) -> ValueError:
    return ValueError(
        f"matmul_precision = 'bf16' is not supported for {type(model).__name__}: its hand-derived "
        f"gradient mixes bfloat16 and float32 tensors under autocast ({' '.join(str(err).split())[:120]}); "
        "use matmul_precision = 'tf32' (CUDA) or 'fp32'"
    )


def check_bf16(model: Any, dim: int, device: torch.device | str) -> None:
    """Raise the ValueError of :func:`bf16_grad_error` when ``model``'s ``loss_and_grad``
    cannot run under bf16 autocast — tried on a one-instance copy (``model.subset([0])``)
    and a zero batch of two samples, so the model, its optimizer state and the data stream
    are untouched. Hand-derived gradients with in-place float32 updates of bf16 products
    (e.g. the ReLU-output toy model, the ReLU SAE) fail here, before any work."""
    probe = model.subset([0])
    params = [p for p in probe.parameters() if p.requires_grad]
    guard = GradDtypeGuard(params)
    x = torch.zeros(1, 2, int(dim), device=torch.device(device), dtype=params[0].dtype if params else torch.float32)
    try:
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
            probe.loss_and_grad(x)
        guard.fix()
    except RuntimeError as e:
        raise bf16_grad_error(model, e) from None
    finally:
        guard.restore()
