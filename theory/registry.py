"""The claim registry: every claim under its stable ID, with a check that returns a record.

Adding a claim is one decorated function in its topic module (plus its test); nothing else
is edited. A *topic* is a module or package directly under ``theory/`` (``theory/tms.py``,
``theory/sae/``); :func:`load_all` finds them with :mod:`pkgutil` and imports every module in
them, which registers their claims. A claim's ID is ``<topic>.<name>``.

    from theory.registry import Context, Result, claim, holds_if

    @claim("topic.name", status="exact", statement="...in our own words...", source="paper, §")
    def _check_name(ctx: Context) -> Result:
        ...
        return Result(holds_if(ok), predicted, observed, tolerance, detail)

A check is a function ``check(ctx: Context) -> Result``; :func:`run_claim` turns its result into
a :class:`Record` (the JSON keys of ``python -m theory --json``: :data:`RECORD_KEYS`).

Statuses and the verdicts each allows (:data:`VERDICTS_BY_STATUS`):

- ``proven`` / ``exact``: must hold to numerical tolerance on every input -> ``holds`` | ``fails``
- ``empirical``: a simulation compared with a prediction, tolerance stated -> ``holds`` | ``fails``
- ``conjecture``: open, searched and never assumed -> ``open`` (nothing found) | ``counterexample``
- ``refuted``: a counterexample is exhibited -> ``counterexample`` (it reproduces) | ``fails``
  (it no longer does)
- ``question``: an open question the check measures and reports, with no claimed answer -> ``open``
- ``published``: a published result (a paper's number) to reproduce -> ``reproduces`` | ``differs``.
  Published claims run on request (:data:`ON_REQUEST_STATUSES`): the plain ``python -m theory``
  lists them without running them; ``--only published`` (any ``--only`` prefix that matches them)
  or ``--all`` runs them, and ``--budget paper`` runs them at the paper's own settings
  (:meth:`Context.pick`'s ``paper``).

A check that optimises or trains is registered with ``searches=True``. Its verdict must not follow
the last bits of a float or a search that got stuck: :func:`run_claim` recomputes it on fresh
seeds (:data:`STABILITY_SEED_OFFSET`) unless the check reports its own ``budget_stable`` (for
example the verdict at twice its budget, or a counterexample verified exactly, which then stands
whichever seed found it), and where the two verdicts disagree the record's verdict is ``inconclusive`` (allowed for every status but ``question``) and ``budget_stable`` is false:
counted in the report, never a silent flip. Checks that neither optimise nor train record
``budget_stable`` as null.

A check that raises, or returns a verdict its status does not allow, is an error: it is recorded
as ``fails`` with ``detail`` starting ``check raised``. :func:`is_failure` is the report's
exit-1 rule: an error, a proven or exact claim whose verdict is not ``holds``, or a verdict its
status does not allow.
"""
from __future__ import annotations

import importlib
import math
import pkgutil
import re
import time
import traceback
import zlib
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

import numpy as np
import torch

from toymodels.train.runs import jsonable

INCONCLUSIVE = "inconclusive"
"""The verdict of a searching check whose verdict changed with fresh seeds or a larger budget."""
VERDICTS_BY_STATUS: dict[str, tuple[str, ...]] = {
    "proven": ("holds", "fails", INCONCLUSIVE),
    "exact": ("holds", "fails", INCONCLUSIVE),
    "empirical": ("holds", "fails", INCONCLUSIVE),
    "conjecture": ("open", "counterexample", INCONCLUSIVE),
    "refuted": ("counterexample", "fails", INCONCLUSIVE),
    "question": ("open",),
    "published": ("reproduces", "differs", INCONCLUSIVE),
}
STATUSES = tuple(VERDICTS_BY_STATUS)
PUBLISHED_VERDICTS = ("reproduces", "differs")
"""The verdicts of a ``published`` claim: the paper's number reproduces here, or it differs."""
VERDICTS = ("holds", "fails", "open", "counterexample", *PUBLISHED_VERDICTS, INCONCLUSIVE)
ON_REQUEST_STATUSES = ("published",)
"""Statuses whose claims the plain ``python -m theory`` lists but does not run (they take long):
``--all``, or an ``--only`` prefix that matches them, runs them."""
STABILITY_SEED_OFFSET = 1_000_003
"""A searching check is rerun with ``seed + STABILITY_SEED_OFFSET`` to test its verdict."""
MUST_HOLD = ("proven", "exact")
"""Statuses whose every verdict other than ``holds`` makes the report exit 1."""
BUDGETS = ("tiny", "default", "thorough", "paper")
"""``paper``: a published claim's settings exactly as its paper has them (:meth:`Context.pick`);
any other claim runs its ``thorough`` values there."""
RECORD_KEYS = ("id", "status", "verdict", "predicted", "observed", "tolerance", "detail", "seconds", "budget_stable")
"""The keys of one record in ``python -m theory --json`` (a contract)."""
ID_PATTERN = re.compile(r"^([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)$")
"""A claim ID: ``<topic>.<name>``, lower-case words joined by underscores."""
ERROR_PREFIX = "check raised "
"""How ``detail`` starts when the check itself failed (raised, or returned a forbidden verdict)."""
NOT_TOPICS = ("registry", "__main__")
"""Modules directly under ``theory/`` that are infrastructure, not topics (so are ``_private`` ones)."""


