"""Spectrum of an (N, d) embedding matrix: speed, peak memory and accuracy, side by side.

Methods (each timed in its own subprocess, so "peak" is that process's whole peak RSS):

- ``metrics``  ``compute_metrics``: everything ``check`` reports (update + ``summarize``:
  both eigensolves, the pairwise statistics of the row sample, every other metric)
- ``stream``   collapselab's path: ``Moments.update`` (float64 shifted syrk, row statistics
  and row sample included) + the eigensolve ``summarize`` uses
- ``svdvals``  ``torch.linalg.svdvals`` of the centred float32 matrix (what RankMe code does)
- ``np_svd``   ``numpy.linalg.svd`` of the centred float32 matrix
- ``cov32``    float32 centred covariance ``Xc.T @ Xc / N`` + ``eigvalsh``
- ``gemm32``   bare float32 ``X.T @ X`` with torch (the machine's GEMM ceiling; the baseline)
- ``syrk32``   bare float32 ``X.T @ X`` with numpy (OpenBLAS syrk: half the flops)

Accuracy: max relative error of eigenvalues above 1e-6 of the largest against a float64
reference (SVD of the R factor of the centred float64 matrix), and the count of negative
eigenvalues, on a well-spread spectrum and on a nearly collapsed one (``z = c + eps``,
``|c| = 100 |eps|``, half the directions 3e-3 smaller, randomly rotated).

The file case times the whole ``check`` of a (1000000, 256) float32 ``.npy`` against
``np.load`` + ``svdvals`` (peak memory of each whole process).

Row statistics (norms, std of L2-normalised rows, mean cosine, sample): their cost is
``Moments.update`` minus a bare shifted syrk loop with the same blocks, threads and row
kernel (shift only, ``A^T A``, accumulate: the spectrum alone), both on a warm
accumulator, in units of one read of the data (``torch.sum`` of the float32 matrix). The common
implementation ``F.normalize(z).std(0).mean()`` is timed for reference. Reps are
interleaved so that the machine's drift hits every column alike.

Baselines: every worker process also times two warm baselines in process, interleaved
rep by rep with its method (baseline, baseline, method, ...; each warmed up once first):
``gemm32`` (bare float32 ``X.T @ X``, torch) and ``syrk64`` (bare float64 ``X.T @ X``,
numpy syrk on a float64 copy made outside the timing: the floor for a float64-accurate
scatter). A method's ratios are its median over the medians of those baselines, timed in
the same processes, so a shared machine's drift and its start-up state hit both sides.
Peak memory is the process's peak RSS over the method's own reps only (the float64
copy is freed and the high-water mark reset through ``/proc/self/clear_refs`` first).

Usage: ``python benchmarks/bench_spectrum.py [--sizes 10000x128,100000x768] [--file-rows 1000000]
[--reps 3] [--rounds 3] [--out benchmarks/results/spectrum.md]``. Every method runs in
``rounds`` fresh processes, interleaved with the others, ``reps`` times each; medians over
all of them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

METHODS = ["metrics", "stream", "svdvals", "np_svd", "cov32", "gemm32", "syrk32"]


def make_data(n: int, d: int, kind: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    out = np.empty((n, d), dtype=np.float32)
    if kind == "spread":
        scales = np.linspace(0.05, 2.0, d)
        c = np.zeros(d)
    else:  # nearly collapsed
        scales = np.r_[np.ones(d - d // 2), np.full(d // 2, 3e-3)]
        c = rng.standard_normal(d) * 100 / np.sqrt(d) * np.sqrt(d)
    step = 65536
    for s in range(0, n, step):
        k = min(step, n - s)
        out[s : s + k] = c + (rng.standard_normal((k, d)) * scales) @ q.T
    return out


def reference_eigs(path: str) -> np.ndarray:
    x = np.load(path, mmap_mode="r")
    n, d = x.shape
    mean = np.zeros(d)
    for s in range(0, n, 65536):
        mean += x[s : s + 65536].sum(0, dtype=np.float64)
    mean /= n
    # R factor of the centred float64 matrix, accumulated by stacked QR (TSQR)
    r = np.zeros((0, d))
    for s in range(0, n, 65536):
        block = np.asarray(x[s : s + 65536], dtype=np.float64) - mean
        r = np.linalg.qr(np.vstack([r, block]), mode="r")
    return np.linalg.svd(r, compute_uv=False) ** 2 / n


def worker(method: str, path: str, reps: int, eig_out: str) -> None:
    import torch

    from collapselab.metrics import Moments, compute_metrics
    from collapselab.metrics.summary import eigenvalues_desc

    def timed(fn):  # type: ignore[no-untyped-def]
        times, res = [], None
        for _ in range(reps):
            t0 = time.perf_counter()
            res = fn()
            times.append(time.perf_counter() - t0)
        return times, res

    if method == "rowstats":
        print(json.dumps(row_stats(np.load(path), reps)))
        return
    if method == "check":
        from collapselab.check import check_files

        times, res = timed(lambda: check_files([path]).measurement.metrics.eigenvalues)
    elif method == "load_svdvals":

        def run():  # type: ignore[no-untyped-def]
            x = torch.from_numpy(np.load(path))
            xc = x - x.mean(0)
            return (torch.linalg.svdvals(xc).double() ** 2 / x.shape[0]).numpy()

        times, res = timed(run)
    else:
        x = np.load(path)
        n = x.shape[0]
        xt = torch.from_numpy(x)

        def stream():  # type: ignore[no-untyped-def]
            m = Moments(x.shape[1]).update(x)
            return eigenvalues_desc(m.covariance())[0]

        def svdvals():  # type: ignore[no-untyped-def]
            return (torch.linalg.svdvals(xt - xt.mean(0)).double() ** 2 / n).numpy()

        def np_svd():  # type: ignore[no-untyped-def]
            return np.linalg.svd(x - x.mean(0), compute_uv=False).astype(np.float64) ** 2 / n

        def cov32():  # type: ignore[no-untyped-def]
            xc = xt - xt.mean(0)
            return torch.linalg.eigvalsh(xc.T @ xc / n).flip(0).double().numpy()

        fns = {
            "metrics": lambda: compute_metrics(x).eigenvalues,
            "stream": stream,
            "svdvals": svdvals,
            "np_svd": np_svd,
            "cov32": cov32,
            "gemm32": lambda: (xt.T @ xt, None)[1],
            "syrk32": lambda: (x.T @ x, None)[1],
        }
        times, base, res, peak = interleaved(fns[method], x, reps)
        if res is not None:
            np.save(eig_out, np.asarray(res, dtype=np.float64))
        print(json.dumps({"times": times, "peak_mb": peak, **base}))
        return
    if res is not None:
        np.save(eig_out, np.asarray(res, dtype=np.float64))
    peak_mb = _vm_hwm_mb()
    print(json.dumps({"times": times, "peak_mb": peak_mb}))


def interleaved(fn, x: np.ndarray, reps: int):  # type: ignore[no-untyped-def]
    """Time ``fn`` ``reps`` times, each rep after one warm ``gemm32`` and one warm
    ``syrk64`` baseline in this process; the peak RSS is of ``fn``'s reps alone."""
    import torch

    xt = torch.from_numpy(x)

    def syrk64() -> float:
        x64 = x.astype(np.float64)  # outside the timing (first touch of its pages)
        x64.T @ x64  # warm: the same shapes again
        t0 = time.perf_counter()
        x64.T @ x64
        return time.perf_counter() - t0

    def gemm32() -> float:
        t0 = time.perf_counter()
        xt.T @ xt
        return time.perf_counter() - t0

    gemm32()
    res = fn()  # warm-up of the method
    base: dict[str, list[float]] = {"base_gemm32": [], "base_syrk64": []}
    times, peak = [], 0.0
    for _ in range(reps):
        base["base_gemm32"].append(gemm32())
        base["base_syrk64"].append(syrk64())
        _reset_hwm()
        t0 = time.perf_counter()
        res = fn()
        times.append(time.perf_counter() - t0)
        peak = max(peak, _vm_hwm_mb())
    return times, base, res, peak


