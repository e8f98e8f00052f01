"""``toymodels sweep``: spec checks, packing that never changes a result, resume, failures."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from toymodels.cli import main
from toymodels.sweep import Point, load_spec, plan_jobs, point_id, run_sweep, stored_results
from toymodels.sweep import runner as sweep_runner

TMS_SPEC = """
command = "tms"
[fixed]
n_features = 2
d_hidden = 1
steps = 30
batch_size = 32
eval_samples = 256
[grid]
feature_probability = [0.1, 0.5]
importance_decay = [0.5, 2.0]
seed = [0, 1]
"""

SAE_SPEC = """
command = "sae"
[fixed]
arch = "{arch}"
n_features = 12
d_model = 8
dict_size = 16
steps = 25
batch_size = 32
eval_samples = 256
{extra}
[grid]
{grid}
seed = [0, 1]
"""


def write(tmp_path: Path, text: str, name: str = "spec.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def sweep(spec: Path, out: Path, *extra: str) -> int:
    return main(["sweep", str(spec), "--out", str(out), *extra])


def rows(out: Path) -> list[dict[str, str]]:
    with open(out / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def by_id(out: Path) -> dict[str, dict[str, str]]:
    return {r["id"]: r for r in rows(out)}


def weights(out: Path, row: dict[str, str]) -> dict[str, torch.Tensor]:
    """The trained parameters of one point, read back from its job's run folder."""
    w = load_file(out / "jobs" / row["job"] / "model.safetensors")
    i = int(row["instance"])
    return {k: v[i] for k, v in w.items() if v.ndim and not k.endswith("_I") and k != "importance"}


def assert_same_points(a: Path, b: Path, metrics: tuple[str, ...]) -> None:
    ra, rb = by_id(a), by_id(b)
    common = sorted(set(ra) & set(rb))
    assert common
    for pid in common:
        x, y = ra[pid], rb[pid]
        assert x["status"] == y["status"] == "done", (x, y)
        for m in ("loss", *metrics):
            assert x[m] == y[m], (pid, m, x[m], y[m])  # exact: the text of a repr'd float
        wx, wy = weights(a, x), weights(b, y)
        assert wx.keys() == wy.keys()
        for k in wx:
            assert torch.equal(wx[k], wy[k]), (pid, k, (wx[k] - wy[k]).abs().max())


# ---------------------------------------------------------------------- spec checks
BAD_SPECS = {  # case: (table, line, what the one-line error says)
    "typo": ("grid", "n_featurs = [3]", "grid.n_featurs is not a flag of `toymodels tms` (did you mean n_features"),
    "wrong type": ("grid", 'n_features = ["two"]', "grid.n_features entry = 'two': expected an integer"),
    "bool for int": ("fixed", "batch_size = true", "fixed.batch_size = True: expected an integer"),
    "out of range": ("grid", "feature_probability = [0.5, 1.5]", "feature_probability"),
    "set by sweep": ("fixed", 'out = "x"', "fixed.out is set by the sweep itself"),
    "bad choice": ("grid", 'model = ["relu"]', "expected a string in"),
    "best_of": ("fixed", "best_of = 2", "seed = [0, 1, 2, 3]"),
    "negative seed": ("grid", "seed = [-1]", "seed"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_key_or_value_fails_in_one_line_before_any_job(tmp_path, capsys, case):
    table, line, expected = BAD_SPECS[case]
    fixed, grid = ("steps = 5", "importance_decay = [1.0]")
    text = f'command = "tms"\n[fixed]\n{fixed}\n' + (f"{line}\n" if table == "fixed" else "") + f"[grid]\n{grid}\n" + (
        f"{line}\n" if table == "grid" else "")
    assert sweep(write(tmp_path, text), tmp_path / "out") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("toymodels sweep: error:"), err
    assert expected in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "text, expected",
    [
        ('command = "tms"\n[grid]\nseed = []\n', "grid.seed is an empty list"),
        ('command = "tms"\n[fixed]\nsteps = 5\n', "[grid] table is missing or empty"),
        ('command = "tms"\n[grid]\nseed = 3\n', "grid.seed must be a list"),
        ('command = "foo"\n[grid]\nseed = [1]\n', "command must be one of"),
        ('command = "tms"\n[fixed]\nseed = 1\n[grid]\nseed = [1]\n', "both [fixed] and [grid]"),
        ('command = "tms"\n[grid]\nseed = [1, 1]\n', "repeats a value"),
        ('command = "tms"\ngrid = [\n', "not valid TOML"),
        ('command = "tms"\n[grids]\nseed = [1]\n', "unknown top-level key"),
    ],
)
def test_malformed_spec_fails_in_one_line(tmp_path, capsys, text, expected):
    assert sweep(write(tmp_path, text), tmp_path / "out") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "out").exists()


