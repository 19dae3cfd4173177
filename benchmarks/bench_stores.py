"""Vector stores read directly: ``collapselab check SPEC`` vs the same rows as ``.npy``.

Every store is written with its own library from one seeded float32 matrix (a power-law
spectrum under a random rotation, plus an offset), and so is a ``.npy`` of the same rows,
the baseline. Each spec is then checked as a user runs it, ``collapselab check SPEC
--json`` in a fresh subprocess (wall time in this process, peak RSS of the child from
``/usr/bin/time``), store and ``.npy`` interleaved round by round in the same run, the page
cache warmed first (every file of the store read once): this measures the readers, not
the disk. Reported per store: the size on disk (so that the peak RSS can be read against
it: the readers stream, they must never load the whole store), wall seconds (median of
``--repeats``), rows/s, peak RSS, the ratios to the ``.npy`` path, and the largest
relative difference between the store's eigenvalues and the ``.npy`` path's.

Stores and default sizes (d = 384; ``--quick``: the small sizes):

* FAISS ``IndexFlatL2`` 1M rows (``--quick`` 50k); ``IVF256,Flat`` and ``IVF256,PQ48``
  200k (20k), trained on the first 20k rows (IVF-PQ without the factory's polysemous
  training, 100 s for nothing the reader sees): the reader gives IVF rows in
  inverted-list order, and IVF-PQ rows decoded
  from their codes (lossy), so IVF-PQ is compared with faiss's own decoding of the same
  index, written as ``.npy`` (and, for information, with the original rows);
* Lance (a LanceDB table) 1M rows (50k);
* Chroma (``PersistentClient``) 40k rows (4k): Chroma's own ``collection.add`` builds its
  HNSW index while it writes and is slow, so the size is set by the write time;
* PostgreSQL, a ``real[]`` column, 200k rows (20k), on a throwaway server (Debian's
  ``postgresql`` binaries, started as the ``postgres`` user on a free port, data kept under
  ``--dir``, stopped at the end); ``real[]`` because Debian ships no pgvector. The child's
  RSS does not include the server's memory.

A full run also checks every store (once) at its ``--quick`` size and at 3x its size
(3M rows of FAISS flat and Lance, 120k of Chroma, ...; skipped, with a note, when the disk
lacks room), for the memory-vs-size table: a bounded reader adds the same memory above
the ``.npy`` path of the same rows whatever the store's size (``--no-scaling`` skips it).

The written stores are cached under ``--dir`` (default /work/stores-data), so reruns skip
the writing (the write time shown is the one measured when the store was written);
``--clean`` deletes them. A run without ``--quick``/``--only``/``--size`` writes
``benchmarks/results/stores.md`` and ``.json`` (or wherever ``--out`` says).

Run: ``nice python benchmarks/bench_stores.py [--quick] [--only faiss,lance,chroma,postgres]
[--size lance=500000] [--repeats 3] [--no-scaling] [--dir /work/stores-data] [--clean]``
"""

from __future__ import annotations

import argparse
import functools
import glob
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
D = 384
SEED = 20240611
BLOCK = 50_000  # rows generated (and written) per block
#: store -> (full size, quick size)
SIZES = {
    "faiss-flat": (1_000_000, 50_000),
    "faiss-ivfflat": (200_000, 20_000),
    "faiss-ivfpq": (200_000, 20_000),
    "lance": (1_000_000, 50_000),
    "chroma": (40_000, 4_000),
    "postgres": (200_000, 20_000),
}
GROUPS = {"faiss": ["faiss-flat", "faiss-ivfflat", "faiss-ivfpq"], "pg": ["postgres"]}
LABELS = {
    "faiss-flat": "FAISS IndexFlatL2",
    "faiss-ivfflat": "FAISS IVF256,Flat",
    "faiss-ivfpq": "FAISS IVF256,PQ48",
    "lance": "Lance (LanceDB table)",
    "chroma": "Chroma PersistentClient",
    "postgres": "PostgreSQL real[]",
}
#: rows the IVF quantizers are trained on, at every size (>= 39 x 256 per k-means)
TRAIN_ROWS = 20_000
FACTORY = {"faiss-ivfflat": "IVF256,Flat", "faiss-ivfpq": "IVF256,PQ48"}
MIB = 2**20
LOAD = os.getloadavg()  # at the start: how busy the shared machine was


