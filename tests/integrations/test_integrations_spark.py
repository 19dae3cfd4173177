"""collapselab.integrations.spark under a real local Spark (no mocks).

The Spark result must be the single-process one (``check_files`` on the same Parquet
shards): eigenvalues to 1e-10 relative, the same n and verdict, on a spread-out spectrum
and on a nearly collapsed corpus whose naive float32 covariance is far off; also when a
Python worker dies mid-job and Spark retries its task. Errors raised in executors reach
the caller as one-line InputErrors.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pyspark")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from collapselab.check import CheckResult, check_files  # noqa: E402
from collapselab.errors import InputError  # noqa: E402
from collapselab.integrations.spark import check_dataframe, check_parquet  # noqa: E402

#: rows per Arrow batch inside Spark: every shard's partition is folded from several
ROWS_PER_BATCH = 400


def _session(master: str) -> Any:
    """The active session if it runs on ``master``, else a fresh small one (the active
    one stopped first: one SparkContext per process)."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        if active.sparkContext.master == master:
            return active
        active.stop()
    # the workers run this interpreter, not the first python3 on PATH (a venv not
    # activated): Spark reads PYSPARK_PYTHON when the context starts, not a builder's
    # spark.pyspark.python
    before = os.environ.get("PYSPARK_PYTHON")
    if before is None:
        os.environ["PYSPARK_PYTHON"] = sys.executable
    builder = (
        SparkSession.builder.master(master)
        .appName("collapselab-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.driver.memory", "1g")
        .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(ROWS_PER_BATCH))
    )
    try:
        spark = builder.getOrCreate()
    finally:
        if before is None:
            os.environ.pop("PYSPARK_PYTHON", None)
    spark.sparkContext.setLogLevel("ERROR")
    return spark


@pytest.fixture(scope="module")
def spark_local() -> Iterator[Any]:
    """One ``local[2]`` session for the module, stopped at its end."""
    from pyspark.sql import SparkSession

    yield _session("local[2]")
    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()


@pytest.fixture
def spark(spark_local: Any) -> Any:
    """The module's session (rebuilt if a test swapped the master, see the retry test)."""
    return _session("local[2]")


