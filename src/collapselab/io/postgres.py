"""Reader for a vector column of a PostgreSQL table (needs the optional ``psycopg`` extra).

Spec::

    postgresql://[user[:password]@]host[:port]/dbname?table=T[&column=C][&libpq params]

(``postgres://`` too.) ``table`` is required and may be ``schema.table`` (split at the
first ``.``; without a schema the table is looked up on the server's ``search_path``).
Names are matched exactly as stored (``CREATE TABLE Items`` is stored as ``items``) and
always quoted as identifiers, never formatted into SQL. ``column`` defaults to the one
column of a supported type; with none or several, the error lists the candidates.
``table`` and ``column`` are removed from the URL before connecting; every other query
parameter (``sslmode``, ``options``, ``connect_timeout``, ...) goes to libpq unchanged.
Messages show the URL with the password masked (``postgresql://me:***@db/prod?...``).

Types read: pgvector's ``vector`` and ``halfvec`` and ``real[]`` as float32 (each cast to
``real[]`` on the server; a ``halfvec`` widens exactly), ``double precision[]`` as float64
(cast to ``float8[]``: its values keep their precision, like float64 ``.npy`` files).
Every row must hold a 1-D array of the same length ``d`` (the first non-NULL row's): a
NULL vector, a NULL element or another length is an error naming the row's ordinal and
its ``ctid``.

Reading: opening checks the table, the column and its type, counts the rows
(``count(*)``) and reads ``d`` from the first non-NULL row. :meth:`chunks` then streams
``SELECT col::real[] FROM t OFFSET start LIMIT stop - start`` through a named
(server-side) cursor in binary format, fetching :data:`FETCH_BYTES`-sized batches (at
most one chunk). A loader registered for the array type hands psycopg's raw bytes over
untouched and one ``np.frombuffer`` with a big-endian record dtype parses a whole batch,
so no Python object is made per element. 200k x 384 ``real[]`` from a local server
(2 shared cores, best of 2): this reader 35k rows/s with 1.0-1.3 s of client CPU;
psycopg's own binary array loader (a list of floats per row) 17k rows/s, 5.6 s; its
text loader 8.7k rows/s, 9.9 s. The rest is the server's ``array_send`` (binary COPY of
the column alone: 34k rows/s). Memory is bounded by one fetch batch (held twice: the
fetched rows and their concatenation) plus the chunk buffers, whatever the table's size.

Order: rows come in heap order (the order of a sequential scan; a fresh table's
insertion order, until updates or ``VACUUM FULL`` move rows). The session turns off
synchronised scans and parallel workers so that every read, on any connection, sees the
same order while the table is unchanged: ``start:stop`` ranges (one per rank) then
partition the rows. The moments ``check`` computes do not depend on the order anyway.
``OFFSET`` makes the server scan past the skipped rows. Each :meth:`chunks` call opens
its own read-only connection; a table that loses rows after opening is an error.

Example:
    >>> src = open_postgres(
    ...     "postgresql://me@localhost/shop?table=public.items&column=embedding"
    ... )                                                 # doctest: +SKIP
    >>> src.shape, src.note                               # doctest: +SKIP
    ((120000, 384), 'column embedding (vector(384)) of table public.items, ...')
    >>> for chunk in src.chunks(rows=65536):              # doctest: +SKIP
    ...     moments.update(chunk)

or from the shell: ``collapselab check "postgresql://me@localhost/shop?table=items"``.
"""

from __future__ import annotations

import functools
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from collapselab.errors import InputError
from collapselab.io._base import (
    FLOAT32,
    FLOAT64,
    EmbeddingSource,
    check_shape,
    fail,
    list_keys,
    one_line,
    rechunk,
)

if TYPE_CHECKING:
    import psycopg

INSTALL_HINT = 'reading PostgreSQL needs psycopg: pip install "collapselab[postgres]"'

#: wire bytes of one fetch from the server-side cursor (capped at one chunk's rows).
#: 200k x 384 real[] from a local server, rows/s by fetch size (best of 3; client CPU):
#: 1 MiB 38.5k (0.97 s), 8 MiB 37.9k (1.04 s), 32 MiB 26.1k (1.17 s), 128 MiB 25.0k
#: (1.95 s): small batches stay in cache; 8 MiB keeps round trips rare on a remote link.
FETCH_BYTES = 8 * 2**20
#: seconds libpq waits for the server when neither the URL nor PGCONNECT_TIMEOUT says
_CONNECT_TIMEOUT = 10

