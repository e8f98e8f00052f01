"""Evaluate trained SAEs on fresh samples of a data source, with :mod:`toymodels.metrics`.

:func:`evaluate_sae` returns per-instance lists (JSON-ready): reconstruction (mse, fvu,
shrinkage), sparsity (l0, dead and dense fractions, a firing-frequency histogram) and, when
the source has ground-truth directions, recovery of them (mmcs, mcc); for activations of a
toy model also the downstream loss with the SAE spliced in.
"""
from __future__ import annotations

from typing import Any

import torch

from ..measures import metrics as M
from .._validate import check_float, check_int
from ..data.features import ModelActivations, SparseFeatures


def ground_truth_directions(source: Any) -> torch.Tensor | None:
    """The true feature directions of a source as rows (I or 1, N, D), or None.

    SparseFeatures with ``d_embed``: its random unit directions; without: the standard
    basis (feature i is coordinate i); ModelActivations: the toy model's feature columns
    W_i in hidden space. Other sources (Gaussian mixture, unit cube) have none.
    """
    if isinstance(source, ModelActivations):
        return source.directions
    if isinstance(source, SparseFeatures):
        if source.directions is not None:
            return source.directions
        return torch.eye(source.n_features, device=source.device)[None]
    return None


def _firing_counts(f: torch.Tensor) -> torch.Tensor:
    """(I, F) how many of the batch's samples each latent fires on (f ≠ 0; a NaN code counts),
    from codes f (I, B, F). A product with a row of ones: summing a bool tensor over the
    batch costs about five times as much. Exact: the counts are integers below 2²⁴."""
    on = (f != 0).to(f.dtype if f.dtype in (torch.float32, torch.float64) else torch.float32)
    if f.shape[1] >= 1 << 24:
        raise ValueError(f"a batch of {f.shape[1]} samples is too large to count firings exactly in float32")
    ones = torch.ones(f.shape[0], 1, f.shape[1], dtype=on.dtype, device=f.device)
    return torch.bmm(ones, on)[:, 0, :]


@torch.no_grad()
def evaluate_sae(
    sae: Any,
    source: Any,
    *,
    n_samples: int = 8192,
    batch_size: int = 4096,
    truth: torch.Tensor | None | str = "auto",
    keep: torch.Tensor | None = None,
    dense_threshold: float = 0.1,
) -> dict[str, Any]:
    """Per-instance metrics of ``sae`` on ``n_samples`` fresh samples of ``source``.

    ``truth``: rows (I or 1, N, D) of true directions; "auto" takes them from the source
    (:func:`ground_truth_directions`), None skips mmcs/mcc. ``keep`` (I, F) bool zeroes the
    codes of removed latents (e.g. from :func:`toymodels.metrics.prune_by_frequency`) before
    decoding. Keys: l0, mse, fvu, shrinkage (relative reconstruction bias γ), norm_ratio,
    dead_fraction, dense_fraction, frequency_histogram; mmcs and mcc with ground truth;
    downstream_loss, clean_loss, zero_ablated_loss and loss_recovered for a toy model's
    activations. A source with a held-out split (:class:`toymodels.activations.Activations`)
    is scored on its held-out rows (at most all of them, each once).
    """
    n_samples, batch_size = check_int("n_samples", n_samples, 1), check_int("batch_size", batch_size, 1)
    heldout = getattr(source, "heldout", None)
    held = heldout() if callable(heldout) else None
    if held is not None:  # your own activations: score on the held-out rows, each once
        source = held
        n_samples = min(n_samples, len(source))
    check_float("dense_threshold", dense_threshold, 0.0, 1.0)
    n_i, n_f = sae.n_instances, sae.dict_size
    if keep is not None:
        keep = keep.to(device=sae.device_, dtype=torch.bool)
        if keep.shape != (n_i, n_f):
            raise ValueError(f"keep must be shaped (n_instances, dict_size) = ({n_i}, {n_f}), got {tuple(keep.shape)}")
    xs, x_hats = [], []
    fires = torch.zeros(n_i, n_f, device=sae.device_)
    seen = 0
    while seen < n_samples:
        b = min(batch_size, n_samples - seen)
        x = source.sample(b).to(sae.dtype)
        if keep is None:  # one pass (a k-sparse SAE decodes from its active latents only)
            f, x_hat = sae.encode_decode(x)
        else:
            f = sae.encode(x) * keep[:, None, :]
            x_hat = sae.decode(f)
        x_hats.append(x_hat)
        xs.append(x)
        fires += _firing_counts(f)
        seen += b
    x, x_hat = torch.cat(xs, dim=1), torch.cat(x_hats, dim=1)
    freq = fires / seen
    hist = M.frequency_histogram(freq)
    out: dict[str, Any] = {
        "l0": (fires.sum(dim=1) / seen).tolist(),  # Σ_j (firings of j) = Σ_b (latents on in b)
        "mse": M.mse(x, x_hat).tolist(),
        "fvu": M.fvu(x, x_hat).tolist(),
        "shrinkage": M.relative_reconstruction_bias(x, x_hat).tolist(),
        "norm_ratio": M.norm_ratio(x, x_hat).tolist(),
        "dead_fraction": M.dead_fraction(freq).tolist(),
        "dense_fraction": M.dense_fraction(freq, dense_threshold).tolist(),
        "frequency_histogram": {"log10_edges": hist["edges"].tolist(), "counts": hist["counts"].tolist(), "dead": hist["dead"].tolist()},
        "eval_samples": seen,
    }
    if isinstance(truth, str):
        if truth != "auto":
            raise ValueError(f"truth must be a tensor, None or 'auto'; got {truth!r}")
        truth = ground_truth_directions(source)
    if truth is not None:
        truth_cols = truth.to(device=sae.device_, dtype=sae.dtype).transpose(-1, -2)  # (I or 1, D, N)
        if truth_cols.shape[-2] != sae.d_model:
            raise ValueError(f"ground-truth directions have dim {truth_cols.shape[-2]}, the SAE has d_model = {sae.d_model}")
        learned = sae.decoder_directions()
        out["mmcs"] = M.mmcs(learned, truth_cols).reshape(-1).expand(n_i).tolist()
        out["mcc"] = M.mcc(learned, truth_cols).reshape(-1).expand(n_i).tolist()
    if isinstance(source, ModelActivations):
        feats = source.features.sample(min(n_samples, 8192))

        def reconstruct(h: torch.Tensor) -> torch.Tensor:
            f = sae.encode(h.to(sae.dtype))
            return sae.decode(f if keep is None else f * keep[:, None, :])

        d = M.spliced_loss(source.model, feats, reconstruct)
        out["downstream_loss"] = d["spliced"].reshape(-1).expand(n_i).tolist()
        out["clean_loss"] = d["clean"].reshape(-1).expand(n_i).tolist()
        out["zero_ablated_loss"] = d["zero_ablated"].reshape(-1).expand(n_i).tolist()
        out["loss_recovered"] = d["loss_recovered"].reshape(-1).expand(n_i).tolist()
    return out
