"""Memory planning: how many instances train at once (chunking) and how the final
evaluation is batched, from a generous per-instance estimate against half the free memory."""
from __future__ import annotations

import resource

import torch

from ..protocols import MemoryHint, StreamSource, TrainableModel
from .config import TrainConfig


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
