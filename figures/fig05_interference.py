"""Figure 5 — interference of random directions (seed 000, "Some costs of superposition").

(a) RMS and median max |cos| of m random unit vectors vs the dimension d (Monte Carlo) against
    1/sqrt(d), the exact-tail median and sqrt(4 ln m / d), with the JL "typical noise"
    sqrt(8 ln m / d) for comparison.
(b) The same against the number of vectors m at fixed d, with the Welch bound.
(c) The law of t = <u, v>: histogram vs the exact density ((1+t)/2 ~ Beta((d-1)/2, (d-1)/2)).
(d) How much the JL figure overstates the typical interference: sqrt(8 ln m), and by how much
    sqrt(4 ln m / d) overestimates the exact-tail median of the largest |cos|.
(e) Reading k active features out of m by dot products (threshold 1/2): the per-feature error
    rate against k/d (simulated) and Phi_bar(sqrt(d/(4k))) — a function of k/d alone.
(f) The fraction of random frames read without a single error against k, with the predicted
    capacity (expected errors = ln 2) and the post's d/(8 ln m), its leading order.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from figures.common import plt, savefig
from theory.interference import (
    inner_product_pdf,
    jl_overstatement,
    jl_typical_noise,
    max_coherence,
    max_coherence_asymptotic,
    max_coherence_median,
    pairwise_cosines,
    random_unit_vectors,
    readout_capacity,
    readout_capacity_asymptotic,
    readout_expected_errors,
    rms_interference,
    sample_inner_products,
    simulate_readout,
    welch_bound,
)
from toymodels.device import derive_seed, make_generator

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(d_values=(16, 64, 256), m_fixed=64, m_values=(8, 32, 128), d_fixed=64, min_trials=4,
                 max_trials=16, flops=3e7, hist_d=(3, 16), hist_n=5_000, readout_d=(32, 64), readout_m=(64, 256),
                 readout_trials=30, seed=0),
    "quick": dict(d_values=(8, 16, 32, 64, 128, 256, 512, 1024), m_fixed=256,
                  m_values=(4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048), d_fixed=256, min_trials=12,
                  max_trials=200, flops=1.5e9, hist_d=(3, 16, 128), hist_n=200_000, readout_d=(64, 256),
                  readout_m=(256, 4096), readout_trials=300, seed=0),
    "full": dict(d_values=(4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096), m_fixed=512,
                 m_values=(4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096), d_fixed=256, min_trials=50,
                 max_trials=1000, flops=5e10, hist_d=(3, 16, 128, 1024), hist_n=2_000_000, readout_d=(64, 256, 1024),
                 readout_m=(256, 4096, 16384), readout_trials=1000, seed=0),
}


def _simulate(m: int, d: int, cfg: dict[str, Any], device: torch.device) -> dict[str, float]:
    """RMS cosine over all pairs and quartiles of the max |cos| over trials, for (m, d)."""
    trials = int(np.clip(cfg["flops"] / (m * m * d), cfg["min_trials"], cfg["max_trials"]))
    g = make_generator(derive_seed(cfg["seed"], "fig05", m, d), device)
    iu = torch.triu_indices(m, m, 1, device=device)
    sum_sq, n_pairs, maxes = 0.0, 0, []
    per = max(1, (1 << 23) // (m * max(m, d)))
    for start in range(0, trials, per):
        U = random_unit_vectors(m, d, batch=(min(per, trials - start),), generator=g)
        C = pairwise_cosines(U)[:, iu[0], iu[1]].double()
        sum_sq += float((C**2).sum())
        n_pairs += C.numel()
        maxes.append(max_coherence(U).double().cpu())
    mx = torch.cat(maxes).numpy()
    q25, q50, q75 = np.quantile(mx, [0.25, 0.5, 0.75])
    return {"rms": math.sqrt(sum_sq / n_pairs), "q25": q25, "med": q50, "q75": q75, "trials": trials}


def _band(ax, x, sims, color, label):
    med = np.array([s["med"] for s in sims])
    lo = med - np.array([s["q25"] for s in sims])
    hi = np.array([s["q75"] for s in sims]) - med
    ax.errorbar(x, med, yerr=[lo, hi], fmt="o", ms=4, color=color, capsize=2, label=label)


def make(cfg: dict[str, Any], out_dir: Path, device: torch.device) -> list[Path]:
    ds, ms = list(cfg["d_values"]), list(cfg["m_values"])
    m0, d0 = cfg["m_fixed"], cfg["d_fixed"]
    sims_d = [_simulate(m0, d, cfg, device) for d in ds]
    sims_m = [_simulate(m, d0, cfg, device) for m in ms]

    fig, axes = plt.subplots(2, 3, figsize=(16, 8.5))
    ax = axes[0, 0]
    dd = np.geomspace(min(ds), max(ds), 100)
    ax.plot(ds, [s["rms"] for s in sims_d], "s", color="C0", ms=5, label="MC RMS cos")
    ax.plot(dd, 1 / np.sqrt(dd), "-", color="C0", label=r"$1/\sqrt{d}$")
    _band(ax, ds, sims_d, "C3", "MC median max |cos| (IQR)")
    ax.plot(ds, [max_coherence_median(m0, d) for d in ds], "-", color="C3", label="exact-tail median")
    ax.plot(dd, np.sqrt(4 * math.log(m0) / dd), "--", color="C3", label=r"$\sqrt{4\ln m/d}$")
    ax.plot(dd, np.sqrt(8 * math.log(m0) / dd), ":", color="k", label=r"JL $\sqrt{8\ln m/d}$")
    ax.set(xscale="log", yscale="log", xlabel="dimension d", ylabel="|cos|",
           title=f"(a) m = {m0} random unit vectors")
    ax.set_ylim(top=1.5)
    ax.legend(fontsize=7)

    ax = axes[0, 1]
    mm = np.array(ms, dtype=float)
    ax.plot(ms, [s["rms"] for s in sims_m], "s", color="C0", ms=5, label="MC RMS cos")
    ax.axhline(rms_interference(d0), color="C0", label=r"$1/\sqrt{d}$")
    _band(ax, ms, sims_m, "C3", "MC median max |cos| (IQR)")
    mm_pos = [m for m in ms if m >= 2]
    ax.plot(mm_pos, [max_coherence_median(m, d0) for m in mm_pos], "-", color="C3", label="exact-tail median")
    ax.plot(mm_pos, [max_coherence_asymptotic(m, d0) for m in mm_pos], "--", color="C3", label=r"$\sqrt{4\ln m/d}$")
    ax.plot(mm_pos, [jl_typical_noise(m, d0) for m in mm_pos], ":", color="k", label=r"JL $\sqrt{8\ln m/d}$")
    wb = [(m, welch_bound(m, d0)) for m in ms if m > d0]
    if wb:
        ax.plot(*zip(*wb), "-.", color="C2", label="Welch bound")
    ax.set(xscale="log", yscale="log", xlabel="number of vectors m", ylabel="|cos|",
           title=f"(b) d = {d0}")
    ax.set_ylim(bottom=min(rms_interference(d0), min(s["rms"] for s in sims_m)) / 2)
    ax.legend(fontsize=7)

    ax = axes[1, 0]
    for i, d in enumerate(cfg["hist_d"]):
        t = sample_inner_products(cfg["hist_n"], d, seed=cfg["seed"], device=device).cpu().numpy()
        ax.hist(t, bins=60, range=(-1, 1), density=True, alpha=0.35, color=f"C{i}", label=f"MC d = {d}")
        grid = np.linspace(-0.995, 0.995, 400)
        ax.plot(grid, inner_product_pdf(grid, d), color=f"C{i}", lw=1.2)
    ax.set(xlabel=r"$t = \langle u, v\rangle$", ylabel="density",
           title=r"(c) $(1+t)/2 \sim \mathrm{Beta}((d-1)/2, (d-1)/2)$ (lines)")
    ax.legend(fontsize=7)

    ax = axes[1, 1]
    mg = np.unique(np.geomspace(2, max(ms), 60).astype(int))
    ax.plot(mg, [jl_overstatement(m) for m in mg], color="k", label=r"JL / RMS $= \sqrt{8\ln m}$")
    ax.plot(ms, [jl_typical_noise(m, d0) / s["rms"] for m, s in zip(ms, sims_m) if m >= 2], "o", color="k",
            ms=4, label=f"JL / MC RMS (d = {d0})")
    ax.set(xscale="log", xlabel="number of vectors m", ylabel="JL noise / typical noise",
           title="(d) how much JL overstates the typical interference")
    ax2 = ax.twinx()
    for i, d in enumerate(sorted({64, 256, 1024})):
        mg2 = [m for m in mg if m >= 4]
        over = [100 * (max_coherence_asymptotic(m, d) / max_coherence_median(m, d) - 1) for m in mg2]
        ax2.plot(mg2, over, "--", color=f"C{i + 4}", label=rf"$\sqrt{{4\ln m/d}}$ over exact, d = {d}")
    ax2.set_ylabel("asymptotic overestimate (%)")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="center right")

    _readout_panels(axes[0, 2], axes[1, 2], cfg, device)

    fig.suptitle("Interference of random unit directions: typical (RMS) vs worst-case (max |cos|), and what it costs")
    fig.tight_layout()
    return [savefig(fig, out_dir, "fig05_interference")]


def _readout_panels(ax_rate, ax_free, cfg: dict[str, Any], device: torch.device) -> None:
    """(e) per-feature readout error rate vs k/d; (f) error-free fraction vs k, with capacities."""
    trials, ds, ms = cfg["readout_trials"], cfg["readout_d"], cfg["readout_m"]
    m_rate = max(ms)
    for i, d in enumerate(ds):
        k_max = min(m_rate - 1, d // 4)
        sim = simulate_readout(m_rate, d, k_max, trials, seed=cfg["seed"], device=device)
        ax_rate.plot(sim.k / d, sim.error_rate, "o", ms=3, color=f"C{i}", label=f"simulated, d = {d}, m = {m_rate}")
    kd = np.linspace(1 / min(ds), 0.25, 200)
    d_top = max(ds)
    ax_rate.plot(kd, [readout_expected_errors(m_rate, x * d_top, d_top) / m_rate for x in kd], "k-", lw=1,
                 label=r"$\bar\Phi(\sqrt{d/4k})$ (any d)")
    ax_rate.set(yscale="log", xlabel="active features per dimension k/d", ylabel="per-feature error rate",
                title="(e) readout by dot product, threshold 1/2")
    ax_rate.set_ylim(bottom=1e-4)
    ax_rate.legend(fontsize=7)

    d = max(ds)
    for i, m in enumerate(ms):
        k_star = readout_capacity(m, d)
        k_max = min(m - 1, max(3, int(np.ceil(2.5 * k_star))))
        sim = simulate_readout(m, d, k_max, trials, seed=cfg["seed"], device=device)
        kk = np.linspace(0.5, k_max, 200)
        ax_free.plot(sim.k, sim.error_free, "o", ms=4, color=f"C{i}", label=f"simulated, m = {m}")
        ax_free.plot(kk, [np.exp(-readout_expected_errors(m, k, d)) for k in kk], "-", color=f"C{i}", lw=1)
        ax_free.axvline(k_star, color=f"C{i}", ls="-", lw=0.8, alpha=0.6)
        ax_free.axvline(readout_capacity_asymptotic(m, d), color=f"C{i}", ls=":", lw=1.2)
    ax_free.axhline(0.5, color="grey", lw=0.5)
    ax_free.plot([], [], "k-", lw=0.8, label="predicted; solid line: capacity")
    ax_free.plot([], [], "k:", lw=1.2, label=r"post's $d/(8\ln m)$")
    ax_free.set(xlabel="active features k", ylabel="fraction of frames read without error",
                title=f"(f) all m features read right, d = {d}")
    ax_free.legend(fontsize=7)
