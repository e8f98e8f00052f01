"""Causal abstraction with stated input conditions: causal models, alignments, interchange
interventions, and explanations checked by enumeration or symbolically (sympy).

A **causal model** is a DAG of named nodes; an input node has no mechanism, every other node a
function of its parents. Functions are plain Python/torch, so one model runs on Python
numbers, on batched tensors (leading axis K: K inputs at once) and on sympy expressions (for
the symbolic check) alike, when its functions only use arithmetic.

An **alignment** maps each high-level variable V to low-level variables L(V) and a value map
τ_V (the high-level value the low-level values stand for); optionally an ``interchange`` rule
for distributed alignments (swap only the part of a low-level vector along a direction).

An **interchange intervention** (Geiger et al. 2021, "Causal abstractions of neural
networks"; Geiger et al. 2025, "Causal abstraction: a theoretical foundation for mechanistic
interpretability") on V with base input b and source input s compares

    low:  M(b; L(V) ← L(V)(s))               (the aligned low-level values taken from the source run)
    high: M*(τ(b); V ← V(τ(s)))              (V's value from the high-level run on the source)

through τ on the outputs. The **interchange-intervention accuracy** (IIA) is the fraction of
pairs that agree. When V is aligned with *input* variables, the intervened low-level input
(part base, part source) may lie outside the input domain; such a pair is *not admissible*
(the domain says that input never occurs) and is skipped and counted, not scored.

An :class:`Explanation` carries its input condition (a sympy relation over the low-level
inputs, e.g. ``Eq(x1, x2)``) and is checked

- by enumeration on a finite domain (:meth:`Explanation.verify_enumerated`), and
- symbolically on a box of integers (:meth:`Explanation.verify_symbolic`): the output
  difference is built from symbols, the condition's equalities are solved and substituted,
  and a difference that simplifies to 0 holds on every input of the box however large it is
  ({0..10^6}² has 10^12 inputs). A difference that does not vanish is searched for a
  counterexample, which is re-run concretely before it is reported; if none is found the
  verdict is ``None`` (undecided), never a guess.

:meth:`Explanation.counterexamples_outside` names the inputs outside the condition where the
explanation fails. The motivating puzzle (Jørgensen 2025, "Small foundational puzzle for
causal theories of mechanistic interpretability"; seed 002): in M the output copies x1 and
x2 is idle, but on the domain x1 = x2 the one-variable high-level model passes whether its
variable is aligned with X1 or X2 — only the extended domain, or the stated condition,
tells them apart:

>>> import sympy as sp
>>> from toymodels.causal import Alignment, Explanation, grid_domain, interchange_accuracy, puzzle_models
>>> low, high = puzzle_models()                              # M: h = x1, y = h; M*: h = x, y = h
>>> a2 = Alignment.identity({"x": "x2", "h": "h", "y": "y"})  # M*'s variable read from X2
>>> diag = grid_domain(low.inputs, [(0, 0), (1, 1)])
>>> interchange_accuracy(low, high, a2, "h", diag).accuracy
1.0
>>> square = grid_domain(low.inputs, [(0, 0), (0, 1), (1, 0), (1, 1)])
>>> r = interchange_accuracy(low, high, a2, "h", square)
>>> r.accuracy, r.counterexamples[0]
(0.5, {'base': {'x1': 0, 'x2': 0}, 'source': {'x1': 0, 'x2': 1}})
>>> x1, x2 = sp.symbols("x1 x2")
>>> e = Explanation(low, high, a2, condition=sp.Eq(x1, x2))
>>> e.verify_symbolic({"x1": (0, 10**6), "x2": (0, 10**6)}).holds
True
>>> Explanation(low, high, a2).verify_symbolic({"x1": (0, 10**6), "x2": (0, 10**6)}).counterexample
{'input': {'x1': 0, 'x2': 1}}

The same machinery runs on trained toy models: :func:`toy_model_abstraction` builds the
low-level model x → h = W x → y = ReLU(Wᵀ h + b) and the high-level one "feature i is read
from W_i·h", aligned by swapping h's component along W_i (a distributed alignment).
"""
from __future__ import annotations

import inspect
import itertools
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

from .._validate import check_choice, check_float, check_int, check_nonneg, check_seed, check_tensor

__all__ = [
    "CausalModel", "Alignment", "AlignedVariable", "IIAResult", "Verification", "Explanation",
    "grid_domain", "domain_size", "domain_rows", "interchange_accuracy", "interchange_intervention",
    "puzzle_models", "puzzle_alignment", "toy_model_abstraction", "direction_interchange",
]

Domain = dict[str, torch.Tensor]
"""A finite input domain: each input name -> a tensor (K, ...) of its K values (row k of every
tensor together is input k)."""


def _names(what: str, value: Any) -> tuple[str, ...]:
    """A sequence of node names (not one string, which would be split into characters)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what} must be a sequence of names (strings), got {value!r}")
    return tuple(value)


def _check_arity(node: str, fn: Callable[..., Any], n: int) -> None:
    """A mechanism must accept exactly its parents' values, positionally."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have no signature: nothing to check
        return
    try:
        sig.bind(*range(n))
    except TypeError:
        raise ValueError(f"node {node!r}: the mechanism takes {sig} but the node has {n} parent(s)") from None


