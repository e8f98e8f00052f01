"""Our TopK, BatchTopK and ReLU SAEs against SAELens's at the SAME settings, on SAELens's own
synthetic data.

    python benchmarks/bench_saelens.py [--archs topk,batchtopk,relu] [--features 256] [--d 64]
                                       [--dict-size 256] [--k 4] [--lr 3e-4] [--l1 L]
                                       [--samples 400000] [--batch-size 1024] [--threads 1]
                                       [--seed 0] [--ablation] [--quick]

Skipped (exit 0, one line) when ``sae_lens`` is not importable: run it where sae-lens 6.x is
installed (``make test-interop`` installs it into the project venv, or put this checkout on
PYTHONPATH in a venv that has it).

The data: SAELens's generator — ``FeatureDictionary(N, D)`` (its random unit feature
directions) applied to ``ActivationGenerator(N, zipfian_firing_probabilities(N))`` — drawn
once (``--samples`` rows) and saved with ``toymodels.data.activations.save_activations`` as
.npy, then read back memory-mapped by ``toymodels.data.activations.Activations`` (what
``toymodels sae --data activations --activations FILE`` does). SAELens trains with
``train_toy_sae`` on fresh draws of the same generator (its own loop: Adam (0.9, 0.999),
constant lr, grad-norm clipping at 1, dead window 1000 steps).

Equal settings, per architecture (SAELens class → ours): ``TopKTrainingSAE`` → ``topk`` and
``BatchTopKTrainingSAE`` → ``batchtopk`` with the same k; ``StandardTrainingSAE`` → ``relu``
with the same L1 coefficient — by default SAELens's own default (read from the installed
``StandardTrainingSAEConfig``), which means the same in both: both losses are
mean_b ||x − x̂||² + λ · mean_b Σ_j f_j ||d_j|| (ours keeps ||d_j|| = 1, SAELens lets it
drift and weights by it). Same dictionary size, lr (SAELens's default 3e-4), batch size and
number of samples; everything else at each side's defaults. Both in this process, same torch,
same threads.

Score: SAELens's own ``mean_correlation_coefficient`` between the decoder rows and the true
feature directions (Hungarian matching of |cos|); ours also FVU on 16384 fresh samples. Wall
time of the training call only (data generation and saving excluded for both); speed-up =
SAELens s / ours s.

``--ablation`` also trains ours once per single change on the same data (the evidence for
what made ours reach SAELens's MCC): the old defaults (``decoder_lr_scale`` = 1,
``encoder_init_norm`` = 1), and from there one change each — b_dec initialised to zeros
(SAELens's), the aux-k loss off (SAELens's dead window of 1000 steps never opens in 390
steps), ``encoder_init_norm`` 0.1 (SAELens's encoder scale), ``decoder_lr_scale`` 10
(SAELens's rows at norm 0.1 turn 10× as fast under Adam) — and both (the new defaults).

The last line is machine-readable (``make bench-check`` reads it)::

    {"bench": "saelens", "sae_lens": VERSION, "settings": {...},
     "rows": [{"arch", "mcc_saelens", "mcc_ours", "fvu_ours", "seconds_saelens", "seconds_ours"}, ...],
     "ablation": [{"arch", "variant", "mcc_ours", "fvu_ours", "seconds_ours"}, ...]}   # with --ablation

Target: at equal settings ours reaches at least SAELens's MCC for each architecture, faster.
``--quick`` runs a small version (N = 64 in D = 32, F = 64, 40000 samples) as a smoke test.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable

ARCHS = ("topk", "batchtopk", "relu")
"""Ours, in the order of the table; SAELens's training class for each is in :func:`_saelens_sae`."""


def _saelens_sae(arch: str, a: argparse.Namespace) -> Any:
    """SAELens's training SAE for ``arch`` at the shared settings (its defaults otherwise)."""
    import sae_lens as sl

    if arch == "topk":
        return sl.TopKTrainingSAE(sl.TopKTrainingSAEConfig(d_in=a.d, d_sae=a.dict_size, k=a.k))
    if arch == "batchtopk":
        return sl.BatchTopKTrainingSAE(sl.BatchTopKTrainingSAEConfig(d_in=a.d, d_sae=a.dict_size, k=a.k))
    return sl.StandardTrainingSAE(sl.StandardTrainingSAEConfig(d_in=a.d, d_sae=a.dict_size, l1_coefficient=a.l1))


