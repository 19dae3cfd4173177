"""Ray Data: check a sharded corpus where it lives, as one matrix, exactly.

Every block of the Dataset is folded into a float64 :class:`~collapselab.metrics.Moments`
state on the worker that holds it (Arrow list column -> ``(k, d)`` view, no loop over
rows); states (``d x d`` floats plus a row sample, :meth:`Moments.to_bytes`) are merged
pairwise and the driver measures the result with the same code as ``collapselab check``.
Only states travel, never rows::

    import ray
    from collapselab.integrations.ray_data import check_dataset

    ds = ray.data.read_parquet("s3://bucket/embeddings/")
    result = check_dataset(ds, "embedding")
    result.measurement.verdict, result.measurement.warning

or from the command line: ``collapselab check 'shards/*.parquet' --engine ray``.
Needs ``pip install "collapselab[ray]"``.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Sequence
from typing import Any

from collapselab.check import CheckResult, measure_states, merge_states, moments_of_arrow
from collapselab.diagnose import Thresholds
from collapselab.errors import ConfigError, EngineError, InputError
from collapselab.integrations._quiet import one_line, quiet_loggers
from collapselab.metrics import Moments

INSTALL_HINT = 'Ray engine needs Ray Data: pip install "collapselab[ray]"'


def _ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise ConfigError(INSTALL_HINT) from e
    return ray


def moments_aggregate(column: str, name: str = "dataset", sample_size: int | None = None) -> Any:
    """A Ray Data ``AggregateFnV2`` whose result is the packed :class:`Moments` state of
    ``column`` (bytes: :meth:`Moments.from_bytes` reads it), for use in your own
    ``ds.aggregate(...)`` or ``ds.groupby(key).aggregate(...)``."""
    _ray()
    from ray.data.aggregate import AggregateFnV2
    from ray.data.block import BlockAccessor

    class MomentsAggregate(AggregateFnV2):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(f"moments({column})", zero_factory=lambda: None, on=column,
                             ignore_nulls=True)  # fmt: skip

        def aggregate_block(self, block: Any) -> bytes | None:
            table = BlockAccessor.for_block(block).to_arrow()
            if table.num_rows == 0:
                return None
            what = f"column {column!r}"
            return moments_of_arrow(table.column(column), name, sample_size, what).to_bytes()

        def combine(self, current: bytes, new: bytes) -> bytes:
            return merge_states(current, new)

    return MomentsAggregate()


def _unwrap(e: BaseException) -> Exception | None:
    """The collapselab error inside a Ray task failure (``RayTaskError.cause``), if any."""
    cause: BaseException | None = e
    while cause is not None:
        inner = getattr(cause, "cause", None)  # RayTaskError: the worker's exception
        if isinstance(inner, BaseException):
            cause = inner
        elif isinstance(cause, InputError):
            return InputError(str(cause))
        else:
            cause = cause.__cause__
    return None


def _state(
    ds: Any, column: str | None, name: str, sample_size: int | None
) -> tuple[str, bytes | None]:
    names = list(ds.schema().names)
    if column is None:
        import pyarrow as pa

        types = ds.schema().types
        lists = [n for n, t in zip(names, types, strict=True)
                 if isinstance(t, pa.DataType) and (pa.types.is_list(t) or pa.types.is_large_list(t)
                     or pa.types.is_fixed_size_list(t))
                 or isinstance(t, pa.ExtensionType)]  # fmt: skip
        if len(lists) != 1:
            raise InputError(f"{name}: {len(lists)} embedding (list) columns among {names}; "
                             "name one with column=...")  # fmt: skip
        column = lists[0]
    elif column not in names:
        raise InputError(f"{name}: no column named {column!r}; available: {names}")
    agg = moments_aggregate(column, name, sample_size)
    try:
        out = ds.aggregate(agg)
    except Exception as e:  # a Ray task failure wrapping ours: one line, ours
        err = _unwrap(e)
        if err is not None:
            raise err from None
        if "No module named 'collapselab'" in str(e):
            raise EngineError("Ray workers cannot import collapselab: install it where the "
                              "cluster's workers run (or pass it in the job's "
                              "runtime_env)") from e  # fmt: skip
        raise EngineError(f"Ray job failed: {one_line(e)} (--verbose shows Ray's log)") from e
    return column, out[agg.name]


def check_dataset(
    ds: Any,
    column: str | None = None,
    *,
    baseline: Any = None,
    thresholds: Thresholds | None = None,
    classes: int | None = None,
    sample_size: int | None = None,
    name: str | None = None,
) -> CheckResult:
    """Check the embeddings in ``column`` of a Ray ``Dataset`` as one matrix.

    Args:
        ds: the Dataset (any source: ``read_parquet``, a batch-inference ``map_batches``).
        column: a list / fixed-size-list / tensor column with one embedding per row
            (default: the only such column).
        baseline: a reference Dataset (same column) or :class:`Moments`.
        thresholds, classes: as for :func:`collapselab.check.check_files`.
        sample_size: rows sampled for pairwise statistics (default
            :data:`~collapselab.metrics.SAMPLE_SIZE`).
        name: how the result and errors name the data (default ``"dataset:COLUMN"``).

    Returns:
        The same :class:`~collapselab.check.CheckResult` as ``check_files`` on the
        concatenated rows (eigenvalues equal to float64 rounding, same verdict).

    Raises:
        InputError: no such column, ragged or null rows, NaN/Inf rows, no rows.
    """
    t0 = time.perf_counter()
    label = name or "dataset"
    column, state = _state(ds, column, label, sample_size)
    label = name or f"dataset:{column}"
    base = baseline
    if baseline is not None and not isinstance(baseline, Moments):
        base = _state(baseline, column, "baseline", sample_size)[1]
        if base is None:
            raise InputError("baseline: no rows")
    return measure_states(state, label, baseline=base, thresholds=thresholds, classes=classes,
                          seconds=time.perf_counter() - t0)  # fmt: skip


#: ``HOST:PORT`` (``ray://`` or not; an IPv6 host in brackets) of an address to probe
_ADDRESS = re.compile(r"^(?:ray://)?(\[[^\]]+\]|[^:/\[\]]+):(\d+)/?$")


def _reachable(address: str | None) -> None:
    """Raise EngineError at once when ``address`` (or ``RAY_ADDRESS``) names a host and
    port that accept no connection: ``ray.init`` would retry for many minutes."""
    address = address or os.environ.get("RAY_ADDRESS")
    match = _ADDRESS.match(address.strip()) if address else None
    if match is None:  # None, "auto", "local": ray.init decides (quickly)
        return
    host, port = match.group(1).strip("[]"), int(match.group(2))
    try:
        socket.create_connection((host, port), timeout=10).close()
    except OSError as e:
        raise EngineError(f"cannot reach the Ray cluster at {address} ({e.strerror or e}): "
                          "start it (ray start --head) or fix --address; without --address "
                          "a local Ray is started") from None  # fmt: skip


def check_parquet(
    paths: Sequence[str],
    column: str | None = None,
    *,
    address: str | None = None,
    baseline: Sequence[str] | None = None,
    verbose: bool = False,
    **kwargs: Any,
) -> CheckResult:
    """``ray.data.read_parquet(paths)`` then :func:`check_dataset` (what ``collapselab
    check --engine ray`` runs). Connects to ``address`` (e.g. ``"auto"``) or starts a
    local cluster when Ray is not initialised yet; Ray's own log lines and warnings stay
    off the terminal unless ``verbose``.

    Raises:
        EngineError: the cluster cannot be reached or started, or its job failed for
            another reason than the data (one line naming the fix).
    """
    ray = _ray()
    with quiet_loggers(not verbose, ("ray", "ray.data")):
        # the one-line verdict is the output: Ray Data's progress bars are not
        ray.data.DataContext.get_current().enable_progress_bars = verbose
        if not ray.is_initialized():
            _reachable(address)
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=verbose,
                         configure_logging=verbose)  # fmt: skip
            except Exception as e:  # ConnectionError: no cluster at "auto", ...
                where = f"join the Ray cluster at {address}" if address else "start Ray"
                raise EngineError(f"cannot {where}: {one_line(e)} (start one with ray start "
                                  "--head, or fix --address)") from e  # fmt: skip
        try:
            ds = ray.data.read_parquet(list(paths))
            base = None if not baseline else ray.data.read_parquet(list(baseline))
        except Exception as e:  # missing files, not Parquet
            raise InputError(f"{paths[0]}: {one_line(e)}") from None
        name = ", ".join(paths) if len(paths) <= 3 else f"{paths[0]} and {len(paths) - 1} more"
        return check_dataset(ds, column, baseline=base, **kwargs, name=name)
