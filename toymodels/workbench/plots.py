"""Plots of a finished run: one figure, legible at a glance, for notebooks and ``toymodels plot``.

    from toymodels.workbench import load_run, plot_run
    fig = plot_run(load_run("runs/tms"))                  # every panel of the run's kind
    fig = plot_run(load_run("runs/sae-k"), "frontier")    # one panel
    plot_run(run, "geometry", ax=my_ax, instance=3)       # one panel into your own axes

Panels (:data:`PANELS` lists which apply to which run kind):

- ``geometry`` (tms): the columns W_j of instances in the hidden space — arrows for
  d_hidden = 2, stems for d_hidden = 1, for d_hidden ≥ 3 the projection onto the plane of W's
  two largest singular directions (the title gives the share of ‖W‖² it keeps).
- ``wtw`` (tms): WᵀW of instances (a symmetric colour scale shared across them).
- ``dimensionality`` (tms): every feature's dimensionality D_j against its instance's
  feature probability p (log), with the dimensions per feature M/‖W‖²_F and the fractions
  of the regular geometries (1, 3/4, 2/3, 1/2, 2/5, 1/3) as reference lines.
- ``loss`` (every kind): history.json's per-instance loss against the step.
- ``frontier`` (sae): L0 against FVU over the instances (final values from metrics.json),
  coloured by mmcs where the run has one.
- ``truth`` (sae): the cosines of one instance's decoder columns with the true directions,
  latents ordered by the one-to-one (Hungarian) matching behind ``mcc``, so a recovered
  dictionary shows a diagonal. Only where the truth is known and reproduces the recorded
  mmcs (:func:`toymodels.workbench.truth.run_truth`).

Many instances: the geometry and WᵀW rows show at most ``max_instances`` (default
:data:`MAX_GRID`), chosen evenly spaced by index with the first and the last (instances are
usually a sweep in index order), and the figure's title says which; the loss panel draws
every curve up to :data:`MAX_CURVES` instances and beyond that their median and min–max band.
Nothing is invented: a quantity the run did not record is named as missing on the panel.
"""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import torch

from .run import Run
from .truth import KnownTruth, latent_matches, matched_order, run_truth

PANELS: dict[str, tuple[str, ...]] = {
    "tms": ("geometry", "wtw", "dimensionality", "loss"),
    "sae": ("loss", "frontier", "truth"),
    "spd": ("loss",),
}
"""The panels of each run kind, in the order the full figure shows them."""
PLOT_KINDS: tuple[str, ...] = ("geometry", "wtw", "dimensionality", "loss", "frontier", "truth")
"""Every panel name (``toymodels plot --kind``)."""
MAX_GRID = 6
"""At most this many instances in the geometry and WᵀW rows (evenly spaced by index)."""
MAX_CURVES = 32
"""Above this many instances the loss panel draws the median and the min–max band."""
GEOMETRY_FRACTIONS = ((1.0, "1"), (3 / 4, "3/4"), (2 / 3, "2/3"), (1 / 2, "1/2"), (2 / 5, "2/5"), (1 / 3, "1/3"))
"""Dimensionalities of features in the regular geometries (dedicated, tetrahedron, triangle,
antipodal pair, pentagon, ...), drawn as reference lines."""


def _plt() -> Any:
    import matplotlib

    if "matplotlib.pyplot" not in __import__("sys").modules:
        matplotlib.use("Agg")  # no display; a notebook that already chose a backend keeps it
    import matplotlib.pyplot as plt

    return plt


# ---------------------------------------------------------------------- choosing
def kinds_for(run: Run) -> tuple[str, ...]:
    """The panels that apply to ``run``."""
    return PANELS[run.kind]


def check_kind(run: Run, kind: str) -> str:
    """``kind`` when it is a panel of ``run``; else ValueError naming the kinds that apply."""
    if kind not in PLOT_KINDS:
        raise ValueError(f"unknown plot kind {kind!r}; choose one of {', '.join(PLOT_KINDS)}")
    if kind not in PANELS[run.kind]:
        raise ValueError(f"--kind {kind} does not apply to a {run.kind} run ({run.path}); its kinds: "
                         f"{', '.join(PANELS[run.kind])}")
    return kind


