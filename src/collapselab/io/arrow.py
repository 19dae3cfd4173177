"""Arrow list columns as ``(k, d)`` numpy matrices, without a Python loop over rows.

One embedding per row, stored as a ``list`` / ``large_list`` / ``fixed_size_list`` of
numbers: what Parquet shards, Ray Data blocks and Spark's Arrow batches hold. The values
buffer is viewed (no copy for fixed-size lists of floats without nulls) and reshaped.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from collapselab.io._base import fail


def arrow_matrix(column: Any, name: str, d: int | None = None, row0: int = 0,
                 what: str = "embedding column") -> np.ndarray:  # fmt: skip
    """The ``(k, d)`` numbers of an Arrow list column (``Array`` or ``ChunkedArray``).

    Args:
        column: the list column.
        name: the file or dataset named in errors.
        d: the expected length of every list (default: the first row's).
        row0: index of the column's first row in the whole input (for error messages).
        what: how errors name the column.

    Raises:
        InputError: nulls, ragged lists, or not lists of numbers.
    """
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        chunks, out = column.chunks, []
        for c in chunks:
            out.append(arrow_matrix(c, name, d, row0, what))
            d, row0 = out[-1].shape[1], row0 + len(c)
        if not out:
            return np.empty((0, d or 0), np.float32)
        return out[0] if len(out) == 1 else np.concatenate(out)
    t = column.type
    if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)):
        raise fail(name, f"{what} holds {t}, not lists of numbers (one embedding per row)")
    if not (pa.types.is_integer(t.value_type) or pa.types.is_floating(t.value_type)):
        raise fail(name, f"{what} holds lists of {t.value_type}; expected numbers")
    if column.null_count:
        at = int(np.argmax(column.is_null().to_numpy(zero_copy_only=False)))
        raise fail(name, f"{what} has a null at row {row0 + at}; expected numbers everywhere")
    if pa.types.is_fixed_size_list(t):
        size = t.list_size
    else:
        lengths = column.value_lengths().to_numpy(zero_copy_only=False)
        size = int(lengths[0]) if d is None and lengths.size else (d or 0)
        bad = np.flatnonzero(lengths != size)
        if bad.size:
            raise fail(name, f"ragged {what}: row {row0 + int(bad[0])} has "
                             f"{int(lengths[bad[0]])} values; expected {size}")  # fmt: skip
    if d is not None and size != d:
        raise fail(name, f"{what} holds lists of {size} values; expected {d}")
    values = column.flatten()
    if values.null_count:
        raise fail(name, f"{what} has null values inside its lists")
    return values.to_numpy(zero_copy_only=False).reshape(-1, size)


def is_list(pa: Any, t: Any) -> bool:
    """``t`` is a list, large-list or fixed-size-list Arrow type."""
    return bool(pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t))


def is_number(pa: Any, t: Any) -> bool:
    """``t`` is an integer or floating Arrow type."""
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t))
