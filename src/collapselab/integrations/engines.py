"""``collapselab check --engine ray|spark``: the Parquet shards checked where a cluster reads
them (each adapter imported only when its engine is asked for)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from collapselab.check import CheckResult, parquet_shards
from collapselab.errors import ConfigError


def check_on_engine(
    engine: str,
    paths: Sequence[str],
    *,
    baseline: Sequence[str] | None = None,
    address: str | None = None,
    master: str | None = None,
    **options: Any,
) -> CheckResult:
    """Check the ``.parquet`` shards ``paths`` (files, folders, globs, ``PATH:COLUMN``) on
    ``engine`` (``"ray"``: joins ``address`` or starts a local cluster; ``"spark"``: on
    ``master``, default ``local[*]``); ``options`` go to the adapter's ``check_parquet``
    (thresholds, classes, sample_size)."""
    files, column = parquet_shards(paths, engine)
    base = None if not baseline else parquet_shards(baseline, engine)[0]
    if engine == "ray":
        from collapselab.integrations.ray_data import check_parquet

        return check_parquet(files, column, address=address, baseline=base, **options)
    if engine == "spark":
        from collapselab.integrations.spark import check_parquet as spark_check

        return spark_check(files, column, master=master or "local[*]", baseline=base,
                           **options)  # fmt: skip
    raise ConfigError(f"--engine {engine!r}: ray or spark")
