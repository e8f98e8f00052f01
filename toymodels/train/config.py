"""The trainer's settings: :class:`TrainConfig` (every field checked at construction) and
:func:`train_record`, the ``train`` part of a run record (what resume compares)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from .._validate import check_choice, check_float, check_int, check_nonneg, check_positive
from .accel.fused import FUSED_STEP_MODES
from .accel.graphs import CUDA_GRAPH_MODES
from .accel.precision import MATMUL_PRECISIONS
from .datathread import DATA_THREAD_MODES

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
    floats or more, from the block where timing the first blocks' draws and steps predicts
    a gain: toymodels.train.feed; the decision goes into checkpoints and metrics.json)."""

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
