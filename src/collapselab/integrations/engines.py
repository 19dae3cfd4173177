"""Where ``collapselab check`` reads its rows: :func:`run_check` runs a
:class:`~collapselab.check.CheckRequest` on files in this process (sliced over ranks under
``torchrun``), on a sentence-transformers model's embeddings of a text file, or on Parquet
shards where a Ray or Spark cluster reads them (each adapter imported only when its engine
is asked for)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from collapselab.check import CheckRequest, CheckResult, Progress, check_files, parquet_shards
from collapselab.drift import PERMUTATIONS
from collapselab.errors import ConfigError


def check_on_engine(
    engine: str,
    paths: Sequence[str],
    *,
    baseline: Sequence[str] | None = None,
    address: str | None = None,
    master: str | None = None,
    verbose: bool = False,
    **options: Any,
) -> CheckResult:
    """Check the ``.parquet`` shards ``paths`` (files, folders, globs, ``PATH:COLUMN``) on
    ``engine`` (``"ray"``: joins ``address`` or starts a local cluster; ``"spark"``: on
    ``master``, default ``local[*]``, its workers running this interpreter); ``options``
    go to the adapter's ``check_parquet`` (thresholds, classes, sample_size). The
    engine's own log stays off the terminal unless ``verbose``; an engine that cannot run
    raises :class:`~collapselab.errors.EngineError` (one line naming the fix)."""
    files, column = parquet_shards(paths, engine)
    base = None if not baseline else parquet_shards(baseline, engine)[0]
    if engine == "ray":
        from collapselab.integrations.ray_data import check_parquet

        return check_parquet(files, column, address=address, baseline=base, verbose=verbose,
                             **options)  # fmt: skip
    if engine == "spark":
        from collapselab.integrations.spark import check_parquet as spark_check

        return spark_check(files, column, master=master or "local[*]", baseline=base,
                           verbose=verbose, **options)  # fmt: skip
    raise ConfigError(f"--engine {engine!r}: ray or spark")


def run_check(request: CheckRequest, progress: Progress | None = None) -> CheckResult:
    """Run ``request`` where its rows live: ``--model/--texts`` embed and measure in one
    streaming pass; ``engine`` ``"ray"``/``"spark"`` read Parquet shards on a cluster;
    otherwise the files are read here (``progress(done, total)`` bytes).

    Example:
        >>> from collapselab.drift import PERMUTATIONS
from collapselab.check import CheckRequest
        >>> from collapselab.integrations.engines import run_check
        >>> run_check(CheckRequest(paths=["emb.npy"])).measurement.verdict  # doctest: +SKIP
    """
    r, options = request, request.measure_options
    if r.model is not None:
        from collapselab.text import check_texts

        return check_texts(r.model, r.texts or "", chunk_rows=r.chunk_rows, progress=progress,
                           baseline_model=r.baseline_model, baseline=r.baseline,
                           **options)  # fmt: skip
    if r.engine != "local":
        return check_on_engine(r.engine, r.paths, baseline=r.baseline, address=r.address,
                               master=r.master, verbose=r.verbose, **options)  # fmt: skip
    return check_files(r.paths, chunk_rows=r.chunk_rows, progress=progress, baseline=r.baseline,
                       permutations=PERMUTATIONS if r.permutations is None else r.permutations,
                       health=r.health, **options)  # fmt: skip
