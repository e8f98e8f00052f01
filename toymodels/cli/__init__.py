"""``toymodels`` command line: ``toymodels tms ...`` trains a sweep of toy models, ``toymodels
sae ...`` a sweep of sparse autoencoders, each into a run folder (``toymodels --help`` lists
every subcommand).

Flags are generated from the config dataclasses (:mod:`toymodels.cli.configargs`). Exit codes:
0 done; 1 training diverged (one line with the step, the instances and the checkpoint kept);
2 bad input, an unusable output path, a damaged run folder or not enough memory (one line,
before any work where it can be known in advance; a misspelt flag or choice gets a "did you
mean"); 130 interrupted (Ctrl-C: one line naming the checkpoint and the command that resumes);
141 the reader of our output went away (``toymodels ... | head``: silent).
"""
from __future__ import annotations

import argparse
import difflib
import os
import re
import shlex
import sys
from pathlib import Path
from typing import NoReturn, Sequence

from .. import __version__
from . import export, plot, sae, sweep, tms
from ._common import check_output_dir, check_output_file, sweep_probabilities, sweep_values

SUBCOMMANDS = [tms.add_parser, sae.add_parser, sweep.add_parser, export.add_parser, plot.add_parser]


class CLIParser(argparse.ArgumentParser):
    """argparse with one-line errors: no usage dump before the line that matters, and a
    "did you mean" for a misspelt flag, subcommand or choice (subparsers inherit the class)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {_with_suggestion(message)} (see {self.prog} --help)\n")

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            sub = _subparser(self, getattr(ns, "command", None))
            (sub or self).error(_unrecognized(sub or self, extras))
        return ns


def _subparser(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return action.choices[command]
    return None


def _unrecognized(parser: argparse.ArgumentParser, extras: Sequence[str]) -> str:
    """'unrecognized argument(s) ...', with the nearest flag of ``parser`` for each misspelt one."""
    flags = [o for a in parser._actions for o in a.option_strings if o.startswith("--")]
    hints = []
    for arg in extras:
        if arg.startswith("-"):
            near = difflib.get_close_matches(arg.split("=", 1)[0], flags, n=1, cutoff=0.6)
            if near:
                hints.append(f"did you mean {near[0]} for {arg}?")
    noun = "argument" if len(extras) == 1 else "arguments"
    return f"unrecognized {noun}: {' '.join(extras)}" + (f" ({'; '.join(hints)})" if hints else "")


_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)")


def _with_suggestion(message: str) -> str:
    m = _INVALID_CHOICE.search(message)
    if m:
        choices = [c.strip().strip("'") for c in m.group(2).split(",")]
        near = difflib.get_close_matches(m.group(1), choices, n=1, cutoff=0.5)
        if near:
            return f"{message}; did you mean {near[0]!r}?"
    return message


def build_parser() -> argparse.ArgumentParser:
    parser = CLIParser(
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
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _main(argv)
    except BrokenPipeError:  # `toymodels ... | head`: the reader left; say nothing more
        _silence_stdout()
        return 141


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush does not raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout without a file descriptor (e.g. captured)
        pass


def interrupted_message(prog: str, argv: Sequence[str], out: str | Path | None) -> str:
    """The one line printed on Ctrl-C: the checkpoint kept in the run folder ``out`` and the
    exact command that resumes from it (or, without a checkpoint, the one that starts again)."""
    if out is None:
        return f"{prog}: interrupted"
    out = Path(out)
    base = [a for a in argv if a not in ("--resume", "--overwrite")]
    ckpts = sorted(out.glob("checkpoint*.pt")) if out.is_dir() else []
    if ckpts:
        names = ", ".join(str(c) for c in ckpts[:3]) + (" ..." if len(ckpts) > 3 else "")
        return (f"{prog}: interrupted; the last checkpoint is kept in {names}; resume with: "
                f"{shlex.join(['toymodels', *base, '--resume'])}")
    again = base + (["--overwrite"] if (out / "config.json").exists() else [])
    return (f"{prog}: interrupted before the first checkpoint (see --checkpoint-every), nothing to resume; "
            f"start again with: {shlex.join(['toymodels', *again])}")


def _main(argv: list[str]) -> int:
    from ..train.loop import TrainingDiverged

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    prog = f"toymodels {args.command}"
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        out = getattr(args, "out", None) if args.command in ("tms", "sae") else None
        if args.command == "sweep":
            print(f"{prog}: interrupted; finished points are kept; rerun the same command to finish the rest: "
                  f"{shlex.join(['toymodels', *argv])}", file=sys.stderr)
        else:
            print(interrupted_message(prog, argv, out), file=sys.stderr)
        return 130
    except TrainingDiverged as e:  # the guard kept the last good checkpoint: say where, in one line
        ckpt = f"kept checkpoint {e.checkpoint}" if e.checkpoint else "no checkpoint kept"
        print(f"{prog}: error: training diverged (loss or weights not finite) at step {e.step} in instance(s) "
              f"{list(e.instances)}; {ckpt}; try a smaller --lr", file=sys.stderr)
        return 1
    except ValueError as e:  # bad input, a damaged run folder (RunFolderError): one clear line, no traceback
        print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as e:  # torch's OutOfMemoryError and the CPU allocator's are RuntimeErrors
        if not isinstance(e, MemoryError) and not _out_of_memory(e):
            raise
        print(f"{prog}: error: out of memory ({_one_line(e)[:200]}); lower --batch-size or --instances, "
              f"or set --max-instances-per-chunk", file=sys.stderr)
        return 2


def _out_of_memory(e: BaseException) -> bool:
    return isinstance(e, torch_oom()) or "DefaultCPUAllocator" in str(e) or "out of memory" in str(e)


def torch_oom() -> type[BaseException]:
    import torch

    return getattr(torch, "OutOfMemoryError", MemoryError)


__all__ = ["build_parser", "check_output_dir", "check_output_file", "main", "sweep_probabilities", "sweep_values"]