def select_instances(n: int, max_instances: int = MAX_GRID) -> list[int]:
    """At most ``max_instances`` of ``range(n)``, evenly spaced by index, with the first and
    the last (all of them when there are few enough)."""
    if max_instances < 1:
        raise ValueError(f"max_instances must be >= 1, got {max_instances}")
    if n <= max_instances:
        return list(range(n))
    if max_instances == 1:
        return [0]
    return sorted({round(j * (n - 1) / (max_instances - 1)) for j in range(max_instances)})


def _check_instance(run: Run, instance: int | None) -> int | None:
    if instance is not None and not (isinstance(instance, int) and 0 <= instance < run.n_instances):
        raise ValueError(f"--instance must be in [0, {run.n_instances - 1}] for {run.path}, got {instance}")
    return instance


# ---------------------------------------------------------------------- entry point
def plot_run(run: Run, kind: str | None = None, *, ax: Any = None, instance: int | None = None,
             max_instances: int = MAX_GRID) -> Any:
    """The figure of ``run``: every panel of its kind (``kind`` None) or one panel.

    ``ax``: draw the one panel ``kind`` into these axes (the geometry and WᵀW panels then
    show one instance: ``instance``, default the first) and return their figure.
    ``instance``: the instance of the geometry/WᵀW/truth panels (default: the evenly spaced
    selection, resp. the instance of best mcc). Raises ValueError for a kind that does not
    apply to the run, or a truth panel asked for where no truth is known."""
    plt = _plt()
    _check_instance(run, instance)
    if kind is not None:
        check_kind(run, kind)
    if ax is not None:
        if kind is None:
            raise ValueError("ax takes one panel: give kind too (one of " + ", ".join(PANELS[run.kind]) + ")")
        _draw(run, kind, ax, instance if instance is not None else 0, strict=True)
        return ax.figure
    if kind in ("geometry", "wtw"):
        chosen = [instance] if instance is not None else select_instances(run.n_instances, max_instances)
        fig, axes = plt.subplots(1, len(chosen), figsize=(3.3 * len(chosen) + 0.6, 3.9), squeeze=False,
                                 layout="constrained")
        _grid_row(run, kind, list(axes[0]), chosen)
        fig.suptitle(_title(run, chosen, instance is not None), fontsize=10)
        return fig
    if kind is not None:
        fig, ax = plt.subplots(figsize=(7.5, 5.2), layout="constrained")
        _draw(run, kind, ax, instance, strict=True)
        fig.suptitle(_headline(run), fontsize=10)
        return fig
    return _full(run, instance, max_instances)


def check_image_path(out: str | Path, flag: str = "--out") -> Path:
    """``out`` when its extension names an image format matplotlib writes; else ValueError."""
    _plt()
    from matplotlib.backend_bases import FigureCanvasBase

    out = Path(out)
    supported = FigureCanvasBase.get_supported_filetypes()
    if out.suffix.lower().lstrip(".") not in supported:
        raise ValueError(f"{flag} {out}: unknown image format {out.suffix or '(no extension)'!r}; use one of "
                         f"{', '.join('.' + k for k in sorted(supported))}")
    return out


def save_figure(fig: Any, out: str | Path, *, dpi: int = 110) -> Path:
    """Write ``fig`` to ``out`` atomically (a temporary file in the same folder, renamed):
    the format follows the extension (.png, .pdf, .svg, ...)."""
    out = check_image_path(out)
    fmt = out.suffix.lower().lstrip(".")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=out.suffix, dir=out.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, format=fmt)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


# ---------------------------------------------------------------------- layouts
def _headline(run: Run) -> str:
    cfg = run.config.get("model", {})
    if run.kind == "tms":
        what = f"tms {cfg.get('kind', '?')} {cfg.get('n_features', '?')}→{cfg.get('d_hidden', '?')}"
    elif run.kind == "sae":
        data = run.metrics.get("data") or run.config.get("data", {}).get("kind", "?")
        what = f"sae {cfg.get('arch', '?')} D={cfg.get('d_model', '?')} F={cfg.get('dict_size', '?')} on {data}"
    else:
        what = f"spd C={cfg.get('n_components', '?')}"
    sweep = f"sweep job, {run.n_instances} point(s)" if run.is_sweep_job else f"{run.n_instances} instance(s)"
    return f"{run.path}: {what}, {sweep}, {run.metrics.get('steps', '?')} steps"


