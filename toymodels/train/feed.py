"""Where the trainer's blocks of data are drawn: inline, on the data thread, or — with
``data_thread = "auto"`` — inline until a measurement says the thread pays.

A feed hands out blocks (:meth:`take`), knows the RNG state a checkpoint stores
(:meth:`state_before_next`), sets the torch thread count of the steps, and records what it
did (:meth:`record`: into checkpoints, so a resumed run continues with the same choice;
:meth:`summary`: into metrics.json). The batches are the same whatever the feed.

Why measure: the data thread takes one torch thread from the steps (they run on T − 1), or,
where this process has a core beyond its T torch threads (:func:`~toymodels.train.datathread.
spare_core`: e.g. the one thread ``--threads auto`` gives a toy-sized run on 2 cores), that
core, the steps keeping all T (and their bits). For
the dense toy-model intro workload (20 × 200 → 20, p = 1: 4M uniforms a step, ~16 ms, as long
as the step) overlapping the draw with the steps is ~1.7× end to end; for an SAE (large
matmuls, a cheap draw) it halved the step's speed for nothing. Sizes alone cannot tell the
two apart; the time of a draw against the time of the steps can.

``auto`` (:class:`AutoFeed`), by the run's block index j (absolute, so a resumed run follows
the same schedule):

- block ``first`` (0 for a new run): warm-up (first-step allocations), inline, not timed;
- the next :data:`AUTO_MEASURE_BLOCKS` blocks: inline with all T threads, the draw and the
  steps timed (D, S). If even steps that lose nothing on T − 1 threads could not gain
  (:func:`auto_choice`: D + S < margin · max(D, S)) the thread stays off: bit for bit the
  ``off`` run;
- otherwise one probe block: drawn inline on one thread, its steps on T − 1 threads, as
  they would run beside the data thread (D₁, S₋₁). The thread goes on from the next block
  when D + S ≥ margin · max(D₁, S₋₁) (what a block would cost overlapped), else off.

Runs too short for the measurement to pay (fewer than :data:`AUTO_MIN_BLOCKS` blocks) stay
off without measuring. The decision and the measured milliseconds are recorded; once made it
is honoured on resume. Before it is made, a resumed run measures what is left of the window
itself. With ``auto``, a run's last bits can therefore depend on the measurement (the probe
block, and the steps after a switch, run on T − 1 threads); ``on``, ``off`` and one torch
thread are bit-reproducible.
"""
from __future__ import annotations

import time
from typing import Any

import torch

from .datathread import BlockFeed, spare_core, step_threads

AUTO_MEASURE_BLOCKS = 2
"""Blocks timed with all threads (after one warm-up block)."""
AUTO_MARGIN = 1.15
"""The predicted speed-up the data thread must promise (inline time / overlapped time)."""
AUTO_MIN_BLOCKS = 1 + AUTO_MEASURE_BLOCKS + 1 + 4
"""``auto`` measures only runs of at least this many blocks: warm-up, measurement, probe and
at least four blocks to gain on."""


def _now() -> float:
    """The feed's clock (a module-level name: tests inject their own times)."""
    return time.perf_counter()


def auto_choice(
    draw_ms: float, step_ms: float, threads: int, probe: tuple[float, float] | None = None, margin: float = AUTO_MARGIN
) -> str:
    """What ``auto`` does next, from the time of a block's draw and of its steps, both inline
    (``threads``: the threads the steps and a data thread may share, the torch threads plus a
    spare core): ``"off"``, ``"probe"`` (measure a block's draw on one thread and its
    steps on T − 1) or, given that ``probe`` = (draw_ms, step_ms) on those threads, ``"on"``
    or ``"off"``.

    Inline a block costs D + S; beside the data thread it costs max(D₁, S₋₁) at best. Even
    if the steps lost nothing on a thread fewer (S₋₁ = S, D₁ = D), the gain is at most
    (D + S) / max(D, S): below ``margin`` the thread is off without a probe (a cheap draw, or
    a draw that dwarfs the steps). Otherwise the probe's own times decide."""
    if margin < 1:
        raise ValueError(f"margin must be at least 1, got {margin!r}")
    for name, v in (("draw_ms", draw_ms), ("step_ms", step_ms)) + (() if probe is None else (("probe", min(probe)),)):
        if not v >= 0:
            raise ValueError(f"{name} must be a time (>= 0 ms), got {v!r}")
    inline = draw_ms + step_ms
    if threads < 2 or inline <= 0 or inline < margin * max(draw_ms, step_ms):
        return "off"
    if probe is None:
        return "probe"
    return "on" if inline >= margin * max(probe) else "off"


