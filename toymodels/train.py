"""One trainer for every batched model (toy models and SAEs) on any source of batches.

A model provides ``loss_and_grad(x) -> (I,)`` (per-instance losses, ``.grad`` filled) and may
provide ``before_optimizer_step(step)`` / ``after_optimizer_step(step, x)`` hooks (an SAE's
decoder projection and renormalisation, dead-latent resampling) and
``attach_optimizer(optimizer)`` (called once per chunk, so a model can reset optimizer state,
e.g. the Adam moments of resampled SAE latents). The loss is summed over
instances, so under Adam each instance trains exactly as if alone.

Features: Adam/AdamW (fused kernels), linear warm-up then constant, cosine or linear decay,
a tqdm bar, loss history, checkpoints every K steps with exact ``resume``, a NaN/inf guard
that stops with a clear message and keeps the last good checkpoint, best-of-N selection over
a seed axis, and automatic chunking of instances that do not fit the device.
"""
from __future__ import annotations

import math
import resource
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from ._validate import check_choice, check_float, check_int, check_nonneg, check_positive
from .runs import load_checkpoint, save_checkpoint, save_weights, write_json

OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant", "cosine", "linear")


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Every field is checked at construction."""

    steps: int = 5000
    """Optimizer steps."""
    batch_size: int = 1024
    """Samples per step (per instance)."""
    lr: float = 1e-3
    """Peak learning rate."""
    optimizer: str = "adam"
    """adam or adamw."""
    weight_decay: float = 0.0
    """Decoupled for adamw, L2 for adam."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam's moment decay rates, each in [0, 1)."""
    warmup_steps: int = 0
    """Linear warm-up from lr/warmup_steps to lr."""
    schedule: str = "constant"
    """After warm-up: constant, cosine or linear decay to final_lr_fraction · lr."""
    final_lr_fraction: float = 0.0
    """The decayed learning rate at the last step, as a fraction of lr."""
    log_every: int = 10
    """Record the per-instance loss (and check it is finite) every this many steps."""
    checkpoint_every: int = 1000
    """Write checkpoint.pt every this many steps when the run has a folder (0: never)."""
    eval_samples: int = 16384
    """Fresh samples for the final per-instance loss."""
    max_instances_per_chunk: int | None = None
    """Train at most this many instances at once (default: as many as fit the device)."""
    prefetch_elements: int = 1 << 20
    """Sample the data of several steps in one call, up to this many floats (tiny models are
    dominated by per-call overhead); 0 samples every step separately."""
    quiet: bool = False
    """No progress bar."""

    def __post_init__(self) -> None:
        check_int("steps", self.steps, 0)
        check_int("batch_size", self.batch_size, 1)
        check_positive("lr", self.lr)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_nonneg("weight_decay", self.weight_decay)
        if len(self.betas) != 2:
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        for i, b in enumerate(self.betas):
            check_float(f"betas[{i}]", b, 0.0, 1.0, hi_open=True)
        check_int("warmup_steps", self.warmup_steps, 0)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_float("final_lr_fraction", self.final_lr_fraction, 0.0, 1.0)
        check_int("log_every", self.log_every, 1)
        check_int("checkpoint_every", self.checkpoint_every, 0)
        check_int("eval_samples", self.eval_samples, 1)
        check_int("prefetch_elements", self.prefetch_elements, 0)
        if self.max_instances_per_chunk is not None:
            check_int("max_instances_per_chunk", self.max_instances_per_chunk, 1)

    def lr_at(self, step: int) -> float:
        """Learning rate for 0-based ``step``: linear warm-up, then the schedule."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if self.schedule == "constant":
            return self.lr
        t = (step - self.warmup_steps) / max(1, self.steps - 1 - self.warmup_steps)
        t = min(max(t, 0.0), 1.0)
        f = self.final_lr_fraction
        if self.schedule == "cosine":
            return self.lr * (f + (1 - f) * 0.5 * (1 + math.cos(math.pi * t)))
        return self.lr * (1 - (1 - f) * t)


class TrainingDiverged(FloatingPointError):
    """The loss or parameters became NaN/inf; the last good checkpoint is kept."""

    def __init__(self, message: str, step: int, instances: list[int], checkpoint: Path | None) -> None:
        super().__init__(message)
        self.step, self.instances, self.checkpoint = step, instances, checkpoint


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


# ---------------------------------------------------------------------- memory
def available_memory_bytes(device: torch.device) -> int:
    """Free memory on ``device``: CUDA's free bytes, or the host's MemAvailable."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def bytes_per_instance(model: torch.nn.Module, batch_size: int) -> int:
    """A generous estimate of one instance's training footprint: activations and their
    gradients (``activation_width`` floats per sample, twice) plus parameters, gradients and
    the two Adam moments."""
    n_inst = int(getattr(model, "n_instances", 1))
    params = sum(p.numel() for p in model.parameters()) // max(1, n_inst)
    width = int(getattr(model, "activation_width", 8 * params ** 0.5))
    return 4 * (2 * batch_size * width + 4 * params)


