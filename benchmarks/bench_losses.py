"""NT-Xent / InfoNCE forward + backward: collapselab against plain torch and peer libraries.

Implementations (each (impl, N) cell runs in its own subprocess, so its peak memory is its
own and an out-of-memory cell cannot take the others down):

NT-Xent family (symmetric, 2N anchors, 2N x 2N logits); baseline ``ref_nt_xent``:
- ``ref_nt_xent``   minimal plain torch: ``F.cross_entropy`` on the ``masked_fill``-ed
                    2N x 2N cosine logits (what most code bases write)
- ``nt_xent``       ``collapselab.losses.nt_xent`` (one 2N x 2N buffer, in-place softmax)
- ``nt_xent_block`` ``nt_xent(..., block_size=B)`` (memory-bounded, blocks recomputed)
- ``lightly``       ``lightly.loss.NTXentLoss``                      (only if installed)
- ``pml``           ``pytorch_metric_learning.losses.NTXentLoss``    (only if installed)

InfoNCE family (one-directional, N anchors, N x N logits); baseline ``ref_info_nce``:
- ``ref_info_nce``  minimal plain torch: ``F.cross_entropy(a @ p.T / tau, arange(N))``
- ``info_nce``      ``collapselab.losses.info_nce``
- ``info_nce_block`` ``info_nce(..., block_size=B)``
- ``st_mnrl``       sentence-transformers ``MultipleNegativesRankingLoss`` (if installed)

Columns: median wall time of forward + backward (min and max in brackets), ratio to the
family's baseline measured in the same run, multiple of the flop floor (6 M K d flops for
M anchors and K candidates: 24 N^2 d for NT-Xent, 6 N^2 d for InfoNCE, at the float32 GEMM
rate measured in the cell's own process, so machine load moves both alike), and peak
resident-memory growth of the call (the kernel's high-water mark, reset before each call).
A cell that cannot allocate (address space capped at ``--mem-limit-gb`` so the machine never
swaps) reads "out of memory".

Usage: ``python benchmarks/bench_losses.py [--sizes 256,1024,4096] [--impls nt_xent,...]
[--block-size 256] [--threads 2] [--reps 5] [--out benchmarks/results/losses.md]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

D_DEFAULT = 128
TAU_DEFAULT = 0.1
SIZES_DEFAULT = "256,1024,4096,8192,16384,65536"

FAMILY = {
    "ref_nt_xent": "nt_xent",
    "nt_xent": "nt_xent",
    "nt_xent_block": "nt_xent",
    "lightly": "nt_xent",
    "pml": "nt_xent",
    "ref_info_nce": "info_nce",
    "info_nce": "info_nce",
    "info_nce_block": "info_nce",
    "st_mnrl": "info_nce",
}
BASELINE = {"nt_xent": "ref_nt_xent", "info_nce": "ref_info_nce"}
PEERS = {"lightly": "lightly", "pml": "pytorch_metric_learning", "st_mnrl": "sentence_transformers"}

LossFn = Callable[..., object]


# ----------------------------------------------------------------------------- child side
def _build(impl: str, tau: float, block: int) -> LossFn:
    """Return f(z1, z2) -> scalar loss for ``impl`` (imports happen here, in the child)."""
    import torch
    import torch.nn.functional as F

    if impl == "ref_nt_xent":

        def ref_nt_xent(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
            n = z1.shape[0]
            z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2N, d)
            sim = z @ z.T / tau  # (2N, 2N)
            sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
            labels = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
            return F.cross_entropy(sim, labels)

        return ref_nt_xent
    if impl == "ref_info_nce":

        def ref_info_nce(a: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
            logits = F.normalize(a, dim=1) @ F.normalize(p, dim=1).T / tau  # (N, N)
            return F.cross_entropy(logits, torch.arange(a.shape[0]))

        return ref_info_nce
    if impl in ("nt_xent", "nt_xent_block"):
        from collapselab.losses import nt_xent

        bs = block if impl == "nt_xent_block" else None
        return lambda z1, z2: nt_xent(z1, z2, temperature=tau, block_size=bs)
    if impl in ("info_nce", "info_nce_block"):
        from collapselab.losses import info_nce

        bs = block if impl == "info_nce_block" else None
        return lambda a, p: info_nce(a, p, temperature=tau, block_size=bs)
    if impl == "lightly":
        from lightly.loss import NTXentLoss

        lightly_loss = NTXentLoss(temperature=tau)
        return lambda z1, z2: lightly_loss(z1, z2)
    if impl == "pml":
        from pytorch_metric_learning.losses import NTXentLoss as PMLNTXent

        pml_loss = PMLNTXent(temperature=tau)

        def pml(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
            labels = torch.arange(z1.shape[0]).repeat(2)  # views of sample i share label i
            return pml_loss(torch.cat([z1, z2]), labels)

        return pml
    if impl == "st_mnrl":
        from sentence_transformers.losses import MultipleNegativesRankingLoss

        mnrl = MultipleNegativesRankingLoss(model=torch.nn.Identity(), scale=1.0 / tau)
        if not hasattr(mnrl, "compute_loss_from_embeddings"):
            raise ImportError("this sentence-transformers has no compute_loss_from_embeddings")
        return lambda a, p: mnrl.compute_loss_from_embeddings([a, p], None)
    raise SystemExit(f"unknown impl {impl!r}")


def _kib(key: str) -> int:
    text = Path("/proc/self/status").read_text()
    match = re.search(key + r":\s+(\d+)", text)
    return int(match.group(1)) if match else 0


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM <- VmRSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def _gemm_gflops() -> float:
    """The float32 GEMM rate right now (best of 3 2048^3 products), for the flop floor."""
    import torch

    x, y = torch.randn(2048, 2048), torch.randn(2048, 2048)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        x @ y
        times.append(time.perf_counter() - t0)
    return 2 * 2048**3 / min(times) / 1e9


def child(impl: str, n: int, d: int, tau: float, block: int, reps: int, budget_s: float,
          threads: int, mem_limit_gb: float) -> dict[str, object]:
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    if mem_limit_gb > 0:  # fail allocations cleanly instead of swapping / OOM-killing
        limit = _kib("VmSize") * 1024 + int(mem_limit_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if impl == "gemm":
        return {"gflops": _gemm_gflops()}
    try:
        fn = _build(impl, tau, block)
    except ImportError as exc:
        return {"error": "not installed", "detail": str(exc)}
    gen = torch.Generator().manual_seed(0)
    try:
        # warm up kernels and imports at a small size
        w1 = torch.randn(64, d, generator=gen, requires_grad=True)
        fn(w1, torch.randn(64, d, generator=gen, requires_grad=True)).backward()  # type: ignore[attr-defined]
        z1 = torch.randn(n, d, generator=gen, requires_grad=True)
        z2 = torch.randn(n, d, generator=gen, requires_grad=True)
        times, peaks = [], []
        start = time.perf_counter()
        for _ in range(reps):
            z1.grad = z2.grad = None
            can_peak = _reset_peak()
            rss0 = _kib("VmRSS")
            t0 = time.perf_counter()
            loss = fn(z1, z2)
            loss.backward()  # type: ignore[attr-defined]
            times.append(time.perf_counter() - t0)
            peaks.append((_kib("VmHWM") - rss0) / 1024 if can_peak else float("nan"))
            del loss
            if time.perf_counter() - start > budget_s:
                break
    except (RuntimeError, MemoryError) as exc:
        msg = str(exc).lower()
        if "memory" in msg or "allocate" in msg or isinstance(exc, MemoryError):
            cap = f" (cap {mem_limit_gb:g} GB)" if mem_limit_gb > 0 else ""
            return {"error": "out of memory" + cap, "detail": str(exc)[:200]}
        raise
    # the GEMM rate in this process, just after the cell, so that the floor sees the same load
    return {"times": times, "peak_mib": max(peaks), "gflops": _gemm_gflops()}


# ----------------------------------------------------------------------------- parent side
def run_cell(impl: str, n: int, args: argparse.Namespace) -> dict[str, object]:
    cmd = [
        sys.executable, __file__, "--child", impl, "--n", str(n), "--d", str(args.d),
        "--tau", str(args.tau), "--block-size", str(args.block_size), "--reps", str(args.reps),
        "--budget-s", str(args.budget_s), "--threads", str(args.threads),
        "--mem-limit-gb", str(args.mem_limit_gb),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        killed = proc.returncode in (-9, 137)
        tail = proc.stderr.strip().splitlines()[-1:] or ["?"]
        return {"error": "out of memory (killed)" if killed else f"failed: {tail[0][:120]}"}
    result: dict[str, object] = json.loads(lines[-1])
    return result


def fmt_row(impl: str, n: int, cell: dict[str, object], base: dict[str, object] | None,
            flops: float) -> str:
    if "error" in cell:
        return f"| {n} | {impl} | {cell['error']} | | | |"
    times = sorted(cast(list[float], cell["times"]))
    med = statistics.median(times)
    ratio = ""
    if base is not None and "times" in base:
        ratio = f"{med / statistics.median(cast(list[float], base['times'])):.2f}"
    spread = f"{med * 1e3:.1f} [{times[0] * 1e3:.1f}, {times[-1] * 1e3:.1f}]"
    if len(times) == 1:
        spread = f"{med * 1e3:.1f} (1 run)"
    floor_s = flops / (float(cast(float, cell["gflops"])) * 1e9)
    return (
        f"| {n} | {impl} | {spread} | {ratio or '-'} | {med / floor_s:.1f} | "
        f"{cell['peak_mib']:.0f} |"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default=SIZES_DEFAULT, help="comma-separated batch sizes N")
    p.add_argument("--impls", default=",".join(FAMILY), help="comma-separated implementations")
    p.add_argument("--d", type=int, default=D_DEFAULT)
    p.add_argument("--tau", type=float, default=TAU_DEFAULT)
    p.add_argument("--block-size", type=int, default=256, help="rows per block (memory-bounded)")
    p.add_argument("--reps", type=int, default=5, help="timed calls per cell (median reported)")
    p.add_argument("--budget-s", type=float, default=30.0, help="stop repeating a cell after this")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    p.add_argument("--mem-limit-gb", type=float, default=16.0, help="address-space cap per cell")
    p.add_argument("--max-ref-n", type=int, default=16384,
                   help="skip plain (N^2-memory) implementations above this N")
    p.add_argument("--out", type=Path, default=None, help="also write the table (markdown)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.child:
        res = child(args.child, args.n, args.d, args.tau, args.block_size, args.reps,
                    args.budget_s, args.threads, args.mem_limit_gb)
        print(json.dumps(res))
        return

    sizes = [int(s) for s in args.sizes.split(",") if s]
    impls = [i for i in args.impls.split(",") if i]
    unknown = [i for i in impls if i not in FAMILY]
    if unknown:
        raise SystemExit(f"--impls: unknown {unknown}; choose from {list(FAMILY)}")
    gflops = float(run_cell("gemm", 0, args)["gflops"])  # type: ignore[arg-type]
    lines = [
        f"Command: `python benchmarks/bench_losses.py {' '.join(sys.argv[1:])}`",
        "",
        f"d={args.d}, tau={args.tau}, block size {args.block_size}, threads "
        f"{args.threads or 'torch default'}, address space capped at {args.mem_limit_gb:g} GB "
        f"per cell. Flop floor = 6 x anchors x candidates x d at the float32 GEMM rate "
        f"measured in each cell's process right after it ({gflops:.0f} GFLOP/s at the start).",
        "Times in ms: median [min, max] of forward + backward; ratio to the family's plain-torch "
        "reference; peak = growth of resident memory during the call (MiB).",
        "",
        "| N | impl | time ms | ratio to ref | x flop floor | peak MiB |",
        "|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    plain = {"ref_nt_xent", "nt_xent", "lightly", "pml", "ref_info_nce", "info_nce", "st_mnrl"}
    for n in sizes:
        cells: dict[str, dict[str, object]] = {}
        # baselines first so every ratio has its denominator
        for impl in sorted(impls, key=lambda i: i not in BASELINE.values()):
            if impl in PEERS and not _importable(PEERS[impl]):
                cells[impl] = {"error": "not installed"}
            elif impl in plain and n > args.max_ref_n:
                cells[impl] = {"error": f"skipped (N^2 memory; --max-ref-n {args.max_ref_n})"}
            else:
                cells[impl] = run_cell(impl, n, args)
            fam = FAMILY[impl]
            anchors = 2 * n if fam == "nt_xent" else n
            flops = 6.0 * anchors * anchors * args.d
            row = fmt_row(impl, n, cells[impl], cells.get(BASELINE[fam]), flops)
            lines.append(row)
            print(row, flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=args.out.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write("# NT-Xent / InfoNCE benchmark\n\n" + "\n".join(lines) + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, args.out)


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


if __name__ == "__main__":
    main()