class AutoFeed(BlockFeed):
    """A :class:`BlockFeed` that starts inline and turns the data thread on from the block
    :func:`auto_choice` says (module docstring). ``record``, the ``data_thread`` entry of a
    checkpoint written by such a feed, restores its measurements and decision."""

    def __init__(self, source: Any, batch_size: int, k: int, steps: int, first: int,
                 record: dict[str, Any] | None = None) -> None:
        super().__init__(source, batch_size, k, steps, background=False)
        self.threads = torch.get_num_threads()
        self.lanes = self.threads + (1 if spare_core() else 0)  # threads the steps and the draw may share
        n_blocks = -(-steps // k)
        rec = dict(record) if record and record.get("mode") == "auto" else {}
        self.first = int(rec.get("first", first))
        self.from_block: int | None = rec.get("from_block")
        self.used: bool = bool(rec.get("used", False))
        self.draw_ms: dict[int, float] = {int(j): float(v) for j, v in rec.get("draw_ms_by_block", {}).items()}
        self.step_ms: dict[int, float] = {int(j): float(v) for j, v in rec.get("step_ms_by_block", {}).items()}
        self.probe_block: int | None = rec.get("probe_block")
        if self.from_block is None and (self.lanes < 2 or n_blocks - self.first < AUTO_MIN_BLOCKS):
            self.from_block, self.used = self.first, False  # too short (or no thread to spare): off, unmeasured
        self._open: tuple[int, float] | None = None  # (block, when its steps began) while timed
        self._fewer: Any = None  # the step_threads context while the steps run on T - 1

    # -- the schedule
    def _window(self) -> range:
        return range(self.first + 1, self.first + 1 + AUTO_MEASURE_BLOCKS)

    def _decide(self, j: int) -> str:
        """The mode of block j: "measure", "probe", "on" or "off" (deciding when j is due)."""
        if self.from_block is not None and j >= self.from_block:
            return "on" if self.used else "off"
        if j <= self.first:
            return "warm-up"
        window = self._window()
        if j in window:
            return "measure"
        D = sum(self.draw_ms.get(b, 0.0) for b in window)
        S = sum(self.step_ms.get(b, 0.0) for b in window)
        probe = None
        if self.probe_block is not None and j > self.probe_block:
            probe = (self.draw_ms.get(self.probe_block, 0.0), self.step_ms.get(self.probe_block, 0.0))
        choice = auto_choice(D / len(window), S / len(window), self.lanes, probe)
        if choice == "probe":  # (probe is None here: j is the probe block, or resumes into it)
            self.probe_block = j
            return "probe"
        self.from_block, self.used = j, choice == "on"
        return choice

    def _steps_on_fewer(self, fewer: bool) -> None:
        if fewer and self._fewer is None:
            self._fewer = step_threads(True)
            self._fewer.__enter__()
        elif not fewer and self._fewer is not None:
            ctx, self._fewer = self._fewer, None
            ctx.__exit__(None, None, None)

    def _close_block(self) -> None:
        if self._open is not None:
            j, t0 = self._open
            self.step_ms[j] = (_now() - t0) * 1e3
            self._open = None

    # -- the feed
    def take(self, j: int) -> tuple[Any, torch.Tensor]:
        self._close_block()
        mode = self._decide(j)
        if mode in ("on", "off"):
            self._steps_on_fewer(mode == "on")
            self.background = mode == "on"
            return super().take(j)
        self._steps_on_fewer(False)
        if mode == "warm-up":
            return super().take(j)
        if mode == "probe":  # drawn on one thread, as the data thread would
            torch.set_num_threads(1)
            try:
                t0 = _now()
                out = super().take(j)
                self.draw_ms[j] = (_now() - t0) * 1e3
            finally:
                torch.set_num_threads(self.threads)
            self._steps_on_fewer(True)
        else:
            t0 = _now()
            out = super().take(j)
            self.draw_ms[j] = (_now() - t0) * 1e3
        self._open = (j, _now())
        return out

    def record(self, at_block_end: bool) -> dict[str, Any]:
        """The checkpoint's ``data_thread`` entry. ``at_block_end``: the steps of the block
        taken last are all done (its time is final, as the uninterrupted run measures it)."""
        if at_block_end:
            self._close_block()
        return {
            "mode": "auto", "first": self.first, "from_block": self.from_block, "used": self.used,
            "probe_block": self.probe_block,
            "draw_ms_by_block": {str(j): v for j, v in sorted(self.draw_ms.items())},
            "step_ms_by_block": {str(j): v for j, v in sorted(self.step_ms.items())},
        }

    def summary(self) -> dict[str, Any]:
        window = [b for b in self._window() if b in self.draw_ms and b in self.step_ms]
        mean = (lambda d: round(sum(d[b] for b in window) / len(window), 3)) if window else (lambda d: None)
        pb = self.probe_block
        return {
            "mode": "auto", "used": self.used, "from_block": self.from_block, "threads": self.threads,
            "draw_ms": mean(self.draw_ms), "step_ms": mean(self.step_ms),
            "probe_draw_ms": None if pb is None or pb not in self.draw_ms else round(self.draw_ms[pb], 3),
            "probe_step_ms": None if pb is None or pb not in self.step_ms else round(self.step_ms[pb], 3),
        }

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._open = None
            self._steps_on_fewer(False)


class FixedFeed(BlockFeed):
    """``on`` / ``off`` (and ``auto`` where the size rule rules the thread out): the thread
    is used for the whole chunk or not at all, the steps on T − 1 threads when it is."""

    def __init__(self, source: Any, batch_size: int, k: int, steps: int, background: bool, mode: str) -> None:
        super().__init__(source, batch_size, k, steps, background)
        self.mode = mode
        self.threads = torch.get_num_threads()
        self._fewer = step_threads(background)
        self._fewer.__enter__()

    def record(self, at_block_end: bool) -> dict[str, Any]:
        return {"mode": self.mode, "used": self.background}

    def summary(self) -> dict[str, Any]:
        return {"mode": self.mode, "used": self.background, "threads": self.threads}

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._fewer.__exit__(None, None, None)


def choose_feed(
    mode: str, device: torch.device, source: Any, batch_size: int, k: int, steps: int, step0: int,
    *, block_elements: int, precision: str, compiled: bool, record: dict[str, Any] | None = None,
) -> AutoFeed | FixedFeed:
    """The feed of a chunk's blocks: ``on``/``off`` as :func:`toymodels.train.datathread.
    use_data_thread` says; ``auto``, where that rule allows the thread, an :class:`AutoFeed`
    that measures first (continuing from ``record``, a checkpoint's ``data_thread`` entry)."""
    from .datathread import use_data_thread

    n_blocks = -(-steps // k) - step0 // k  # blocks this call draws (the first may be resumed into)
    allowed = use_data_thread(mode, device, n_blocks=n_blocks, block_elements=block_elements,
                              precision=precision, compiled=compiled)
    if mode == "auto" and allowed:
        return AutoFeed(source, batch_size, k, steps, step0 // k, record)
    return FixedFeed(source, batch_size, k, steps, allowed, mode)