def _title(run: Run, chosen: Sequence[int], explicit: bool) -> str:
    if explicit or len(chosen) == run.n_instances:
        which = f"instance(s) {list(chosen)}"
    else:
        which = f"instances {list(chosen)} of {run.n_instances} (at most {len(chosen)}, evenly spaced by index)"
    return f"{_headline(run)}\ngeometry and WᵀW: {which}"


def _full(run: Run, instance: int | None, max_instances: int) -> Any:
    plt = _plt()
    if run.kind == "tms":
        chosen = [instance] if instance is not None else select_instances(run.n_instances, max_instances)
        k = len(chosen)
        fig = plt.figure(figsize=(max(11.0, 3.2 * k + 0.8), 12.0), layout="constrained")
        gs = fig.add_gridspec(3, 2 * k, height_ratios=[1.0, 1.0, 1.25])
        _grid_row(run, "geometry", [fig.add_subplot(gs[0, 2 * j : 2 * j + 2]) for j in range(k)], chosen)
        _grid_row(run, "wtw", [fig.add_subplot(gs[1, 2 * j : 2 * j + 2]) for j in range(k)], chosen)
        _dimensionality(run, fig.add_subplot(gs[2, :k]))
        _loss(run, fig.add_subplot(gs[2, k:]))
        fig.suptitle(_title(run, chosen, instance is not None), fontsize=11)
        return fig
    if run.kind == "sae":
        fig, axes = plt.subplots(1, 3, figsize=(19.0, 5.8), layout="constrained",
                                 gridspec_kw={"width_ratios": [1.0, 1.0, 1.1]})
        _loss(run, axes[0])
        _frontier(run, axes[1])
        _truth(run, axes[2], instance, strict=False)
        fig.suptitle(_headline(run), fontsize=11)
        return fig
    fig, ax = plt.subplots(figsize=(7.5, 5.2), layout="constrained")
    _loss(run, ax)
    fig.suptitle(_headline(run), fontsize=10)
    return fig


def _draw(run: Run, kind: str, ax: Any, instance: int | None, *, strict: bool) -> None:
    if kind == "geometry":
        _geometry(run, ax, instance or 0)
    elif kind == "wtw":
        W = _W(run)
        _wtw(run, ax, instance or 0, float(_wtw_scale(W)))
    elif kind == "dimensionality":
        _dimensionality(run, ax)
    elif kind == "loss":
        _loss(run, ax)
    elif kind == "frontier":
        _frontier(run, ax)
    else:
        _truth(run, ax, instance, strict=strict)


def _grid_row(run: Run, kind: str, axes: list[Any], chosen: Sequence[int]) -> None:
    if kind == "geometry":
        for ax, i in zip(axes, chosen):
            _geometry(run, ax, i)
        return
    W = _W(run)
    scale = float(_wtw_scale(W[list(chosen)]))
    im = None
    for ax, i in zip(axes, chosen):
        im = _wtw(run, ax, i, scale, colorbar=False)
    if im is not None:
        ax.figure.colorbar(im, ax=axes, shrink=0.85, label="WᵀW (shared scale)")


# ---------------------------------------------------------------------- tms panels
def _W(run: Run) -> torch.Tensor:
    return run.model.W.detach().float().cpu()  # (I, M, N)


def _wtw_scale(W: torch.Tensor) -> torch.Tensor:
    g = W.transpose(1, 2) @ W
    return g.abs().amax().clamp_min(1e-12)


def _per_instance(run: Run, key: str) -> list[float] | None:
    """A per-instance number of metrics.json (a per-feature list becomes its mean)."""
    v = run.metrics.get(key)
    if not isinstance(v, list) or len(v) < run.n_instances:
        return None
    out = []
    for x in v[: run.n_instances]:
        if isinstance(x, list):
            x = sum(float(y) for y in x) / len(x) if x else float("nan")
        out.append(float("nan") if x is None else float(x))
    return out


