"""Fuzz ``collapselab check`` over every reader with a seeded byte mutator.

Each case writes a small matrix in one format (npy, npz, compressed npz, safetensors, pt,
csv, parquet), from a set of awkward matrices (d = 1, N = 2, all-NaN, all-Inf, float16
overflow, 1e200 and 1e-200 entries, integer extremes), damages the bytes (mutated
header bytes, truncation, inserted and duplicated bytes, extreme values written over the
data) and runs ``collapselab check`` on it. Whatever the input, the command must end with
exit 0, 1 or 2, print exactly one line on stderr when it exits 2 (nothing otherwise), emit
no warning and raise nothing (no traceback), and finish in seconds.

The default run draws ``CASES`` cases per format (a few hundred in all, ~10 s); ``pytest -m
slow`` runs ``SLOW_CASES`` per format. A failing case prints its seed: rerun it with
``run_case(fmt, seed, tmp_path)``.
"""

from __future__ import annotations

import contextlib
import io
import random
import signal
import struct
import subprocess
import sys
import tracemalloc
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from collapselab.cli import main

FORMATS = ("npy", "npz", "npz_compressed", "safetensors", "pt", "csv", "parquet")
EXTENSIONS = {"npz_compressed": "npz"}
CASES = 45  # per format: 315 in the default run
SLOW_CASES = 700  # per format: 4900 under -m slow
CASE_SECONDS = 20  # a case taking longer than this counts as a hang


def _matrices() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    z = rng.standard_normal((9, 4))
    nan_rows = z.copy()
    nan_rows[[2, 5]] = np.nan
    return {
        "normal": z.astype(np.float32),
        "float64": z,
        "d1": rng.standard_normal((7, 1)),
        "n2": rng.standard_normal((2, 3)).astype(np.float32),
        "n2_d1": np.array([[1.0], [2.0]]),
        "all_nan": np.full((5, 3), np.nan, np.float32),
        "all_inf": np.full((5, 3), np.inf, np.float16),  # float16 overflow
        "nan_rows": nan_rows,
        "huge": z * 1e200,
        "tiny": z * 1e-200,
        "float16_max": np.full((4, 2), 65504.0, np.float16),
        "int_extremes": np.array([[2**62, -(2**62)], [-(2**63), 2**63 - 1], [0, 1]], np.int64),
        "zeros": np.zeros((6, 2), np.float32),
        "collapsed": np.ones((8, 5), np.float32) + 1e-6 * z[:8, :1].astype(np.float32),
    }


MATRICES = _matrices()


