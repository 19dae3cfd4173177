"""Texts -> embeddings, streamed: to a ``.npy`` file (``collapselab embed``) or straight
into the check pipeline (``collapselab check --model M --texts T``).

A :class:`TextEmbeddingSource` is an :class:`~collapselab.io.EmbeddingSource` whose rows
are computed on demand: ``n`` is the number of texts, ``d`` the model's dimension, and
each chunk is the model's embedding of the next texts. So everything that reads files
(``check_sources``, sharding under ``torchrun``) reads models too, with memory bounded
by one chunk, whatever the number of texts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from collapselab.check import CheckResult, check_sources
from collapselab.diagnose import Thresholds
from collapselab.errors import ConfigError, DegenerateInputError, InputError
from collapselab.io import EmbeddingSource, atomic_npy, check_npy_path, iter_sources
from collapselab.text.model import embedding_dim, encode, load_model

Progress = Callable[[int, int], None]

#: texts encoded per chunk when none is asked for (a progress update per chunk)
DEFAULT_CHUNK_TEXTS = 256


def _texts_per_chunk(chunk_texts: int | None, chunk_rows: int | None) -> int:
    """``chunk_texts``, or its former name ``chunk_rows``, or ``DEFAULT_CHUNK_TEXTS``."""
    if chunk_texts is not None and chunk_rows is not None and chunk_texts != chunk_rows:
        raise ConfigError(f"chunk_texts={chunk_texts} and chunk_rows={chunk_rows} disagree; "
                          "give one")  # fmt: skip
    n = chunk_texts if chunk_texts is not None else chunk_rows
    return DEFAULT_CHUNK_TEXTS if n is None else n


class TextFile(Sequence[str]):
    """The texts of a UTF-8 file, one per line, counted and validated up front.

    Lines end in ``\\n`` or ``\\r\\n``; a trailing newline at the end of the file is
    optional. Texts are read again from disk on each pass (only the line offsets stay in
    memory, 8 bytes a line).

    Raises:
        InputError: missing file, invalid UTF-8, or an empty / whitespace-only line
            (row i of the embeddings must be line i + 1 of the file).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.name = os.fspath(path)
        if not self.path.is_file():
            raise InputError(f"{self.name}: no such file" if not self.path.exists()
                             else f"{self.name}: not a regular file")  # fmt: skip
        offsets = [0]
        with open(self.path, "rb") as f:
            for i, raw in enumerate(f, start=1):
                self._decode(raw, i)
                offsets.append(offsets[-1] + len(raw))
        self._offsets = np.asarray(offsets, dtype=np.int64)

    def _decode(self, raw: bytes, line: int) -> str:
        try:
            text = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as e:
            raise InputError(f"{self.name}: line {line} is not valid UTF-8 ({e.reason})") from None
        if not text.strip():
            raise InputError(
                f"{self.name}: line {line} is empty; expected one text per line "
                "(remove blank lines)"
            )
        return text

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return self.read(*index.indices(len(self))[:2])
        i = range(len(self))[index]
        return self.read(i, i + 1)[0]

    def read(self, start: int, stop: int) -> list[str]:
        """Texts ``start:stop`` (0-based line numbers)."""
        if start >= stop:
            return []
        with open(self.path, "rb") as f:
            f.seek(int(self._offsets[start]))
            return [self._decode(f.readline(), i + 1) for i in range(start, stop)]


class TextEmbeddingSource(EmbeddingSource):
    """Embeddings of texts by a sentence-transformers model, computed chunk by chunk.

    Args:
        model: a loaded ``SentenceTransformer`` (or anything with ``encode``).
        texts: the texts (a list, or a :class:`TextFile`).
        name: display name, e.g. ``"all-MiniLM-L6-v2:texts.txt"``.
        batch_size: texts per forward pass.
    """

    def __init__(
        self, model: Any, texts: Sequence[str], name: str = "texts", batch_size: int = 32
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {batch_size}")
        if len(texts) < 2:
            raise DegenerateInputError(
                f"{name}: {len(texts)} text{'s' if len(texts) != 1 else ''}; "
                "need at least 2 to measure a spread"
            )
        super().__init__(name, len(texts), embedding_dim(model), "float32", np.dtype(np.float32))
        self.model = model
        self.texts = texts
        self.batch_size = batch_size

    def default_rows(self) -> int:
        return DEFAULT_CHUNK_TEXTS

    def _chunks(self, rows: int, start: int, stop: int) -> Iterator[np.ndarray]:
        for lo in range(start, stop, rows):
            z = encode(self.model, self.texts[lo : min(lo + rows, stop)], self.batch_size)
            if z.ndim != 2 or z.shape[1] != self.d:
                raise InputError(f"{self.name}: the model returned shape {z.shape}, "
                                 f"expected (k, {self.d})")  # fmt: skip
            yield z


@dataclass(frozen=True)
class EmbedResult:
    """What ``embed`` wrote: path, shape and speed."""

    path: str
    n: int
    d: int
    model: str
    seconds: float

    @property
    def texts_per_second(self) -> float:
        return self.n / self.seconds if self.seconds > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "texts_per_second": round(self.texts_per_second, 3)}


