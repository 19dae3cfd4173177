"""Streaming readers for binary formats that store one array as raw bytes at an offset.

``.npy`` files, the ``.npy`` members of ``.npz`` archives and ``.safetensors`` tensors all
keep an ``(n, d)`` array as ``n * d`` contiguous elements after a small header. We parse
the header, check that the file holds every byte the header promises (so a truncated file
fails before any work is done), then ``readinto`` one reused buffer chunk by chunk.

Why not ``np.load(mmap_mode="r")``: every page of a memory map that has been touched
counts in the process's resident set until it is unmapped, so streaming a 100 GB file
through a map shows ~100 GB RSS (and gets jobs killed by memory-limited schedulers).
With ``readinto`` the peak grows with ``rows * d``, never with ``n``.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import json
import math
import mmap
import os
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from collapselab._pool import LazyPool
from collapselab.errors import InputError
from collapselab.io._base import (
    ArraySource,
    EmbeddingSource,
    check_dtype,
    check_shape,
    convert_into,
    fail,
    output_dtype,
    pick_key,
)

Opener = Callable[[], contextlib.AbstractContextManager[IO[bytes]]]

#: safetensors dtype codes -> little-endian numpy dtypes (BF16 is read as its uint16 bits).
_SAFETENSORS_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "BF16": "<u2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U64": "<u8",
    "U32": "<u4",
    "U16": "<u2",
    "U8": "u1",
    "BOOL": "?",
}
#: Errors a reader may hit on a damaged or changing file (zipfile raises many kinds on
#: a damaged archive: IndexError, NotImplementedError, struct.error, ...).
_READ_ERRORS = (
    OSError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    ValueError,
    IndexError,
    KeyError,
    NotImplementedError,
    struct.error,
    OverflowError,
)


#: O_DIRECT reads start, end and land on multiples of this (the page size everywhere)
_ALIGN = 4096


#: files (or shard groups) from this size on are read with ``O_DIRECT`` when cold
_COLD_MIN_BYTES = 64 * 2**20
#: positions probed for page-cache residency (see :func:`cached_fraction`)
_PROBES = 16


@functools.cache
def _libc_mincore() -> tuple[Any, Any, Any] | None:
    """libc's ``mmap``, ``mincore`` and ``munmap`` with their signatures, looked up once
    (None where there is no such libc: then we cannot say what is cached)."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        map_, mincore, unmap = libc.mmap, libc.mincore, libc.munmap
    except (OSError, AttributeError):
        return None
    map_.restype = ctypes.c_void_p
    map_.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                     ctypes.c_int, ctypes.c_long]  # fmt: skip
    mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    unmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return map_, mincore, unmap


