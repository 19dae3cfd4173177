"""Reader for FAISS index files (``.faiss`` / ``.index``; needs the optional ``faiss``
extra), streamed with bounded memory.

Spec: ``collapselab check idx.faiss`` (an index file holds one matrix: no ``:KEY``).

How the index is opened: the file is memory-mapped and handed to faiss's zero-copy
reader (``ZeroCopyIOReader`` with ``IO_FLAG_MMAP_IFC``, faiss >= 1.11), so faiss builds
the index structure (quantizer, codebooks, graph) while every code array stays a *view*
into the map. The views' addresses give each array's byte offset in the file; the rows
are then read from the file by offset into one reused buffer per chunk (``readinto``;
``O_DIRECT`` for large cold flat files, as for ``.npy``), never through the map, whose
pages would otherwise all count in the process's resident set. Peak memory is the
index structure faiss keeps in memory (small next to the vectors) plus about one chunk:
``collapselab check`` of a 1M x 384 float32 ``IndexFlatL2`` (1.54 GB) peaked at 398 MB
RSS, against 377 MB for the same rows as ``.npy`` and 1.68 GB for a loop over faiss's
own mapped index (``IO_FLAG_MMAP_IFC`` + ``reconstruct_n``), which maps without copying
but keeps every page it touched resident.

What is read, per index type (:attr:`EmbeddingSource.note` says which, for the report):

* ``IndexFlat`` / ``IndexFlatL2`` / ``IndexFlatIP``, and ``IndexIDMap`` / ``IndexIDMap2``
  around any supported index: the stored vectors, exactly (ids are not used: rows come
  in storage order).
* ``IndexHNSWFlat`` / ``IndexNSGFlat``: the exact vectors of their flat storage;
  ``IndexHNSWSQ`` / ``IndexHNSWPQ``: their storage decoded (lossy).
* ``IndexIVFFlat``: the stored vectors exactly, in inverted-list order (list 0's rows,
  then list 1's, ...), read list by list.
* ``IndexPQ``, ``IndexScalarQuantizer``, additive quantizers (``IndexResidualQuantizer``,
  ``IndexLocalSearchQuantizer``, ...) and their IVF forms (``IndexIVFPQ``,
  ``IndexIVFScalarQuantizer``, ...): the codes decoded with faiss's ``sa_decode``,
  chunk by chunk (lossy; IVF forms in inverted-list order).
* ``IndexRefineFlat`` / ``IndexRefine``: the refine index's vectors (exact for a flat
  refine index); :attr:`EmbeddingSource.quantised` decodes the base index over the same
  rows in the same order (an IVF base through a direct map and ``reconstruct_n``: those
  compressed codes are read through the map), from which index health reports the
  quantisation error.

Refused with one line: binary indexes (``IndexBinary*``: codes are bits, not vectors),
fast-scan indexes (faiss 1.15 crashes reconstructing ``IndexIVFPQFastScan``), and every
other type (``IndexLSH``, ``IndexPreTransform``, ...), named in the message.
"""

from __future__ import annotations

import mmap
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from collapselab.errors import InputError
from collapselab.io._base import EmbeddingSource, check_shape, fail, one_line
from collapselab.io.raw import RawSource

INSTALL_HINT = 'reading FAISS indexes needs faiss: pip install "collapselab[faiss]"'
#: faiss's zero-copy reader (and ``IO_FLAG_MMAP_IFC``) arrived in 1.11
_MIN_VERSION = "1.11"

#: index file type codes of faiss's binary indexes (``IndexBinary*``), by their fourcc
_BINARY = {b"IBxF": "IndexBinaryFlat", b"IBwF": "IndexBinaryIVF", b"IBHf": "IndexBinaryHNSW",
           b"IBMp": "IndexBinaryIDMap", b"IBM2": "IndexBinaryIDMap2",
           b"IBHh": "IndexBinaryHash", b"IBHm": "IndexBinaryMultiHash"}  # fmt: skip
_SUPPORTED = ("IndexFlat*, IndexIDMap(2), IndexHNSW*, IndexNSGFlat, IndexIVFFlat, IndexPQ, "
              "IndexScalarQuantizer, additive quantizers, IndexIVFPQ, IndexIVFScalarQuantizer, "
              "IndexRefine(Flat)")  # fmt: skip
