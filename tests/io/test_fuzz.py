"""Fuzz ``collapselab check`` over every reader, as a user runs it: whole processes.

Each case writes a small matrix in one format (npy, big-endian Fortran-order npy, npz,
compressed npz, safetensors, pt, csv, tsv, parquet), from a set of awkward matrices
(d = 1, N = 2, all-NaN, all-Inf, rows of signalling NaNs, float16 overflow, 1e200 and
1e-200 entries, integer extremes, bool, constant and zero matrices), damages its bytes
(mutated header bytes, truncation, inserted and duplicated bytes, extreme values and
NaN bit patterns written over the data, flipped bits) and runs ``python -m collapselab
check FILE`` in a fresh interpreter with ``PYTHONWARNINGS`` unset, so that the test sees
what a user's terminal shows. The contract (README, "Exit codes"): exit 0 with nothing
on stderr (no warning), or exit 2 with exactly ONE stderr line, ``collapselab check:
error: <file>...: <problem>``; never a traceback, never a hang.

Case ``i`` is a pure function of ``i`` (:func:`make_case`): its format is
``FORMATS[i % 9]`` and its first damage ``DAMAGES[i % 7]``, so any 63 consecutive cases
hold every format with every kind of damage. The default run checks the first
``SAMPLE`` cases (12-20 s on 2 shared cores); ``pytest -m slow`` runs the whole ``CORPUS``
the same way, plus a deeper in-process sweep that also fails on warnings a terminal
hides by default (DeprecationWarning). A failing case prints its index: rebuild it with
``make_case(i, folder)`` and run ``python -m collapselab check`` on the file.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import signal
import struct
import subprocess
import sys
import tracemalloc
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from collapselab.cli import main

FORMATS = ("npy", "npy_fortran", "npz", "npz_compressed", "safetensors", "pt", "csv",
           "tsv", "parquet")  # fmt: skip
EXTENSIONS = {"npy_fortran": "npy", "npz_compressed": "npz"}
#: the first damage of case i is DAMAGES[i % 7] (7 and 9 are coprime: 63 cases cover
#: every format with every damage); one case in three gets one or two more at random
DAMAGES = ("intact", "header", "truncate", "insert", "duplicate", "extreme", "flip")
SAMPLE = 63  # whole processes in the default run
CORPUS = 441  # whole processes under -m slow (7 rounds of every format x damage)
IN_PROCESS = 6300  # further cases run in-process under -m slow (strict about warnings)
CASE_SECONDS = 60  # a case taking longer than this counts as a hang
WORKERS = 2
PREFIX = "collapselab check: error: "
#: signalling NaNs: arithmetic or a float32 -> float64 cast on them raises "invalid value"
SNAN16, SNAN32, SNAN64 = b"\x01\x7c", b"\x01\x00\x80\x7f", b"\x01\x00\x00\x00\x00\x00\xf0\x7f"


def _matrices() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    z = rng.standard_normal((9, 4))
    nan_rows = z.copy()
    nan_rows[[2, 5]] = np.nan
    snan_rows = z.astype(np.float32)
    snan_rows[[1, 4]] = np.frombuffer(SNAN32, np.float32)[0]
    return {
        "normal": z.astype(np.float32),
        "float64": z,
        "d1": rng.standard_normal((7, 1)),
        "n2": rng.standard_normal((2, 3)).astype(np.float32),
        "n2_d1": np.array([[1.0], [2.0]]),
        "all_nan": np.full((5, 3), np.nan, np.float32),
        "all_inf": np.full((5, 3), np.inf, np.float16),  # float16 overflow
        "nan_rows": nan_rows,
        "snan_rows": snan_rows,
        "huge": z * 1e200,
        "tiny": z * 1e-200,
        "float16_max": np.full((4, 2), 65504.0, np.float16),
        "int_extremes": np.array([[2**62, -(2**62)], [-(2**63), 2**63 - 1], [0, 1]], np.int64),
        "bool": rng.standard_normal((6, 3)) > 0,
        "zeros": np.zeros((6, 2), np.float32),
        "constant": np.tile(z[:1].astype(np.float32), (6, 1)),
        "collapsed": np.ones((8, 5), np.float32) + 1e-6 * z[:8, :1].astype(np.float32),
    }


MATRICES = _matrices()
NAMES = sorted(MATRICES)


def write(fmt: str, path: Path, z: np.ndarray) -> Path:
    """Write ``z`` in format ``fmt`` at ``path`` (its suffix is set here)."""
    p = path.with_suffix("." + EXTENSIONS.get(fmt, fmt))
    if fmt == "npy":
        np.save(p, z)
    elif fmt == "npy_fortran":  # column-major, big-endian: the readers' other code paths
        np.save(p, np.asfortranarray(z.astype(z.dtype.newbyteorder(">"))))
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
    elif fmt in ("csv", "tsv"):
        sep = "," if fmt == "csv" else "\t"
        with np.errstate(invalid="ignore"):  # signalling NaNs become text "nan"
            np.savetxt(p, z.astype(np.float64), delimiter=sep, fmt="%.17g")
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
] + [struct.pack("<f", v) for v in (np.inf, np.nan, 3.4e38)] + [
    b"\xff" * 8, b"\x00" * 8, SNAN16 * 4, SNAN32 * 2, SNAN64,
]  # fmt: skip


def damage(data: bytes, op: str, rng: random.Random) -> bytes:
    """``data`` with one damage ``op`` (one of ``DAMAGES[1:]``) done to it."""
    b = bytearray(data)
    n = len(b)
    if op == "header" and n:  # bytes of the header / magic / zip directory
        region = rng.choice(("head", "tail"))
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(min(n, 160))
            i = i if region == "head" else n - 1 - i
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
    elif op == "extreme":
        v = rng.choice(_EXTREME)
        if n >= len(v):
            at = rng.randrange(min(n // 2, n - len(v)), n - len(v) + 1)  # mostly the data
            b[at : at + len(v)] = v
    elif op == "flip" and n:
        i = rng.randrange(n)
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


@dataclass(frozen=True)
class Case:
    """Case ``index``: matrix ``matrix`` in format ``fmt`` with ``damages`` done to it."""

    index: int
    fmt: str
    matrix: str
    damages: tuple[str, ...]
    json: bool

    def __str__(self) -> str:
        return f"case {self.index}: {self.matrix} as {self.fmt}, {'+'.join(self.damages)}"


_BASE: dict[tuple[str, str], bytes] = {}


def make_case(index: int, folder: Path) -> tuple[Case, Path]:
    """Write case ``index`` into ``folder`` (its file name is unique to it)."""
    rng = random.Random(f"case-{index}")
    fmt, first = FORMATS[index % len(FORMATS)], DAMAGES[index % len(DAMAGES)]
    matrix = NAMES[(index + index // len(NAMES)) % len(NAMES)]
    damages = [first]
    if first != "intact" and rng.random() < 1 / 3:
        damages += rng.sample(DAMAGES[1:], rng.randint(1, 2))
    if (fmt, matrix) not in _BASE:
        p = write(fmt, folder / f"base_{fmt}_{matrix}", MATRICES[matrix])
        _BASE[fmt, matrix] = p.read_bytes()
    data = _BASE[fmt, matrix]
    for op in damages:
        if op != "intact":
            data = damage(data, op, rng)
    p = folder / f"case{index}.{EXTENSIONS.get(fmt, fmt)}"
    p.write_bytes(data)
    return Case(index, fmt, matrix, tuple(damages), index % 2 == 1), p


def _env() -> dict[str, str]:
    """The environment of a user's shell: no PYTHONWARNINGS (pytest's own filters never
    reach a child process anyway), so only the warnings a terminal shows count."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env["COLUMNS"] = "100"
    return env


