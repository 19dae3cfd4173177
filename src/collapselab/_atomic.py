"""Atomic file writes: every output of collapselab goes through :func:`atomic_open`.

The data is written to a temporary file in the destination's folder, flushed (and
fsynced), then renamed over the destination; on any error, an interrupt included, the
temporary file is removed and the destination is untouched. An interrupted run never
leaves a half-written report, checkpoint, transform or embedding file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_open(
    path: str | os.PathLike[str], mode: str = "wb", fsync: bool = True
) -> Iterator[IO[Any]]:
    """Open a temporary file that replaces ``path`` when the block exits cleanly.

    Args:
        path: destination; its folder is created if needed.
        mode: ``"wb"`` or ``"w"`` (text, UTF-8).
        fsync: flush to disk before the rename (durability across a power cut).
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