def _spectrum(n: int, d: int, seed: int) -> np.ndarray:
    """Gaussian rows with eigenvalues spread over four decades, in a random basis."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    scale = np.geomspace(3.0, 0.03, d)
    return ((rng.standard_normal((n, d)) * scale) @ q.T + 0.5).astype(np.float32)


def _write(path: Path, z: np.ndarray, fixed: bool = True) -> str:
    """One shard: ``id`` (int64) and ``emb`` (fixed_size_list or plain list of float32)."""
    flat = pa.array(z.ravel())
    if fixed:
        emb = pa.FixedSizeListArray.from_arrays(flat, z.shape[1])
    else:
        emb = pa.ListArray.from_arrays(pa.array(np.arange(0, z.size + 1, z.shape[1],
                                                          dtype=np.int32)), flat)  # fmt: skip
    pq.write_table(pa.table({"id": np.arange(len(z)), "emb": emb}), path, row_group_size=1000)
    return str(path)


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """6000 x 24 in four shards; the last one stores a plain list column."""
    root = tmp_path_factory.mktemp("spark_shards")
    z = _spectrum(6000, 24, seed=0)
    return [_write(root / f"part-{i}.parquet", z[i * 1500 : (i + 1) * 1500], fixed=i < 3)
            for i in range(4)]  # fmt: skip


@pytest.fixture(scope="module")
def reference(shards: list[str]) -> CheckResult:
    return check_files(shards)


def _assert_same(got: CheckResult, want: CheckResult) -> None:
    g, w = got.measurement, want.measurement
    assert g.metrics.n == w.metrics.n
    assert g.metrics.d == w.metrics.d
    np.testing.assert_allclose(g.metrics.eigenvalues, w.metrics.eigenvalues, rtol=1e-10, atol=0)
    # M = C + mean mean^T: a float64 eigensolver fixes its eigenvalues only to about
    # 1e-16 of the largest one (1e6 for the collapsed corpus, whose others are 1e-8)
    top = w.metrics.uncentered_eigenvalues[0]
    np.testing.assert_allclose(g.metrics.uncentered_eigenvalues,
                               w.metrics.uncentered_eigenvalues, rtol=1e-10,
                               atol=1e-13 * top)  # fmt: skip
    assert g.metrics.relative_variance == pytest.approx(w.metrics.relative_variance, rel=1e-10)
    assert g.verdict == w.verdict


def test_shards_equal_single_process(spark: Any, shards: list[str],
                                     reference: CheckResult) -> None:  # fmt: skip
    df = spark.read.parquet(*shards)
    assert df.rdd.getNumPartitions() >= 2  # several partitions, each of several batches
    result = check_dataframe(df)  # the one array column ("id" is a long)
    _assert_same(result, reference)
    assert reference.measurement.metrics.eigenvalues[-1] > 0  # a full-rank, spread spectrum
    assert result.files == ["column emb"]

    # the CLI's call: Parquet paths and baseline paths, the session reused, not stopped
    got = check_parquet(shards[:2], "emb", baseline=shards[2:], spark=spark, sample_size=512)
    want = check_files(shards[:2], baseline=shards[2:], sample_size=512)
    _assert_same(got, want)
    assert got.files == shards[:2] and got.baseline_files == shards[2:]
    assert got.measurement.baseline is not None and want.measurement.baseline is not None
    for key in ("relative_variance", "effective_rank"):
        assert got.measurement.baseline.ratios[key] == pytest.approx(
            want.measurement.baseline.ratios[key], rel=1e-10
        )
    assert got.to_dict()["baseline"]["files"] == shards[2:]
    assert spark.range(3).count() == 3  # still running


def test_nearly_collapsed_corpus(spark: Any, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    c = rng.standard_normal(16)
    c *= 1e3 / np.linalg.norm(c)
    z = (c + 1e-4 * rng.standard_normal((4000, 16))).astype(np.float32)
    paths = [_write(tmp_path / f"c{i}.parquet", z[i * 2000 : (i + 1) * 2000]) for i in range(2)]
    want = check_files(paths)
    got = check_parquet(paths, spark=spark)
    _assert_same(got, want)
    assert got.measurement.verdict == "complete"

    # the comparison means something: float32 moments lose every eigenvalue here
    exact = want.measurement.metrics.eigenvalues
    m = z.mean(axis=0, dtype=np.float32)
    naive = np.linalg.eigvalsh((z.T @ z) / np.float32(len(z)) - np.outer(m, m))[::-1]
    assert np.max(np.abs(naive - exact) / exact) > 100


def test_errors_are_one_line_input_errors(spark: Any, tmp_path: Path) -> None:
    def fails(df: Any, *args: Any) -> str:
        with pytest.raises(InputError) as info:
            check_dataframe(df, *args)
        msg = str(info.value)
        assert "\n" not in msg and "Traceback" not in msg and "java" not in msg.lower()
        return msg

    ragged = spark.createDataFrame([(i, [1.0] * (3 if i == 7 else 4)) for i in range(20)],
                                   "id long, e array<double>")  # fmt: skip
    msg = fails(ragged)
    assert "ragged" in msg and "row 7 has 3 values; expected 4" in msg, msg
    assert msg.endswith("(rows counted from row 0 of Spark partition 0)"), msg
    halves = spark.createDataFrame([([1.0] * (4 if i < 10 else 3),) for i in range(20)],
                                   "e array<double>")  # fmt: skip
    assert halves.rdd.getNumPartitions() == 2
    msg = fails(halves)  # each partition is regular: the merge of their states finds it
    assert "some Spark partitions hold lists of 4 values, others of 3" in msg, msg
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "5")
    try:  # one partition, regular batches
        msg = fails(halves.coalesce(1))
    finally:
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(ROWS_PER_BATCH))
    assert "ragged column: row 10 of Spark partition 0 has 3 values; expected 4" in msg, msg
    nulls = spark.createDataFrame([([1.0, 2.0],), (None,)], "e array<double>")
    assert "null" in fails(nulls)
    nans = spark.createDataFrame([([1.0, float("nan")],), ([1.0, 2.0],)], "`e.v` array<double>")
    assert fails(nans, "e.v") == "column e.v: 1 row contain NaN or Inf"  # a dotted name too

    two = spark.createDataFrame([([1.0], [2.0], "x")], "a array<double>, b array<float>, s string")
    assert "'a', 'b'" in fails(two)
    assert "'s'" in fails(two, "nope")
    assert "string" in fails(two, "s")
    empty = spark.createDataFrame([], "e array<float>")
    assert fails(empty) == "column e: no rows"
    missing = str(tmp_path / "missing.parquet")
    with pytest.raises(InputError, match="missing.parquet: .*PATH_NOT_FOUND"):
        check_parquet([missing], spark=spark)


def test_without_pyspark_the_install_hint() -> None:
    code = ("import sys; sys.modules['pyspark'] = None\n"
            "from collapselab.integrations.spark import check_dataframe, check_parquet\n"
            "from collapselab.errors import ConfigError\n"
            "for call in (lambda: check_dataframe(None), lambda: check_parquet(['x'])):\n"
            "    try: call()\n"
            "    except ConfigError as e: print(e)\n")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)  # fmt: skip
    hint = 'Spark engine needs pyspark: pip install "collapselab[spark]"'
    assert out.stdout.splitlines() == [hint, hint], out.stderr


def test_python_worker_killed_mid_job(spark_local: Any, shards: list[str],
                                      reference: CheckResult, tmp_path: Path) -> None:  # fmt: skip
    """A Python worker dies (os._exit) in a stage upstream of the fold: with task retries
    (``local[2,3]``) Spark reruns the task and the result is the undisturbed one."""
    marker = str(tmp_path / "killed")

    def die_once(batches: Iterator[Any]) -> Iterator[Any]:
        for batch in batches:
            if not os.path.exists(marker):
                open(marker, "w").close()
                os._exit(1)
            yield batch

    retrying = _session("local[2,3]")
    try:
        df = retrying.read.parquet(*shards)
        result = check_dataframe(df.mapInArrow(die_once, df.schema))
    finally:
        retrying.stop()
    assert os.path.exists(marker)
    _assert_same(result, reference)


def test_check_parquet_builds_and_stops_its_session(shards: list[str],
                                                    reference: CheckResult) -> None:  # fmt: skip
    """The CLI's road: no session yet, so check_parquet builds one on ``master`` and
    stops it (last in the module: it restarts Spark)."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
    result = check_parquet(shards, master="local[1]")
    assert SparkSession.getActiveSession() is None
    _assert_same(result, reference)
    assert result.files == shards


def test_cli_engine_spark(shards: list[str], reference: CheckResult) -> None:
    """``collapselab check SHARDS --engine spark``: a fresh process, its own session, the
    same numbers as the single-process check, and no Spark chatter on stdout."""
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "collapselab", "check", *shards, "--engine", "spark",
         "--master", "local[1]", "--json"],
        capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout)  # stdout is the one JSON object
    want = reference.to_dict()
    assert got["verdict"] == want["verdict"] and got["n"] == want["n"]
    np.testing.assert_allclose(got["eigenvalues"], want["eigenvalues"], rtol=1e-10)
    assert "INFO" not in out.stderr and "Stage" not in out.stderr
