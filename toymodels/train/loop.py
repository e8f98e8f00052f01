"""One trainer for every batched model (toy models and SAEs) on any source of batches.

A model is a :class:`toymodels.protocols.TrainableModel`: ``loss_and_grad(x) -> (I,)``
(per-instance losses, ``.grad`` filled), ``loss``, ``spec``, ``subset``, ``load_instances``.
It may implement the optional hooks :class:`~toymodels.protocols.BeforeStep`,
:class:`~toymodels.protocols.AfterStep` (an SAE's decoder projection and renormalisation,
dead-latent resampling) and :class:`~toymodels.protocols.AttachesOptimizer` (called once
per chunk, so a model can reset optimizer state, e.g. the Adam moments of resampled SAE
latents). The loss is summed over instances, so under Adam each instance trains exactly as
if alone.

Features: Adam/AdamW (fused kernels), linear warm-up then constant, cosine or linear decay,
a tqdm bar, loss history, checkpoints every K steps with exact ``resume``, a NaN/inf guard
that stops with a clear message and keeps the last good checkpoint, best-of-N selection over
a seed axis, a memory estimate before any work, and automatic chunking of instances (and of
the final evaluation) that do not fit the device. GPU options (:mod:`toymodels.accel`):
TF32/bf16 matmuls (``matmul_precision``), graph-replayed steps (``cuda_graph``) and a
compiled fused toy-model step (``fused_step``); the fp32 eager loop stays the reference.

Guarantees: instance i trains the same whatever the chunking — same data stream, same
init, same evaluation batches (on the CPU the weights can still differ in the last bits:
MKL's batched matmul rounds one matrix of a batch differently with the batch's size); a
resumed run equals an uninterrupted one bit for bit and refuses any change of settings
except more steps; a run folder holding another run is never written
into without ``overwrite=True``; one run at a time per folder (see :mod:`toymodels.runs`).

The pieces: :mod:`.config` (TrainConfig), :mod:`.memory` (chunking and evaluation sizes),
:mod:`.optim` (the optimizer and the reference step), :mod:`.divergence` (the NaN guard),
:mod:`.steps` (how a step is taken: eager, fused, graph-replayed; chosen once per chunk),
:mod:`.feed` (where the data is drawn: inline, on the data thread, or measured first).
This module holds the run: chunks, resume, the step loop (:func:`_run_steps`), evaluation.
"""
from __future__ import annotations

import sys
import time
from contextlib import closing, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from .._validate import check_int
from ..data.activations import as_source
from ..data.features import check_compatible
from ..protocols import (
    MODEL_MEMBERS,
    STREAM_SOURCE_MEMBERS,
    AttachesOptimizer,
    Source,
    StreamSource,
    TrainableModel,
    missing_members,
)
from .accel.fused import use_fused_step
from .accel.graphs import use_cuda_graph
from .accel.precision import check_bf16, matmul_precision
from .config import OPTIMIZERS, SCHEDULES, TrainConfig, train_record
from .datathread import check_data_thread
from .divergence import (
    NONCONVERGENCE_FACTOR,
    TrainingDiverged,
    _check_finite,
    _diverged,
    _nonfinite_param_instances,
    converged_instances,
)
from .feed import choose_feed
from .memory import (
    EVAL_BATCH,
    _fit_instances,
    _memory_budget,
    _peak_memory,
    available_memory_bytes,
    bytes_per_instance,
    eval_plan,
    instances_per_chunk,
)
from .optim import LeanAdam, LeanAdamW, make_optimizer, optimizer_step
from .runs import (
    RunFolderError,
    check_rng_device,
    check_writable_dir,
    load_checkpoint,
    lock_run_folder,
    prepare_new_run,
    read_json,
    rng_state_to_cpu,
    save_checkpoint,
    save_weights,
    settings_diff,
    write_json,
)
from .steps import Step, choose_step
from .steps import batch_elements as _batch_elements

