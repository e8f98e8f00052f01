"""The trainer, its run folders and its accelerators.

- :mod:`.loop` — :func:`train`: one loop for every batched model on any source of batches.
- :mod:`.config`, :mod:`.memory`, :mod:`.optim`, :mod:`.divergence` — its settings, memory
  planning, optimizer and reference step, NaN guard.
- :mod:`.steps` — how a step is taken (eager, fused, graph-replayed), chosen once per chunk.
- :mod:`.feed` — where the data is drawn (inline, the data thread, or measured first).
- :mod:`.runs` — run folders: atomic files, locks, checkpoints, weights.
- :mod:`.datathread` — the data thread (the next block drawn while this one trains).
- :mod:`.accel` — GPU options: matmul precision, graph-replayed and fused steps.
"""
from .loop import (
    EVAL_BATCH,
    NONCONVERGENCE_FACTOR,
    OPTIMIZERS,
    SCHEDULES,
    TrainConfig,
    TrainingDiverged,
    TrainResult,
    best_of,
    converged_instances,
    evaluate,
    make_optimizer,
    optimizer_step,
    prefetch_steps,
    train,
    train_record,
)

__all__ = [
    "EVAL_BATCH",
    "NONCONVERGENCE_FACTOR",
    "OPTIMIZERS",
    "SCHEDULES",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "best_of",
    "converged_instances",
    "evaluate",
    "make_optimizer",
    "optimizer_step",
    "prefetch_steps",
    "train",
    "train_record",
]