# ---------------------------------------------------------------------------- the data
@functools.cache
def _basis() -> np.ndarray:
    """A random rotation scaled by a power-law spectrum (largest 3, smallest ~0.05)."""
    q, _ = np.linalg.qr(np.random.default_rng(SEED).standard_normal((D, D)))
    scale = 3.0 * (1.0 + np.arange(D)) ** -0.7
    return (scale[:, None] * q.T).astype(np.float32)


def rows(lo: int, hi: int) -> np.ndarray:
    """Rows ``lo:hi`` of the benchmark matrix (float32, d = 384), the same whatever the
    store's size: block b always comes from the same seed."""
    basis = _basis()
    out = []
    for b in range(lo // BLOCK, (hi - 1) // BLOCK + 1):
        g = np.random.default_rng([SEED, b]).standard_normal((BLOCK, D), dtype=np.float32)
        z = g @ basis + np.float32(0.3)
        out.append(z[max(lo - b * BLOCK, 0): min(hi - b * BLOCK, BLOCK)])
    return np.concatenate(out)


def blocks(n: int, size: int = BLOCK) -> Iterator[tuple[int, int]]:
    for lo in range(0, n, size):
        yield lo, min(lo + size, n)


def write_npy(path: Path, source: Any, n: int) -> None:
    """An (n, D) float32 ``.npy`` from ``source(lo, hi)``, block by block, atomically."""
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f4", "fortran_order": False, "shape": (n, D)}
        )
        for lo, hi in blocks(n):
            f.write(np.ascontiguousarray(source(lo, hi), dtype="<f4").tobytes())
    tmp.replace(path)


def npy_path(folder: Path, n: int) -> Path:
    path = folder / f"rows_{n}x{D}.npy"
    if not path.exists():
        write_npy(path, rows, n)
    return path


def disk_bytes(path: Path) -> int:
    """Bytes allocated on disk (``du``) by a file or everything under a folder."""
    if path.is_file():
        return path.stat().st_blocks * 512
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


