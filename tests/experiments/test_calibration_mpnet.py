"""The all-mpnet-base-v2 calibration cases (``calibration/text_mpnet.py``).

Without the model: the fast subset is empty, a missing model is a one-line error naming
the packages, and the reassembly of a split zip. With the model packages installed and
the cache built (``python -m collapselab.experiments.calibration.text_mpnet``): the labels
of the cached snapshots follow the outcome rule.
"""

from __future__ import annotations

import importlib.metadata
import zipfile
from pathlib import Path

import numpy as np
import pytest

from collapselab.errors import ConfigError
from collapselab.experiments.calibration import text_mpnet as tm
from collapselab.experiments.calibration.text import _key


def _installed() -> bool:
    try:
        for name in tm.PACKAGES:
            importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def test_fast_subset_is_empty_and_needs_no_model(tmp_path: Path) -> None:
    assert list(tm.cases(fast=True, cache=tmp_path, model=tmp_path / "nowhere")) == []


def test_missing_model_is_one_line_naming_the_packages(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        next(tm.cases(cache=tmp_path, model=tmp_path / "nowhere"))
    msg = str(e.value)
    assert "\n" not in msg
    assert all(p in msg for p in tm.PACKAGES) and "--no-deps" in msg
    with pytest.raises(ConfigError) as e:
        tm.find_parts(("collapselab-no-such-package-part-001",))
    assert "\n" not in str(e.value) and "collapselab-no-such-package-part-001" in str(e.value)


def test_reassembly_of_split_zip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "m.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(f"{tm.MODEL}/modules.json", "[]")
        z.writestr(f"{tm.MODEL}/model.safetensors", b"\0" * 5000)
        z.writestr(f"{tm.MODEL}/desktop.ini", "x")
        z.writestr(f"{tm.MODEL}/../evil.txt", "x")
        z.writestr("other/file.txt", "x")
    blob = archive.read_bytes()
    parts = []
    for i, lo in enumerate(range(0, len(blob), 2000)):
        parts.append(tmp_path / f"m.zip.{i:03d}")
        parts[-1].write_bytes(blob[lo : lo + 2000])
    assert len(parts) >= 3
    monkeypatch.setattr(tm, "find_parts", lambda packages=tm.PACKAGES: parts)
    out = tm.model_dir(tmp_path / "cache" / "model")
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors", "modules.json"]
    assert (out / "model.safetensors").read_bytes() == b"\0" * 5000
    assert not (tmp_path / "cache" / "evil.txt").exists()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["model"]  # no leftovers
    assert tm.model_dir(out) == out  # already there: nothing done


def test_pair_cosine() -> None:
    import torch

    z = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 0.0]])
    assert tm._pair_cosine(z) == pytest.approx((0 + 1 + 0) / 3)


def _cached_quality(tag: str, settings: object) -> dict | None:  # type: ignore[type-arg]
    import json

    path = tm.DEFAULT_CACHE / f"{_key(tag, settings, tm.MODEL)}.npz"
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as f:
        return json.loads(str(f["__quality__"]))  # type: ignore[no-any-return]


@pytest.mark.skipif(not _installed(), reason="all-mpnet-base-v2 packages not installed")
def test_cached_labels_follow_the_outcome_rule() -> None:
    fq = _cached_quality("frozen", tm.FROZEN)
    runs = [(r, _cached_quality(r.loss, r)) for r in tm.RUNS]
    if fq is None or any(q is None for _, q in runs):
        pytest.skip(
            "mpnet cache not built (python -m collapselab.experiments.calibration.text_mpnet)"
        )
    assert len(tm.find_parts()) == len(tm.PACKAGES)
    ref = fq["recall_at_1"]
    assert 0 < ref <= 1
    for run, q in runs:
        assert q is not None
        assert q["trace"]["step"] == list(range(max(run.steps)))
        for step in run.steps:
            rec, cos = q[str(step)]["recall_at_1"], q[str(step)]["random_pair_cosine"]
            label, kind, why = tm.label_snapshot(run, rec, ref, cos)
            kept = "ambiguous" if run.loss == "cosine" else "healthy"  # onset: see text.py
            assert label == (kept if rec >= 0.9 * ref else "hurt")
            assert kind == ("complete" if run.loss == "cosine" and label == "hurt" else None)
            assert f"{cos:.3f}" in why
    # the timeline reads the same numbers
    table = tm.timeline(fq, [(r, {}, q) for r, q in runs])  # type: ignore[misc]
    assert table.count("\n") == 3 + sum(len(r.steps) for r in tm.RUNS)
