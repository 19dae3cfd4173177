"""Atomic file writes: every output of collapselab goes through :func:`atomic_open`
(or its one-call forms :func:`write_bytes` and :func:`write_text`).

The data is written to a temporary file in the destination's folder, flushed (and
fsynced), then renamed over the destination, and the rename itself is made durable by
an fsync of the folder where the platform allows it; on any error, an interrupt
included, the temporary file is removed and the destination is untouched. An
interrupted run never leaves a half-written report, checkpoint, transform or embedding
file.

The file gets the permissions a plain ``open(path, "w")`` would give it: those of the
file it replaces, or ``0o666`` less the process's umask for a new file (``0o644`` under
the usual umask 022), not the ``0o600`` of :func:`tempfile.mkstemp`.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


def current_umask() -> int:
    """The process's umask, read without changing it where the platform allows
    (``/proc/self/status`` on Linux); elsewhere set-and-restored (not thread-safe there)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _new_file_mode(out: Path) -> int:
    """Mode ``open()`` leaves ``out`` with: its current one, or 0o666 & ~umask."""
    try:
        return stat.S_IMODE(os.stat(out).st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable; a no-op where folders cannot be opened
    (Windows) or fsynced (some network file systems)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_open(
    path: str | os.PathLike[str], mode: str = "wb", fsync: bool = True
) -> Iterator[IO[Any]]:
    """Open a temporary file that replaces ``path`` when the block exits cleanly.

    Args:
        path: destination; its folder is created if needed.
        mode: ``"wb"`` or ``"w"`` (text, UTF-8).
        fsync: flush the data to disk before the rename and the folder after it
            (durability across a power cut).
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, _new_file_mode(out))
        else:  # pragma: no cover - Windows: only the read-only bit exists
            os.chmod(tmp, _new_file_mode(out))
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
    if fsync:
        _fsync_dir(out.parent)


def write_bytes(path: str | os.PathLike[str], data: bytes, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_open`, mode ``"wb"``)."""
    with atomic_open(path, "wb", fsync=fsync) as fh:
        fh.write(data)


def write_text(path: str | os.PathLike[str], text: str, fsync: bool = True) -> None:
    """Write ``text`` to ``path`` atomically in UTF-8 (:func:`atomic_open`, mode ``"w"``)."""
    with atomic_open(path, "w", fsync=fsync) as fh:
        fh.write(text)
