"""``postgresql://`` specs read from a real PostgreSQL server (no mocks).

The server is the one ``COLLAPSELAB_TEST_POSTGRES`` names (``.ci/run`` starts one and
sets it); without it, a throwaway server is started in a temporary directory when the
server binaries are installed (``/usr/lib/postgresql/*/bin``, Debian's ``postgresql``
package), so a developer can run this file as it is. With neither, the tests skip with
the reason, except under CI (``CI`` set), where they fail: CI must not skip them quietly.

Each test works in a schema of its own, dropped afterwards. Debian ships no pgvector, so
``vector`` columns are tested only where ``CREATE EXTENSION vector`` succeeds.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from collapselab.check import check_files
from collapselab.cli import main
from collapselab.errors import DegenerateInputError, InputError
from collapselab.io import open_embeddings
from collapselab.io.postgres import INSTALL_HINT, open_postgres, parse_url

N, D = 2000, 24
#: the role whose host logins need a password (.ci/run and the fixture's server list it
#: first in pg_hba.conf, scram-sha-256); the password is what the tests look for in
#: every message
PW_ROLE, PASSWORD = "collapselab_pw", "Sesame-7f3c1d"


def matrix(dtype: str = "float32", seed: int = 3) -> np.ndarray:
    """(N, D), a few strong directions plus noise (a spectrum worth comparing)."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((4, D))
    z = (rng.standard_normal((N, 4)) * [3.0, 1.5, 0.7, 0.3]) @ basis
    return (z + 0.05 * rng.standard_normal((N, D)) + 0.2).astype(dtype)


Z = matrix()