def warm(path: Path) -> None:
    """Read every file under ``path`` once, so the checks read from the page cache."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    buf = bytearray(16 * MIB)
    for p in files:
        with open(p, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass


# ------------------------------------------------------------------------------ writers
# Each runs in a child process (``--write KIND N``), so the parent stays small and no
# library keeps a store open while it is checked.
def write_faiss(kind: str, n: int, folder: Path, source: Path) -> dict[str, Any]:
    import faiss

    faiss.omp_set_num_threads(1)  # OpenMP threads spin-wait: one is faster when busy
    z = np.load(source, mmap_mode="r")
    if kind == "faiss-flat":
        index = faiss.IndexFlatL2(D)
    else:
        index = faiss.index_factory(D, FACTORY[kind])
        if kind == "faiss-ivfpq":  # the factory's polysemous training (a code permutation
            faiss.downcast_index(index).do_polysemous_training = False  # for search) took
            # 100 s here on 10k rows: the codes decode the same without it
        index.train(np.ascontiguousarray(z[:TRAIN_ROWS]))
    for lo, hi in blocks(n):
        index.add(np.ascontiguousarray(z[lo:hi]))
    out = folder / f"{kind.split('-')[1]}.faiss"
    faiss.write_index(index, str(out))
    if kind == "faiss-ivfpq":  # what faiss itself decodes: the reference for the reader
        index.make_direct_map()
        write_npy(folder / "faiss_decoded.npy", lambda lo, hi: index.reconstruct_n(lo, hi - lo),
                  n)  # fmt: skip
    return {"spec": str(out), "path": str(out), "version": faiss.__version__}


def write_lance(n: int, folder: Path, source: Path) -> dict[str, Any]:
    import lancedb
    import pyarrow as pa

    z = np.load(source, mmap_mode="r")
    schema = pa.schema([("id", pa.int64()), ("vector", pa.list_(pa.float32(), D))])

    def batches() -> Iterator[pa.RecordBatch]:
        for lo, hi in blocks(n):
            vec = pa.FixedSizeListArray.from_arrays(pa.array(np.ravel(z[lo:hi])), D)
            yield pa.record_batch([pa.array(np.arange(lo, hi)), vec], schema=schema)

    db = lancedb.connect(str(folder / "db"))
    db.create_table("items", pa.RecordBatchReader.from_batches(schema, batches()))
    path = folder / "db" / "items.lance"
    return {"spec": f"{path}:vector", "path": str(path), "version": lancedb.__version__}


def write_chroma(n: int, folder: Path, source: Path) -> dict[str, Any]:
    import chromadb
    from chromadb.config import Settings

    z = np.load(source, mmap_mode="r")
    client = chromadb.PersistentClient(path=str(folder / "chroma"),
                                       settings=Settings(anonymized_telemetry=False))  # fmt: skip
    col = client.create_collection("docs", embedding_function=None)
    step = min(5000, client.get_max_batch_size())
    for lo, hi in blocks(n, step):
        col.add(ids=[f"row-{i:07d}" for i in range(lo, hi)], embeddings=np.array(z[lo:hi]))
    assert col.count() == n
    path = folder / "chroma"
    return {"spec": f"{path}/chroma.sqlite3:docs", "path": str(path),
            "version": chromadb.__version__}  # fmt: skip


def pg_copy_block(lo: int, z: np.ndarray) -> bytes:
    """Rows of PostgreSQL's binary COPY format for ``(id int4, emb float4[])``, built by
    numpy (the writer's speed is not what is measured)."""
    k = len(z)
    row = np.dtype([("fields", ">i2"), ("id_len", ">i4"), ("id", ">i4"), ("arr_len", ">i4"),
                    ("ndim", ">i4"), ("nulls", ">i4"), ("oid", ">i4"), ("dim", ">i4"),
                    ("lbound", ">i4"), ("el", [("len", ">i4"), ("v", ">f4")], (D,))])  # fmt: skip
    out = np.zeros(k, dtype=row)
    out["fields"], out["id_len"], out["id"] = 2, 4, np.arange(lo, lo + k)
    out["arr_len"], out["ndim"], out["oid"], out["dim"], out["lbound"] = 20 + 8 * D, 1, 700, D, 1
    out["el"]["len"], out["el"]["v"] = 4, z
    return out.tobytes()


def write_postgres(n: int, url: str) -> dict[str, Any]:
    import psycopg

    table = f"emb_{n}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(f"CREATE TABLE {table} (id int, emb real[])")
        z = rows  # generated here: no .npy needed by the server
        with conn.cursor().copy(f"COPY {table} (id, emb) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(b"PGCOPY\n\xff\r\n\x00" + bytes(8))  # signature, flags, extension
            for lo, hi in blocks(n):
                copy.write(pg_copy_block(lo, z(lo, hi)))
            copy.write(b"\xff\xff")  # trailer
        conn.execute(f"VACUUM ANALYZE {table}")
    return {"spec": f"?table={table}", "table": table, "version": psycopg.__version__}


def recipe(kind: str) -> str:
    """How a store is written, beyond its rows: a cached store made otherwise is rewritten."""
    if kind in FACTORY:
        return f"{FACTORY[kind]} trained on {TRAIN_ROWS} rows, no polysemous training"
    return {"faiss-flat": "IndexFlatL2", "lance": "lancedb create_table, one reader",
            "chroma": "add in pages of 5000", "postgres": "binary COPY, VACUUM ANALYZE"}[kind]


def write_child(kind: str, n: int, folder: Path, url: str) -> None:
    """``--write``: write one store, then its ``done.json`` (the cache marker)."""
    t0 = time.perf_counter()
    if kind == "postgres":
        info = write_postgres(n, url)
    else:
        source = npy_path(folder.parent, n)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        if kind.startswith("faiss"):
            info = write_faiss(kind, n, folder, source)
        elif kind == "lance":
            info = write_lance(n, folder, source)
        else:
            info = write_chroma(n, folder, source)
    info.update(kind=kind, n=n, d=D, seed=SEED, recipe=recipe(kind),
                write_s=time.perf_counter() - t0)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "done.json").write_text(json.dumps(info, indent=1) + "\n")


# ---------------------------------------------------------------------------- postgres
class Server:
    """A PostgreSQL server on ``DIR/postgres`` (initdb'd once, kept between runs), started
    as the ``postgres`` user on a free port, as ``tests/io/test_postgres.py`` does."""

    def __init__(self, root: Path) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                       key=lambda p: int(re.sub(r"\D", "", p) or 0))  # fmt: skip
        if not found:
            raise SystemExit("no PostgreSQL server binaries (apt-get install postgresql)")
        self.bindir = Path(found[-1]).parent
        self.root, self.data = root, root / "data"
        self.runas = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.ctl = [*self.runas, str(self.bindir / "pg_ctl"), "-D", str(self.data)]
        self.url = ""

    def _run(self, cmd: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300)

    def start(self) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.runas:
            shutil.chown(self.root, "postgres")
        if not (self.data / "PG_VERSION").exists():
            shutil.rmtree(self.data, ignore_errors=True)
            initdb = [*self.runas, str(self.bindir / "initdb"), "-D", str(self.data)]
            done = self._run([*initdb, "-A", "trust", "-U", "postgres", "-E", "UTF8",
                              "--no-sync"])  # fmt: skip
            if done.returncode:
                raise SystemExit(f"initdb failed: {done.stderr.strip()[-300:]}")
        if self._run([*self.ctl, "status"]).returncode == 0:  # left by a killed run of ours
            self._run([*self.ctl, "-m", "fast", "stop"])
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        done = self._run([*self.ctl, "-o", f"-k {self.root} -h 127.0.0.1 -p {port}", "-l",
                          str(self.root / "log"), "-w", "start"])  # fmt: skip
        if done.returncode:
            log = (self.root / "log").read_text()[-300:] if (self.root / "log").exists() else ""
            raise SystemExit(f"pg_ctl start failed: {(done.stderr + log).strip()[-400:]}")
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        return self.url

    def stop(self) -> None:
        if self.url:
            self._run([*self.ctl, "-m", "fast", "stop"])
            self.url = ""

    def query(self, sql: str) -> Any:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            row = conn.execute(sql).fetchone()
            return row[0] if row else None

    def table_files(self, table: str) -> list[Path]:
        rel = self.query(f"SELECT pg_relation_filepath('{table}')")
        return [Path(p) for p in glob.glob(str(self.data / rel) + "*")]