def run_process(path: Path, json: bool = False) -> tuple[object, str]:
    """``python -m collapselab check PATH [--json]``: (exit code or "hang", stderr)."""
    argv = [sys.executable, "-m", "collapselab", "check", str(path)] + (["--json"] * json)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, env=_env(),
                              timeout=CASE_SECONDS, stdin=subprocess.DEVNULL)  # fmt: skip
    except subprocess.TimeoutExpired as e:
        err = e.stderr if isinstance(e.stderr, str) else (e.stderr or b"").decode(errors="replace")
        return f"hang (no exit after {CASE_SECONDS} s)", err
    return done.returncode, done.stderr


def problems(rc: object, stderr: str, path: Path | str, caught: Sequence[str] = ()) -> list[str]:
    """What is wrong with one run of ``check`` on ``path`` (empty when it behaved)."""
    bad = []
    lines = stderr.splitlines()
    if rc not in (0, 2):
        bad.append(f"exit {rc!r}")
    if rc == 2:
        if len(lines) != 1:
            bad.append(f"exit 2 with {len(lines)} stderr lines")
        first = lines[0] if lines else ""
        if not first.startswith(PREFIX):
            bad.append(f"the error line does not start with {PREFIX!r}")
        if str(path) not in first:
            bad.append("the error line does not name the file")
    if rc == 0 and stderr:
        bad.append("exit 0 with stderr output")
    if "Traceback" in stderr:
        bad.append("traceback on stderr")
    if "Warning" in stderr:
        bad.append("a warning on stderr")
    if caught:
        bad.append(f"warnings {caught}")
    return bad