def _reset_hwm() -> None:
    """Reset this process's peak RSS to its current RSS (Linux >= 4.0; else a no-op,
    and the peak then includes the baselines' float64 copy)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def row_stats(x: np.ndarray, reps: int) -> dict:
    """Median ms of: a read, the bare centred syrk loop, a warm update, the common std."""
    import torch
    import torch.nn.functional as F
    from scipy.linalg.blas import dger

    import collapselab.metrics.moments as mom
    from collapselab.metrics import Moments

    n, d = x.shape
    xt = torch.from_numpy(x)
    rows = max(mom._MIN_BLOCK_ROWS, mom._BLOCK_BYTES // (8 * (d + 3)))
    workers = max(1, min(mom._WORKERS, n // mom._MIN_BLOCK_ROWS))
    bounds = [n * i // workers for i in range(workers + 1)]

    def bare_range(lo: int, hi: int) -> None:
        a0 = mom._scratch("a", (rows, d + 3))  # the same reused buffers as the library
        g = mom._scratch("g_block", (d + 3, d + 3))
        acc = np.zeros((d + 3, d + 3))
        s = x[lo : lo + 256].mean(0, dtype=np.float64).astype(np.float32).astype(np.float64)
        sq, wsq = np.empty(rows), np.empty(d)
        for b in range(lo, hi, rows):
            k = min(rows, hi - b)
            a = a0[:k]
            if mom._rows is not None:  # the library's kernel, shift only
                mom._rows.shift_rows(x[b : b + k], k, d, s, 0.0, a, sq, wsq, False)
            else:  # the library's numpy path, shift only
                np.copyto(a[:, :d], x[b : b + k], casting="unsafe")
                dger(-1.0, np.r_[s, 0.0, 0.0, 0.0], np.ones(k), a=a.T, overwrite_a=1)
                a[:, d:] = 1.0
            np.matmul(a.T, a, out=g)
            acc += g

    def bare() -> None:
        with mom.single_threaded_blas():
            futures = [mom._POOL.get().submit(bare_range, bounds[i], bounds[i + 1])
                       for i in range(workers)]  # fmt: skip
            for f in futures:
                f.result()

    warm = Moments(d).update(x)
    fns = {
        "read": lambda: float(xt.sum()),
        "bare": bare,
        "update": lambda: warm.update(x),
        "common": lambda: float(F.normalize(xt, dim=1).std(0).mean()),
    }
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def _vm_hwm_mb() -> float:
    """This process's peak RSS (VmHWM). ru_maxrss is not used: Linux carries it across
    fork+exec, so a worker would report its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_worker(method: str, path: str, reps: int, tmp: str) -> dict:
    eig_out = os.path.join(tmp, f"eig-{method}.npy")
    if os.path.exists(eig_out):
        os.unlink(eig_out)
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", method, path, str(reps), eig_out],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["eig"] = np.load(eig_out) if os.path.exists(eig_out) else None
    return out