# ---------------------------------------------------------------------------------------------
# Causal models
# ---------------------------------------------------------------------------------------------


class CausalModel:
    """A DAG of named variables: ``inputs`` (no mechanism) and ``mechanisms`` mapping each other
    node to ``(parents, fn)`` with ``fn(*parent_values)``; ``outputs`` name the output nodes.

    ``run(values, interventions)`` evaluates the nodes in topological order; a hard
    intervention ``{node: value}`` replaces the node's mechanism (an input's too) by the value.
    A cycle, an unknown parent or a node defined twice raises ValueError.
    """

    def __init__(
        self,
        inputs: Sequence[str],
        mechanisms: Mapping[str, tuple[Sequence[str], Callable[..., Any]]],
        outputs: Sequence[str],
    ) -> None:
        self.inputs = _names("inputs", inputs)
        if len(set(self.inputs)) != len(self.inputs) or not self.inputs:
            raise ValueError(f"inputs must be distinct names, at least one; got {self.inputs}")
        if not isinstance(mechanisms, Mapping):
            raise ValueError(f"mechanisms must be a mapping node -> (parents, fn), got {type(mechanisms).__name__}")
        self.mechanisms = {}
        for k, m in mechanisms.items():
            if not isinstance(k, str) or not isinstance(m, (tuple, list)) or len(m) != 2:
                raise ValueError(f"mechanisms[{k!r}] must be a pair (parents, fn) keyed by a node name, got {m!r}")
            self.mechanisms[k] = (_names(f"mechanisms[{k!r}]: parents", m[0]), m[1])
        clash = set(self.inputs) & set(self.mechanisms)
        if clash:
            raise ValueError(f"nodes {sorted(clash)} are both inputs and mechanisms")
        names = set(self.inputs) | set(self.mechanisms)
        for node, (parents, fn) in self.mechanisms.items():
            missing = [p for p in parents if p not in names]
            if missing:
                raise ValueError(f"node {node!r} has unknown parent(s) {missing}")
            if not callable(fn):
                raise ValueError(f"node {node!r}: mechanism must be callable")
            _check_arity(node, fn, len(parents))
        self.outputs = _names("outputs", outputs)
        bad = [o for o in self.outputs if o not in names]
        if bad or not self.outputs:
            raise ValueError(f"outputs must be nodes of the model; unknown: {bad}")
        self.order = self._topological_order()

    @property
    def nodes(self) -> tuple[str, ...]:
        """Every node, in topological order (inputs first)."""
        return self.order

    def _topological_order(self) -> tuple[str, ...]:
        order: list[str] = list(self.inputs)
        done = set(order)
        pending = dict(self.mechanisms)
        while pending:
            ready = [n for n, (ps, _) in pending.items() if all(p in done for p in ps)]
            if not ready:
                raise ValueError(f"the mechanisms have a cycle among {sorted(pending)}")
            for n in ready:
                order.append(n)
                done.add(n)
                del pending[n]
        return tuple(order)

    def run(self, values: Mapping[str, Any], interventions: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Every node's value for the input ``values`` under hard ``interventions``."""
        if not isinstance(values, Mapping):
            raise ValueError(f"values must be a mapping input name -> value, got {type(values).__name__}")
        if interventions is not None and not isinstance(interventions, Mapping):
            raise ValueError(f"interventions must be a mapping node -> value, got {type(interventions).__name__}")
        interventions = dict(interventions or {})
        unknown = [k for k in interventions if k not in self.order]
        if unknown:
            raise ValueError(f"intervention on unknown node(s) {unknown}")
        out: dict[str, Any] = {}
        for name in self.order:
            if name in interventions:
                out[name] = interventions[name]
            elif name in self.mechanisms:
                parents, fn = self.mechanisms[name]
                out[name] = fn(*(out[p] for p in parents))
            else:
                if name not in values:
                    raise ValueError(f"input {name!r} has no value (inputs: {self.inputs})")
                out[name] = values[name]
        return out


@dataclass(frozen=True)
class AlignedVariable:
    """One high-level variable's alignment: its low-level variables, the value map τ (low values ->
    high value) and, optionally, an interchange rule ``(base_values, source_values) -> values``
    for the low-level variables (default: the source's values)."""

    low: tuple[str, ...]
    tau: Callable[..., Any] | None = None
    interchange: Callable[[tuple, tuple], tuple] | None = None

    def __post_init__(self) -> None:
        low = _names("low", self.low)
        if not low:
            raise ValueError("low must name at least one low-level variable")
        object.__setattr__(self, "low", low)
        if self.tau is not None and not callable(self.tau):
            raise ValueError(f"tau must be callable or None, got {self.tau!r}")
        if self.interchange is not None and not callable(self.interchange):
            raise ValueError(f"interchange must be callable or None, got {self.interchange!r}")

    def value(self, low_values: Mapping[str, Any]) -> Any:
        vals = [low_values[n] for n in self.low]
        if self.tau is None:
            if len(vals) != 1:
                raise ValueError(f"variables {self.low} need a value map tau (several low-level variables)")
            return vals[0]
        return self.tau(*vals)


@dataclass(frozen=True)
class Alignment:
    """High-level variable -> :class:`AlignedVariable`. Every input and output of the high-level
    model must be aligned (the inputs give τ on inputs, the outputs the comparison)."""

    variables: Mapping[str, AlignedVariable]

    def __post_init__(self) -> None:
        if not isinstance(self.variables, Mapping):
            raise ValueError(f"variables must be a mapping name -> AlignedVariable, got {type(self.variables).__name__}")
        for k, v in self.variables.items():
            if not isinstance(k, str) or not isinstance(v, AlignedVariable):
                raise ValueError(f"variables[{k!r}] must be an AlignedVariable keyed by a name, got {v!r}")

    @staticmethod
    def identity(pairs: Mapping[str, str]) -> "Alignment":
        """Each high-level variable stands for one low-level variable, value for value."""
        if not isinstance(pairs, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in pairs.items()):
            raise ValueError(f"pairs must be a mapping high-level name -> low-level name, got {pairs!r}")
        return Alignment({h: AlignedVariable((l,)) for h, l in pairs.items()})

    def __getitem__(self, name: str) -> AlignedVariable:
        if name not in self.variables:
            raise ValueError(f"high-level variable {name!r} is not aligned (aligned: {sorted(self.variables)})")
        return self.variables[name]

    def high_inputs(self, high: CausalModel, low_values: Mapping[str, Any]) -> dict[str, Any]:
        """τ on inputs: the high-level input values of a low-level run."""
        return {v: self[v].value(low_values) for v in high.inputs}


# ---------------------------------------------------------------------------------------------
# Domains
# ---------------------------------------------------------------------------------------------


def grid_domain(names: Sequence[str], rows: Sequence[Sequence[Any]] | None = None, *,
                ranges: Sequence[Sequence[Any]] | None = None) -> Domain:
    """A finite domain of integer inputs: explicit ``rows`` (tuples, one value per name) or the
    product of ``ranges`` (one sequence of values per name)."""
    names = _names("names", names)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"names must be distinct input names, at least one; got {names}")
    if (rows is None) == (ranges is None):
        raise ValueError("give exactly one of rows or ranges")
    if ranges is not None:
        if isinstance(ranges, (str, bytes)) or not isinstance(ranges, Sequence) or len(ranges) != len(names):
            raise ValueError(f"ranges must give one sequence of values for each of the {len(names)} inputs, got {ranges!r}")
        ranges = [_listed(r) for r in ranges]
        for j, r in enumerate(ranges):
            if r is None or not all(_is_int(v) for v in r):
                raise ValueError(f"ranges[{j}] must be a sequence of integers, got {r!r}")
        rows = list(itertools.product(*ranges))
    rows = _listed(rows)
    if rows is None:
        raise ValueError("rows must be a sequence of tuples of integers")
    for j, row in enumerate(rows):
        row = _listed(row)
        if row is None or len(row) != len(names) or not all(_is_int(v) for v in row):
            raise ValueError(f"rows[{j}] must be {len(names)} integers (one per input {names}), got {row!r}")
    if not rows:
        raise ValueError("a domain needs at least one input")
    t = torch.as_tensor([[int(v) for v in _listed(row)] for row in rows], dtype=torch.int64).reshape(-1, len(names))
    return {n: t[:, j] for j, n in enumerate(names)}


