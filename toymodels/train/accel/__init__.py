"""GPU paths: matmul precision, graph-replayed steps, fused toy-model steps.

Nothing here imports Triton, and nothing needs CUDA at import time: CUDA-only pieces
(:class:`~toymodels.accel.graphs.GraphedStep`) touch ``torch.cuda`` only when used, and
``torch.compile`` (the fused step) brings its own code generator. On the CPU every option
either works (fp32, bf16 autocast, the fused step eager or compiled) or says why not
(``cuda_graph = "on"``). The trainer's options: ``TrainConfig.matmul_precision``,
``cuda_graph`` and ``fused_step``.

- :mod:`.precision` — fp32 (reference) / tf32 / bf16 matmuls for a run.
- :mod:`.graphs` — one CUDA graph per training step of a tiny model.
- :mod:`.fused` — a fused forward + hand gradient + Adam step for tied-weight toy models.
"""
from .fused import FUSED_KINDS, FUSED_STEP_MODES, FusedTMSStep, tms_adam_step, use_fused_step
from .graphs import CUDA_GRAPH_MODES, GraphedStep, functional_step, use_cuda_graph
from .precision import MATMUL_PRECISIONS, matmul_precision

__all__ = [
    "CUDA_GRAPH_MODES",
    "FUSED_KINDS",
    "FUSED_STEP_MODES",
    "FusedTMSStep",
    "GraphedStep",
    "MATMUL_PRECISIONS",
    "functional_step",
    "matmul_precision",
    "tms_adam_step",
    "use_cuda_graph",
    "use_fused_step",
]