def write(fmt: str, path: Path, z: np.ndarray) -> Path:
    """Write ``z`` in format ``fmt`` at ``path`` (its suffix is set here)."""
    p = path.with_suffix("." + EXTENSIONS.get(fmt, fmt))
    if fmt == "npy":
        np.save(p, z)
    elif fmt == "npz":
        np.savez(p, emb=z)
    elif fmt == "npz_compressed":
        np.savez_compressed(p, emb=z)
    elif fmt == "safetensors":
        from safetensors.numpy import save_file

        save_file({"emb": np.ascontiguousarray(z)}, str(p))
    elif fmt == "pt":
        import torch

        torch.save(torch.from_numpy(np.ascontiguousarray(z)), p)
    elif fmt == "csv":
        np.savetxt(p, z.astype(np.float64), delimiter=",", fmt="%.17g")
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        values = z.astype(np.float32) if z.dtype == np.float16 else z
        emb = pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), z.shape[1])
        pq.write_table(pa.table({"emb": emb}), p, row_group_size=max(1, len(z) // 2))
    else:  # pragma: no cover
        raise ValueError(fmt)
    return p


_EXTREME = [
    struct.pack("<d", v) for v in (np.inf, -np.inf, np.nan, 1.7e308, 5e-324, -0.0)
] + [struct.pack("<f", v) for v in (np.inf, np.nan, 3.4e38)] + [b"\xff" * 8, b"\x00" * 8]


def mutate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One to three random damages; returns the bytes and what was done."""
    b = bytearray(data)
    done = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        op = rng.choice(("header", "header", "truncate", "insert", "duplicate", "extreme",
                         "flip", "none"))  # fmt: skip
        n = len(b)
        if op == "header" and n:  # bytes of the header / magic / zip directory
            region = rng.choice(("head", "tail"))
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(min(n, 160)) if region == "head" else n - 1 - rng.randrange(
                    min(n, 160)
                )
                b[i] = rng.choice((rng.randrange(256), ord("9"), ord(","), ord("("), 0, 255))
        elif op == "truncate" and n:
            del b[rng.randrange(n) :]
        elif op == "insert":
            at = rng.randrange(n + 1)
            b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op == "duplicate" and n:
            lo = rng.randrange(n)
            hi = min(n, lo + rng.randint(1, 64))
            at = rng.randrange(n + 1)
            b[at:at] = b[lo:hi]
        elif op == "extreme" and n > 8:
            v = rng.choice(_EXTREME)
            at = rng.randrange(n // 2, n - len(v) + 1)  # mostly in the data
            b[at : at + len(v)] = v
        elif op == "flip" and n:
            i = rng.randrange(n)
            b[i] ^= 1 << rng.randrange(8)
        done.append(op)
    return bytes(b), "+".join(done)


@contextlib.contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"no result after {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def run_check(argv: list[str]) -> tuple[object, str, list[str]]:
    """``main(argv)`` in process: (exit code or the exception raised, stderr, warnings)."""
    err, out = io.StringIO(), io.StringIO()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                with _deadline(CASE_SECONDS):
                    rc: object = main(argv)
            except BaseException as e:  # noqa: BLE001 - anything escaping is the failure
                rc = e
    return rc, err.getvalue(), [f"{w.category.__name__}: {w.message}" for w in caught]


def problems(rc: object, stderr: str, caught: list[str]) -> list[str]:
    """What is wrong with one run (empty when it behaved)."""
    bad = []
    lines = stderr.splitlines()
    if rc not in (0, 1, 2):
        bad.append(f"exit {rc!r}")
    if rc == 2 and len(lines) != 1:
        bad.append(f"exit 2 with {len(lines)} stderr lines")
    if rc in (0, 1) and lines:
        bad.append(f"exit {rc} with stderr output")
    if "Traceback" in stderr:
        bad.append("traceback on stderr")
    if caught:
        bad.append(f"warnings {caught}")
    return bad


_BASE: dict[tuple[str, str], bytes] = {}


def base_bytes(fmt: str, name: str, folder: Path) -> bytes:
    """The intact file of matrix ``name`` in ``fmt`` (written once per session)."""
    if (fmt, name) not in _BASE:
        _BASE[fmt, name] = write(fmt, folder / f"base_{fmt}_{name}", MATRICES[name]).read_bytes()
    return _BASE[fmt, name]


def run_case(fmt: str, seed: int, folder: Path) -> tuple[str, list[str]]:
    """Case ``seed`` of ``fmt``: (description, problems)."""
    rng = random.Random(f"{fmt}-{seed}")
    name = rng.choice(sorted(MATRICES))
    data = base_bytes(fmt, name, folder)
    if seed % 8:  # one case in 8 is the intact file
        data, what = mutate(data, rng)
    else:
        what = "intact"
    p = folder / f"case.{EXTENSIONS.get(fmt, fmt)}"
    p.write_bytes(data)
    rc, stderr, caught = run_check(["check", str(p), "--json"])
    desc = f"{fmt} seed {seed}: {name}, {what}: exit {rc!r}, stderr {stderr.strip()[:300]!r}"
    return desc, problems(rc, stderr, caught)


def _fuzz(fmt: str, cases: int, folder: Path) -> None:
    failures = []
    for seed in range(cases):
        desc, bad = run_case(fmt, seed, folder)
        if bad:
            failures.append(f"{desc} -> {'; '.join(bad)}")
    assert not failures, f"{len(failures)} of {cases} cases failed:\n" + "\n".join(failures[:20])


@pytest.mark.parametrize("fmt", FORMATS)
def test_fuzz_check(fmt: str, tmp_path: Path) -> None:
    _fuzz(fmt, CASES, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_fuzz_check_many(fmt: str, tmp_path: Path) -> None:
    _fuzz(fmt, SLOW_CASES, tmp_path)


def test_the_checker_catches_misbehaviour() -> None:
    """The assertions above are not vacuous."""
    assert problems(0, "", []) == []
    assert problems(2, "collapselab check: error: x.npy: bad\n", []) == []
    assert problems(2, "RuntimeWarning: overflow\nerror\n", [])
    assert problems(1, "something\n", [])
    assert problems(ZeroDivisionError(), "", [])
    assert problems(0, "", ["RuntimeWarning: invalid value"])
    rc, stderr, caught = run_check(["check", "--no-such-flag"])
    assert (rc, len(stderr.splitlines())) == (2, 1)


# --- the special cases named in the issue ----------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", ["all_nan", "all_inf", "nan_rows"])
def test_non_finite_rows_give_the_one_line_nan_error(fmt: str, name: str, tmp_path: Path) -> None:
    p = write(fmt, tmp_path / "z", MATRICES[name])
    rc, stderr, caught = run_check(["check", str(p)])
    assert (rc, caught) == (2, [])
    count = int(np.sum(~np.isfinite(MATRICES[name]).all(axis=1)))
    first = int(np.flatnonzero(~np.isfinite(MATRICES[name]).all(axis=1))[0])
    rows = f"{count} row{'s' if count != 1 else ''}"
    assert f"{rows} contain NaN or Inf (first: row {first})" in stderr, stderr
    assert len(stderr.splitlines()) == 1


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", ["huge", "tiny", "d1", "n2", "n2_d1", "int_extremes"])
def test_extreme_but_finite_inputs_are_checked(fmt: str, name: str, tmp_path: Path) -> None:
    p = write(fmt, tmp_path / "z", MATRICES[name])
    rc, stderr, caught = run_check(["check", str(p), "--json"])
    assert (rc, stderr, caught) == (0, "", [])


def _huge_headers(folder: Path) -> dict[str, Path]:
    """Files whose headers claim enormous shapes over a few bytes of data."""
    out = {}
    p = folder / "huge.npy"
    with open(p, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f8", "fortran_order": False, "shape": (2**40, 2**20)}
        )
        f.write(b"\x00" * 64)
    out["npy rows"] = p
    p = folder / "wide.npy"
    with open(p, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f8", "fortran_order": False, "shape": (2, 2**45)}
        )
        f.write(b"\x00" * 64)
    out["npy columns"] = p
    # an .npz member whose .npy header and zip directory both claim 2**40 rows
    p = folder / "huge.npz"
    np.savez(p, emb=np.zeros((4, 4)))
    data = bytearray(p.read_bytes())
    with zipfile.ZipFile(p) as zf:
        info = zf.getinfo("emb.npy")
    at = data.rfind(b"PK\x01\x02")  # central directory entry: uncompressed size at +24
    data[at + 24 : at + 28] = struct.pack("<I", 2**32 - 2)
    p.write_bytes(bytes(data))
    assert info.file_size < 2**32 - 2
    out["npz directory"] = p
    p = folder / "huge.safetensors"
    header = b'{"emb":{"dtype":"F64","shape":[1099511627776,1048576],"data_offsets":[0,64]}}'
    p.write_bytes(struct.pack("<Q", len(header)) + header + b"\x00" * 64)
    out["safetensors shape"] = p
    p = folder / "huge2.safetensors"
    header = b'{"emb":{"dtype":"F64","shape":[2,1099511627776],"data_offsets":[0,17592186044416]}}'
    p.write_bytes(struct.pack("<Q", len(header)) + header + b"\x00" * 64)
    out["safetensors offsets"] = p
    out["parquet columns"] = write("parquet", folder / "wide", np.zeros((2, 300_000)))
    return out


def test_huge_shape_in_a_header_is_refused_with_bounded_memory(tmp_path: Path) -> None:
    for what, p in _huge_headers(tmp_path).items():
        tracemalloc.start()
        try:
            rc, stderr, caught = run_check(["check", str(p)])
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert (rc, len(stderr.splitlines()), caught) == (2, 1, []), (what, stderr)
        assert peak < 64 * 2**20, (what, peak, stderr)


# --- a handful through a real process --------------------------------------------------

def test_fuzz_cases_in_a_real_process(tmp_path: Path) -> None:
    """A handful of damaged and non-finite files through ``python -m collapselab``, run
    concurrently (a fresh interpreter costs seconds)."""
    files = []
    for fmt in ("npy", "npz_compressed", "pt", "parquet"):
        damaged, _ = mutate(base_bytes(fmt, "normal", tmp_path), random.Random(f"proc-{fmt}"))
        files.append(tmp_path / f"damaged_{fmt}.{EXTENSIONS.get(fmt, fmt)}")
        files[-1].write_bytes(damaged)
    files.append(write("npy", tmp_path / "inf", MATRICES["all_inf"]))
    files.append(write("npy", tmp_path / "huge", MATRICES["huge"]))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "collapselab", "check", str(p)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in files
    ]
    results = [(p.communicate(timeout=180), p.returncode) for p in procs]
    for ((_, stderr), rc), p in zip(results, files, strict=True):
        assert rc in (0, 1, 2), (p, stderr)
        assert "Traceback" not in stderr and "Warning" not in stderr, (p, stderr)
        assert len(stderr.splitlines()) == (1 if rc == 2 else 0), (p, stderr)
    (_, inf_err), inf_rc = results[-2]
    assert inf_rc == 2 and "5 rows contain NaN or Inf (first: row 0)" in inf_err
    assert results[-1][1] == 0