def test_a_bad_value_names_its_grid_point(tmp_path, capsys):
    spec = write(tmp_path, 'command = "sae"\n[fixed]\nd_model = 8\narch = "topk"\n[grid]\nk = [4, 64]\n')
    assert sweep(spec, tmp_path / "out") == 2
    err = capsys.readouterr().err.strip()
    assert "grid point {'k': 64}" in err and len(err.splitlines()) == 1, err


# ---------------------------------------------------------------------- the table
def test_results_table_has_one_row_per_point_with_the_contract_columns(tmp_path):
    out = tmp_path / "out"
    assert sweep(write(tmp_path, TMS_SPEC), out) == 0
    table = rows(out)
    assert list(table[0])[:7] == ["feature_probability", "importance_decay", "seed", "loss", "status", "job",
                                  "dimensionality"]
    assert [(r["feature_probability"], r["importance_decay"], r["seed"]) for r in table] == [
        (p, r, s) for p in ("0.1", "0.5") for r in ("0.5", "2.0") for s in ("0", "1")]
    assert {r["status"] for r in table} == {"done"}
    assert len({r["job"] for r in table}) == 1  # one shape: one batched job
    for r in table:
        assert 0 < float(r["loss"]) < 1 and 0 <= float(r["dimensionality"]) <= 1
        assert (out / "jobs" / r["job"] / "config.json").is_file()
    metrics = json.loads((out / "jobs" / table[0]["job"] / "metrics.json").read_text())
    assert metrics["loss"] == [float(r["loss"]) for r in table]


def test_shapes_that_differ_are_separate_jobs(tmp_path):
    spec = TMS_SPEC.replace("d_hidden = 1\n", "").replace("seed = [0, 1]", "d_hidden = [1, 2]")
    out = tmp_path / "out"
    assert sweep(write(tmp_path, spec), out) == 0
    table = rows(out)
    jobs = {r["d_hidden"]: set() for r in table}
    for r in table:
        jobs[r["d_hidden"]].add(r["job"])
    assert all(len(j) == 1 for j in jobs.values()) and jobs["1"] != jobs["2"]


# ---------------------------------------------------------------------- packing is exact
def test_a_point_packed_in_any_job_equals_the_point_alone(tmp_path):
    spec = write(tmp_path, TMS_SPEC)
    assert sweep(spec, tmp_path / "packed") == 0
    assert sweep(spec, tmp_path / "alone", "--max-pack", "1") == 0
    assert len({r["job"] for r in rows(tmp_path / "alone")}) == 8
    # another grid around some of the same points: other neighbours, other positions
    other = TMS_SPEC.replace("feature_probability = [0.1, 0.5]", "feature_probability = [0.5, 0.03, 0.1]")
    assert sweep(write(tmp_path, other, "other.toml"), tmp_path / "other", "--max-pack", "5") == 0
    assert_same_points(tmp_path / "packed", tmp_path / "alone", ("dimensionality",))
    assert_same_points(tmp_path / "packed", tmp_path / "other", ("dimensionality",))