def _instance_name(run: Run, i: int) -> str:
    label = run.instance_labels()[i]
    p = _per_instance(run, "feature_probability")
    if not run.is_sweep_job and p is not None:
        label = f"#{i} p={p[i]:.3g}"
    loss = _per_instance(run, "loss")
    return label + (f", loss {loss[i]:.3g}" if loss is not None else "")


def _feature_colors(n: int) -> list[Any]:
    plt = _plt()
    cmap = plt.get_cmap("tab10" if n <= 10 else "viridis")
    return [cmap(j if n <= 10 else j / max(1, n - 1)) for j in range(n)]


def _geometry(run: Run, ax: Any, i: int) -> None:
    W = _W(run)[i]  # (M, N)
    m, n = W.shape
    colors = _feature_colors(n)
    if m == 1:
        ax.axhline(0, color="0.6", lw=0.8)
        ax.vlines(range(n), 0, W[0], colors=colors, lw=2)
        ax.scatter(range(n), W[0], c=colors, s=18, zorder=3)
        ax.set_xlabel("feature j")
        ax.set_ylabel("W_j (d_hidden = 1)")
        ax.set_title(_instance_name(run, i), fontsize=9)
        return
    note = ""
    P = W
    if m > 2:
        U, S, _ = torch.linalg.svd(W, full_matrices=False)
        P = U[:, :2].T @ W
        share = float(S[:2].square().sum() / S.square().sum().clamp_min(1e-30))
        note = f"\nprojected on top-2 singular plane ({share:.0%} of ‖W‖²)"
    lim = 1.15 * float(P.norm(dim=0).amax().clamp_min(1e-6))
    circle = _plt().Circle((0, 0), 1.0, fill=False, ls=":", color="0.7", lw=0.8)
    ax.add_patch(circle)
    for j in range(n):
        x, y = float(P[0, j]), float(P[1, j])
        ax.annotate("", xy=(x, y), xytext=(0, 0),
                    arrowprops={"arrowstyle": "-|>", "color": colors[j], "lw": 1.4, "shrinkA": 0, "shrinkB": 0})
        if n <= 12:
            ax.text(1.08 * x, 1.08 * y, str(j), fontsize=7, ha="center", va="center", color=colors[j])
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.axhline(0, color="0.85", lw=0.6, zorder=0)
    ax.axvline(0, color="0.85", lw=0.6, zorder=0)
    ax.tick_params(labelsize=7)
    ax.set_title(_instance_name(run, i) + note, fontsize=9)


def _wtw(run: Run, ax: Any, i: int, scale: float, *, colorbar: bool = True) -> Any:
    W = _W(run)[i]
    n = W.shape[1]
    im = ax.imshow((W.T @ W).numpy(), cmap="RdBu_r", vmin=-scale, vmax=scale, interpolation="nearest")
    if n <= 12:
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
    ax.tick_params(labelsize=7)
    ax.set_xlabel("feature", fontsize=8)
    ax.set_ylabel("feature", fontsize=8)
    ax.set_title(f"WᵀW {_instance_name(run, i)}", fontsize=9)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, shrink=0.85)
    return im