_NOT_GIVEN: Any = object()
"""The default of :meth:`Context.pick`'s ``paper``: fall back to ``thorough``."""


@dataclass(frozen=True)
class Context:
    """Where and how hard a check runs."""

    device: torch.device = torch.device("cpu")
    budget: str = "default"
    """tiny (unit tests, seconds), default (the report: the whole set under 5 minutes on
    2 CPU cores), thorough (many more draws and longer simulations), paper (a published claim
    at its paper's settings exactly; elsewhere the same as thorough)."""
    seed: int = 0

    def pick(self, tiny: Any, default: Any, thorough: Any, paper: Any = _NOT_GIVEN) -> Any:
        """The value for this budget; at the ``paper`` budget ``paper``, or ``thorough`` when
        ``paper`` is not given (an explicit ``paper=None`` is returned as None)."""
        if self.budget == "paper":
            return thorough if paper is _NOT_GIVEN else paper
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
    budget_stable: bool | None = None
    """Set by a searching check that tested its own verdict (e.g. at twice its budget); None lets
    :func:`run_claim` rerun it on fresh seeds (``searches=True`` claims only)."""


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
    budget_stable: bool | None = None
    """Searching checks: whether the verdict survived fresh seeds / a larger budget (else null)."""

    def as_json(self) -> dict[str, Any]:
        """The record as JSON-safe values under :data:`RECORD_KEYS`."""
        return {
            "id": self.id,
            "status": self.status,
            "verdict": self.verdict,
            "predicted": jsonable(self.predicted),
            "observed": jsonable(self.observed),
            "tolerance": jsonable(self.tolerance),
            "detail": self.detail,
            "seconds": round(self.seconds, 3),
            "budget_stable": self.budget_stable,
        }


@dataclass(frozen=True)
class Claim:
    id: str
    status: str
    statement: str
    source: str
    check: Callable[[Context], Result] = field(repr=False)
    module: str = ""
    """The module that registered the claim (its topic is the part after ``theory.``)."""
    searches: bool = False
    """The check optimises or trains: its verdict is tested for stability (:func:`run_claim`)."""

    @property
    def topic(self) -> str:
        return self.id.split(".", 1)[0]


CLAIMS: dict[str, Claim] = {}