def cached_fraction(path: Path) -> float | None:
    """The fraction of ``_PROBES`` pages spread over ``path`` that sit in the page cache,
    or None where that cannot be asked. Each probe is a ``mincore(2)`` of one page of a
    read-only shared map of the file (as ``fincore`` and ``vmtouch`` do): it reads
    nothing and fetches nothing. (A ``preadv`` with ``RWF_NOWAIT`` answers too, but it
    starts reading each page it misses: the next check of the same cold file found its
    probed pages cached and read all of it through the cache.)"""
    import ctypes

    calls = _libc_mincore()
    if calls is None:
        return None
    map_, mincore, unmap = calls
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        size = os.fstat(fd).st_size
        if not size:
            return None
        addr = map_(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr is None or addr == ctypes.c_void_p(-1).value:  # MAP_FAILED
            return None
        try:
            page, vec, hits = mmap.PAGESIZE, ctypes.create_string_buffer(1), 0
            for i in range(_PROBES):
                if mincore(addr + size * i // _PROBES // page * page, 1, vec):
                    return None
                hits += vec.raw[0] & 1
            return hits / _PROBES
        finally:
            unmap(addr, size)
    finally:
        os.close(fd)


def use_direct_io(path: Path, group_bytes: int | None = None) -> bool:
    """Whether to read ``path`` bypassing the page cache (``O_DIRECT``, Linux).

    ``group_bytes``: the size of all the files read with it in one pass (shards), which
    is what the cache would have to hold.

    ``COLLAPSELAB_DIRECT_IO=1`` / ``0`` forces it on / off. By default it is on

    - for files larger than half the memory available now: the cache cannot keep them
      for a second read anyway, and filling it costs more CPU than the arithmetic can
      spare (on a 2-core VM a buffered read of a 30 GB file ran at 0.48 GB/s with the
      kernel busy on one core, an ``O_DIRECT`` read of the same file at 2.3 GB/s with
      almost none);
    - for files (groups) from 64 MiB on that are cold: fewer than half of their probed
      pages in the page cache (:func:`cached_fraction`). A cold buffered read pays the
      disk *and* the kernel's copy; a file already cached is read from the cache.
    """
    mode = os.environ.get("COLLAPSELAB_DIRECT_IO", "auto").strip().lower()
    if mode in ("0", "off", "false", "no"):
        return False
    if not hasattr(os, "O_DIRECT"):
        return False
    if mode in ("1", "on", "true", "yes"):
        return True
    try:
        size = group_bytes or path.stat().st_size
        with open("/proc/meminfo") as f:
            avail = next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return False
    if size > avail // 2:
        return True
    if size < _COLD_MIN_BYTES:
        return False
    cached = cached_fraction(path)
    return cached is not None and cached < 0.5


#: concurrent O_DIRECT requests per chunk. A virtio disk measured here read 0.38-0.49 GB/s
#: with one 32 MiB request in flight, 0.63-0.74 with two and 0.88-0.89 with four (3 GB
#: from a dropped cache): a direct read is only as deep as the requests it queues
_DIRECT_PARTS = 4
_PARTS = LazyPool(_DIRECT_PARTS, "collapselab-io")


def _read_parts(fd: int, buf: memoryview, at: int, length: int, need: int) -> bool:
    """Fill ``buf[:length]`` from file offset ``at`` with ``_DIRECT_PARTS`` aligned reads
    in flight at once; True when at least the first ``need`` bytes arrived (the file may
    end inside the last page)."""
    step = -(-length // _DIRECT_PARTS // _ALIGN) * _ALIGN
    bounds = [(lo, min(lo + step, length)) for lo in range(0, length, step)]

    def part(lo: int, hi: int) -> bool:
        got = lo
        while got < hi:
            n = os.preadv(fd, [buf[got:hi]], at + got)
            if n <= 0:  # end of file: enough if the bytes needed are in
                return got >= min(hi, need)
            got += n
        return True

    if len(bounds) == 1:
        return part(*bounds[0])
    return all(list(_PARTS.get().map(lambda b: part(*b), bounds)))


class RawSource(EmbeddingSource):
    """An ``(n, d)`` array stored as raw elements from byte ``offset`` of a stream.

    Args:
        name: Display name.
        opener: Returns a context manager giving a seekable binary stream.
        offset: Byte offset of element ``[0, 0]``.
        shape: ``(n, d)``, validated.
        raw: Element dtype in the file, byte order included (uint16 for bfloat16).
        dtype_name: Source dtype name to report.
        bf16: The elements are bfloat16 bit patterns.
        fortran: Column-major layout: element ``[i, j]`` is at ``offset + (j*n + i) * size``.
        path: The file itself when the elements lie in it uncompressed (``.npy``,
            ``.safetensors``): row-major reads may then bypass the page cache
            (see :func:`use_direct_io`).
    """

    def __init__(
        self,
        name: str,
        opener: Opener,
        offset: int,
        shape: tuple[int, int],
        raw: np.dtype,
        dtype_name: str,
        bf16: bool = False,
        fortran: bool = False,
        path: Path | None = None,
    ) -> None:
        super().__init__(name, shape[0], shape[1], dtype_name, output_dtype(raw, bf16))
        self.path = path
        #: bytes of every file read in the same pass (set by ``iter_sources``)
        self.group_bytes: int | None = None
        self._open = opener
        self._offset = offset
        self._raw = raw
        self._bf16 = bf16
        self._fortran = fortran

    def _chunks(self, rows: int, start: int, stop: int, buffers: int = 1) -> Iterator[np.ndarray]:
        try:
            if (self.path is not None and not self._fortran
                    and use_direct_io(self.path, self.group_bytes)):  # fmt: skip
                direct = self._direct(rows, start, stop, buffers)
                if direct is not None:
                    yield from direct
                    return
            with self._open() as f:
                if self._fortran:
                    yield from self._columns(f, rows, start, stop)
                else:
                    yield from self._rows(f, rows, start, stop, buffers)
        except InputError:
            raise
        except _READ_ERRORS as e:
            raise fail(self.name, f"read failed: {e}") from e

    def _ring(self, rows: int, start: int, stop: int, buffers: int) -> Iterator[np.ndarray]:
        if self._fortran:
            return super()._ring(rows, start, stop, buffers)
        return self._chunks(rows, start, stop, buffers)

    def _rows(
        self, f: IO[bytes], rows: int, start: int, stop: int, buffers: int = 1
    ) -> Iterator[np.ndarray]:
        k_max = min(rows, stop - start)
        row_bytes = self.d * self._raw.itemsize
        same = self._raw == self._out and not self._bf16  # native float32/float64: no copy
        ring = []  # reused read buffers, filled in turn
        for _ in range(buffers):
            buf = np.empty(k_max * row_bytes, np.uint8)
            raw = buf.view(self._raw).reshape(k_max, self.d)
            out = raw if same else np.empty((k_max, self.d), self._out)
            ring.append((buf.data, raw, out))  # memoryview of the buffer, raw and out views
        f.seek(self._offset + start * row_bytes)
        for i, lo in enumerate(range(start, stop, rows)):
            k = min(rows, stop - lo)
            view, raw, out = ring[i % buffers]
            self._fill(f, view[: k * row_bytes], lo, k)
            if not same:
                convert_into(out[:k], raw[:k], self._bf16)
            yield out[:k]

    def _direct(self, rows: int, start: int, stop: int, buffers: int
                ) -> Iterator[np.ndarray] | None:  # fmt: skip
        """Row chunks read with ``O_DIRECT`` (the disk DMAs into page-aligned buffers: no
        page-cache copy, no cache churn, almost no CPU left to the read), or None where
        the platform or file system refuses it. Each read covers the chunk's bytes
        rounded out to 4 KiB; the chunk is a view at its offset inside the buffer."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECT)  # type: ignore[arg-type]
        except (AttributeError, OSError):
            return None
        row_bytes = self.d * self._raw.itemsize
        k_max = min(rows, stop - start)
        span = k_max * row_bytes + 2 * _ALIGN
        try:  # probe: tmpfs and some network file systems refuse O_DIRECT reads
            probe = mmap.mmap(-1, _ALIGN)
            os.preadv(fd, [probe], 0)
        except OSError:
            os.close(fd)
            return None
        return self._direct_rows(fd, rows, start, stop, buffers, row_bytes, span)

    def _direct_rows(self, fd: int, rows: int, start: int, stop: int, buffers: int,
                     row_bytes: int, span: int) -> Iterator[np.ndarray]:  # fmt: skip
        same = self._raw == self._out and not self._bf16
        k_max = min(rows, stop - start)
        ring = [mmap.mmap(-1, span) for _ in range(buffers)]  # anonymous maps: page-aligned
        outs = [None if same else np.empty((k_max, self.d), self._out) for _ in range(buffers)]
        try:
            for i, lo in enumerate(range(start, stop, rows)):
                k = min(rows, stop - lo)
                b0 = self._offset + lo * row_bytes
                a0 = b0 - b0 % _ALIGN
                need = b0 - a0 + k * row_bytes
                length = -(-need // _ALIGN) * _ALIGN
                if not _read_parts(fd, memoryview(ring[i % buffers]), a0, length, need):
                    raise self._truncated(lo, k)
                raw = np.frombuffer(ring[i % buffers], self._raw, k * self.d, b0 - a0)
                raw = raw.reshape(k, self.d)
                out = outs[i % buffers]
                if out is None:
                    yield raw
                else:
                    convert_into(out[:k], raw, self._bf16)
                    yield out[:k]
        finally:
            os.close(fd)

    def _columns(self, f: IO[bytes], rows: int, start: int, stop: int) -> Iterator[np.ndarray]:
        # Column-major data: a block of k rows is d contiguous runs of k elements, one per
        # column, so it costs d seeks. Blocks hold at least ~4096 rows (a multiple of
        # `rows`) so that small chunks do not turn into d seeks per chunk.
        block = min(stop - start, rows * max(1, 4096 // rows))
        size = self._raw.itemsize
        buf = np.empty(self.d * block * size, np.uint8)
        cols = buf.view(self._raw).reshape(self.d, block)  # (d, block)
        out = np.empty((block, self.d), self._out)
        view = buf.data
        for lo in range(start, stop, block):
            k = min(block, stop - lo)
            for j in range(self.d):
                f.seek(self._offset + (j * self.n + lo) * size)
                at = j * block * size
                self._fill(f, view[at : at + k * size], lo, k)
            convert_into(out[:k], cols[:, :k].T, self._bf16)
            for i in range(0, k, rows):
                yield out[i : min(i + rows, k)]

    def _fill(self, f: IO[bytes], view: memoryview, lo: int, k: int) -> None:
        got = 0
        while got < len(view):
            n = f.readinto(view[got:])  # type: ignore[attr-defined]
            if not n:
                raise self._truncated(lo, k)
            got += n

    def _truncated(self, lo: int, k: int) -> InputError:
        return fail(self.name, f"truncated: file ended while reading rows {lo}:{lo + k} "
                               "(was it modified while being read?)")  # fmt: skip


#: ``.npy`` versions read, with the struct format of their header-length field
_NPY_VERSIONS = {(1, 0): "<H", (2, 0): "<I"}
#: numpy's own bound on a header's length (``np.load``'s default ``max_header_size``)
_NPY_MAX_HEADER = 10000
#: string literals of a header, and the characters a header may hold at all
_NPY_STRING = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")
_NPY_CHARS = re.compile(r"[ -\[\]-~\t\n]*")  # printable ASCII but the backslash
#: a Python 2 long suffix (``(3L, 2L)``) and a number glued to a name (``9or``, ``1e5``)
_NPY_LONG = re.compile(r"(?<=[0-9])[lL](?![0-9A-Za-z_])")
_NPY_GLUED = re.compile(r"[0-9.][A-Za-z_]")
#: a plain ``dtype.str`` descriptor (what numpy writes): ``<f4``, ``|b1``, ``<M8[s]``, ``|O``
_NPY_DESCR = re.compile(r"([<>|=]?)([A-Za-z?])([0-9]*(?:\[[A-Za-z0-9]+\])?)")
#: ... or the name of a numeric dtype (other writers); never a deprecated alias
_NPY_NAMES = frozenset(
    ["bool", "float16", "float32", "float64"]
    + [f"{u}int{b}" for u in ("", "u") for b in (8, 16, 32, 64)]
)


class _BadHeader(Exception):
    """A damaged ``.npy`` header: ``not a valid .npy file (<message>)``."""


class _NotNumeric(_BadHeader):
    """A well-formed header of an array that is not numeric (reported as it is)."""


def _outside_strings(text: str, edit: Callable[[str], str]) -> str:
    """``text`` with ``edit`` applied to what lies between its string literals."""
    out, at = [], 0
    for m in _NPY_STRING.finditer(text):
        out += [edit(text[at : m.start()]), m.group()]
        at = m.end()
    return "".join([*out, edit(text[at:])])


def _npy_dict(text: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` of a ``.npy`` header's text (a dict literal),
    checked as numpy checks it; :class:`_BadHeader` with the reason otherwise.

    numpy's own parser hands the text to ``ast.literal_eval``, whose compiler *warns* on
    damaged bytes (an invalid escape ``'\\H'``: DeprecationWarning, SyntaxWarning from
    Python 3.12; a number glued to a keyword, ``9or``: SyntaxWarning) and then retries
    through a Python 2 filter that warns too (UserWarning). So the text is vetted before
    it is compiled: printable ASCII without backslashes, and outside its strings no number
    glued to a letter (Python 2's ``3L`` is read as ``3``). A damaged header is then an
    error, never a warning on the terminal.
    """
    cannot = f"cannot parse its header {text.strip()!r}"
    if not _NPY_CHARS.fullmatch(text):
        raise _BadHeader(cannot)
    code = _outside_strings(text, lambda part: _NPY_LONG.sub("", part))
    if any(_NPY_GLUED.search(part) for part in _NPY_STRING.split(code)):
        raise _BadHeader(cannot)
    try:
        d = ast.literal_eval(code)
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError) as e:
        raise _BadHeader(cannot) from e
    if not isinstance(d, dict) or set(d) != {"descr", "fortran_order", "shape"}:
        raise _BadHeader(f"header {text.strip()!r} is not a dict of descr, fortran_order "
                         "and shape")  # fmt: skip
    shape, fortran, descr = d["shape"], d["fortran_order"], d["descr"]
    if not isinstance(shape, tuple) or not all(isinstance(x, int) for x in shape):
        raise _BadHeader(f"shape is not valid: {shape!r}")
    if not isinstance(fortran, bool):
        raise _BadHeader(f"fortran_order is not a valid bool: {fortran!r}")
    if isinstance(descr, list):  # record fields: refused as check_dtype would, not built
        raise _NotNumeric(f"structured (record) dtype {descr}; expected a numeric array")
    m = _NPY_DESCR.fullmatch(descr) if isinstance(descr, str) else None
    if m is None and descr not in _NPY_NAMES:
        raise _BadHeader(f"descr is not a valid dtype descriptor: {descr!r}")
    if m is not None and m[2] == "a":  # numpy 2 deprecates the alias 'a' (warning): 'S'
        descr = f"{m[1]}S{m[3]}"
    try:
        dtype = np.lib.format.descr_to_dtype(descr)
    except (TypeError, ValueError) as e:
        raise _BadHeader(f"descr is not a valid dtype descriptor: {descr!r}") from e
    return shape, fortran, dtype


def _npy_header(f: IO[bytes], name: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Parse a ``.npy`` header, leaving ``f`` at the first data byte (see
    :func:`_npy_dict`)."""
    bad = "not a valid .npy file"
    try:
        version = np.lib.format.read_magic(f)
    except Exception as e:  # ValueError: not the magic string, or too short
        raise fail(name, f"{bad} ({e or type(e).__name__})") from e
    if version not in _NPY_VERSIONS:
        raise fail(
            name,
            f".npy format version {version[0]}.{version[1]} is not supported "
            "(expected 1.0 or 2.0, as numpy writes for numeric arrays)",
        )
    size = struct.calcsize(_NPY_VERSIONS[version])
    field = f.read(size)
    if len(field) < size:
        raise fail(name, f"{bad} (the file ends inside its header)")
    (length,) = struct.unpack(_NPY_VERSIONS[version], field)
    if length > _NPY_MAX_HEADER:
        raise fail(name, f"{bad} (a header of {length} bytes; numpy writes at most "
                         f"{_NPY_MAX_HEADER})")  # fmt: skip
    header = f.read(length)
    if len(header) < length:
        raise fail(name, f"{bad} (the file ends inside its {length}-byte header)")
    try:
        shape, fortran, dtype = _npy_dict(header.decode("latin1"))
    except _NotNumeric as e:
        raise fail(name, str(e)) from e
    except _BadHeader as e:
        raise fail(name, f"{bad} ({e})") from e
    return shape, fortran, dtype


def _validated_npy(
    f: IO[bytes], name: str, available: int
) -> tuple[tuple[int, int], bool, np.dtype, int]:
    """Header of a ``.npy`` stream whose total size is ``available`` bytes, checked."""
    shape, fortran, dtype = _npy_header(f, name)
    check_dtype(name, dtype)
    n, d = check_shape(name, shape)
    offset = f.tell()
    need = n * d * dtype.itemsize
    have = available - offset
    if have < need:
        raise fail(
            name,
            f"truncated: header says shape {(n, d)} {dtype.name} ({need} bytes of data) "
            f"but only {have} bytes follow the header",
        )
    return (n, d), fortran, dtype, offset


def open_npy(path: Path, name: str, key: str | None = None) -> EmbeddingSource:
    """Open a ``.npy`` file for streaming (C or Fortran order, any byte order).

    ``key`` is unused (a ``.npy`` file holds one array; the caller rejects a key).
    """
    with open(path, "rb") as f:
        shape, fortran, dtype, offset = _validated_npy(f, name, os.fstat(f.fileno()).st_size)
    return RawSource(
        name,
        lambda: open(path, "rb", buffering=0),
        offset,
        shape,
        dtype,
        dtype.name,
        fortran=fortran,
        path=path,
    )


#: deflate cannot expand data by more than about 1032:1 (plus a small constant)
_MAX_DEFLATE_RATIO = 1040


def _check_member_size(member: zipfile.ZipInfo, name: str, size: int) -> None:
    """The sizes a zip directory claims for ``member`` are plausible, so that a forged
    uncompressed size (the ``.npy`` header is checked against it, and it bounds every
    buffer) cannot make us allocate more than about a thousand times the file size."""
    ok = member.compress_size <= size and (
        member.file_size <= member.compress_size
        if member.compress_type == zipfile.ZIP_STORED
        else member.file_size <= _MAX_DEFLATE_RATIO * member.compress_size + 1024
    )
    if not ok:
        raise fail(
            name,
            f"not a valid .npz (zip) archive (member claims {member.file_size} bytes from "
            f"{member.compress_size} stored bytes in a file of {size} bytes)",
        )


def open_npz(path: Path, path_name: str, key: str | None) -> EmbeddingSource:
    """Open one array of a ``.npz`` archive (``np.savez`` or ``np.savez_compressed``).

    Members are streamed straight out of the zip (decompressing as they go); nothing is
    unpickled. A Fortran-order member is the exception: it is read whole into memory,
    because column-wise seeks inside a compressed member would restart decompression.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            members = {
                (m.filename[:-4] if m.filename.endswith(".npy") else m.filename): m
                for m in zf.infolist()
                if not m.is_dir()
            }
            key = pick_key(path_name, list(members), key)
            member = members[key]
            name = f"{path_name}:{key}"
            _check_member_size(member, name, os.path.getsize(path))
            with zf.open(member) as f:
                shape, fortran, dtype, offset = _validated_npy(f, name, member.file_size)
                if fortran:  # whole, from the first data byte (its header parsed once)
                    need = shape[0] * shape[1] * dtype.itemsize
                    data = f.read(need)
                    if len(data) < need:
                        raise fail(name, f"truncated: {len(data)} of the {need} bytes of data")
                    array = np.frombuffer(data, dtype).reshape(shape[::-1]).T
                    return ArraySource(name, array, dtype.name)
    except InputError:
        raise
    except _READ_ERRORS as e:
        raise fail(path_name, f"not a valid .npz (zip) archive ({e})") from e

    @contextlib.contextmanager
    def opener() -> Iterator[IO[bytes]]:
        with zipfile.ZipFile(path) as zf, zf.open(member) as f:
            yield f

    return RawSource(name, opener, offset, shape, dtype, dtype.name)


def _safetensors_header(path: Path, path_name: str) -> tuple[dict[str, Any], int, int]:
    """Return ``(header, data_start, file_size)`` of a ``.safetensors`` file."""
    corrupt = "not a valid .safetensors file"
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(8)
        if len(head) < 8:
            raise fail(path_name, f"{corrupt} (shorter than its 8-byte header length)")
        length = int.from_bytes(head, "little")
        if length > size - 8:
            raise fail(
                path_name, f"{corrupt} (header length {length} exceeds the file size {size})"
            )
        try:
            header = json.loads(f.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise fail(path_name, f"{corrupt} (header is not valid JSON: {e})") from e
    if not isinstance(header, dict):
        raise fail(path_name, f"{corrupt} (header is not a JSON object)")
    return header, 8 + length, size


def open_safetensors(path: Path, path_name: str, key: str | None) -> EmbeddingSource:
    """Open one tensor of a ``.safetensors`` file for streaming (bfloat16 included).

    The format (https://github.com/huggingface/safetensors#format) is an 8-byte
    little-endian header length, a JSON header mapping each name to ``dtype``, ``shape``
    and ``data_offsets`` (relative to the end of the header), then the raw little-endian
    data. Reading it directly lets us stream with bounded memory and decode bfloat16
    without torch; the files themselves are written by the ``safetensors`` package.
    """
    header, data_start, size = _safetensors_header(path, path_name)
    keys = [k for k in header if k != "__metadata__"]
    key = pick_key(path_name, keys, key, what="tensor")
    name = f"{path_name}:{key}"
    info = header[key]
    try:
        code = str(info["dtype"])
        shape = tuple(int(s) for s in info["shape"])
        begin, end = (int(o) for o in info["data_offsets"])
    except (TypeError, KeyError, ValueError) as e:
        raise fail(name, f"not a valid .safetensors file (bad header entry: {e!r})") from e
    if code not in _SAFETENSORS_DTYPES:
        kind = "float8 dtypes are" if code.startswith("F8") else f"dtype {code} is"
        raise fail(name, f"{kind} not supported (dtype {code}); expected a float or int dtype")
    raw = np.dtype(_SAFETENSORS_DTYPES[code])
    n, d = check_shape(name, shape)
    need = math.prod(shape) * raw.itemsize
    if begin < 0 or end - begin != need:
        raise fail(
            name,
            f"not a valid .safetensors file (data_offsets [{begin}, {end}] do not match "
            f"shape {shape} {code}, which needs {need} bytes)",
        )
    if data_start + end > size:
        raise fail(
            name,
            f"truncated: tensor data ends at byte {data_start + end} but the file has "
            f"{size} bytes",
        )
    bf16 = code == "BF16"
    return RawSource(
        name,
        lambda: open(path, "rb", buffering=0),
        data_start + begin,
        (n, d),
        raw,
        "bfloat16" if bf16 else raw.name,
        bf16=bf16,
        path=path,
    )
