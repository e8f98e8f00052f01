"""Divergence: the NaN/inf guard (:class:`TrainingDiverged`, one line naming the step, the
instances and the checkpoint kept) and the non-convergence flag of a finished run."""
from __future__ import annotations

from pathlib import Path

import torch


class TrainingDiverged(FloatingPointError):
    """The loss or parameters became NaN/inf; the last good checkpoint is kept.

    ``step`` (the step at which it was seen), ``instances`` (indices into the whole model,
    not the chunk) and ``checkpoint`` (the kept checkpoint, or None). The message is one line.
    """

    def __init__(self, message: str, step: int, instances: list[int], checkpoint: Path | None) -> None:
        super().__init__(" ".join(message.split()))
        self.step, self.instances, self.checkpoint = step, instances, checkpoint



NONCONVERGENCE_FACTOR = 10.0
"""An instance whose final loss exceeds this multiple of its initial loss did not converge."""


def converged_instances(initial_loss: torch.Tensor | None, final_loss: torch.Tensor) -> torch.Tensor:
    """(I,) bool: the final loss is finite and at most ``NONCONVERGENCE_FACTOR`` times the
    training loss of the first step, taken at the initial weights (a run whose loss grew
    tenfold — a learning rate far too large — did not converge, even with nothing NaN)."""
    ok = torch.isfinite(final_loss)
    if initial_loss is not None:
        ok &= ~(final_loss > NONCONVERGENCE_FACTOR * initial_loss.to(final_loss.dtype).abs())
    return ok



def _diverged(
    bad_instances: list[int], step: int, lr: float, ckpt: Path | None, good_step: int | None, offset: int
) -> TrainingDiverged:
    inst = [i + offset for i in bad_instances]
    kept = (
        f"the last good checkpoint (step {good_step}) is kept at {ckpt}"
        if ckpt is not None and good_step is not None
        else "no checkpoint was written before it (give the run a folder and checkpoint_every)"
    )
    return TrainingDiverged(
        f"training diverged: the loss became NaN/inf at step {step} in instance(s) {inst[:10]}"
        f"{' ...' if len(inst) > 10 else ''}; {kept}. Lower the learning rate (now {lr:.3g}) "
        "or check the data for NaN.",
        step,
        inst,
        ckpt if good_step is not None else None,
    )


def _check_finite(loss: torch.Tensor, step: int, lr: float, ckpt: Path | None, good_step: int | None, offset: int = 0) -> None:
    bad = ~torch.isfinite(loss)
    if bool(bad.any()):
        raise _diverged(bad.nonzero().flatten().tolist(), step, lr, ckpt, good_step, offset)


def _nonfinite_param_instances(params: list[torch.nn.Parameter], n_inst: int) -> list[int]:
    """Instances with a NaN/inf parameter entry ([0..I) when a parameter has no instance axis)."""
    bad = torch.zeros(n_inst, dtype=torch.bool)
    for p in params:
        fin = torch.isfinite(p.detach())
        if p.ndim >= 1 and p.shape[0] == n_inst:
            bad |= ~fin.reshape(n_inst, -1).all(dim=1).cpu()
        elif not bool(fin.all()):
            bad[:] = True
    return bad.nonzero().flatten().tolist()
