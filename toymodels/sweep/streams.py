"""One data stream per grid point, so a point's result never depends on its job.

A per-instance :class:`~toymodels.data.SparseFeatures` with I > 1 draws blocks of instances
from one generator, so what instance i sees depends on its position and on its neighbours'
settings. A sweep packs grid points into jobs, and which points share a job changes with the
spec, the workers and what is already done; so a packed job draws each point's data from
that point's OWN single-instance source (the stream ``toymodels tms --instances 1`` would
use with that seed), and :class:`PointStreams` stacks them. Points whose streams are equal
(same source settings and seed, e.g. differing only in importance) share one.

The trainer sees an ordinary source (``sample``, ``get_state``/``set_state``, ``subset``,
``spec``); sampled step by step (the sweep trains with ``prefetch_elements = 0``), instance i
of any job gets bit for bit the batches it would get alone.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch


class PointStreams:
    """Instance j draws from ``streams[rows[j]]``; every stream is a one-instance source."""

    def __init__(self, streams: Sequence[Any], rows: Sequence[int]) -> None:
        if not streams:
            raise ValueError("PointStreams needs at least one stream")
        rows = [int(r) for r in rows]
        if not rows or min(rows) < 0 or max(rows) >= len(streams):
            raise ValueError(f"rows must index the {len(streams)} stream(s); got {rows}")
        for s in streams:
            if int(s.n_instances) != 1:
                raise ValueError(f"every point stream must have one instance, got {s.n_instances}")
        self.streams = list(streams)
        self.rows = rows
        self.n_instances = len(rows)
        self.dim = int(streams[0].dim)
        self.device = streams[0].device
        self._identity = rows == list(range(len(streams)))
        self._index = torch.tensor(rows, dtype=torch.long, device=self.device)

    def sample(self, batch_size: int) -> torch.Tensor:
        """A batch (I, B, D): each stream draws (1, B, D), rows pick each instance's stream."""
        x = torch.cat([s.sample(batch_size) for s in self.streams]) if len(self.streams) > 1 else self.streams[0].sample(batch_size)
        return x if self._identity else x.index_select(0, self._index)

    def get_state(self) -> torch.Tensor:
        return torch.stack([s.get_state() for s in self.streams])

    def set_state(self, state: torch.Tensor) -> None:
        if not isinstance(state, torch.Tensor) or state.ndim != 2 or state.shape[0] != len(self.streams):
            raise ValueError(f"a PointStreams state is ({len(self.streams)}, S) uint8; got {getattr(state, 'shape', state)}")
        for s, st in zip(self.streams, state.cpu()):
            s.set_state(st.clone())

    def subset(self, index: Any) -> "PointStreams":
        """The chosen instances, each with a fork of its stream (the parent does not advance)."""
        idx = torch.arange(self.n_instances)[index].reshape(-1).tolist()
        used = sorted({self.rows[i] for i in idx})
        pos = {r: j for j, r in enumerate(used)}
        return PointStreams([self.streams[r].subset([0]) for r in used], [pos[self.rows[i]] for i in idx])

    def spec(self) -> dict[str, Any]:
        return {"kind": "point-streams", "streams": [s.spec() for s in self.streams], "rows": self.rows}