def write_npy(
    source: EmbeddingSource,
    out: str | os.PathLike[str],
    chunk_rows: int | None = None,
    progress: Progress | None = None,
) -> None:
    """Stream every row of ``source`` into the float32 ``.npy`` file ``out``, atomically."""
    done = 0
    with atomic_npy(out, (source.n, source.d)) as f:
        for chunk in source.chunks(chunk_rows):
            f.write(np.ascontiguousarray(chunk, dtype="<f4").tobytes())
            done += chunk.shape[0]
            if progress is not None:
                progress(done, source.n)


def embed_file(
    model: str | os.PathLike[str],
    texts: str | os.PathLike[str],
    out: str | os.PathLike[str],
    batch_size: int = 32,
    chunk_texts: int | None = None,
    progress: Progress | None = None,
    device: str = "cpu",
    *,
    chunk_rows: int | None = None,
) -> EmbedResult:
    """Embed every line of ``texts`` with ``model`` into the ``(N, d)`` float32 ``out.npy``.

    Args:
        model: local sentence-transformers directory or ``all-MiniLM-L6-v2``.
        texts: UTF-8 file, one text per line.
        out: output ``.npy`` path (written atomically, row block by row block).
        batch_size: texts per forward pass.
        chunk_texts: texts encoded per written block (default ``DEFAULT_CHUNK_TEXTS``, 256).
        progress: called as ``progress(texts_done, texts_total)``.
        device: torch device.
        chunk_rows: the former name of ``chunk_texts`` (still accepted).

    Raises:
        InputError / ConfigError: bad texts file, model or output path.
    """
    t0 = time.perf_counter()
    check_npy_path(out)
    lines = TextFile(texts)
    st = load_model(model, device=device)
    source = TextEmbeddingSource(st, lines, f"{os.fspath(model)}:{lines.name}", batch_size)
    write_npy(source, out, _texts_per_chunk(chunk_texts, chunk_rows), progress)
    return EmbedResult(os.fspath(out), source.n, source.d, os.fspath(model),
                       time.perf_counter() - t0)  # fmt: skip


def open_text_source(
    model: str | os.PathLike[str],
    texts: str | os.PathLike[str],
    batch_size: int = 32,
    device: str = "cpu",
) -> TextEmbeddingSource:
    """Load ``model`` and wrap the texts file as a source (see :class:`TextEmbeddingSource`)."""
    lines = TextFile(texts)
    st = load_model(model, device=device)
    return TextEmbeddingSource(st, lines, f"{os.fspath(model)}:{lines.name}", batch_size)


def check_texts(
    model: str | os.PathLike[str],
    texts: str | os.PathLike[str],
    *,
    batch_size: int = 32,
    thresholds: Thresholds | None = None,
    chunk_texts: int | None = None,
    sample_size: int | None = None,
    progress: Progress | None = None,
    device: str = "cpu",
    baseline_model: str | os.PathLike[str] | None = None,
    baseline: Sequence[EmbeddingSource] | Sequence[str] | None = None,
    classes: int | None = None,
    chunk_rows: int | None = None,
) -> CheckResult:
    """``collapselab check --model M --texts T``: embed and measure in one streaming pass.

    The embeddings go straight into the check pipeline's float64 accumulator chunk by
    chunk (``chunk_texts`` texts at a time, default ``DEFAULT_CHUNK_TEXTS``, 256;
    ``chunk_rows``, the name :func:`~collapselab.check.check_files` uses, is accepted
    too); nothing is written to disk. ``sample_size``: default ``metrics.SAMPLE_SIZE``.
    With ``baseline_model`` (e.g. the model before fine-tuning) the same texts are
    embedded by it too and the result compares the two; ``baseline`` takes ready files
    (sources, or specs as :func:`~collapselab.check.check_files` reads them).
    """
    source = open_text_source(model, texts, batch_size, device)
    bases: Sequence[EmbeddingSource] | None = None
    if baseline_model is not None:
        bases = [open_text_source(baseline_model, texts, batch_size, device)]
    elif baseline:
        bases = [b for b in baseline if not isinstance(b, str)] or iter_sources(
            [str(b) for b in baseline])  # fmt: skip
    return check_sources(
        [source],
        thresholds=thresholds,
        chunk_rows=_texts_per_chunk(chunk_texts, chunk_rows),
        sample_size=sample_size,
        progress=progress,
        baseline=bases,
        classes=classes,
    )
