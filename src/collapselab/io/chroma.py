"""Reader for Chroma's persistent stores (needs the optional ``chroma`` extra), read by pages.

Spec: ``collapselab check chroma_dir/chroma.sqlite3:docs``, where ``chroma_dir`` is the
directory given to ``chromadb.PersistentClient(path=...)`` (Chroma keeps its catalogue in
``chroma.sqlite3`` there) and ``docs`` the collection. Without ``:COLLECTION`` the
store's only collection is used; with several, the error lists them.

The stored embeddings (float32) are read through Chroma's own client, page by page
(``collection.get(include=["embeddings"], limit=..., offset=...)``, at most 4096 rows a
page), in Chroma's insertion order. The client is opened with telemetry off and every
collection with ``embedding_function=None``: nothing is embedded, so no embedding model
is ever loaded or downloaded. Memory is bounded by one page plus one chunk on our side,
but not in Chroma's client: chromadb 1.5 loads the collection's whole HNSW segment (every
vector plus the graph) on the first ``get``, so the peak grows with the store
(``benchmarks/results/stores.md``: +254 MiB from 40k to 120k rows of 384, for 143 MiB of
data). Reading the segment files directly would bound it; they are Chroma's internal
format (vectors normalised for cosine collections, recent rows still in its log), so the
client is used.

Before Chroma opens anything, the file is checked (read-only) to be a Chroma catalogue:
Chroma would otherwise create its tables in any ``chroma.sqlite3`` it is given.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from collapselab.errors import InputError
from collapselab.io._base import (
    EmbeddingSource,
    check_shape,
    fail,
    one_line,
    pick_key,
    rechunk,
)

INSTALL_HINT = 'reading Chroma stores needs chromadb: pip install "collapselab[chroma]"'
#: the catalogue file Chroma keeps in its directory
CATALOGUE = "chroma.sqlite3"
#: rows per ``collection.get`` page
_PAGE_ROWS = 4096


def _chromadb(name: str) -> Any:
    try:
        import chromadb
        import chromadb.config  # noqa: F401
    except ImportError as e:
        raise fail(name, INSTALL_HINT) from e
    return chromadb


def _errors(chromadb: Any) -> tuple[type[BaseException], ...]:
    """What Chroma raises on a bad store or request (its own errors, SQLite's, ...)."""
    own = getattr(getattr(chromadb, "errors", None), "ChromaError", None)
    kinds: list[type[BaseException]] = [sqlite3.Error, ValueError, RuntimeError, OSError,
                                        KeyError, TypeError]  # fmt: skip
    return tuple(kinds + ([own] if isinstance(own, type) else []))


def _client(chromadb: Any, path: Path, name: str) -> Any:
    """Chroma's client on the store's directory, telemetry off."""
    if path.name != CATALOGUE:
        raise fail(name, f"a Chroma store is named by its {CATALOGUE} "
                         f"(DIR/{CATALOGUE}:COLLECTION); this is another SQLite file")  # fmt: skip
    try:  # read-only look first: Chroma would create its tables in a foreign file
        with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error as e:
        raise fail(name, f"not a readable SQLite file ({one_line(str(e))})") from e
    if "collections" not in tables:
        raise fail(name, "not a Chroma store (no collections table)")
    settings = chromadb.config.Settings(anonymized_telemetry=False)
    try:
        return chromadb.PersistentClient(path=str(path.parent), settings=settings)
    except _errors(chromadb) as e:
        raise fail(name, f"Chroma cannot open the store ({one_line(str(e))[:300]})") from e


def page_matrix(embeddings: Any, name: str, d: int | None, row0: int) -> np.ndarray:
    """The ``(k, d)`` float32 rows of one page of ``get(include=["embeddings"])``.

    Raises:
        InputError: a missing embedding, or vectors of different lengths (``row0`` is
            the page's first row, for the message).
    """
    rows: Sequence[Any] = [] if embeddings is None else embeddings
    if isinstance(rows, np.ndarray) and rows.ndim == 2:
        block = rows
    else:
        lengths = []
        for i, v in enumerate(rows):
            if v is None:
                raise fail(name, f"row {row0 + i} has no embedding")
            lengths.append(int(np.size(v)))
        want = d if d is not None else (lengths[0] if lengths else 0)
        bad = [i for i, m in enumerate(lengths) if m != want]
        if bad:
            raise fail(name, f"vectors of inconsistent dimension: row {row0 + bad[0]} has "
                             f"{lengths[bad[0]]} values, expected {want}")  # fmt: skip
        block = np.asarray(list(rows), dtype=np.float64).reshape(len(lengths), want)
    if d is not None and block.shape[1] != d:
        raise fail(name, f"vectors of inconsistent dimension: rows {row0}.. have "
                         f"{block.shape[1]} values, expected {d}")  # fmt: skip
    if not np.issubdtype(block.dtype, np.number):
        raise fail(name, f"embeddings of dtype {block.dtype}; expected numbers")
    # Chroma stores float32 (and hands them out as float64): the cast is exact
    return np.ascontiguousarray(block, dtype=np.float32)


class ChromaSource(EmbeddingSource):
    """The embeddings of one Chroma collection, read page by page.

    Args:
        collection: The Chroma collection (opened with ``embedding_function=None``).
        name: Display name (``PATH:COLLECTION``).
        n: Number of rows.
        d: Embedding dimension.
        errors: The exception types Chroma raises.
    """

    def __init__(self, collection: Any, name: str, n: int, d: int,
                 errors: tuple[type[BaseException], ...]) -> None:  # fmt: skip
        check_shape(name, (n, d))
        super().__init__(name, n, d, "float32", np.dtype(np.float32))
        self._collection = collection
        self._errors = errors

    def _ring(self, rows: int, start: int, stop: int, buffers: int) -> Iterator[np.ndarray]:
        return self._chunks(rows, start, stop, buffers)  # pages land in the ring directly

    def _page(self, offset: int, limit: int) -> np.ndarray:
        try:
            got = self._collection.get(include=["embeddings"], limit=limit, offset=offset)
        except InputError:
            raise
        except self._errors as e:
            raise fail(self.name, f"read failed: {one_line(str(e))[:300]}") from e
        return page_matrix(got.get("embeddings"), self.name, self.d, offset)

    def _chunks(self, rows: int, start: int, stop: int, buffers: int = 1) -> Iterator[np.ndarray]:
        def pages() -> Iterator[np.ndarray]:
            row = start
            while row < stop:
                limit = min(_PAGE_ROWS, stop - row)
                block = self._page(row, limit)
                if len(block) != limit:
                    raise fail(self.name, f"page at row {row} has {len(block)} rows, expected "
                                          f"{limit}: was the collection modified while being "
                                          "read?")  # fmt: skip
                row += limit
                yield block

        yield from rechunk(pages(), min(rows, stop - start), self.d, self._out, buffers)


def open_chroma(path: Path, path_name: str, key: str | None) -> EmbeddingSource:
    """Open a Chroma store by its ``chroma.sqlite3``; ``key`` names the collection (see
    the module docstring)."""
    chromadb = _chromadb(path_name)
    errors = _errors(chromadb)
    client = _client(chromadb, path, path_name)
    try:
        # chromadb >= 1.0 lists Collection objects, 0.6 lists names
        names = [str(getattr(c, "name", c)) for c in client.list_collections()]
    except errors as e:
        raise fail(path_name, f"cannot list collections ({one_line(str(e))[:300]})") from e
    key = pick_key(path_name, sorted(names), key, what="collection")
    name = f"{path_name}:{key}"
    try:
        collection = client.get_collection(key, embedding_function=None)
        n = int(collection.count())
        first = collection.get(include=["embeddings"], limit=1, offset=0)
    except errors as e:
        raise fail(name, f"cannot open the collection ({one_line(str(e))[:300]})") from e
    d = page_matrix(first.get("embeddings"), name, None, 0).shape[1] if n else 1
    return ChromaSource(collection, name, n, d, errors)
