"""Collapse check of a Spark DataFrame of embeddings: only ``d x d`` states travel.

Each partition folds its Arrow batches (``mapInArrow``, no Python loop over rows) into one
float64 :class:`~collapselab.metrics.Moments`, ships it as bytes
(:meth:`~collapselab.metrics.Moments.to_bytes`), and the states are merged by a
``treeReduce`` (Chan et al.'s exact pairwise update), so the driver never sees a row. The
result is the same :class:`~collapselab.check.CheckResult` as ``collapselab check`` on the
same rows (eigenvalues equal up to float64 rounding, nearly collapsed corpora included)::

    from collapselab.integrations.spark import check_dataframe, check_parquet

    df = spark.read.parquet("s3://bucket/embeddings/")     # column "emb": array<float>
    result = check_dataframe(df, "emb")                    # column=None: the one array column
    result.measurement.verdict, result.measurement.warning

    check_parquet(["shards/"], baseline=["frozen/"], master="local[8]")  # builds a session

Errors in the data (ragged or null lists, NaN rows, no rows) raise the one-line
:class:`~collapselab.errors.InputError` of the single-process check, not a Java stack
trace. A partition retried by Spark (a lost executor, a killed Python worker) gives the
same state again. Needs the ``spark`` extra: ``pip install "collapselab[spark]"``
(pyspark with pyarrow); pyspark is imported only when a function here is called.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from collapselab import errors
from collapselab.check import (
    CheckResult,
    measure_states,
    merge_states,
    moments_of_arrow,
    state_moments,
)
from collapselab.diagnose import Thresholds
from collapselab.errors import ConfigError, EngineError, InputError
from collapselab.integrations._quiet import (
    child_output_to_file,
    last_lines,
    one_line,
    quiet_loggers,
)
from collapselab.metrics import Moments

INSTALL_HINT = 'Spark engine needs pyspark: pip install "collapselab[spark]"'

#: the last line of a collapselab error's Python traceback, inside a Java exception's text
_REMOTE_ERROR = re.compile(r"collapselab\.errors\.(\w+): ([^\r\n]*)")


def _pyspark_sql() -> Any:
    """``pyspark.sql`` (imported on first use), or the install hint."""
    try:
        import pyspark.sql
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return pyspark.sql


def _embedding_column(df: Any, column: str | None, name: str) -> str:
    """``column``, checked against ``df``'s schema, or its single array column."""
    from pyspark.sql.types import ArrayType

    fields = {f.name: f.dataType for f in df.schema.fields}
    arrays = [k for k, t in fields.items() if isinstance(t, ArrayType)]
    if column is None:
        if len(arrays) == 1:
            return arrays[0]
        found = (
            f"array columns {', '.join(map(repr, arrays))}"
            if arrays
            else f"no array column among {', '.join(map(repr, fields)) or 'no columns'}"
        )
        raise InputError(f"{name}: {found}; name the embedding column (one embedding per row)")
    if column not in fields:
        raise InputError(f"{name}: no column {column!r}; columns: "
                         f"{', '.join(map(repr, fields)) or 'none'}")  # fmt: skip
    if not isinstance(fields[column], ArrayType):
        raise InputError(f"{name}: column {column!r} holds {fields[column].simpleString()}, "
                         "not arrays of numbers (one embedding per row)")  # fmt: skip
    return column


