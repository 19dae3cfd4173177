"""Entry points: ``PATH[:KEY]`` specs -> validated :class:`EmbeddingSource` objects."""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from collapselab.errors import InputError
from collapselab.io._base import EmbeddingSource, fail
from collapselab.io.delimited import open_csv, open_tsv
from collapselab.io.parquet import open_parquet
from collapselab.io.raw import RawSource, open_npy, open_npz, open_safetensors
from collapselab.io.torch_file import open_torch

Spec = str | os.PathLike[str]
Reader = Callable[[Path, str, str | None], EmbeddingSource]


def _lazy(module: str, function: str) -> Reader:
    """A reader whose module (and optional library: faiss, lance, chromadb) is imported
    only when a file of its kind is opened."""

    def reader(path: Path, name: str, key: str | None) -> EmbeddingSource:
        import importlib

        open_store: Reader = getattr(importlib.import_module(module), function)
        return open_store(path, name, key)

    return reader


#: File extension -> reader(path, display name, key or None).
READERS: dict[str, Reader] = {
    ".npy": open_npy,
    ".npz": open_npz,
    ".safetensors": open_safetensors,
    ".pt": open_torch,
    ".pth": open_torch,
    ".csv": open_csv,
    ".tsv": open_tsv,
    ".parquet": open_parquet,
    # vector stores and indexes, each an optional extra (collapselab[faiss], ...)
    ".faiss": _lazy("collapselab.io.faiss_index", "open_faiss"),
    ".index": _lazy("collapselab.io.faiss_index", "open_faiss"),
    ".lance": _lazy("collapselab.io.lance", "open_lance"),
    ".sqlite3": _lazy("collapselab.io.chroma", "open_chroma"),
}
#: Formats that hold exactly one array, so ``PATH:KEY`` makes no sense for them.
SINGLE_ARRAY = (".npy", ".csv", ".tsv", ".faiss", ".index")
#: Formats stored as a directory (a Lance dataset: ``DB/TABLE.lance``).
DIRECTORY_FORMATS = (".lance",)
#: URL schemes read from a database server: ``postgresql://...?table=T&column=C``.
URL_SCHEMES = ("postgresql://", "postgres://")
SUPPORTED = tuple(sorted(READERS))


def is_url(spec: Spec) -> bool:
    """``spec`` names a database table (``postgresql://...``), not a file."""
    return isinstance(spec, str) and spec.lower().startswith(URL_SCHEMES)


def _split(spec: Spec) -> tuple[str, str | None]:
    """``(path as written, key or None)``; see :func:`parse_spec`."""
    if isinstance(spec, os.PathLike):
        return os.fspath(spec), None
    text = str(spec)
    if not text:
        raise InputError("(empty path): expected PATH or PATH:KEY")
    if is_url(text):  # its ':'s are the URL's own (port, password)
        return text, None
    lower = text.lower()
    for i, ch in enumerate(text):
        if ch == ":" and lower[:i].endswith(SUPPORTED):
            path, key = text[:i], text[i + 1 :]
            if not key:
                raise fail(path, f"empty KEY in {text!r}; write {path}:KEY or just {path}")
            return path, key
    return text, None


def parse_spec(spec: Spec) -> tuple[Path, str | None]:
    """Split ``"PATH:KEY"`` into ``(Path(PATH), KEY)``; a plain path gives ``KEY=None``.

    The split happens at the first ``:`` that follows a supported extension, so Windows
    drive letters (``C:\\emb.npz:train``) and keys that contain ``:`` both work. A
    :class:`os.PathLike` is taken literally, never split.

    Raises:
        InputError: the key after ``:`` is empty (``"emb.npz:"``) or the path is empty.
    """
    path, key = _split(spec)
    return Path(path), key


