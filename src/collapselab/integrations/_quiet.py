"""What the engine adapters share to keep a cluster's own chatter off the terminal: the
output of processes started here (Spark's JVM and its Python workers) sent to a file,
engine loggers raised for the duration of a call, and one line out of an engine's
multi-line exception (for :class:`~collapselab.errors.EngineError` messages)."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from typing import IO

#: an exception line worth quoting: ``SomeError: message`` (Java or Python)
_EXCEPTION_LINE = re.compile(r"([\w.$]*(?:Error|Exception)\b:?.*)")


@contextlib.contextmanager
def child_output_to_file(quiet: bool) -> Iterator[IO[bytes] | None]:
    """While the block runs, file descriptors 1 and 2 point to an anonymous file
    (yielded), so that processes started in it (a JVM, its workers) write there for their
    whole life; this process's own streams are restored at the end. ``quiet=False``:
    nothing is redirected (yields None)."""
    if not quiet:
        yield None
        return
    log = tempfile.TemporaryFile()
    saved: list[int] = []
    try:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        saved = [os.dup(1), os.dup(2)]
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        yield log
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        for fd, copy in zip((1, 2), saved, strict=False):
            os.dup2(copy, fd)
            os.close(copy)
        log.close()


def last_lines(log: IO[bytes] | None, n: int = 40) -> list[str]:
    """The last ``n`` non-blank lines written to ``log`` (none for None)."""
    if log is None:
        return []
    log.seek(0)
    text = log.read().decode("utf-8", "replace")
    return [ln.strip() for ln in text.splitlines() if ln.strip()][-n:]


@contextlib.contextmanager
def quiet_loggers(quiet: bool, names: tuple[str, ...]) -> Iterator[None]:
    """Loggers ``names`` at ERROR and Python warnings ignored while the block runs
    (``quiet=False``: untouched); their levels are restored at the end."""
    if not quiet:
        yield
        return
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def one_line(exc: BaseException, limit: int = 240) -> str:
    """The most telling line of an engine's exception text: its first ``...Error: ...``
    or ``...Exception: ...`` line, else its first line (at most ``limit`` characters)."""
    lines = [ln.strip().lstrip(": ").strip() for ln in str(exc).splitlines()]
    lines = [ln for ln in lines if ln]
    found = next((m.group(1) for ln in lines if (m := _EXCEPTION_LINE.match(ln))), None)
    line = found or (lines[0] if lines else type(exc).__name__)
    return line if len(line) <= limit else line[: limit - 3] + "..."
