"""compressed.bigram_capacity: the verdict rules with positive and negative controls, the
closed-form optimum of W_out (it is the optimum, training only approaches it), and the check."""
import math

import numpy as np
import pytest
import torch

from theory.compressed import (
    EXPONENT_TOL, capacity_verdict, check_bigram_capacity, exponent_interval, interval_verdict, optimal_w_out,
    optimum_capacity,
)
from theory.registry import CLAIMS, Context, load_all, run_claim
from toymodels.device import derive_seed
from toymodels.research.compressed import (
    BigramMLP, BigramMLPConfig, BigramSource, make_bigram_task, stored_bigrams,
)
from toymodels.train import TrainConfig, train


def test_verdict_rule_controls():
    widths = [8, 16, 32, 64]
    # linear growth (what the least-squares picture predicts for frozen W_in): a counterexample
    v, a = capacity_verdict(widths, [8, 16, 32, 64])
    assert v == "counterexample" and math.isclose(a, 1.0, rel_tol=1e-9)
    # quadratic growth (the seed's picture): the conjecture stays open
    v, a = capacity_verdict(widths, [w * w // 4 for w in widths])
    assert v == "open" and math.isclose(a, 2.0, rel_tol=1e-9)
    # just above the tolerance: open; just below: counterexample
    assert capacity_verdict(widths, [w ** (1 + EXPONENT_TOL + 0.05) for w in widths])[0] == "open"
    assert capacity_verdict(widths, [w ** (1 + EXPONENT_TOL - 0.05) for w in widths])[0] == "counterexample"
    # nothing stored at all: no exponent, nothing found
    v, a = capacity_verdict(widths, [0, 0, 0, 0])
    assert v == "open" and math.isnan(a)


def test_interval_rule_controls():
    # tightly linear draws: the whole interval is below the cutoff
    v, (mean, lo, hi) = interval_verdict([1.0, 1.02, 0.98, 1.01])
    assert v == "counterexample" and lo < mean < hi <= 1 + EXPONENT_TOL
    # quadratic draws: open
    assert interval_verdict([2.0, 1.9, 2.1])[0] == "open"
    # the per-seed exponents the audit saw (0.99–1.10) from only three draws: the interval
    # straddles the cutoff, which shows nothing either way -> open, not a counterexample
    v, (_, lo, hi) = interval_verdict([0.99, 1.10, 1.04])
    assert v == "open" and lo < 1 + EXPONENT_TOL < hi
    # the interval is the Student-t one
    m, lo, hi = exponent_interval([1.0, 2.0, 3.0], level=0.95)
    assert m == 2.0 and math.isclose(hi - m, 4.302652729749464 * 1.0 / math.sqrt(3), rel_tol=1e-9)
    for bad in ([1.0], [1.0, math.nan], []):
        with pytest.raises(ValueError, match="exponents"):
            exponent_interval(bad)


def _frozen_problem(m=24, k=40, seed=3):
    task = make_bigram_task(1, 16, 12, k, seed=seed)
    mlp = BigramMLP(BigramMLPConfig(16, m, 1, train_in=False), seed=seed)
    H = torch.relu(task.residuals() @ mlp.W_in_IMD.transpose(1, 2))
    return task, mlp, H


def test_optimal_w_out_solves_the_normal_equations_and_training_only_approaches_it():
    task, mlp, H = _frozen_problem()
    W = optimal_w_out(H, task.v)  # (1, D, M) float64
    Hd, V = H.double(), task.v.double()
    resid = Hd @ W.transpose(1, 2) - V
    grad = Hd.transpose(1, 2) @ resid  # ∝ the loss gradient in W_out
    assert float(grad.abs().max()) < 1e-9 * float(Hd.abs().max() * V.abs().max()) * Hd.shape[1]
    best = float(resid.square().mean())
    # zero padding rows change nothing (the check pads every K to the largest)
    pad = torch.zeros(1, 7, H.shape[-1])
    W_pad = optimal_w_out(torch.cat([H, pad], 1), torch.cat([task.v, torch.zeros(1, 7, 16)], 1))
    assert torch.allclose(W, W_pad, atol=1e-9)
    # the trainer on the same loss ends above the optimum (and not absurdly far from it)
    src = BigramSource(16, 12, 40, 1, seed=3, task_seed=3)
    train(mlp, src, TrainConfig(steps=300, batch_size=256, lr=1e-2, quiet=True, eval_samples=256))
    with torch.no_grad():
        trained = float((mlp(task.residuals()) - task.v).square().mean())
    assert best <= trained and trained < best + 0.1


def _numpy_capacity(seed: int, draw: int, m: int, factors) -> int:
    """Independent count: numpy least squares on the same draw, nearest-of-{v_j, 0} rule."""
    task = make_bigram_task(1, 16, 24, 576, seed=derive_seed(seed, "bigram-optimum-task", draw))
    w_in = BigramMLP(BigramMLPConfig(16, m, 1, train_in=False),
                     seed=derive_seed(seed, "bigram-optimum-w-in", draw, m)).W_in_IMD[0].double().numpy()
    R, V = task.residuals()[0].double().numpy(), task.v[0].double().numpy()
    best = 0
    for k in sorted({min(576, max(1, round(f * m))) for f in factors}):
        H = np.maximum(R[:k] @ w_in.T, 0)
        O = H @ np.linalg.lstsq(H, V[:k], rcond=None)[0]
        dots = O @ V[:k].T
        own = dots.diagonal().copy()
        np.fill_diagonal(dots, -np.inf)
        best = max(best, int(((own > dots.max(1)) & (own > 0.5)).sum()))
    return best


def test_counts_are_the_optimum_not_a_short_training_run():
    """Negative control for the audit's finding: the old check trained W_out for a fixed number
    of steps and stored 34 and 63 bigrams at widths 32 and 64 where the optimum of the same loss
    stores about 41 and 84. The counts must be those of the exact optimum."""
    factors = tuple(1 + j / 8 for j in range(9))
    cap = optimum_capacity([8, 32], seeds=2, k_factors=factors, seed=5)
    for s in range(2):
        for w, m in enumerate([8, 32]):
            assert cap.capacity[s, w] == _numpy_capacity(5, s, m, factors)
    assert (cap.capacity[:, 1] > 32).all()  # above M: more than the old under-trained count suggested


def test_optimum_capacity_validates_its_arguments():
    with pytest.raises(ValueError, match="widths"):
        optimum_capacity([0, 8], seeds=2)
    with pytest.raises(ValueError, match="seeds"):
        optimum_capacity([8], seeds=0)
    with pytest.raises(ValueError, match="k_factors"):
        optimum_capacity([8], seeds=2, k_factors=(0.0, 1.0))
    with pytest.raises(ValueError, match="leading shape"):
        optimal_w_out(torch.zeros(3, 4), torch.zeros(2, 4))


def test_check_at_tiny_budget_reports_the_interval():
    load_all()
    c = CLAIMS["compressed.bigram_capacity"]
    assert c.searches and c.status == "conjecture"
    rec = run_claim(c, Context(budget="tiny"))
    assert rec.verdict == "counterexample", rec.detail
    assert rec.budget_stable is True  # the fresh-seed second opinion agrees
    assert "t-interval" in rec.detail and "Rule: counterexample when" in rec.detail
    lo, hi = rec.observed["alpha_interval"]
    assert lo <= rec.observed["alpha_mean"] <= hi <= 1 + EXPONENT_TOL


def test_check_follows_ctx_seed():
    a, b, c = (check_bigram_capacity(Context(budget="tiny", seed=s)) for s in (0, 0, 7))
    assert a.observed == b.observed and a.detail == b.detail
    assert a.observed["alpha_mean"] != c.observed["alpha_mean"]
