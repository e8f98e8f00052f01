"""The claim registry: every claim under its stable ID, with a check that returns a record.

A check is a function ``check(ctx: Context) -> Result``. :func:`claim` registers it with its
statement, source and status; :func:`run_claim` turns its result into a :class:`Record`.

Status words: ``proven`` / ``exact`` (must hold to numerical tolerance on every input),
``empirical`` (a simulation compared with a prediction, tolerance stated), ``conjecture``
(open: searched, never assumed), ``refuted`` (a counterexample is exhibited).
Verdicts: ``holds`` / ``fails`` for proven, exact and empirical claims; ``open`` /
``counterexample`` for conjectures and refuted claims.
"""
from __future__ import annotations

import importlib
import math
import time
import traceback
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from toymodels.runs import jsonable

STATUSES = ("proven", "exact", "empirical", "conjecture", "refuted")
VERDICTS = ("holds", "fails", "open", "counterexample")
TOPICS = ("interference", "natural_latents", "erasure", "tms", "sae", "hessian", "metrics", "linalg")
BUDGETS = ("tiny", "default", "thorough")

# Every ID the catalogue lists; `python -m theory` reports exactly these.
EXPECTED_IDS = (
    "interference.inner_product_distribution",
    "interference.k_active_noise",
    "interference.jl_vs_typical",
    "interference.max_coherence",
    "interference.welch_bound",
    "interference.sae_decoder_orthogonality",
    "natural_latents.error_definitions",
    "natural_latents.kl_finite",
    "natural_latents.mediator_determines_redund",
    "natural_latents.stochastic_mediator_redund",
    "natural_latents.trivial_latents",
    "natural_latents.shared_bits_example",
    "natural_latents.deterministic_conjecture",
    "natural_latents.kl_resampling",
    "natural_latents.js_resampling",
    "erasure.leace_guardedness",
    "erasure.equal_means_accuracy",
    "tms.frame_dimensionality",
    "tms.sticky_dimensionality",
    "tms.pentagon",
    "tms.two_feature_phase",
    "tms.linear_no_superposition",
    "tms.circle_crowding",
    "sae.composed_latent_bias",
    "sae.composition_preference",
    "sae.gated_vs_rescaled",
    "sae.high_frequency_pruning",
    "sae.seed_stability",
    "sae.featureless_data",
    "sae.bound_dictionary",
    "hessian.hvp_exact",
    "hessian.lanczos_moments",
    "hessian.hutchinson_variance",
    "hessian.toy_model_spectrum",
    "metrics.loss_recovered_vs_compute",
    "linalg.change_of_basis",
    "linalg.truth_like_directions",
    "linalg.layernorm_squeeze",
)


@dataclass(frozen=True)
class Context:
    """Where and how hard a check runs."""

    device: torch.device = torch.device("cpu")
    budget: str = "default"
    """tiny (unit tests, seconds), default (the report: the whole set under 5 minutes on
    2 CPU cores), thorough (many more draws and longer simulations)."""
    seed: int = 0

    def pick(self, tiny: Any, default: Any, thorough: Any) -> Any:
        """The value for this budget."""
        return {"tiny": tiny, "default": default, "thorough": thorough}[self.budget]

    def rng(self, *keys: object) -> np.random.Generator:
        """A numpy generator for the check's own analytic draws (simulations use torch)."""
        return np.random.default_rng([self.seed, *[zlib.crc32(str(k).encode()) for k in keys]])


@dataclass
class Result:
    """What a check returns. ``verdict`` must be one the claim's status allows."""

    verdict: str
    predicted: Any
    observed: Any
    tolerance: Any
    detail: str


@dataclass
class Record:
    id: str
    status: str
    verdict: str
    predicted: Any
    observed: Any
    tolerance: Any
    detail: str
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "verdict": self.verdict,
            "predicted": jsonable(self.predicted),
            "observed": jsonable(self.observed),
            "tolerance": jsonable(self.tolerance),
            "detail": self.detail,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class Claim:
    id: str
    status: str
    statement: str
    source: str
    check: Callable[[Context], Result] = field(repr=False)


CLAIMS: dict[str, Claim] = {}


def claim(id: str, *, status: str, statement: str, source: str) -> Callable:
    """Register ``check`` under ``id``."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    if id not in EXPECTED_IDS:
        raise ValueError(f"{id!r} is not a catalogued claim ID")

    def register(check: Callable[[Context], Result]) -> Callable[[Context], Result]:
        if id in CLAIMS:
            raise ValueError(f"claim {id!r} registered twice")
        CLAIMS[id] = Claim(id, status, " ".join(statement.split()), source, check)
        return check

    return register


def allowed_verdicts(status: str) -> tuple[str, ...]:
    if status == "conjecture":
        return ("open", "counterexample")
    if status == "refuted":
        return ("counterexample", "fails")
    return ("holds", "fails", "counterexample")


def holds_if(ok: bool) -> str:
    return "holds" if ok else "fails"


def within(predicted: float, observed: float, rel: float = 0.0, abs_: float = 0.0) -> bool:
    """|observed − predicted| <= abs_ + rel·|predicted| (NaN never passes)."""
    p, o = float(predicted), float(observed)
    if math.isnan(p) or math.isnan(o):
        return False
    return abs(o - p) <= abs_ + rel * abs(p)


def load_all() -> dict[str, Claim]:
    """Import every topic module (registering its claims) and return the registry."""
    for topic in TOPICS:
        importlib.import_module(f"theory.{topic}")
    return CLAIMS


def run_claim(c: Claim, ctx: Context) -> Record:
    """Run one check; an exception becomes a ``fails`` record with its message (never hidden)."""
    t0 = time.perf_counter()
    try:
        r = c.check(ctx)
        if r.verdict not in allowed_verdicts(c.status):
            raise ValueError(f"check returned verdict {r.verdict!r}, not allowed for status {c.status!r}")
        rec = Record(c.id, c.status, r.verdict, r.predicted, r.observed, r.tolerance, r.detail)
    except Exception as e:  # noqa: BLE001 - reported, not swallowed
        tb = traceback.format_exc(limit=3).strip().splitlines()[-1]
        rec = Record(c.id, c.status, "fails", None, None, None, f"check raised {type(e).__name__}: {e} ({tb})")
    rec.seconds = time.perf_counter() - t0
    return rec