__all__ = [  # the names this module has always offered (most now live in the modules above)
    "EVAL_BATCH", "NONCONVERGENCE_FACTOR", "OPTIMIZERS", "SCHEDULES", "LeanAdam", "LeanAdamW", "TrainConfig",
    "TrainResult", "TrainingDiverged", "available_memory_bytes", "best_of", "bytes_per_instance",
    "converged_instances", "eval_plan", "evaluate", "instances_per_chunk", "make_optimizer", "optimizer_step",
    "prefetch_steps", "train", "train_record",
]


@dataclass
class TrainResult:
    model: torch.nn.Module
    final_loss: torch.Tensor
    """(I,) loss on ``eval_samples`` fresh samples after training."""
    history: list[dict[str, Any]]
    train_seconds: float
    peak_memory_bytes: int
    device: str
    chunks: int = 1
    metrics: dict[str, Any] = field(default_factory=dict)
    converged: torch.Tensor | None = None
    """(I,) bool: False where the final loss is not finite or more than
    ``NONCONVERGENCE_FACTOR`` times the loss at initialisation (see :func:`converged_instances`)."""
    initial_loss: torch.Tensor | None = None
    """(I,) the training loss of the first step (the initial weights on the first batch)."""
    reused: bool = False
    """True when the run folder already held this finished run (same settings and steps):
    nothing was trained, the model came from its final checkpoint (see :func:`train`)."""