@pytest.mark.parametrize(
    "arch, grid, extra",
    [
        ("relu", "l1_coefficient = [0.01, 0.3]", ""),
        ("topk", "k = [2, 4]", "dead_window = 5"),
        ("batchtopk", "k = [3]", ""),
        ("jumprelu", "l1_coefficient = [0.01, 0.1]", ""),
        ("gated", "l1_coefficient = [0.05]", ""),
    ],
)
def test_sae_points_packed_equal_alone(tmp_path, arch, grid, extra):
    spec = write(tmp_path, SAE_SPEC.format(arch=arch, grid=grid, extra=extra))
    assert sweep(spec, tmp_path / "packed") == 0
    assert sweep(spec, tmp_path / "alone", "--max-pack", "1") == 0
    assert_same_points(tmp_path / "packed", tmp_path / "alone", ("l0", "fvu", "mmcs"))
    table = rows(tmp_path / "packed")
    assert all(r["mmcs"] not in ("", "nan") for r in table)  # features data: ground truth known


def test_job_ids_hash_their_points(tmp_path):
    cfgs = [{"command": "tms", "model": {"n_features": 2}, "feature_probability": p, "importance_decay": 1.0,
             "seed": 0, "train": {}} for p in (0.1, 0.2, 0.3)]
    pts = [(point_id(c), c) for c in cfgs]
    a = plan_jobs(pts, cap=2)
    b = plan_jobs(pts[::-1], cap=2)
    assert [len(j.points) for j in a] == [2, 1]
    assert plan_jobs(pts, cap=2)[0].id == a[0].id  # deterministic
    assert {j.id for j in plan_jobs(pts, cap=3)} == {plan_jobs(pts[::-1], cap=3)[0].id}  # order-free
    assert a[0].id != b[0].id  # other points, other id
    assert point_id(cfgs[0]) != point_id({**cfgs[0], "seed": 1})


# ---------------------------------------------------------------------- resume
def test_rerun_runs_nothing_done_and_a_changed_spec_only_the_changed_points(tmp_path, capsys):
    spec, out = write(tmp_path, TMS_SPEC), tmp_path / "out"
    assert sweep(spec, out) == 0
    before = rows(out)
    capsys.readouterr()
    assert sweep(spec, out) == 0
    assert "8 already done, 0 job(s) run" in capsys.readouterr().out
    assert rows(out) == before
    changed = TMS_SPEC.replace("importance_decay = [0.5, 2.0]", "importance_decay = [0.5, 3.0]")
    assert sweep(write(tmp_path, changed, "changed.toml"), out) == 0
    assert "4 already done, 1 job(s) run" in capsys.readouterr().out
    old = {r["id"]: r for r in before}
    for r in rows(out):
        assert (r["id"] in old) == (r["importance_decay"] == "0.5")
        if r["id"] in old:
            assert r == old[r["id"]]


