"""Sparse autoencoders, batched over a leading instance axis (an L1 or k sweep is one run).

An L1 sweep over four instances in one run, scored against the true directions::

    from toymodels import SparseFeatures
    from toymodels.train import TrainConfig, train
    from toymodels.sae import SAEConfig, build_sae, evaluate_sae

    src = SparseFeatures(128, 3 / 128, d_embed=64)          # ground truth: src.directions
    cfg = SAEConfig(arch="relu", d_model=64, dict_size=256, n_instances=4,
                    l1_coefficient=(0.03, 0.06, 0.13, 0.3))
    sae = build_sae(cfg, seed=0)
    train(sae, src, TrainConfig(steps=3000, batch_size=1024))
    evaluate_sae(sae, src)["mmcs"]                           # one value per instance

``sae.encode(x)`` gives codes (I, B, F), ``sae(x)`` reconstructions, ``sae.W_dec`` the
decoder rows (I, F, D) and ``sae.decoder_directions()`` the same as columns (I, D, F), the
layout of :func:`toymodels.metrics.mmcs`. The command line is ``toymodels sae``
(:mod:`toymodels.cli.sae`).

Architectures (one module each, found by :func:`~.registry.discover` and registered by name
in :data:`ARCHITECTURES`; each declares its own ``Options`` dataclass):

- ``relu``      ReLU + L1 weighted by decoder norms (Bricken et al. 2023)      :mod:`.relu`
- ``gated``     Gated SAE (Rajamanoharan et al. 2024)                          :mod:`.gated`
- ``rescaled``  the Gated SAE's loss without its Heaviside gate (seed 000)     :mod:`.gated`
- ``topk``      TopK with the aux-k loss (Gao et al. 2024)                     :mod:`.topk`
- ``batchtopk`` BatchTopK with a calibrated inference threshold (Bussmann et al. 2024)
- ``jumprelu``  JumpReLU with an L0 penalty and STE thresholds (Rajamanoharan et al. 2024b)
- ``bound``     ReLU SAE with W_dec = [W_half; W_half R_map] (seed 004)         :mod:`.bound`
- ``matryoshka`` Matryoshka BatchTopK: nested prefixes each reconstruct (Bussmann et al. 2025)

SAELens (sae-lens 6.x) files: :func:`to_saelens` / :func:`export_saelens` write them,
:func:`from_saelens` reads one back (:mod:`.saelens`).

Adding one: a module ``toymodels/sae/<name>.py`` defining an :class:`SAE` subclass decorated
with ``@register`` (its ``encode``, ``_forward_terms``, optionally ``Options``, ``uses_k``,
``check_config`` and a hand-derived ``loss_and_grad_core``), and a test file
``tests/sae/test_<name>.py``; the conformance suite (``tests/sae/test_conformance.py``) runs
for it automatically. Train with :func:`toymodels.train.train`; measure with
:func:`evaluate_sae` and :mod:`toymodels.metrics`.
"""
from __future__ import annotations

from typing import Any

import torch

from .registry import ARCHITECTURES, arch_names, discover, k_archs, register
from .config import SAEConfig
from .base import SAE, decoder_orthogonality, geometric_median

discover()  # import every architecture module: each registers its classes

from .relu import ReLUSAE  # noqa: E402
from .gated import GatedSAE, RescaledSAE  # noqa: E402
from .topk import TopKSAE  # noqa: E402
from .batchtopk import BatchTopKSAE  # noqa: E402
from .jumprelu import JumpReLUSAE  # noqa: E402
from .bound import BoundSAE  # noqa: E402
from .evaluate import evaluate_sae, ground_truth_directions  # noqa: E402
from .saelens import export_saelens, from_saelens, to_saelens  # noqa: E402


def build_sae(config: SAEConfig, *, seed: int = 0, device: str | torch.device = "cpu") -> SAE:
    """The SAE class registered under ``config.arch``, initialised from ``seed``."""
    return ARCHITECTURES[config.arch](config, seed=seed, device=device)


def sae_from_spec(spec: dict[str, Any], device: str | torch.device = "cpu") -> SAE:
    """Rebuild an (untrained) SAE from :meth:`SAE.spec` (as saved in a run folder's
    config.json); load the weights separately (:func:`toymodels.runs.load_model` does both).
    Specs saved before options moved to the architectures (flat ``jumprelu_bandwidth``,
    ``jumprelu_init_threshold``, ``threshold_ema`` keys) still load."""
    spec = dict(spec)
    family = spec.pop("family", "sae")
    if family != "sae":
        raise ValueError(f"spec is for model family {family!r}, not 'sae'")
    seed = spec.pop("seed", 0)
    return build_sae(SAEConfig.from_dict(spec), seed=seed, device=device)  # from_dict upgrades old flat option keys


__all__ = [
    "ARCHITECTURES",
    "BatchTopKSAE",
    "BoundSAE",
    "GatedSAE",
    "JumpReLUSAE",
    "ReLUSAE",
    "RescaledSAE",
    "SAE",
    "SAEConfig",
    "TopKSAE",
    "arch_names",
    "build_sae",
    "k_archs",
    "decoder_orthogonality",
    "evaluate_sae",
    "export_saelens",
    "from_saelens",
    "geometric_median",
    "ground_truth_directions",
    "register",
    "sae_from_spec",
    "to_saelens",
]
