"""Reader for ``.parquet`` files (needs the optional ``pyarrow`` extra), read by batches.

Which columns make the ``(n, d)`` matrix:

* ``PATH:COLUMN`` names a list / large-list / fixed-size-list column of numbers, one
  embedding per row (all rows must have the same length ``d``);
* without a key, the single such list column if there is exactly one;
* with no list column at all, every integer and float column, in schema order (other
  columns, e.g. string ids, are skipped; integer id columns are *not*, so drop them or
  store the vector as one list column).

Null rows or null values are errors. Memory is bounded by one row group plus one chunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from collapselab.errors import InputError
from collapselab.io._base import (
    EmbeddingSource,
    check_shape,
    fail,
    list_keys,
    one_line,
    output_dtype,
    pick_key,
    rechunk,
)
from collapselab.io.arrow import arrow_matrix, is_list, is_number

#: rows per decoded Arrow batch; 8192, 32768 and whole row groups timed within noise,
#: so the smallest keeps the decoder's own buffers small
_BATCH_ROWS = 8192

INSTALL_HINT = 'reading .parquet needs pyarrow: pip install "collapselab[parquet]"'


def _pyarrow(path_name: str) -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet  # noqa: F401  (loads the pa.parquet submodule)
    except ImportError as e:
        raise fail(path_name, INSTALL_HINT) from e
    return pa


def _first_null(name: str, what: str, array: Any, row0: int) -> Exception:
    at = int(np.argmax(array.is_null().to_numpy(zero_copy_only=False)))
    return fail(name, f"{what} has a null at row {row0 + at}; expected numbers everywhere")


class ParquetSource(EmbeddingSource):
    """Rows of a Parquet file from one list column or from all numeric columns.

    Args:
        path: The file.
        name: Display name (``PATH:COLUMN`` in list-column mode).
        columns: The columns read: one list column, or the numeric columns.
        list_column: ``columns[0]`` is a list column holding whole embeddings.
        n: Number of rows.
        d: Embedding dimension.
        raw: numpy dtype of the stored numbers (their common dtype in column mode).
    """

    def __init__(
        self,
        path: Path,
        name: str,
        columns: list[str],
        list_column: bool,
        n: int,
        d: int,
        raw: np.dtype,
    ) -> None:
        check_shape(name, (n, d))
        super().__init__(name, n, d, raw.name, output_dtype(raw))
        self._raw = raw
        self._path = path
        self._columns = columns
        self._list = list_column

    def _block(self, batch: Any, row0: int) -> np.ndarray:
        """The ``(k, d)`` numbers of one record batch whose first row is ``row0``."""
        if self._list:
            what = f"column {self._columns[0]!r}"
            return arrow_matrix(batch.column(0), self.name, self.d, row0, what)
        block = np.empty((batch.num_rows, self.d), self._raw)
        for j, column in enumerate(self._columns):
            array = batch.column(j)
            if array.null_count:
                raise _first_null(self.name, f"column {column!r}", array, row0)
            block[:, j] = array.to_numpy(zero_copy_only=False)
        return block

    def _chunks(self, rows: int, start: int, stop: int, buffers: int = 1) -> Iterator[np.ndarray]:
        pa = _pyarrow(self.name)
        try:
            yield from self._read(pa, rows, start, stop, buffers)
        except InputError:
            raise
        except (pa.ArrowException, OSError, ValueError) as e:  # ValueError: bad UTF-8 too
            raise fail(self.name, f"read failed: {one_line(str(e))}") from e

    def _ring(self, rows: int, start: int, stop: int, buffers: int) -> Iterator[np.ndarray]:
        return self._chunks(rows, start, stop, buffers)  # batches land in the ring directly

    def _read(self, pa: Any, rows: int, start: int, stop: int, buffers: int
              ) -> Iterator[np.ndarray]:  # fmt: skip
        pf = pa.parquet.ParquetFile(self._path)
        groups, pos = [], None  # row groups overlapping start:stop; first row of the first
        at = 0
        for g in range(pf.metadata.num_row_groups):
            m = pf.metadata.row_group(g).num_rows
            if at + m > start and at < stop:
                groups.append(g)
                pos = at if pos is None else pos
            at += m
        assert pos is not None
        k_max = min(rows, stop - start)
        # use_threads=False: pyarrow's own pool fights the accumulator for the cores;
        # one decoding thread overlapping the arithmetic was fastest here (1M x 384 on
        # 2 cores: decode 3.7 s single-threaded, 5.2-9.9 s with pyarrow's threads)
        batches = pf.iter_batches(batch_size=min(k_max, _BATCH_ROWS), row_groups=groups,
                                  columns=self._columns, use_threads=False)  # fmt: skip

        def blocks() -> Iterator[np.ndarray]:
            at = pos
            for batch in batches:
                lo, hi = max(start - at, 0), min(stop - at, batch.num_rows)
                if lo < hi:
                    yield self._block(batch.slice(lo, hi - lo), at + lo)
                at += batch.num_rows
                if at >= stop:
                    break

        # chunks are exactly `rows` long: filled in turn from the decoded batches
        yield from rechunk(blocks(), k_max, self.d, self._out, buffers)


def open_parquet(path: Path, path_name: str, key: str | None) -> EmbeddingSource:
    """Open a ``.parquet`` file; ``key`` names a list column (see module docstring)."""
    pa = _pyarrow(path_name)
    try:
        pf = pa.parquet.ParquetFile(path)
        schema, n = pf.schema_arrow, pf.metadata.num_rows
    except (pa.ArrowException, OSError, ValueError) as e:  # ValueError: bad UTF-8 too
        raise fail(path_name, f"not a valid .parquet file ({one_line(str(e))})") from e
    lists = [f.name for f in schema if is_list(pa, f.type)]
    numbers = [f.name for f in schema if is_number(pa, f.type)]
    if key is not None:
        if key not in schema.names:
            raise fail(path_name, f"no column named {key!r}; available: {list_keys(schema.names)}")
        if key not in lists:
            hint = f"omit ':{key}' to use all {len(numbers)} numeric columns"
            raise fail(
                f"{path_name}:{key}",
                f"column {key!r} holds {schema.field(key).type}, not lists of numbers; "
                + (hint if numbers and not lists else "name a list column"),
            )
    elif not lists:
        if not numbers:
            raise fail(
                path_name,
                f"no numeric or list-of-numbers columns (columns: {list_keys(schema.names)})",
            )
        raw = np.result_type(*(schema.field(c).type.to_pandas_dtype() for c in numbers))
        return ParquetSource(path, path_name, numbers, False, n, len(numbers), raw)
    key = pick_key(path_name, lists, key, what="list column")
    name = f"{path_name}:{key}"
    value_type = schema.field(key).type.value_type
    if not is_number(pa, value_type):
        raise fail(name, f"column {key!r} holds lists of {value_type}; expected numbers")
    if pa.types.is_fixed_size_list(schema.field(key).type):
        d = schema.field(key).type.list_size
    elif n:
        first = next(pf.iter_batches(batch_size=1, columns=[key])).column(0)
        if first.null_count:
            raise _first_null(name, f"column {key!r}", first, 0)
        d = int(first.value_lengths()[0].as_py())
    else:
        d = 1  # no rows: check_shape reports that
    return ParquetSource(path, name, [key], True, n, d, np.dtype(value_type.to_pandas_dtype()))