def test_an_interrupted_sweep_reruns_only_unfinished_jobs(tmp_path, monkeypatch):
    spec, out = load_spec(write(tmp_path, TMS_SPEC)), tmp_path / "out"
    from toymodels.cli.sweep import spec_points
    from toymodels.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if hasattr(a, "choices") and isinstance(a.choices, dict))
    points = spec_points(spec, sub.choices["tms"])
    real, calls = sweep_runner.run_job, []

    def interrupted(job, *a, **kw):
        calls.append(job["id"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(job, *a, **kw)

    monkeypatch.setattr(sweep_runner, "run_job", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_sweep("tms", points, out, grid_keys=list(spec.grid), cap=3, progress=False)
    status = [r["status"] for r in rows(out)]
    assert status.count("done") == 3 and status.count("pending") == 5
    monkeypatch.setattr(sweep_runner, "run_job", real)
    report = run_sweep("tms", points, out, grid_keys=list(spec.grid), cap=3, progress=False)
    assert report.already_done == 3 and len(report.jobs) == 2 and calls[0] not in report.jobs
    assert {r["status"] for r in rows(out)} == {"done"}
    full = tmp_path / "full"
    run_sweep("tms", points, full, grid_keys=list(spec.grid), progress=False)
    assert_same_points(out, full, ("dimensionality",))


def test_a_bad_job_fails_alone_and_is_retried_next_time(tmp_path):
    good = {"command": "tms", "model": {"n_features": 2, "d_hidden": 1, "kind": "relu-output"},
            "importance_decay": 1.0, "feature_probability": 0.2, "seed": 0,
            "train": {"steps": 5, "batch_size": 8, "eval_samples": 16}}
    bad = {**good, "model": {**good["model"], "d_hidden": 3}}  # d_hidden > n_features: TMSConfig refuses it
    points = [Point({"case": "good"}, good), Point({"case": "bad"}, bad)]
    out = tmp_path / "out"
    report = run_sweep("tms", points, out, grid_keys=["case"], progress=False)
    assert (report.done, report.failed) == (1, 1)
    table = {r["case"]: r for r in rows(out)}
    assert table["good"]["status"] == "done" and table["bad"]["status"] == "failed"
    assert "d_hidden" in table["bad"]["error"] and "\n" not in table["bad"]["error"]
    report = run_sweep("tms", points, out, grid_keys=["case"], progress=False)
    assert report.already_done == 1 and report.failed == 1  # only the failed point ran again


def test_a_damaged_results_file_runs_its_points_again(tmp_path):
    spec, out = write(tmp_path, TMS_SPEC), tmp_path / "out"
    assert sweep(spec, out) == 0
    job = rows(out)[0]["job"]
    (out / "jobs" / job / "results.json").write_text("{not json")
    assert stored_results(out) == {}
    assert sweep(spec, out) == 0
    assert {r["status"] for r in rows(out)} == {"done"}


def test_two_local_workers_give_the_results_of_one(tmp_path):
    spec = write(tmp_path, TMS_SPEC)
    assert sweep(spec, tmp_path / "one") == 0
    assert sweep(spec, tmp_path / "two", "--workers", "2") == 0
    assert len({r["job"] for r in rows(tmp_path / "two")}) >= 2  # each worker got a job
    assert_same_points(tmp_path / "one", tmp_path / "two", ("dimensionality",))


def _dies_once(job, out, device):
    """A job function whose first call kills its worker process (as an OOM kill would)."""
    import os

    marker = Path(out) / "killed-once"
    if not marker.exists():
        marker.write_text("x")
        os._exit(1)
    return _real_run_job(job, out, device)


_real_run_job = sweep_runner.run_job


def test_a_dead_local_worker_loses_nothing(tmp_path, monkeypatch):
    if sweep_runner._start_method() != "fork":
        pytest.skip("the crashing job function reaches the workers by fork")
    monkeypatch.setattr(sweep_runner, "run_job", _dies_once)
    spec, out = write(tmp_path, TMS_SPEC), tmp_path / "out"
    assert sweep(spec, out, "--workers", "2", "--max-pack", "2") == 0
    assert (out / "killed-once").exists()
    assert {r["status"] for r in rows(out)} == {"done"}
    monkeypatch.setattr(sweep_runner, "run_job", _real_run_job)
    assert sweep(spec, tmp_path / "ref") == 0
    assert_same_points(tmp_path / "ref", out, ("dimensionality",))


# ---------------------------------------------------------------------- point streams
def _point_streams(block):
    from toymodels.data import SparseFeatures
    from toymodels.sweep import PointStreams

    streams = [SparseFeatures(3, p, 1, seed=s) for p, s in ((0.05, 1), (0.5, 2))]
    return PointStreams(streams, [1, 0, 1], block)


@pytest.mark.parametrize("block", [None, 40])
def test_point_streams_restore_their_state_and_subsets_keep_each_stream(block):
    src = _point_streams(block)
    src.sample(25)
    state = src.get_state()
    a = [src.sample(25) for _ in range(3)]
    src.set_state(state)
    b = [src.sample(25) for _ in range(3)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert torch.equal(a[0][0], a[0][2]) and not torch.equal(a[0][0], a[0][1])  # rows pick streams
    src.set_state(state)
    sub = src.subset([1, 2])
    assert torch.equal(sub.sample(25), a[0][1:])
    assert torch.equal(src.sample(25), a[0])  # the subset is a fork: the parent did not move


def test_the_cached_point_stream_state_is_the_state_stream_by_stream():
    # get_state keeps the generator states of the current buffers as one stack (the trainer
    # asks every step); it must equal the row-by-row state, across buffer refills and restores.
    src = _point_streams(40)

    def row_by_row():
        return torch.stack([torch.cat([src._state0[j].cpu(), torch.tensor([src._pos[j]], dtype=torch.int64).view(
            torch.uint8), torch.tensor([1], dtype=torch.uint8)]) for j in range(len(src.streams))])

    states = []
    for _ in range(7):  # 25-sample batches from 40-sample buffers: refills at every second call
        src.sample(25)
        got = src.get_state()
        assert torch.equal(got, row_by_row())
        states.append(got)
    src.set_state(states[2])
    assert torch.equal(src.get_state(), states[2])
    x = src.sample(25)
    src.set_state(states[2])
    assert torch.equal(src.sample(25), x)


def test_a_point_stream_does_not_depend_on_its_neighbours():
    from toymodels.data import SparseFeatures
    from toymodels.sweep import PointStreams

    alone = PointStreams([SparseFeatures(3, 0.2, 1, seed=7)], [0], 64)
    packed = PointStreams([SparseFeatures(3, 0.9, 1, seed=1), SparseFeatures(3, 0.2, 1, seed=7)], [0, 1, 0], 64)
    for _ in range(5):
        assert torch.equal(alone.sample(48)[0], packed.sample(48)[1])


@pytest.mark.parametrize("text", [TMS_SPEC.replace("seed = [0, 1]", "seed = [0, 1]\nd_hidden = [1, 2]").replace(
    "d_hidden = 1\n", ""), SAE_SPEC.format(arch="relu", grid="l1_coefficient = [0.01, 1]\ndict_size = [16, 24]",
                                         extra="").replace("dict_size = 16\n", "")])
def test_patched_point_configs_equal_configs_built_point_by_point(tmp_path, text):
    import copy

    from toymodels.cli import build_parser
    from toymodels.cli.sweep import command_flags, sae_config, spec_points, tms_config

    spec = load_spec(write(tmp_path, text))
    sub = next(a for a in build_parser()._actions if isinstance(getattr(a, "choices", None), dict))
    parser = sub.choices[spec.command]
    points = spec_points(spec, parser)
    flags, build = command_flags(parser), (tms_config if spec.command == "tms" else sae_config)
    assert [p.labels for p in points] == spec.points()
    for p in points:
        ns = parser.parse_args([])
        for key, v in {**spec.fixed, **p.labels}.items():
            a = flags[key]
            setattr(ns, a.dest, [v] if a.nargs == "+" else v)
        assert p.config == build(copy.copy(ns))


def test_an_interrupted_job_resumes_from_its_checkpoint_exactly(tmp_path, monkeypatch):
    import toymodels.train.steps.eager as trainer  # where the trainer calls optimizer_step

    spec = write(tmp_path, TMS_SPEC.replace("steps = 30", "steps = 30\ncheckpoint_every = 10"))
    real, seen = trainer.optimizer_step, []

    def stop_at_15(model, opt, x, step, *a, **kw):
        seen.append(step)
        if step == 15:
            raise KeyboardInterrupt
        return real(model, opt, x, step, *a, **kw)

    monkeypatch.setattr(trainer, "optimizer_step", stop_at_15)
    assert sweep(spec, tmp_path / "out") == 130  # Ctrl-C: one line and exit 130 (test_cli_behaviour)
    seen.clear()
    monkeypatch.setattr(trainer, "optimizer_step", lambda *a, **kw: (seen.append(a[3]), real(*a, **kw))[1])
    assert sweep(spec, tmp_path / "out") == 0
    assert seen[0] == 10 and len(seen) == 20  # resumed at the step-10 checkpoint
    monkeypatch.setattr(trainer, "optimizer_step", real)
    assert sweep(spec, tmp_path / "ref") == 0
    assert_same_points(tmp_path / "ref", tmp_path / "out", ("dimensionality",))


# ---------------------------------------------------------------------- the Python API: run_grid
GRID_FIXED = {"n_features": 2, "d_hidden": 1, "steps": 30, "batch_size": 32, "eval_samples": 256}
GRID_AXES = {"feature_probability": [0.1, 0.5], "importance_decay": [0.5, 2.0], "seed": [0, 1]}


def _cli_points(text: str, tmp_path: Path) -> list:
    from toymodels.cli import build_parser
    from toymodels.cli.sweep import spec_points

    spec = load_spec(write(tmp_path, text, "api.toml"))
    sub = next(a for a in build_parser()._actions if isinstance(getattr(a, "choices", None), dict))
    return spec_points(spec, sub.choices["tms"])


@pytest.mark.parametrize("fixed, grid", [
    (GRID_FIXED, GRID_AXES),
    ({"model": "hidden-relu", "schedule": "cosine", "lr": 0.003, "betas": [0.8, 0.99], "n_features": 3},
     {"d_hidden": [1, 2], "seed": [5]}),
    ({}, {"seed": [0]}),  # every default is the command line's
])
def test_run_grid_points_equal_the_command_lines(tmp_path, fixed, grid):
    from toymodels.sweep import grid_points

    def toml(v):
        return json.dumps(v)  # numbers, strings, booleans and flat lists read the same in TOML

    text = ('command = "tms"\n[fixed]\n' + "".join(f"{k} = {toml(v)}\n" for k, v in fixed.items())
            + "[grid]\n" + "".join(f"{k} = {toml(v)}\n" for k, v in grid.items()))
    ours, cli = grid_points("tms", fixed, grid), _cli_points(text, tmp_path)
    assert [p.labels for p in ours] == [p.labels for p in cli]
    assert [p.config for p in ours] == [p.config for p in cli]
    assert [p.id for p in ours] == [p.id for p in cli]


def test_run_grid_gives_the_sweeps_results_and_reuses_its_folder(tmp_path, monkeypatch):
    from toymodels.sweep import run_grid

    out = tmp_path / "out"
    assert sweep(write(tmp_path, TMS_SPEC), out) == 0
    table = by_id(out)
    calls = []
    real = sweep_runner.run_job
    monkeypatch.setattr(sweep_runner, "run_job", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    got = run_grid("tms", GRID_FIXED, GRID_AXES, out, with_params=True)
    assert calls == []  # every point was done by the command line: nothing runs again
    assert [{k: r[k] for k in GRID_AXES} for r in got] == load_spec(write(tmp_path, TMS_SPEC)).points()
    for r in got:
        row = table[r["id"]]
        assert r["status"] == "done" and repr(r["loss"]) == row["loss"] and r["job"] == row["job"]
        assert float(row["dimensionality"]) == r["dimensionality"]
        w = weights(out, row)
        assert r["params"]["W_IMN"].shape == (1, 1, 2) and r["params"]["b_IN"].shape == (1, 2)
        assert torch.equal(r["params"]["W_IMN"][0], w["W_IMN"]) and torch.equal(r["params"]["b_IN"][0], w["b_IN"])


def test_run_grid_in_a_temporary_folder_equals_a_kept_one(tmp_path, monkeypatch):
    import tempfile

    from toymodels.sweep import run_grid

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    fixed, grid = GRID_FIXED, {"feature_probability": [0.2], "importance_decay": [1.0, 3.0], "seed": [0]}
    a = run_grid("tms", fixed, grid, with_params=True)
    assert list((tmp_path / "tmp").iterdir()) == []  # the temporary sweep folder is gone
    b = run_grid("tms", fixed, grid, tmp_path / "kept", with_params=True)
    assert len(a) == len(b) == 2 and (tmp_path / "kept" / "results.csv").exists()
    for x, y in zip(a, b):
        assert x["loss"] == y["loss"] and x["id"] == y["id"]
        assert all(torch.equal(x["params"][k], y["params"][k]) for k in x["params"])


@pytest.mark.parametrize("command, fixed, grid, expected", [
    ("tms", {}, {"n_featurs": [2]}, "grid.n_featurs is not a key of a tms grid"),
    ("tms", {"quiet": True}, {"seed": [0]}, "fixed.quiet is not a key"),
    ("tms", {}, {"seed": []}, "grid.seed is an empty list"),
    ("tms", {}, {}, "grid is empty"),
    ("tms", {}, {"seed": 3}, "grid.seed must be a list"),
    ("tms", {}, {"seed": [1, 1]}, "repeats a value"),
    ("tms", {"seed": 1}, {"seed": [2]}, "both fixed and grid"),
    ("tms", {}, {"seed": [-1]}, "grid point {'seed': -1}: seed"),
    ("tms", {}, {"feature_probability": [0.5, 1.5]}, "grid point {'feature_probability': 1.5}: feature_probability"),
    ("tms", {}, {"steps": ["ten"]}, "grid point {'steps': 'ten'}"),
    ("tms", {}, {"model": ["relu"]}, "grid point {'model': 'relu'}"),
    ("sae", {}, {"seed": [0]}, "run_grid supports command 'tms'"),
])
def test_run_grid_refuses_a_bad_grid_before_anything_runs(tmp_path, monkeypatch, command, fixed, grid, expected):
    from toymodels.sweep import run_grid

    monkeypatch.setattr(sweep_runner, "run_job", lambda *a, **kw: pytest.fail("a job ran"))
    with pytest.raises(ValueError) as e:
        run_grid(command, fixed, grid, tmp_path / "out")
    assert expected in str(e.value) and len(str(e.value).splitlines()) == 1, str(e.value)
    assert not (tmp_path / "out").exists()


def test_run_grid_raises_when_a_point_fails(tmp_path, monkeypatch):
    from toymodels.sweep import jobs as sweep_jobs
    from toymodels.sweep import run_grid

    def boom(*a, **kw):
        raise RuntimeError("boom")

    monkeypatch.setattr(sweep_jobs, "_run_tms", boom)
    with pytest.raises(ValueError, match="grid point {'seed': 0} failed: RuntimeError: boom"):
        run_grid("tms", GRID_FIXED, {"seed": [0]}, tmp_path / "out")
    assert [r["status"] for r in rows(tmp_path / "out")] == ["failed"]  # the table still says so


def test_the_example_plot_classifies_a_sweep_as_figure_4_does(tmp_path, monkeypatch, capsys):
    import runpy
    import sys

    from figures.fig04_phase_diagram import CELL, boundary_agreement, phase_grid
    from toymodels.sweep import best_rows, point_params, read_results

    out = tmp_path / "out"
    assert sweep(write(tmp_path, TMS_SPEC), out) == 0
    table = read_results(out / "results.csv")
    best = best_rows(table, CELL)
    assert len(best) == 4  # 2 x 2 cells, the lower-loss of 2 seeds each
    for b in best:
        same = [r for r in table if (r["feature_probability"], r["importance_decay"]) ==
                (b["feature_probability"], b["importance_decay"])]
        assert float(b["loss"]) == min(float(r["loss"]) for r in same)
    ps, rs, phase = phase_grid(best, point_params(out, best))
    assert phase.shape == (2, 2) and (phase >= 0).all()
    image = tmp_path / "pd.png"
    monkeypatch.setattr(sys, "argv", ["plot_phase_diagram.py", str(out), "--out", str(image)])
    runpy.run_path(str(Path(__file__).resolve().parents[1] / "examples" / "plot_phase_diagram.py"), run_name="__main__")
    said = capsys.readouterr().out
    assert image.stat().st_size > 1000
    assert f"agreement with the analytic boundary: {boundary_agreement(ps, rs, phase):.1%}" in said, said