# ------------------------------------------------------------------------- measurement
def ensure(kind: str, n: int, root: Path, server: Server | None, say: Any) -> dict[str, Any]:
    """The store ``kind`` of ``n`` rows (written unless cached): its ``done.json``."""
    folder = root / f"{kind}_{n}"
    marker = folder / "done.json"
    ok = marker.exists()
    if ok:
        info = json.loads(marker.read_text())
        ok = (info["n"], info["d"], info["seed"], info.get("recipe")) == (n, D, SEED,
                                                                          recipe(kind))
        if ok and kind == "postgres":
            assert server is not None
            ok = bool(server.query(f"SELECT to_regclass('{info['table']}') IS NOT NULL")) and \
                server.query(f"SELECT count(*) FROM {info['table']}") == n  # fmt: skip
    if not ok:
        say(f"writing {kind} {n} x {D} ...")
        npy_path(root, n)  # the baseline (and the writers' source), outside the child
        cmd = [sys.executable, __file__, "--write", kind, str(n), "--dir", str(root)]
        if server is not None:
            cmd += ["--pg-url", server.url]
        subprocess.run(cmd, check=True)
        info = json.loads(marker.read_text())
        say(f"  wrote {kind} {n} in {info['write_s']:.1f} s")
    else:
        info["cached"] = True
    if kind == "postgres":
        assert server is not None
        info["spec"] = server.url + info["spec"]
        info["disk"] = int(server.query(f"SELECT pg_total_relation_size('{info['table']}')"))
    else:
        info["disk"] = disk_bytes(Path(info["path"]))
    return info