def _sweep(indices: range, folder: Path) -> dict[str, int]:
    """Run cases ``indices`` as whole processes, ``WORKERS`` at a time; fail listing every
    case that broke the contract. Returns the counts (cases, exit 2, bad)."""
    cases = [make_case(i, folder) for i in indices]
    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(lambda cp: run_process(cp[1], cp[0].json), cases))
    failures = []
    for (case, path), (rc, stderr) in zip(cases, results, strict=True):
        bad = problems(rc, stderr, path)
        if bad:
            failures.append(f"{case}: exit {rc!r}, stderr {stderr.strip()[:400]!r} -> "
                            + "; ".join(bad))  # fmt: skip
    assert not failures, f"{len(failures)} of {len(cases)} cases failed:\n" + "\n".join(
        failures[:25]
    )
    return {"cases": len(cases), "exit 2": sum(rc == 2 for rc, _ in results)}


def test_the_sample_covers_every_format_damage_and_matrix() -> None:
    pairs = {(FORMATS[i % len(FORMATS)], DAMAGES[i % len(DAMAGES)]) for i in range(SAMPLE)}
    assert len(pairs) == len(FORMATS) * len(DAMAGES)
    names = {NAMES[(i + i // len(NAMES)) % len(NAMES)] for i in range(SAMPLE)}
    assert names == set(NAMES)
    assert CORPUS % SAMPLE == 0


def test_fuzz_check_processes(tmp_path: Path) -> None:
    """The default run: ``SAMPLE`` whole processes (every format x every damage)."""
    counts = _sweep(range(SAMPLE), tmp_path)
    assert 0 < counts["exit 2"] < counts["cases"]  # both outcomes exercised


@pytest.mark.slow
def test_fuzz_check_processes_whole_corpus(tmp_path: Path) -> None:
    """The whole corpus, ``CORPUS`` whole processes."""
    _sweep(range(CORPUS), tmp_path)


def test_the_checker_catches_misbehaviour(tmp_path: Path) -> None:
    """The assertions above are not vacuous, and a real process is what is checked."""
    p = "x.npy"
    assert problems(0, "", p) == []
    assert problems(2, f"{PREFIX}x.npy: bad\n", p) == []
    assert problems(2, f"a.py:3: RuntimeWarning: overflow\n  x = 1\n{PREFIX}x.npy: bad\n", p)
    assert problems(2, f"{PREFIX}y.npy: bad\n", p)  # names another file
    assert problems(2, "error: x.npy: bad\n", p)  # not the command's error line
    assert problems(1, "", p)  # no --fail-on was given
    assert problems(0, "a.py:3: RuntimeWarning: invalid value\n", p)
    assert problems("hang", "", p)
    missing = tmp_path / "missing.npy"
    rc, stderr = run_process(missing)
    assert rc == 2 and problems(rc, stderr, missing) == [], stderr
    # a warning a library emits reaches the terminal of a real process
    warn = "import warnings; warnings.warn('boo', RuntimeWarning)"
    done = subprocess.run([sys.executable, "-c", warn], capture_output=True, text=True,
                          env=_env())  # fmt: skip
    assert problems(0, done.stderr, p) == ["exit 0 with stderr output", "a warning on stderr"]


# --- strict, in-process: every warning counts, DeprecationWarning too ------------------


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
    """``main(argv)`` in process: (exit code or the exception raised, stderr, warnings),
    every warning recorded (also those a terminal hides by default)."""
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


@pytest.mark.slow
@pytest.mark.parametrize("part", range(len(FORMATS)))
def test_fuzz_check_in_process(part: int, tmp_path: Path) -> None:
    """``IN_PROCESS`` more cases after the corpus, in-process (cheap), strict."""
    failures = []
    start = CORPUS + part * IN_PROCESS // len(FORMATS)
    for i in range(start, CORPUS + (part + 1) * IN_PROCESS // len(FORMATS)):
        case, p = make_case(i, tmp_path)
        rc, stderr, caught = run_check(["check", str(p)] + ["--json"] * case.json)
        bad = problems(rc, stderr, p, caught)
        if bad:
            failures.append(f"{case}: exit {rc!r}, stderr {stderr.strip()[:300]!r} -> "
                            + "; ".join(bad))  # fmt: skip
        p.unlink()
    assert not failures, f"{len(failures)} cases failed:\n" + "\n".join(failures[:20])


# --- the special cases named in the issue ----------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", ["all_nan", "all_inf", "nan_rows", "snan_rows"])
def test_non_finite_rows_give_the_one_line_nan_error(fmt: str, name: str, tmp_path: Path) -> None:
    p = write(fmt, tmp_path / "z", MATRICES[name])
    rc, stderr, caught = run_check(["check", str(p)])
    assert (rc, caught) == (2, [])
    count = int(np.sum(~np.isfinite(MATRICES[name]).all(axis=1)))
    first = int(np.flatnonzero(~np.isfinite(MATRICES[name]).all(axis=1))[0])
    rows = f"{count} row{'s' if count != 1 else ''}"
    assert f"{rows} contain NaN or Inf (first: row {first})" in stderr, stderr
    assert problems(rc, stderr, p) == [], stderr


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "name", ["huge", "tiny", "d1", "n2", "n2_d1", "int_extremes", "zeros", "constant"]
)
def test_extreme_but_finite_inputs_are_checked(fmt: str, name: str, tmp_path: Path) -> None:
    p = write(fmt, tmp_path / "z", MATRICES[name])
    rc, stderr, caught = run_check(["check", str(p), "--json"])
    assert (rc, stderr, caught) == (0, "", [])


def _npy_with_header(path: Path, header: str) -> Path:
    text = header + " " * (117 - len(header)) + "\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode()
                     + np.arange(36, dtype="<f4").tobytes())  # fmt: skip
    return path


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        # Python's compiler warns on these (DeprecationWarning, SyntaxWarning from 3.12)
        ("{'de\\Hscr': '<f4', 'fortran_order': False, 'shape': (9, 4), }", "cannot parse"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (9, 4or 1), }", "cannot parse"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (9, 0x4for), }", "cannot parse"),
        # numpy's fallback for headers written by Python 2 warns (UserWarning)
        ("{'descr': '<f4', 'fortran_order': False,\x00'shape': (9, 4), }", "cannot parse"),
        # numpy 2 deprecates the dtype alias 'a' (DeprecationWarning)
        ("{'descr': '|a4', 'fortran_order': False, 'shape': (9, 1), }", "string dtype |S4"),
        ("{'descr': [('x', '|a4')], 'fortran_order': False, 'shape': (9,), }", "structured"),
        ("{'descr': '<f4', 'fortran_order': False, 'shape': (9, -4), }", "-4 columns"),
        ("{'descr': '<f4', 'fortran_order': 0, 'shape': (9, 4), }", "fortran_order"),
        ("{'descr': 'int0', 'fortran_order': False, 'shape': (9, 4), }", "descr"),
    ],
)
def test_damaged_npy_headers_give_one_error_and_no_warning(
    header: str, problem: str, tmp_path: Path
) -> None:
    p = _npy_with_header(tmp_path / "h.npy", header)
    rc, stderr, caught = run_check(["check", str(p)])
    assert (rc, caught) == (2, []), stderr
    assert problems(rc, stderr, p) == [] and problem in stderr, stderr


def test_a_python2_npy_header_is_read_without_a_warning(tmp_path: Path) -> None:
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (9L, 4L), }"
    p = _npy_with_header(tmp_path / "py2.npy", header)
    rc, stderr, caught = run_check(["check", str(p), "--json"])
    assert (rc, stderr, caught) == (0, "", [])


def test_a_damaged_pickle_protocol_byte_in_a_pt_file_gives_no_warning(tmp_path: Path) -> None:
    """torch's weights-only unpickler warns on any protocol but 2 (case 932 of the
    corpus: a header byte of a .pt changed to 44)."""
    for name, problem in (("normal", None), ("all_nan", "5 rows contain NaN or Inf")):
        data = bytearray(write("pt", tmp_path / name, MATRICES[name]).read_bytes())
        at = data.index(b"\x80\x02")  # PROTO 2: the first bytes of archive/data.pkl
        data[at + 1] = 44
        p = tmp_path / f"{name}_proto44.pt"
        p.write_bytes(bytes(data))
        rc, stderr, caught = run_check(["check", str(p)])
        assert caught == [] and problems(rc, stderr, p) == [], (stderr, caught)
        assert rc == (2 if problem else 0) and (problem or "") in stderr, stderr


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