def _open(path: Path, path_name: str, key: str | None) -> EmbeddingSource:
    if is_url(path_name):
        from collapselab.io.postgres import open_postgres

        return open_postgres(path_name)
    if not path.exists():
        raise fail(path_name, "no such file")
    ext = path.suffix.lower()
    if path.is_dir() and ext not in DIRECTORY_FORMATS:
        raise fail(path_name, "is a directory, not a file")
    if ext not in READERS:
        kind = f"file type {ext!r}" if ext else "file without an extension"
        raise fail(path_name, f"unsupported {kind}; supported: {', '.join(SUPPORTED)}")
    if key is not None and ext in SINGLE_ARRAY:
        raise fail(path_name, f"a {ext} file holds a single array; drop ':{key}'")
    try:
        return READERS[ext](path, path_name, key)
    except OSError as e:  # e.g. permission denied; readers translate format errors
        raise fail(path_name, f"cannot read ({e.strerror or e})") from e


def open_embeddings(spec: Spec) -> EmbeddingSource:
    """Open an embedding matrix ``Z`` of shape ``(N, d)`` for chunked reading.

    Everything that can be checked without reading the data is checked here (file type,
    key, dtype, shape, N >= 2, and for binary formats that the file is long enough), so
    a bad input fails before any work starts.

    Args:
        spec: ``PATH`` or ``"PATH:KEY"``; ``KEY`` picks an array in ``.npz`` /
            ``.safetensors`` / ``.pt`` files or a list column in ``.parquet``. A file
            holding a single candidate needs no key.

    Returns:
        An :class:`EmbeddingSource` with ``name``, ``n``, ``d``, ``dtype`` and ``chunks()``.

    Raises:
        InputError: one line ``"<name>: <problem>"`` for any unusable input;
            :class:`DegenerateInputError` (a subclass) for fewer than 2 rows.
    """
    path, key = _split(spec)
    return _open(Path(path), path, key)


def load_embeddings(spec: Spec) -> np.ndarray:
    """The whole matrix as one ``(N, d)`` float32 / float64 array (see ``open_embeddings``)."""
    return open_embeddings(spec).read()


def folder_files(folder: str) -> list[str]:
    """The embedding files directly in ``folder`` (supported extensions), sorted by name.

    Raises:
        InputError: the folder holds no supported file.
    """
    found = sorted(str(p) for p in Path(folder).iterdir()
                   if p.is_file() and p.suffix.lower() in READERS)  # fmt: skip
    if not found:
        raise fail(folder, f"a folder with no embedding files ({', '.join(SUPPORTED)})")
    return found


def expand_specs(specs: Sequence[Spec]) -> list[tuple[str, str | None]]:
    """``(file, key)`` for each spec, in order: a glob gives its matches sorted by name, a
    folder the embedding files directly in it (sorted), a file itself. A key applies to
    every file a pattern or folder yields (``"shard-*.npz:emb"``).

    Raises:
        InputError: a pattern matches no file, or a folder holds no embedding file.
    """
    out: list[tuple[str, str | None]] = []
    for spec in specs:
        pattern, key = _split(spec)
        if is_url(pattern) or Path(pattern).suffix.lower() in DIRECTORY_FORMATS:
            files = [pattern]
        elif isinstance(spec, os.PathLike) or not any(c in pattern for c in "*?["):
            files = folder_files(pattern) if Path(pattern).is_dir() else [pattern]
        else:
            files = sorted(glob.glob(pattern))
            if not files:
                raise fail(pattern, "no files match this pattern")
        out += [(f, key) for f in files]
    return out


def iter_sources(specs: Sequence[Spec]) -> list[EmbeddingSource]:
    """Open several specs in order: globs (``"shard-*.npy"``) and folders expand to their
    files sorted by name (:func:`expand_specs`).

    Raises:
        InputError: a pattern matches no file, a folder holds none, or any file fails to
            open.
    """
    sources = [_open(Path(f), f, key) for f, key in expand_specs(specs)]
    files = [s for s in sources if isinstance(s, RawSource) and s.path is not None]
    if len(files) > 1:  # read in one pass: the page cache would have to hold them all
        total = sum(s.path.stat().st_size for s in files if s.path is not None)
        for s in files:
            s.group_bytes = total
    return sources