# ------------------------------------------------------------------------------ server
def unavailable(reason: str) -> None:
    """Skip, or fail under CI (a CI run must not skip the PostgreSQL tests quietly)."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the PostgreSQL tests", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server() -> tuple[str, list[str], Path]:
    """A throwaway server (the steps .ci/run takes): ``(url, pg_ctl stop command, dir)``."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(re.sub(r"\D", "", p) or 0))  # fmt: skip
    if not found:
        unavailable("no PostgreSQL server (apt-get install postgresql, or set "
                    "COLLAPSELAB_TEST_POSTGRES=postgresql://...)")  # fmt: skip
    bindir = Path(found[-1]).parent
    runas: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="collapselab-pg-"))
    if os.geteuid() == 0:  # initdb refuses to run as root
        runas = ["runuser", "-u", "postgres", "--"]
        try:
            shutil.chown(root, "postgres")
        except (LookupError, OSError) as e:
            unavailable(f"running as root and cannot hand a directory to 'postgres': {e}")
    data, port = root / "data", free_port()
    ctl = [*runas, str(bindir / "pg_ctl"), "-D", str(data)]
    steps = [
        [*runas, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
         "-E", "UTF8", "--no-sync"],
        [*ctl, "-o", f"-k {root} -h 127.0.0.1 -p {port} -c fsync=off", "-l",
         str(root / "log"), "-w", "start"],
    ]  # fmt: skip
    for i, step in enumerate(steps):
        if i == 1:
            hba = data / "pg_hba.conf"
            hba.write_text(f"host all {PW_ROLE} 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
        done = subprocess.run(step, capture_output=True, text=True, timeout=120)
        if done.returncode:
            log = (root / "log").read_text() if (root / "log").exists() else ""
            shutil.rmtree(root, ignore_errors=True)
            unavailable(f"could not start PostgreSQL ({Path(step[len(runas)]).name}): "
                        f"{(done.stderr + log).strip()[-300:]}")  # fmt: skip
    return f"postgresql://postgres@127.0.0.1:{port}/postgres", [*ctl, "-m", "immediate",
                                                                "stop"], root  # fmt: skip


@pytest.fixture(scope="session")
def server() -> Iterator[str]:
    """The URL of a superuser login on a running server (see the module docstring)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable(INSTALL_HINT)
    url = os.environ.get("COLLAPSELAB_TEST_POSTGRES")
    if url:
        yield url
        return
    url, stop, root = start_server()
    try:
        yield url
    finally:
        subprocess.run(stop, capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def admin(url: str) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=True)


@pytest.fixture
def db(server: str, request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """``(server URL, a fresh schema named after the test)``, dropped afterwards."""
    from psycopg import sql

    name = request.node.name
    short = re.sub(r"\W", "_", name).lower()[:40]
    schema = f"cltest_{short}_{zlib.crc32(name.encode()):08x}"  # unique, under 63 bytes
    with admin(server) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {s} CASCADE; CREATE SCHEMA {s}").format(
            s=sql.Identifier(schema)))  # fmt: skip
    yield server, schema
    with admin(server) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def load(url: str, table: str, z: np.ndarray, kind: str = "real[]",
         bad: dict[int, Any] | None = None) -> str:  # fmt: skip
    """Create ``table (id int, emb KIND)`` and COPY ``z`` in, row i with id i (``bad``
    replaces rows by other values); return the spec ``URL?table=TABLE``."""
    bad = bad or {}
    vector = kind.startswith(("vector", "halfvec"))  # pgvector's text form: [1,2,3]
    with admin(url) as conn:
        conn.execute(f"CREATE TABLE {table} (id int, emb {kind})")
        with conn.cursor().copy(f"COPY {table} (id, emb) FROM STDIN") as copy:
            for i, row in enumerate(z.tolist()):
                value = bad.get(i, row)
                if vector:
                    value = "[" + ",".join(map(repr, value)) + "]"
                copy.write_row((i, value))
    return f"{url}?table={table}"


def chunks(src: Any, **kw: Any) -> list[np.ndarray]:
    return [c.copy() for c in src.chunks(**kw)]


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


# ------------------------------------------------------------------------------ reading
def test_real_array_reads_back_exactly(db: tuple[str, str]) -> None:
    url, schema = db
    spec = load(url, f"{schema}.items", Z)
    src = open_embeddings(spec)  # through io.api's dispatch
    assert (src.n, src.d, src.dtype, src.out_dtype) == (N, D, "float32", np.float32)
    assert src.note is not None and "column emb (real[])" in src.note
    assert "heap order" in src.note and "server-side cursor" in src.note
    np.testing.assert_array_equal(src.read(), Z)  # fresh table: insertion order
    small = chunks(src, rows=7)
    assert [len(c) for c in small[:-1]] == [7] * (len(small) - 1)
    np.testing.assert_array_equal(np.concatenate(small), Z)
    part = chunks(src, rows=5, start=13, stop=1990)
    np.testing.assert_array_equal(np.concatenate(part), Z[13:1990])
    ring = chunks(src, rows=300, start=1, stop=N, buffers=2)  # the ring check reads with
    np.testing.assert_array_equal(np.concatenate(ring), Z[1:])
    for c in src.chunks(rows=64):
        assert c.flags.c_contiguous and c.dtype == np.float32


def test_double_precision_array_keeps_float64(db: tuple[str, str]) -> None:
    url, schema = db
    z = matrix("float64", seed=4)
    src = open_postgres(load(url, f"{schema}.f8", z, "double precision[]") + "&column=emb")
    assert (src.dtype, src.out_dtype) == ("float64", np.float64)
    np.testing.assert_array_equal(src.read(), z)
    np.testing.assert_array_equal(np.concatenate(chunks(src, rows=333, start=5, stop=7)),
                                  z[5:7])  # fmt: skip


def test_check_matches_the_same_matrix_as_npy(db: tuple[str, str], tmp_path: Path) -> None:
    url, schema = db
    spec = load(url, f"{schema}.items", Z)
    np.save(tmp_path / "z.npy", Z)
    got = check_files([spec]).measurement.metrics.eigenvalues
    want = check_files([str(tmp_path / "z.npy")]).measurement.metrics.eigenvalues
    assert len(got) == D
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=0)


def test_cli_check_json_exits_0(db: tuple[str, str]) -> None:
    url, schema = db
    spec = load(url, f"{schema}.items", Z)
    done = subprocess.run([sys.executable, "-m", "collapselab", "check", spec, "--json"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    res = json.loads(done.stdout)
    assert (res["n"], res["d"]) == (N, D)


def test_default_column_and_candidates(db: tuple[str, str]) -> None:
    url, schema = db
    with admin(url) as conn:
        conn.execute(f"CREATE TABLE {schema}.two (id int, a real[], b float8[], note text)")
        conn.execute(f"INSERT INTO {schema}.two VALUES (1, '{{1,2}}', '{{1,2}}', 'x'), "
                     "(2, '{3,4}', '{3,5}', 'y')")  # fmt: skip
        conn.execute(f"CREATE TABLE {schema}.none (id int, note text)")
    with pytest.raises(InputError, match=r"2 vector columns; choose one with &column=NAME "
                                         r"\('a' \(real\[\]\), 'b' \(double precision\[\]\)\)"):
        open_postgres(f"{url}?table={schema}.two")
    with pytest.raises(InputError, match=r"no column of type .*columns: 'id' \(integer\)"):
        open_postgres(f"{url}?table={schema}.none")
    with pytest.raises(InputError, match=r"column 'note' .* is text; expected vector"):
        open_postgres(f"{url}?table={schema}.two&column=note")
    src = open_postgres(f"{url}?column=b&table={schema}.two")
    np.testing.assert_array_equal(src.read(), [[1, 2], [3, 5]])


def test_fewer_than_two_rows_is_degenerate(db: tuple[str, str]) -> None:
    url, schema = db
    spec = load(url, f"{schema}.one", Z[:1])
    with pytest.raises(DegenerateInputError, match="1 row .*need at least 2 rows"):
        open_postgres(spec)


# ------------------------------------------------------------------------------ errors
ERROR_CASES = [
    ("missing table", r"no table '\w+\.nope' \(tables in schema '\w+': 'items'\)"),
    ("missing column", r"no column 'vec' in table '\w+.items' \(columns: 'id' \(integer\), "
                       r"'emb' \(real\[\]\)\)"),
    ("wrong length", r"row 1234 \(ctid \(\d+,\d+\)\) of column 'emb' has 3 values; "
                     r"expected 24"),
    ("null row", r"row 1234 \(ctid \(\d+,\d+\)\) of column 'emb' is NULL"),
    ("null element", r"row 1234 \(ctid \(\d+,\d+\)\) of column 'emb' has a NULL element"),
    ("2-D row", r"row 1234 \(ctid \(\d+,\d+\)\) of column 'emb' is a 2-D array \(2 x 12\)"),
    ("unknown database", r"database \"no_such_db\" does not exist"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "expect"), ERROR_CASES, ids=[c for c, _ in ERROR_CASES])
def test_cli_errors_are_one_line_exit_2(
    db: tuple[str, str], capsys: pytest.CaptureFixture[str], case: str, expect: str
) -> None:
    url, schema = db
    row = Z[1234].tolist()
    bad = {"wrong length": [1.0, 2.0, 3.0], "null row": None,
           "null element": row[:23] + [None], "2-D row": [row[:12], row[12:]]}  # fmt: skip
    spec = load(url, f"{schema}.items", Z, bad={1234: bad[case]} if case in bad else None)
    if case == "missing table":
        spec = f"{url}?table={schema}.nope"
    elif case == "missing column":
        spec += "&column=vec"
    elif case == "unknown database":
        spec = spec.replace("/postgres?", "/no_such_db?")
    rc, out, err = run_cli(["check", spec], capsys)
    assert rc == 2, (out, err)
    assert err.count("\n") == 1 and err.startswith("collapselab check: error: "), err
    assert re.search(expect, err), err


def test_password_never_appears(db: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """Wrong password for a role whose logins need one; the password in every spot a URL
    can hold it, in the message of each failure."""
    url, schema = db
    load(url, f"{schema}.items", Z)
    with admin(url) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {PW_ROLE}")
        conn.execute(f"CREATE ROLE {PW_ROLE} LOGIN PASSWORD '{PASSWORD}'")
    try:
        host = url.split("@", 1)[1].split("/", 1)[0]
        good = f"postgresql://{PW_ROLE}:{PASSWORD}@{host}/postgres?table={schema}.items"
        wrong = good.replace(PASSWORD, PASSWORD[::-1])
        import psycopg

        try:
            psycopg.connect(wrong.split("?")[0], connect_timeout=10).close()
        except psycopg.OperationalError:
            pass
        else:
            unavailable(f"this server lets {PW_ROLE} in without its password (list "
                        f"'host all {PW_ROLE} 127.0.0.1/32 scram-sha-256' first in "
                        "pg_hba.conf, as .ci/run does)")  # fmt: skip
        specs = {
            "wrong password": (wrong, r"password authentication failed"),
            "no privilege": (good, r"permission denied"),
            "unknown database": (good.replace("/postgres?", "/no_such_db?"), "no_such_db"),
            "password parameter": (f"{url}?password={PASSWORD}&table={schema}.nope",
                                   r"no table '\w+\.nope'"),
        }  # fmt: skip
        for case, (spec, expect) in specs.items():
            rc, out, err = run_cli(["check", spec], capsys)
            assert rc == 2 and err.count("\n") == 1, (case, err)
            assert re.search(expect, err), (case, err)
            assert PASSWORD not in err + out and PASSWORD[::-1] not in err + out, (case, err)
            assert "***" in err, (case, err)
    finally:
        with admin(url) as conn:
            conn.execute(f"DROP OWNED BY {PW_ROLE}; DROP ROLE IF EXISTS {PW_ROLE}")


def test_pgvector_columns(db: tuple[str, str]) -> None:
    url, schema = db
    import psycopg

    with admin(url) as conn:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.Error as e:
            pytest.skip("pgvector is not installed on this server (Debian ships none; the "
                        f"real[] path is tested): {' '.join(str(e).split())}")  # fmt: skip
        has_half = conn.execute("SELECT to_regtype('halfvec') IS NOT NULL").fetchone()
    spec = load(url, f"{schema}.vec", Z, f"vector({D})")
    src = open_postgres(spec)
    assert src.dtype == "float32" and "(vector(24))" in str(src.note)
    np.testing.assert_array_equal(src.read(), Z)
    np.testing.assert_array_equal(np.concatenate(chunks(src, rows=9, start=3, stop=50)),
                                  Z[3:50])  # fmt: skip
    if has_half and has_half[0]:
        src = open_postgres(load(url, f"{schema}.half", Z, f"halfvec({D})"))
        assert (src.dtype, src.out_dtype) == ("float16", np.float32)
        np.testing.assert_array_equal(src.read(), Z.astype(np.float16).astype(np.float32))


# ------------------------------------------------------------------------------ no server
def test_spec_parsing_masks_and_strips() -> None:
    url = ("postgresql://me:s3cr%40t-pass@db.example:5433/shop?sslmode=disable"
           "&table=public.items&column=emb&password=other-secret")  # fmt: skip
    spec = parse_url(url)
    assert spec.display == ("postgresql://me:***@db.example:5433/shop?sslmode=disable"
                            "&table=public.items&column=emb&password=***")  # fmt: skip
    assert spec.conninfo == ("postgresql://me:s3cr%40t-pass@db.example:5433/shop"
                             "?sslmode=disable&password=other-secret")  # fmt: skip
    assert (spec.schema, spec.table, spec.column) == ("public", "items", "emb")
    assert spec.scrub("a s3cr@t-pass b\nother-secret c") == "a *** b *** c"
    plain = parse_url("postgres://h/db?table=t%20x")
    assert (plain.conninfo, plain.schema, plain.table, plain.column) == (
        "postgres://h/db", None, "t x", None)  # fmt: skip
    for bad, why in [("postgresql://h/db", "no table given"),
                     ("postgresql://h/db?table=", "empty table="),
                     ("postgresql://h/db?table=.t", "is not NAME or SCHEMA.NAME")]:  # fmt: skip
        with pytest.raises(InputError, match=why):
            parse_url(bad)


def test_missing_psycopg_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg -> ImportError
    with pytest.raises(InputError) as info:
        open_embeddings("postgresql://me:pw-secret-1@h/db?table=t")
    assert str(info.value) == ("postgresql://me:***@h/db?table=t: reading PostgreSQL needs "
                               'psycopg: pip install "collapselab[postgres]"')  # fmt: skip
