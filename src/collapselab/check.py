"""The diagnose road: files -> validated chunks -> streaming moments -> metrics -> verdict.

This module joins ``io`` (reading), ``metrics`` (one float64 streaming accumulator) and
``diagnose`` (the verdict). It is what ``collapselab check`` runs, and a library entry
point in its own right: :func:`check_files`.

Several files (or a glob of shards) are reduced into one result through the mergeable
accumulator. Under ``torchrun`` every rank reads an equal slice of the rows of every
file and the accumulators are all-reduced, so a corpus spread over machines is checked
as one matrix; only ``d x d`` states travel, never rows.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from collapselab import dist
from collapselab.diagnose import Measurement, Thresholds, measure
from collapselab.drift import PERMUTATIONS, BlockPlan, Drift, drift_of_blocks
from collapselab.errors import ConfigError, InputError
from collapselab.health import Health, HealthCounter, index_health
from collapselab.io import (
    EmbeddingSource,
    arrow_matrix,
    default_chunk_rows,
    iter_sources,
)
from collapselab.metrics import SAMPLE_SIZE, Moments

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class CheckResult:
    """The Measurement of the files checked as one matrix (and of the baseline files)."""

    measurement: Measurement
    files: list[str]
    seconds: float
    baseline_files: list[str] | None = None
    #: the baseline's accumulated moments (its row sample: the report's histogram)
    baseline_moments: Moments | None = field(default=None, repr=False, compare=False)
    #: the two-sample test against the baseline (:mod:`collapselab.drift`), or why none ran
    drift: Drift | str | None = None
    #: index health (``--health``): NaN/Inf/zero rows, duplicates, norms, rogue dimensions
    health: Health | None = None
    #: how each store's rows were read ("NAME: exact stored vectors (IndexFlatL2)")
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = self.measurement.to_dict()
        out.update(files=self.files, seconds=round(self.seconds, 4))
        if self.baseline_files is not None and out.get("baseline") is not None:
            out["baseline"]["files"] = self.baseline_files
        if self.drift is not None:
            out["drift"] = (self.drift.to_dict() if isinstance(self.drift, Drift)
                            else {"skipped": self.drift})  # fmt: skip
        if self.health is not None:
            out["health"] = self.health.to_dict()
        if self.notes:
            out["read"] = list(self.notes)
        return out


#: chunks read ahead of the one being processed: one 128 MiB chunk (``io.CHUNK_BYTES``,
#: which says why that size) already holds ~0.3 s
#: of arithmetic at d = 384, more read-ahead than four 32 MiB buffers gave; a deeper
#: ring (three buffers) was no faster and adds 128 MiB to the peak
_AHEAD = 1


def _sample_size(size: int | None) -> int:
    return SAMPLE_SIZE if size is None else size


def _prefetched(chunks: Iterator[np.ndarray], ahead: int = _AHEAD) -> Iterator[np.ndarray]:
    """Read up to ``ahead`` chunks on a helper thread while the current one is consumed
    (``chunks`` must come from a reader cycling through at least ``ahead + 1`` buffers).
    File reads release the GIL, so the disk or page-cache copy overlaps the arithmetic."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="collapselab-read") as pool:
        queue = deque(pool.submit(next, chunks, None) for _ in range(ahead))
        try:
            while (chunk := queue.popleft().result()) is not None:
                queue.append(pool.submit(next, chunks, None))
                yield chunk
        finally:
            for f in queue:  # a consumer that stops early (an error): read no further
                f.cancel()


