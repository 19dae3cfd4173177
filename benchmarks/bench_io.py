"""Reading a large .npy: collapselab's chunk streamer vs ``np.load`` vs a memory map.

Each method computes the float64 column sums of a (1000000, 256) float32 matrix (1 GB)
in a fresh subprocess, which reports its wall time for the pass and its peak RSS (whole
process, and growth over its RSS just before the pass). The page cache is warmed first,
so all methods read from memory: this measures reader overhead, not the disk.

Run: ``python benchmarks/bench_io.py [--n 1000000] [--d 256] [--repeats 3]``

``--huge`` instead measures a file larger than RAM at the machine's limit: a
(20000000, 384) float32 ``.npy`` (30.7 GB) in ``--dir``. With the page cache dropped
(``/proc/sys/vm/drop_caches``, as root; otherwise it says so) it times ``dd`` reading the
file through the page cache and with ``iflag=direct`` (the disk's limit), the bare
float64 ``A^T A`` (BLAS syrk) of every row block in memory (the arithmetic's limit:
``check`` must do at least this) and ``collapselab check`` as a user runs it (whole
process, peak RSS), and prints ``check / max(read, syrk)``.
Run: ``python benchmarks/bench_io.py --huge --dir /big/disk [--rows 20000000] [--keep]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
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


def drop_cache(path: Path | None = None) -> bool:
    """Evict the page cache (as root); else at least ``path``'s pages. True if dropped."""
    subprocess.run(["sync"], check=True)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        if path is None:
            return False
        with open(path, "rb") as f:  # best effort without root
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        return False


SYRK = r"""
import json, os, sys, time
from concurrent.futures import ThreadPoolExecutor
import numpy as np
from threadpoolctl import threadpool_limits
rows, d, block = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
cores = os.cpu_count() or 1
bufs = [np.random.default_rng(i).standard_normal((block, d + 3)) for i in range(cores)]
outs = [np.empty((d + 3, d + 3)) for _ in range(cores)]
reps = 6

def syrk(i):  # numpy dispatches A^T A to BLAS syrk
    np.matmul(bufs[i].T, bufs[i], out=outs[i])

best = float("inf")
for _ in range(3):
    with threadpool_limits(1, "blas"), ThreadPoolExecutor(cores) as pool:  # one block per core
        list(pool.map(syrk, range(cores)))
        t0 = time.perf_counter()
        for _ in range(reps):
            list(pool.map(syrk, range(cores)))
        best = min(best, (time.perf_counter() - t0) / (reps * cores * block))
    syrk(0)  # all cores inside BLAS
    t0 = time.perf_counter()
    for _ in range(reps):
        syrk(0)
    best = min(best, (time.perf_counter() - t0) / (reps * block))
print(json.dumps({"s": best * rows}))
"""

UPDATE = r"""
import json, sys, time
import numpy as np
from collapselab.check import default_chunk_rows
from collapselab.metrics import Moments
rows, d = int(sys.argv[1]), int(sys.argv[2])
k = default_chunk_rows(d)  # the chunk check feeds, already in memory: no read, no wait
bufs = [np.random.default_rng(i).standard_normal((k, d), dtype=np.float32) for i in range(4)]
m = Moments(d)
for b in bufs:
    m.update(b)
best = float("inf")
for _ in range(3):
    t0 = time.perf_counter()
    for i in range(48):
        m.update(bufs[i % 4])
    best = min(best, (time.perf_counter() - t0) / (48 * k))
print(json.dumps({"s": best * rows}))
"""


def row_kernel() -> str:
    """Which row kernel ``Moments.update`` runs here: a build without the C kernel (no
    compiler, or an install that skipped it) takes the numpy path, slower."""
    from collapselab.metrics import moments

    if moments._rows is None:
        print("WARNING: collapselab's C row kernel is not built; timing the numpy fallback "
              "(pip install -e . with a C compiler builds it)", file=sys.stderr)  # fmt: skip
        return "numpy row fallback (no C kernel)"
    return "C row kernel"


