"""``toymodels`` command line: ``toymodels tms ...`` trains a sweep of toy models, ``toymodels
sae ...`` a sweep of sparse autoencoders, each into a run folder (``toymodels --help`` lists
every subcommand).

Flags are generated from the config dataclasses (:mod:`toymodels.configargs`). Exit codes:
0 done; 1 training diverged (one line with the step, the instances and the checkpoint kept);
2 bad input, an unusable output path, a damaged run folder or not enough memory (one line,
before any work where it can be known in advance).
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from .. import __version__
from . import export, sae, sweep, tms
from ._common import check_output_dir, check_output_file, sweep_probabilities, sweep_values

SUBCOMMANDS = [tms.add_parser, sae.add_parser, sweep.add_parser, export.add_parser]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="toymodels",
        description="Toy models of superposition and sparse autoencoders: batched sweeps into run folders.",
    )
    parser.add_argument("--version", action="version", version=f"toymodels {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def main(argv: Sequence[str] | None = None) -> int:
    from ..train.loop import TrainingDiverged

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    prog = f"toymodels {args.command}"
    try:
        return int(args.func(args) or 0)
    except TrainingDiverged as e:  # the guard kept the last good checkpoint: say where, in one line
        ckpt = f"kept checkpoint {e.checkpoint}" if e.checkpoint else "no checkpoint kept"
        print(f"{prog}: error: training diverged (loss or weights not finite) at step {e.step} in instance(s) "
              f"{list(e.instances)}; {ckpt}; try a smaller --lr", file=sys.stderr)
        return 1
    except ValueError as e:  # bad input, a damaged run folder (RunFolderError): one clear line, no traceback
        print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except (MemoryError, torch_oom()) as e:
        print(f"{prog}: error: out of memory ({_one_line(e)[:200]}); lower --batch-size or --instances, "
              f"or set --max-instances-per-chunk", file=sys.stderr)
        return 2


def torch_oom() -> type[BaseException]:
    import torch

    return getattr(torch, "OutOfMemoryError", MemoryError)


__all__ = ["build_parser", "check_output_dir", "check_output_file", "main", "sweep_probabilities", "sweep_values"]
