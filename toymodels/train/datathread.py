"""The data thread: on the CPU, the trainer draws the next block of training data on a
second thread while the current block trains (``TrainConfig.data_thread``).

Why: a dense 20 x (200 -> 20) batch is 4M uniforms from torch's CPU generator (Mersenne
Twister, one core whatever the thread count: ~16 ms), about as long as the training step
itself. Run one after the other on two cores, the step's matrix products use both cores
while sampling uses one; side by side each takes one core and the step costs the longer of
the two instead of their sum (``benchmarks/bench_tms.py``).

What stays the same: the batches. The thread only moves *when* a block is drawn, never the
order of the draws: one block at a time, in order, from the source's own generators, with
the RNG state from before each block kept for checkpoints. A run gives the same batches,
checkpoints and resume points with the thread as without it. The trainer gives the data
thread one torch thread and keeps the others (at least one) for the steps; the training
step's arithmetic then follows that thread count exactly as it would with ``--threads``.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Iterator

import torch

from ..device import SharedPool

DATA_THREAD_MODES = ("auto", "on", "off")

MIN_BLOCK_ELEMENTS = 1 << 18
"""``auto`` uses the data thread for blocks of at least this many floats: below it the
hand-over between threads (tens of microseconds) is a visible part of the step."""

_DATA_THREAD = SharedPool("toymodels-data")


def _executor() -> ThreadPoolExecutor:
    """The one data thread of the process (started on first use, one torch thread)."""
    return _DATA_THREAD.get(1)


def check_data_thread(mode: str, device: torch.device) -> None:
    """ValueError naming ``data_thread`` for ``on`` off the CPU (before any work)."""
    if mode == "on" and device.type != "cpu":
        raise ValueError(f"data_thread = 'on' runs on the CPU only (the model is on {device.type}); use 'auto' or 'off'")


def use_data_thread(
    mode: str, device: torch.device, *, n_blocks: int, block_elements: int, precision: str, compiled: bool
) -> bool:
    """Whether a training chunk draws its data on the data thread.

    ``off``: never. ``on``: on the CPU whenever the run has two blocks or more (ValueError on
    another device, where kernels already run asynchronously). ``auto``: on the CPU with at
    least two torch threads (one goes to the data) or a spare core (:func:`spare_core`), fp32 matmuls (the data thread does not
    inherit the bf16 autocast of the steps), no compiled step, two blocks or more and blocks
    of at least :data:`MIN_BLOCK_ELEMENTS` floats — where this allows it, ``auto`` then times
    the first blocks and turns the thread on only where that predicts a gain
    (:class:`toymodels.train.feed.AutoFeed`)."""
    check_data_thread(mode, device)
    if mode == "off" or device.type != "cpu" or n_blocks < 2:
        return False
    if mode == "on":
        return True
    return (
        (torch.get_num_threads() >= 2 or spare_core())
        and precision == "fp32"
        and not compiled
        and block_elements >= MIN_BLOCK_ELEMENTS
    )


def spare_core() -> bool:
    """Whether a core is free for the data thread beside the steps' torch threads: this
    process's share of the cores (:func:`toymodels.device.core_share`) exceeds them. Then
    the steps keep all their threads (and their exact bits); else they give one up."""
    from ..device import core_share

    return core_share() > torch.get_num_threads()


@contextmanager
def step_threads(enabled: bool) -> Iterator[None]:
    """While the data thread draws, the steps run on one torch thread fewer (at least one),
    unless a core is spare for it (:func:`spare_core`)."""
    n = torch.get_num_threads()
    if not enabled or n < 2 or spare_core():
        yield
        return
    torch.set_num_threads(n - 1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _draw(source: Any, n_samples: int) -> torch.Tensor:
    with torch.no_grad():
        return source.sample(n_samples)


class BlockFeed:
    """The trainer's blocks of data: block ``j`` holds the batches of steps [j·k, (j+1)·k).

    :meth:`take` returns (RNG state before the block, the block); with ``background`` the
    next block is then drawn on the data thread while the caller trains this one; nothing
    else may touch the source until :meth:`take` collects it or :meth:`close`. The state
    before the next block (what a checkpoint stores) is :meth:`state_before_next`, read
    before the draw started. :meth:`close` waits for a draw in flight and puts the source
    back to the state before it, as if that block had never been drawn."""

    def __init__(self, source: Any, batch_size: int, k: int, steps: int, background: bool) -> None:
        self.source, self.batch_size, self.k, self.steps = source, batch_size, k, steps
        self.background = background
        self._pending: tuple[int, Any, Future] | None = None  # (block, state before it, its draw)

    def _samples(self, j: int) -> int:
        return self.batch_size * min(self.k, self.steps - j * self.k)

    def take(self, j: int) -> tuple[Any, torch.Tensor]:
        if self._pending is not None and self._pending[0] == j:
            _, state, fut = self._pending
            self._pending = None
            block = fut.result()
        else:
            self._settle()
            state, block = self.source.get_state(), self.source.sample(self._samples(j))
        if self.background and (j + 1) * self.k < self.steps:
            nxt = self.source.get_state()
            self._pending = (j + 1, nxt, _executor().submit(_draw, self.source, self._samples(j + 1)))
        return state, block

    def state_before_next(self) -> Any:
        """The source's state after the blocks taken so far (a draw in flight has not changed it
        as far as the run is concerned)."""
        if self._pending is not None:
            return self._pending[1]
        return self.source.get_state()

    def _settle(self) -> None:
        """Wait for a draw in flight and put the source back to the state before it."""
        if self._pending is None:
            return
        _, state, fut = self._pending
        self._pending = None
        try:
            fut.result()
        except BaseException:  # noqa: S110 - the state is restored below either way
            pass
        self.source.set_state(state)

    def close(self) -> None:
        self._settle()
