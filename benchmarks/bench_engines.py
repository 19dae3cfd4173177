"""Which path when: one (n, d) float32 corpus checked by every engine collapselab offers.

The same rows (default (10000000, 384), 15.4 GB) are written once as one ``.npy``, as 16
``.npy`` shards and as 16 Parquet shards (a fixed-size-list column, 100,000-row groups,
snappy), then checked from a dropped page cache (root; else warm, and it says so) by:

- ``one file``: ``collapselab check corpus.npy`` (streamed, read ahead);
- ``many files``: ``collapselab check 'npy/*.npy'`` (one process, one accumulator);
- ``torchrun``: ``torchrun --nproc_per_node=2 -m collapselab check 'npy/*.npy'`` (gloo:
  each rank reads its slice of every file, d x d states all-reduced);
- ``parquet``: ``collapselab check 'parquet/*.parquet'`` (one process, row groups);
- ``ray``: ``collapselab check 'parquet/*.parquet' --engine ray`` (a fresh local cluster
  on this machine's cores, started inside the timed command);
- ``spark``: ``collapselab check 'parquet/*.parquet' --engine spark --master local[*]``
  (a fresh JVM, started inside the timed command).

Two floors, timed the same way, give each path its ratio: ``npy_read`` (``cat`` of the
16 ``.npy`` shards to /dev/null: the disk) and ``parquet_read`` (pyarrow decoding every row
group of the Parquet shards on every core, nothing else: the decoder); the table gives each
path's time over max(floor, float64 syrk of the rows in memory, ``syrk``).

That max assumes the read and the arithmetic overlap on separate resources. Decoding
Parquet is CPU work on the same cores as the syrk, so a Parquet path cannot go below
syrk + decode_1t / cores, where ``parquet_decode_1t`` is the decode on one thread (its
wall time is its CPU time): the last column gives the Parquet paths' time over that
shared-core floor.

Each is a whole process timed from outside (start-up included, as a user sees it); rows/s
and GB/s are of the float32 payload. Every engine must report the same eigenvalues (to
1e-9 relative) and the same verdict, else the script fails.

Run: ``python benchmarks/bench_engines.py [--rows 10000000] [--dir /big/disk]
[--engines npy_read,parquet_read,parquet_decode_1t,syrk,one,many,torchrun,parquet,ray,spark]
[--out benchmarks/results/engines.md]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from bench_io import SYRK, drop_cache, row_kernel  # the script's folder is on sys.path

D = 384
SHARDS = 16
BLOCK = 100_000


def rows_block(lo: int, k: int) -> np.ndarray:
    """Rows ``lo .. lo + k`` of the corpus: a steep (power-law) spectrum plus a mean."""
    rng = np.random.default_rng(lo)
    scale = np.arange(1, D + 1, dtype=np.float32) ** -0.5
    return (rng.standard_normal((k, D), dtype=np.float32) * scale + 0.1).astype(np.float32)


def write_all(folder: Path, n: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (folder / "npy").mkdir(parents=True, exist_ok=True)
    (folder / "parquet").mkdir(exist_ok=True)
    bounds = [n * i // SHARDS for i in range(SHARDS + 1)]
    one = open(folder / "corpus.npy", "wb")
    np.lib.format.write_array_header_1_0(one, {"descr": "<f4", "fortran_order": False,
                                              "shape": (n, D)})  # fmt: skip
    for s in range(SHARDS):
        lo, hi = bounds[s], bounds[s + 1]
        with open(folder / "npy" / f"part-{s:03d}.npy", "wb") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False,
                                                    "shape": (hi - lo, D)})  # fmt: skip
            schema = pa.schema([("emb", pa.list_(pa.float32(), D))])
            with pq.ParquetWriter(folder / "parquet" / f"part-{s:03d}.parquet", schema) as w:
                for a in range(lo, hi, BLOCK):
                    x = rows_block(a, min(BLOCK, hi - a))
                    f.write(x.tobytes())
                    one.write(x.tobytes())
                    emb = pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), D)
                    w.write_table(pa.table({"emb": emb}), row_group_size=BLOCK)
    one.close()


def commands(folder: Path, n: int) -> dict[str, list[str]]:
    cl = [sys.executable, "-m", "collapselab", "check"]
    npy, pq = str(folder / "npy" / "*.npy"), str(folder / "parquet" / "*.parquet")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={min(2, os.cpu_count() or 1)}", "-m", "collapselab",
                "check"]  # fmt: skip
    parquet_read = (
        "import glob, os, sys\nfrom concurrent.futures import ThreadPoolExecutor\n"
        "import pyarrow.parquet as pq\n"
        "units = [(f, g) for f in sorted(glob.glob(sys.argv[1]))\n"
        "         for g in range(pq.ParquetFile(f).metadata.num_row_groups)]\n"
        "read = lambda u: pq.ParquetFile(u[0]).read_row_group(u[1], use_threads=False).nbytes\n"
        "with ThreadPoolExecutor(int(sys.argv[2]) or os.cpu_count()) as pool:\n"
        "    print(sum(pool.map(read, units)))\n"
    )
    return {
        "npy_read": ["sh", "-c", f"cat {folder}/npy/*.npy > /dev/null"],
        "parquet_read": [sys.executable, "-c", parquet_read, pq, "0"],
        "parquet_decode_1t": [sys.executable, "-c", parquet_read, pq, "1"],
        "syrk": [sys.executable, "-c", SYRK, str(n), str(D), "4096"],
        "one": cl + [str(folder / "corpus.npy"), "--json"],
        "many": cl + [npy, "--json"],
        "torchrun": torchrun + [npy, "--json"],
        "parquet": cl + [pq, "--json"],
        "ray": cl + [pq, "--engine", "ray", "--json"],
        "spark": cl + [pq, "--engine", "spark", "--master", "local[*]", "--json"],
    }


FLOORS = {"npy_read": "npy", "parquet_read": "parquet", "parquet_decode_1t": "parquet",
          "syrk": None}  # fmt: skip
LABELS = {
    "npy_read": "floor: `cat` of the `.npy` shards (the disk)",
    "parquet_read": "floor: pyarrow decodes every row group, every core",
    "parquet_decode_1t": "floor: pyarrow decodes every row group, one thread (= its CPU time)",
    "syrk": "floor: float64 syrk of N rows, in memory (timed inside, as in bench_io --huge)",
    "one": "one file: `check corpus.npy`",
    "many": "many files, one process: `check 'npy/*.npy'`",
    "torchrun": "torchrun, 2 ranks (gloo): `torchrun ... check 'npy/*.npy'`",
    "parquet": "Parquet shards, one process: `check 'parquet/*.parquet'`",
    "ray": "Ray Data (local cluster): `check 'parquet/*.parquet' --engine ray`",
    "spark": "Spark (local[*]): `check 'parquet/*.parquet' --engine spark`",
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--dir", default="/tmp/collapselab-engines")
    p.add_argument("--engines",
                   default="npy_read,parquet_read,parquet_decode_1t,syrk,one,many,torchrun,"
                   "parquet,ray,spark")
    p.add_argument("--out", default=None, help="also write the table here")
    p.add_argument("--keep", action="store_true", help="keep the files")
    args = p.parse_args()
    folder = Path(args.dir)
    n = args.rows
    marker = folder / f"done-{n}"
    if not marker.exists():
        shutil.rmtree(folder, ignore_errors=True)
        t0 = time.perf_counter()
        write_all(folder, n)
        marker.touch()
        print(f"wrote the corpus in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    gb = n * D * 4 / 1e9
    cmds = commands(folder, n)
    rows, ref, cold = [], None, True
    for name in args.engines.split(","):
        cold &= drop_cache()
        t0 = time.perf_counter()
        out = subprocess.run(cmds[name], capture_output=True, text=True)
        sec = time.perf_counter() - t0
        if out.returncode != 0:
            raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
        if name == "syrk":  # the arithmetic alone, timed inside (as in bench_io --huge)
            sec = float(json.loads(out.stdout)["s"])
        if name in FLOORS:
            rows.append((name, sec))
            print(f"{name}: {sec:.1f} s", file=sys.stderr)
            continue
        res = json.loads(out.stdout.strip().splitlines()[-1])
        eig = np.asarray(res["eigenvalues"])
        if ref is None:
            ref = (eig, res["verdict"])
        else:
            np.testing.assert_allclose(eig, ref[0], rtol=1e-9, atol=1e-9 * ref[0].max())
            assert res["verdict"] == ref[1], (name, res["verdict"], ref[1])
        rows.append((name, sec))
        print(f"{name}: {sec:.1f} s", file=sys.stderr)
    lines = [
        f"({n}, {D}) float32, {gb:.1f} GB of rows, "
        f"{os.cpu_count()} cores, {'page cache dropped before each' if cold else 'WARM cache'}, "
        f"{row_kernel()}"
        f"; whole process each (start-up included); verdict {ref[1] if ref else '-'}, "
        "eigenvalues equal across engines to 1e-9",
        "",
        "| path | seconds | rows/s | GB/s | / max(its read floor, syrk) "
        "| / (syrk + decode_1t / cores) |",
        "|---|---|---|---|---|---|",
    ]
    floor = dict(rows)
    shared = floor.get("syrk", 0.0) + floor.get("parquet_decode_1t", 0.0) / (os.cpu_count() or 1)
    for name, sec in rows:
        kind = "parquet" if name in ("parquet", "ray", "spark") else "npy"
        base = max(floor.get(f"{kind}_read", 0.0), floor.get("syrk", 0.0))
        ratio = f"{sec / base:.2f}x" if name not in FLOORS and base else "-"
        both = kind == "parquet" and name not in FLOORS and "parquet_decode_1t" in floor
        lines.append(f"| {LABELS[name]} | {sec:.1f} | {n / sec / 1e6:.2f}M | {gb / sec:.2f} "
                     f"| {ratio} | {f'{sec / shared:.2f}x' if both else '-'} |")  # fmt: skip
    if "parquet_decode_1t" in floor and "syrk" in floor:
        lines.append(f"\nshared-core floor of the Parquet paths: {floor['syrk']:.1f} + "
                     f"{floor['parquet_decode_1t']:.1f} / {os.cpu_count()} = {shared:.1f} s")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    if not args.keep:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