#: faiss's messages start "Error in <signature> at <file>:<line>: "
_FAISS_PREFIX = re.compile(r"^Error in .*? at \S+:\d+: (Error: )?")


def _faiss(name: str) -> Any:
    try:
        import faiss
    except ImportError as e:
        raise fail(name, INSTALL_HINT) from e
    if not (hasattr(faiss, "ZeroCopyIOReader") and hasattr(faiss, "IO_FLAG_MMAP_IFC")):
        version = getattr(faiss, "__version__", "?")
        raise fail(name, f"reading FAISS indexes needs faiss >= {_MIN_VERSION} (installed: "
                         f'{version}): pip install -U "collapselab[faiss]"')  # fmt: skip
    return faiss


def _faiss_message(e: BaseException) -> str:
    text = one_line(str(e))
    return _FAISS_PREFIX.sub("", text)[:300]


class _Mapped:
    """The index file memory-mapped and opened by faiss without copying its codes.

    Keeps the map alive as long as the index built over it (sources that decode hold
    this object). Nothing reads the map's pages but faiss itself when it parses the
    structure (and an IVF base decoded through a direct map).
    """

    def __init__(self, faiss: Any, path: Path, name: str) -> None:
        self.path = path
        with open(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4:
                raise fail(name, "not a FAISS index (the file is shorter than a header)")
            if head in _BINARY or head.startswith(b"IB"):
                kind = _BINARY.get(head, "an IndexBinary")
                raise fail(name, f"a binary FAISS index ({kind}): its codes are bits, not "
                                 "vectors; collapselab measures float embeddings")  # fmt: skip
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self.bytes: np.ndarray | None = np.frombuffer(self._map, np.uint8)
        self.size = int(self.bytes.size)
        self.base = int(self.bytes.ctypes.data)
        try:
            reader = faiss.ZeroCopyIOReader(faiss.swig_ptr(self.bytes), self.size)
            self.index: Any = faiss.read_index(reader, faiss.IO_FLAG_MMAP_IFC)
        except (RuntimeError, MemoryError, TypeError, ValueError) as e:
            self.close()
            raise fail(name, f"not a readable FAISS index ({_faiss_message(e)})") from e
        self.used = False

    def offset(self, view: Any, nbytes: int) -> int | None:
        """The file offset of a faiss ``MaybeOwnedVector`` that is a view into the map
        and holds ``nbytes``; None when faiss copied it (then it is not in the map)."""
        if view.is_owned:
            return None
        at = int(view.view_data) - self.base
        if at < 0 or at + nbytes > self.size or int(view.view_size) < nbytes:
            return None
        return at

    def close(self) -> None:
        """Drop the index, then the map (only when no source decodes through it)."""
        self.index = None
        self.bytes = None
        try:
            self._map.close()
        except BufferError:  # a view is still alive somewhere: the GC closes it later
            pass


def _read_exact(f: IO[bytes], view: memoryview, at: int, name: str) -> None:
    f.seek(at)
    got = 0
    while got < len(view):
        n = f.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            raise fail(name, "truncated: the file ended while reading codes "
                             "(was it modified while being read?)")  # fmt: skip
        got += n


class CodesSource(EmbeddingSource):
    """Rows stored as fixed-size codes in runs ("segments") of a file, decoded per chunk.

    Args:
        name: Display name.
        path: The index file.
        d: Dimension of the decoded rows.
        segments: ``(offset, count, list_no)`` of each run of codes, in row order
            (one run for a flat-coded index, one per non-empty inverted list for IVF).
        code_size: Bytes of one code.
        decode: ``decode(codes, out)`` writes the ``(k, d)`` float32 rows of ``k`` codes
            (each prefixed with ``prefix`` bytes holding its list number); None when
            the codes are the float32 rows themselves (IVF-Flat).
        prefix: Bytes of the list-number prefix ``decode`` expects (faiss's
            ``coarse_code_size``; 0 for flat-coded indexes).
        keep: Held while the source lives (the mapped index ``decode`` uses).
    """

    def __init__(self, name: str, path: Path, d: int, segments: list[tuple[int, int, int]],
                 code_size: int, decode: Callable[[np.ndarray, np.ndarray], None] | None,
                 prefix: int = 0, keep: Any = None) -> None:  # fmt: skip
        n = sum(count for _, count, _ in segments)
        check_shape(name, (n, d))
        super().__init__(name, n, d, "float32", np.dtype(np.float32))
        self._path = path
        self._segments = segments
        self._firsts = np.cumsum([0] + [count for _, count, _ in segments])
        self._code_size = code_size
        self._decode = decode
        self._prefix = prefix
        self._keep = keep

    def _ring(self, rows: int, start: int, stop: int, buffers: int) -> Iterator[np.ndarray]:
        return self._chunks(rows, start, stop, buffers)  # decoded straight into the ring

    def _chunks(self, rows: int, start: int, stop: int, buffers: int = 1) -> Iterator[np.ndarray]:
        try:
            with open(self._path, "rb", buffering=0) as f:
                yield from self._read(f, rows, start, stop, buffers)
        except InputError:
            raise
        except (OSError, RuntimeError, ValueError) as e:
            raise fail(self.name, f"read failed: {_faiss_message(e)}") from e

    def _read(self, f: IO[bytes], rows: int, start: int, stop: int, buffers: int
              ) -> Iterator[np.ndarray]:  # fmt: skip
        k_max = min(rows, stop - start)
        cs, pre = self._code_size, self._prefix
        ring = [np.empty((k_max, self.d), np.float32) for _ in range(buffers)]
        codes = np.empty((k_max, pre + cs), np.uint8) if self._decode is not None else None
        flat = np.empty(k_max * cs, np.uint8) if pre and codes is not None else None
        seg = int(np.searchsorted(self._firsts, start, side="right")) - 1
        row, i, filled = start, 0, 0
        while row < stop:
            at, count, list_no = self._segments[seg]
            lo = row - int(self._firsts[seg])  # position inside the segment
            take = min(count - lo, stop - row, k_max - filled)
            out = ring[i % buffers]
            if codes is None:  # the codes are the rows
                target = out[filled : filled + take].reshape(-1).view(np.uint8)
                _read_exact(f, target.data, at + lo * cs, self.name)
            elif flat is None:  # no prefix: codes are contiguous rows of the buffer
                target = codes[filled : filled + take].reshape(-1)
                _read_exact(f, target.data, at + lo * cs, self.name)
            else:
                _read_exact(f, flat[: take * cs].data, at + lo * cs, self.name)
                codes[filled : filled + take, pre:] = flat[: take * cs].reshape(take, cs)
                codes[filled : filled + take, :pre] = _listno_bytes(list_no, pre)
            filled, row = filled + take, row + take
            if lo + take == count:
                seg += 1
            if filled == k_max or row == stop:
                if codes is not None and self._decode is not None:
                    self._decode(codes[:filled], out[:filled])
                yield out[:filled]
                filled, i = 0, i + 1


def _listno_bytes(list_no: int, size: int) -> np.ndarray:
    """faiss's ``encode_listno``: the list number in ``size`` little-endian bytes."""
    return np.frombuffer(int(list_no).to_bytes(8, "little"), np.uint8)[:size]


class ReconstructSource(EmbeddingSource):
    """Rows ``0..n-1`` in id order from faiss's ``reconstruct_n`` (chunk by chunk, into
    reused buffers): an IVF base index of an ``IndexRefine``, with a direct map."""

    def __init__(self, name: str, index: Any, keep: Any) -> None:
        n, d = check_shape(name, (int(index.ntotal), int(index.d)))
        super().__init__(name, n, d, "float32", np.dtype(np.float32))
        self._index = index
        self._keep = keep

    def _ring(self, rows: int, start: int, stop: int, buffers: int) -> Iterator[np.ndarray]:
        return self._chunks(rows, start, stop, buffers)

    def _chunks(self, rows: int, start: int, stop: int, buffers: int = 1) -> Iterator[np.ndarray]:
        ring = [np.empty((min(rows, stop - start), self.d), np.float32) for _ in range(buffers)]
        for i, lo in enumerate(range(start, stop, rows)):
            k = min(rows, stop - lo)
            out = ring[i % buffers][:k]
            try:
                self._index.reconstruct_n(lo, k, out)
            except RuntimeError as e:
                raise fail(self.name, f"read failed: {_faiss_message(e)}") from e
            yield out


# --------------------------------------------------------------------- index types
def _kind(faiss: Any, index: Any) -> str:
    """How the codes of a flat-coded index are decoded, for the note."""
    if isinstance(index, faiss.IndexScalarQuantizer) or (
        isinstance(index, faiss.IndexIVF) and hasattr(index, "sq")
    ):
        names = {getattr(faiss.ScalarQuantizer, a): a[3:]
                 for a in dir(faiss.ScalarQuantizer) if a.startswith("QT_")}  # fmt: skip
        return f"SQ {names.get(int(index.sq.qtype), '?')} codes"
    if hasattr(index, "pq"):
        return "PQ codes"
    if hasattr(index, "aq") or hasattr(index, "rq") or hasattr(index, "lsq"):
        return "additive-quantizer codes"
    return "codes"


def _is_decodable(faiss: Any, index: Any) -> bool:
    """Flat-coded (non-IVF) indexes whose ``sa_decode`` gives vectors back."""
    kinds = [faiss.IndexPQ, faiss.IndexScalarQuantizer]
    kinds += [getattr(faiss, k) for k in ("IndexAdditiveQuantizer",) if hasattr(faiss, k)]
    return isinstance(index, tuple(kinds)) and isinstance(index, faiss.IndexFlatCodes)


def _unsupported(name: str, index: Any, why: str = "") -> InputError:
    what = type(index).__name__
    return fail(name, f"{what} indexes are not supported{why}; supported: {_SUPPORTED}")


class _Builder:
    """Turns the (mapped) index into a source, descending into wrappers."""

    def __init__(self, faiss: Any, mapped: _Mapped, name: str) -> None:
        self.faiss = faiss
        self.mapped = mapped
        self.name = name

    def source(self, index: Any, where: str = "", id_order: bool = False) -> EmbeddingSource:
        """The rows of ``index`` (``where``: how the note names it inside a wrapper;
        ``id_order``: rows must come in id order, as an IndexRefine's base)."""
        faiss, name = self.faiss, self.name
        what = type(index).__name__ + where
        if isinstance(index, (faiss.IndexIDMap, faiss.IndexIDMap2)):
            return self.source(faiss.downcast_index(index.index), f" in {what}", id_order)
        if isinstance(index, faiss.IndexRefine):
            return self._refine(index, what)
        if isinstance(index, (faiss.IndexHNSW, faiss.IndexNSG)):
            return self.source(faiss.downcast_index(index.storage), f" storage of {what}",
                               id_order)  # fmt: skip
        if hasattr(faiss, "IndexIVFFastScan") and isinstance(index, faiss.IndexIVFFastScan):
            raise _unsupported(name, index, " (faiss cannot decode fast-scan codes safely)")
        if isinstance(index, faiss.IndexIVF):
            return self._ivf(index, what, id_order)
        if isinstance(index, faiss.IndexFlat) and index.code_size == 4 * index.d:
            return self._flat(index, what)
        if _is_decodable(faiss, index):
            return self._coded(index, what)
        raise _unsupported(name, index)

    def _flat(self, index: Any, what: str) -> EmbeddingSource:
        n, d = check_shape(self.name, (int(index.ntotal), int(index.d)))
        path = self.mapped.path
        at = self.mapped.offset(index.codes, n * d * 4)
        if at is None:  # faiss copied the codes: never the case for faiss 1.11-1.15
            raise fail(self.name, f"cannot locate the vectors of {what} in the file")
        src = RawSource(self.name, lambda: open(path, "rb", buffering=0), at, (n, d),
                        np.dtype(np.float32), "float32", path=path)  # fmt: skip
        src.note = f"exact stored vectors ({what})"
        return src

    def _coded(self, index: Any, what: str) -> EmbeddingSource:
        n, cs = int(index.ntotal), int(index.code_size)
        check_shape(self.name, (n, int(index.d)))
        at = self.mapped.offset(index.codes, n * cs)
        if at is None:
            raise fail(self.name, f"cannot locate the codes of {what} in the file")
        self.mapped.used = True

        def decode(codes: np.ndarray, out: np.ndarray) -> None:
            index.sa_decode(codes, out)

        src = CodesSource(self.name, self.mapped.path, int(index.d), [(at, n, 0)], cs,
                          decode, keep=self.mapped)  # fmt: skip
        src.note = f"reconstructed from {_kind(self.faiss, index)} ({what}, lossy)"
        return src

    def _ivf(self, index: Any, what: str, id_order: bool) -> EmbeddingSource:
        faiss, name = self.faiss, self.name
        exact = isinstance(index, faiss.IndexIVFFlat) and index.code_size == 4 * index.d
        kind = "exact stored vectors" if exact else f"reconstructed from {_kind(faiss, index)}"
        if id_order:  # an IndexRefine's base: rows by id, through a direct map
            try:
                index.make_direct_map()
            except RuntimeError as e:
                raise fail(name, f"{what}: {_faiss_message(e)}") from e
            self.mapped.used = True
            src: EmbeddingSource = ReconstructSource(name, index, self.mapped)
            src.note = f"{kind} ({what}{'' if exact else ', lossy'})"
            return src
        lists = faiss.downcast_InvertedLists(index.invlists)
        if not isinstance(lists, faiss.ArrayInvertedLists):
            raise _unsupported(name, index, f" with {type(lists).__name__} inverted lists")
        cs = int(lists.code_size)
        segments = []
        for list_no in range(int(index.nlist)):
            count = int(lists.list_size(list_no))
            if count:
                at = self.mapped.offset(lists.codes.at(list_no), count * cs)
                if at is None:
                    raise fail(name, f"cannot locate inverted list {list_no} of {what}")
                segments.append((at, count, list_no))
        if sum(c for _, c, _ in segments) != int(index.ntotal):
            raise fail(name, f"{what}: its inverted lists do not hold ntotal="
                             f"{int(index.ntotal)} rows")  # fmt: skip
        decode: Callable[[np.ndarray, np.ndarray], None] | None = None
        prefix = 0
        if not exact:
            prefix = int(index.coarse_code_size())
            self.mapped.used = True

            def decode(codes: np.ndarray, out: np.ndarray) -> None:
                index.sa_decode(codes, out)

        src = CodesSource(name, self.mapped.path, int(index.d), segments, cs, decode,
                          prefix=prefix, keep=self.mapped if decode else None)  # fmt: skip
        lossy = "" if exact else ", lossy"
        src.note = f"{kind} ({what}{lossy}), rows in inverted-list order"
        return src

    def _refine(self, index: Any, what: str) -> EmbeddingSource:
        faiss = self.faiss
        main = self.source(faiss.downcast_index(index.refine_index), f" refine index of {what}")
        try:
            base = self.source(faiss.downcast_index(index.base_index), f" base of {what}",
                               id_order=True)  # fmt: skip
        except InputError as e:  # the originals still read; only the comparison is lost
            main.note = f"{main.note}; base index not decoded ({str(e).split(': ', 1)[-1]})"
            return main
        if base.shape != main.shape:
            raise fail(self.name, f"{what}: base index of shape {base.shape}, refine index "
                                  f"{main.shape}")  # fmt: skip
        base.name = f"{self.name} (base index)"
        main.quantised = base
        return main


def open_faiss(path: Path, name: str, key: str | None = None) -> EmbeddingSource:
    """Open a FAISS index file (see the module docstring for what each type gives).

    ``key`` is unused (an index holds one matrix; the caller rejects a key).
    """
    faiss = _faiss(name)
    mapped = _Mapped(faiss, path, name)
    try:
        src = _Builder(faiss, mapped, name).source(mapped.index)
    except BaseException:
        mapped.close()
        raise
    if not mapped.used:  # every row is read from the file by offset: drop the map now
        mapped.close()
    return src
