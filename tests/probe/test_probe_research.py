"""Probe table (issue 20): hostile arguments to every public function of the research modules
(causal, compressed, spd, connections) and the hierarchy constructor. Each case is a thunk
and its expected outcome: a one-line ``ValueError`` whose message matches a pattern (naming
the argument), or a result that passes a check. A raw TypeError/IndexError/RuntimeError, a
NaN, or a silently wrong answer fails the case."""
from __future__ import annotations

import math
import re

import pytest
import torch

from toymodels.data import SparseFeatures
from toymodels.data.hierarchy import Hierarchy, HierarchicalFeatures, tree, zipf_probabilities
from toymodels.models import TMSConfig, build_model
from toymodels.research import causal as C
from toymodels.research import compressed as Q
from toymodels.research import connections as K
from toymodels.research import spd as S
from toymodels.sae import SAEConfig, build_sae
from toymodels.train import TrainConfig

NAN, INF = float("nan"), float("inf")


# ------------------------------------------------------------------ small builders (cheap)
def low_high():
    return C.puzzle_models()


def dom():
    low, _ = C.puzzle_models()
    return C.grid_domain(low.inputs, [(0, 0), (0, 1), (1, 0), (1, 1)])


def iia(**kw):
    low, high = C.puzzle_models()
    args = dict(low=low, high=high, alignment=C.puzzle_alignment("x1"), variable="h", domain=dom())
    args.update(kw)
    return C.interchange_accuracy(args.pop("low"), args.pop("high"), args.pop("alignment"), args.pop("variable"),
                                  args.pop("domain"), **args)


def ii(**kw):
    low, high = C.puzzle_models()
    d = dom()
    args = dict(low=low, high=high, alignment=C.puzzle_alignment("x1"), variable="h", base=d, source=d)
    args.update(kw)
    return C.interchange_intervention(args.pop("low"), args.pop("high"), args.pop("alignment"), args.pop("variable"),
                                      args.pop("base"), args.pop("source"), **args)


def expl(**kw):
    low, high = C.puzzle_models()
    args = dict(low=low, high=high, alignment=C.puzzle_alignment("x2"))
    args.update(kw)
    return C.Explanation(args.pop("low"), args.pop("high"), args.pop("alignment"), **args)


def model(mech=None, inputs=("a",), outputs=("b",)):
    return C.CausalModel(inputs, mech if mech is not None else {"b": (("a",), lambda a: a + 1)}, outputs)


W4 = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
B4 = torch.zeros(4)


def bigram_src(i=2, d=4):
    return Q.BigramSource(d_resid=d, n_tokens=3, n_bigrams=2, n_instances=i, seed=0)


def bigram_mlp(i=2, d=4):
    return Q.BigramMLP(Q.BigramMLPConfig(d_resid=d, d_mlp=5, n_instances=i))


def resid_mlp(i=2, n=4):
    return Q.ResidualMLP(Q.ResidualMLPConfig(n_features=n, d_embed=6, d_mlp=3, n_instances=i))


def tms(i=2, n=5):
    return build_model(TMSConfig(n, 2, i), seed=0)


def spd_model(i=2):
    return S.SPDModel(tms(i), S.SPDConfig(n_components=3, gate_hidden=2))


TINY = TrainConfig(steps=2, batch_size=8, quiet=True, eval_samples=16)


def two_layer(i=2):
    return K.build_two_layer(K.ConnectionsConfig(n_instances=i), seed=0)


def sae(d, f, i=2):
    return build_sae(SAEConfig(d_model=d, dict_size=f, n_instances=i, l1_coefficient=0.01), seed=0)


def z(i=2, b=8, f=3):
    return torch.rand(i, b, f, generator=torch.Generator().manual_seed(1))


def graph(i=1, n=2, m=2):
    return torch.ones(i, n, m, dtype=torch.bool)


# ------------------------------------------------------------------ checks of correct results
def finite_tensor(t):
    return isinstance(t, torch.Tensor) and bool(torch.isfinite(t).all())


def ok_iia(acc):
    return lambda r: r.accuracy == acc