def check(spec: str) -> dict[str, Any]:
    """``collapselab check SPEC --json`` in a fresh subprocess: wall s, peak RSS, result."""
    cmd = ["/usr/bin/time", "-f", "BENCH %e %M", sys.executable, "-m", "collapselab", "check",
           spec, "--json"]  # fmt: skip
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"check {spec} failed ({done.returncode}): {done.stderr[-800:]}")
    line = [ln for ln in done.stderr.splitlines() if ln.startswith("BENCH ")][-1]
    res = json.loads(done.stdout)
    return {"wall_s": wall, "peak_rss": int(line.split()[2]) * 1024, "own_s": res["seconds"],
            "n": res["n"], "d": res["d"], "eigenvalues": res["eigenvalues"],
            "read": res.get("read", []), "verdict": res["verdict"]}  # fmt: skip


def rel_diff(a: list[float], b: list[float]) -> float:
    """Largest relative difference of two spectra, eigenvalue by eigenvalue."""
    x, y = np.asarray(a), np.asarray(b)
    assert x.shape == y.shape, (x.shape, y.shape)
    return float(np.max(np.abs(x - y) / np.maximum(np.abs(y), 1e-300)))


def measure(kind: str, n: int, root: Path, server: Server | None, repeats: int,
            say: Any) -> dict[str, Any]:  # fmt: skip
    info = ensure(kind, n, root, server, say)
    base = npy_path(root, n)
    warm(base)
    if kind == "postgres":
        assert server is not None
        for f in server.table_files(info["table"]):
            warm(f)
    else:
        warm(Path(info["path"]))
    runs: dict[str, list[dict[str, Any]]] = {"store": [], "npy": []}
    for _ in range(repeats):  # interleaved: drift on a busy machine hits both alike
        runs["npy"].append(check(str(base)))
        runs["store"].append(check(info["spec"]))
    s, b = runs["store"][0], runs["npy"][0]
    assert (s["n"], s["d"]) == (n, D) == (b["n"], b["d"]), (s["n"], s["d"], b["n"], b["d"])
    out: dict[str, Any] = {
        "kind": kind, "label": LABELS[kind], "n": n, "d": D, "disk_bytes": info["disk"],
        "npy_bytes": base.stat().st_size, "write_s": info["write_s"],
        "cached": bool(info.get("cached")), "library": info.get("version"),
        "note": [r.split(": ", 1)[-1] for r in s["read"]],
        "spec": info["spec"].replace(str(root), "DIR"),
    }  # fmt: skip
    for who in ("store", "npy"):
        rs = runs[who]
        out[who] = {
            "wall_s": statistics.median(r["wall_s"] for r in rs),
            "wall_min_max": [min(r["wall_s"] for r in rs), max(r["wall_s"] for r in rs)],
            "own_s": statistics.median(r["own_s"] for r in rs),
            "peak_rss": statistics.median(r["peak_rss"] for r in rs),
            "runs": [{k: r[k] for k in ("wall_s", "own_s", "peak_rss")} for r in rs],
        }
    if kind == "faiss-ivfpq":  # lossy: compare with faiss's own decoding, as .npy
        decoded = check(str(Path(info["path"]).parent / "faiss_decoded.npy"))
        out["eig_rel_diff"] = rel_diff(s["eigenvalues"], decoded["eigenvalues"])
        out["eig_rel_diff_vs_originals"] = rel_diff(s["eigenvalues"], b["eigenvalues"])
        out["top10_rel_diff_vs_originals"] = rel_diff(s["eigenvalues"][:10],
                                                      b["eigenvalues"][:10])  # fmt: skip
    else:
        out["eig_rel_diff"] = rel_diff(s["eigenvalues"], b["eigenvalues"])
    out["time_ratio"] = out["store"]["wall_s"] / out["npy"]["wall_s"]
    out["rss_ratio"] = out["store"]["peak_rss"] / out["npy"]["peak_rss"]
    say(f"  {kind} {n}: {out['store']['wall_s']:.1f} s (npy {out['npy']['wall_s']:.1f} s), "
        f"peak RSS {out['store']['peak_rss'] / MIB:.0f} MiB "
        f"(npy {out['npy']['peak_rss'] / MIB:.0f}), eig diff {out['eig_rel_diff']:.1e}")
    return out


