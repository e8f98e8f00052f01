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
"""
from __future__ import annotations

import math
import resource
import time
from contextlib import closing, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from tqdm.auto import tqdm

from .._validate import check_choice, check_float, check_int, check_nonneg, check_positive
from .accel.fused import FUSED_STEP_MODES, FusedTMSStep, use_fused_step
from .accel.graphs import CUDA_GRAPH_MODES, WARMUP_STEPS, GraphedStep, side_stream, use_cuda_graph
from .accel.precision import MATMUL_PRECISIONS, GradDtypeGuard, bf16_grad_error, check_bf16, matmul_precision
from ..data.activations import as_source
from ..data.features import check_compatible
from .datathread import DATA_THREAD_MODES, BlockFeed, check_data_thread, step_threads, use_data_thread
from ..protocols import (
    MODEL_MEMBERS,
    STREAM_SOURCE_MEMBERS,
    AfterStep,
    AttachesOptimizer,
    BeforeStep,
    MemoryHint,
    Source,
    StreamSource,
    TrainableModel,
    missing_members,
)
from .runs import (
    RunFolderError,
    check_rng_device,
    check_writable_dir,
    load_checkpoint,
    lock_run_folder,
    prepare_new_run,
    rng_state_to_cpu,
    save_checkpoint,
    save_weights,
    settings_diff,
    write_json,
)

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
    matmul_precision: str = "fp32"
    """Matmul arithmetic of the training steps: fp32 (IEEE, the reference), tf32 (CUDA
    TensorFloat-32 cores; a no-op on the CPU) or bf16 (autocast to bfloat16, on CUDA or the
    CPU). Parameters, Adam state and the final evaluation stay fp32."""
    cuda_graph: str = "off"
    """Replay each training step as one CUDA graph: off; on (an error where it cannot be
    done: on the CPU, or a model with step hooks such as an SAE); auto (on for hook-free
    models with small batches on CUDA, off on the CPU)."""
    fused_step: str = "off"
    """Take the steps of relu-output and linear toy models through one torch.compile'd
    function (forward, hand-derived gradient and Adam; toymodels.accel.fused): off; on
    (compiled for the CPU too; an error for other models or bf16); auto (on for those
    models on CUDA). Same losses as the reference to float rounding, not bit for bit."""
    data_thread: str = "auto"
    """Draw the next block of data on a second CPU thread while the current one trains
    (toymodels.datathread; same batches either way): off; on (CPU only); auto (on the CPU
    with two or more torch threads, one of which goes to the data, for batches of 2^18
    floats or more)."""

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
        check_choice("matmul_precision", self.matmul_precision, MATMUL_PRECISIONS)
        check_choice("cuda_graph", self.cuda_graph, CUDA_GRAPH_MODES)
        check_choice("fused_step", self.fused_step, FUSED_STEP_MODES)
        check_choice("data_thread", self.data_thread, DATA_THREAD_MODES)
        if self.fused_step == "on" and self.cuda_graph == "on":
            raise ValueError("fused_step = 'on' and cuda_graph = 'on' exclude each other (one path takes the steps); "
                             "set one of them to 'auto' or 'off'")

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
    """The loss or parameters became NaN/inf; the last good checkpoint is kept.

    ``step`` (the step at which it was seen), ``instances`` (indices into the whole model,
    not the chunk) and ``checkpoint`` (the kept checkpoint, or None). The message is one line.
    """

    def __init__(self, message: str, step: int, instances: list[int], checkpoint: Path | None) -> None:
        super().__init__(" ".join(message.split()))
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
    converged: torch.Tensor | None = None
    """(I,) bool: False where the final loss is not finite or more than
    ``NONCONVERGENCE_FACTOR`` times the loss at initialisation (see :func:`converged_instances`)."""
    initial_loss: torch.Tensor | None = None
    """(I,) the training loss of the first step (the initial weights on the first batch)."""


NONCONVERGENCE_FACTOR = 10.0
"""An instance whose final loss exceeds this multiple of its initial loss did not converge."""


def converged_instances(initial_loss: torch.Tensor | None, final_loss: torch.Tensor) -> torch.Tensor:
    """(I,) bool: the final loss is finite and at most ``NONCONVERGENCE_FACTOR`` times the
    training loss of the first step, taken at the initial weights (a run whose loss grew
    tenfold — a learning rate far too large — did not converge, even with nothing NaN)."""
    ok = torch.isfinite(final_loss)
    if initial_loss is not None:
        ok &= ~(final_loss > NONCONVERGENCE_FACTOR * initial_loss.to(final_loss.dtype).abs())
    return ok


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


def _params_per_instance(model: TrainableModel) -> int:
    n_inst = max(1, int(model.n_instances))
    return sum(p.numel() for p in model.parameters()) // n_inst


def _activation_width(model: TrainableModel) -> int:
    if isinstance(model, MemoryHint):
        return int(model.activation_width)
    return int(8 * _params_per_instance(model) ** 0.5)


def bytes_per_instance(model: TrainableModel, batch_size: int) -> int:
    """A generous estimate of one instance's training footprint: activations and their
    gradients (``activation_width`` floats per sample, twice) plus parameters, gradients and
    the two Adam moments."""
    return 4 * (2 * batch_size * _activation_width(model) + 4 * _params_per_instance(model))


def _memory_budget(device: torch.device) -> int:
    return int(0.5 * available_memory_bytes(device))


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} TiB"  # pragma: no cover


def _fit_instances(model: TrainableModel, batch_size: int, budget: int) -> int:
    """How many instances train at ``batch_size`` within ``budget`` bytes (at least 1)."""
    return max(1, min(int(model.n_instances), int(budget // bytes_per_instance(model, batch_size))))


def instances_per_chunk(model: TrainableModel, config: TrainConfig, device: torch.device) -> int:
    """How many instances train at once: as many as fit half the free memory on ``device``,
    at most ``config.max_instances_per_chunk``. Raises ValueError naming ``batch_size``
    when not even one instance fits."""
    budget = _memory_budget(device)
    per = bytes_per_instance(model, config.batch_size)
    if per > budget:
        width, params = _activation_width(model), _params_per_instance(model)
        max_batch = int((budget / 4 - 4 * params) // (2 * width))
        hint = (
            f"lower batch_size (--batch-size) to at most about {max_batch}"
            if max_batch >= 1
            else "the model's parameters alone do not fit; use a smaller model"
        )
        raise ValueError(
            f"batch_size = {config.batch_size} does not fit in memory: one instance needs about {_fmt_bytes(per)} "
            f"to train but {_fmt_bytes(budget)} (half the free memory on {device.type}) is available; {hint}"
        )
    fit = _fit_instances(model, config.batch_size, budget)
    if config.max_instances_per_chunk is not None:
        fit = min(fit, config.max_instances_per_chunk)
    return fit


def eval_plan(
    model: TrainableModel, config: TrainConfig, device: torch.device, source: StreamSource | None = None
) -> tuple[int, int]:
    """(batch size, instances at once) of the final evaluation.

    The batch is min(8192, eval_samples), halved while one instance's activations, or the
    data a training chunk samples at once (12 bytes per value: the batch and the sampler's
    temporaries; a per-instance ``source`` only), would not fit half the budget. It depends
    on the memory and the model, never on ``max_instances_per_chunk``, so chunking does not
    change any instance's final loss. The instances are then evaluated as many at a time
    as fit (:func:`evaluate` with ``max_instances``)."""
    budget = _memory_budget(device)
    chunk = _fit_instances(model, config.batch_size, budget)  # the largest training chunk memory allows
    data = 12 * int(source.dim) if source is not None and int(source.n_instances) > 1 else 0
    batch = min(EVAL_BATCH, config.eval_samples)
    while batch > 1 and (2 * bytes_per_instance(model, batch) > budget or 2 * chunk * batch * data > budget):
        batch //= 2
    return batch, _fit_instances(model, batch, budget // 2)


EVAL_BATCH = 8192


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


@dataclass(frozen=True)
class _Hooks:
    """The optional hooks a model implements, looked up once (not on every step)."""

    before: Callable[..., Any] | None
    after: Callable[..., Any] | None

    @classmethod
    def of(cls, model: TrainableModel) -> "_Hooks":
        return cls(
            model.before_optimizer_step if isinstance(model, BeforeStep) else None,
            model.after_optimizer_step if isinstance(model, AfterStep) else None,
        )


def optimizer_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    step: int,
    params: list[torch.nn.Parameter] | None = None,
    hooks: _Hooks | None = None,
) -> torch.Tensor:
    """One training step exactly as :func:`train` takes it: clear the gradients, fill them
    with ``model.loss_and_grad(x)``, call ``before_optimizer_step(step)`` if the model has it
    (:class:`~toymodels.protocols.BeforeStep`), step the optimizer, then
    ``after_optimizer_step(step, x)`` (:class:`~toymodels.protocols.AfterStep`).
    Returns the (I,) losses."""
    if hooks is None:
        hooks = _Hooks.of(model)
    for p in model.parameters() if params is None else params:
        p.grad = None
    loss = model.loss_and_grad(x)
    if hooks.before is not None:
        hooks.before(step)
    optimizer.step()
    if hooks.after is not None:
        hooks.after(step, x)
    return loss


def _diverged(
    bad_instances: list[int], step: int, lr: float, ckpt: Path | None, good_step: int | None, offset: int
) -> TrainingDiverged:
    inst = [i + offset for i in bad_instances]
    kept = (
        f"the last good checkpoint (step {good_step}) is kept at {ckpt}"
        if ckpt is not None and good_step is not None
        else "no checkpoint was written before it (give the run a folder and checkpoint_every)"
    )
    return TrainingDiverged(
        f"training diverged: the loss became NaN/inf at step {step} in instance(s) {inst[:10]}"
        f"{' ...' if len(inst) > 10 else ''}; {kept}. Lower the learning rate (now {lr:.3g}) "
        "or check the data for NaN.",
        step,
        inst,
        ckpt if good_step is not None else None,
    )


def _check_finite(loss: torch.Tensor, step: int, lr: float, ckpt: Path | None, good_step: int | None, offset: int = 0) -> None:
    bad = ~torch.isfinite(loss)
    if bool(bad.any()):
        raise _diverged(bad.nonzero().flatten().tolist(), step, lr, ckpt, good_step, offset)


def _nonfinite_param_instances(params: list[torch.nn.Parameter], n_inst: int) -> list[int]:
    """Instances with a NaN/inf parameter entry ([0..I) when a parameter has no instance axis)."""
    bad = torch.zeros(n_inst, dtype=torch.bool)
    for p in params:
        fin = torch.isfinite(p.detach())
        if p.ndim >= 1 and p.shape[0] == n_inst:
            bad |= ~fin.reshape(n_inst, -1).all(dim=1).cpu()
        elif not bool(fin.all()):
            bad[:] = True
    return bad.nonzero().flatten().tolist()


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


def _batch_elements(source: StreamSource, config: TrainConfig) -> int:
    """Floats in one step's batch (instances × batch × width)."""
    return max(1, int(source.n_instances)) * config.batch_size * int(source.dim)