CASES = [
    # ---------------------------------------------------------------- causal: CausalModel
    ("cm-inputs-str", lambda: C.CausalModel("ab", {"c": (("a",), lambda a: a)}, ("c",)), r"inputs"),
    ("cm-inputs-empty", lambda: C.CausalModel((), {"c": (("a",), lambda a: a)}, ("c",)), r"inputs"),
    ("cm-inputs-int", lambda: C.CausalModel((1,), {"c": ((1,), lambda a: a)}, ("c",)), r"inputs"),
    ("cm-inputs-dup", lambda: C.CausalModel(("a", "a"), {}, ("a",)), r"inputs"),
    ("cm-mech-not-mapping", lambda: C.CausalModel(("a",), [("b", ("a",), abs)], ("b",)), r"mechanisms"),
    ("cm-mech-not-pair", lambda: C.CausalModel(("a",), {"b": abs}, ("b",)), r"mechanisms"),
    ("cm-mech-triple", lambda: C.CausalModel(("a",), {"b": (("a",), abs, 1)}, ("b",)), r"mechanisms"),
    ("cm-parents-str", lambda: C.CausalModel(("x1",), {"b": ("x1", lambda a: a)}, ("b",)), r"parents"),
    ("cm-arity-few", lambda: model({"b": (("a",), lambda a, c: a)}), r"mechanism|argument"),
    ("cm-arity-many", lambda: model({"b": (("a",), lambda: 1)}), r"mechanism|argument"),
    ("cm-arity-two-parents", lambda: C.CausalModel(("a", "c"), {"b": (("a", "c"), lambda a: a)}, ("b",)), r"mechanism|argument"),
    ("cm-arity-varargs-ok", lambda: C.CausalModel(("a", "c"), {"b": (("a", "c"), lambda *v: sum(v))}, ("b",)).run({"a": 1, "c": 2})["b"],
     lambda r: r == 3),
    ("cm-arity-builtin-ok", lambda: model({"b": (("a",), abs)}).run({"a": -2})["b"], lambda r: r == 2),
    ("cm-arity-torch-ok", lambda: model({"b": (("a",), torch.relu)}).run({"a": torch.tensor([-1.0, 2.0])})["b"].tolist(),
     lambda r: r == [0.0, 2.0]),
    ("cm-not-callable", lambda: model({"b": (("a",), 3)}), r"callable"),
    ("cm-unknown-parent", lambda: model({"b": (("z",), lambda z: z)}), r"unknown parent"),
    ("cm-cycle", lambda: C.CausalModel(("a",), {"b": (("c",), abs), "c": (("b",), abs)}, ("b",)), r"cycle"),
    ("cm-clash", lambda: C.CausalModel(("a",), {"a": (("a",), abs)}, ("a",)), r"inputs and mechanisms"),
    ("cm-outputs-str", lambda: model(outputs="b"), r"outputs"),
    ("cm-outputs-empty", lambda: model(outputs=()), r"outputs"),
    ("cm-outputs-unknown", lambda: model(outputs=("q",)), r"outputs"),
    ("cm-run-values-not-mapping", lambda: model().run([1]), r"values"),
    ("cm-run-missing-input", lambda: model().run({}), r"input 'a'"),
    ("cm-run-unknown-intervention", lambda: model().run({"a": 1}, {"q": 2}), r"unknown node"),
    ("cm-run-interventions-not-mapping", lambda: model().run({"a": 1}, [("b", 1)]), r"interventions"),
    ("cm-run-ok", lambda: model().run({"a": 1})["b"], lambda r: r == 2),
    # ---------------------------------------------------------------- causal: alignments
    ("av-low-str", lambda: C.AlignedVariable("x1"), r"low"),
    ("av-low-empty", lambda: C.AlignedVariable(()), r"low"),
    ("av-low-int", lambda: C.AlignedVariable((1,)), r"low"),
    ("av-tau-not-callable", lambda: C.AlignedVariable(("h",), tau=3), r"tau"),
    ("av-interchange-not-callable", lambda: C.AlignedVariable(("h",), interchange="swap"), r"interchange"),
    ("av-list-ok", lambda: C.AlignedVariable(["h"]).low, lambda r: r == ("h",)),
    ("al-not-mapping", lambda: C.Alignment([("x", C.AlignedVariable(("x",)))]), r"variables"),
    ("al-value-not-av", lambda: C.Alignment({"x": "x1"}), r"AlignedVariable"),
    ("al-identity-not-mapping", lambda: C.Alignment.identity([("x", "x1")]), r"pairs"),
    ("al-identity-int", lambda: C.Alignment.identity({"x": 1}), r"pairs|low"),
    ("al-unaligned", lambda: C.puzzle_alignment("x1")["q"], r"not aligned"),
    ("puzzle-alignment-bad", lambda: C.puzzle_alignment("x3"), r"input_name"),
    ("puzzle-alignment-int", lambda: C.puzzle_alignment(1), r"input_name"),
    ("puzzle-readout-not-callable", lambda: C.puzzle_models(readout=3), r"readout"),
    ("puzzle-readout-ok", lambda: C.puzzle_models(readout=lambda h: 2 * h)[0].run({"x1": 3, "x2": 0})["y"], lambda r: r == 6),
    # ---------------------------------------------------------------- causal: domains
    ("grid-short-rows", lambda: C.grid_domain(("a", "b"), [(0,), (1,)]), r"rows"),
    ("grid-long-rows", lambda: C.grid_domain(("a", "b"), [(0, 1, 2)]), r"rows"),
    ("grid-ragged", lambda: C.grid_domain(("a", "b"), [(0, 1), (1,)]), r"rows"),
    ("grid-float-rows", lambda: C.grid_domain(("a",), [(0.5,), (1,)]), r"rows"),
    ("grid-bool-rows", lambda: C.grid_domain(("a",), [(True,), (False,)]), r"rows"),
    ("grid-nan-rows", lambda: C.grid_domain(("a",), [(NAN,)]), r"rows"),
    ("grid-str-rows", lambda: C.grid_domain(("a",), [("1",)]), r"rows"),
    ("grid-rows-not-seq", lambda: C.grid_domain(("a",), 5), r"rows"),
    ("grid-empty-rows", lambda: C.grid_domain(("a",), []), r"at least one"),
    ("grid-names-str", lambda: C.grid_domain("ab", [(0, 1)]), r"names"),
    ("grid-names-empty", lambda: C.grid_domain((), [()]), r"names"),
    ("grid-names-dup", lambda: C.grid_domain(("a", "a"), [(0, 1)]), r"names"),
    ("grid-both", lambda: C.grid_domain(("a",), [(0,)], ranges=[[0]]), r"exactly one"),
    ("grid-neither", lambda: C.grid_domain(("a",)), r"exactly one"),
    ("grid-ranges-short", lambda: C.grid_domain(("a", "b"), ranges=[[0, 1]]), r"ranges"),
    ("grid-ranges-float", lambda: C.grid_domain(("a",), ranges=[[0.5, 1.5]]), r"ranges"),
    ("grid-ranges-empty", lambda: C.grid_domain(("a", "b"), ranges=[[0, 1], []]), r"ranges|at least one"),
    ("grid-ranges-int", lambda: C.grid_domain(("a",), ranges=[3]), r"ranges"),
    ("grid-ranges-ok", lambda: C.domain_size(C.grid_domain(("a", "b"), ranges=[range(2), range(3)])), lambda r: r == 6),
    ("grid-numpy-ints-ok", lambda: C.grid_domain(("a",), [(__import__("numpy").int64(3),)])["a"].tolist(), lambda r: r == [3]),
    ("grid-generator-ok", lambda: C.grid_domain(("a", "b"), __import__("itertools").product(range(2), range(2)))["b"].tolist(),
     lambda r: r == [0, 1, 0, 1]),
    ("grid-tensor-ok", lambda: C.grid_domain(("a", "b"), torch.tensor([[0, 1], [2, 3]]))["b"].tolist(), lambda r: r == [1, 3]),
    ("grid-float-tensor", lambda: C.grid_domain(("a", "b"), torch.tensor([[0.5, 1.0]])), r"rows\[0\]"),
    ("dsize-empty", lambda: C.domain_size({}), r"domain"),
    ("dsize-not-mapping", lambda: C.domain_size([torch.zeros(2)]), r"domain"),
    ("dsize-not-tensor", lambda: C.domain_size({"a": [1, 2]}), r"domain"),
    ("dsize-scalar", lambda: C.domain_size({"a": torch.tensor(1)}), r"domain"),
    ("dsize-disagree", lambda: C.domain_size({"a": torch.zeros(2), "b": torch.zeros(3)}), r"disagree"),
    ("drows-float-index", lambda: C.domain_rows(dom(), torch.tensor([0.5])), r"index"),
    ("drows-out-of-range", lambda: C.domain_rows(dom(), torch.tensor([7])), r"index"),
    ("drows-2d-index", lambda: C.domain_rows(dom(), torch.tensor([[0]])), r"index"),
    ("drows-list-ok", lambda: C.domain_rows(dom(), [1, 2])["x2"].tolist(), lambda r: r == [1, 0]),
    # ---------------------------------------------------------------- causal: interventions
    ("ii-variable-unknown", lambda: ii(variable="q"), r"variable"),
    ("ii-variable-int", lambda: ii(variable=1), r"variable"),
    ("ii-low-not-model", lambda: ii(low="m"), r"low"),
    ("ii-high-not-model", lambda: ii(high=None), r"high"),
    ("ii-alignment-not-alignment", lambda: ii(alignment={"x": "x1"}), r"alignment"),
    ("ii-base-missing-input", lambda: ii(base={"x1": torch.tensor([0])}, source={"x1": torch.tensor([0])}), r"x2|input"),
    ("ii-base-source-sizes", lambda: ii(source=C.grid_domain(("x1", "x2"), [(0, 0)])), r"source|base"),
    ("ii-atol-negative", lambda: ii(atol=-1.0), r"atol"),
    ("ii-atol-nan", lambda: ii(atol=NAN), r"atol"),
    ("ii-atol-str", lambda: ii(atol="0"), r"atol"),
    ("ii-ok", lambda: ii().tolist(), lambda r: r == [True] * 4),
    ("iia-chunk-zero", lambda: iia(chunk=0), r"chunk"),
    ("iia-chunk-float", lambda: iia(chunk=2.5), r"chunk"),
    ("iia-max-ce-negative", lambda: iia(max_counterexamples=-1), r"max_counterexamples"),
    ("iia-max-ce-bool", lambda: iia(max_counterexamples=True), r"max_counterexamples"),
    ("iia-atol-inf", lambda: iia(atol=INF), r"atol"),
    ("iia-variable-unknown", lambda: iia(variable="z"), r"variable"),
    ("iia-domain-empty", lambda: iia(domain={}), r"domain"),
    ("iia-domain-list", lambda: iia(domain=[(0, 0)]), r"domain"),
    ("iia-source-size", lambda: iia(source=C.grid_domain(("x1", "x2"), [(0, 0)])), r"source"),
    ("iia-ok-x1", lambda: iia(), ok_iia(1.0)),
    ("iia-ok-x2", lambda: iia(alignment=C.puzzle_alignment("x2")), ok_iia(0.5)),
    ("iia-chunk-1-same", lambda: iia(alignment=C.puzzle_alignment("x2"), chunk=1), ok_iia(0.5)),
    # ---------------------------------------------------------------- causal: Explanation
    ("ex-low-not-model", lambda: expl(low=3), r"low"),
    ("ex-alignment-dict", lambda: expl(alignment={"x": "x1"}), r"alignment"),
    ("ex-variables-str", lambda: expl(variables="h"), r"variables"),
    ("ex-variables-unknown", lambda: expl(variables=("q",)), r"variables|not aligned"),
    ("ex-condition-unknown-symbol", lambda: expl(condition=__import__("sympy").Symbol("z") > 0), r"condition"),
    ("ex-condition-garbage", lambda: expl(condition=object()), r"condition"),
    ("ex-vs-float-bounds", lambda: expl().verify_symbolic({"x1": (0, 1.5), "x2": (0, 1)}), r"bounds"),
    ("ex-vs-bool-bounds", lambda: expl().verify_symbolic({"x1": (False, True), "x2": (0, 1)}), r"bounds"),
    ("ex-vs-nan-bounds", lambda: expl().verify_symbolic({"x1": (0, NAN), "x2": (0, 1)}), r"bounds"),
    ("ex-vs-short-bound", lambda: expl().verify_symbolic({"x1": (0,), "x2": (0, 1)}), r"bounds"),
    ("ex-vs-scalar-bound", lambda: expl().verify_symbolic({"x1": 3, "x2": (0, 1)}), r"bounds"),
    ("ex-vs-empty-bound", lambda: expl().verify_symbolic({"x1": (2, 1), "x2": (0, 1)}), r"bounds"),
    ("ex-vs-missing-bound", lambda: expl().verify_symbolic({"x1": (0, 1)}), r"bounds"),
    ("ex-vs-not-mapping", lambda: expl().verify_symbolic([(0, 1), (0, 1)]), r"bounds"),
    ("ex-vs-n-random-negative", lambda: expl().verify_symbolic({"x1": (0, 1), "x2": (0, 1)}, n_random=-1), r"n_random"),
    ("ex-vs-seed-negative", lambda: expl().verify_symbolic({"x1": (0, 1), "x2": (0, 1)}, seed=-1), r"seed"),
    ("ex-vs-ok", lambda: expl().verify_symbolic({"x1": (0, 3), "x2": (0, 3)}).holds, lambda r: r is False),
    ("ex-ve-domain-empty", lambda: expl().verify_enumerated({}), r"domain"),
    ("ex-ve-domain-missing-input", lambda: expl().verify_enumerated({"x1": torch.tensor([0])}), r"x2|input"),
    ("ex-ve-ok", lambda: expl().verify_enumerated(dom()).holds, lambda r: r is False),
    ("ex-ce-limit-negative", lambda: expl().counterexamples_outside(dom(), limit=-1), r"limit"),
    ("ex-ce-limit-float", lambda: expl().counterexamples_outside(dom(), limit=1.5), r"limit"),
    ("ex-satisfies-not-domain", lambda: expl().satisfies(5), r"domain"),
    # ---------------------------------------------------------------- causal: toy models
    ("di-zero", lambda: C.direction_interchange(torch.zeros(3)), r"\bu\b"),
    ("di-nan", lambda: C.direction_interchange(torch.tensor([NAN, 1.0])), r"\bu\b"),
    ("di-2d", lambda: C.direction_interchange(torch.ones(2, 2)), r"\bu\b"),
    ("di-list", lambda: C.direction_interchange([1.0, 0.0]), r"\bu\b"),
    ("di-empty", lambda: C.direction_interchange(torch.zeros(0)), r"\bu\b"),
    ("di-int-ok", lambda: C.direction_interchange(torch.tensor([2, 0]))((torch.zeros(1, 2),), (torch.ones(1, 2),))[0].tolist(),
     lambda r: r == [[1.0, 0.0]]),
    ("tma-W-1d", lambda: C.toy_model_abstraction(torch.ones(4), B4, 0), r"W_MN"),
    ("tma-W-3d", lambda: C.toy_model_abstraction(torch.ones(1, 3, 4), B4, 0), r"W_MN"),
    ("tma-W-nan", lambda: C.toy_model_abstraction(W4.clone().fill_(NAN), B4, 0), r"W_MN"),
    ("tma-W-list", lambda: C.toy_model_abstraction([[1.0]], torch.zeros(1), 0), r"W_MN"),
    ("tma-b-wrong-len", lambda: C.toy_model_abstraction(W4, torch.zeros(3), 0), r"b_N"),
    ("tma-b-nan", lambda: C.toy_model_abstraction(W4, torch.full((4,), NAN), 0), r"b_N"),
    ("tma-b-2d", lambda: C.toy_model_abstraction(W4, torch.zeros(1, 4), 0), r"b_N"),
    ("tma-feature-float", lambda: C.toy_model_abstraction(W4, B4, 1.0), r"feature"),
    ("tma-feature-bool", lambda: C.toy_model_abstraction(W4, B4, True), r"feature"),
    ("tma-feature-range", lambda: C.toy_model_abstraction(W4, B4, 4), r"feature"),
    ("tma-feature-negative", lambda: C.toy_model_abstraction(W4, B4, -1), r"feature"),
    ("tma-zero-direction", lambda: C.toy_model_abstraction(torch.zeros(3, 4), B4, 0), r"zero direction"),
    ("tma-ok", lambda: C.interchange_accuracy(*C.toy_model_abstraction(torch.eye(3, 4), B4, 0), "f",
                                              {"x": torch.eye(4)}).accuracy, lambda r: r == 1.0),
    # ---------------------------------------------------------------- compressed
    ("mbt-n-bigrams-numpy-ok", lambda: Q.make_bigram_task(2, 4, 3, __import__("numpy").int64(2)).n_bigrams.tolist(),
     lambda r: r == [2, 2]),
    ("mbt-n-bigrams-str", lambda: Q.make_bigram_task(1, 4, 3, "2"), r"n_bigrams"),
    ("mbt-n-bigrams-float", lambda: Q.make_bigram_task(1, 4, 3, 2.0), r"n_bigrams"),
    ("mbt-n-bigrams-none", lambda: Q.make_bigram_task(1, 4, 3, None), r"n_bigrams"),
    ("mbt-n-bigrams-too-many", lambda: Q.make_bigram_task(1, 4, 3, 10), r"n_bigrams"),
    ("mbt-n-bigrams-wrong-len", lambda: Q.make_bigram_task(2, 4, 3, [1, 2, 3]), r"n_bigrams"),
    ("mbt-seed-negative", lambda: Q.make_bigram_task(1, 4, 3, 2, seed=-1), r"seed"),
    ("mbt-seed-float", lambda: Q.make_bigram_task(1, 4, 3, 2, seed=0.5), r"seed"),
    ("mbt-n-instances-zero", lambda: Q.make_bigram_task(0, 4, 3, 2), r"n_instances"),
    ("bs-d-resid-bool", lambda: Q.BigramSource(True, 3, 2), r"d_resid"),
    ("bs-noise-nan", lambda: Q.BigramSource(4, 3, 2, noise=NAN), r"noise"),
    ("bs-batch-zero", lambda: bigram_src().sample(0), r"batch_size"),
    ("bmlp-config-type", lambda: Q.BigramMLP({"d_resid": 4}), r"config"),
    ("bmlp-forward-width", lambda: bigram_mlp()(torch.zeros(2, 3, 5)), r"\br\b|x must"),
    ("bmlp-forward-2d", lambda: bigram_mlp()(torch.zeros(3, 4)), r"\br\b|x must"),
    ("bmlp-forward-instances", lambda: bigram_mlp()(torch.zeros(3, 3, 4)), r"\br\b|x must"),
    ("bmlp-forward-list", lambda: bigram_mlp()([[[0.0] * 4]]), r"\br\b|x must"),
    ("bmlp-loss-width", lambda: bigram_mlp().loss(torch.zeros(2, 3, 4)), r"x must"),
    ("bmlp-loss-empty", lambda: bigram_mlp().loss(torch.zeros(2, 0, 8)), r"x must"),
    ("bmlp-forward-ok", lambda: bigram_mlp()(torch.zeros(1, 3, 4)).shape, lambda r: tuple(r) == (2, 3, 4)),
    ("bmlp-load-other-width", lambda: bigram_mlp().load_instances([0], bigram_mlp(1, d=5)), r"other"),
    ("bmlp-load-other-count", lambda: bigram_mlp().load_instances([0], bigram_mlp(2)), r"other|index"),
    ("bmlp-load-other-type", lambda: bigram_mlp().load_instances([0], resid_mlp(1)), r"other"),
    ("bmlp-subset-out-of-range", lambda: bigram_mlp().subset([5]), r"index"),
    ("stored-width-mismatch", lambda: Q.stored_bigrams(bigram_mlp(2, d=4), bigram_src(2, d=6)), r"d_resid|width"),
    ("stored-instances-mismatch", lambda: Q.stored_bigrams(bigram_mlp(2), bigram_src(3)), r"instances"),
    ("stored-model-type", lambda: Q.stored_bigrams(resid_mlp(2), bigram_src(2)), r"model"),
    ("stored-source-type", lambda: Q.stored_bigrams(bigram_mlp(2), SparseFeatures(4, 0.1, 2)), r"source"),
    ("stored-ok", lambda: Q.stored_bigrams(bigram_mlp(2), bigram_src(2)).count.shape, lambda r: tuple(r) == (2,)),
    ("rmlp-config-type", lambda: Q.ResidualMLP(Q.BigramMLPConfig()), r"config"),
    ("rmlp-forward-width", lambda: resid_mlp()(torch.zeros(2, 3, 5)), r"x must"),
    ("rmlp-forward-instances", lambda: resid_mlp()(torch.zeros(3, 3, 4)), r"x must"),
    ("rmlp-load-other-width", lambda: resid_mlp().load_instances([0], resid_mlp(1, n=5)), r"other"),
    ("bcap-widths-empty", lambda: Q.bigram_capacity([]), r"widths"),
    ("bcap-widths-int", lambda: Q.bigram_capacity(4), r"widths"),
    ("bcap-widths-zero", lambda: Q.bigram_capacity([0]), r"widths"),
    ("bcap-widths-float", lambda: Q.bigram_capacity([4.5]), r"widths"),
    ("bcap-k-factors-empty", lambda: Q.bigram_capacity([4], k_factors=()), r"k_factors"),
    ("bcap-k-factors-nan", lambda: Q.bigram_capacity([4], k_factors=(NAN,)), r"k_factors"),
    ("bcap-k-factors-negative", lambda: Q.bigram_capacity([4], k_factors=(-1.0,)), r"k_factors"),
    ("bcap-n-tokens-zero", lambda: Q.bigram_capacity([4], n_tokens=0), r"n_tokens"),
    ("bcap-d-resid-float", lambda: Q.bigram_capacity([4], d_resid=4.0), r"d_resid"),
    ("bcap-train-in-int", lambda: Q.bigram_capacity([4], train_in=1), r"train_in"),
    ("bcap-noise-negative", lambda: Q.bigram_capacity([4], noise=-0.1), r"noise"),
    ("bcap-seeds-zero", lambda: Q.bigram_capacity([4], seeds=0), r"seeds"),
    ("bcap-seed-negative", lambda: Q.bigram_capacity([4], seed=-1), r"seed"),
    ("bcap-train-dict", lambda: Q.bigram_capacity([4], train={"steps": 1}), r"train"),
    ("fpl-length-mismatch", lambda: Q.fit_power_law([1, 2, 3], [1, 2]), r"same length|x and y"),
    ("fpl-nan", lambda: Q.fit_power_law([1, NAN, 3], [1, 2, 3]), r"x"),
    ("fpl-str", lambda: Q.fit_power_law(["1", "2"], [1, 2]), r"x"),
    ("fpl-ok", lambda: Q.fit_power_law([1, 2, 4], [3, 6, 12]), lambda r: abs(r[0] - 1) < 1e-9 and abs(r[1] - 3) < 1e-9),
    # ---------------------------------------------------------------- spd
    ("spd-config-type", lambda: S.SPDModel(tms(), {"n_components": 3}), r"config"),
    ("spd-target-type", lambda: S.SPDModel(torch.nn.Linear(2, 2), S.SPDConfig()), r"cannot be decomposed"),
    ("spd-as-target-str", lambda: S.as_target("tms"), r"cannot be decomposed"),
    ("spd-tied-target-type", lambda: S.TiedTarget(torch.nn.Linear(2, 2)), r"tied-weight"),
    ("spd-split-width", lambda: spd_model().loss(torch.zeros(2, 3, 5)), r"x must"),
    ("spd-split-instances", lambda: spd_model().loss(torch.zeros(3, 3, 11)), r"x must"),
    ("spd-ci-width", lambda: S.causal_importance(spd_model(), torch.zeros(2, 3, 4)), r"\bx\b"),
    ("spd-ci-instances", lambda: S.causal_importance(spd_model(), torch.zeros(3, 3, 5)), r"\bx\b"),
    ("spd-ci-2d", lambda: S.causal_importance(spd_model(), torch.zeros(3, 5)), r"\bx\b"),
    ("spd-ci-empty", lambda: S.causal_importance(spd_model(), torch.zeros(2, 0, 5)), r"\bx\b"),
    ("spd-ci-list", lambda: S.causal_importance(spd_model(), [[[0.0] * 5]]), r"\bx\b"),
    ("spd-ci-int", lambda: S.causal_importance(spd_model(), torch.zeros(2, 3, 5, dtype=torch.long)), r"\bx\b"),
    ("spd-ci-not-spd", lambda: S.causal_importance(tms(), torch.zeros(2, 3, 5)), r"spd"),
    ("spd-ci-ok", lambda: S.causal_importance(spd_model(), torch.eye(5)[None])["W"].shape, lambda r: tuple(r) == (2, 5, 3)),
    ("r1c-C-mismatch", lambda: S.rank_one_cosine(torch.ones(2, 3), torch.ones(4, 3), torch.ones(1, 3), torch.ones(1, 3)), r"\bV\b|\bU\b"),
    ("r1c-J-mismatch", lambda: S.rank_one_cosine(torch.ones(2, 3), torch.ones(2, 3), torch.ones(1, 3), torch.ones(2, 3)), r"\bv\b|\bu\b"),
    ("r1c-out-mismatch", lambda: S.rank_one_cosine(torch.ones(2, 3), torch.ones(2, 3), torch.ones(1, 4), torch.ones(1, 3)), r"\bu\b|out"),
    ("r1c-in-mismatch", lambda: S.rank_one_cosine(torch.ones(2, 3), torch.ones(2, 3), torch.ones(1, 3), torch.ones(1, 4)), r"\bv\b|in"),
    ("r1c-instances-mismatch", lambda: S.rank_one_cosine(torch.ones(2, 2, 3), torch.ones(2, 2, 3), torch.ones(3, 1, 3), torch.ones(3, 1, 3)),
     r"\bu\b|instance|leading"),
    ("r1c-1d", lambda: S.rank_one_cosine(torch.ones(3), torch.ones(3), torch.ones(3), torch.ones(3)), r"\bU\b"),
    ("r1c-nan", lambda: S.rank_one_cosine(torch.full((2, 3), NAN), torch.ones(2, 3), torch.ones(1, 3), torch.ones(1, 3)), r"\bU\b"),
    ("r1c-list", lambda: S.rank_one_cosine([[1.0]], torch.ones(1, 1), torch.ones(1, 1), torch.ones(1, 1)), r"\bU\b"),
    ("r1c-ok", lambda: S.rank_one_cosine(torch.eye(2), torch.eye(2), torch.eye(2), torch.eye(2)), lambda r: torch.equal(r, torch.eye(2))),
    ("lhs-leak-nan", lambda: S.lower_leaky_hard_sigmoid(torch.zeros(2), NAN), r"leak"),
    ("lhs-x-list", lambda: S.lower_leaky_hard_sigmoid([0.5], 0.01), r"\bx\b"),
    ("uhs-leak-str", lambda: S.upper_leaky_hard_sigmoid(torch.zeros(2), "0.1"), r"leak"),
    ("lhs-ok", lambda: S.lower_leaky_hard_sigmoid(torch.tensor([-1.0, 0.5, 2.0]), 0.1).tolist(),
     lambda r: r == pytest.approx([-0.1, 0.5, 1.0])),
    ("ms-base-type", lambda: S.MaskedSource("src", 3), r"base"),
    ("ms-n-uniform-zero", lambda: S.MaskedSource(SparseFeatures(5, 0.1, 2), 0), r"n_uniform"),
    ("ms-set-state-bad", lambda: S.MaskedSource(SparseFeatures(5, 0.1, 2), 3).set_state(None), r"state"),
    ("tspd-instances-mismatch", lambda: S.train_spd(tms(2), SparseFeatures(5, 0.1, 3), S.SPDConfig(n_components=2), TINY),
     r"instances"),
    ("tspd-width-mismatch", lambda: S.train_spd(tms(2), SparseFeatures(4, 0.1, 2), S.SPDConfig(n_components=2), TINY),
     r"dim|width"),
    ("tspd-config-type", lambda: S.train_spd(tms(2), SparseFeatures(5, 0.1, 2), {"n_components": 2}, TINY), r"config"),
    ("tspd-train-config-type", lambda: S.train_spd(tms(2), SparseFeatures(5, 0.1, 2), S.SPDConfig(n_components=2), {"steps": 1}),
     r"train_config"),
    ("tspd-mask-seed-negative", lambda: S.train_spd(tms(2), SparseFeatures(5, 0.1, 2), S.SPDConfig(n_components=2), TINY, mask_seed=-1),
     r"seed"),
    ("tspd-source-type", lambda: S.train_spd(tms(2), torch.zeros(2, 8, 5), S.SPDConfig(n_components=2), TINY), r"source"),
    # ---------------------------------------------------------------- connections
    ("cc-n-instances-bool", lambda: K.ConnectionsConfig(n_instances=True), r"n_instances"),
    ("btl-config-type", lambda: K.build_two_layer({"n_instances": 1}), r"config"),
    ("btl-seed-negative", lambda: K.build_two_layer(K.ConnectionsConfig(), seed=-1), r"seed"),
    ("tl-forward-width", lambda: two_layer()(torch.zeros(2, 3, 5)), r"f1"),
    ("tl-forward-instances", lambda: two_layer()(torch.zeros(3, 3, 12)), r"f1"),
    ("tl-layer2-width", lambda: two_layer().layer_2(torch.zeros(2, 3, 5)), r"h1"),
    ("tl-subset-out-of-range", lambda: two_layer().subset([7]), r"index"),
    ("ls-layer-3", lambda: K.layer_source(two_layer(), 3), r"layer"),
    ("ls-layer-bool", lambda: K.layer_source(two_layer(), True), r"layer"),
    ("ls-model-type", lambda: K.layer_source("m", 1), r"model"),
    ("ls-seed-negative", lambda: K.layer_source(two_layer(), 1, seed=-1), r"seed"),
    ("la-features-dim", lambda: K.LayerActivations(two_layer(), 1, SparseFeatures(5, 0.1, 2)), r"features"),
    ("la-features-instances", lambda: K.LayerActivations(two_layer(), 1, SparseFeatures(12, 0.1, 3)), r"features|instances"),
    ("la-features-type", lambda: K.LayerActivations(two_layer(), 1, "f"), r"features"),
    ("pl-n-samples-zero", lambda: K.paired_latents(two_layer(), sae(16, 12), sae(12, 8), n_samples=0), r"n_samples"),
    ("pl-sae1-width", lambda: K.paired_latents(two_layer(), sae(12, 12), sae(12, 8), n_samples=4), r"sae_1"),
    ("pl-sae2-width", lambda: K.paired_latents(two_layer(), sae(16, 12), sae(16, 8), n_samples=4), r"sae_2"),
    ("pl-sae-instances", lambda: K.paired_latents(two_layer(), sae(16, 12, i=3), sae(12, 8), n_samples=4), r"sae_1"),
    ("pl-seed-negative", lambda: K.paired_latents(two_layer(), sae(16, 12), sae(12, 8), n_samples=4, seed=-1), r"seed"),
    ("pl-ok", lambda: K.paired_latents(two_layer(), sae(16, 12), sae(12, 8), n_samples=4)[1].shape, lambda r: tuple(r) == (2, 4, 8)),
    ("fsm-nan-z1", lambda: K.fit_sparse_map(z().index_fill(1, torch.tensor([0]), NAN), z(), l1=0.01), r"z1"),
    ("fsm-inf-z2", lambda: K.fit_sparse_map(z(), z().index_fill(1, torch.tensor([0]), INF), l1=0.01), r"z2"),
    ("fsm-empty-batch", lambda: K.fit_sparse_map(z(b=0), z(b=0), l1=0.01), r"z1|batch"),
    ("fsm-empty-features", lambda: K.fit_sparse_map(z(f=0), z(), l1=0.01), r"z1"),
    ("fsm-2d", lambda: K.fit_sparse_map(torch.zeros(8, 3), torch.zeros(8, 3), l1=0.01), r"z1"),
    ("fsm-batch-mismatch", lambda: K.fit_sparse_map(z(b=8), z(b=9), l1=0.01), r"z1|z2"),
    ("fsm-instances-mismatch", lambda: K.fit_sparse_map(z(i=2), z(i=3), l1=0.01), r"z1|z2"),
    ("fsm-int", lambda: K.fit_sparse_map(torch.ones(2, 8, 3, dtype=torch.long), z(), l1=0.01), r"z1"),
    ("fsm-list", lambda: K.fit_sparse_map([[[1.0]]], z(i=1, f=1), l1=0.01), r"z1"),
    ("fsm-l1-nan", lambda: K.fit_sparse_map(z(), z(), l1=NAN), r"l1"),
    ("fsm-l1-negative", lambda: K.fit_sparse_map(z(), z(), l1=-1.0), r"l1"),
    ("fsm-iters-zero", lambda: K.fit_sparse_map(z(), z(), l1=0.01, iters=0), r"iters"),
    ("fsm-tol-nan", lambda: K.fit_sparse_map(z(), z(), l1=0.01, tol=NAN), r"tol"),
    ("fsm-tol-negative", lambda: K.fit_sparse_map(z(), z(), l1=0.01, tol=-1.0), r"tol"),
    ("fsm-ok", lambda: K.fit_sparse_map(z(), z(), l1=0.0, iters=3000)[0], lambda W: finite_tensor(W) and W.shape == (2, 3, 3)),
    ("ml-dirs-2d", lambda: K.match_latents(sae(4, 6), torch.eye(4)), r"directions"),
    ("ml-dirs-width", lambda: K.match_latents(sae(4, 6), torch.ones(2, 5, 3)), r"directions"),
    ("ml-dirs-instances", lambda: K.match_latents(sae(4, 6), torch.ones(3, 4, 3)), r"directions"),
    ("ml-dirs-nan", lambda: K.match_latents(sae(4, 6), torch.full((2, 4, 3), NAN)), r"directions"),
    ("ml-too-few-latents", lambda: K.match_latents(sae(4, 2), torch.ones(2, 4, 3)), r"latents"),
    ("ml-sae-type", lambda: K.match_latents("sae", torch.ones(2, 4, 3)), r"sae"),
    ("ml-ok", lambda: K.match_latents(sae(4, 6), torch.ones(2, 4, 3)).shape, lambda r: tuple(r) == (2, 3)),
    ("mc-match-range", lambda: K.matched_cosines(sae(4, 6), torch.ones(2, 4, 3), torch.full((2, 3), 9)), r"match"),
    ("mc-match-shape", lambda: K.matched_cosines(sae(4, 6), torch.ones(2, 4, 3), torch.zeros(2, 4, dtype=torch.long)), r"match"),
    ("cfb-W-2d", lambda: K.connections_in_feature_basis(torch.ones(3, 3), torch.zeros(1, 2, dtype=torch.long),
                                                         torch.zeros(1, 2, dtype=torch.long)), r"W"),
    ("cfb-match-range", lambda: K.connections_in_feature_basis(torch.ones(1, 3, 3), torch.full((1, 2), 5),
                                                               torch.zeros(1, 2, dtype=torch.long)), r"match_1"),
    ("cfb-match-negative", lambda: K.connections_in_feature_basis(torch.ones(1, 3, 3), torch.zeros(1, 2, dtype=torch.long),
                                                                  torch.full((1, 2), -1)), r"match_2"),
    ("cfb-match-float", lambda: K.connections_in_feature_basis(torch.ones(1, 3, 3), torch.zeros(1, 2),
                                                               torch.zeros(1, 2, dtype=torch.long)), r"match_1"),
    ("cfb-match-instances", lambda: K.connections_in_feature_basis(torch.ones(1, 3, 3), torch.zeros(2, 2, dtype=torch.long),
                                                                   torch.zeros(1, 2, dtype=torch.long)), r"match_1"),
    ("cfb-ok", lambda: K.connections_in_feature_basis(torch.arange(9.0).reshape(1, 3, 3), torch.tensor([[2, 0]]),
                                                      torch.tensor([[1]])).tolist(), lambda r: r == [[[5.0, 3.0]]]),
    ("sg-nan-W", lambda: K.score_graph(torch.full((1, 2, 2), NAN), graph()), r"W"),
    ("sg-inf-W-ok", lambda: K.score_graph(torch.full((1, 2, 2), INF), graph())["precision"], lambda r: r == [1.0]),
    ("sg-shape", lambda: K.score_graph(torch.ones(1, 2, 2), graph(1, 2, 3)), r"shape"),
    ("sg-2d", lambda: K.score_graph(torch.ones(2, 2), torch.ones(2, 2, dtype=torch.bool)), r"W"),
    ("sg-threshold-nan", lambda: K.score_graph(torch.ones(1, 2, 2), graph(), threshold=NAN), r"threshold"),
    ("sg-threshold-negative", lambda: K.score_graph(torch.ones(1, 2, 2), graph(), threshold=-1), r"threshold"),
    ("sg-truth-nan", lambda: K.score_graph(torch.ones(1, 2, 2), torch.full((1, 2, 2), NAN)), r"truth"),
    ("sg-truth-weights-ok", lambda: K.score_graph(torch.ones(1, 1, 2), torch.tensor([[[0.7, 0.0]]]))["precision"],
     lambda r: r == [0.5]),
    ("sg-W-list", lambda: K.score_graph([[[1.0]]], graph(1, 1, 1)), r"W"),
    ("sg-ok", lambda: K.score_graph(torch.tensor([[[1.0, 0.0], [0.0, 0.0]]]), torch.tensor([[[True, True], [False, False]]])),
     lambda r: r["precision"] == [1.0] and r["recall"] == [0.5]),
    # ---------------------------------------------------------------- hierarchy
    ("h-parent-float", lambda: SparseFeatures(8, 0.3, hierarchy=[(0.5, [1, 2], True)]), r"hierarchy\[0\]"),
    ("h-parent-bool", lambda: SparseFeatures(8, 0.3, hierarchy=[(False, [1, 2], True)]), r"hierarchy\[0\]"),
    ("h-child-float", lambda: SparseFeatures(8, 0.3, hierarchy=[(0, [1.7, 2], True)]), r"hierarchy\[0\]"),
    ("h-child-bool", lambda: SparseFeatures(8, 0.3, hierarchy=[(0, [True, 2], True)]), r"hierarchy\[0\]"),
    ("h-children-str", lambda: SparseFeatures(8, 0.3, hierarchy=[(0, "123", True)]), r"hierarchy\[0\]"),
    ("h-child-str", lambda: SparseFeatures(8, 0.3, hierarchy=[(0, ["1"], True)]), r"hierarchy\[0\]"),
    ("h-parent-str", lambda: SparseFeatures(8, 0.3, hierarchy=[("0", [1], True)]), r"hierarchy\[0\]"),
    ("h-children-int", lambda: SparseFeatures(8, 0.3, hierarchy=[(0, 1, True)]), r"hierarchy\[0\]"),
    ("h-children-empty", lambda: SparseFeatures(8, 0.3, hierarchy=[(0, [], True)]), r"hierarchy\[0\]"),
    ("h-child-dup", lambda: SparseFeatures(8, 0.3, hierarchy=[(0, [1, 1], True)]), r"hierarchy\[0\]"),
    ("h-me-int", lambda: SparseFeatures(8, 0.3, hierarchy=[(0, [1], 1)]), r"mutually_exclusive"),
    ("h-item-pair", lambda: SparseFeatures(8, 0.3, hierarchy=[(0, [1])]), r"hierarchy\[0\]"),
    ("h-out-of-range", lambda: SparseFeatures(8, 0.3, hierarchy=[(0, [8], True)]), r"hierarchy\[0\]"),
    ("h-negative", lambda: SparseFeatures(8, 0.3, hierarchy=[(-1, [1], True)]), r"hierarchy\[0\]"),
    ("h-self-child", lambda: SparseFeatures(8, 0.3, hierarchy=[(0, [0], True)]), r"own child"),
    ("h-two-parents", lambda: SparseFeatures(8, 0.3, hierarchy=[(0, [2], True), (1, [2], True)]), r"at most one parent"),
    ("h-cycle", lambda: SparseFeatures(8, 0.3, hierarchy=[(0, [1], True), (1, [0], True)]), r"cycle"),
    ("h-not-list", lambda: SparseFeatures(8, 0.3, hierarchy=(0, [1], True)), r"hierarchy"),
    ("h-dict", lambda: SparseFeatures(8, 0.3, hierarchy={0: [1]}), r"hierarchy"),
    ("h-numpy-ints-ok", lambda: SparseFeatures(8, 0.3, hierarchy=[(__import__("numpy").int64(0), [__import__("numpy").int32(1)], True)])
     .hierarchy.parent.tolist(), lambda r: r[1] == 0),
    ("h-numpy-children-ok", lambda: SparseFeatures(8, 0.3, hierarchy=[(0, __import__("numpy").array([1, 2]), True)])
     .hierarchy.parent.tolist()[:3], lambda r: r == [-1, 0, 0]),
    ("h-numpy-float-children", lambda: SparseFeatures(8, 0.3, hierarchy=[(0, __import__("numpy").array([1.5, 2.0]), True)]),
     r"hierarchy\[0\]"),
    ("h-tensor-children-ok", lambda: SparseFeatures(8, 0.3, hierarchy=[(0, torch.tensor([1, 2]), False)]).hierarchy.depth.tolist()[:3],
     lambda r: r == [0, 1, 1]),
    ("h-class-n-features-float", lambda: Hierarchy([], 3.5), r"n_features"),
    ("h-class-n-features-negative", lambda: Hierarchy([], -1), r"n_features"),
    ("tree-negative-parents", lambda: tree(-1, 2), r"n_parents"),
    ("tree-zero-parents", lambda: tree(0, 2), r"n_parents"),
    ("tree-negative-children", lambda: tree(2, -1), r"n_children"),
    ("tree-float", lambda: tree(2.0, 2), r"n_parents"),
    ("tree-bool", lambda: tree(2, True), r"n_children"),
    ("tree-start-negative", lambda: tree(1, 2, start=-1), r"start"),
    ("tree-me-int", lambda: tree(1, 2, mutually_exclusive=1), r"mutually_exclusive"),
    ("tree-ok", lambda: tree(2, 2, start=1), lambda r: r == [(1, [2, 3], True), (4, [5, 6], True)]),
    ("zipf-n-zero", lambda: zipf_probabilities(0, 0.1, 1.0), r"n_features"),
    ("zipf-n-negative", lambda: zipf_probabilities(-3, 0.1, 1.0), r"n_features"),
    ("zipf-n-float", lambda: zipf_probabilities(4.5, 0.1, 1.0), r"n_features"),
    ("zipf-mean-str", lambda: zipf_probabilities(4, "0.1", 1.0), r"feature_probability"),
    ("zipf-mean-nan", lambda: zipf_probabilities(4, NAN, 1.0), r"feature_probability"),
    ("zipf-mean-2d", lambda: zipf_probabilities(4, [[0.1, 0.1]], 1.0), r"feature_probability"),
    ("zipf-exponent-nan", lambda: zipf_probabilities(4, 0.1, NAN), r"zipf_exponent"),
    ("zipf-ok", lambda: zipf_probabilities(4, 0.25, 0.0), lambda p: torch.allclose(p, torch.full((1, 4), 0.25))),
    ("sf-zipf-n-zero", lambda: SparseFeatures(0, 0.1, firing="zipf"), r"n_features"),
    ("sf-zipf-n-float", lambda: SparseFeatures(4.0, 0.1, firing="zipf"), r"n_features"),
    ("sf-zipf-n-instances-bool", lambda: SparseFeatures(4, 0.1, True, firing="zipf"), r"n_instances"),
    ("sf-zipf-mean-wrong-len", lambda: SparseFeatures(4, [0.1, 0.2, 0.3], 2, firing="zipf"), r"feature_probability"),
    ("sf-firing-bad", lambda: SparseFeatures(4, 0.1, firing="uniform"), r"firing"),
    ("sf-zipf-ok", lambda: SparseFeatures(4, [0.1, 0.2], 2, firing="zipf").feature_probability.mean(-1),
     lambda m: torch.allclose(m, torch.tensor([0.1, 0.2]))),
]


def _is_ok(expected, thunk):
    """(ok, detail) of one case."""
    if isinstance(expected, str):
        try:
            got = thunk()
        except ValueError as e:
            msg = str(e)
            if "\n" in msg.strip():
                return False, f"multi-line ValueError: {msg!r}"
            if not re.search(expected, msg):
                return False, f"ValueError not matching {expected!r}: {msg!r}"
            return True, ""
        except Exception as e:  # noqa: BLE001 - a raw error is what the probe looks for
            return False, f"raw {type(e).__name__}: {e}"
        return False, f"no error; returned {got!r:.200}"
    try:
        got = thunk()
    except Exception as e:  # noqa: BLE001
        return False, f"raised {type(e).__name__}: {e}"
    return (bool(expected(got)), f"wrong result {got!r:.200}")


@pytest.mark.parametrize("name,thunk,expected", CASES, ids=[c[0] for c in CASES])
def test_probe(name, thunk, expected):
    ok, detail = _is_ok(expected, thunk)
    assert ok, f"{name}: {detail}"


def test_probe_table_is_large_and_unique():
    names = [c[0] for c in CASES]
    assert len(names) == len(set(names))
    assert len(names) >= 150