def instances_per_chunk(model: torch.nn.Module, config: TrainConfig, device: torch.device) -> int:
    n_inst = int(getattr(model, "n_instances", 1))
    if config.max_instances_per_chunk is not None:
        return min(n_inst, config.max_instances_per_chunk)
    budget = 0.5 * available_memory_bytes(device)
    return max(1, min(n_inst, int(budget // bytes_per_instance(model, config.batch_size))))


def _peak_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux: KiB


# ---------------------------------------------------------------------- training
def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


class _LeanFusedStep:
    """Adam/AdamW whose steps, once the state exists, call the fused kernel directly.

    torch.optim's bookkeeping around ``_fused_adam_`` costs about three times the kernel
    itself on a tiny model (25 µs vs 7 µs a step); this calls the same kernel with the same
    state tensors, so results are bit-identical, ``state``/``state_dict`` keep their usual
    layout (checkpoints, an SAE zeroing the moments of resampled latents), and anything
    unusual (several groups, a missing gradient, amsgrad) falls back to the parent's step.
    """

    _kernel_name: str

    def step(self, closure=None):  # type: ignore[override]
        lists = getattr(self, "_lean", None)
        if closure is not None or lists is None:
            loss = super().step(closure)
            self._lean = self._collect()
            return loss
        params, exp_avgs, exp_avg_sqs, steps = lists
        grads = [p.grad for p in params]
        if any(g is None for g in grads):
            return super().step()
        g = self.param_groups[0]
        torch._foreach_add_(steps, 1)
        getattr(torch, self._kernel_name)(
            params, grads, exp_avgs, exp_avg_sqs, [], steps,
            amsgrad=False, lr=g["lr"], beta1=g["betas"][0], beta2=g["betas"][1],
            weight_decay=g["weight_decay"], eps=g["eps"], maximize=False, grad_scale=None, found_inf=None,
        )
        return None

    def _collect(self):
        if len(self.param_groups) != 1:
            return None
        g = self.param_groups[0]
        if not g.get("fused") or g.get("amsgrad") or g.get("maximize") or g.get("differentiable"):
            return None
        params = g["params"]
        if not all(p in self.state and "exp_avg" in self.state[p] for p in params):
            return None
        st = [self.state[p] for p in params]
        return params, [s["exp_avg"] for s in st], [s["exp_avg_sq"] for s in st], [s["step"] for s in st]

    def load_state_dict(self, state_dict):  # type: ignore[override]
        super().load_state_dict(state_dict)
        self._lean = None


class LeanAdam(_LeanFusedStep, torch.optim.Adam):
    _kernel_name = "_fused_adam_"


class LeanAdamW(_LeanFusedStep, torch.optim.AdamW):
    _kernel_name = "_fused_adamw_"


def make_optimizer(params: list[torch.nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    kw = dict(lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    lean, plain = (LeanAdamW, torch.optim.AdamW) if config.optimizer == "adamw" else (LeanAdam, torch.optim.Adam)
    if hasattr(torch, lean._kernel_name):
        try:
            return lean(params, fused=True, **kw)
        except (RuntimeError, TypeError, ValueError):  # dtype/device without a fused kernel
            pass
    return plain(params, foreach=True, **kw)


@torch.no_grad()
def evaluate(model: torch.nn.Module, source: Any, n_samples: int, batch_size: int = 8192) -> torch.Tensor:
    """Per-instance mean loss (I,) over ``n_samples`` fresh samples."""
    total, seen = None, 0
    while seen < n_samples:
        b = min(batch_size, n_samples - seen)
        loss = model.loss(source.sample(b)) * b
        total = loss if total is None else total + loss
        seen += b
    return (total / seen).detach()


def optimizer_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    step: int,
    params: list[torch.nn.Parameter] | None = None,
) -> torch.Tensor:
    """One training step exactly as :func:`train` takes it: clear the gradients, fill them
    with ``model.loss_and_grad(x)``, call ``before_optimizer_step(step)`` if the model has it,
    step the optimizer, then ``after_optimizer_step(step, x)``. Returns the (I,) losses."""
    for p in model.parameters() if params is None else params:
        p.grad = None
    loss = model.loss_and_grad(x)
    before = getattr(model, "before_optimizer_step", None)
    if before is not None:
        before(step)
    optimizer.step()
    after = getattr(model, "after_optimizer_step", None)
    if after is not None:
        after(step, x)
    return loss


def _check_finite(loss: torch.Tensor, step: int, lr: float, ckpt: Path | None, good_step: int | None) -> None:
    bad = ~torch.isfinite(loss)
    if bool(bad.any()):
        inst = bad.nonzero().flatten().tolist()
        kept = (
            f"the last good checkpoint (step {good_step}) is kept at {ckpt}"
            if ckpt is not None and good_step is not None
            else "no checkpoint was written before it (give the run a folder and checkpoint_every)"
        )
        raise TrainingDiverged(
            f"training diverged: the loss became NaN/inf at step {step} in instance(s) {inst[:10]}"
            f"{' ...' if len(inst) > 10 else ''}; {kept}. Lower the learning rate (now {lr:.3g}) "
            "or check the data for NaN.",
            step,
            inst,
            ckpt if good_step is not None else None,
        )


def prefetch_steps(source: Any, config: TrainConfig) -> int:
    """How many steps of data one sampling call draws (blocks start at multiples of this)."""
    per_step = source.n_instances * config.batch_size * source.dim
    return max(1, min(config.steps, config.prefetch_elements // max(1, per_step)))


def _train_chunk(
    model: torch.nn.Module,
    source: Any,
    config: TrainConfig,
    ckpt: Path | None,
    resume: bool,
    bar: Any,
) -> tuple[list[dict[str, Any]], float]:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(params, config)
    attach = getattr(model, "attach_optimizer", None)
    if attach is not None:  # e.g. an SAE resetting the Adam moments of resampled latents
        attach(opt)
    step0, history, good_step = 0, [], None
    if resume and ckpt is not None and ckpt.exists():
        state = load_checkpoint(ckpt, _device_of(model))
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        source.set_state(state["rng"])
        step0, history, good_step = int(state["step"]), list(state["history"]), int(state["step"])
        if hasattr(model, "load_extra_state"):
            model.load_extra_state(state.get("extra", {}))
        bar.update(step0)
    # Data for steps [j·k, (j+1)·k) is drawn in one call at the block's start; a checkpoint
    # stores the RNG state from before the block holding its next step, so resume redraws
    # that block and skips into it, exactly as an uninterrupted run.
    k = prefetch_steps(source, config)
    block, block_idx, block_state = None, -1, source.get_state()
    dev = _device_of(model)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    lr_now = None
    for step in range(step0, config.steps):
        lr = config.lr_at(step)
        if lr != lr_now:
            for g in opt.param_groups:
                g["lr"] = lr
            lr_now = lr
        if step // k != block_idx:
            block_idx = step // k
            block_state = source.get_state()
            n_steps = min(k, config.steps - block_idx * k)
            block = source.sample(config.batch_size * n_steps)
        off = (step - block_idx * k) * config.batch_size
        x = block[:, off : off + config.batch_size] if k > 1 else block
        loss = optimizer_step(model, opt, x, step, params)
        done = step + 1
        if done % config.log_every == 0 or done == config.steps:
            loss_cpu = loss.detach().float().cpu()
            _check_finite(loss_cpu, done, lr, ckpt, good_step)
            history.append({"step": done, "lr": lr, "loss": loss_cpu.tolist()})
            bar.update(done - bar.n if bar.n < done else 0)
            bar.set_postfix(loss=f"{loss_cpu.mean().item():.4g}", refresh=False)
        if ckpt is not None and config.checkpoint_every and (done % config.checkpoint_every == 0 or done == config.steps):
            finite = all(bool(torch.isfinite(p).all()) for p in params)
            if not finite:
                _check_finite(torch.tensor([float("nan")]), done, lr, ckpt, good_step)
            state = {
                "step": done,
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "rng": source.get_state() if done % k == 0 or done == config.steps else block_state,
                "history": history,
            }
            if hasattr(model, "extra_state"):
                state["extra"] = model.extra_state()
            save_checkpoint(ckpt, state)
            good_step = done
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return history, time.perf_counter() - t0


def _merge_histories(histories: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    if len(histories) == 1:
        return histories[0]
    merged = []
    for rows in zip(*histories):
        merged.append({"step": rows[0]["step"], "lr": rows[0]["lr"], "loss": sum((r["loss"] for r in rows), [])})
    return merged


def train(
    model: torch.nn.Module,
    source: Any,
    config: TrainConfig = TrainConfig(),
    out: str | Path | None = None,
    *,
    resume: bool = False,
    metrics: Callable[[torch.nn.Module], dict[str, Any]] | None = None,
    desc: str = "train",
) -> TrainResult:
    """Train every instance of ``model`` on batches from ``source``; returns a :class:`TrainResult`.

    With ``out`` the run folder gets ``config.json`` at the start, checkpoints while it
    trains, and ``model.safetensors``, ``history.json`` and ``metrics.json`` at the end
    (``metrics(model)`` adds keys to the latter). ``resume=True`` continues from the folder's
    checkpoint and gives the same result as an uninterrupted run.
    """
    dev = _device_of(model)
    if source.device.type != dev.type:
        raise ValueError(f"the data source is on {source.device} but the model is on {dev}; use one device")
    if source.n_instances not in (1, model.n_instances):
        raise ValueError(
            f"the data source has {source.n_instances} instances but the model has {model.n_instances}; use 1 (shared) or the same"
        )
    out = Path(out) if out is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", {"model": model.spec(), "data": source.spec(), "train": asdict(config)})
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)

    n_inst = model.n_instances
    per_chunk = instances_per_chunk(model, config, dev)
    starts = list(range(0, n_inst, per_chunk))
    histories, seconds = [], 0.0
    # A shared source (1 instance) is rewound for every chunk, so each chunk sees the batches
    # an unchunked run would (chunking must not change any instance's result).
    rng0 = source.get_state() if len(starts) > 1 and source.n_instances == 1 else None
    with tqdm(total=config.steps, desc=desc, disable=config.quiet, leave=False, mininterval=0.5) as bar:
        for c, start in enumerate(starts):
            ckpt = None if out is None else out / ("checkpoint.pt" if len(starts) == 1 else f"checkpoint-{c}.pt")
            if len(starts) == 1:
                sub_model, sub_source = model, source
            else:
                idx = slice(start, min(start + per_chunk, n_inst))
                sub_model = model.subset(idx)
                sub_source = source if source.n_instances == 1 else source.subset(idx)
                if rng0 is not None:
                    source.set_state(rng0)
                bar.reset()
            hist, secs = _train_chunk(sub_model, sub_source, config, ckpt, resume, bar)
            histories.append(hist)
            seconds += secs
            if sub_model is not model:
                model.load_instances(idx, sub_model)
    final = evaluate(model, source, config.eval_samples)
    result = TrainResult(
        model=model,
        final_loss=final.float().cpu(),
        history=_merge_histories(histories),
        train_seconds=seconds,
        peak_memory_bytes=_peak_memory(dev),
        device=str(dev),
        chunks=len(starts),
    )
    result.metrics = {
        "loss": result.final_loss.tolist(),
        "train_seconds": result.train_seconds,
        "device": result.device,
        "peak_memory_bytes": result.peak_memory_bytes,
        "peak_memory_scope": "cuda max_memory_allocated" if dev.type == "cuda" else "process max RSS",
        "instance_chunks": result.chunks,
        "steps": config.steps,
    }
    if metrics is not None:
        result.metrics.update(metrics(model))
    if out is not None:
        save_weights(out / "model.safetensors", model)
        write_json(out / "history.json", result.history)
        write_json(out / "metrics.json", result.metrics)
    return result


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