#: pg_type.typname of a supported column type -> (type shown, cast in the SELECT,
#: source dtype name, output dtype)
_TYPES: dict[str, tuple[str, str, str, np.dtype]] = {
    "vector": ("vector", "real[]", "float32", FLOAT32),
    "halfvec": ("halfvec", "real[]", "float16", FLOAT32),
    "_float4": ("real[]", "real[]", "float32", FLOAT32),
    "_float8": ("double precision[]", "float8[]", "float64", FLOAT64),
}
_KINDS = "vector, halfvec, real[] or double precision[]"
#: OIDs of float4[] and float8[] (fixed in PostgreSQL's catalog)
_ARRAY_OID = {"real[]": 1021, "float8[]": 1022}
#: the binary array header psycopg hands over for a 1-D array: ndim, has-nulls flag,
#: element OID, length, lower bound; then a (length, value) pair per element
_HEADER = [("ndim", ">i4"), ("flags", ">i4"), ("oid", ">u4"), ("dim", ">i4"), ("lb", ">i4")]


@functools.cache
def _raw_loader() -> type:
    """A psycopg loader that hands a binary value over untouched: a ``memoryview`` of
    the fetched result (it keeps the result alive), no Python object per element."""
    from psycopg.adapt import Loader
    from psycopg.pq import Format

    class RawBytes(Loader):
        format = Format.BINARY

        def load(self, data: Any) -> Any:
            return data

    return RawBytes


def _psycopg(name: str) -> Any:
    try:
        import psycopg
    except ImportError as e:
        raise fail(name, INSTALL_HINT) from e
    return psycopg


