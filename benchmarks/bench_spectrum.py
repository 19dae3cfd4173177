"""Spectrum of an (N, d) embedding matrix: speed, peak memory and accuracy, side by side.

Methods (each timed in its own subprocess, so "peak" is that process's whole peak RSS):

- ``stream``   collapselab's path: ``Moments.update`` (float64 block-centred syrk) + eigvalsh
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

Usage: ``python benchmarks/bench_spectrum.py [--sizes 10000x128,100000x768] [--file-rows 1000000]
[--reps 3] [--out benchmarks/results/spectrum.md]``. Medians over reps; ratios are to
``gemm32`` measured in the same run.
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
from pathlib import Path

import numpy as np

METHODS = ["stream", "svdvals", "np_svd", "cov32", "gemm32", "syrk32"]


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

    from collapselab.metrics import Moments

    def timed(fn):  # type: ignore[no-untyped-def]
        times, res = [], None
        for _ in range(reps):
            t0 = time.perf_counter()
            res = fn()
            times.append(time.perf_counter() - t0)
        return times, res

    if method == "check":
        from collapselab.check import check_files

        times, res = timed(lambda: check_files([path]).diagnosis.metrics.eigenvalues)
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
            return np.linalg.eigvalsh(m.covariance())[::-1]

        def svdvals():  # type: ignore[no-untyped-def]
            return (torch.linalg.svdvals(xt - xt.mean(0)).double() ** 2 / n).numpy()

        def np_svd():  # type: ignore[no-untyped-def]
            return np.linalg.svd(x - x.mean(0), compute_uv=False).astype(np.float64) ** 2 / n

        def cov32():  # type: ignore[no-untyped-def]
            xc = xt - xt.mean(0)
            return torch.linalg.eigvalsh(xc.T @ xc / n).flip(0).double().numpy()

        fns = {
            "stream": stream,
            "svdvals": svdvals,
            "np_svd": np_svd,
            "cov32": cov32,
            "gemm32": lambda: (xt.T @ xt, None)[1],
            "syrk32": lambda: (x.T @ x, None)[1],
        }
        times, res = timed(fns[method])
    if res is not None:
        np.save(eig_out, np.asarray(res, dtype=np.float64))
    peak_mb = _vm_hwm_mb()
    print(json.dumps({"times": times, "peak_mb": peak_mb}))


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
    ap.add_argument("--reps", type=int, default=3)
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
                res = {m: run_worker(m, path, args.reps, tmp) for m in METHODS}
                base = statistics.median(res["gemm32"]["times"])
                emit(f"## ({n}, {d}), {kind} spectrum; baseline gemm32 = {base * 1e3:.1f} ms")
                emit("| method | median ms | / gemm32 | peak MB | max rel err | negative eigs |")
                emit("|---|---|---|---|---|---|")
                for m in METHODS:
                    r = res[m]
                    if "error" in r:
                        emit(f"| {m} | failed: {r['error']} | | | | |")
                        continue
                    med = statistics.median(r["times"])
                    err, neg = accuracy(r["eig"], ref)
                    emit(f"| {m} | {med * 1e3:.1f} | {med / base:.2f} | {r['peak_mb']:.0f} | {err} | {neg} |")
                emit()
                os.unlink(path)
        if args.file_rows:
            n, d = args.file_rows, args.file_dim
            path = os.path.join(tmp, "big.npy")
            np.save(path, make_data(n, d, "collapsed"))
            ref = reference_eigs(path)
            res = {m: run_worker(m, path, args.reps, tmp) for m in ("check", "load_svdvals")}
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