def _saelens_default_l1() -> float:
    from sae_lens import StandardTrainingSAEConfig

    return float(next(f.default for f in fields(StandardTrainingSAEConfig) if f.name == "l1_coefficient"))


def _fvu(model: Callable[[Any], Any], x: Any) -> float:
    from toymodels.measures.metrics import fvu

    return float(fvu(x, model(x)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", default=",".join(ARCHS), help=f"comma-separated subset of {','.join(ARCHS)}")
    p.add_argument("--features", type=int, default=256)
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--dict-size", type=int, default=256)
    p.add_argument("--k", type=int, default=4, help="k of topk and batchtopk (both sides)")
    p.add_argument("--lr", type=float, default=3e-4, help="both sides (SAELens's default)")
    p.add_argument("--l1", type=float, default=None, help="relu's L1 coefficient, both sides (default: SAELens's default)")
    p.add_argument("--samples", type=int, default=400_000)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ablation", action="store_true", help="also train ours once per single change (see the docstring)")
    p.add_argument("--quick", action="store_true", help="small smoke test: N = 64 in D = 32, F = 64, 40000 samples")
    a = p.parse_args(argv)
    archs = [s for s in a.archs.split(",") if s]
    bad = sorted(set(archs) - set(ARCHS))
    if bad or not archs:
        p.error(f"--archs: unknown {bad}; choose from {','.join(ARCHS)}")
    if a.quick:
        a.features, a.d, a.dict_size, a.samples = 64, 32, 64, 40_000
    try:
        import sae_lens
        from sae_lens.synthetic import (ActivationGenerator, FeatureDictionary, mean_correlation_coefficient,
                                        train_toy_sae, zipfian_firing_probabilities)
    except ImportError as e:
        print(f"bench_saelens: skipped, sae_lens is not importable ({e}); `make test-interop` installs it")
        return 0
    import torch

    from toymodels.data.activations import Activations, save_activations
    from toymodels.sae import SAEConfig, build_sae
    from toymodels.train import TrainConfig, train

    if a.l1 is None:
        a.l1 = _saelens_default_l1()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    fd = FeatureDictionary(a.features, a.d)
    gen = ActivationGenerator(a.features, zipfian_firing_probabilities(a.features))
    fd.eval()
    truth = fd.feature_vectors.detach()
    with torch.no_grad():
        x = torch.cat([fd(gen.sample(min(65536, a.samples - s))) for s in range(0, a.samples, 65536)])
        x_eval = fd(gen.sample(16384))
        l0 = float((gen.sample(65536) != 0).sum(-1).float().mean())
    steps = a.samples // a.batch_size
    settings = {"features": a.features, "d": a.d, "dict_size": a.dict_size, "k": a.k, "l1": a.l1, "lr": a.lr,
                "samples": a.samples, "batch_size": a.batch_size, "steps": steps, "threads": a.threads, "seed": a.seed}
    print(f"sae_lens {sae_lens.__version__}, torch {torch.__version__}, {a.threads} thread(s); N = {a.features} features "
          f"in D = {a.d} (true mean L0 {l0:.2f}), F = {a.dict_size}, k = {a.k} (topk, batchtopk), L1 {a.l1:g} (relu), "
          f"lr {a.lr:g}, batch {a.batch_size}, {a.samples} samples ({steps} steps) on both sides", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        path = save_activations(Path(tmp) / "saelens_synthetic.npy", x)
        del x

        def train_ours(arch: str, **cfg: Any) -> tuple[float, float, float]:
            kw: dict[str, Any] = {"k": a.k} if arch != "relu" else {"l1_coefficient": a.l1}
            ours = build_sae(SAEConfig(arch=arch, d_model=a.d, dict_size=a.dict_size, **{**kw, **cfg}), seed=a.seed)
            src = Activations(path, holdout=0.0, seed=a.seed)  # the same rows in the same order for every run
            t0 = time.perf_counter()
            train(ours, src, TrainConfig(steps=steps, batch_size=a.batch_size, lr=a.lr, quiet=True, eval_samples=1024))
            wall = time.perf_counter() - t0
            with torch.no_grad():
                mcc = mean_correlation_coefficient(ours.W_dec[0].detach(), truth)
                fvu = _fvu(lambda v: ours(v[None])[0], x_eval)
            return float(mcc), fvu, wall

        rows = []
        for j, arch in enumerate(archs):
            torch.manual_seed(a.seed * 1000 + j)  # SAELens's init and its fresh draws
            theirs = _saelens_sae(arch, a)
            t0 = time.perf_counter()
            train_toy_sae(theirs, fd, gen, training_samples=a.samples, batch_size=a.batch_size, lr=a.lr)
            wall_s = time.perf_counter() - t0
            mcc_s = float(mean_correlation_coefficient(theirs.W_dec.detach(), truth))
            mcc_o, fvu_o, wall_o = train_ours(arch)
            rows.append({"arch": arch, "mcc_saelens": round(mcc_s, 4), "mcc_ours": round(mcc_o, 4),
                         "fvu_ours": round(fvu_o, 4), "seconds_saelens": round(wall_s, 2), "seconds_ours": round(wall_o, 2)})
            print(f"  {arch}: SAELens MCC {mcc_s:.4f} in {wall_s:.1f} s, ours {mcc_o:.4f} in {wall_o:.1f} s", flush=True)

        ablation = []
        if a.ablation:
            old = {"decoder_lr_scale": 1.0, "encoder_init_norm": 1.0}
            variants: list[tuple[str, dict[str, Any]]] = [
                ("old defaults (dec lr scale 1, enc norm 1)", old),
                ("old + b_dec_init zeros", {**old, "b_dec_init": "zeros"}),
                ("old + encoder_init_norm 0.1", {**old, "encoder_init_norm": 0.1}),
                ("old + decoder_lr_scale 10", {**old, "decoder_lr_scale": 10.0}),
                ("new defaults (both)", {}),
            ]
            for arch in archs:
                arch_variants = list(variants)
                if arch != "relu":
                    arch_variants.insert(2, ("old + aux-k off", {**old, "aux_k": 0}))
                for name, cfg in arch_variants:
                    mcc_o, fvu_o, wall_o = train_ours(arch, **cfg)
                    ablation.append({"arch": arch, "variant": name, "mcc_ours": round(mcc_o, 4),
                                     "fvu_ours": round(fvu_o, 4), "seconds_ours": round(wall_o, 2)})
                    print(f"  ablation {arch}: {name}: MCC {mcc_o:.4f}", flush=True)

    print(f"\n{'arch':<10} {'SAELens MCC':>11} {'ours MCC':>9} {'ours FVU':>9} {'SAELens s':>10} {'ours s':>7} {'speed-up':>9}")
    for r in rows:
        print(f"{r['arch']:<10} {r['mcc_saelens']:>11.4f} {r['mcc_ours']:>9.4f} {r['fvu_ours']:>9.4f} "
              f"{r['seconds_saelens']:>10.2f} {r['seconds_ours']:>7.2f} {r['seconds_saelens'] / r['seconds_ours']:>8.1f}x")
    if ablation:
        print(f"\n{'arch':<10} {'ablation of ours (one change at a time)':<40} {'MCC':>7} {'FVU':>7} {'s':>6}")
        for r in ablation:
            print(f"{r['arch']:<10} {r['variant']:<40} {r['mcc_ours']:>7.4f} {r['fvu_ours']:>7.4f} {r['seconds_ours']:>6.2f}")
    met = all(r["mcc_ours"] >= r["mcc_saelens"] and r["seconds_ours"] < r["seconds_saelens"] for r in rows)
    print(f"target (each arch: ours MCC >= SAELens's, in less wall time): {'met' if met else 'NOT met'}"
          + (" (--quick: a smoke test, too short to judge)" if a.quick else ""))
    out: dict[str, Any] = {"bench": "saelens", "sae_lens": sae_lens.__version__, "torch": torch.__version__,
                           "settings": settings, "rows": rows}
    if ablation:
        out["ablation"] = ablation
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