class _Blocks:
    """The moments of one set fed as the drift test's blocks (``plan.rows`` consecutive
    rows each; the rows after the last full block in a tail), so one pass gives both the
    blocks and, merged in row order, the whole set's moments. Each block keeps a row
    sample of ``2 * sample_size / blocks`` rows (twice its share: the merged sample is then
    the bottom-``sample_size`` of nearly every block's keys)."""

    def __init__(self, d: int, plan: BlockPlan, which: int, sample_size: int, seed: int):
        self.k, self.rows, self.at = plan.blocks[which], plan.rows, 0
        per = -(-2 * sample_size // self.k)
        self.parts = [Moments(d, sample_size=per, seed=seed * 1_000_003 + i)
                      for i in range(self.k + 1)]  # fmt: skip
        self.sample_size, self.seed = sample_size, seed

    def update(self, chunk: np.ndarray) -> None:
        i = 0
        while i < len(chunk):
            b = min(self.at // self.rows, self.k)
            take = len(chunk) - i if b == self.k else min(len(chunk) - i,
                                                          (b + 1) * self.rows - self.at)
            self.parts[b].update(chunk[i : i + take])
            i, self.at = i + take, self.at + take

    @property
    def nonfinite_rows(self) -> int:
        return sum(p.nonfinite_rows for p in self.parts)

    @property
    def rows_seen(self) -> int:
        return self.at

    @property
    def first_nonfinite(self) -> int:
        seen = 0
        for p in self.parts:
            if p.first_nonfinite >= 0:
                return seen + p.first_nonfinite
            seen += p.rows_seen
        return -1

    def total(self) -> Moments:
        out = Moments(self.parts[0].d, sample_size=self.sample_size, seed=self.seed)
        for p in self.parts:
            out.merge(p)
        return out


def _stream(
    sources: Sequence[EmbeddingSource],
    feed: Moments | _Blocks,
    rows: int,
    progress: Progress | None,
    health: HealthCounter | None = None,
) -> list[str]:
    """Feed this rank's rows of every source into ``feed`` (and ``health``, with each
    row's number counted over the sources in order); the NaN/Inf findings, one line per
    source (raised at once when not distributed, unless ``health`` reports them)."""
    rank, world = dist.rank(), dist.world_size()
    spans = [(s, s.n * rank // world, s.n * (rank + 1) // world) for s in sources]
    total, done = sum(b - a for _, a, b in spans), 0
    bad: list[str] = []
    first_row = 0  # of the current source, counted over all sources
    for src, start, stop in spans:
        before, seen_before = feed.nonfinite_rows, feed.rows_seen
        chunks = src.chunks(rows, start=start, stop=stop, buffers=_AHEAD + 1)
        at = first_row + start
        for chunk in _prefetched(chunks):
            feed.update(chunk)
            if health is not None:
                health.update(chunk, at)
            at += chunk.shape[0]
            done += chunk.shape[0]
            if progress is not None:
                progress(done, total)
        first_row += src.n
        if feed.nonfinite_rows > before:
            count = feed.nonfinite_rows - before
            first = feed.first_nonfinite - seen_before + start if before == 0 else start
            bad.append(
                f"{src.name}: {count} row{'s' if count != 1 else ''} contain NaN or Inf "
                f"(first: row {first}); --health lists them"
            )
            if world == 1 and health is None:
                raise InputError(bad[0])
    return bad


def _same_d(sources: Sequence[EmbeddingSource]) -> int:
    if not sources:
        raise InputError("no input files")
    d = sources[0].d
    for s in sources[1:]:
        if s.d != d:
            raise InputError(f"{s.name}: {s.d} columns, but {sources[0].name} has {d}")
    return d


def accumulate_sources(
    sources: Sequence[EmbeddingSource],
    *,
    chunk_rows: int | None = None,
    sample_size: int | None = None,
    progress: Progress | None = None,
    health: HealthCounter | None = None,
) -> Moments:
    """Stream every source into one float64 accumulator (all-reduced under torchrun).

    Args:
        sources: opened embedding files (same number of columns).
        chunk_rows: rows per read (default: about ``CHUNK_BYTES`` of float32 per chunk;
            up to ``_AHEAD`` chunks are read while one is processed).
        sample_size: rows kept for pairwise statistics (uniformity, max cosine);
            default :data:`~collapselab.metrics.SAMPLE_SIZE`.
        progress: called as ``progress(rows_done, rows_total)`` after each chunk (this
            rank's rows when distributed).
        health: fed the same chunks (one process only); NaN/Inf rows are then left to it
            to report (the moments exclude them) instead of raised.

    Raises:
        InputError: files disagree on d, or a file has NaN/Inf rows (named, with the
            count and the first bad row) and no ``health`` counter takes them.
    """
    d = _same_d(sources)
    try:
        moments = Moments(d, sample_size=_sample_size(sample_size), seed=dist.rank())
    except InputError as e:  # d too large for this machine's memory: name the file
        raise InputError(f"{sources[0].name}: {e}") from e
    bad = _stream(sources, moments, chunk_rows or default_chunk_rows(d), progress, health)
    moments.all_reduce()
    if moments.nonfinite_rows and health is None:
        raise InputError(
            bad[0] if bad else f"{moments.nonfinite_rows} rows on other ranks contain NaN or Inf"
        )
    return moments


def accumulate_blocks(
    sources: Sequence[EmbeddingSource],
    plan: BlockPlan,
    which: int,
    *,
    chunk_rows: int | None = None,
    sample_size: int | None = None,
    progress: Progress | None = None,
    health: HealthCounter | None = None,
) -> tuple[Moments, list[Moments]]:
    """As :func:`accumulate_sources` (one process), also keeping the drift test's blocks:
    ``(the whole set's moments, the moments of each full block)``; ``which`` is 0 for the
    reference and 1 for the current set of ``plan``."""
    d = _same_d(sources)
    feed = _Blocks(d, plan, which, _sample_size(sample_size), seed=which)
    _stream(sources, feed, chunk_rows or default_chunk_rows(d), progress, health)
    return feed.total(), feed.parts[:-1]


def check_sources(
    sources: Sequence[EmbeddingSource],
    *,
    thresholds: Thresholds | None = None,
    chunk_rows: int | None = None,
    sample_size: int | None = None,
    progress: Progress | None = None,
    baseline: Sequence[EmbeddingSource] | Moments | None = None,
    classes: int | None = None,
    permutations: int = PERMUTATIONS,
    health: bool = False,
) -> CheckResult:
    """Stream every source through one accumulator and measure the whole
    (see :func:`accumulate_sources` for the arguments and errors).

    Args:
        baseline: the reference (files, or moments already accumulated, e.g. of a model
            before fine-tuning): the result also compares against it and, for files read
            in one process, tests whether the distribution moved (:mod:`collapselab.drift`).
        classes: number of classes of supervised features (rank ``C - 1`` expected).
        permutations: of the drift test's null; 0 skips the test.
        health: also report the index health of ``sources`` (:mod:`collapselab.health`;
            NaN/Inf rows are then reported and left out of the verdict, not raised).

    Raises:
        ConfigError: ``health`` under torchrun (it reads every row in one process).
    """
    t0 = time.perf_counter()
    options: dict[str, Any] = {"chunk_rows": chunk_rows, "sample_size": sample_size}
    counter = None
    if health:
        if dist.world_size() > 1:
            raise ConfigError("--health reads every row in one process; run it without "
                              "torchrun")  # fmt: skip
        counter = HealthCounter(_same_d(sources))
    drift: Drift | str | None = None
    base_files = None
    if baseline is None or isinstance(baseline, Moments):
        moments = accumulate_sources(sources, progress=progress, health=counter, **options)
        if baseline is not None:
            drift = "no drift test: the baseline is given as moments, without blocks"
    else:
        d = _same_d(sources)
        for b in baseline:  # before any reading, and naming the file
            if b.d != d:
                raise InputError(f"{b.name}: baseline of {b.d} columns, but {sources[0].name} "
                                 f"has {d}")  # fmt: skip
        base_files = [s.name for s in baseline]
        plan = BlockPlan.of(sum(b.n for b in baseline), sum(s.n for s in sources), d)
        if permutations < 1 or isinstance(plan, str) or dist.world_size() > 1:
            drift = ("no drift test: --permutations 0" if permutations < 1 else plan
                     if isinstance(plan, str) else "no drift test under torchrun: each rank "
                     "holds a slice of the rows, not whole blocks")  # fmt: skip
            moments = accumulate_sources(sources, progress=progress, health=counter,
                                         **options)  # fmt: skip
            baseline = accumulate_sources(baseline, **options)
        else:
            moments, cur_blocks = accumulate_blocks(sources, plan, 1, progress=progress,
                                                    health=counter, **options)  # fmt: skip
            baseline, ref_blocks = accumulate_blocks(baseline, plan, 0, **options)
            drift = drift_of_blocks(ref_blocks, cur_blocks, totals=(baseline, moments),
                                    block_rows=plan.rows, permutations=permutations)  # fmt: skip
    report = None
    if counter is not None:
        if moments.n < 2:
            raise InputError(f"{sources[0].name}: {moments.n} finite rows of "
                             f"{moments.rows_seen}; nothing left to measure")  # fmt: skip
        line = (thresholds or Thresholds()).outlier_norm_ratio
        report = index_health(counter, moments, sources[0] if len(sources) == 1 else None,
                              chunk_rows=chunk_rows, outlier_norm_ratio=line)  # fmt: skip
    return CheckResult(
        measure(moments, baseline=baseline, thresholds=thresholds, classes=classes,
                nonfinite_reported=report is not None),
        [s.name for s in sources],
        time.perf_counter() - t0,
        base_files,
        baseline,
        drift,
        report,
        tuple(f"{s.name}: {s.note}" for s in sources if s.note),
    )


def check_files(
    specs: Sequence[str],
    *,
    thresholds: Thresholds | None = None,
    chunk_rows: int | None = None,
    sample_size: int | None = None,
    progress: Progress | None = None,
    baseline: Sequence[str] | None = None,
    classes: int | None = None,
    permutations: int = PERMUTATIONS,
    health: bool = False,
) -> CheckResult:
    """Check embedding files (``PATH``, ``PATH:KEY`` or globs) as one matrix, optionally
    against baseline files (e.g. the same texts embedded before fine-tuning).

    Example:
        >>> from collapselab.check import check_files
        >>> result = check_files(["tuned.npy"], baseline=["frozen.npy"])  # doctest: +SKIP
        >>> result.measurement.verdict, result.measurement.warning      # doctest: +SKIP
    """
    return check_sources(
        iter_sources(list(specs)),
        thresholds=thresholds,
        chunk_rows=chunk_rows,
        sample_size=sample_size,
        progress=progress,
        baseline=None if baseline is None else iter_sources(list(baseline)),
        classes=classes,
        permutations=permutations,
        health=health,
    )


# --- engines that ship states: Ray Data, Spark (collapselab.integrations) -----------------


def moments_of_arrow(column: Any, name: str = "dataset", sample_size: int | None = None,
                     what: str = "embedding column") -> Moments:  # fmt: skip
    """The :class:`Moments` of one Arrow column holding one embedding per row (a
    list / fixed-size-list column, or Ray's tensor extension type), e.g. one block of a
    Ray Dataset or one Arrow batch of a Spark partition. No Python loop over rows.

    The sample's seed is derived from the block's first row and length, so a retried
    block gives the same state. NaN/Inf rows are counted, not raised: the merged state
    reports them (:func:`measure_states`).
    """
    import zlib

    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray) and isinstance(column.type, pa.ExtensionType):
        column = column.combine_chunks()
    if isinstance(column, pa.ExtensionArray):  # ray.data's ArrowTensorArray and kin
        z = np.asarray(column.to_numpy())
        z = z.reshape(len(z), -1)
    else:
        z = arrow_matrix(column, name, what=what)
    seed = zlib.crc32(np.ascontiguousarray(z[:1]).tobytes()) ^ z.shape[0]
    moments = Moments(z.shape[1], sample_size=_sample_size(sample_size), seed=seed)
    moments.update(z)
    return moments


def merge_states(a: bytes, b: bytes) -> bytes:
    """Merge two :meth:`Moments.to_bytes` states (associative: any reduction tree gives
    the same moments up to float64 rounding)."""
    return Moments.from_bytes(a).merge(Moments.from_bytes(b)).to_bytes()


def state_moments(state: bytes | Moments | None, name: str) -> Moments:
    """The :class:`Moments` of a merged engine state (``None``: no block had rows).

    Raises:
        InputError: no rows, or rows with NaN/Inf (counted over the whole dataset).
    """
    moments = Moments.from_bytes(state) if isinstance(state, bytes | bytearray) else state
    if moments is None or moments.rows_seen == 0:
        raise InputError(f"{name}: no rows")
    if moments.nonfinite_rows:
        count = moments.nonfinite_rows
        raise InputError(f"{name}: {count} row{'s' if count != 1 else ''} contain NaN or Inf")
    return moments


def measure_states(
    state: bytes | Moments | None,
    name: str,
    *,
    baseline: bytes | Moments | None = None,
    thresholds: Thresholds | None = None,
    classes: int | None = None,
    seconds: float = 0.0,
) -> CheckResult:
    """The :class:`CheckResult` of a merged state (what an engine's reduction returns),
    measured by the same code as :func:`check_files` (errors: :func:`state_moments`)."""
    moments = state_moments(state, name)
    base = None if baseline is None else state_moments(baseline, "baseline")
    return CheckResult(
        measure(moments, baseline=base, thresholds=thresholds, classes=classes),
        [name],
        seconds,
        None if base is None else ["baseline"],
        base,
    )


def parquet_shards(specs: Sequence[str], engine: str) -> tuple[list[str], str | None]:
    """The ``.parquet`` files ``specs`` name (globs and folders expanded, in order) and the
    ``:COLUMN`` they name: what a cluster engine (Ray, Spark) is handed to read.

    Raises:
        InputError: a file that is not ``.parquet`` or does not exist, a pattern matching
            nothing, or specs naming different columns.
    """
    import os

    from collapselab.io import expand_specs

    found = expand_specs(specs)
    for f, _ in found:
        if not f.endswith(".parquet"):
            raise InputError(f"{f}: --engine {engine} reads .parquet shards; use the "
                             "default engine for other formats")  # fmt: skip
        if not os.path.isfile(f):
            raise InputError(f"{f}: no such file")
    columns = {key for _, key in found}
    if len(columns) > 1:
        raise InputError(f"files name different columns: {sorted(map(str, columns))}")
    return [f for f, _ in found], columns.pop()


@dataclass(frozen=True)
class CheckRequest:
    """What ``collapselab check`` is asked, as one object: its fields are the command's
    options (``--baseline-model`` is ``baseline_model``), so the command line, a script and
    a test build the same request; :func:`collapselab.integrations.engines.run_check`
    runs it where its rows live (files here, a text model, Ray or Spark).

    Combinations that cannot work (files and a model, a model without texts, an engine
    with a model, ...) are refused when the request is made, before any reading.

    Raises:
        ConfigError: the first problem, in one line naming the options.
    """

    paths: Sequence[str] = ()
    model: str | None = None
    texts: str | None = None
    baseline: Sequence[str] | None = None
    baseline_model: str | None = None
    classes: int | None = None
    engine: str = "local"
    address: str | None = None
    master: str | None = None
    verbose: bool = False
    chunk_rows: int | None = None
    sample_size: int | None = None
    #: of the drift test's null (with ``baseline`` files); None: the default, 0: no test
    permutations: int | None = None
    #: also report index health (NaN/Inf/zero rows, duplicates, norms, rogue dimensions)
    health: bool = False
    thresholds: Thresholds | None = None

    def __post_init__(self) -> None:
        files, text = bool(self.paths), self.model is not None or self.texts is not None
        model, engine, classes = self.model, self.engine, self.classes
        rules = [
            (files and text, "give embedding files or --model/--texts, not both"),
            ((model is None) != (self.texts is None), "--model MODEL and --texts TEXTS.txt "
             "go together"),
            (not files and model is None, "nothing to check: give PATH ... or --model MODEL "
             "--texts TEXTS.txt"),
            (self.baseline_model is not None and model is None, "--baseline-model goes with "
             "--model MODEL --texts TEXTS.txt"),
            (self.baseline_model is not None and bool(self.baseline), "give --baseline files "
             "or --baseline-model, not both"),
            (classes is not None and classes < 2, f"--classes must be >= 2, got {classes}"),
            ((self.permutations or 0) < 0, f"--permutations must be >= 0, got "
             f"{self.permutations}"),
            (engine not in ("local", "ray", "spark"), f"--engine {engine!r}: local, ray or "
             "spark"),
            (engine != "local" and model is not None, f"--engine {engine} reads .parquet "
             "files, not --model/--texts"),
            (self.address is not None and engine != "ray", "--address goes with --engine ray"),
            (self.health and (engine != "local" or model is not None), "--health reads "
             "embedding files or stores here (not --engine ray/spark, not --model)"),
            (self.master is not None and engine != "spark", "--master goes with --engine "
             "spark"),
        ]  # fmt: skip
        for broken, message in rules:
            if broken:
                raise ConfigError(message)

    @property
    def measure_options(self) -> dict[str, Any]:
        """What every reader passes on to the measurement (thresholds, classes and, when
        set, the sample size)."""
        out: dict[str, Any] = {"thresholds": self.thresholds, "classes": self.classes}
        if self.sample_size is not None:
            out["sample_size"] = self.sample_size
        return out
