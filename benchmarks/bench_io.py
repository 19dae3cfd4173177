"""Reading a large .npy: collapselab's chunk streamer vs ``np.load`` vs a memory map.

Each method computes the float64 column sums of a (1000000, 256) float32 matrix (1 GB)
in a fresh subprocess, which reports its wall time for the pass and its peak RSS (whole
process, and growth over its RSS just before the pass). The page cache is warmed first,
so all methods read from memory: this measures reader overhead, not the disk.

Run: ``python benchmarks/bench_io.py [--n 1000000] [--d 256] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = r"""
import json, sys, time
import numpy as np

def status(field):  # bytes, from /proc/self/status (Linux)
    with open("/proc/self/status") as f:
        return int(next(ln for ln in f if ln.startswith(field + ":")).split()[1]) * 1024

path, how = sys.argv[1], sys.argv[2]
from collapselab.io import open_embeddings  # imported by every method: same baseline
base = status("VmRSS")
t0 = time.perf_counter()
if how == "stream":
    src = open_embeddings(path)
    total = np.zeros(src.d)
    for chunk in src.chunks():
        total += chunk.sum(axis=0, dtype=np.float64)
elif how == "np.load":
    total = np.load(path).sum(axis=0, dtype=np.float64)
else:
    total = np.load(path, mmap_mode="r").sum(axis=0, dtype=np.float64)
seconds = time.perf_counter() - t0
print(json.dumps({"s": seconds, "peak": status("VmHWM"), "base": base,
                  "check": float(total.sum())}))
"""

METHODS = ["stream", "np.load", "mmap"]
LABELS = {
    "stream": "collapselab chunks()",
    "np.load": "np.load + sum (baseline)",
    "mmap": "np.load(mmap_mode='r') + sum",
}


def write_npy(path: Path, n: int, d: int) -> None:
    """Write an (n, d) float32 .npy in 50000-row pieces (never all in memory)."""
    rng = np.random.default_rng(0)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f4", "fortran_order": False, "shape": (n, d)}
        )
        for lo in range(0, n, 50_000):
            f.write(rng.standard_normal((min(50_000, n - lo), d), dtype=np.float32).tobytes())


def run(path: Path, how: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), how], capture_output=True, text=True, check=True
    )
    return dict(json.loads(out.stdout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "emb.npy"
        write_npy(path, args.n, args.d)
        path.read_bytes()  # warm the page cache
        size_mb = path.stat().st_size / 2**20
        results: dict[str, list[dict[str, float]]] = {m: [] for m in METHODS}
        for _ in range(args.repeats):  # interleaved rounds: drift hits every method alike
            for how in METHODS:
                results[how].append(run(path, how))

    checks = {r["check"] for rs in results.values() for r in rs}
    assert max(checks) - min(checks) <= 1e-9 * max(abs(c) for c in checks), checks
    base_s = statistics.median(r["s"] for r in results["np.load"])
    mib = 2**20
    print(f"({args.n}, {args.d}) float32 .npy, {size_mb:.0f} MiB, warm page cache, "
          f"{args.repeats} runs each, median [min, max]")
    print("| method | time s | ratio to np.load | peak RSS MiB | peak growth MiB |")
    print("|---|---|---|---|---|")
    for how in METHODS:
        rs = results[how]
        s = [r["s"] for r in rs]
        peak = statistics.median(r["peak"] for r in rs) / mib
        growth = statistics.median(r["peak"] - r["base"] for r in rs) / mib
        print(
            f"| {LABELS[how]} | {statistics.median(s):.3f} [{min(s):.3f}, {max(s):.3f}] | "
            f"{statistics.median(s) / base_s:.2f} | {peak:.0f} | {growth:.0f} |"
        )


if __name__ == "__main__":
    main()