# --- the spec ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Spec:
    """A parsed ``postgresql://`` spec."""

    display: str  # the URL as written, password masked
    conninfo: str  # the URL libpq gets: without table/column
    schema: str | None
    table: str
    column: str | None
    secrets: tuple[str, ...]  # passwords to scrub from server messages
    params: frozenset[str]  # libpq parameters the URL sets

    def scrub(self, text: str) -> str:
        """``text`` (a libpq message) on one line, any password in it masked."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return one_line(text)


_SECRET_KEY = re.compile(r"password", re.IGNORECASE)


def _mask_query(query: str) -> str:
    parts = []
    for part in query.split("&"):
        key, eq, _ = part.partition("=")
        parts.append(f"{key}=***" if eq and _SECRET_KEY.search(key) else part)
    return "&".join(parts)


def parse_url(url: str) -> _Spec:
    """Split a ``postgresql://...?table=T&column=C`` spec (see the module docstring).

    Raises:
        InputError: not a URL libpq can take, or no ``table``.
    """
    scheme, sep, rest = url.partition("://")
    rest, _, _fragment = rest.partition("#")
    head, q, query = rest.partition("?")
    netloc, slash, path = head.partition("/")
    secrets: list[str] = []
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        user, _, password = userinfo.partition(":")
        netloc = f"{user}:***@{hostport}"
        secrets += [password, urllib.parse.unquote(password)]
    display = f"{scheme}{sep}{netloc}{slash}{path}" + (f"?{_mask_query(query)}" if q else "")
    keep, table, column, params = [], None, None, set()
    for part in query.split("&") if query else []:
        key, _, value = part.partition("=")
        key = urllib.parse.unquote(key)
        if key in ("table", "column"):
            value = urllib.parse.unquote(value)
            if not value:
                raise fail(display, f"empty {key}= in the URL; write {key}=NAME")
            table, column = (value, column) if key == "table" else (table, value)
            continue
        if _SECRET_KEY.search(key):
            secrets += [value, urllib.parse.unquote(value)]
        params.add(key)
        keep.append(part)
    if table is None:
        raise fail(display, "no table given; add ?table=NAME (and &column=NAME to pick a column)")
    head_name, dot, tail_name = table.partition(".")
    if dot and not (head_name and tail_name):
        raise fail(display, f"table {table!r} is not NAME or SCHEMA.NAME")
    schema, table = (head_name, tail_name) if dot else (None, table)
    conninfo = f"{scheme}{sep}{head}" + ("?" + "&".join(keep) if keep else "")
    # a short password would mask innocent words of libpq's messages: scrub 4+ characters
    shown = tuple(sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True))
    return _Spec(display, conninfo, schema, table, column, shown, frozenset(params))


def _connect(pg: Any, spec: _Spec) -> psycopg.Connection[Any]:
    """A read-only connection, or one line saying why libpq could not make one."""
    import os

    extra: dict[str, Any] = {"fallback_application_name": "collapselab"}
    if "connect_timeout" not in spec.params and "PGCONNECT_TIMEOUT" not in os.environ:
        extra["connect_timeout"] = _CONNECT_TIMEOUT
    try:
        conn = pg.connect(spec.conninfo, **extra)
    except pg.Error as e:  # libpq's "connection failed: ...", or a bad URL parameter
        problem = spec.scrub(str(e))
        prefix = "" if problem.startswith("connection") else "cannot connect: "
        raise fail(spec.display, prefix + problem) from None
    conn.read_only = True
    return conn


# --- opening --------------------------------------------------------------------------


def _relation(cur: Any, spec: _Spec) -> tuple[int, str, str]:
    """``(oid, schema, name)`` of the table (or view) the spec names."""
    kinds = "c.relkind IN ('r', 'p', 'v', 'm', 'f')"  # tables, views, foreign tables
    if spec.schema is None:
        cur.execute("SELECT c.oid, n.nspname, c.relname FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    f"WHERE {kinds} AND c.relname = %s AND pg_table_is_visible(c.oid)",
                    (spec.table,))  # fmt: skip
    else:
        cur.execute("SELECT c.oid, n.nspname, c.relname FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    f"WHERE {kinds} AND c.relname = %s AND n.nspname = %s",
                    (spec.table, spec.schema))  # fmt: skip
    found = cur.fetchone()
    if found is not None:
        return int(found[0]), str(found[1]), str(found[2])
    # say what there is instead
    if spec.schema is None:
        cur.execute("SELECT c.relname FROM pg_class c WHERE "
                    f"{kinds} AND pg_table_is_visible(c.oid) "
                    "AND c.relnamespace <> 'pg_catalog'::regnamespace ORDER BY 1")  # fmt: skip
        where = "on the search_path"
    else:
        cur.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON "
                    f"n.oid = c.relnamespace WHERE {kinds} AND n.nspname = %s ORDER BY 1",
                    (spec.schema,))  # fmt: skip
        where = f"in schema {spec.schema!r}"
    names = [str(r[0]) for r in cur.fetchall()]
    full = spec.table if spec.schema is None else f"{spec.schema}.{spec.table}"
    there = f"tables {where}: {list_keys(names)}" if names else f"no tables {where}"
    raise fail(spec.display, f"no table {full!r} ({there})")


def _column(cur: Any, spec: _Spec, oid: int, table: str) -> tuple[str, str, str]:
    """``(column, type as the server prints it, pg_type name)`` of the vector column."""
    cur.execute("SELECT a.attname, format_type(a.atttypid, a.atttypmod), t.typname "
                "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
                "WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped "
                "ORDER BY a.attnum", (oid,))  # fmt: skip
    columns = [(str(a), str(b), str(c)) for a, b, c in cur.fetchall()]
    listed = ", ".join(f"{a!r} ({b})" for a, b, _ in columns[:20])
    listed += f", ... ({len(columns) - 20} more)" if len(columns) > 20 else ""
    if spec.column is not None:
        for col in columns:
            if col[0] == spec.column:
                if col[2] not in _TYPES:
                    raise fail(spec.display, f"column {col[0]!r} of table {table!r} is {col[1]}; "
                                             f"expected {_KINDS}")  # fmt: skip
                return col
        raise fail(spec.display, f"no column {spec.column!r} in table {table!r} "
                                 f"(columns: {listed or 'none'})")  # fmt: skip
    vectors = [c for c in columns if c[2] in _TYPES]
    if len(vectors) == 1:
        return vectors[0]
    if not vectors:
        raise fail(spec.display, f"table {table!r} has no column of type {_KINDS} "
                                 f"(columns: {listed or 'none'})")  # fmt: skip
    shown = ", ".join(f"{a!r} ({b})" for a, b, _ in vectors)
    raise fail(spec.display, f"table {table!r} has {len(vectors)} vector columns; "
                             f"choose one with &column=NAME ({shown})")  # fmt: skip


class PostgresSource(EmbeddingSource):
    """The rows of one vector column of a PostgreSQL table, streamed through a
    server-side cursor (see the module docstring).

    Args:
        spec: the parsed URL.
        schema: the table's schema (resolved on the server).
        table: the table's name.
        column: the vector column.
        cast: ``"real[]"`` or ``"float8[]"``: what the column is read as.
        n: rows counted at opening.
        d: the first non-NULL row's length.
        dtype: source dtype name (``"float32"``, ``"float16"`` for halfvec, ``"float64"``).
        out: output dtype.
    """

    def __init__(self, spec: _Spec, schema: str, table: str, column: str, cast: str,
                 n: int, d: int, dtype: str, out: np.dtype) -> None:  # fmt: skip
        check_shape(spec.display, (n, d))
        super().__init__(spec.display, n, d, dtype, out)
        self._spec = spec
        self._schema, self._table, self._column, self._cast = schema, table, column, cast
        itemsize = out.itemsize
        self._row = np.dtype(_HEADER + [("v", [("len", ">i4"), ("x", f">f{itemsize}")], (d,))])

    def _query(self, pg: Any, tail: str) -> Any:
        sql = pg.sql
        return sql.SQL("SELECT {col}::" + self._cast + " FROM {tbl} " + tail).format(
            col=sql.Identifier(self._column), tbl=sql.Identifier(self._schema, self._table)
        )

    def _ring(self, rows: int, start: int, stop: int, buffers: int) -> Iterator[np.ndarray]:
        return self._chunks(rows, start, stop, buffers)  # batches land in the ring directly

    def _chunks(self, rows: int, start: int, stop: int, buffers: int = 1) -> Iterator[np.ndarray]:
        pg = _psycopg(self.name)
        try:
            yield from self._read(pg, rows, start, stop, buffers)
        except InputError:
            raise
        except pg.Error as e:
            raise fail(self.name, f"read failed: {self._spec.scrub(str(e))}") from None

    def _read(self, pg: Any, rows: int, start: int, stop: int, buffers: int
              ) -> Iterator[np.ndarray]:  # fmt: skip
        k_max = min(rows, stop - start)
        fetch = max(1, min(k_max, FETCH_BYTES // self._row.itemsize))

        def blocks() -> Iterator[np.ndarray]:
            at = start  # the next row
            with _connect(pg, self._spec) as conn:
                # the same heap order on every connection: no scan joining another one
                # midway, no parallel workers interleaving pages
                conn.execute("SET synchronize_seqscans = off")
                conn.execute("SET max_parallel_workers_per_gather = 0")
                query = self._query(pg, "OFFSET %s LIMIT %s")
                with conn.cursor("collapselab_rows", binary=True,
                                 row_factory=pg.rows.scalar_row) as cur:  # fmt: skip
                    cur.adapters.register_loader(_ARRAY_OID[self._cast], _raw_loader())
                    cur.execute(query, (start, stop - start))
                    while at < stop:
                        batch = cur.fetchmany(min(fetch, stop - at))
                        if not batch:
                            raise fail(self.name, f"the table has {at} rows now, {self.n} "
                                                  "when opened: it changed while being "
                                                  "read")  # fmt: skip
                        block = self._parse(conn, batch, at)
                        at += len(block)
                        yield block["x"]

        yield from rechunk(blocks(), k_max, self.d, self._out, buffers)

    def _parse(self, conn: Any, batch: list[Any], row0: int) -> np.ndarray:
        """The ``(k, d)`` big-endian ``(len, value)`` records of a fetched batch whose
        first row is ``row0``; raise naming the first bad row."""
        size = self._row.itemsize
        try:
            lengths = np.fromiter(map(len, batch), np.int64, len(batch))
        except TypeError:  # len(None): a NULL vector
            raise self._bad(conn, row0 + batch.index(None),
                            "is NULL; expected a vector in every row") from None
        wrong = np.flatnonzero(lengths != size)
        if wrong.size:
            at = int(wrong[0])
            raise self._bad(conn, row0 + at, self._describe(bytes(batch[at])))
        records = np.frombuffer(b"".join(batch), self._row)
        wrong = np.flatnonzero((records["ndim"] != 1) | (records["dim"] != self.d))
        if wrong.size:  # the right byte count for another shape
            at = int(wrong[0])
            raise self._bad(conn, row0 + at, self._describe(records[at].tobytes()))
        return records["v"]

    def _describe(self, raw: bytes) -> str:
        """What is wrong with one row's binary array."""
        ndim = int.from_bytes(raw[0:4], "big", signed=True)
        if ndim == 0:
            return f"is an empty array; expected {self.d} values"
        dims = [int.from_bytes(raw[12 + 8 * k : 16 + 8 * k], "big", signed=True)
                for k in range(ndim)]  # fmt: skip
        if ndim > 1:
            shape = " x ".join(map(str, dims))
            return f"is a {ndim}-D array ({shape}); expected a 1-D array of {self.d} values"
        if raw[4:8] != b"\0\0\0\0" and len(raw) < 20 + dims[0] * (4 + self._out.itemsize):
            return "has a NULL element; expected numbers everywhere"
        return f"has {dims[0]} values; expected {self.d} (the first non-NULL row's length)"

    def _bad(self, conn: Any, row: int, problem: str) -> InputError:
        """The error for row ``row`` (heap order), with its ctid when it can be had."""
        where = ""
        try:
            found = conn.execute(self._query_ctid(), (row,)).fetchone()
            where = f" (ctid {found[0]})" if found else ""
        except Exception:  # noqa: BLE001  (the ctid is a courtesy)
            pass
        return fail(self.name, f"row {row}{where} of column {self._column!r} {problem}")

    def _query_ctid(self) -> Any:
        from psycopg import sql

        return sql.SQL("SELECT ctid::text FROM {tbl} OFFSET %s LIMIT 1").format(
            tbl=sql.Identifier(self._schema, self._table)
        )