def run_rounds(methods: Sequence[str], path: str, reps: int, rounds: int, tmp: str) -> dict:
    """Each method in a fresh process, ``rounds`` times, interleaved; times pooled."""
    res: dict[str, dict] = {}
    for _ in range(rounds):
        for m in methods:
            r = run_worker(m, path, reps, tmp)
            if "error" in r or "error" in res.get(m, {}):
                res[m] = r if "error" in r else res[m]
                continue
            if m in res:
                for key in ("times", "base_gemm32", "base_syrk64"):
                    if key in r:
                        r[key] = res[m][key] + r[key]
                r["peak_mb"] = max(r["peak_mb"], res[m]["peak_mb"])
            res[m] = r
    return res


def run_rowstats(path: str, reps: int) -> dict | None:
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", "rowstats", path, str(reps), "-"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def accuracy(eig: np.ndarray | None, ref: np.ndarray) -> tuple[str, str]:
    if eig is None:
        return "-", "-"
    eig = np.sort(eig)[::-1][: ref.size]
    keep = ref > 1e-6 * ref[0]
    rel = np.max(np.abs(eig[keep] - ref[keep]) / ref[keep])
    return f"{rel:.1e}", str(int(np.sum(eig < 0)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="10000x128,100000x768")
    ap.add_argument("--file-rows", type=int, default=1_000_000, help="0 skips the file case")
    ap.add_argument("--file-dim", type=int, default=256)
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions per process")
    ap.add_argument("--rounds", type=int, default=3,
                    help="processes per method, interleaved (shared machines drift)")
    ap.add_argument("--out", default=None, help="also write the tables to this markdown file")
    args = ap.parse_args()
    lines = [f"command: python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}", ""]

    def emit(s: str = "") -> None:
        print(s, flush=True)
        lines.append(s)

    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            n, d = (int(v) for v in size.split("x"))
            for kind in ("spread", "collapsed"):
                path = os.path.join(tmp, f"x-{n}-{d}-{kind}.npy")
                np.save(path, make_data(n, d, kind))
                ref = reference_eigs(path)
                res = run_rounds(METHODS, path, args.reps, args.rounds, tmp)
                ok = [r for r in res.values() if "error" not in r]
                g32 = statistics.median(t for r in ok for t in r["base_gemm32"])
                s64 = statistics.median(t for r in ok for t in r["base_syrk64"])
                emit(f"## ({n}, {d}), {kind} spectrum; warm in-process baselines (medians over "
                     f"every worker): gemm32 = {g32 * 1e3:.1f} ms, syrk64 = {s64 * 1e3:.1f} ms")
                emit("| method | median ms | / gemm32 | / syrk64 | peak MB | max rel err "
                     "| negative eigs |")
                emit("|---|---|---|---|---|---|---|")
                for m in METHODS:
                    r = res[m]
                    if "error" in r:
                        emit(f"| {m} | failed: {r['error']} | | | | | |")
                        continue
                    med = statistics.median(r["times"])
                    b32 = statistics.median(r["base_gemm32"])  # this method's own processes
                    b64 = statistics.median(r["base_syrk64"])
                    err, neg = accuracy(r["eig"], ref)
                    emit(f"| {m} | {med * 1e3:.1f} | {med / b32:.2f} | {med / b64:.2f} "
                         f"| {r['peak_mb']:.0f} | {err} | {neg} |")
                emit()
                rs = run_rowstats(path, max(args.reps, 9))
                if rs is not None:
                    cost = rs["update"] - rs["bare"]
                    emit(f"row statistics at ({n}, {d}), {kind}: update {rs['update']:.1f} ms, "
                         f"bare centred syrk {rs['bare']:.1f} ms, difference {cost:.1f} ms = "
                         f"**{cost / rs['read']:.1f} reads** (1 read = {rs['read']:.2f} ms); "
                         f"`F.normalize(z).std(0).mean()` = {rs['common'] / rs['read']:.0f} reads")
                    emit()
                os.unlink(path)
        if args.file_rows:
            n, d = args.file_rows, args.file_dim
            path = os.path.join(tmp, "big.npy")
            np.save(path, make_data(n, d, "collapsed"))
            ref = reference_eigs(path)
            res = run_rounds(("check", "load_svdvals"), path, args.reps, args.rounds, tmp)
            base = statistics.median(res["load_svdvals"]["times"])
            emit(f"## whole `check` of a ({n}, {d}) float32 .npy (nearly collapsed spectrum)")
            emit("| method | median s | / load+svdvals | whole-process peak MB | max rel err |")
            emit("|---|---|---|---|---|")
            for m, r in res.items():
                med = statistics.median(r["times"])
                err, _ = accuracy(r["eig"], ref)
                emit(f"| {m} | {med:.2f} | {med / base:.2f} | {r['peak_mb']:.0f} | {err} |")
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    else:
        main()
