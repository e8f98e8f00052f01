"""``toymodels export``: hand a trained SAE run to another library.

    toymodels export runs/sae-k --format saelens --out exported/

writes, for every instance i of the SAE run, ``exported/instance_{i:03d}/cfg.json`` and
``sae_weights.safetensors`` in SAELens 6.x's layout (``sae_lens.SAE.load_from_disk`` loads
each; :func:`toymodels.sae.from_saelens` loads it back). The mapping of architectures and
what is refused: :mod:`toymodels.sae.saelens`. Bad input (not an SAE run, an architecture
SAELens cannot express, an unusable --out) exits 2 with one line, before anything is written.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from . import _common

FORMATS = ("saelens",)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a trained SAE run (e.g. to SAELens)",
        description="Write every instance of an SAE run folder in another library's format.",
        epilog="Exit codes: 0 exported; 2 bad input: not an SAE run folder, an architecture without an "
        "equivalent, or an unusable --out (one line, nothing written).",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by `toymodels sae`")
    p.add_argument("--format", choices=FORMATS, default="saelens", help="the output format (default saelens)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output folder; instance i goes to DIR/instance_{i:03d}/ (cfg.json, sae_weights.safetensors)")
    p.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from ..train.runs import load_model
    from ..sae.saelens import SAELENS_ARCH, export_saelens

    run = Path(args.run_dir)
    model = load_model(run, "cpu")
    if getattr(model, "family", None) != "sae":
        raise ValueError(f"{run} holds a {getattr(model, 'family', '?')!r} model, not an SAE run (export takes `toymodels sae` runs)")
    arch = model.config.arch
    if arch not in SAELENS_ARCH:
        raise ValueError(f"arch {arch!r} of {run} has no SAELens equivalent; exportable: {', '.join(sorted(SAELENS_ARCH))}")
    out = _common.check_output_dir(args.out)
    dirs = export_saelens(model, out)
    print(f"exported {len(dirs)} {arch} SAE instance(s) (SAELens architecture {SAELENS_ARCH[arch]!r}) to {out}")
    return 0


__all__ = ["FORMATS", "add_parser", "run_export"]