def _then(first: Callable[[], Any], hook: Callable[..., Any] | None) -> Callable[..., Any]:
    def before(step: int) -> None:
        first()
        if hook is not None:
            hook(step)

    return before


@contextmanager
def _restored(guard: GradDtypeGuard | None) -> Iterator[None]:
    try:
        yield
    finally:
        if guard is not None:
            guard.restore()


def _checkpoint_name(chunk: _Chunk) -> str:
    return "checkpoint.pt" if chunk.n_chunks == 1 else f"checkpoint-{chunk.index}.pt"


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
) -> tuple[list[dict[str, Any]], float, torch.Tensor | None]:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(params, config)
    if isinstance(model, AttachesOptimizer):  # e.g. an SAE resetting the Adam moments of resampled latents
        model.attach_optimizer(opt)
    hooks = _Hooks.of(model)
    dev = _device_of(model)
    step0, history, good_step, initial = 0, [], None, None
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        source.set_state(rng_state_to_cpu(state["rng"]))
        step0, history, good_step = int(state["step"]), list(state["history"]), int(state["step"])
        initial = state.get("initial_loss")
        bar.update(step0)
    # Data for steps [j·k, (j+1)·k) is drawn in one call at the block's start; a checkpoint
    # stores the RNG state from before the block holding its next step, so resume redraws
    # that block and skips into it, exactly as an uninterrupted run.
    block, block_idx, block_state = None, -1, source.get_state()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    lr_now = None
    # GPU options: the matmul precision for the steps (bf16 gradients of hand-derived models
    # cast back to fp32 before the update), and graph replay of whole steps after a few
    # eager warm-up steps (see toymodels.accel.graphs; the data, the NaN guard every
    # log_every steps and the checkpoints stay as in the eager loop).
    guard = GradDtypeGuard(params) if config.matmul_precision == "bf16" else None
    if guard is not None:
        hooks = _Hooks(_then(guard.fix, hooks.before), hooks.after)
    fused_on = use_fused_step(config.fused_step, model, dev, config.matmul_precision)
    graph_on = not fused_on and use_cuda_graph(config.cuda_graph, model, opt, dev, _batch_elements(source, config))
    graphed, fused, warm_until = None, None, step0 + WARMUP_STEPS
    n_blocks = -(-config.steps // k) - step0 // k  # blocks this call draws (the first may be resumed into)
    threaded = use_data_thread(config.data_thread, dev, n_blocks=n_blocks, block_elements=k * _batch_elements(source, config),
                               precision=config.matmul_precision, compiled=fused_on)
    feed = BlockFeed(source, config.batch_size, k, config.steps, threaded)
    with matmul_precision(config.matmul_precision, dev), _restored(guard), step_threads(threaded), closing(feed):
        for step in range(step0, config.steps):
            lr = config.lr_at(step)
            if lr != lr_now:
                for g in opt.param_groups:
                    g["lr"] = lr
                lr_now = lr
            if step // k != block_idx:
                block_idx = step // k
                block_state, block = feed.take(block_idx)  # drawn now, or on the data thread during the last block
                if fused_on and block.shape[1] < config.batch_size * k:
                    # the last, shorter block goes into a full-length buffer, so its slices have
                    # the strides the fused step was compiled for (other strides recompile)
                    full = block.new_empty(block.shape[0], config.batch_size * k, block.shape[2])
                    full[:, : block.shape[1]] = block
                    block = full
            off = (step - block_idx * k) * config.batch_size
            x = block[:, off : off + config.batch_size] if k > 1 else block
            try:
                if fused_on and fused is None and step > step0:  # the optimizer state exists: share it
                    fused = FusedTMSStep(model, config, compile=True, optimizer=opt)
                if graph_on and graphed is None and step >= warm_until:
                    graphed = GraphedStep(model, opt, x, lr, None if guard is None else guard.fix)
                if fused is not None:
                    loss = fused(x, lr)
                elif graphed is not None:
                    loss = graphed(x, lr)  # one replay; read only at log steps, below
                elif graph_on:
                    with side_stream(dev):  # warm-up before capture, off the capturing stream
                        loss = optimizer_step(model, opt, x, step, params, hooks).clone()
                else:
                    loss = optimizer_step(model, opt, x, step, params, hooks)
            except RuntimeError as e:
                if guard is not None and "dtype" in str(e):
                    raise bf16_grad_error(model, e) from None
                raise
            if step == 0:
                initial = loss.detach().float().cpu()
            done = step + 1
            if done % config.log_every == 0 or done == config.steps:
                loss_cpu = loss.detach().float().cpu()
                _check_finite(loss_cpu, done, lr, ckpt, good_step, chunk.start)
                history.append({"step": done, "lr": lr, "loss": loss_cpu.tolist()})
                bar.update(done - bar.n if bar.n < done else 0)
                bar.set_postfix(loss=f"{loss_cpu.mean().item():.4g}", refresh=False)
            if ckpt is not None and config.checkpoint_every and (done % config.checkpoint_every == 0 or done == config.steps):
                bad = _nonfinite_param_instances(params, int(model.n_instances))
                if bad:
                    raise _diverged(bad, done, lr, ckpt, good_step, chunk.start)
                save_checkpoint(ckpt, {
                    "step": done,
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "rng": feed.state_before_next() if done % k == 0 or done == config.steps else block_state,
                    "history": history,
                    "initial_loss": initial,
                    "run": record,
                    "chunk": chunk.record(),
                    "device": dev.type,
                })
                good_step = done
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return history, time.perf_counter() - t0, initial


def _resume_states(
    out: Path, record: dict[str, Any], config: TrainConfig, n_inst: int, device: torch.device
) -> tuple[int, dict[int, dict[str, Any]]]:
    """Check the checkpoints of ``out`` against the new run's settings and return (the
    chunking they were written with, {chunk index: checkpoint}). Raises RunFolderError,
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
    for path in [single] if single.exists() else chunked:
        state = load_checkpoint(path, "cpu")
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


_ACCEL_DEFAULTS = {"matmul_precision": "fp32", "cuda_graph": "off", "fused_step": "off", "data_thread": "auto"}


def train_record(config: TrainConfig) -> dict[str, Any]:
    """The ``train`` settings of a run record: every field, except the speed options
    (``matmul_precision``, ``cuda_graph``, ``fused_step``, ``data_thread``) at their defaults — so run folders written before
    they existed resume, and a default run's config.json is unchanged."""
    rec = asdict(config)
    for k, v in _ACCEL_DEFAULTS.items():
        if rec.get(k) == v:
            del rec[k]
    return rec


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
    with lock_run_folder(out) if out is not None else nullcontext():
        if out is not None:
            if resume:
                per_chunk, states = _resume_states(out, record, config, n_inst, dev)
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
        if metrics is not None:
            result.metrics.update(metrics(model))
        if out is not None:
            save_weights(out / "model.safetensors", model)
            write_json(out / "history.json", result.history)
            write_json(out / "metrics.json", result.metrics)
    return result


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
    histories, losses, initials, seconds = [], [], [], 0.0
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
            hist, secs, initial = _train_chunk(sub_model, sub_source, config, ckpt, states.pop(c, None), k, bar, record, chunk)
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
