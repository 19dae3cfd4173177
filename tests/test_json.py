"""The ground floor's one JSON cleaner (collapselab._json) and torch-threads context."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from collapselab._json import finite_or_none, jsonable
from collapselab._pool import torch_threads


def test_jsonable_exact_values() -> None:
    out = jsonable({"nan": math.nan, "inf": -math.inf, "f32": np.float32(1.5),
                    "i": np.int64(7), "b": np.bool_(True), 3: "three",
                    "nested": [{"x": (np.float64(math.nan), 2.0)}, [np.uint8(4)]],
                    "arr": np.array([[1.0, np.nan], [np.inf, 0.25]]),
                    "t": torch.tensor([0.5, math.nan]), "s": "text", "none": None})  # fmt: skip
    assert out == {"nan": None, "inf": None, "f32": 1.5, "i": 7, "b": True, "3": "three",
                   "nested": [{"x": [None, 2.0]}, [4]],
                   "arr": [[1.0, None], [None, 0.25]],
                   "t": [0.5, None], "s": "text", "none": None}  # fmt: skip
    assert type(out["f32"]) is float and type(out["i"]) is int and type(out["b"]) is bool
    json.dumps(out, allow_nan=False)  # strict JSON


def test_jsonable_can_keep_non_finite() -> None:
    out = jsonable({"a": np.float32(math.inf), "b": [np.float64(math.nan)]}, finite=False)
    assert out["a"] == math.inf and type(out["a"]) is float and math.isnan(out["b"][0])


def test_finite_or_none() -> None:
    assert finite_or_none(None) is None
    assert finite_or_none(np.float32(1.5)) == 1.5
    assert finite_or_none(3) == 3.0 and type(finite_or_none(3)) is float
    assert finite_or_none(math.nan) is None and finite_or_none(-math.inf) is None


def test_torch_threads_restores_previous_count() -> None:
    before = torch.get_num_threads()
    want = 2 if before != 2 else 3
    with torch_threads(want):
        assert torch.get_num_threads() == want
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError, match="boom"), torch_threads(want):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before  # restored on error too
    with torch_threads(None):
        assert torch.get_num_threads() == before
