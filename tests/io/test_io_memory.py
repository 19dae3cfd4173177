"""Peak memory of streaming grows with the chunk, not with the file.

A ~400 MB (400000, 256) float32 .npy is written in pieces, then read in a fresh
subprocess whose peak RSS during the pass (``VmHWM`` after resetting it through
``/proc/self/clear_refs``) is compared with its RSS before. The
same measurement on ``np.load(mmap_mode="r")`` is the control that shows the test can
fail: every touched page of a memory map counts in RSS.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc to measure peak RSS"
)

N, D = 400_000, 256
MB = 2**20

READER = """
import sys
import numpy as np
from collapselab.io import open_embeddings

def status(field):  # kB -> bytes, from /proc/self/status
    with open("/proc/self/status") as f:
        line = next(ln for ln in f if ln.startswith(field + ":"))
    return int(line.split()[1]) * 1024

def reset_peak():  # Linux: writing 5 to clear_refs resets VmHWM to the current RSS
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")

path, how = sys.argv[1], sys.argv[2]
src = open_embeddings(path) if how == "stream" else np.load(path, mmap_mode="r")
total = np.zeros(256)
reset_peak()
base = status("VmRSS")
if how == "stream":
    for chunk in src.chunks(rows=16384):  # 16 MiB per chunk
        total += chunk.sum(axis=0, dtype=np.float64)
else:
    for lo in range(0, len(src), 16384):
        total += src[lo : lo + 16384].sum(axis=0, dtype=np.float64)
print(base, status("VmHWM"), repr(float(total.sum())))
"""


def write_big_npy(path: Path) -> float:
    """Write (N, D) float32 in 25000-row pieces; return the sum of all elements."""
    header = {"descr": "<f4", "fortran_order": False, "shape": (N, D)}
    total = 0.0
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for lo in range(0, N, 25_000):
            # Small integers: every partial sum is exact in float64.
            block = (np.arange(lo, lo + 25_000, dtype=np.float32)[:, None] % 13) + np.arange(
                D, dtype=np.float32
            ) % 5
            total += float(block.sum(dtype=np.float64))
            f.write(block.tobytes())
    return total


def peak_growth(path: Path, how: str) -> tuple[int, float]:
    out = subprocess.run(
        [sys.executable, "-c", READER, str(path), how],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.split()
    return int(out[1]) - int(out[0]), float(out[2])


@pytest.fixture
def big_npy(tmp_path: Path) -> Iterator[tuple[Path, float]]:
    path = tmp_path / "big.npy"
    total = write_big_npy(path)
    assert path.stat().st_size > 400 * 10**6
    yield path, total
    path.unlink()  # do not leave 400 MB behind in the kept pytest temp dirs


def test_streaming_peak_rss_is_bounded_by_the_chunk(big_npy: tuple[Path, float]) -> None:
    path, total = big_npy
    growth, got = peak_growth(path, "stream")
    assert got == total  # it really read every byte
    # One 16 MiB chunk buffer is expected (measured: 16.1 MiB); 64 MiB leaves slack.
    assert growth < 64 * MB, f"peak RSS grew by {growth / MB:.0f} MiB for a 400 MB file"
    # Control: the memory-mapped pass touches every page, and they all count in RSS.
    mapped_growth, mapped = peak_growth(path, "mmap")
    assert mapped == total
    assert mapped_growth > 300 * MB
