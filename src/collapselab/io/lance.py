"""Reader for Lance datasets (LanceDB tables; needs the optional ``lancedb`` extra, of which
only ``pylance`` is used), read by batches.

Spec: ``collapselab check DB/items.lance:vector``, where ``DB/items.lance`` is the
directory that ``lancedb.connect("DB").create_table("items", ...)`` writes and
``vector`` the column holding one embedding per row: a fixed-size-list or list column of
numbers (LanceDB's own vector columns are ``fixed_size_list<float>[d]``). Without
``:COLUMN`` the dataset's single such column is used; with several, the error lists
them.

Rows come in the dataset's order (fragment by fragment, ``scan_in_order``), in batches
of at most 2048 rows with a small read-ahead and I/O buffer, so memory is bounded
whatever the table's size: one chunk plus Lance's decoder, which keeps a working set of
its own (``collapselab check`` peaked at 895 MB RSS on 1M x 384 float32, 1.5 GB, and at
937 MB on 3M rows, 4.6 GB; 377 MB for the 1M rows as ``.npy``). A row range
(``start``/``stop``, for sharding) is pushed down to Lance as ``offset``/``limit``.
Deleted rows are skipped (they are not counted in ``n`` either). Nulls and ragged lists
are errors.
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

INSTALL_HINT = 'reading Lance datasets needs pylance: pip install "collapselab[lancedb]"'

#: rows per decoded batch, batches decoded ahead (Lance's default: 16) and bytes of Lance's
#: I/O read-ahead buffer (its default: 2 GiB). Scanning 3M x 384 float32 (4.6 GB, three
#: fragments) peaked at 562 MB RSS with these, 653 MB with 8192 / 2 / 64 MiB and 842 MB
#: (1M rows) with Lance's defaults; the rest is the decoder's own working set, the same
#: whatever the table's size (1M rows: 577 MB, 3M: 562-653 MB), at the same speed
_BATCH_ROWS = 2048
_READAHEAD = 1
_IO_BUFFER = 16 * 2**20


def _lance(name: str) -> Any:
    try:
        import lance
        import pyarrow  # noqa: F401  (pylance returns Arrow data)
    except ImportError as e:
        raise fail(name, INSTALL_HINT) from e
    return lance


class LanceSource(EmbeddingSource):
    """Rows of one list column of a Lance dataset.

    Args:
        path: The dataset directory (``DB/TABLE.lance``).
        name: Display name (``PATH:COLUMN``).
        column: The vector column.
        n: Number of rows.
        d: Embedding dimension.
        raw: numpy dtype of the stored numbers.
    """

    def __init__(self, path: Path, name: str, column: str, n: int, d: int, raw: np.dtype
                 ) -> None:  # fmt: skip
        check_shape(name, (n, d))
        super().__init__(name, n, d, raw.name, output_dtype(raw))
        self._path = path
        self._column = column

    def _ring(self, rows: int, start: int, stop: int, buffers: int) -> Iterator[np.ndarray]:
        return self._chunks(rows, start, stop, buffers)  # batches land in the ring directly

    def _chunks(self, rows: int, start: int, stop: int, buffers: int = 1) -> Iterator[np.ndarray]:
        lance = _lance(self.name)
        try:
            yield from self._read(lance, rows, start, stop, buffers)
        except InputError:
            raise
        except (OSError, ValueError, RuntimeError) as e:  # lance raises these (and Arrow's)
            raise fail(self.name, f"read failed: {one_line(str(e))[:300]}") from e

    def _read(self, lance: Any, rows: int, start: int, stop: int, buffers: int
              ) -> Iterator[np.ndarray]:  # fmt: skip
        k_max = min(rows, stop - start)
        batches = lance.dataset(str(self._path)).to_batches(
            columns=[self._column], offset=start, limit=stop - start,
            batch_size=min(k_max, _BATCH_ROWS), batch_readahead=_READAHEAD,
            fragment_readahead=1, io_buffer_size=_IO_BUFFER, scan_in_order=True,
        )  # fmt: skip
        what = f"column {self._column!r}"

        def blocks() -> Iterator[np.ndarray]:
            row = start
            for batch in batches:
                if not batch.num_rows:
                    continue
                block = arrow_matrix(batch.column(0), self.name, self.d, row, what)
                row += len(block)
                if row > stop:
                    raise fail(self.name, f"more rows than the {self.n} counted: was the "
                                          "table modified while being read?")  # fmt: skip
                yield block
            if row < stop:
                raise fail(self.name, f"ended after row {row} of {stop}: was the table "
                                      "modified while being read?")  # fmt: skip

        yield from rechunk(blocks(), k_max, self.d, self._out, buffers)


def open_lance(path: Path, path_name: str, key: str | None) -> EmbeddingSource:
    """Open a Lance dataset directory; ``key`` names its vector column (see the module
    docstring)."""
    lance = _lance(path_name)
    import pyarrow as pa

    if not path.is_dir():
        raise fail(path_name, "not a Lance dataset (expected the directory DB/TABLE.lance "
                              "that LanceDB writes)")  # fmt: skip
    try:
        ds = lance.dataset(str(path))
        schema, n = ds.schema, int(ds.count_rows())
    except (OSError, ValueError, RuntimeError) as e:
        text = one_line(str(e))
        if "not found" in text.lower():
            raise fail(path_name, "not a Lance dataset (no _versions manifest: expected "
                                  "the directory DB/TABLE.lance that LanceDB writes)") from e
        raise fail(path_name, f"not a readable Lance dataset ({text[:300]})") from e
    lists = [f.name for f in schema if is_list(pa, f.type)]
    if key is not None:
        if key not in schema.names:
            raise fail(path_name, f"no column named {key!r}; available: {list_keys(schema.names)}")
        if key not in lists:
            raise fail(f"{path_name}:{key}", f"column {key!r} holds {schema.field(key).type}, "
                                             "not lists of numbers (one embedding per row)")
    elif not lists:
        raise fail(path_name, "no vector column (a list of numbers per row); columns: "
                              f"{list_keys(schema.names)}")  # fmt: skip
    key = pick_key(path_name, lists, key, what="vector column")
    name = f"{path_name}:{key}"
    field = schema.field(key)
    if not is_number(pa, field.type.value_type):
        raise fail(name, f"column {key!r} holds lists of {field.type.value_type}; expected numbers")
    if pa.types.is_fixed_size_list(field.type):
        d = int(field.type.list_size)
    elif n:
        try:
            first = next(ds.to_batches(columns=[key], limit=1)).column(0)
        except (OSError, ValueError, RuntimeError, StopIteration) as e:
            raise fail(name, f"cannot read the first row ({one_line(str(e))[:300]})") from e
        d = int(arrow_matrix(first, name, None, 0, f"column {key!r}").shape[1])
    else:
        d = 1  # no rows: check_shape reports that
    raw = np.dtype(field.type.value_type.to_pandas_dtype())
    return LanceSource(path, name, key, n, d, raw)