def _dimensionality(run: Run, ax: Any) -> None:
    from ..measures.analysis import dimensions_per_feature, feature_dimensionality

    W = _W(run)
    dims = feature_dimensionality(W)  # (I, N)
    dpf = dimensions_per_feature(W)  # (I,)
    p = _per_instance(run, "feature_probability")
    distinct = p is not None and len({round(v, 12) for v in p}) >= 2 and all(v > 0 for v in p)
    x = p if distinct else list(range(run.n_instances))
    for i in range(run.n_instances):
        ax.scatter([x[i]] * dims.shape[1], dims[i].tolist(), s=14, alpha=0.55, color="C0",
                   label="feature dimensionality D_j" if i == 0 else None)
    order = sorted(range(run.n_instances), key=lambda i: x[i])
    joined = len(set(x)) == len(x)  # a line only through one value per x (seeds share their p)
    ax.plot([x[i] for i in order], [float(dpf[i]) for i in order], "-" if joined else "none", color="k", lw=1.3,
            marker="D", markersize=4, label="dimensions per feature M/‖W‖²_F (per instance)")
    for v, name in GEOMETRY_FRACTIONS:
        ax.axhline(v, color="0.75", lw=0.7, ls="--", zorder=0)
        ax.annotate(name, xy=(1.0, v), xycoords=("axes fraction", "data"), xytext=(3, 0),
                    textcoords="offset points", fontsize=7, color="0.4", va="center")
    if distinct:
        _log_x_at(ax, x)
        ax.set_xlabel("feature probability p (log)")
    else:
        what = f"every instance has p = {p[0]:.3g}" if p is not None else "metrics.json records no feature_probability"
        ax.set_xlabel(f"instance ({what})")
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("dimensionality")
    ax.set_ylim(bottom=min(0.0, float(dims.min()) - 0.05), top=max(1.1, float(dpf.max()) * 1.05))
    ax.legend(fontsize=8, loc="best", framealpha=0.9)
    ax.set_title("feature dimensionality against feature probability", fontsize=10)


