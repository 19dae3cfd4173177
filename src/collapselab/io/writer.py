"""Writing embedding matrices: a float32 ``.npy`` streamed row block by row block.

The writer beside the readers: what ``collapselab embed`` and ``collapselab whiten
--apply-out`` write is a file that :func:`~collapselab.io.open_embeddings` reads back.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from collapselab._atomic import atomic_open
from collapselab.errors import ConfigError, InputError


@contextlib.contextmanager
def atomic_npy(path: str | os.PathLike[str], shape: tuple[int, int]) -> Iterator[IO[bytes]]:
    """Write a float32 ``.npy`` of known ``shape`` row block by row block, atomically.

    The header for ``shape`` is written first; the caller writes exactly
    ``shape[0] * shape[1]`` little-endian float32 values; on success the temp file is
    fsynced and renamed over ``path``; on any error (or a short write) it is removed and
    ``path`` is untouched.
    """
    with atomic_open(path, "wb") as f:
        header = {"descr": "<f4", "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(f, header)  # 2-D: far below its 64 KiB limit
        start = f.tell()
        yield f
        written = f.tell() - start
        if written != shape[0] * shape[1] * 4:
            raise InputError(f"{path}: wrote {written} data bytes, expected "
                             f"{shape[0] * shape[1] * 4} for shape {shape}")  # fmt: skip


def check_npy_path(out: str | os.PathLike[str]) -> None:
    """Raise :class:`ConfigError` unless ``out`` is a ``.npy`` path in an existing folder."""
    o = Path(out)
    if o.suffix.lower() != ".npy":
        raise ConfigError(f"{os.fspath(out)}: the output must be a .npy file")
    if not o.resolve().parent.is_dir():
        raise ConfigError(f"{os.fspath(out)}: the folder {o.parent} does not exist")
