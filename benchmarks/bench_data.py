"""Sparse sampling cost: toymodels' geometric-skipping sampler vs dense sampling.

N = 100,000 features at p = 1e-4 (about 10 active per sample), batch 4096. The dense
reference draws two (B, N) uniform tensors and a ``where`` — the usual notebook line.
Ours draws only the active entries: the coordinate form (``sample_coo``), the same batch
embedded in D = 64 dims (``sample`` with ``d_embed``; the (B, N) tensor is never formed), and
the same batch materialised densely (``sample`` without an embedding) for a like-for-like
output. Rounds alternate in one process; the table reports the median. Besides the table
the script prints one JSON line starting with ``{"bench": "data"`` (seconds per batch).
"""
from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import device_line, emit, interleaved, table, timed  # noqa: E402

from toymodels.data import SparseFeatures  # noqa: E402
from toymodels.device import resolve_device  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n-features", type=int, default=100_000)
    ap.add_argument("--p", type=float, default=1e-4)
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    dev = resolve_device(args.device)
    n, p, b = args.n_features, args.p, args.batch_size
    g = torch.Generator(device=dev).manual_seed(0)

    def dense() -> None:
        mags = torch.rand(1, b, n, generator=g, device=dev)
        on = torch.rand(1, b, n, generator=g, device=dev) < p
        torch.where(on, mags, 0.0)

    coo_src = SparseFeatures(n, p, 1, seed=0, device=dev)
    emb_src = SparseFeatures(n, p, 1, d_embed=64, seed=0, device=dev)
    fns = {
        "dense rand + where (reference)": dense,
        "sparse: coordinate form": lambda: coo_src.sample_coo(b),
        "sparse: embedded in 64 dims": lambda: emb_src.sample(b),
        "sparse: materialised (B, N)": lambda: coo_src.sample(b),
    }
    for f in fns.values():
        f()  # warm-up
    t = interleaved({k: (lambda f=f: timed(f, dev)) for k, f in fns.items()}, rounds=args.rounds)
    ref = t["dense rand + where (reference)"]
    rows = [[k, f"{v * 1e3:.1f}", f"{ref / v:.1f}x"] for k, v in t.items()]
    nnz = coo_src.sample_coo(b).nnz
    print(f"Sparse features: N = {n:,}, p = {p:g}, batch {b} ({nnz:,} active entries), {device_line(dev)}")
    print(table(["sampler", "ms / batch", "speed-up vs dense"], rows))
    if dev.type == "cpu":
        print(f"process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB "
              f"(the dense reference alone needs ~{3 * 4 * n * b / 2**30 + n * b / 2**30:.1f} GiB)")
    emit("data", [{"sampler": k, "seconds_per_batch": v} for k, v in t.items()], n_features=n, p=p, batch=b,
         active=nnz, device=dev.type)


if __name__ == "__main__":
    main()
