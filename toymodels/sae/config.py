"""``SAEConfig``: every setting of a batched sparse autoencoder, checked at construction.

The config is the documentation: each field has a default and a docstring. Bad values
(a dictionary smaller than 1, k not below the dictionary size, a negative or NaN
coefficient, an unknown architecture or option) raise ``ValueError`` naming the field and its allowed range, so
they never reach training. :meth:`SAEConfig.from_dict` rejects unknown keys, so a typo in a
saved spec fails instead of being ignored.

Options that belong to one architecture (JumpReLU's bandwidth, BatchTopK's threshold EMA)
live in that architecture's module as its ``Options`` dataclass; ``SAEConfig.options`` holds
an instance of it, and the architecture's ``check_config`` adds its own cross-field rules
(``bound`` needs an even dict_size).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch

from .._validate import check_choice, check_int, check_nonneg, check_positive
from .registry import ARCHITECTURES, arch_names, k_archs, make_options

B_DEC_INITS = ("zeros", "mean", "geometric-median")

PRE_FIELD_DEFAULTS: dict[str, Any] = {"decoder_lr_scale": 1.0, "encoder_init_norm": 1.0}
"""Fields added after configs were first saved, with the value that reproduces the behaviour
from before them: :meth:`SAEConfig.from_dict` fills a saved spec's missing field with it
(not with the field's current default), so an old run folder resumes and re-runs as trained."""


def __getattr__(name: str) -> Any:
    # ``K_ARCHS`` moved to the architecture classes (``ARCHITECTURES[name].uses_k``); this
    # computed alias keeps old imports working (it is not a constant: archs are discovered).
    if name == "K_ARCHS":
        return k_archs()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _per_instance(name: str, value: Any, n_instances: int, check) -> Any:
    """A scalar, or a sequence of exactly ``n_instances`` values; each passes ``check``."""
    if isinstance(value, (list, tuple)):
        if len(value) != n_instances:
            raise ValueError(
                f"{name} has {len(value)} values but n_instances = {n_instances}; give one value or one per instance"
            )
        return tuple(check(f"{name}[{i}]", v) for i, v in enumerate(value))
    if isinstance(value, torch.Tensor):
        return _per_instance(name, value.tolist() if value.ndim else value.item(), n_instances, check)
    return check(name, value)


@dataclass(frozen=True)
class SAEConfig:
    """Shape, architecture and training options of I sparse autoencoders trained side by side.

    Shapes: D = ``d_model`` (input dim), F = ``dict_size`` (latents), I = ``n_instances``.
    ``l1_coefficient`` and ``k`` take one value, or one per instance (a sweep in one run).
    """

    arch: str = "relu"
    """Architecture: a name registered in toymodels.sae.ARCHITECTURES (relu, gated, rescaled,
    topk, batchtopk, jumprelu, bound; one module each in toymodels/sae/)."""
    d_model: int = 64
    """D, the width of the activations the SAE reconstructs."""
    dict_size: int = 256
    """F, the number of latents (dictionary directions). Even for ``bound``."""
    n_instances: int = 1
    """I, independent SAEs trained side by side (an L1 or k sweep, or seeds)."""
    l1_coefficient: float | tuple[float, ...] = 0.1
    """λ >= 0, the sparsity penalty's coefficient: L1 for relu/gated/rescaled/bound, L0 for
    jumprelu; unused by topk/batchtopk. One value or one per instance."""
    k: int | tuple[int, ...] | None = None
    """Active latents per sample for topk (exact) and batchtopk (on average over the batch);
    required by those, in [1, dict_size - 1] (k >= dict_size would keep every latent). One
    value or one per instance."""
    aux_k: int | None = None
    """topk/batchtopk: dead latents used by the aux-k loss (Gao et al. 2024, section A.2);
    None means max(1, d_model // 2) capped at dict_size; 0 turns the aux-k loss off."""
    aux_coefficient: float = 1 / 32
    """α, the weight of the aux-k loss (Gao et al. use 1/32)."""
    dead_window: int = 200
    """A latent that has not fired for this many training steps counts as dead (for the aux-k
    loss and for resampling)."""
    decoder_orthogonality: float = 0.0
    """Coefficient of the decoder-orthogonality penalty: mean over pairs i != j of
    cos²(d_i, d_j) of the decoder rows (seed 000); 0 turns it off."""
    decoder_lr_scale: float | None = None
    """The unit-norm decoder rows' learning rate as a multiple of the trainer's (> 0): each
    optimizer step's change of those rows is multiplied by this (after the radial part of the
    gradient is projected out, before the rows are renormalised). None: the architecture's
    default (``ARCHITECTURES[arch].default_decoder_lr_scale``: 10 for relu, topk, batchtopk
    and matryoshka, 1 for the others). Under Adam a parameter moves about lr per coordinate
    per step whatever its scale, so a unit row turns ~lr·√D radians per step; SAELens stores
    its rows at norm 0.1 (``decoder_init_norm``), which turns them 10 times as fast at the
    same lr. 10 matches that, and is what lets ours reach SAELens's MCC at its settings
    (benchmarks/bench_saelens.py --ablation); 1 is the behaviour before this field existed (a
    saved config without it loads with 1). A training-only setting: inference and the saved
    weights do not depend on it."""
    tied_init: bool = True
    """Initialise the encoder as the transpose of the decoder (otherwise independent random
    directions), times ``encoder_init_norm``."""
    encoder_init_norm: float | None = None
    """The norm of each initial encoder column (> 0). None: the architecture's default
    (``ARCHITECTURES[arch].default_encoder_init_norm``: 0.1 for relu, topk, batchtopk and
    matryoshka, 1 for the others — a JumpReLU's thresholds are set for unit columns, and at
    0.1 it recovers far fewer features). 0.1 is SAELens's (its encoder starts as the transpose
    of its decoder, whose rows start at norm 0.1): under Adam, whose step is about lr per
    coordinate, a smaller encoder changes faster relative to its size; at SAELens's settings
    it lifts the ReLU SAE's MCC above SAELens's (benchmarks/bench_saelens.py --ablation). 1 is
    the behaviour before this field existed (a saved config without it loads with 1)."""
    b_dec_init: str = "geometric-median"
    """How b_dec is set from the first training batch: zeros, mean, or geometric-median
    (Weiszfeld's algorithm, as in Bricken et al. 2023)."""
    sparsity_warmup_steps: int = 0
    """Ramp λ linearly from λ/N to λ over the first N steps (0: no warm-up)."""
    resample_every: int = 0
    """Every this many steps, re-initialise dead latents towards high-loss inputs and reset
    their Adam moments (Bricken et al. 2023, "Towards Monosemanticity"); 0: never."""
    resample_scale: float = 0.2
    """A resampled encoder column is the input direction times this factor times the mean
    norm of the alive encoder columns (0.2 in Bricken et al. 2023)."""
    options: Any = None
    """The architecture's own options: an instance of ``ARCHITECTURES[arch].Options`` or a dict
    of its fields (None: all defaults); validated at construction, unknown keys rejected.
    Stored as the ``Options`` instance; saved as a dict under "options"."""

    def __post_init__(self) -> None:
        check_choice("arch", self.arch, arch_names())
        for name in ("d_model", "dict_size", "n_instances"):  # stored as int (5.0 → 5; 5.5 raises)
            object.__setattr__(self, name, check_int(name, getattr(self, name), 1))
        i, f = self.n_instances, self.dict_size
        cls = ARCHITECTURES[self.arch]
        l1 = _per_instance("l1_coefficient", self.l1_coefficient, i, check_nonneg)
        object.__setattr__(self, "l1_coefficient", l1)
        if self.k is None:
            if cls.uses_k:
                raise ValueError(f"k is required for arch {self.arch!r}: an integer in [1, dict_size - 1 = {f - 1}]")
        else:
            # a k-sparse SAE with k >= F keeps every latent: nothing sparse about it
            hi = f - 1 if cls.uses_k else f
            if hi < 1:
                raise ValueError(f"k must be < dict_size for arch {self.arch!r}, so dict_size must be >= 2; got dict_size = {f}")
            k = _per_instance("k", self.k, i, lambda n, v: _check_k(n, v, hi, self.arch if cls.uses_k else None))
            object.__setattr__(self, "k", k)
        if self.aux_k is not None:
            object.__setattr__(self, "aux_k", check_int("aux_k", self.aux_k, 0, f))
        for name, lo in (("dead_window", 1), ("sparsity_warmup_steps", 0), ("resample_every", 0)):
            object.__setattr__(self, name, check_int(name, getattr(self, name), lo))
        for name in ("aux_coefficient", "decoder_orthogonality", "resample_scale"):
            object.__setattr__(self, name, check_nonneg(name, getattr(self, name)))
        for name in ("decoder_lr_scale", "encoder_init_norm"):  # None: the architecture's default
            value = getattr(self, name)
            value = getattr(cls, f"default_{name}") if value is None else value
            object.__setattr__(self, name, check_positive(name, value))
        if not isinstance(self.tied_init, bool):
            raise ValueError(f"tied_init must be True or False, got {self.tied_init!r}")
        check_choice("b_dec_init", self.b_dec_init, B_DEC_INITS)
        object.__setattr__(self, "options", make_options(self.arch, self.options))
        cls.check_config(self)

    # ------------------------------------------------------------------ helpers
    def per_instance(self, name: str) -> list[Any]:
        """``l1_coefficient`` or ``k`` as a list of n_instances values."""
        v = getattr(self, name)
        return list(v) if isinstance(v, tuple) else [v] * self.n_instances

    @property
    def effective_aux_k(self) -> int:
        """The aux-k used: ``aux_k``, or max(1, d_model // 2) capped at dict_size."""
        if self.aux_k is not None:
            return self.aux_k
        return min(self.dict_size, max(1, self.d_model // 2))

    def subset(self, index: list[int]) -> "SAEConfig":
        """The config of the chosen instances (per-instance values follow them)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["n_instances"] = len(index)
        for name in ("l1_coefficient", "k"):
            v = getattr(self, name)
            if isinstance(v, tuple):
                d[name] = tuple(v[j] for j in index)
        return SAEConfig(**d)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (tuples become lists, ``options`` a dict)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SAEConfig":
        """Build from :meth:`to_dict` output; unknown keys are an error, not ignored.

        Specs saved before options moved to the architectures hold them as flat keys
        (``jumprelu_bandwidth``, ``jumprelu_init_threshold``, ``threshold_ema``): each is
        moved into ``options`` when it belongs to the spec's architecture (its
        ``legacy_options``), and dropped otherwise (every old spec saved all three). A field
        added later and missing from the spec takes its old behaviour
        (:data:`PRE_FIELD_DEFAULTS`: ``decoder_lr_scale`` = ``encoder_init_norm`` = 1), not its
        current default."""
        d = _upgrade_legacy(dict(d))
        for key, old_value in PRE_FIELD_DEFAULTS.items():  # saved before the field existed: its old behaviour
            d.setdefault(key, old_value)
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown SAEConfig field(s) {unknown}; known fields: {sorted(names)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def _check_k(name: str, value: Any, hi: int, arch: str | None) -> int:
    if arch is not None and isinstance(value, (int, float)) and not isinstance(value, bool) and value > hi:
        raise ValueError(
            f"{name} must be < dict_size = {hi + 1} for arch {arch!r} (k >= dict_size keeps every latent: "
            f"nothing sparse); got {value}"
        )
    return check_int(name, value, 1, hi)


def _upgrade_legacy(d: dict[str, Any]) -> dict[str, Any]:
    """Move pre-options flat keys of a saved spec into ``options`` (see :meth:`SAEConfig.from_dict`)."""
    legacy = {key for c in ARCHITECTURES.values() for key in c.legacy_options}
    found = {key: d.pop(key) for key in sorted(legacy & set(d))}
    if not found:
        return d
    cls = ARCHITECTURES.get(d.get("arch", "relu"))
    mapped = {cls.legacy_options[key]: v for key, v in found.items() if cls is not None and key in cls.legacy_options}
    if mapped:
        opts = d.get("options")
        d["options"] = {**mapped, **(opts if isinstance(opts, dict) else {})}
    return d