def claim(id: str, *, status: str, statement: str, source: str, searches: bool = False) -> Callable:
    """Register ``check`` under ``id`` (``<topic>.<name>``) with its status, statement and source;
    ``searches=True`` for a check that optimises or trains (its verdict is tested for stability)."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    if not ID_PATTERN.match(id):
        raise ValueError(f"claim ID must look like '<topic>.<name>' (lower case, underscores), got {id!r}")
    if not statement.strip() or not source.strip():
        raise ValueError(f"claim {id!r} needs a non-empty statement and source")

    def register(check: Callable[[Context], Result]) -> Callable[[Context], Result]:
        if id in CLAIMS:
            raise ValueError(f"claim {id!r} registered twice")
        CLAIMS[id] = Claim(id, status, " ".join(statement.split()), " ".join(source.split()), check, check.__module__,
                           bool(searches))
        return check

    return register


def runs_on_request(c: Claim | Mapping[str, Any] | object) -> bool:
    """Whether the plain ``python -m theory`` lists this claim without running it (its status is
    in :data:`ON_REQUEST_STATUSES`): a :class:`Claim`, or a record with a ``status`` key."""
    status = c.get("status") if isinstance(c, Mapping) else getattr(c, "status", None)
    return status in ON_REQUEST_STATUSES


def allowed_verdicts(status: str) -> tuple[str, ...]:
    """The verdicts a check of this status may return (:data:`VERDICTS_BY_STATUS`)."""
    return VERDICTS_BY_STATUS[status]


def is_failure(record: Record | Mapping[str, Any]) -> bool:
    """The report's exit-1 rule: a check error, a proven/exact claim not ``holds``, or a verdict
    its status forbids."""
    r = record.as_json() if isinstance(record, Record) else record
    if r["detail"].startswith(ERROR_PREFIX) or r["verdict"] not in VERDICTS_BY_STATUS.get(r["status"], ()):
        return True
    return r["status"] in MUST_HOLD and r["verdict"] != "holds"


def holds_if(ok: bool) -> str:
    return "holds" if ok else "fails"


def within(predicted: float, observed: float, rel: float = 0.0, abs_: float = 0.0) -> bool:
    """|observed − predicted| <= abs_ + rel·|predicted| (NaN never passes)."""
    p, o = float(predicted), float(observed)
    if math.isnan(p) or math.isnan(o):
        return False
    return abs(o - p) <= abs_ + rel * abs(p)


def topics() -> tuple[str, ...]:
    """The topic modules and packages directly under ``theory/``, sorted."""
    import theory

    return tuple(sorted(m.name for m in pkgutil.iter_modules(theory.__path__)
                        if m.name not in NOT_TOPICS and not m.name.startswith("_")))


def load_all() -> dict[str, Claim]:
    """Import every module of every topic (registering its claims); the registry, by topic.

    Claims come grouped by topic (in :func:`topics` order), each topic in registration order.
    """
    for topic in topics():
        mod = importlib.import_module(f"theory.{topic}")
        if hasattr(mod, "__path__"):  # a package: import all its modules, wherever the claims live
            for sub in pkgutil.walk_packages(mod.__path__, f"theory.{topic}."):
                importlib.import_module(sub.name)
    order = {t: k for k, t in enumerate(topics())}
    return dict(sorted(CLAIMS.items(), key=lambda kv: order.get(kv[1].topic, len(order))))


def _checked(c: Claim, ctx: Context) -> Result:
    r = c.check(ctx)
    if r.verdict not in allowed_verdicts(c.status):
        raise ValueError(f"check returned verdict {r.verdict!r}, not allowed for status {c.status!r} "
                         f"(allowed: {', '.join(allowed_verdicts(c.status))})")
    return r


def stability_context(ctx: Context) -> Context:
    """The context of a searching check's second opinion: the same budget and device, fresh seeds."""
    return replace(ctx, seed=ctx.seed + STABILITY_SEED_OFFSET)


def run_claim(c: Claim, ctx: Context) -> Record:
    """Run one check; an exception or a verdict its status forbids becomes a ``fails`` record
    with the message in ``detail`` (never hidden). A searching claim's verdict is recomputed on
    fresh seeds (unless the check reported ``budget_stable`` itself); two different verdicts make
    it ``inconclusive``, with both named in ``detail``."""
    t0 = time.perf_counter()
    try:
        r = _checked(c, ctx)
        stable, detail, verdict = r.budget_stable, r.detail, r.verdict
        if c.searches and stable is None and verdict != INCONCLUSIVE:
            ctx2 = stability_context(ctx)
            again = _checked(c, ctx2)
            stable = again.verdict == verdict
            if not stable and again.budget_stable:  # the second search found what verifies exactly
                # (e.g. a counterexample checked in exact arithmetic): it decides, whatever the first missed
                r, verdict, stable = again, again.verdict, True
                detail = (f"found at seed {ctx2.seed} (not at seed {ctx.seed}) and verified: {again.detail}")
            elif not stable:
                detail = (f"{INCONCLUSIVE}: {verdict} at seed {ctx.seed}, {again.verdict} at seed {ctx2.seed} "
                          f"(the search decides the verdict). At seed {ctx.seed}: {r.detail}")
        if c.searches and stable is False:
            verdict = INCONCLUSIVE
        if not c.searches and stable is not None:
            raise ValueError("check reported budget_stable but its claim is not registered with searches=True")
        rec = Record(c.id, c.status, verdict, r.predicted, r.observed, r.tolerance, detail, budget_stable=stable)
    except Exception as e:  # noqa: BLE001 - reported, not swallowed
        tb = traceback.format_exc(limit=3).strip().splitlines()[-1]
        rec = Record(c.id, c.status, "fails", None, None, None, f"{ERROR_PREFIX}{type(e).__name__}: {e} ({tb})")
    rec.seconds = time.perf_counter() - t0
    return rec


def run_claim_in_worker(cid: str, budget: str, seed: int, device: str, threads: str | int) -> dict[str, Any]:
    """:func:`run_claim` of claim ``cid`` in a fresh worker process (``python -m theory --jobs``):
    loads the registry, sets the torch threads, returns the record as JSON. Each claim draws
    from its own seeds, so its record does not depend on which worker ran it, or when."""
    from toymodels.device import set_threads

    set_threads(threads)
    return run_claim(load_all()[cid], Context(device=torch.device(device), budget=budget, seed=seed)).as_json()
