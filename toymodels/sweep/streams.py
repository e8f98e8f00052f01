"""One data stream per grid point, so a point's result never depends on its job.

A per-instance :class:`~toymodels.data.SparseFeatures` with I > 1 draws blocks of instances
from one generator, so what instance i sees depends on its position and on its neighbours'
settings. A sweep packs grid points into jobs, and which points share a job changes with the
spec, the workers and what is already done; so a packed job draws each point's data from
that point's OWN single-instance source (the stream ``toymodels tms --instances 1`` would
use with that seed), and :class:`PointStreams` stacks them. Points whose streams are equal
(same source settings and seed, e.g. differing only in importance) share one.

The trainer sees an ordinary source (``sample``, ``get_state``/``set_state``, ``subset``,
``spec``); sampled step by step (the sweep trains with ``prefetch_elements = 0``: the
trainer's block would depend on the job's instances) from per-stream buffers whose size
depends on the point alone, instance i of any job gets bit for bit the batches it would get
alone.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch


PREFETCH_FLOATS = 1 << 16
"""Floats a point's stream draws per call (see :class:`PointStreams`)."""


def block_samples(batch_size: int, dim: int, steps: int) -> int:
    """Samples a point's stream draws at once: whole batches, about :data:`PREFETCH_FLOATS`
    floats, at most ``steps`` batches. Fixed by the point's settings, never by its job."""
    return batch_size * max(1, min(steps, PREFETCH_FLOATS // max(1, batch_size * dim)))


class PointStreams:
    """Instance j draws from ``streams[rows[j]]``; every stream is a one-instance source.

    ``block``: each stream draws ``block`` samples per call and serves requests from that
    buffer in order (a tiny model's step would otherwise pay one generator call per point
    stream). The block size depends only on the point's settings, so the samples a point
    sees do not depend on its job. The state of stream s is its generator state before its
    current buffer, the position in it and whether there is one; restoring it redraws the
    buffer, so checkpoints resume exactly."""

    def __init__(self, streams: Sequence[Any], rows: Sequence[int], block: int | None = None) -> None:
        if not streams:
            raise ValueError("PointStreams needs at least one stream")
        rows = [int(r) for r in rows]
        if not rows or min(rows) < 0 or max(rows) >= len(streams):
            raise ValueError(f"rows must index the {len(streams)} stream(s); got {rows}")
        for s in streams:
            if int(s.n_instances) != 1:
                raise ValueError(f"every point stream must have one instance, got {s.n_instances}")
        if block is not None and (not isinstance(block, int) or block < 1):
            raise ValueError(f"block must be a positive number of samples, got {block!r}")
        self.streams = list(streams)
        self.rows = rows
        self.block = block
        self.n_instances = len(rows)
        self.dim = int(streams[0].dim)
        self.device = streams[0].device
        self._identity = rows == list(range(len(streams)))
        self._index = torch.tensor(rows, dtype=torch.long, device=self.device)
        n = len(streams)
        self._buf: list[torch.Tensor | None] = [None] * n  # (1, block, D) per stream
        self._pos = [0] * n
        self._state0: list[torch.Tensor | None] = [None] * n  # generator state before the buffer
        self._states: torch.Tensor | None = None  # (streams, S) stack of _state0 while every buffer is drawn

    def _take(self, j: int, n: int) -> torch.Tensor:
        """The next ``n`` samples (1, n, D) of stream j."""
        s = self.streams[j]
        if self.block is None:
            return s.sample(n)
        parts, need = [], n
        while need > 0:
            buf = self._buf[j]
            if buf is None or self._pos[j] == buf.shape[1]:
                self._state0[j] = s.get_state()
                self._states = None
                buf = self._buf[j] = s.sample(self.block)
                self._pos[j] = 0
            take = min(need, buf.shape[1] - self._pos[j])
            parts.append(buf[:, self._pos[j] : self._pos[j] + take])
            self._pos[j] += take
            need -= take
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)

    def sample(self, batch_size: int) -> torch.Tensor:
        """A batch (I, B, D): each stream gives (1, B, D), rows pick each instance's stream."""
        xs = [self._take(j, batch_size) for j in range(len(self.streams))]
        x = torch.cat(xs) if len(xs) > 1 else xs[0]
        if self._identity:
            return x if x.is_contiguous() else x.contiguous()
        return x.index_select(0, self._index)

    def get_state(self) -> torch.Tensor:
        """(streams, S + 9) uint8: each stream's generator state (before its buffer when it
        has one), then the buffer position (8 bytes) and a has-buffer flag.

        The trainer asks for it every step (a sweep samples step by step): while every stream
        has a buffer, the generator states are one cached stack (they change only when a
        buffer is redrawn) and only the positions are new."""
        n = len(self.streams)
        if self.block is not None and all(b is not None for b in self._buf):
            if self._states is None:
                self._states = torch.stack([st.cpu() for st in self._state0])  # type: ignore[union-attr]
            pos = torch.tensor(self._pos, dtype=torch.int64).view(torch.uint8).view(n, 8)
            return torch.cat([self._states, pos, torch.ones(n, 1, dtype=torch.uint8)], dim=1)
        out = []
        for j, s in enumerate(self.streams):
            has = self._buf[j] is not None
            st = self._state0[j] if has else s.get_state()
            tail = torch.tensor([self._pos[j] if has else 0], dtype=torch.int64).view(torch.uint8)
            out.append(torch.cat([st.cpu(), tail, torch.tensor([int(has)], dtype=torch.uint8)]))
        return torch.stack(out)

    def set_state(self, state: torch.Tensor) -> None:
        if (not isinstance(state, torch.Tensor) or state.dtype != torch.uint8 or state.ndim != 2
                or state.shape[0] != len(self.streams)):
            raise ValueError(f"a PointStreams state is ({len(self.streams)}, S) uint8; got {getattr(state, 'shape', state)}")
        for j, (s, row) in enumerate(zip(self.streams, state.cpu())):
            s.set_state(row[:-9].clone())
            has = bool(row[-1])
            pos = int(row[-9:-1].clone().view(torch.int64)[0])
            self._buf[j], self._pos[j], self._state0[j] = None, 0, None
            self._states = None
            if has:  # redraw the buffer this state was taken in, then skip to the position
                self._state0[j] = s.get_state()
                self._buf[j] = s.sample(self.block)
                self._pos[j] = pos

    def subset(self, index: Any) -> "PointStreams":
        """The chosen instances, each with a fork of its stream and buffer (the parent does
        not advance)."""
        idx = torch.arange(self.n_instances)[index].reshape(-1).tolist()
        used = sorted({self.rows[i] for i in idx})
        pos = {r: j for j, r in enumerate(used)}
        new = PointStreams([self.streams[r].subset([0]) for r in used], [pos[self.rows[i]] for i in idx], self.block)
        for j, r in enumerate(used):
            new._buf[j], new._pos[j], new._state0[j] = self._buf[r], self._pos[r], self._state0[r]
        return new

    def spec(self) -> dict[str, Any]:
        return {"kind": "point-streams", "block": self.block, "streams": [s.spec() for s in self.streams],
                "rows": self.rows}