def cpu_seconds() -> tuple[float, float]:
    """Machine-wide vCPU seconds (stolen by the host, idle or waiting for I/O) so far,
    from /proc/stat: where a shared VM's time went."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    hz = os.sysconf("SC_CLK_TCK")
    return v[7] / hz, (v[3] + v[4]) / hz


def since(c0: tuple[float, float]) -> tuple[float, float]:
    """(stolen, idle) vCPU seconds since ``c0 = cpu_seconds()``."""
    c1 = cpu_seconds()
    return c1[0] - c0[0], c1[1] - c0[1]


def huge(args: argparse.Namespace) -> None:
    import shutil

    n, d = args.rows, 384
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"huge_{n}x{d}.npy"
    if not path.exists() or path.stat().st_size < n * d * 4:
        need = n * d * 4 * 1.05
        if shutil.disk_usage(folder).free < need:
            raise SystemExit(f"{folder}: needs {need / 1e9:.1f} GB free")
        write_npy(path, n, d)
    gb = path.stat().st_size / 1e9
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    reads: list[float] = []
    directs: list[float] = []
    checks: list[float] = []
    peaks: list[int] = []
    check_cpu: list[float] = []
    during: dict[str, list[tuple[float, float]]] = {"check": [], "update": []}  # stolen, idle
    cold = True
    for _ in range(args.repeats):  # interleaved: dd, dd direct, check; each from a cold cache
        for flags, times in (([], reads), (["iflag=direct"], directs)):
            cold &= drop_cache(path)
            t0 = time.perf_counter()
            subprocess.run(["dd", f"if={path}", "of=/dev/null", "bs=16M", *flags], check=True,
                           capture_output=True)  # fmt: skip
            times.append(time.perf_counter() - t0)
        cold &= drop_cache(path)
        c0, t0 = cpu_seconds(), time.perf_counter()
        out = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", sys.executable, "-m",
                              "collapselab", "check", str(path), "--json"],
                             capture_output=True, text=True, check=True)  # fmt: skip
        checks.append(time.perf_counter() - t0)
        during["check"].append(since(c0))
        peak, user, system = out.stderr.strip().splitlines()[-1].split()
        peaks.append(int(peak) * 1024)
        check_cpu.append(float(user) + float(system))
        verdict = json.loads(out.stdout)["verdict"]

    def child(script: str, name: str = "") -> float:
        c0 = cpu_seconds()
        out = subprocess.run([sys.executable, "-c", script, str(n), str(d), "4096"],
                             capture_output=True, text=True, check=True)  # fmt: skip
        if name:
            during[name].append(since(c0))
        return float(json.loads(out.stdout)["s"])

    syrk = [child(SYRK) for _ in range(args.repeats)]
    update = [child(UPDATE, "update") for _ in range(args.repeats)]
    read_s, direct_s, check_s, syrk_s, update_s = (
        statistics.median(v) for v in (reads, directs, checks, syrk, update)
    )
    print(f"({n}, {d}) float32 .npy, {gb:.1f} GB on a {ram:.0f} GB machine, "
          f"{'page cache dropped before each run' if cold else 'WARM cache (not root)'}, "
          f"median of {args.repeats} interleaved runs, {row_kernel()}")
    print("| what | seconds | GB/s | rows/s |")
    print("|---|---|---|---|")
    for label, sec in (("dd bs=16M, through the page cache (read limit)", read_s),
                       ("dd bs=16M iflag=direct (read limit, no page cache)", direct_s),
                       ("float64 syrk A^T A of every row, in memory (arithmetic limit)", syrk_s),
                       ("Moments.update of chunks already in memory (check without I/O)",
                        update_s),
                       ("collapselab check (whole process)", check_s)):  # fmt: skip
        print(f"| {label} | {sec:.1f} | {gb / sec:.2f} | {n / sec / 1e6:.2f}M |")
    print(f"\ncheck / max(dd, syrk) = {check_s / max(read_s, syrk_s):.2f} (target <= 1.15); "
          f"check / max(fastest read, syrk) = {check_s / max(min(read_s, direct_s), syrk_s):.2f}"
          f"; peak RSS of check {statistics.median(peaks) / 2**20:.0f} MiB (target < 1024); "
          f"verdict {verdict}")
    print(f"where it goes: in-memory update / syrk = {update_s / syrk_s:.2f} (the arithmetic "
          f"beyond the scatter); check / max(fastest read, in-memory update) = "
          f"{check_s / max(min(read_s, direct_s), update_s):.2f} (the reading not hidden)")
    steal, idle = (statistics.median(x[i] for x in during["check"]) for i in (0, 1))
    ncpu = os.cpu_count() or 1
    print(f"during check ({ncpu} vCPUs x {check_s:.1f} s = {ncpu * check_s:.0f} vCPU s): "
          f"{statistics.median(check_cpu):.1f} s of CPU in check itself (user + sys), "
          f"{steal:.1f} s stolen by the host, {idle:.1f} s idle or waiting for I/O; during "
          f"the in-memory update runs (whole children, {ncpu} x {update_s:.1f} s timed): "
          f"{statistics.median(x[0] for x in during['update']):.1f} s stolen")
    if not args.keep:
        path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--huge", action="store_true", help="a file larger than RAM")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="--huge: where to write")
    parser.add_argument("--rows", type=int, default=20_000_000, help="--huge: rows (d=384)")
    parser.add_argument("--keep", action="store_true", help="--huge: keep the file")
    args = parser.parse_args()
    if args.huge:
        huge(args)
        return

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
