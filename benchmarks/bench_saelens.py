"""Our TopK SAE against SAELens's ``train_toy_sae`` on SAELens's own synthetic data.

    python benchmarks/bench_saelens.py [--features 256] [--d 64] [--dict-size 256] [--k 8]
                                       [--samples 2000000] [--batch-size 1024] [--threads 1]

Skipped (exit 0, one line) when ``sae_lens`` is not importable: run it where sae-lens 6.x is
installed (``make test-interop`` installs it into the project venv, or put this checkout on
PYTHONPATH in a venv that has it).

The data: SAELens's generator — ``FeatureDictionary(N, D)`` (its random feature directions)
applied to ``ActivationGenerator(N, zipfian_firing_probabilities(N))`` — drawn once
(``--samples`` rows) and saved with ``toymodels.activations.save_activations`` as .npy, then
read back memory-mapped by ``toymodels.activations.Activations`` (what ``toymodels sae
--data activations --activations FILE`` does). SAELens trains a ``TopKTrainingSAE`` with
``train_toy_sae`` on fresh draws of the same generator, ``--samples`` samples in batches of
``--batch-size``, at its default lr 3e-4 and at 1e-3; ours trains ``topk`` with the same
dictionary size, k, batch size and number of samples at lr 1e-3 and 3e-3 (best of each
side's two compared). Both in this process, same
torch, same threads. Score: SAELens's own ``mean_correlation_coefficient`` between the
decoder rows and the true feature directions (Hungarian matching of |cos|). Wall time of the
training call only (data generation and saving excluded for both).

Target (issue 10): ours reaches at least SAELens's MCC in at most half its wall time.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--features", type=int, default=256)
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--dict-size", type=int, default=256)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--samples", type=int, default=2_000_000)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    try:
        import sae_lens
        from sae_lens import TopKTrainingSAE, TopKTrainingSAEConfig
        from sae_lens.synthetic import (ActivationGenerator, FeatureDictionary, mean_correlation_coefficient,
                                        train_toy_sae, zipfian_firing_probabilities)
    except ImportError as e:
        print(f"bench_saelens: skipped, sae_lens is not importable ({e}); `make test-interop` installs it")
        return 0
    import torch

    from toymodels.data.activations import Activations, save_activations
    from toymodels.sae import SAEConfig, build_sae
    from toymodels.train import TrainConfig, train

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    fd = FeatureDictionary(a.features, a.d)
    gen = ActivationGenerator(a.features, zipfian_firing_probabilities(a.features))
    truth = fd.feature_vectors.detach()
    with torch.no_grad():
        rows = []
        for s in range(0, a.samples, 65536):
            rows.append(fd(gen.sample(min(65536, a.samples - s))))
        x = torch.cat(rows)
    l0 = float((gen.sample(65536) != 0).sum(-1).float().mean())
    print(f"sae_lens {sae_lens.__version__}, torch {torch.__version__}, {a.threads} thread(s); N = {a.features} features "
          f"in D = {a.d} (true mean L0 {l0:.2f}), F = {a.dict_size}, k = {a.k}, {a.samples} samples, batch {a.batch_size}")
    rows_out = []
    with tempfile.TemporaryDirectory() as tmp:
        path = save_activations(Path(tmp) / "saelens_synthetic.npy", x)
        del x
        src = Activations(path, holdout=0.0, seed=a.seed)
        steps = a.samples // a.batch_size
        for lr in (3e-4, 1e-3):
            sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=a.d, d_sae=a.dict_size, k=a.k))
            t0 = time.perf_counter()
            train_toy_sae(sae, fd, gen, training_samples=a.samples, batch_size=a.batch_size, lr=lr)
            wall = time.perf_counter() - t0
            mcc = mean_correlation_coefficient(sae.W_dec.detach(), truth)
            rows_out.append((f"SAELens train_toy_sae (lr {lr:g})", mcc, wall))
        for lr in (1e-3, 3e-3):
            ours = build_sae(SAEConfig(arch="topk", d_model=a.d, dict_size=a.dict_size, k=a.k), seed=a.seed)
            src.set_state(Activations(path, holdout=0.0, seed=a.seed, _check=False).get_state())
            t0 = time.perf_counter()
            train(ours, src, TrainConfig(steps=steps, batch_size=a.batch_size, lr=lr, quiet=True, eval_samples=1024))
            wall = time.perf_counter() - t0
            mcc = mean_correlation_coefficient(ours.W_dec[0].detach(), truth)
            rows_out.append((f"toymodels topk from the saved file (lr {lr:g})", mcc, wall))
    print(f"{'trainer':<48} {'MCC':>7} {'wall s':>8}")
    for name, mcc, wall in rows_out:
        print(f"{name:<48} {mcc:>7.4f} {wall:>8.2f}")
    best = max(rows_out[:2], key=lambda r: r[1])
    mine = max(rows_out[2:], key=lambda r: r[1])
    ok = mine[1] >= best[1] and mine[2] <= 0.5 * best[2]
    print(f"target (MCC >= SAELens's best {best[1]:.4f} in <= half its {best[2]:.2f} s): {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
