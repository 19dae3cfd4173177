"""The :class:`EmbeddingSource` interface and the pieces every format reader shares.

A source knows its shape ``(n, d)`` and source dtype after opening (opening validates
everything that can be checked without reading the data) and yields the rows as
C-contiguous 2-D chunks. Chunks are float32 for float16 / bfloat16 / float32 / bool
input and float64 for float64 and integer input (integers above 2**24 are not exact in
float32; second moments are accumulated in float64 downstream anyway).
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from typing import Any

import numpy as np

from collapselab.errors import ConfigError, DegenerateInputError, InputError

#: Bytes of one chunk when ``rows`` is not given (bounded whatever N is); the one
#: chunk-size default of the package (``check`` reads with it too). Each chunk is one
#: ``Moments.update``, whose fixed costs (the hand-off to the worker threads, the one
#: that finishes last, merging their runs) are paid per call: at (87381, 384) float32,
#: update / bare float64 syrk was 1.24 at 32 MiB and 1.08 at 128 MiB (min of 9
#: interleaved runs, 2 cores); a cold 4.6 GB check took 13.3 s at 32 MiB (four
#: buffers), 11.8 s at 128 MiB (two) and 12.0 s at 64 MiB (four), medians of 3.
CHUNK_BYTES = 128 * 2**20

FLOAT32 = np.dtype(np.float32)
FLOAT64 = np.dtype(np.float64)


def one_line(text: str) -> str:
    """``text`` with its line breaks (and the blanks around them) folded into single
    spaces: libraries' multi-line messages (pyarrow's, torch's) become one line."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def default_chunk_rows(d: int, itemsize: int = 4) -> int:
    """Rows of one chunk at ``d`` columns of ``itemsize`` bytes: about
    :data:`CHUNK_BYTES` (at least one row)."""
    return max(1, CHUNK_BYTES // (itemsize * max(d, 1)))


def fail(name: str, problem: str) -> InputError:
    """Build the one-line ``"<name>: <problem>"`` error (callers ``raise`` it)."""
    return InputError(one_line(f"{name}: {problem}"))


def list_keys(keys: list[str], limit: int = 20) -> str:
    """``"'a', 'b', 'c'"``, cut after ``limit`` names."""
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def check_dtype(name: str, dtype: np.dtype) -> None:
    """Raise :class:`InputError` unless ``dtype`` is a real numeric (or bool) dtype."""
    if dtype.kind in "fiub":
        return
    if dtype.kind == "O":
        problem = "object array; collapselab never unpickles user data"
    elif dtype.fields is not None:
        problem = f"structured (record) dtype {dtype}; expected a numeric array"
    elif dtype.kind == "c":
        problem = f"complex dtype {dtype.name}; expected real numbers"
    elif dtype.kind in "US":
        problem = f"string dtype {dtype.str}; expected a numeric array"
    else:
        problem = f"non-numeric dtype {dtype}; expected a numeric array"
    raise fail(name, problem)


def check_shape(name: str, shape: tuple[int, ...]) -> tuple[int, int]:
    """Return ``(n, d)`` or raise: not 2-D, fewer than 2 rows, zero columns."""
    if len(shape) != 2:
        raise fail(name, f"{len(shape)}-D array of shape {tuple(shape)}; expected (N, d)")
    n, d = int(shape[0]), int(shape[1])
    if n < 2:
        raise DegenerateInputError(
            f"{name}: {n} row{'s' if n != 1 else ''} (shape {(n, d)}); "
            "need at least 2 rows to measure a spread"
        )
    if d < 1:  # 0, or negative in a damaged header
        raise fail(name, f"{d} columns (shape {(n, d)}); expected d >= 1")
    return n, d


def output_dtype(dtype: np.dtype, bf16: bool = False) -> np.dtype:
    """float32 for bfloat16 / float16 / float32 / bool, float64 for float64 and integers."""
    if bf16 or dtype.kind == "b" or (dtype.kind == "f" and dtype.itemsize <= 4):
        return FLOAT32
    return FLOAT64


def convert_into(out: np.ndarray, raw: np.ndarray, bf16: bool = False) -> None:
    """Copy ``raw`` (k, d) into ``out`` (k, d), casting and byte-swapping on the way.

    With ``bf16`` the raw values are the uint16 bit patterns of bfloat16, which are the
    high halves of the float32 with the same value: widen to uint32 and shift left 16.
    """
    if bf16:
        bits = out.view(np.uint32)
        np.copyto(bits, raw, casting="unsafe")
        np.left_shift(bits, 16, out=bits)
    else:
        np.copyto(out, raw, casting="unsafe")


def rechunk(blocks: Iterator[np.ndarray], rows: int, d: int, dtype: np.dtype, buffers: int
            ) -> Iterator[np.ndarray]:  # fmt: skip
    """Chunks of exactly ``rows`` rows (the last may be shorter) filled in turn from
    ``blocks`` of any lengths (decoded batches, fetched pages), cast on the way into a ring
    of ``buffers`` reused ``(rows, d)`` arrays of ``dtype``: what every reader of a store
    that hands out its own batch sizes needs."""
    ring = [np.empty((rows, d), dtype) for _ in range(buffers)]
    filled, i = 0, 0
    for block in blocks:
        j = 0
        while j < len(block):
            out = ring[i % buffers]
            take = min(rows - filled, len(block) - j)
            convert_into(out[filled : filled + take], block[j : j + take])
            filled, j = filled + take, j + take
            if filled == rows:
                yield out
                filled, i = 0, i + 1
    if filled:
        yield ring[i % buffers][:filled]


class EmbeddingSource(abc.ABC):
    """An embedding matrix ``Z`` of shape ``(n, d)`` in a file, read in row chunks.

    Attributes:
        name: Display name used in messages, e.g. ``"emb.npz:train"``.
        n: Number of rows (embeddings), at least 2.
        d: Number of columns (embedding dimension), at least 1.
        dtype: Name of the dtype stored in the file, e.g. ``"bfloat16"``, ``"int64"``.
    """

    name: str
    n: int
    d: int
    dtype: str
    #: how a store's rows were obtained, for the user ("exact stored vectors",
    #: "reconstructed from PQ codes (lossy)"); None for plain files
    note: str | None = None
    #: for a store holding both the originals (these rows) and a compressed copy of them
    #: (a FAISS IndexRefine): the compressed copy decoded, same rows in the same order;
    #: index health reports the quantisation error from the pair
    quantised: EmbeddingSource | None = None

    def __init__(self, name: str, n: int, d: int, dtype: str, out_dtype: np.dtype) -> None:
        self.name = name
        self.n = n
        self.d = d
        self.dtype = dtype
        self._out = out_dtype

    @property
    def out_dtype(self) -> np.dtype:
        """dtype of the yielded chunks: float32 or float64 (see module docstring)."""
        return self._out

    @property
    def shape(self) -> tuple[int, int]:
        """``(n, d)``."""
        return (self.n, self.d)

    def default_rows(self) -> int:
        """Rows per chunk when none are asked for: about :data:`CHUNK_BYTES` of output."""
        return default_chunk_rows(self.d, self._out.itemsize)

    def chunks(
        self,
        rows: int | None = None,
        start: int = 0,
        stop: int | None = None,
        buffers: int = 1,
    ) -> Iterator[np.ndarray]:
        """Yield rows ``start:stop`` as C-contiguous ``(k, d)`` arrays, in order.

        Every chunk has exactly ``rows`` rows except possibly the last. A yielded chunk
        is a view of a buffer the reader reuses (or of the source array): it is only
        valid until ``buffers`` more chunks have been yielded, so copy what you keep.
        Never write into it.

        Args:
            rows: Rows per chunk; default :meth:`default_rows` (about ``CHUNK_BYTES`` a chunk).
            start: First row to read (for sharding, e.g. one row range per rank).
            stop: One past the last row; default ``n``.
            buffers: Buffers the reader cycles through. With 2, chunk ``i`` can be
                consumed while chunk ``i + 1`` is read (see ``check``'s prefetching).

        Raises:
            ConfigError: ``rows < 1`` or a row range outside ``0 <= start <= stop <= n``.
            InputError: the file turns out unreadable while streaming.
        """
        rows = self.default_rows() if rows is None else rows
        stop = self.n if stop is None else stop
        for what, v in (("chunk rows", rows), ("buffers", buffers)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ConfigError(f"{self.name}: {what} must be a positive integer, got {v!r}")
        if not 0 <= start <= stop <= self.n:
            raise ConfigError(
                f"{self.name}: row range {start}:{stop} is outside 0:{self.n}"
            )
        if start == stop:
            return iter(())
        if buffers == 1:
            return self._chunks(int(rows), int(start), int(stop))
        return self._ring(int(rows), int(start), int(stop), int(buffers))

    def _ring(self, rows: int, start: int, stop: int, buffers: int) -> Iterator[np.ndarray]:
        """Chunks that stay valid for ``buffers`` iterations: copies into a ring of
        buffers. Readers that can fill several buffers directly override this."""
        ring = [np.empty((min(rows, stop - start), self.d), self._out) for _ in range(buffers)]
        for i, chunk in enumerate(self._chunks(rows, start, stop)):
            out = ring[i % buffers][: chunk.shape[0]]
            np.copyto(out, chunk)
            yield out

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Rows ``start:stop`` as one new ``(k, d)`` array of :attr:`out_dtype`."""
        stop = self.n if stop is None else stop
        out = np.empty((max(stop - start, 0), self.d), dtype=self._out)
        at = 0
        for chunk in self.chunks(start=start, stop=stop):
            out[at : at + len(chunk)] = chunk
            at += len(chunk)
        return out

    @abc.abstractmethod
    def _chunks(self, rows: int, start: int, stop: int) -> Iterator[np.ndarray]:
        """Yield rows ``start:stop`` (already validated, non-empty) in chunks of ``rows``."""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, n={self.n}, d={self.d}, "
            f"dtype={self.dtype!r})"
        )


class ArraySource(EmbeddingSource):
    """A source over an array already in memory (or memory-mapped by its library).

    Used for ``.pt`` tensors and Fortran-order members of ``.npz`` archives. Chunks are
    views of the array when it is already C-contiguous in the output dtype, otherwise
    copies into one reused buffer.

    Args:
        name: Display name.
        array: ``(n, d)`` numeric array (validated by the caller).
        dtype: Source dtype name to report.
        bf16: ``array`` holds bfloat16 bit patterns as uint16.
    """

    def __init__(self, name: str, array: np.ndarray, dtype: str, bf16: bool = False) -> None:
        n, d = array.shape
        super().__init__(name, n, d, dtype, output_dtype(array.dtype, bf16))
        self._array = array
        self._bf16 = bf16

    def _ring(self, rows: int, start: int, stop: int, buffers: int) -> Iterator[np.ndarray]:
        if self._direct():  # views of the array stay valid anyway
            return self._chunks(rows, start, stop)
        return super()._ring(rows, start, stop, buffers)

    def _direct(self) -> bool:
        return self._array.dtype == self._out and self._array.flags.c_contiguous

    def _chunks(self, rows: int, start: int, stop: int) -> Iterator[np.ndarray]:
        a = self._array
        direct = self._direct()
        buf: Any = None if direct else np.empty((min(rows, stop - start), self.d), self._out)
        for lo in range(start, stop, rows):
            hi = min(lo + rows, stop)
            if direct:
                yield a[lo:hi]
            else:
                convert_into(buf[: hi - lo], a[lo:hi], self._bf16)
                yield buf[: hi - lo]


def pick_key(path_name: str, keys: list[str], key: str | None, what: str = "array") -> str:
    """Resolve the ``KEY`` of ``PATH:KEY`` against the names a file holds.

    With no key, a file holding exactly one candidate gives that one; otherwise the
    error lists the names to choose from.
    """
    if key is None:
        if len(keys) == 1:
            return keys[0]
        if not keys:
            raise fail(path_name, f"holds no {what}s")
        raise fail(
            path_name,
            f"holds {len(keys)} {what}s; choose one with {path_name}:KEY "
            f"(keys: {list_keys(keys)})",
        )
    if key not in keys:
        raise fail(path_name, f"no {what} named {key!r}; available: {list_keys(keys)}")
    return key
