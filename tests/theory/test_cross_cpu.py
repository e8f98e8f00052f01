"""The same verdicts on every CPU: the registry's verdicts do not follow the CPU's vector kernels.

On a second x86 machine (Intel AVX-512, where the committed report came from an AMD AVX2 one)
a searching claim's verdict flipped: its search ended elsewhere because the kernels rounded
differently. Here the registry runs twice in subprocesses, plainly and under torch's and MKL's
portable kernels (``ATEN_CPU_CAPABILITY=default``: torch's non-vectorised CPU kernels;
``MKL_CBWR=AVX2``: MKL's conditional numerical reproducibility at the AVX2 code path), and
every claim must reach the same verdict (``inconclusive`` included) in both.

``make test`` runs the claims that optimise or train (``--searches``: those whose verdict a
rounding difference can move; the analytic checks hold to tolerances far above rounding) at
the tiny budget, the two subprocesses side by side; ``make test-all`` every claim at the
default budget (``slow``).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PORTABLE_KERNELS = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "AVX2"}
"""The environment of the second run: another CPU's arithmetic, on this one."""


def verdict_differences(a: dict, b: dict) -> list[str]:
    """One line per claim whose verdict differs between the reports ``a`` and ``b`` (or that only
    one of them has), naming both verdicts and the first one's detail."""
    va = {r["id"]: r for r in a["claims"]}
    vb = {r["id"]: r for r in b["claims"]}
    out = []
    for cid in sorted(set(va) | set(vb)):
        ra, rb = va.get(cid), vb.get(cid)
        if ra is None or rb is None:
            out.append(f"{cid}: only in the {'first' if rb is None else 'second'} report")
        elif ra["verdict"] != rb["verdict"]:
            out.append(f"{cid}: {ra['verdict']} (plain, {a.get('cpu_capability')}) vs {rb['verdict']} "
                       f"({b.get('cpu_capability')}); plain detail: {ra['detail'][:300]}")
    return out


def reports_on_two_cpus(tmp_path: Path, budget: str, *flags: str, timeout: float) -> tuple[dict, dict]:
    """``python -m theory --budget BUDGET --json`` run plainly and under :data:`PORTABLE_KERNELS`,
    in parallel; both reports."""
    procs = []
    for name, extra in (("plain", {}), ("portable", PORTABLE_KERNELS)):
        env = {k: v for k, v in os.environ.items() if k not in PORTABLE_KERNELS}
        out = tmp_path / f"{name}.json"
        cmd = [sys.executable, "-m", "theory", "--budget", budget, "--device", "cpu", "--threads", "1",
               "--no-timings", "--json", str(out), *flags]
        log = open(tmp_path / f"{name}.log", "w")
        procs.append((out, log, subprocess.Popen(cmd, cwd=REPO, env={**env, **extra}, stdout=log,
                                                 stderr=subprocess.STDOUT)))
    reports = []
    try:
        for out, log, proc in procs:
            code = proc.wait(timeout=timeout)
            log.close()
            # exit 1 (a proven claim fails) is the registry tests' business; 2 is a usage error
            assert code in (0, 1) and out.is_file(), (tmp_path / out.with_suffix(".log").name).read_text()[-3000:]
            reports.append(json.loads(out.read_text()))
    finally:
        for _, log, proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
    return reports[0], reports[1]


def _check(plain: dict, portable: dict) -> None:
    assert portable["cpu_capability"] == "DEFAULT", "ATEN_CPU_CAPABILITY did not reach torch"
    assert plain["claims"], "no claim ran"
    diff = verdict_differences(plain, portable)
    assert diff == [], "verdicts that follow the CPU's kernels:\n" + "\n".join(diff)


def test_searching_verdicts_are_the_same_with_portable_kernels_tiny(tmp_path):
    plain, portable = reports_on_two_cpus(tmp_path, "tiny", "--searches", timeout=1500)
    assert all(r["budget_stable"] is not None for r in plain["claims"])  # only searching claims ran
    _check(plain, portable)


@pytest.mark.slow
def test_every_verdict_is_the_same_with_portable_kernels_default_budget(tmp_path):
    plain, portable = reports_on_two_cpus(tmp_path, "default", timeout=3600)
    _check(plain, portable)


def test_verdict_differences_names_each_flip_and_each_missing_claim():
    """The negative control: a flipped verdict and a claim one report lacks are both reported."""
    rec = {"id": "t.a", "verdict": "holds", "detail": "d"}
    a = {"claims": [rec, {**rec, "id": "t.b"}, {**rec, "id": "t.c"}], "cpu_capability": "AVX512"}
    b = {"claims": [rec, {**rec, "id": "t.b", "verdict": "inconclusive"}], "cpu_capability": "DEFAULT"}
    diff = verdict_differences(a, b)
    assert len(diff) == 2 and diff[0].startswith("t.b: holds (plain, AVX512) vs inconclusive (DEFAULT)")
    assert diff[1] == "t.c: only in the first report"
    assert verdict_differences(a, a) == []
