"""atomic_open: files get the mode a plain open() would give, the rename is durable."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

import collapselab._atomic as atomic
from collapselab._atomic import atomic_open, current_umask


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_new_file_gets_the_umask_mode(
    tmp_path: Path, umask: None, mask: int, expected: int
) -> None:
    os.umask(mask)
    assert current_umask() == mask
    with atomic_open(tmp_path / "a.bin") as f:
        f.write(b"x")
    with atomic_open(tmp_path / "t.json", "w", fsync=False) as f:
        f.write("{}")
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert mode(tmp_path / "a.bin") == mode(tmp_path / "t.json") == mode(plain) == expected


def test_replaced_file_keeps_its_mode(tmp_path: Path, umask: None) -> None:
    p = tmp_path / "report.html"
    p.write_text("old")
    p.chmod(0o640)
    with atomic_open(p, "w") as f:
        f.write("new")
    assert (p.read_text(), mode(p)) == ("new", 0o640)


def test_rename_is_followed_by_a_folder_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[Path] = []
    monkeypatch.setattr(atomic, "_fsync_dir", synced.append)
    with atomic_open(tmp_path / "sub" / "c.pt") as f:
        f.write(b"x")
    assert synced == [tmp_path / "sub"]
    with atomic_open(tmp_path / "d.png", fsync=False) as f:
        f.write(b"x")
    assert synced == [tmp_path / "sub"]
    atomic._fsync_dir(tmp_path)  # the real one runs (and tolerates platforms without it)


def test_error_leaves_destination_and_no_temporary(tmp_path: Path) -> None:
    p = tmp_path / "x.npy"
    p.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_open(p) as f:
        f.write(b"partial")
        raise RuntimeError
    assert p.read_bytes() == b"old" and sorted(tmp_path.iterdir()) == [p]


def test_outputs_of_check_plot_get_the_umask_mode(tmp_path: Path, umask: None) -> None:
    import numpy as np

    from collapselab.metrics import compute_metrics
    from collapselab.report.plots import plot_spectrum

    os.umask(0o022)
    z = np.random.default_rng(0).standard_normal((50, 4))
    plot_spectrum(compute_metrics(z), tmp_path / "spec.png")
    assert mode(tmp_path / "spec.png") == 0o644
