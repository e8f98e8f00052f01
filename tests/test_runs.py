"""Run-folder I/O: JSON-safe values and atomic writes."""
import json
import math
from pathlib import Path

import numpy as np
import torch

from toymodels.runs import jsonable, read_json, write_json


def test_jsonable_makes_strict_json():
    obj = {
        "tensor": torch.tensor([1.5, float("nan"), float("inf")]),
        "array": np.array([[1, 2]]),
        "scalars": (np.float32(0.25), np.int64(3), np.bool_(True), torch.tensor(2.0)),
        "path": Path("/tmp/x"),
        7: -math.inf,
    }
    out = jsonable(obj)
    assert out == {
        "tensor": [1.5, None, "inf"],
        "array": [[1, 2]],
        "scalars": [0.25, 3, True, 2.0],
        "path": "/tmp/x",
        "7": "-inf",
    }
    json.dumps(out, allow_nan=False)  # strict JSON: raises on NaN/inf


def test_write_json_is_atomic_and_round_trips(tmp_path):
    path = tmp_path / "sub" / "metrics.json"
    write_json(path, {"loss": torch.tensor([0.5, 0.25])})
    assert read_json(path) == {"loss": [0.5, 0.25]}
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]  # no temporary left behind