# ------------------------------------------------------------------------------ report
def fmt_rows(n: int) -> str:
    return f"{n // 1000}k" if n < 1_000_000 else f"{n / 1e6:g}M"


def main_table(results: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| store | rows x d | on disk MiB | write s | check s [min, max] | rows/s | peak RSS MiB "
        "| .npy check s | .npy peak RSS MiB | time / .npy | RSS / .npy | eig. max rel diff |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s, b = r["store"], r["npy"]
        lo, hi = s["wall_min_max"]
        write = f"{r['write_s']:.0f}" + (" (cached)" if r["cached"] else "")
        lines.append(
            f"| {r['label']} | {fmt_rows(r['n'])} x {r['d']} | {r['disk_bytes'] / MIB:.0f} | "
            f"{write} | {s['wall_s']:.2f} [{lo:.2f}, {hi:.2f}] | "
            f"{r['n'] / s['wall_s'] / 1e3:.0f}k | {s['peak_rss'] / MIB:.0f} | "
            f"{b['wall_s']:.2f} | {b['peak_rss'] / MIB:.0f} | {r['time_ratio']:.2f} | "
            f"{r['rss_ratio']:.2f} | {r['eig_rel_diff']:.1e}"
            + (" (vs faiss's decoding)" if r["kind"] == "faiss-ivfpq" else "") + " |"
        )
    return lines


def scaling_table(sizes: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Peak RSS at each size measured, and what the store costs above the ``.npy`` path
    of the same rows (which cancels the chunk buffers: they grow with ``n`` up to two
    128 MiB chunks, about 175k rows at d = 384, then stay)."""
    lines = [
        "| store | rows | on disk MiB | peak RSS MiB | .npy peak RSS MiB | RSS above .npy "
        "MiB | last two sizes: RSS above .npy added / data added on disk |",
        "|---|---|---|---|---|---|---|",
    ]

    def excess(r: dict[str, Any]) -> float:
        return float(r["store"]["peak_rss"] - r["npy"]["peak_rss"])

    for rs in sizes.values():
        if len(rs) < 2:
            continue
        a, b = rs[-2], rs[-1]
        grow = (excess(b) - excess(a)) / (b["disk_bytes"] - a["disk_bytes"])

        def mib(values: list[float]) -> str:
            return " / ".join(f"{v / MIB:.0f}" for v in values)

        lines.append(
            f"| {rs[0]['label']} | {' / '.join(fmt_rows(r['n']) for r in rs)} | "
            f"{mib([r['disk_bytes'] for r in rs])} | "
            f"{mib([r['store']['peak_rss'] for r in rs])} | "
            f"{mib([r['npy']['peak_rss'] for r in rs])} | "
            f"{mib([excess(r) for r in rs])} | {(excess(b) - excess(a)) / MIB:+.0f} MiB / "
            f"{(b['disk_bytes'] - a['disk_bytes']) / MIB:+.0f} MiB ({round(grow, 2) + 0.0:.0%}) |"
        )
    return lines


def versions() -> str:
    out = []
    for mod in ("faiss", "lance", "lancedb", "chromadb", "psycopg"):
        try:
            out.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            out.append(f"{mod} missing")
    return ", ".join(out)


def render(command: str, results: list[dict[str, Any]],
           sizes: dict[str, list[dict[str, Any]]], seconds: float, repeats: int,
           notes: list[str]) -> str:  # fmt: skip
    lines = [
        "# Vector stores read directly: `collapselab check SPEC` vs the same rows as `.npy`",
        "",
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} vCPUs (shared, busy), "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
        f"load average {LOAD[0]:.1f} at the start; "
        f"{versions()}; run {seconds / 60:.1f} min.",
        "",
        f"Each cell: `collapselab check SPEC --json` as a fresh subprocess, median of {repeats} "
        "runs interleaved with the same rows as `.npy` (the baseline, measured in the same "
        "run), page cache warm. Wall s include the interpreter's start and the imports; "
        "peak RSS is the child's (`/usr/bin/time`). Eigenvalue difference: the largest "
        "relative difference, eigenvalue by eigenvalue, from the `.npy` path's.",
        "",
        *main_table(results),
        "",
        *[f"* {n}" for n in notes],
        "",
    ]
    if any(len(rs) > 1 for rs in sizes.values()):
        lines += [
            "## Peak RSS against the store's size",
            "",
            "Each store also at its `--quick` size and at 3x its size above (the first rows "
            "of the same matrix; one run each of the store and of the `.npy`). The `.npy` "
            "path's own peak grows with the rows up to its two 128 MiB chunk buffers "
            "(about 175k rows at d = 384) and then stays, so what a store reader adds is "
            "read as its RSS above the `.npy` path's at the same rows. A reader that "
            "streams adds the same whatever the size; the last column is what it added "
            "between the two largest sizes per byte added on disk (100%: as if it loaded "
            "the whole store).",
            "",
            *scaling_table(sizes),
            "",
        ]
    return "\n".join(lines)


def notes_for(results: list[dict[str, Any]], sizes: dict[str, list[dict[str, Any]]],
              shrunk: list[str]) -> list[str]:  # fmt: skip
    notes = []
    for r in results:
        if r["note"]:
            notes.append(f"{r['label']}: the reader says: {'; '.join(r['note'])}.")
        if r["kind"] == "faiss-ivfpq":
            notes.append(f"{r['label']}: eigenvalues compared with faiss's own decoding of "
                         f"the index (`reconstruct_n`, as `.npy`); against the original rows the "
                         f"eigenvalues differ by up to {r['eig_rel_diff_vs_originals']:.2f} "
                         f"(the 10 largest by up to {r['top10_rel_diff_vs_originals']:.3f}; "
                         f"PQ48 keeps 48 bytes of a row's 1536: lossy). Timing baseline: the "
                         f"original rows.")
        if r["kind"] == "chroma":
            notes.append(f"{r['label']}: {fmt_rows(r['n'])} rows, because Chroma's own "
                         f"`collection.add` (it builds its HNSW index as it writes) took "
                         f"{r['write_s']:.0f} s for them here"
                         + "".join(f"; {fmt_rows(x['n'])}: {x['write_s']:.0f} s"
                                   for x in sizes.get("chroma", []) if x["n"] > r["n"])
                         + ".")  # fmt: skip
        if r["kind"] == "postgres":
            notes.append(f"{r['label']}: Debian 12 ships no pgvector, so a `real[]` column "
                         "(the reader casts `vector` to `real[]` on the server anyway); a "
                         "local server started by the benchmark; the client's RSS only "
                         "(the server's backend is another process).")
    for rs in sizes.values():
        if len(rs) > 1:
            a, b = rs[-2], rs[-1]
            added = (b["store"]["peak_rss"] - b["npy"]["peak_rss"]) - (
                a["store"]["peak_rss"] - a["npy"]["peak_rss"])  # fmt: skip
            grow = added / (b["disk_bytes"] - a["disk_bytes"])
            if grow > 0.25:
                notes.append(f"{a['label']}: memory grows with the store: from "
                             f"{fmt_rows(a['n'])} to {fmt_rows(b['n'])} rows its peak RSS "
                             f"above the .npy path's grew by {added / MIB:.0f} MiB, "
                             f"{grow:.0%} of the data added on disk.")  # fmt: skip
    if "chroma" in sizes:
        notes.append("Chroma, why (checked by hand with chromadb 1.5.9 on the 120k store): "
                     "opening the client and the collection took 93 MiB of RSS; the first "
                     "`get(include=['embeddings'])` page raised it to 420 MiB: the client "
                     "loads the collection's whole HNSW segment (`data_level0.bin`, every "
                     "vector plus the graph, 199 MiB on disk) into memory. The vectors are "
                     "not in `chroma.sqlite3` (27 MiB).")
    notes += shrunk
    return notes


# -------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the small sizes (a smoke run)")
    ap.add_argument("--only", default="", help="comma-separated: faiss (all three), "
                    "faiss-flat, faiss-ivfflat, faiss-ivfpq, lance, chroma, postgres")  # fmt: skip
    ap.add_argument("--size", action="append", default=[], metavar="STORE=ROWS",
                    help="override a store's full size")  # fmt: skip
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-scaling", action="store_true",
                    help="skip the memory-vs-size runs (the --quick size and 3x the size)")
    ap.add_argument("--dir", default="/work/stores-data", help="where the stores are cached")
    ap.add_argument("--clean", action="store_true", help="delete the cached stores and exit")
    ap.add_argument("--out", default=None, help="results .md (a .json beside it)")
    ap.add_argument("--write", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--pg-url", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    root = Path(args.dir)
    if args.write:
        kind, n = args.write[0], int(args.write[1])
        write_child(kind, n, root / f"{kind}_{n}", args.pg_url)
        return 0
    if args.clean:
        server = Server(root / "postgres")
        if (server.data / "PG_VERSION").exists() and server._run([*server.ctl, "status"]
                                                                  ).returncode == 0:  # fmt: skip
            server._run([*server.ctl, "-m", "fast", "stop"])
        shutil.rmtree(root, ignore_errors=True)
        print(f"deleted {root}")
        return 0

    kinds = list(SIZES)
    if args.only:
        wanted = [k for w in args.only.split(",") for k in GROUPS.get(w.strip(), [w.strip()])]
        unknown = sorted(set(wanted) - set(SIZES))
        if unknown:
            ap.error(f"unknown store(s) {unknown}; choose from {list(SIZES)} or faiss")
        kinds = [k for k in kinds if k in wanted]
    full = {k: SIZES[k][0] for k in kinds}
    shrunk = []
    for item in args.size:
        k, _, v = item.partition("=")
        if k not in full:
            ap.error(f"--size {item}: not a selected store")
        full[k] = int(v)
        shrunk.append(f"{LABELS[k]}: {fmt_rows(int(v))} rows instead of "
                      f"{fmt_rows(SIZES[k][0])} (--size).")  # fmt: skip
    quick = {k: SIZES[k][1] for k in kinds}
    notes_extra: list[str] = []
    given = argv if argv is not None else sys.argv[1:]
    command = "nice python " + " ".join(["benchmarks/bench_stores.py", *given])
    out = Path(args.out) if args.out else None
    if out is None and not (args.quick or args.only or args.size):
        out = ROOT / "benchmarks/results/stores.md"
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:5.0f}s] {msg}", file=sys.stderr, flush=True)

    server = Server(root / "postgres") if "postgres" in kinds else None
    results: list[dict[str, Any]] = []
    sizes: dict[str, list[dict[str, Any]]] = {}
    scaling = not (args.quick or args.no_scaling)
    try:
        if server is not None:
            server.start()
            say(f"PostgreSQL {server.query('SHOW server_version')} on {server.url}")
        for kind in kinds:
            n = quick[kind] if args.quick else full[kind]
            if scaling:  # the memory-vs-size reference (cheap)
                sizes[kind] = [measure(kind, quick[kind], root, server, 1, say)]
            results.append(measure(kind, n, root, server, args.repeats, say))
            sizes.setdefault(kind, []).append(results[-1])
            if scaling:
                big = 3 * n
                need = big * D * 4 * (2 if kind == "postgres" else 3) + 5 * 2**30
                if shutil.disk_usage(root).free < need:  # the store, its .npy, a margin
                    notes_extra.append(f"{LABELS[kind]}: not measured at {fmt_rows(big)} "
                                       f"rows (needs {need / 2**30:.0f} GiB free on disk)")
                    continue
                sizes[kind].append(measure(kind, big, root, server, 1, say))
    finally:
        if server is not None:
            server.stop()
    seconds = time.perf_counter() - t0
    notes = notes_for(results, sizes, shrunk) + notes_extra
    text = render(command, results, sizes, seconds, args.repeats, notes)
    print(text)
    if out is not None:
        out.write_text(text)
        payload = {"command": command, "seconds": seconds, "repeats": args.repeats,
                   "versions": versions(), "results": results,
                   "memory_vs_size": sizes}  # fmt: skip
        out.with_suffix(".json").write_text(json.dumps(payload, indent=1) + "\n")
        say(f"wrote {out} and {out.with_suffix('.json').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