def _listed(v: Any) -> list[Any] | None:
    """Any iterable of values (list, tuple, range, generator, 1-D tensor or array) as a list;
    None for text, a mapping, a scalar or a 0-d tensor."""
    if isinstance(v, (str, bytes, Mapping)) or (hasattr(v, "ndim") and v.ndim == 0):
        return None
    if isinstance(v, torch.Tensor) or type(v).__name__ == "ndarray":
        return list(v)  # elements keep their dtype: float entries are refused, not truncated
    try:
        return list(v)
    except TypeError:
        return None


def _is_int(v: Any) -> bool:
    if isinstance(v, torch.Tensor):
        return v.ndim == 0 and not v.dtype.is_floating_point and v.dtype != torch.bool
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and type(v).__name__ != "bool_"


def _check_domain(name: str, domain: Any, inputs: Sequence[str] | None = None) -> Domain:
    if not isinstance(domain, Mapping) or not domain:
        raise ValueError(f"{name} must be a non-empty mapping input name -> tensor (K, ...), got {domain!r:.80}")
    for k, v in domain.items():
        if not isinstance(v, torch.Tensor) or v.ndim == 0:
            raise ValueError(f"{name}[{k!r}] must be a tensor (K, ...) of K values, got {v!r:.80}")
    if inputs is not None:
        missing = [n for n in inputs if n not in domain]
        if missing:
            raise ValueError(f"{name} has no values for input(s) {missing} of the low-level model")
    return domain


def domain_size(domain: Domain) -> int:
    """K, the number of inputs of a domain (every input tensor must agree)."""
    _check_domain("domain", domain)
    sizes = {int(v.shape[0]) for v in domain.values()}
    if len(sizes) != 1:
        raise ValueError(f"domain tensors disagree on the number of inputs: {sorted(sizes)}")
    return sizes.pop()