def _partition_states(name: str, sample_size: int | None) -> Any:
    """The ``mapInArrow`` function: every batch of a partition folded into one Moments,
    yielded as one ``state`` row (nothing for an empty partition)."""

    def fold(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        acc: Moments | None = None
        offset = 0
        for batch in batches:
            if not batch.num_rows:
                continue
            try:
                moments = moments_of_arrow(batch.column(0), name, sample_size)
            except InputError as e:  # its row numbers count from the batch's first row
                raise type(e)(f"{e} (rows counted from row {offset} of {_where()})") from None
            if acc is not None and moments.d != acc.d:
                raise InputError(f"{name}: ragged column: row {offset} of {_where()} has "
                                 f"{moments.d} values; expected {acc.d}")  # fmt: skip
            acc = moments if acc is None else acc.merge(moments)
            offset += batch.num_rows
        if acc is not None:
            yield pa.RecordBatch.from_arrays([pa.array([acc.to_bytes()], pa.binary())],
                                             names=["state"])  # fmt: skip

    return fold


def _where() -> str:
    """``"Spark partition P"`` inside a Spark task."""
    from pyspark import TaskContext

    ctx = TaskContext.get()
    return f"Spark partition {ctx.partitionId()}" if ctx is not None else "the partition"


def _merger(name: str) -> Any:
    """:func:`merge_states`, with a one-line error naming the data when two partitions
    hold embeddings of different lengths."""

    def merge(a: bytes, b: bytes) -> bytes:
        try:
            return merge_states(a, b)
        except InputError:
            da, db = Moments.from_bytes(a).d, Moments.from_bytes(b).d
            if da == db:
                raise
        raise InputError(f"{name}: ragged column: some Spark partitions hold lists of "
                         f"{da} values, others of {db}")  # fmt: skip

    return merge


def _remote_error(exc: BaseException) -> errors.CollapseLabError | None:
    """The collapselab error an executor raised, rebuilt from the text of the Spark /
    py4j exception that carries its traceback (None when there is none)."""
    match = _REMOTE_ERROR.search(str(exc))
    if match is None:
        return None
    cls = getattr(errors, match.group(1), None)
    if not (isinstance(cls, type) and issubclass(cls, errors.CollapseLabError)):
        cls = InputError
    return cls(match.group(2).strip())


def dataframe_state(df: Any, column: str, name: str, *, sample_size: int | None = None,
                    depth: int = 2) -> Moments | None:  # fmt: skip
    """The merged :class:`Moments` of ``df[column]`` (None when it has no rows).

    Raises:
        InputError: a partition's rows are not embeddings (ragged or null lists), with
            the one-line message of the executor's error.
    """
    # quoted (names with dots, blanks, backticks), then renamed: mapInArrow resolves its
    # input's column names unquoted
    quoted = "`" + column.replace("`", "``") + "`"
    states = (df.select(quoted).toDF("embedding")
              .mapInArrow(_partition_states(name, sample_size), "state binary")
              .rdd.map(lambda row: row.state))  # fmt: skip
    try:
        state = states.treeReduce(_merger(name), depth=depth)
    except InputError:  # raised by the merge on the driver
        raise
    except ValueError as e:  # pyspark: "Cannot reduce empty RDD"
        if "empty" not in str(e).lower():
            raise _run_failure(e, df) from e
        return None
    except Exception as e:  # a Py4JJavaError / PythonException carrying an executor's error
        remote = _remote_error(e)
        if remote is None:
            raise _run_failure(e, df) from e
        raise remote from None
    return Moments.from_bytes(state)


def _run_failure(exc: BaseException, df: Any) -> EngineError:
    """What went wrong in a Spark job that raised no collapselab error, and the fix."""
    try:
        python = df.sparkSession.sparkContext.pythonExec
    except Exception:  # the JVM is gone
        python = os.environ.get("PYSPARK_PYTHON", "python3")
    fix = "set PYSPARK_PYTHON to an interpreter that has collapselab"
    text = str(exc)
    if "No module named 'collapselab'" in text:
        return EngineError(f"Spark workers cannot import collapselab (they run {python}): "
                           f"{fix} (e.g. {sys.executable})")  # fmt: skip
    if "PYTHON_VERSION_MISMATCH" in text or "different version" in text:
        return EngineError(f"Spark workers run another Python version ({python}) than "
                           f"collapselab ({sys.version.split()[0]}): {fix}")  # fmt: skip
    return EngineError(f"Spark job failed: {one_line(exc)} (--verbose shows Spark's log)")


def check_dataframe(
    df: Any,
    column: str | None = None,
    *,
    baseline: Any = None,
    thresholds: Thresholds | None = None,
    classes: int | None = None,
    sample_size: int | None = None,
    depth: int = 2,
    name: str | None = None,
) -> CheckResult:
    """Check the embeddings of a Spark DataFrame as one matrix, optionally against a
    baseline (e.g. the same texts embedded before fine-tuning).

    Args:
        df: a ``pyspark.sql.DataFrame`` with one embedding per row in an array column
            (``array<float>``, ``array<double>``, ... as read from Parquet lists and
            fixed-size lists); other columns are ignored.
        column: the embedding column (default: the DataFrame's single array column).
        baseline: a DataFrame with the same column, or :class:`Moments` already
            accumulated.
        thresholds: verdict thresholds.
        classes: number of classes of supervised features (rank ``C - 1`` expected).
        sample_size: rows kept for pairwise statistics (uniformity, max cosine);
            default :data:`~collapselab.metrics.SAMPLE_SIZE`.
        depth: depth of the ``treeReduce`` merging the partitions' states.
        name: how results and errors name the data (default: ``column <column>``).

    Raises:
        ConfigError: pyspark is not installed.
        InputError: no such column, no single array column, no rows, ragged or null
            lists, or rows with NaN/Inf (one line, raised on the driver).
    """
    _pyspark_sql()
    t0 = time.perf_counter()
    label = name or "dataframe"
    column = _embedding_column(df, column, label)
    name = name or f"column {column}"
    base: Moments | None = None
    base_files: list[str] | None = None
    if baseline is not None and not isinstance(baseline, Moments):
        base_name = f"baseline {name}"
        base = dataframe_state(baseline, _embedding_column(baseline, column, base_name),
                               base_name, sample_size=sample_size, depth=depth)  # fmt: skip
        state_moments(base, base_name)
        base_files = [base_name]
    elif baseline is not None:
        base = baseline
    moments = dataframe_state(df, column, name, sample_size=sample_size, depth=depth)
    result = measure_states(moments, name, baseline=base, thresholds=thresholds,
                            classes=classes)  # fmt: skip
    return replace(result, seconds=time.perf_counter() - t0, baseline_files=base_files)


def _paths(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    out = [os.fspath(paths)] if isinstance(paths, str | os.PathLike) else [
        os.fspath(p) for p in paths]  # fmt: skip
    if not out:
        raise InputError("no input files")
    return out


def _label(paths: list[str]) -> str:
    return paths[0] if len(paths) == 1 else f"{paths[0]} (+{len(paths) - 1} more)"


def check_parquet(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    column: str | None = None,
    *,
    master: str = "local[2]",
    spark: Any = None,
    baseline: Any = None,
    verbose: bool = False,
    **kw: Any,
) -> CheckResult:
    """Check Parquet files (files, directories or globs, local or any filesystem Spark
    reads) on Spark: :func:`check_dataframe` of ``spark.read.parquet(*paths)``.

    Args:
        paths: the files.
        column: the embedding column (default: the single array column).
        master: the master of the session built when there is none (``spark`` not given
            and no active session); that session is stopped at the end.
        spark: a ``SparkSession`` to use (never stopped here).
        baseline: Parquet paths of the baseline (same column), a DataFrame, or Moments.
        verbose: let Spark's own output through (the JVM's log and warnings, the workers'
            tracebacks); by default a session built here writes them to a file.
        **kw: the other arguments of :func:`check_dataframe` (``thresholds``,
            ``classes``, ``sample_size``, ``depth``, ``name``).

    Raises:
        ConfigError: pyspark is not installed.
        InputError: as :func:`check_dataframe`; unreadable files.
        EngineError: Java cannot start, the workers cannot import collapselab, another
            failure of the Spark job (one line naming the fix).
    """
    sql = _pyspark_sql()
    files = _paths(paths)
    base_files = None if baseline is None or isinstance(baseline, Moments) or hasattr(
        baseline, "schema") else _paths(baseline)  # fmt: skip
    created = False
    with quiet_loggers(not verbose, ("py4j", "pyspark")):
        if spark is None:
            spark = sql.SparkSession.getActiveSession()
        if spark is None:
            from pyspark import SparkContext

            created = SparkContext._active_spark_context is None
            spark = _start_session(sql, master, verbose)
        try:
            df = _read(spark, files)
            if base_files is not None:
                baseline = _read(spark, base_files)
            kw.setdefault("name", _label(files))
            result = check_dataframe(df, column, baseline=baseline, **kw)
        finally:
            if created:
                spark.stop()
    return replace(result, files=files,
                   baseline_files=base_files or result.baseline_files)  # fmt: skip


@contextmanager
def _workers_python(master: str) -> Iterator[None]:
    """On a local master, ``PYSPARK_PYTHON`` is this interpreter while the session starts
    (unless set): the workers then import this very collapselab, however it was started
    (a console script run by its path, pipx, ``python -m``), not the first ``python3`` on
    PATH. Spark reads the variable when the context starts (``spark.pyspark.python`` set
    on a builder is not read there)."""
    here = master.startswith("local") and "PYSPARK_PYTHON" not in os.environ and bool(
        sys.executable)  # fmt: skip
    if here:
        os.environ["PYSPARK_PYTHON"] = sys.executable
    try:
        yield
    finally:
        if here:
            os.environ.pop("PYSPARK_PYTHON", None)


def _start_session(sql: Any, master: str, verbose: bool) -> Any:
    """A session on ``master`` whose JVM (and the workers it starts) writes to a file
    unless ``verbose``; a JVM that cannot start is one EngineError."""
    builder = (sql.SparkSession.builder.master(master).appName("collapselab")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false"))  # fmt: skip
    with _workers_python(master), child_output_to_file(not verbose) as log:
        try:
            spark = builder.getOrCreate()
        except Exception as e:  # PySparkRuntimeError JAVA_GATEWAY_EXITED, ...
            why = _java_said(last_lines(log)) or one_line(e)
            raise EngineError(f"Spark could not start Java ({why}): install Java 17 or "
                              "set JAVA_HOME to it") from e  # fmt: skip
    if not verbose:
        spark.sparkContext.setLogLevel("ERROR")
    return spark


def _java_said(lines: list[str]) -> str | None:
    """What the Spark launcher said about Java (``JAVA_HOME is not set``, ``.../bin/java:
    No such file or directory``), else its last line; None when it said nothing."""
    lines = [re.sub(r"^\S*spark-(?:class|submit): line \d+: ", "", ln) for ln in lines
             if "log4j" not in ln.lower()]  # fmt: skip
    return next((ln for ln in lines if "java" in ln.lower()), lines[-1] if lines else None)


def _read(spark: Any, files: list[str]) -> Any:
    try:
        return spark.read.parquet(*files)
    except Exception as e:  # AnalysisException: path missing, not Parquet, schemas differ
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"{_label(files)}: {first}") from None
