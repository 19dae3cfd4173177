"""Reader for numeric ``.csv`` / ``.tsv`` files, streamed in batches of lines.

One embedding per line, ``d`` numbers separated by ``,`` (``.csv``) or a tab (``.tsv``).
Blank lines are ignored. The first line is taken as a header and skipped when one of
its fields is not a number, or when its fields are exactly ``0, 1, ..., d-1`` (the column
names ``pandas.DataFrame(z).to_csv(index=False)`` writes). Values are parsed as float64
(``nan``/``inf`` are accepted here and reported by the metrics). Quoting is not supported.

Opening makes one quick pass to count rows and check that every line has ``d`` fields,
so a ragged file fails up front with its line number; batches of ``rows`` lines are then
parsed by ``np.loadtxt`` (C speed), one batch in memory at a time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import TextIO

import numpy as np

from collapselab.io._base import FLOAT64, EmbeddingSource, check_shape, fail


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


@contextlib.contextmanager
def _text(path: Path, name: str) -> Iterator[TextIO]:
    try:
        with open(path, encoding="utf-8-sig") as f:
            yield f
    except UnicodeDecodeError as e:
        raise fail(name, f"not a UTF-8 text file ({e.reason} at byte {e.start})") from e


class CsvSource(EmbeddingSource):
    """Rows of a delimited text file; chunks are float64 ``(k, d)`` arrays.

    Args:
        path: The file.
        name: Display name.
        delimiter: ``","`` or ``"\\t"``.
    """

    def __init__(self, path: Path, name: str, delimiter: str) -> None:
        self._path = path
        self._delimiter = delimiter
        n, d, self._header = self._scan(name)
        check_shape(name, (n, d))
        super().__init__(name, n, d, "float64", FLOAT64)

    def _scan(self, name: str) -> tuple[int, int, int]:
        """Count data lines and check field counts: ``(n, d, header line or 0)``."""
        sep = self._delimiter
        n, d, d_line, header = 0, 0, 0, 0
        with _text(self._path, name) as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                fields = line.count(sep) + 1
                if not d_line:
                    parts = [p.strip() for p in line.split(sep)]
                    names = [str(j) for j in range(fields)]
                    if not header and (not all(map(_is_number, parts)) or parts == names):
                        header = lineno
                        continue
                    d, d_line = fields, lineno
                elif fields != d:
                    raise fail(
                        name,
                        f"ragged rows: line {lineno} has {fields} fields but line {d_line} "
                        f"has {d}",
                    )
                n += 1
        if not n:
            what = "no data rows after the header line" if header else "empty file"
            raise fail(name, f"{what}; expected lines of numbers separated by {sep!r}")
        return n, d, header

    def _lines(self, f: TextIO) -> Iterator[tuple[int, str]]:
        for lineno, line in enumerate(f, 1):
            if lineno != self._header and line.strip():
                yield lineno, line

    def _chunks(self, rows: int, start: int, stop: int) -> Iterator[np.ndarray]:
        with _text(self._path, self.name) as f:
            lines = islice(self._lines(f), start, stop)
            while batch := list(islice(lines, rows)):
                try:
                    chunk = np.loadtxt(
                        [line for _, line in batch],
                        delimiter=self._delimiter,
                        dtype=np.float64,
                        comments=None,
                        ndmin=2,
                    )
                except ValueError as e:
                    raise self._parse_error(batch, e) from e
                yield chunk

    def _parse_error(self, batch: list[tuple[int, str]], error: ValueError) -> Exception:
        for lineno, line in batch:
            for field in line.split(self._delimiter):
                if not _is_number(field):
                    return fail(self.name, f"line {lineno}: {field.strip()!r} is not a number")
        return fail(self.name, f"lines {batch[0][0]}-{batch[-1][0]}: {error}")


def open_csv(path: Path, path_name: str, key: str | None) -> EmbeddingSource:
    """Open a ``.csv`` (comma) file."""
    return CsvSource(path, path_name, ",")


def open_tsv(path: Path, path_name: str, key: str | None) -> EmbeddingSource:
    """Open a ``.tsv`` (tab) file."""
    return CsvSource(path, path_name, "\t")