def domain_rows(domain: Domain, index: torch.Tensor) -> Domain:
    """The inputs ``index`` (a 1-D index tensor) of a domain, as a domain."""
    k = domain_size(domain)
    try:
        index = torch.as_tensor(index)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"index must be a 1-D tensor of row indices, got {index!r:.80}") from None
    if index.ndim != 1 or (index.numel() and (index.dtype.is_floating_point or index.dtype == torch.bool)):
        raise ValueError(f"index must be a 1-D integer tensor of row indices, got dtype {index.dtype}, shape {tuple(index.shape)}")
    index = index.long()
    if index.numel() and (int(index.min()) < -k or int(index.max()) >= k):
        raise ValueError(f"index must hold row indices in [0, {k - 1}], got {index.tolist()[:8]}")
    return {k: v[index] for k, v in domain.items()}


def _python(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return v.item() if v.numel() == 1 else v.tolist()
    return v


def _named(domain: Domain, k: int) -> dict[str, Any]:
    return {n: _python(v[k]) for n, v in domain.items()}


def _in_domain(values: Domain, domain: Domain) -> torch.Tensor:
    """(K,) bool: whether each row of ``values`` (integer inputs) is a row of ``domain``."""
    names = sorted(domain)
    a = torch.stack([values[n].reshape(values[n].shape[0], -1) for n in names], 1).flatten(1)
    b = torch.stack([domain[n].reshape(domain[n].shape[0], -1) for n in names], 1).flatten(1)
    if a.dtype.is_floating_point or b.dtype.is_floating_point:
        raise ValueError("admissibility of intervened inputs needs an integer domain")
    lo = torch.minimum(a.min(0).values, b.min(0).values)
    span = torch.maximum(a.max(0).values, b.max(0).values) - lo + 1
    if float(torch.log2(span.double()).sum()) > 62:
        raise ValueError("the domain's integer inputs are too wide to index; use verify_symbolic")
    mult = torch.cumprod(torch.cat([span.new_ones(1), span[:-1]]), 0)
    return torch.isin(((a - lo) * mult).sum(1), ((b - lo) * mult).sum(1))


# ---------------------------------------------------------------------------------------------
# Interchange interventions
# ---------------------------------------------------------------------------------------------


def _agree(a: Any, b: Any, atol: float) -> torch.Tensor:
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    if a.dtype.is_floating_point or b.dtype.is_floating_point:
        ok = (a.double() - b.double()).abs() <= atol
    else:
        ok = a == b
    return ok.reshape(ok.shape[0], -1).all(1) if ok.ndim > 1 else ok


def _check_models(low: Any, high: Any, alignment: Any) -> None:
    for name, v, cls in (("low", low, CausalModel), ("high", high, CausalModel), ("alignment", alignment, Alignment)):
        if not isinstance(v, cls):
            raise ValueError(f"{name} must be a {cls.__name__}, got {type(v).__name__}")


def interchange_intervention(
    low: CausalModel, high: CausalModel, alignment: Alignment, variable: str,
    base: Domain, source: Domain, *, atol: float = 0.0,
) -> torch.Tensor:
    """For K zipped pairs (base_k, source_k): (K,) bool, whether the outputs agree after

    low: M(b; L(V) ← rule(L(V)(b), L(V)(s))) and high: M*(τ(b); V ← V(τ(s))),

    compared through τ (integers exactly, floats within ``atol``, every output entry of a pair).
    """
    _check_models(low, high, alignment)
    if not isinstance(variable, str) or variable not in high.order:
        raise ValueError(f"variable must be a node of the high-level model {high.order}, got {variable!r}")
    atol = check_float("atol", atol, 0.0, math.inf, hi_open=True)
    _check_domain("base", base, low.inputs)
    _check_domain("source", source, low.inputs)
    if domain_size(base) != domain_size(source):
        raise ValueError(f"base and source must hold the same number of inputs, got {domain_size(base)} and {domain_size(source)}")
    av = alignment[variable]
    low_b, low_s = low.run(base), low.run(source)
    b_vals = tuple(low_b[n] for n in av.low)
    s_vals = tuple(low_s[n] for n in av.low)
    new = s_vals if av.interchange is None else tuple(av.interchange(b_vals, s_vals))
    low_out = low.run(base, dict(zip(av.low, new)))
    high_b = high.run(alignment.high_inputs(high, low_b))
    high_s = high.run(alignment.high_inputs(high, low_s))
    high_out = high.run({k: high_b[k] for k in high.inputs}, {variable: high_s[variable]})
    agree = torch.ones(domain_size(base), dtype=torch.bool)
    for y in high.outputs:
        agree &= _agree(alignment[y].value(low_out), high_out[y], atol)
    return agree


@dataclass
class IIAResult:
    """Interchange-intervention accuracy of one high-level variable over a set of pairs."""

    variable: str
    accuracy: float
    """agreeing / admissible pairs (1.0 when no pair is admissible: nothing contradicts)."""
    n_pairs: int
    n_admissible: int
    n_agree: int
    counterexamples: list[dict[str, dict[str, Any]]] = field(default_factory=list)
    """Up to ``max_counterexamples`` failing pairs, each {"base": inputs, "source": inputs}."""


def interchange_accuracy(
    low: CausalModel, high: CausalModel, alignment: Alignment, variable: str, domain: Domain,
    *, source: Domain | None = None, atol: float = 0.0, max_counterexamples: int = 10, chunk: int = 1 << 18,
) -> IIAResult:
    """IIA of ``variable`` over every pair (base, source) ∈ domain² (``source=None``) or over the
    zipped pairs (domain_k, source_k): IIA = #agree / #admissible. When ``variable`` is aligned
    with low-level inputs, a pair whose intervened input (part base, part source) is not a row
    of the domain (base and source rows together) is not admissible: the domain says that
    input never occurs, so the pair is skipped and counted in ``n_pairs - n_admissible``."""
    _check_models(low, high, alignment)
    if not isinstance(variable, str) or variable not in high.order:
        raise ValueError(f"variable must be a node of the high-level model {high.order}, got {variable!r}")
    atol = check_float("atol", atol, 0.0, math.inf, hi_open=True)
    max_counterexamples = check_int("max_counterexamples", max_counterexamples, 0)
    chunk = check_int("chunk", chunk, 1)
    k = domain_size(_check_domain("domain", domain, low.inputs))
    if source is not None and domain_size(_check_domain("source", source, low.inputs)) != k:
        raise ValueError("source (zipped with the base domain) needs the same number of inputs as domain")
    n = k * k if source is None else k
    agree_n = adm_n = 0
    bad: list[dict[str, dict[str, Any]]] = []
    whole = domain if source is None else {n_: torch.cat([domain[n_], source[n_]]) for n_ in domain}
    for start in range(0, n, chunk):
        idx = torch.arange(start, min(n, start + chunk))
        if source is None:
            b, s = domain_rows(domain, idx // k), domain_rows(domain, idx % k)
        else:
            b, s = domain_rows(domain, idx), domain_rows(source, idx)
        agree = interchange_intervention(low, high, alignment, variable, b, s, atol=atol)
        adm = _admissible_in(low, alignment, variable, b, s, whole)
        agree_n += int((agree & adm).sum())
        adm_n += int(adm.sum())
        if len(bad) < max_counterexamples:
            for j in torch.nonzero(adm & ~agree).flatten()[: max_counterexamples - len(bad)].tolist():
                bad.append({"base": _named(b, j), "source": _named(s, j)})
    acc = agree_n / adm_n if adm_n else 1.0
    return IIAResult(variable, acc, n, adm_n, agree_n, bad)


def _admissible_in(low: CausalModel, alignment: Alignment, variable: str, b: Domain, s: Domain, whole: Domain) -> torch.Tensor:
    av = alignment[variable]
    k = domain_size(b)
    if not any(n in low.inputs for n in av.low):
        return torch.ones(k, dtype=torch.bool)
    if av.interchange is not None:
        raise ValueError("a custom interchange rule on input variables is not supported")
    intervened = {n: (s[n] if n in av.low else b[n]) for n in low.inputs}
    return _in_domain(intervened, whole)


# ---------------------------------------------------------------------------------------------
# Explanations with input conditions
# ---------------------------------------------------------------------------------------------


@dataclass
class Verification:
    """What a check of an :class:`Explanation` found."""

    holds: bool | None
    """True: verified on the whole domain; False: a counterexample; None: undecided."""
    method: str
    """enumeration or symbolic."""
    cases: int
    """Concrete cases evaluated (inputs plus intervention pairs) or symbolic model runs."""
    operations: int = 0
    """Symbolic: sympy operations in the differences checked (count_ops); 0 for enumeration."""
    counterexample: dict[str, dict[str, Any]] | None = None
    """The failing inputs by name: {"input": ...} (no intervention) or {"variable": ..., "base": ...,
    "source": ...} (an interchange intervention)."""
    detail: str = ""


class Explanation:
    """"M* abstracts M under ``alignment`` whenever ``condition`` holds": for every input that
    satisfies the condition the outputs agree (through τ), and so do interchange interventions on
    each of ``variables`` (default: every high-level node) for every pair of such inputs.

    ``condition``: a sympy relation (or ``And`` of them) over symbols named like the low-level
    inputs, or None (no condition). Symbolic checks solve its equalities and substitute them;
    other relations are only evaluated at candidate counterexamples.
    """

    def __init__(self, low: CausalModel, high: CausalModel, alignment: Alignment, *,
                 condition: Any = None, variables: Sequence[str] | None = None) -> None:
        import sympy as sp

        _check_models(low, high, alignment)
        self.low, self.high, self.alignment = low, high, alignment
        self.variables = tuple(high.order if variables is None else _names("variables", variables))
        unknown = [v for v in self.variables if v not in high.order]
        if unknown:
            raise ValueError(f"variables {unknown} are not nodes of the high-level model {high.order}")
        for v in (*self.variables, *high.inputs, *high.outputs):
            alignment[v]  # raises for an unaligned variable
        try:
            self.condition = sp.true if condition is None else sp.sympify(condition)
        except (sp.SympifyError, TypeError, ValueError):
            raise ValueError(f"condition must be a sympy relation over the low-level inputs or None, got {condition!r:.80}") from None
        if not hasattr(self.condition, "free_symbols"):
            raise ValueError(f"condition must be a sympy relation over the low-level inputs or None, got {condition!r:.80}")
        names = {str(s) for s in self.condition.free_symbols}
        if not names <= set(low.inputs):
            raise ValueError(f"condition uses {sorted(names - set(low.inputs))}, not inputs of the low-level model {low.inputs}")

    # ---- the condition
    def satisfies(self, domain: Domain) -> torch.Tensor:
        """(K,) bool: which inputs of ``domain`` satisfy the condition."""
        import sympy as sp

        k = domain_size(_check_domain("domain", domain, self.low.inputs))
        if self.condition == sp.true:
            return torch.ones(k, dtype=torch.bool)
        syms = sorted(self.condition.free_symbols, key=str)
        f = sp.lambdify(syms, self.condition, "numpy")
        ok = f(*(domain[str(s)].numpy() for s in syms))
        return torch.as_tensor(ok, dtype=torch.bool).expand(k).clone()

    def without_condition(self) -> "Explanation":
        """The same explanation with its input condition dropped (to search counterexamples)."""
        return Explanation(self.low, self.high, self.alignment, condition=None, variables=self.variables)

    # ---- enumeration
    def verify_enumerated(self, domain: Domain) -> Verification:
        """Check every input of ``domain`` satisfying the condition, and every pair of them for
        each intervened variable."""
        _check_domain("domain", domain, self.low.inputs)
        inside = domain_rows(domain, torch.nonzero(self.satisfies(domain)).flatten())
        k = domain_size(inside) if all(v.shape[0] for v in inside.values()) else 0
        if k == 0:
            return Verification(True, "enumeration", 0, detail="no input of the domain satisfies the condition")
        bad = self._failures(inside, limit=1)
        cases = k
        if bad:
            return Verification(False, "enumeration", cases, counterexample=bad[0])
        for v in self.variables:
            r = interchange_accuracy(self.low, self.high, self.alignment, v, inside, max_counterexamples=1)
            cases += r.n_pairs
            if r.counterexamples:
                return Verification(False, "enumeration", cases, counterexample={"variable": v, **r.counterexamples[0]})
        return Verification(True, "enumeration", cases, detail=f"{k} inputs, {len(self.variables)} variables x {k * k} pairs")

    def _failures(self, domain: Domain, limit: int) -> list[dict[str, dict[str, Any]]]:
        low_run = self.low.run(domain)
        high_run = self.high.run(self.alignment.high_inputs(self.high, low_run))
        ok = torch.ones(domain_size(domain), dtype=torch.bool)
        for y in self.high.outputs:
            ok &= _agree(self.alignment[y].value(low_run), high_run[y], 0.0)
        return [{"input": _named(domain, j)} for j in torch.nonzero(~ok).flatten()[:limit].tolist()]

    def counterexamples_outside(self, domain: Domain, limit: int = 10) -> tuple[int, list[dict[str, dict[str, Any]]]]:
        """Inputs of ``domain`` *outside* the condition on which the outputs disagree: (how many,
        the first ``limit`` of them by name)."""
        limit = check_int("limit", limit, 0)
        outside = domain_rows(domain, torch.nonzero(~self.satisfies(domain)).flatten())
        if not all(v.shape[0] for v in outside.values()):
            return 0, []
        bad = self._failures(outside, limit=domain_size(outside))
        return len(bad), bad[:limit]

    # ---- symbolic
    def verify_symbolic(self, bounds: Mapping[str, tuple[int, int]], *, n_random: int = 64, seed: int = 0) -> Verification:
        """Check the explanation for every integer input in the box ``bounds`` (name -> (lo, hi)),
        symbolically: each output difference, for no intervention and for an interchange
        intervention on each variable (base and source each satisfying the condition, and the
        intervened input too when the variable is aligned with inputs), is simplified after
        substituting the condition's solved equalities. All zero: holds on the whole box. Else a
        counterexample is searched (box corners, small values and ``n_random`` seeded draws),
        re-run concretely, and reported; none found: undecided (None)."""
        import sympy as sp

        if not isinstance(bounds, Mapping) or set(bounds) != set(self.low.inputs):
            got = sorted(bounds) if isinstance(bounds, Mapping) else repr(bounds)
            raise ValueError(f"bounds must give (lo, hi) for each input {self.low.inputs}; got {got}")
        for n, b in bounds.items():
            if isinstance(b, (str, bytes)) or not isinstance(b, Sequence) or len(b) != 2 or not all(_is_int(v) for v in b):
                raise ValueError(f"bounds[{n!r}] must be a pair of integers (lo, hi), got {b!r}")
            if int(b[0]) > int(b[1]):
                raise ValueError(f"bounds[{n!r}] = ({b[0]}, {b[1]}) is empty")
        bounds = {n: (int(b[0]), int(b[1])) for n, b in bounds.items()}
        n_random = check_int("n_random", n_random, 0)
        seed = check_seed("seed", seed)
        runs, ops = 0, 0
        checks = [("input", None)] + [("variable", v) for v in self.variables]
        for kind, v in checks:
            exprs, sym_map, conds = self._symbolic_difference(v, bounds)
            runs += 1 if v is None else 4
            eqs, others = _split_condition(conds)
            sols = sp.solve(eqs, dict=True) if eqs else [{}]
            if eqs and not sols:
                continue  # no input satisfies the condition: nothing to check
            for sol in sols:
                diffs = [sp.simplify(e.subs(sol)) for e in exprs]
                ops += sum(int(sp.count_ops(e)) for e in exprs)
                if all(d == 0 for d in diffs):
                    continue
                ce = self._search(v, sym_map, sol, bounds, conds, n_random, seed)
                if ce is not None:
                    return Verification(False, "symbolic", runs, ops, counterexample=ce,
                                        detail=f"difference {diffs} is not 0 under the condition")
                return Verification(None, "symbolic", runs, ops,
                                    detail=f"difference {diffs} does not simplify to 0 and no counterexample was found")
        box = " x ".join(f"{{{lo}..{hi}}}" for lo, hi in (bounds[n] for n in self.low.inputs))
        return Verification(True, "symbolic", runs, ops, detail=f"all differences are 0 under the condition on {box}")

    def _symbols(self, tag: str, bounds: Mapping[str, tuple[int, int]]) -> dict[str, Any]:
        import sympy as sp

        out = {}
        for n in self.low.inputs:
            lo = int(bounds[n][0])
            out[n] = sp.Symbol(f"{tag}{n}", integer=True, nonnegative=lo >= 0)
        return out

    def _cond(self, values: Mapping[str, Any]) -> Any:
        return self.condition.subs({s: values[str(s)] for s in self.condition.free_symbols}, simultaneous=True)

    def _symbolic_difference(self, variable: str | None, bounds: Mapping[str, tuple[int, int]]):
        """Output differences as sympy expressions, the symbols used, and the condition terms."""
        import sympy as sp

        al = self.alignment
        if variable is None:
            x = self._symbols("", bounds)
            lr = self.low.run(x)
            hr = self.high.run(al.high_inputs(self.high, lr))
            diffs = [sp.sympify(al[y].value(lr) - hr[y]) for y in self.high.outputs]
            return diffs, {"input": x}, [self._cond(x)]
        b, s = self._symbols("b_", bounds), self._symbols("s_", bounds)
        av = al[variable]
        lb, ls = self.low.run(b), self.low.run(s)
        bv, sv = tuple(lb[n] for n in av.low), tuple(ls[n] for n in av.low)
        new = sv if av.interchange is None else tuple(av.interchange(bv, sv))
        lo_out = self.low.run(b, dict(zip(av.low, new)))
        hb = self.high.run(al.high_inputs(self.high, lb))
        hs = self.high.run(al.high_inputs(self.high, ls))
        hi_out = self.high.run({k: hb[k] for k in self.high.inputs}, {variable: hs[variable]})
        diffs = [sp.sympify(al[y].value(lo_out) - hi_out[y]) for y in self.high.outputs]
        conds = [self._cond(b), self._cond(s)]
        if any(n in self.low.inputs for n in av.low):
            conds.append(self._cond({n: lo_out[n] for n in self.low.inputs}))
        return diffs, {"base": b, "source": s}, conds

    def _search(self, variable, sym_map, sol, bounds, conds, n_random, seed):
        """A concrete failing input near the solution branch ``sol``, re-run without sympy."""
        import random

        import sympy as sp

        input_of = {sym: n for m in sym_map.values() for n, sym in m.items()}
        free = sorted(set(input_of) - set(sol), key=str)
        rng = random.Random(seed)
        cand_vals = {}
        for s in free:
            lo, hi = bounds[input_of[s]]
            cand_vals[s] = sorted({lo, min(lo + 1, hi), hi, max(hi - 1, lo), (lo + hi) // 2})
        grid = itertools.product(*(cand_vals[s] for s in free)) if free else [()]
        randoms = ([rng.randint(*bounds[input_of[s]]) for s in free] for _ in range(n_random))
        for point in itertools.chain(itertools.islice(grid, 4096), randoms):
            sub = dict(zip(free, point))
            full = {s: sp.sympify(e).subs(sub) for s, e in sol.items()}
            full.update(sub)
            named = {role: {n: full.get(sym, sym) for n, sym in m.items()} for role, m in sym_map.items()}
            if any(not getattr(v, "is_integer", isinstance(v, int)) for vs in named.values() for v in vs.values()):
                continue
            named = {role: {n: int(v) for n, v in vs.items()} for role, vs in named.items()}
            if any(not (bounds[n][0] <= v <= bounds[n][1]) for vs in named.values() for n, v in vs.items()):
                continue
            if not all(bool(sp.sympify(c).subs(full)) for c in conds):
                continue
            if not self._concrete_ok(variable, named):
                return named if variable is None else {"variable": variable, **named}
        return None

    def _concrete_ok(self, variable: str | None, named: Mapping[str, Mapping[str, int]]) -> bool:
        def dom(vals: Mapping[str, int]) -> Domain:
            return {n: torch.tensor([vals[n]]) for n in self.low.inputs}

        if variable is None:
            return not self._failures(dom(named["input"]), limit=1)
        agree = interchange_intervention(self.low, self.high, self.alignment, variable,
                                         dom(named["base"]), dom(named["source"]))
        return bool(agree.all())


def _split_condition(conds: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """The equalities (to solve) and the other relations of a list of sympy conditions."""
    import sympy as sp

    eqs, others = [], []
    for c in conds:
        for term in (c.args if isinstance(c, sp.And) else (c,)):
            if term == sp.true:
                continue
            if term == sp.false:
                eqs.append(sp.Eq(1, 0))
            elif isinstance(term, sp.Equality):
                eqs.append(term)
            else:
                others.append(term)
    return eqs, others


# ---------------------------------------------------------------------------------------------
# The puzzle (seed 002)
# ---------------------------------------------------------------------------------------------


def puzzle_models(readout: Callable[[Any], Any] | None = None) -> tuple[CausalModel, CausalModel]:
    """Jørgensen's puzzle. M: inputs x1, x2; h = x1; y = g(h) (x2 is idle). M*: input x;
    h = x; y = g(h). ``readout`` g defaults to the identity."""
    if readout is not None and not callable(readout):
        raise ValueError(f"readout must be callable or None, got {readout!r}")
    g = readout if readout is not None else (lambda h: h)
    low = CausalModel(("x1", "x2"), {"h": (("x1",), lambda x1: x1), "y": (("h",), g)}, ("y",))
    high = CausalModel(("x",), {"h": (("x",), lambda x: x), "y": (("h",), g)}, ("y",))
    return low, high


def puzzle_alignment(input_name: str) -> Alignment:
    """M*'s input aligned with M's ``input_name`` (x1 or x2); h with h, y with y."""
    if not isinstance(input_name, str) or input_name not in ("x1", "x2"):
        raise ValueError(f"input_name must be x1 or x2, got {input_name!r}")
    return Alignment.identity({"x": input_name, "h": "h", "y": "y"})


# ---------------------------------------------------------------------------------------------
# Trained toy models
# ---------------------------------------------------------------------------------------------


def direction_interchange(u: torch.Tensor) -> Callable[[tuple, tuple], tuple]:
    """Swap the component along the unit vector ``u`` (M,): h' = h_b + u (u·h_s − u·h_b)."""
    check_tensor("u", u, ndim=1)
    u = u.float() if not u.dtype.is_floating_point else u
    norm = u.norm()
    if not (math.isfinite(float(norm)) and float(norm) > 0):
        raise ValueError("u must be a nonzero direction (its norm is 0 or not finite)")
    u = u / norm

    def rule(base: tuple, source: tuple) -> tuple:
        (hb,), (hs,) = base, source
        return (hb + ((hs - hb) @ u)[..., None] * u,)

    return rule


def toy_model_abstraction(W_MN: torch.Tensor, b_N: torch.Tensor, feature: int) -> tuple[CausalModel, CausalModel, Alignment]:
    """One instance of a trained ReLU-output toy model (Elhage et al. 2022) as a causal model,
    and the high-level hypothesis "feature i is read from W_i·h" (with every other feature read
    from its own direction too), aligned by a distributed interchange along W_i.

    Low: x (K, N) -> h = W x (K, M) -> y = ReLU(Wᵀ h + b) (K, N).
    High: x -> f = x_i -> y*_j = ReLU(|W_j|² x_j + b_j) for j ≠ i and ReLU(|W_i|² f + b_i):
    each feature's output is its own single-feature response, nothing else.
    Alignment: x ↔ x, y ↔ y, f ↔ h with τ(h) = W_i·h / |W_i|² and the interchange rule swapping
    h's component along W_i (:func:`direction_interchange`).
    """
    W = check_tensor("W_MN", W_MN, ndim=2).detach().float().cpu()
    n = W.shape[1]
    b = check_tensor("b_N", b_N, ndim=1).detach().float().cpu()
    if b.shape[0] != n:
        raise ValueError(f"b_N must have one entry per feature (N = {n} columns of W_MN), got shape {tuple(b.shape)}")
    feature = check_int("feature", feature, 0, n - 1)
    wi = W[:, feature]
    sq = (W * W).sum(0)  # (N,) |W_j|²
    if float(sq[feature]) == 0.0 or not math.isfinite(float(sq[feature])):
        raise ValueError(f"feature {feature} has a zero direction W_i: nothing to align")
    low = CausalModel(("x",), {
        "h": (("x",), lambda x: x.float() @ W.T),
        "y": (("h",), lambda h: torch.relu(h @ W + b)),
    }, ("y",))

    def high_y(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        xx = x.float().clone()
        xx[:, feature] = f
        return torch.relu(sq * xx + b)

    high = CausalModel(("x",), {"f": (("x",), lambda x: x[:, feature].float()), "y": (("x", "f"), high_y)}, ("y",))
    align = Alignment({
        "x": AlignedVariable(("x",)),
        "f": AlignedVariable(("h",), tau=lambda h: h @ wi / sq[feature], interchange=direction_interchange(wi)),
        "y": AlignedVariable(("y",)),
    })
    return low, high, align
