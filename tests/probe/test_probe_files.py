"""Probe table (issue 20 items 2 and 3): hostile activation files and SAE exports.

Each case is a callable of a fresh folder and its expected outcome: ``Err(pattern)`` — a
ValueError whose message is one line matching ``pattern`` (and naming the file where the
case has one) — or ``Ok(check)`` — a result for which ``check`` holds. A case that crashes
another way, prints a traceback, returns a wrong result or kills the process is not ok.
Cases that could kill the process (a file truncated under a memory mapping: SIGBUS) run in
a subprocess with a timeout."""
from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from toymodels.cli import main
from toymodels.data.activations import Activations, save_activations
from toymodels.sae import SAEConfig, build_sae, export_saelens, from_saelens
from toymodels.train import TrainConfig, train
from toymodels.train.runs import save_weights, write_json

from tests.sae._helpers import moved_sae

ARCHS = ("relu", "topk", "batchtopk", "matryoshka", "jumprelu", "gated", "rescaled", "bound")


@dataclass(frozen=True)
class Err:
    pattern: str
    names_file: bool = True


@dataclass(frozen=True)
class Ok:
    check: Callable[[Any], bool] = lambda r: True


# ---------------------------------------------------------------------- activation files
def data(n: int = 40, d: int = 3, dtype: Any = np.float32) -> np.ndarray:
    return (np.arange(n * d).reshape(n, d) % 7 - 3).astype(dtype)


def npy_raw(p: Path, descr: str, shape: str, body: bytes = b"", fortran: bool = False) -> Path:
    head = f"{{'descr': {descr!r}, 'fortran_order': {fortran}, 'shape': {shape}, }}".encode()
    pad = 64 - (10 + len(head) + 1) % 64
    head = head + b" " * pad + b"\n"
    p.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(head)) + head + body)
    return p


def st_raw(p: Path, header: Any, body: bytes = b"", n: int | None = None) -> Path:
    h = json.dumps(header).encode()
    p.write_bytes(struct.pack("<Q", len(h) if n is None else n) + h + body)
    return p


def st_good_header(shape=(40, 3), dtype="F32", item=4, **over: Any) -> dict[str, Any]:
    info = {"dtype": dtype, "shape": list(shape), "data_offsets": [0, int(np.prod(shape)) * item]}
    info.update(over)
    return {"activations": info}


def opened(path: Path) -> Activations:
    return Activations(path, holdout=0.25)


def same_rows(expect: np.ndarray) -> Callable[[Activations], bool]:
    def check(src: Activations) -> bool:
        full = src._rows(torch.arange(src.n_rows))
        return src.n_rows == expect.shape[0] and torch.equal(full, torch.from_numpy(expect.astype(np.float32)))
    return check


def npy(dtype: Any, arr: np.ndarray | None = None) -> Callable[[Path], Any]:
    def make(t: Path) -> Any:
        a = data(dtype=dtype) if arr is None else arr
        np.save(t / "a.npy", a)
        return opened(t / "a.npy")
    return make


def stf(header: Any, body: bytes = b"", n: int | None = None) -> Callable[[Path], Any]:
    return lambda t: opened(st_raw(t / "a.safetensors", header, body, n))


def nraw(descr: str, shape: str, body: bytes = b"") -> Callable[[Path], Any]:
    return lambda t: opened(npy_raw(t / "a.npy", descr, shape, body))


def pt(obj_fn: Callable[[], Any]) -> Callable[[Path], Any]:
    def make(t: Path) -> Any:
        torch.save(obj_fn(), t / "a.pt")
        return opened(t / "a.pt")
    return make


def raw_file(name: str, content: bytes) -> Callable[[Path], Any]:
    def make(t: Path) -> Any:
        (t / name).write_bytes(content)
        return opened(t / name)
    return make


def cut(fmt: str, keep: float) -> Callable[[Path], Any]:
    def make(t: Path) -> Any:
        p = save_activations(t / f"a{fmt}", torch.from_numpy(data()))
        b = p.read_bytes()
        p.write_bytes(b[: int(len(b) * keep)])
        return opened(p)
    return make


F32 = data().tobytes()
ACT_CASES: list[tuple[str, Callable[[Path], Any], Any]] = []
for dt in (np.float16, np.float32, np.float64):
    ACT_CASES.append((f"npy-{np.dtype(dt).name}", npy(dt), Ok(same_rows(data(dtype=dt)))))
