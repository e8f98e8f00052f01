"""Sparse autoencoders, the shared parts: SAEConfig, the base class's maths (orthogonality,
warm-up, geometric median), resampling and resume through the trainer, evaluation — and
(slow) recovery of true features. Each architecture's own tests are in tests/sae/, and the
contract every architecture keeps in tests/sae/test_conformance.py."""
import pytest
import torch

from toymodels.data import SparseFeatures
from toymodels.sae import SAEConfig, arch_names, build_sae, decoder_orthogonality, evaluate_sae, geometric_median, k_archs
from toymodels.train import TrainConfig, train

from tests.sae._helpers import data, tiny


# ---------------------------------------------------------------------- config
@pytest.mark.parametrize(
    "kw, field",
    [
        (dict(dict_size=0), "dict_size"),
        (dict(arch="topk", dict_size=4, k=5), "k"),
        (dict(arch="topk", k=None), "k"),
        (dict(l1_coefficient=-0.1), "l1_coefficient"),
        (dict(l1_coefficient=float("nan")), "l1_coefficient"),
        (dict(l1_coefficient=(0.1, 0.2, 0.3), n_instances=2), "l1_coefficient"),
        (dict(arch="nope"), "arch"),
        (dict(arch="bound", dict_size=7), "dict_size"),
        (dict(d_model=0), "d_model"),
        (dict(b_dec_init="median"), "b_dec_init"),
        (dict(arch="jumprelu", options={"bandwidth": 0.0}), "bandwidth"),
        (dict(arch="relu", options={"bandwidth": 0.1}), "unknown key"),
        (dict(arch="topk", dict_size=4, k=4), "k must be < dict_size"),
        (dict(arch="topk", dict_size=1, k=1), "dict_size must be >= 2"),
        (dict(decoder_orthogonality=float("nan")), "decoder_orthogonality"),
        (dict(aux_k=-1), "aux_k"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(kw, field):
    with pytest.raises(ValueError, match=field):
        SAEConfig(**kw)


def test_config_sizes_are_plain_ints():
    """Issue 8 #10: d_model = 6.0 used to be accepted and fail later inside build_sae."""
    import numpy as np

    cfg = SAEConfig(d_model=np.int64(6), dict_size=np.int16(12), n_instances=2, dead_window=np.int32(5), aux_k=3)
    assert (cfg.d_model, cfg.dict_size, cfg.dead_window) == (6, 12, 5)
    assert all(type(v) is int for v in (cfg.d_model, cfg.dict_size, cfg.n_instances, cfg.dead_window, cfg.aux_k))
    assert build_sae(cfg).W_dec.shape == (2, 12, 6)
    for bad in (dict(d_model=6.0), dict(d_model=6.5), dict(dict_size="12"), dict(n_instances=True)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            SAEConfig(**bad)


def test_config_per_instance_values_and_unknown_keys():
    cfg = SAEConfig(arch="topk", n_instances=3, k=[1, 2, 3], l1_coefficient=0.5)
    assert cfg.k == (1, 2, 3) and cfg.per_instance("l1_coefficient") == [0.5] * 3
    assert cfg.subset([2, 0]).k == (3, 1)
    assert SAEConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown SAEConfig field"):
        SAEConfig.from_dict({**cfg.to_dict(), "l1_coeficient": 0.1})


# ---------------------------------------------------------------------- base maths
def test_decoder_orthogonality_by_hand():
    W = torch.tensor([[[1.0, 0.0], [0.6, 0.8], [0.0, 2.0]]])  # cos²: .36, 0, .64
    assert decoder_orthogonality(W).item() == pytest.approx(2 * (0.36 + 0 + 0.64) / 6)


def test_sparsity_warmup_is_linear():
    sae = build_sae(tiny("relu", l1_coefficient=0.8, sparsity_warmup_steps=4))
    got = []
    for s in range(6):
        sae.step_count_I.fill_(s)
        got.append(sae.sparsity_coefficient(train=True)[0].item())
    assert got == pytest.approx([0.2, 0.4, 0.6, 0.8, 0.8, 0.8])
    assert sae.sparsity_coefficient(train=False)[0].item() == pytest.approx(0.8)


def test_geometric_median_and_b_dec_init():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 200, 3, generator=g, dtype=torch.float64)
    y = geometric_median(x, iters=500, tol=1e-12)
    u = (x - y[:, None]) / (x - y[:, None]).norm(dim=-1, keepdim=True)
    assert u.sum(1).norm() < 1e-6  # the optimality condition Σ_b (x_b − y)/||x_b − y|| = 0
    outliers = torch.cat([x, torch.full((1, 20, 3), 100.0, dtype=torch.float64)], dim=1)
    assert geometric_median(outliers).norm() < 1.0 < outliers.mean(1).norm()  # robust, unlike the mean
    sae = build_sae(tiny("relu", b_dec_init="geometric-median"))
    batch = data(1, 64, 6)
    sae.loss_and_grad(batch)
    torch.testing.assert_close(sae.b_dec_ID[0], geometric_median(batch)[0])


def test_geometric_median_of_an_instance_does_not_depend_on_the_others():
    """Each instance stops its Weiszfeld iteration on its own (issue 8 #1: instance i must
    get the same b_dec in any chunk). Before, all stopped on the slowest instance's step."""
    g = torch.Generator().manual_seed(1)
    easy = torch.full((1, 50, 3), 2.0, dtype=torch.float64) + 1e-3 * torch.randn(1, 50, 3, generator=g, dtype=torch.float64)
    hard = torch.randn(1, 50, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 30.0, 0.1], dtype=torch.float64)
    together = geometric_median(torch.cat([easy, hard]), iters=100, tol=1e-4)
    assert torch.equal(together[0], geometric_median(easy, iters=100, tol=1e-4)[0])
    assert torch.equal(together[1], geometric_median(hard, iters=100, tol=1e-4)[0])


def test_registry_names_and_k_architectures():
    assert set(k_archs()) == {"topk", "batchtopk", "matryoshka"} and set(k_archs()) <= set(arch_names())
    assert list(arch_names()) == sorted(arch_names())
    from toymodels.sae.config import K_ARCHS  # the old import keeps working

    assert K_ARCHS == k_archs()


# ---------------------------------------------------------------------- resampling
def test_resampling_runs_through_the_trainer():
    cfg = SAEConfig(arch="relu", d_model=6, dict_size=12, l1_coefficient=0.01, resample_every=3, dead_window=2, b_dec_init="zeros")
    sae = build_sae(cfg, seed=0)
    with torch.no_grad():
        sae.b_enc_IF[0, :4] = -100.0  # four latents that can never fire
    src = SparseFeatures(8, 0.3, d_embed=6, seed=0)
    train(sae, src, TrainConfig(steps=3, batch_size=64, quiet=True, eval_samples=64))
    assert sae._optimizer is not None  # the trainer attached its optimizer
    assert sae.b_enc_IF[0, :4].abs().max() < 1.0  # resampled: bias reset to 0, then a few Adam steps


def test_resume_equals_uninterrupted(tmp_path):
    cfg = tiny("batchtopk", dead_window=2, b_dec_init="geometric-median")
    tcfg = TrainConfig(steps=6, batch_size=32, quiet=True, eval_samples=64, checkpoint_every=3)
    full = build_sae(cfg, seed=0)
    train(full, SparseFeatures(10, 0.2, d_embed=6, seed=2), tcfg, tmp_path / "a")

    class Crash(Exception):
        pass

    crashing = build_sae(cfg, seed=0)
    real_after = crashing.after_optimizer_step

    def after(step, x):
        real_after(step, x)
        if step == 4:  # after the step-3 checkpoint
            raise Crash

    crashing.after_optimizer_step = after
    with pytest.raises(Crash):
        train(crashing, SparseFeatures(10, 0.2, d_embed=6, seed=2), tcfg, tmp_path / "b")
    resumed = build_sae(cfg, seed=0)
    train(resumed, SparseFeatures(10, 0.2, d_embed=6, seed=2), tcfg, tmp_path / "b", resume=True)
    assert resumed.step_count_I.tolist() == [6, 6]
    for k, v in full.state_dict().items():  # weights, threshold, dead counters, step count
        torch.testing.assert_close(v, resumed.state_dict()[k], msg=k)


# ---------------------------------------------------------------------- evaluation
def test_evaluate_sae_with_and_without_ground_truth():
    src = SparseFeatures(6, 0.2, seed=0)  # no embedding: the truth is the standard basis
    cfg = SAEConfig(arch="relu", d_model=6, dict_size=6, n_instances=2, l1_coefficient=0.0, b_dec_init="zeros")
    sae = build_sae(cfg)
    with torch.no_grad():  # instance 0 is the identity dictionary; instance 1 a shuffled one
        sae.W_dec_IFD[0] = torch.eye(6)
        sae.W_enc_IDF[0] = torch.eye(6)
        sae.W_dec_IFD[1] = torch.eye(6)[torch.tensor([1, 2, 3, 4, 5, 0])]
    out = evaluate_sae(sae, src, n_samples=2000)
    assert out["mmcs"][0] == pytest.approx(1.0) and out["mcc"][0] == pytest.approx(1.0)
    assert out["fvu"][0] == pytest.approx(0.0, abs=1e-10) and out["shrinkage"][0] == pytest.approx(1.0)
    assert out["l0"][0] == pytest.approx(6 * 0.2, rel=0.1)
    pruned = evaluate_sae(sae, src, n_samples=500, keep=torch.zeros(2, 6, dtype=torch.bool))
    assert pruned["l0"] == [0.0, 0.0] and pruned["dead_fraction"] == [1.0, 1.0]
    from toymodels.data import UnitCube

    none = evaluate_sae(sae, UnitCube(6), n_samples=100)
    assert "mmcs" not in none and len(none["fvu"]) == 2


# ---------------------------------------------------------------------- quality (slow)
@pytest.mark.slow
@pytest.mark.parametrize(
    "arch, kw, target",
    [
        ("relu", dict(l1_coefficient=0.15), 0.95),
        ("gated", dict(l1_coefficient=0.3), 0.95),
        ("topk", dict(k=3), 0.97),
        ("jumprelu", dict(l1_coefficient=0.03), 0.95),
    ],
)
def test_recovers_ground_truth_features(arch, kw, target):
    """128 true features in 64 dims, about 3 active; dictionary 256; 3000 steps at batch 1024."""
    src = SparseFeatures(128, 3 / 128, d_embed=64, seed=11)
    sae = build_sae(SAEConfig(arch=arch, d_model=64, dict_size=256, **kw), seed=0)
    train(sae, src, TrainConfig(steps=3000, batch_size=1024, quiet=True, eval_samples=4096))
    m = evaluate_sae(sae, src, n_samples=4096)
    assert m["mmcs"][0] >= target, m["mmcs"]


@pytest.mark.parametrize("kw, field", [(dict(n_samples=0), "n_samples"), (dict(batch_size=0), "batch_size"),
                                       (dict(dense_threshold=float("nan")), "dense_threshold")])
def test_evaluate_sae_rejects_bad_arguments(kw, field):
    """n_samples = 0 used to fail inside torch.cat with an unrelated message."""
    with pytest.raises(ValueError, match=field):
        evaluate_sae(build_sae(tiny("relu")), SparseFeatures(8, 0.2, d_embed=6), **kw)


def test_seed_range_is_checked_at_construction():
    """Issue 8 #10: seeds >= 2**64 failed deep inside torch ("Overflow when unpacking long long")."""
    assert build_sae(tiny("relu"), seed=2**64 - 1).seed == 2**64 - 1
    for bad in (2**64, -1, 1.0):
        with pytest.raises(ValueError, match="seed"):
            build_sae(tiny("relu"), seed=bad)
