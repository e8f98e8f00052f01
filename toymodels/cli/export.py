"""``toymodels export``: hand a trained SAE run to another library.

    toymodels export runs/sae-k --format saelens --out exported/

writes, for every instance i of the SAE run, ``exported/instance_{i:03d}/cfg.json`` and
``sae_weights.safetensors`` in SAELens 6.x's layout (``sae_lens.SAE.load_from_disk`` loads
each; :func:`toymodels.sae.from_saelens` loads it back). The mapping of architectures and
what is refused: :mod:`toymodels.sae.saelens`. Bad input (not an SAE run, an architecture
SAELens cannot express, an unusable --out) exits 2 with one line, before anything is written.

Refused too, with one line: an --out that already holds files, unless ``--overwrite`` (which
removes the old export first; a folder holding anything but an export is refused), so an
output folder never mixes two runs; and a run whose weights are older than its config — a
run that did not finish (metrics.json missing, or a resume with more steps killed before
the end: config.json asks for more steps than metrics.json records). Finish it with
``--resume`` first; nothing is exported from a checkpoint.
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
    p.add_argument("--overwrite", action="store_true",
                   help="replace an export already in --out (its instance folders are removed first)")
    p.set_defaults(func=run_export)


def check_finished(run: Path) -> None:
    """ValueError (one line) unless ``run`` holds a finished run whose model.safetensors
    belongs to its config.json: metrics.json (the trainer's last file) present and recording
    the steps config.json asks for. A resume with more steps rewrites config.json first and
    the weights and metrics last, so a resume killed mid-way fails this check."""
    from ..train.runs import read_json

    cfg_path, m_path = run / "config.json", run / "metrics.json"
    if not cfg_path.is_file():
        return  # load_model names the missing config.json
    if not m_path.is_file():
        raise ValueError(f"{run}: the run did not finish (metrics.json is missing), so model.safetensors may be older "
                         "than config.json; finish it with --resume before exporting")
    record, metrics = read_json(cfg_path), read_json(m_path)
    want = record.get("train", {}).get("steps") if isinstance(record, dict) and isinstance(record.get("train"), dict) else None
    done = metrics.get("steps") if isinstance(metrics, dict) else None
    if want is not None and done is not None and want != done:
        raise ValueError(f"{run}: its weights are from a run of {done} steps but config.json asks for {want} "
                         "(a resumed run that did not finish); finish it with --resume before exporting")


def run_export(args: argparse.Namespace) -> int:
    from ..train.runs import load_model
    from ..sae.saelens import SAELENS_ARCH, export_saelens

    run = Path(args.run_dir)
    model = load_model(run, "cpu")
    check_finished(run)
    if getattr(model, "family", None) != "sae":
        raise ValueError(f"{run} holds a {getattr(model, 'family', '?')!r} model, not an SAE run (export takes `toymodels sae` runs)")
    arch = model.config.arch
    if arch not in SAELENS_ARCH:
        raise ValueError(f"arch {arch!r} of {run} has no SAELens equivalent; exportable: {', '.join(sorted(SAELENS_ARCH))}")
    out = _common.check_output_dir(args.out)
    dirs = export_saelens(model, out, overwrite=args.overwrite)
    print(f"exported {len(dirs)} {arch} SAE instance(s) (SAELens architecture {SAELENS_ARCH[arch]!r}) to {out}")
    return 0


__all__ = ["FORMATS", "add_parser", "check_finished", "run_export"]