for dt in (np.longdouble, np.int8, np.int32, np.int64, np.uint8, np.bool_, np.complex64, np.complex128):
    ACT_CASES.append((f"npy-{np.dtype(dt).name}", npy(dt), Err("dtype")))
for be in (">f2", ">f4", ">f8"):
    ACT_CASES.append((f"npy-bigendian-{be}", npy(np.dtype(be)), Err("big-endian")))
ACT_CASES += [
    ("npy-fortran-order", npy(np.float32, np.asfortranarray(data())), Ok(same_rows(data()))),
    ("npy-1d", npy(np.float32, np.zeros(5, np.float32)), Err("shape")),
    ("npy-3d", npy(np.float32, np.zeros((4, 2, 2), np.float32)), Err("shape")),
    ("npy-0d", npy(np.float32, np.zeros((), np.float32)), Err("shape")),
    ("npy-no-rows", npy(np.float32, np.zeros((0, 3), np.float32)), Err("shape")),
    ("npy-one-row", npy(np.float32, np.zeros((1, 3), np.float32)), Err("shape")),
    ("npy-transposed", npy(np.float32, np.zeros((3, 40), np.float32)), Err("transposed")),
    ("npy-nan", npy(np.float32, np.where(np.arange(120).reshape(40, 3) == 50, np.nan, 1).astype(np.float32)), Err("row 16")),
    ("npy-inf-f16", npy(np.float16, np.where(np.arange(120).reshape(40, 3) == 7, np.inf, 1).astype(np.float16)), Err("row 2")),
    ("npy-structured", npy(None, np.zeros(40, dtype=[("a", "f4"), ("b", "f4")])), Err("dtype|shape")),
    ("npy-unicode", npy(None, np.array([["a", "b"]] * 4)), Err("dtype")),
    ("npy-object", npy(None, np.array([[1.0, None]] * 4, dtype=object)), Err("npy|dtype")),
    ("npy-negative-shape", nraw("<f4", "(-40, 3)", F32), Err("npy|shape")),
    ("npy-string-shape", nraw("<f4", "('40', 3)", F32), Err("npy|shape")),
    ("npy-float-shape", nraw("<f4", "(40.0, 3)", F32), Err("npy|shape")),
    ("npy-shape-larger-than-data", nraw("<f4", "(400, 3)", F32), Err("npy|truncated|shape")),
    ("npy-bad-descr", nraw("<q9", "(40, 3)", F32), Err("npy|dtype")),
    ("npy-longdouble-raw", nraw("<f16", "(40, 3)", F32 * 4), Err("dtype")),
    ("npy-empty-file", raw_file("a.npy", b""), Err("npy")),
    ("npy-garbage", raw_file("a.npy", b"not an array at all" * 10), Err("npy")),
    ("npy-header-only", lambda t: opened(npy_raw(t / "a.npy", "<f4", "(40, 3)")), Err("npy|truncated")),
    ("npy-truncated-half", cut(".npy", 0.5), Err("npy|truncated")),
    ("npy-truncated-header", cut(".npy", 0.05), Err("npy")),
]
for name, dt, item in (("F32", "F32", 4), ("F16", "F16", 2), ("BF16", "BF16", 2), ("F64", "F64", 8)):
    def mk(t: Path, dt=dt) -> Any:
        x = torch.from_numpy(data()).to({"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}[dt])
        save_activations(t / "a.safetensors", x)
        return opened(t / "a.safetensors")
    ACT_CASES.append((f"st-{name}", mk, Ok(same_rows(data()))))
for dt, item in (("I32", 4), ("I64", 8), ("U8", 1), ("BOOL", 1), ("F8_E4M3", 1), ("C64", 8)):
    ACT_CASES.append((f"st-{dt}", stf(st_good_header(dtype=dt, item=item), b"\0" * 120 * item), Err("dtype")))
ACT_CASES += [
    ("st-missing-data_offsets", stf({"activations": {"dtype": "F32", "shape": [40, 3]}}, F32), Err("header|data_offsets")),
    ("st-missing-dtype", stf({"activations": {"shape": [40, 3], "data_offsets": [0, 480]}}, F32), Err("header|dtype")),
    ("st-missing-shape", stf({"activations": {"dtype": "F32", "data_offsets": [0, 480]}}, F32), Err("header|shape")),
    ("st-negative-shape", stf(st_good_header(shape=(-40, -3)), F32), Err("shape|damaged")),
    ("st-negative-one-dim", stf({"activations": {"dtype": "F32", "shape": [-40, 3], "data_offsets": [0, 480]}}, F32), Err("shape|damaged")),
    ("st-string-shape", stf({"activations": {"dtype": "F32", "shape": ["40", "3"], "data_offsets": [0, 480]}}, F32), Err("shape")),
    ("st-word-shape", stf({"activations": {"dtype": "F32", "shape": ["forty", 3], "data_offsets": [0, 480]}}, F32), Err("shape")),
    ("st-float-shape", stf({"activations": {"dtype": "F32", "shape": [40.0, 3], "data_offsets": [0, 480]}}, F32), Err("shape")),
    ("st-shape-not-list", stf({"activations": {"dtype": "F32", "shape": 120, "data_offsets": [0, 480]}}, F32), Err("shape")),
    ("st-3d", stf(st_good_header(shape=(10, 4, 3)), F32), Err("shape")),
    ("st-1d", stf(st_good_header(shape=(120,)), F32), Err("shape")),
    ("st-offsets-reversed", stf({"activations": {"dtype": "F32", "shape": [40, 3], "data_offsets": [480, 0]}}, F32), Err("data_offsets|damaged")),
    ("st-offsets-beyond-file", stf({"activations": {"dtype": "F32", "shape": [40, 3], "data_offsets": [480, 960]}}, F32), Err("truncated|damaged")),
    ("st-offsets-one", stf({"activations": {"dtype": "F32", "shape": [40, 3], "data_offsets": [480]}}, F32), Err("data_offsets|damaged")),
    ("st-offsets-strings", stf({"activations": {"dtype": "F32", "shape": [40, 3], "data_offsets": ["0", "480"]}}, F32), Err("data_offsets|damaged")),
    ("st-offsets-negative", stf({"activations": {"dtype": "F32", "shape": [40, 3], "data_offsets": [-480, 0]}}, F32), Err("data_offsets|damaged")),
    ("st-truncated-body", stf(st_good_header(), F32[:200]), Err("truncated")),
    ("st-header-length-huge", stf(st_good_header(), F32, n=2**62), Err("safetensors")),
    ("st-header-length-past-file", stf(st_good_header(), F32, n=10_000), Err("safetensors")),
    ("st-header-not-json", raw_file("a.safetensors", struct.pack("<Q", 5) + b"{nope" + F32), Err("safetensors")),
    ("st-header-list", stf([1, 2, 3], F32), Err("safetensors|header")),
    ("st-header-null", stf(None, F32), Err("safetensors|header")),
    ("st-info-not-dict", stf({"activations": [1, 2]}, F32), Err("header")),
    ("st-dtype-null", stf({"activations": {"dtype": None, "shape": [40, 3], "data_offsets": [0, 480]}}, F32), Err("dtype")),
    ("st-dtype-int", stf({"activations": {"dtype": 5, "shape": [40, 3], "data_offsets": [0, 480]}}, F32), Err("dtype")),
    ("st-wrong-key", lambda t: (save_file({"x": torch.ones(4, 2)}, str(t / "a.safetensors")), opened(t / "a.safetensors"))[1], Err("no tensor named")),
    ("st-empty-file", raw_file("a.safetensors", b""), Err("safetensors")),
    ("st-seven-bytes", raw_file("a.safetensors", b"\x01" * 7), Err("safetensors")),
    ("st-truncated-half", cut(".safetensors", 0.5), Err("truncated|safetensors")),
    ("pt-tensor", pt(lambda: torch.from_numpy(data())), Ok(same_rows(data()))),
    ("pt-dict", pt(lambda: {"activations": torch.from_numpy(data()).double()}), Ok(same_rows(data()))),
    ("pt-dict-no-key", pt(lambda: {"x": torch.ones(4, 2)}), Err("without key")),
    ("pt-list", pt(lambda: [torch.ones(4, 2)]), Err("holds a list")),
    ("pt-int", pt(lambda: torch.ones(4, 2, dtype=torch.int64)), Err("dtype")),
    ("pt-bool", pt(lambda: torch.ones(4, 2, dtype=torch.bool)), Err("dtype")),
    ("pt-complex", pt(lambda: torch.ones(4, 2, dtype=torch.complex64)), Err("dtype")),
    ("pt-3d", pt(lambda: torch.ones(4, 2, 2)), Err("shape")),
    ("pt-1d", pt(lambda: torch.ones(4)), Err("shape")),
    ("pt-dict-value-str", pt(lambda: {"activations": "x"}), Err("holds a str")),
    ("pt-garbage", raw_file("a.pt", b"garbage" * 30), Err("torch file")),
    ("pt-empty", raw_file("a.pt", b""), Err("torch file")),
    ("pt-truncated", cut(".pt", 0.6), Err("torch file")),
    ("ext-txt", raw_file("a.txt", b"1 2\n3 4\n"), Err("unknown extension")),
    ("ext-none", raw_file("a", b"x"), Err("unknown extension")),
    ("missing-file", lambda t: opened(t / "missing.npy"), Err("no such file")),
    ("dir-named-npy", lambda t: ((t / "d.npy").mkdir(), opened(t / "d.npy"))[1], Err("no such file")),
]


def scan_oom(t: Path) -> Any:
    """The value scan hits an allocation failure (a file too wide for memory): one line."""
    np.save(t / "a.npy", data())
    real = torch.isfinite

    def boom(x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not enough memory: "
                           "you tried to allocate 1099511627776 bytes.")
    torch.isfinite = boom
    try:
        return opened(t / "a.npy")
    finally:
        torch.isfinite = real


ACT_CASES.append(("scan-out-of-memory", scan_oom, Err("memory")))


# ---------------------------------------------------------------------- identity and changes
def spec_after(change: Callable[[Path], None]) -> Callable[[Path], Any]:
    def make(t: Path) -> Any:
        p = t / "a.npy"
        np.save(p, data())
        before = opened(p).spec()
        change(p)
        return before, opened(p).spec()
    return make


def rewrite_same_size(p: Path) -> None:
    a = data()
    a[17, 1] += 1
    np.save(p, a)


def during(change: Callable[[Path], None], heldout: bool = False) -> Callable[[Path], Any]:
    def make(t: Path) -> Any:
        p = t / "a.npy"
        np.save(p, data())
        src = opened(p)
        src.sample(4)
        change(p)
        return (src.heldout() if heldout else src).sample(4)
    return make


def replace_file(p: Path) -> None:
    q = p.with_name("b.npy")
    np.save(q, data() + 1)
    os.replace(q, p)


def truncated_in_subprocess(fmt: str) -> Callable[[Path], Any]:
    """Truncate the file under an open (memory-mapped) source, then sample: a subprocess, so a
    SIGBUS cannot take the test run down. Returns the error line."""
    def make(t: Path) -> Any:
        p = save_activations(t / f"a{fmt}", torch.randn(20000, 64))
        code = textwrap.dedent(f"""
            import os, sys
            from toymodels.data.activations import Activations
            src = Activations({str(p)!r}, holdout=0.1)
            src.sample(8)
            os.truncate({str(p)!r}, 4096)
            try:
                src.sample(20000)
            except ValueError as e:
                print(e, file=sys.stderr); sys.exit(2)
            print("no error", file=sys.stderr); sys.exit(0)
            """)
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        if r.returncode == 2:
            raise ValueError(r.stderr.strip())
        raise RuntimeError(f"exit {r.returncode}: {r.stderr.strip()[-300:]}")
    return make


def resume_after_change(t: Path) -> Any:
    p = t / "a.npy"
    np.save(p, np.random.default_rng(0).standard_normal((64, 4)).astype(np.float32))
    tc = TrainConfig(steps=3, batch_size=8, quiet=True, eval_samples=8)
    sae = lambda: build_sae(SAEConfig(arch="relu", d_model=4, dict_size=8), seed=0)  # noqa: E731
    train(sae(), Activations(p), tc, t / "run")
    np.save(p, np.random.default_rng(1).standard_normal((64, 4)).astype(np.float32))
    return train(sae(), Activations(p), TrainConfig(steps=4, batch_size=8, quiet=True, eval_samples=8), t / "run", resume=True)


CHANGE_CASES: list[tuple[str, Callable[[Path], Any], Any]] = [
    ("spec-has-fingerprint", spec_after(lambda p: None), Ok(lambda r: r[0] == r[1] and r[0]["file"]["size"] > 0)),
    ("spec-same-bytes-rewritten", spec_after(lambda p: np.save(p, data())), Ok(lambda r: r[0]["file"] == r[1]["file"])),
    ("spec-one-value-changed", spec_after(rewrite_same_size), Ok(lambda r: r[0]["file"] != r[1]["file"])),
    ("spec-rows-appended", spec_after(lambda p: np.save(p, np.concatenate([data(), data()]))), Ok(lambda r: r[0] != r[1])),
    ("spec-array-fingerprint", lambda t: (Activations(torch.ones(8, 2)).spec(), Activations(torch.ones(8, 2) * 2).spec()),
     Ok(lambda r: r[0] != r[1])),
    ("during-rewritten-same-size", during(rewrite_same_size), Err("while in use")),
    ("during-appended", during(lambda p: np.save(p, np.concatenate([data(), data()]))), Err("while in use")),
    ("during-truncated-small", during(lambda p: os.truncate(p, 64)), Err("truncated")),
    ("during-replaced", during(replace_file), Err("while in use")),
    ("during-removed", during(lambda p: p.unlink()), Err("removed")),
    ("during-heldout-rewritten", during(rewrite_same_size, heldout=True), Err("while in use")),
    ("during-truncated-npy-subprocess", truncated_in_subprocess(".npy"), Err("truncated")),
    ("during-truncated-st-subprocess", truncated_in_subprocess(".safetensors"), Err("truncated")),
    ("resume-on-changed-file", resume_after_change, Err(r"data\.file", names_file=False)),
]


# ---------------------------------------------------------------------- exports
def trained(arch: str, n: int = 2, seed: int = 0, untrained: bool = False):
    """An SAE as training leaves it (:func:`tests.sae._helpers.moved_sae`, JumpReLU thresholds
    spread too), or the untouched initialisation."""
    return moved_sae(arch, n, seed, log_thresholds=True, moved=not untrained)


def reexport_identical(arch: str, seed: int) -> Callable[[Path], Any]:
    """file → from_saelens → export: every tensor bit for bit."""
    def make(t: Path) -> Any:
        dirs = export_saelens(trained(arch, seed=seed), t / "a")
        for i, d in enumerate(dirs):
            export_saelens(from_saelens(d), t / f"b{i}")
            a, b = load_file(str(d / "sae_weights.safetensors")), load_file(str(t / f"b{i}" / "instance_000" / "sae_weights.safetensors"))
            bad = [k for k in a if not torch.equal(a[k], b.get(k, torch.empty(0)))]
            if bad or set(a) != set(b):
                return f"instance {i}: {bad or sorted(set(a) ^ set(b))} changed"
        return "same"
    return make


def untrained_loads(arch: str) -> Callable[[Path], Any]:
    def make(t: Path) -> Any:
        sae = trained(arch, untrained=True)
        x = torch.randn(1, 16, 6, generator=torch.Generator().manual_seed(2))
        sae.eval()
        back = [from_saelens(d).eval() for d in export_saelens(sae, t / "a")]
        return all(torch.allclose(b(x)[0], sae(x)[i].detach(), atol=1e-5) for i, b in enumerate(back))
    return make


def outputs_match(arch: str) -> Callable[[Path], Any]:
    def make(t: Path) -> Any:
        sae = trained(arch).eval()
        x = torch.randn(1, 32, 6, generator=torch.Generator().manual_seed(5))
        back = [from_saelens(d).eval() for d in export_saelens(sae, t / "a")]
        return all(torch.allclose(b(x)[0], sae(x)[i].detach(), atol=1e-5) for i, b in enumerate(back))
    return make


def saelens_loads(arch: str) -> Callable[[Path], Any]:
    def make(t: Path) -> Any:
        sae_lens = pytest.importorskip("sae_lens")
        sae = trained(arch, untrained=arch in ("batchtopk", "matryoshka"))
        return [type(sae_lens.SAE.load_from_disk(str(d), device="cpu")).__name__ for d in export_saelens(sae, t / "a")]
    return make


def export_twice(overwrite: bool, second_n: int = 1) -> Callable[[Path], Any]:
    def make(t: Path) -> Any:
        export_saelens(trained("relu", n=3), t / "x")
        export_saelens(trained("topk", n=second_n, seed=4), t / "x", overwrite=overwrite)
        return sorted(p.name for p in (t / "x").iterdir())
    return make


def foreign_then_export(overwrite: bool) -> Callable[[Path], Any]:
    def make(t: Path) -> Any:
        (t / "x").mkdir()
        (t / "x" / "notes.txt").write_text("mine")
        return export_saelens(trained("relu"), t / "x", overwrite=overwrite)
    return make


def run_folder(t: Path, steps: int = 5, metrics_steps: int | None = 5, arch: str = "relu") -> Path:
    sae = trained(arch)
    run = t / "run"
    run.mkdir()
    write_json(run / "config.json", {"model": sae.spec(), "data": {}, "train": {"steps": steps}})
    save_weights(run / "model.safetensors", sae)
    if metrics_steps is not None:
        write_json(run / "metrics.json", {"steps": metrics_steps})
    return run


def cli(args: list[str]) -> str:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(args)
    if rc == 2:
        raise ValueError(err.getvalue().strip())
    return f"rc={rc}"


def cli_export(steps: int, metrics_steps: int | None, twice: bool = False, overwrite: bool = False) -> Callable[[Path], Any]:
    def make(t: Path) -> Any:
        run = run_folder(t, steps, metrics_steps)
        if twice:
            other = t / "other"
            other.mkdir()
            sae = trained("topk", n=1)
            write_json(other / "config.json", {"model": sae.spec(), "data": {}, "train": {"steps": 5}})
            save_weights(other / "model.safetensors", sae)
            write_json(other / "metrics.json", {"steps": 5})
            cli(["export", str(other), "--out", str(t / "out")])
        return cli(["export", str(run), "--out", str(t / "out")] + (["--overwrite"] if overwrite else []))
    return make


def nan_weights(t: Path) -> Any:
    sae = trained("relu")
    with torch.no_grad():
        sae.W_dec_IFD[1, 0, 0] = float("nan")
    try:
        return export_saelens(sae, t / "x")
    finally:
        assert not (t / "x").exists(), "a refused export wrote files"


def jumprelu_zero_theta(t: Path) -> Any:
    sae = trained("jumprelu")
    with torch.no_grad():
        sae.log_threshold_IF[0, 3] = -200.0
    return export_saelens(sae, t / "x")


def saelens_folder(t: Path, arch: str, st: dict[str, torch.Tensor], **cfg: Any) -> Path:
    d = t / "f"
    d.mkdir()
    save_file(st, str(d / "sae_weights.safetensors"))
    (d / "cfg.json").write_text(json.dumps({"architecture": arch, "d_in": 4, "d_sae": 6, **cfg}))
    return d


def base_state(**extra: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"W_enc": torch.randn(4, 6), "W_dec": torch.randn(6, 4), "b_enc": torch.zeros(6), "b_dec": torch.zeros(4), **extra}


def theta_back(t: Path, th: torch.Tensor) -> torch.Tensor:
    d = saelens_folder(t, "jumprelu", base_state(threshold=th))
    export_saelens(from_saelens(d), t / "x")
    return load_file(str(t / "x" / "instance_000" / "sae_weights.safetensors"))["threshold"]


def exact_theta_values(t: Path) -> Any:
    """θ in [e^-1, e] (every float32 θ there has a float32 log whose exp is θ): a jumprelu
    folder with these θ loads and re-exports them exactly."""
    th = torch.rand(6, generator=torch.Generator().manual_seed(3)) * 2.3 + 0.37
    return torch.equal(theta_back(t, th), th)


def bounded_theta_values(t: Path) -> Any:
    """θ over 40 binades: float32 log θ cannot hit every θ; exp comes back within
    |log θ|·2^-23 relative (the documented bound)."""
    th = torch.logspace(-20, 20, 6, base=2.0) * torch.tensor([1.0, 1.3, 1.7, 1.1, 1.9, 1.01])
    rel = ((theta_back(t, th).double() - th.double()).abs() / th.double())
    return bool((rel <= th.double().log().abs().clamp(min=1) * 2.0**-23 * 1.01).all())


EXPORT_CASES: list[tuple[str, Callable[[Path], Any], Any]] = []
for a in ARCHS:
    for s in (0, 7):
        EXPORT_CASES.append((f"reexport-exact-{a}-seed{s}", reexport_identical(a, s), Ok(lambda r: r == "same")))
    EXPORT_CASES.append((f"untrained-loads-{a}", untrained_loads(a), Ok(bool)))
    EXPORT_CASES.append((f"outputs-match-{a}", outputs_match(a), Ok(bool)))
    EXPORT_CASES.append((f"sae-lens-loads-{a}", saelens_loads(a), Ok(lambda r: len(r) == 2)))
EXPORT_CASES += [
    ("export-into-old-export", export_twice(False), Err("already holds", names_file=False)),
    ("export-overwrite-replaces", export_twice(True), Ok(lambda r: r == ["instance_000"])),
    ("export-overwrite-more-instances", export_twice(True, 4), Ok(lambda r: r == [f"instance_{i:03d}" for i in range(4)])),
    ("export-into-foreign-folder", foreign_then_export(False), Err("already holds|not part of an SAE export", names_file=False)),
    ("export-overwrite-foreign-folder", foreign_then_export(True), Err("not part of an SAE export", names_file=False)),
    ("export-into-empty-folder", lambda t: ((t / "x").mkdir(), len(export_saelens(trained("gated"), t / "x")))[1], Ok(lambda r: r == 2)),
    ("export-onto-file", lambda t: ((t / "x").write_text("f"), export_saelens(trained("relu"), t / "x"))[1], Err("file", names_file=False)),
    ("export-nan-weights", nan_weights, Err("NaN", names_file=False)),
    ("export-jumprelu-theta-underflow", jumprelu_zero_theta, Err("threshold", names_file=False)),
    ("cli-finished-run", cli_export(5, 5), Ok(lambda r: r == "rc=0")),
    ("cli-no-metrics", cli_export(5, None), Err("did not finish", names_file=False)),
    ("cli-resumed-killed", cli_export(10, 5), Err("asks for 10", names_file=False)),
    ("cli-export-into-other-runs-export", cli_export(5, 5, twice=True), Err("already holds|--overwrite", names_file=False)),
    ("cli-export-overwrite", cli_export(5, 5, twice=True, overwrite=True), Ok(lambda r: r == "rc=0")),
    ("cli-not-a-run", lambda t: cli(["export", str(t), "--out", str(t / "o")]), Err("config.json", names_file=False)),
    ("import-no-cfg", lambda t: from_saelens(t), Err("missing", names_file=False)),
    ("import-bad-json", lambda t: (saelens_folder(t, "standard", base_state()).joinpath("cfg.json").write_text("{"),
                                   from_saelens(t / "f"))[1], Err("JSON", names_file=False)),
    ("import-garbage-weights", lambda t: (saelens_folder(t, "standard", base_state()).joinpath("sae_weights.safetensors").write_bytes(b"x" * 40),
                                          from_saelens(t / "f"))[1], Err("safetensors", names_file=False)),
    ("import-shape-mismatch", lambda t: from_saelens(saelens_folder(t, "standard", {**base_state(), "b_enc": torch.zeros(5)})), Err("shape", names_file=False)),
    ("import-jumprelu-theta-zero", lambda t: from_saelens(saelens_folder(t, "jumprelu", base_state(threshold=torch.zeros(6)))), Err("threshold", names_file=False)),
    ("import-jumprelu-exact-theta", exact_theta_values, Ok(bool)),
    ("import-jumprelu-theta-bound", bounded_theta_values, Ok(bool)),
    ("import-unknown-arch", lambda t: from_saelens(saelens_folder(t, "transcoder", base_state())), Err("architecture", names_file=False)),
]


CASES = ACT_CASES + CHANGE_CASES + EXPORT_CASES


def outcome(fn: Callable[[Path], Any], expect: Any, tmp: Path) -> str:
    """'ok' or why not."""
    try:
        r = fn(tmp)
    except ValueError as e:
        msg = str(e)
        if not isinstance(expect, Err):
            return f"unexpected error: {msg[:200]}"
        if "\n" in msg.strip():
            return f"more than one line: {msg[:200]!r}"
        import re

        if not re.search(expect.pattern, msg):
            return f"message {msg[:200]!r} does not match {expect.pattern!r}"
        if expect.names_file and str(tmp) not in msg:
            return f"message does not name the file: {msg[:200]!r}"
        return "ok"
    except pytest.skip.Exception:
        raise
    except BaseException as e:  # noqa: BLE001 - any other crash is the finding
        return f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"
    if isinstance(expect, Err):
        return f"no error (returned {str(r)[:100]})"
    try:
        return "ok" if expect.check(r) else f"wrong result {str(r)[:100]}"
    except Exception as e:  # noqa: BLE001
        return f"check failed: {type(e).__name__}: {e}"


def test_the_table_is_big_enough():
    assert len(CASES) >= 100 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("fn,expect", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_probe(fn, expect, tmp_path):
    assert outcome(fn, expect, tmp_path) == "ok"