def open_postgres(url: str) -> EmbeddingSource:
    """Open the vector column of a PostgreSQL table named by a ``postgresql://`` URL (see
    the module docstring for the spec).

    Raises:
        InputError: one line naming the masked URL: psycopg missing, no connection
            (libpq's message), no such table or column, an unsupported column type,
            a column of NULLs; :class:`DegenerateInputError` for fewer than 2 rows.
    """
    spec = parse_url(url)
    pg = _psycopg(spec.display)
    sql = pg.sql
    with _connect(pg, spec) as conn, conn.cursor() as cur:
        try:
            oid, schema, table = _relation(cur, spec)
            shown = table if spec.schema is None else f"{schema}.{table}"
            column, typ, typname = _column(cur, spec, oid, shown)
            _, cast, dtype, out = _TYPES[typname]
            tbl, col = sql.Identifier(schema, table), sql.Identifier(column)
            cur.execute(sql.SQL("SELECT count(*) FROM {}").format(tbl))
            counted = cur.fetchone()
            n = 0 if counted is None else int(counted[0])
            cur.execute(sql.SQL("SELECT cardinality({c}::" + cast + ") FROM {t} "
                                "WHERE {c} IS NOT NULL LIMIT 1").format(c=col, t=tbl))  # fmt: skip
            first = cur.fetchone()
        except pg.Error as e:  # e.g. no SELECT privilege
            raise fail(spec.display, spec.scrub(str(e))) from None
    if first is None and n >= 2:
        raise fail(spec.display, f"column {column!r} of table {shown!r} is NULL in every row "
                                 f"({n} rows)")  # fmt: skip
    source = PostgresSource(spec, schema, table, column, cast,
                            n, 1 if first is None else int(first[0]), dtype, out)  # fmt: skip
    source.note = (f"column {column} ({typ}) of table {shown}, read in heap order through "
                   "a server-side cursor")  # fmt: skip
    return source