def _log_x_at(ax: Any, x: Sequence[float]) -> None:
    """A log x axis labelled legibly: at the values themselves when there are few (a sweep of
    a handful of p), else at the decades only (no crowded minor labels)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

    ax.set_xscale("log")
    distinct = sorted(set(x))
    lo, hi = distinct[0], distinct[-1]
    pad = (hi / lo) ** 0.06 if hi > lo else 1.5
    ax.set_xlim(lo / pad, hi * pad)
    if len(distinct) <= 8:
        ax.xaxis.set_major_locator(FixedLocator(distinct))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
        ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


# ---------------------------------------------------------------------- every kind
def _loss(run: Run, ax: Any) -> None:
    hist = run.history_array("loss")
    if hist is None:
        _missing(ax, "history.json holds no per-instance loss", "loss")
        return
    steps, vals = hist
    plt = _plt()
    n = vals.shape[1]
    positive = bool((vals[torch.isfinite(vals)] > 0).all())
    if n > MAX_CURVES:
        med = vals.nanmedian(dim=1).values
        lo = torch.where(torch.isfinite(vals), vals, torch.inf).amin(dim=1)
        hi = torch.where(torch.isfinite(vals), vals, -torch.inf).amax(dim=1)
        ax.fill_between(steps, lo, hi, color="C0", alpha=0.25, label=f"min–max over {n} instances")
        ax.plot(steps, med, color="C0", lw=1.5, label="median")
        ax.legend(fontsize=8)
    else:
        cmap = plt.get_cmap("viridis")
        labels = run.instance_labels()
        for i in range(n):
            ax.plot(steps, vals[:, i], lw=1.2, color=cmap(i / max(1, n - 1)), label=labels[i])
        if n <= 10:
            ax.legend(fontsize=7, ncol=2 if n > 5 else 1)
        else:
            ax.text(0.99, 0.98, f"colour: instance 0 (purple) … {n - 1} (yellow)", transform=ax.transAxes,
                    ha="right", va="top", fontsize=7)
    if positive:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss" + (" (log)" if positive else ""))
    title = "loss (history.json)"
    if run.kind == "sae":
        absent = [k.upper() if k == "fvu" else "L0" for k in ("l0", "fvu") if run.history_array(k) is None]
        if absent:
            title += f"\nhistory.json logs no {' or '.join(absent)}; their final values are in the frontier"
    ax.set_title(title, fontsize=10)


def _missing(ax: Any, text: str, kind: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=9, transform=ax.transAxes)
    ax.set_title(f"{kind}: not available", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])


# ---------------------------------------------------------------------- sae panels
def _frontier(run: Run, ax: Any) -> None:
    l0, fvu = _per_instance(run, "l0"), _per_instance(run, "fvu")
    if l0 is None or fvu is None:
        _missing(ax, "metrics.json holds no per-instance l0 and fvu", "frontier")
        return
    mmcs = _per_instance(run, "mmcs")
    labels = _sae_labels(run)
    if mmcs is not None:
        sc = ax.scatter(l0, fvu, c=mmcs, cmap="viridis", s=46, edgecolors="k", linewidths=0.5, zorder=3)
        ax.figure.colorbar(sc, ax=ax, label="mmcs (recovery of the true directions)")
    else:
        ax.scatter(l0, fvu, color="C0", s=46, edgecolors="k", linewidths=0.5, zorder=3)
    bad = [i for i, ok in enumerate(run.metrics.get("converged") or []) if ok is False and i < run.n_instances]
    if bad:
        ax.scatter([l0[i] for i in bad], [fvu[i] for i in bad], marker="x", color="red", s=80, zorder=4,
                   label="did not converge")
        ax.legend(fontsize=8)
    if run.n_instances <= 16:
        for i in range(run.n_instances):
            ax.annotate(labels[i], (l0[i], fvu[i]), xytext=(4, 4), textcoords="offset points", fontsize=7)
    finite = [v for v in l0 if math.isfinite(v) and v > 0]
    if finite and max(finite) / min(finite) > 10:
        ax.set_xscale("log")
    ax.set_xlabel("L0 (active latents per sample)")
    ax.set_ylabel("FVU (fraction of variance unexplained)")
    ax.set_title(f"frontier over {run.n_instances} instance(s): lower left is better", fontsize=10)


def _sae_labels(run: Run) -> list[str]:
    if run.is_sweep_job:
        return run.instance_labels()
    k = run.metrics.get("k")
    if isinstance(k, list) and len(k) >= run.n_instances and all(isinstance(v, int) for v in k[: run.n_instances]):
        return [f"#{i} k={k[i]}" for i in range(run.n_instances)]
    l1 = _per_instance(run, "l1_coefficient")
    if l1 is not None:
        return [f"#{i} l1={l1[i]:.3g}" for i in range(run.n_instances)]
    return [f"#{i}" for i in range(run.n_instances)]


def _truth(run: Run, ax: Any, instance: int | None, *, strict: bool) -> None:
    known: KnownTruth = run_truth(run)
    if known.rows is None:
        if strict:
            raise ValueError(f"--kind truth: no known true directions for {run.path}: {known.reason}")
        _missing(ax, "no known true directions:\n" + known.reason, "truth")
        return
    mcc = _per_instance(run, "mcc")
    if instance is None:
        scores = mcc if mcc is not None else [0.0] * run.n_instances
        instance = max(range(run.n_instances), key=lambda i: (scores[i] if math.isfinite(scores[i]) else -math.inf, -i))
        rule = "best mcc"
    else:
        rule = "chosen"
    dec = run.model.decoder_directions()[instance : instance + 1].float().cpu()
    t = known.rows[instance][None].float()
    s = latent_matches(dec, t)
    order = matched_order(s["match"][0], s["best"][0])
    cos = s["cosine"][0][order].numpy()  # (F, G) latents in matched order
    f, g = cos.shape
    im = ax.imshow(cos, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
    ax.figure.colorbar(im, ax=ax, label="cosine(decoder column, true direction)")
    n_matched = int((s["match"][0] >= 0).sum())
    if n_matched < f:
        ax.axhline(n_matched - 0.5, color="k", lw=0.8, ls="--")
        ax.annotate("unmatched latents below", xy=(0.99, n_matched - 0.5), xycoords=("axes fraction", "data"),
                    xytext=(0, -3), textcoords="offset points", ha="right", va="top", fontsize=7)
    ax.set_xlabel(f"true direction g (G = {g})")
    ax.set_ylabel(f"latent, ordered by the matching (F = {f})")
    mm = _per_instance(run, "mmcs")
    scores = f"mmcs {mm[instance]:.3f}, mcc {mcc[instance]:.3f}" if mm is not None and mcc is not None else ""
    ax.set_title(f"instance {instance} ({rule}): {scores}\ntruth: {known.reason}", fontsize=9)


__all__ = ["GEOMETRY_FRACTIONS", "MAX_CURVES", "MAX_GRID", "PANELS", "PLOT_KINDS", "check_image_path", "check_kind", "kinds_for",
           "plot_run", "save_figure", "select_instances"]