# ---------------------------------------------------------------------- training
def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def evaluate(
    model: TrainableModel,
    source: StreamSource,
    n_samples: int,
    batch_size: int = EVAL_BATCH,
    max_instances: int | None = None,
) -> torch.Tensor:
    """Per-instance mean loss (I,) over ``n_samples`` fresh samples, drawn in batches of
    ``batch_size``: L_i = (1/n) Σ_batches b · loss_i(batch).

    With ``max_instances`` < I the instances are evaluated that many at a time: the source
    is rewound for each group and draws the same batches, so every instance sees exactly
    the data of an evaluation of all instances at once (its loss equal up to the last bits
    of a batched matmul), and the source ends in the same state.
    """
    n_inst = int(model.n_instances)
    groups = [slice(0, n_inst)]
    if max_instances is not None and max_instances < n_inst:
        groups = [slice(s, min(s + max_instances, n_inst)) for s in range(0, n_inst, max_instances)]
    state0 = source.get_state() if len(groups) > 1 else None
    parts = []
    for idx in groups:
        sub = model if len(groups) == 1 else model.subset(idx)
        if state0 is not None:
            source.set_state(state0)
        total, seen = None, 0
        while seen < n_samples:
            b = min(batch_size, n_samples - seen)
            x = source.sample(b)
            if len(groups) > 1 and x.shape[0] > 1:
                x = x[idx]
            loss = sub.loss(x) * b
            total = loss if total is None else total + loss
            seen += b
        parts.append((total / seen).detach())
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def prefetch_steps(source: StreamSource, config: TrainConfig) -> int:
    """How many steps of data one sampling call draws (blocks start at multiples of this).
    The trainer computes it from the whole source, never from a chunk's subset, so the
    batches (and the data stream) of an instance do not depend on the chunking."""
    per_step = source.n_instances * config.batch_size * source.dim
    return max(1, min(config.steps, config.prefetch_elements // max(1, per_step)))


@dataclass(frozen=True)
class _Chunk:
    index: int
    start: int
    stop: int
    per_chunk: int
    n_chunks: int

    def record(self) -> dict[str, int]:
        return {"index": self.index, "start": self.start, "stop": self.stop, "per_chunk": self.per_chunk, "n_chunks": self.n_chunks}


def _checkpoint_name(chunk: _Chunk) -> str:
    return "checkpoint.pt" if chunk.n_chunks == 1 else f"checkpoint-{chunk.index}.pt"


@dataclass
class _Progress:
    """What a chunk's step loop carries from step to step (and into checkpoints)."""

    step0: int
    history: list[dict[str, Any]]
    good_step: int | None
    initial: torch.Tensor | None
    params: list[torch.nn.Parameter]
    record: dict[str, Any]


def _train_chunk(
    model: TrainableModel,
    source: StreamSource,
    config: TrainConfig,
    ckpt: Path | None,
    state: dict[str, Any] | None,
    k: int,
    bar: Any,
    record: dict[str, Any],
    chunk: _Chunk,
) -> tuple[list[dict[str, Any]], float, torch.Tensor | None, dict[str, Any]]:
    """Train one chunk (from ``state``, a checkpoint, when resuming): the optimizer, the step
    strategy and the feed are chosen here, once; :func:`_run_steps` runs the steps. Returns
    (history, seconds, initial loss, what the feed did)."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(params, config)
    if isinstance(model, AttachesOptimizer):  # e.g. an SAE resetting the Adam moments of resampled latents
        model.attach_optimizer(opt)
    dev = _device_of(model)
    run = _Progress(0, [], None, None, params, record)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        source.set_state(rng_state_to_cpu(state["rng"]))
        run.step0, run.history, run.good_step = int(state["step"]), list(state["history"]), int(state["step"])
        run.initial = state.get("initial_loss")
        bar.update(run.step0)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    step_fn = choose_step(model, opt, params, config, source, run.step0, k)
    with matmul_precision(config.matmul_precision, dev), closing(step_fn), closing(choose_feed(
        config.data_thread, dev, source, config.batch_size, k, config.steps, run.step0,
        block_elements=k * _batch_elements(source, config), precision=config.matmul_precision,
        compiled=step_fn.compiled, record=None if state is None else state.get("data_thread"),
    )) as feed:
        _run_steps(model, opt, step_fn, feed, config, k, ckpt, chunk, run, bar)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return run.history, time.perf_counter() - t0, run.initial, feed.summary()


def _run_steps(model: TrainableModel, opt: torch.optim.Optimizer, step_fn: Step, feed: Any, config: TrainConfig,
               k: int, ckpt: Path | None, chunk: _Chunk, run: _Progress, bar: Any) -> None:
    """The step loop: the learning rate, the batch, the step, the log, the checkpoint.

    Data for steps [j·k, (j+1)·k) is one block, taken from ``feed`` at the block's start
    (drawn now, or on the data thread during the last block); a checkpoint stores the RNG
    state from before the block holding its next step, so resume redraws that block and
    skips into it, exactly as an uninterrupted run. How a step is taken is ``step_fn``'s
    business (:mod:`toymodels.train.steps`), where the data comes from the feed's
    (:mod:`toymodels.train.feed`): nothing here branches on either."""
    lr_now, block_idx, block, block_state = None, -1, None, None
    for step in range(run.step0, config.steps):
        lr = config.lr_at(step)
        if lr != lr_now:
            for g in opt.param_groups:
                g["lr"] = lr
            lr_now = lr
        if step // k != block_idx:
            block_idx = step // k
            block_state, block = feed.take(block_idx)
            block = step_fn.prepare(block)
        off = (step - block_idx * k) * config.batch_size
        x = block[:, off : off + config.batch_size] if k > 1 else block
        loss = step_fn(x, step, lr)
        if step == 0:
            run.initial = loss.detach().float().cpu()
        done = step + 1
        if done % config.log_every == 0 or done == config.steps:
            loss_cpu = loss.detach().float().cpu()
            _check_finite(loss_cpu, done, lr, ckpt, run.good_step, chunk.start)
            run.history.append({"step": done, "lr": lr, "loss": loss_cpu.tolist()})
            bar.update(done - bar.n if bar.n < done else 0)
            bar.set_postfix(loss=f"{loss_cpu.mean().item():.4g}", refresh=False)
        if ckpt is not None and config.checkpoint_every and (done % config.checkpoint_every == 0 or done == config.steps):
            at_block_end = done % k == 0 or done == config.steps
            _checkpoint(model, opt, feed, ckpt, done, lr, block_state, at_block_end, chunk, run)


def _checkpoint(model: TrainableModel, opt: torch.optim.Optimizer, feed: Any, ckpt: Path, done: int, lr: float,
                block_state: Any, at_block_end: bool, chunk: _Chunk, run: _Progress) -> None:
    """Write the checkpoint after step ``done`` (refusing NaN/inf parameters, which keeps the
    last good one): at a block's end the RNG state before the next block, inside a block the
    state before this one (resume redraws it and skips in); the feed's record with it."""
    bad = _nonfinite_param_instances(run.params, int(model.n_instances))
    if bad:
        raise _diverged(bad, done, lr, ckpt, run.good_step, chunk.start)
    save_checkpoint(ckpt, {
        "step": done,
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "rng": feed.state_before_next() if at_block_end else block_state,
        "history": run.history,
        "initial_loss": run.initial,
        "run": run.record,
        "chunk": chunk.record(),
        "device": _dev_type(model),
        "data_thread": feed.record(at_block_end),
    })
    run.good_step = done


def _dev_type(model: TrainableModel) -> str:
    return _device_of(model).type


def _resume_states(
    out: Path, record: dict[str, Any], config: TrainConfig, n_inst: int, device: torch.device,
    loaded: dict[Path, dict[str, Any]] | None = None,
) -> tuple[int, dict[int, dict[str, Any]]]:
    """Check the checkpoints of ``out`` against the new run's settings and return (the
    chunking they were written with, {chunk index: checkpoint}); ``loaded``: checkpoints
    already read, by path (a rerun of a finished run reads each file once). Raises RunFolderError,
    one line, for a missing or damaged checkpoint, changed settings, fewer steps than the
    checkpoint's, another device type, or checkpoints from two chunkings."""
    single = out / "checkpoint.pt"
    chunked = sorted(out.glob("checkpoint-*.pt"))
    if not single.exists() and not chunked:
        raise RunFolderError(f"{out}: nothing to resume, there is no checkpoint.pt (start the run without resume)")
    if single.exists() and chunked:
        raise RunFolderError(f"{out}: holds both checkpoint.pt and {chunked[0].name} (files of two runs); start again with overwrite=True")
    states: dict[int, dict[str, Any]] = {}
    per_chunk = None
    loaded = loaded or {}
    for path in [single] if single.exists() else chunked:
        state = loaded[path] if path in loaded else load_checkpoint(path, "cpu")
        if "run" not in state or "chunk" not in state:
            raise RunFolderError(f"{path}: written by an older toymodels without its run settings; it cannot be resumed safely (start again with overwrite=True)")
        diff = settings_diff(state["run"], record)
        if diff:
            raise RunFolderError(
                f"{path}: cannot resume with changed settings: {'; '.join(diff)} (only steps may grow; "
                "start a new run in another folder or with overwrite=True)"
            )
        if int(state["step"]) > config.steps:
            raise RunFolderError(f"{path}: the checkpoint is at step {int(state['step'])} but steps = {config.steps}; resume needs steps >= {int(state['step'])}")
        check_rng_device(state.get("device"), device, path)
        ch = state["chunk"]
        if per_chunk is None:
            per_chunk = int(ch["per_chunk"])
        expected = "checkpoint.pt" if -(-n_inst // per_chunk) == 1 else f"checkpoint-{int(ch['index'])}.pt"
        if int(ch["per_chunk"]) != per_chunk or path.name != expected:
            raise RunFolderError(f"{path}: its chunking does not match the folder's other checkpoints; start again with overwrite=True")
        states[int(ch["index"])] = state
    assert per_chunk is not None
    return per_chunk, states


def _check_inputs(model: object, source: object, config: object) -> None:
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if not isinstance(model, TrainableModel):
        raise TypeError(f"model lacks {missing_members(model, *MODEL_MEMBERS)} (see toymodels.protocols.TrainableModel)")
    if not isinstance(source, StreamSource):
        raise TypeError(f"source lacks {missing_members(source, *STREAM_SOURCE_MEMBERS)} (see toymodels.protocols.Source)")


def train(
    model: TrainableModel,
    source: StreamSource,
    config: TrainConfig = TrainConfig(),
    out: str | Path | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    metrics: Callable[[torch.nn.Module], dict[str, Any]] | None = None,
    desc: str = "train",
) -> TrainResult:
    """Train every instance of ``model`` on batches from ``source``; returns a :class:`TrainResult`.

    With ``out`` the run folder gets ``config.json`` once the checks pass, checkpoints while
    it trains, and ``model.safetensors``, ``history.json`` and ``metrics.json`` at the end
    (``metrics(model)`` adds keys to the latter). A folder that already holds a run is
    refused unless ``overwrite=True`` (which first removes the old run's files) or
    ``resume=True``, which continues from the folder's checkpoint(s) with the same settings
    (only ``steps`` may grow) and gives the same result as an uninterrupted run. The folder
    is locked while the run writes to it. Run-folder problems raise
    :class:`toymodels.runs.RunFolderError`; a batch that does not fit in memory raises
    ValueError naming ``batch_size`` before any work.

    ``source`` may also be your own activations: an (N, D) tensor or NumPy array, or a
    .npy/.pt/.safetensors path, wrapped as :class:`toymodels.activations.Activations`
    (the last 10% of rows held out; pass an ``Activations`` yourself to choose).
    """
    source = as_source(source)
    _check_inputs(model, source, config)
    check_compatible(model, source)  # width, instances and device of the batches, named
    dev = _device_of(model)
    if config.matmul_precision == "bf16":  # ValueError naming matmul_precision when the model's step cannot take it
        check_bf16(model, int(source.dim), dev)
    use_fused_step(config.fused_step, model, dev, config.matmul_precision)  # ValueError naming fused_step ('on' only)
    check_data_thread(config.data_thread, dev)  # ValueError naming data_thread ('on' off the CPU)
    if config.cuda_graph == "on":  # ValueError naming cuda_graph before any work when it cannot be done
        use_cuda_graph("on", model, make_optimizer([p for p in model.parameters() if p.requires_grad], config),
                       dev, _batch_elements(source, config))
    n_inst = int(model.n_instances)
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other: resume continues the run in the folder, overwrite replaces it")
    if resume and out is None:
        raise ValueError("resume=True needs the run folder (out) to resume from")
    per_chunk = instances_per_chunk(model, config, dev)  # ValueError naming batch_size when nothing fits
    eval_batch, eval_instances = eval_plan(model, config, dev, source)
    record = {"model": model.spec(), "data": source.spec(), "train": train_record(config)}
    out = check_writable_dir(out) if out is not None else None
    states: dict[int, dict[str, Any]] = {}
    reused = None
    with lock_run_folder(out) if out is not None else nullcontext():
        if out is not None:
            if not resume and not overwrite:
                finished = _finished_run(out, record, config)
                reused, loaded = finished if finished is not None else (None, None)
                resume = reused is not None
            if resume:
                per_chunk, states = _resume_states(out, record, config, n_inst, dev, loaded if reused else None)
                fit = _fit_instances(model, config.batch_size, _memory_budget(dev))
                if per_chunk > fit:
                    raise ValueError(
                        f"{out}: its checkpoints train {per_chunk} instances at once, but only {fit} fit in memory now "
                        "(the chunking of a run cannot change on resume); free memory or resume on a larger device"
                    )
            else:
                prepare_new_run(out, overwrite)
            write_json(out / "config.json", record)
        result = _train_chunks(model, source, config, out, record, per_chunk, states, (eval_batch, eval_instances), desc)
        if reused is not None:  # nothing trained: keep what the run measured when it did train
            result.reused = True
            for key in ("train_seconds", "peak_memory_bytes", "peak_memory_scope"):
                if key in reused:
                    result.metrics[key] = reused[key]
            result.train_seconds = float(reused.get("train_seconds", result.train_seconds))
            print(f"{out}: already holds this finished run (same settings, {config.steps} steps): loaded from its "
                  "final checkpoint, nothing trained (overwrite=True / --overwrite trains it again)", file=sys.stderr)
        if metrics is not None:
            result.metrics.update(metrics(model))
        if out is not None:
            save_weights(out / "model.safetensors", model)
            write_json(out / "history.json", result.history)
            write_json(out / "metrics.json", result.metrics)
    return result


def finished_run(out: Path, record: dict[str, Any], config: TrainConfig) -> dict[str, Any] | None:
    """The metrics of the finished run in ``out`` when it is this run: its metrics written (the
    trainer's last file) and every checkpoint at step ``steps`` recording the same settings,
    steps included (the experiments layer may rewrite config.json and the weights afterwards,
    e.g. best-of-N keeping the winners, so the checkpoints are what is compared). A "rerun" is
    then a resume with nothing left to train: it evaluates on the very data the first run
    evaluated on and leaves the source where the first run left it. Else None, and the usual
    rules apply (a different run is refused without ``overwrite``)."""
    found = _finished_run(out, record, config)
    return None if found is None else found[0]


def _finished_run(
    out: Path, record: dict[str, Any], config: TrainConfig
) -> tuple[dict[str, Any], dict[Path, dict[str, Any]]] | None:
    """:func:`finished_run`, with the checkpoints it read (by path)."""
    ckpts = sorted(out.glob("checkpoint*.pt"))
    if not (out / "metrics.json").is_file() or not ckpts:
        return None
    try:
        metrics = read_json(out / "metrics.json")
        states = {c: load_checkpoint(c, "cpu") for c in ckpts}
    except (RunFolderError, OSError, ValueError):
        return None
    for state in states.values():
        run = state.get("run")
        if int(state["step"]) != config.steps or not isinstance(run, dict) or settings_diff(run, record, ignore=()):
            return None
    return (metrics, states) if isinstance(metrics, dict) else None


def _train_chunks(
    model: TrainableModel,
    source: StreamSource,
    config: TrainConfig,
    out: Path | None,
    record: dict[str, Any],
    per_chunk: int,
    states: dict[int, dict[str, Any]],
    eval_sizes: tuple[int, int],
    desc: str,
) -> TrainResult:
    dev = _device_of(model)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    n_inst = int(model.n_instances)
    starts = list(range(0, n_inst, per_chunk))
    chunked = len(starts) > 1
    shared = source.n_instances == 1
    if chunked and not shared and not isinstance(source, Source):
        raise TypeError(
            f"training {n_inst} instances in chunks of {per_chunk} needs source.subset (see toymodels.protocols.Source); "
            f"{type(source).__name__} has none"
        )
    k = prefetch_steps(source, config)  # from the whole source: the same blocks in every chunking
    histories, losses, initials, seconds, feeds = [], [], [], 0.0, []
    chunk_states: list[tuple[_Chunk, Any]] = []
    # A shared source (1 instance) is rewound for every chunk, so each chunk sees the batches
    # an unchunked run would; a per-instance source is split with subset(), which keeps each
    # instance's own stream (chunking must not change any instance's result).
    rng0 = source.get_state() if chunked and shared else None
    with tqdm(total=config.steps, desc=desc, disable=config.quiet, leave=False, mininterval=0.5) as bar:
        for c, start in enumerate(starts):
            chunk = _Chunk(c, start, min(start + per_chunk, n_inst), per_chunk, len(starts))
            idx = slice(chunk.start, chunk.stop)
            ckpt = None if out is None else out / _checkpoint_name(chunk)
            if not chunked:
                sub_model, sub_source = model, source
            else:
                sub_model = model.subset(idx)
                if shared:
                    source.set_state(rng0)
                    sub_source = source
                else:
                    sub_source = source.subset(idx)
                bar.reset()
            hist, secs, initial, fed = _train_chunk(sub_model, sub_source, config, ckpt, states.pop(c, None), k, bar, record, chunk)
            feeds.append(fed)
            histories.append(hist)
            initials.append(initial)
            seconds += secs
            # Evaluated chunk by chunk, right after training it, on the chunk's own stream.
            losses.append(evaluate(sub_model, sub_source, config.eval_samples, *eval_sizes).float().cpu())
            if sub_model is not model:
                model.load_instances(idx, sub_model)
                del sub_model
            if sub_source is not source:
                chunk_states.append((chunk, sub_source.get_state()))
    if chunk_states:
        _hand_back_streams(source, chunk_states)
    history = _merge_histories(histories)
    final = torch.cat(losses)
    initial = torch.cat(initials) if all(i is not None for i in initials) else None
    ok = converged_instances(initial, final)
    result = TrainResult(
        model=model,
        final_loss=final,
        history=history,
        train_seconds=seconds,
        peak_memory_bytes=_peak_memory(dev),
        device=str(dev),
        chunks=len(starts),
        converged=ok,
        initial_loss=initial,
    )
    result.metrics = {
        "loss": result.final_loss.tolist(),
        "train_seconds": result.train_seconds,
        "device": result.device,
        "peak_memory_bytes": result.peak_memory_bytes,
        "peak_memory_scope": "cuda max_memory_allocated" if dev.type == "cuda" else "process max RSS",
        "instance_chunks": result.chunks,
        "steps": config.steps,
        "converged": ok.tolist(),
        "non_converged_instances": (~ok).nonzero().flatten().tolist(),
        # what the data thread did (auto: its measurement and decision), chunk by chunk
        "data_thread_used": any(f["used"] for f in feeds),
        "data_thread": feeds,
    }
    return result


def _hand_back_streams(source: Any, chunk_states: list[tuple[_Chunk, Any]]) -> None:
    """After chunked training on forks (``source.subset``), leave ``source`` where an
    unchunked run leaves it, so whatever samples it next (a metrics callback, the caller)
    sees the same data in any chunking.

    Every fork of one stream drew the same sequence, so: a state shaped like the parent's is
    the shared stream's (toy-model activations of shared features) and is taken as is; a
    per-instance state (blocks, S) is assembled block by block — chunk [s, e) holds blocks
    s // G ... (e - 1) // G of G = ``toymodels.data.STREAM_BLOCK`` instances, in order.
    Anything else is left alone (the parent then stays at its state before training)."""
    parent = source.get_state()
    if not isinstance(parent, torch.Tensor):
        return
    states = [st for _, st in chunk_states]
    if all(isinstance(st, torch.Tensor) and st.shape == parent.shape for st in states):
        if parent.ndim == 1 or parent.shape[0] == 1:
            source.set_state(states[-1])
            return
    from ..data.features import STREAM_BLOCK

    n_inst = int(source.n_instances)
    if parent.ndim != 2 or parent.shape[0] != -(-n_inst // STREAM_BLOCK):
        return
    new = parent.clone()
    for chunk, st in chunk_states:
        first, last = chunk.start // STREAM_BLOCK, (chunk.stop - 1) // STREAM_BLOCK
        if not isinstance(st, torch.Tensor) or st.ndim != 2 or st.shape[0] != last - first + 1:
            return
        new[first : last + 1] = st.cpu()
    source.set_state(new)


def _merge_histories(histories: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    if len(histories) == 1:
        return histories[0]
    merged = []
    for rows in zip(*histories):
        merged.append({"step": rows[0]["step"], "lr": rows[0]["lr"], "loss": sum((r["loss"] for r in rows), [])})
    return merged



def best_of(model: torch.nn.Module, losses: torch.Tensor, n_seeds: int) -> tuple[torch.nn.Module, torch.Tensor]:
    """Keep the lowest-loss seed of each configuration.

    Instances are laid out configuration-major: configuration c owns instances
    [c·n_seeds, (c+1)·n_seeds). Returns the model of the winners and their indices (C,).
    """
    n_seeds = check_int("n_seeds", n_seeds, 1)
    if model.n_instances % n_seeds:
        raise ValueError(f"n_instances = {model.n_instances} is not a multiple of n_seeds = {n_seeds}")
    grouped = losses.reshape(-1, n_seeds)
    chosen = grouped.argmin(dim=1) + torch.arange(grouped.shape[0]) * n_seeds
    return model.subset(chosen), chosen
