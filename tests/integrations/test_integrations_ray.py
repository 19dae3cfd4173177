"""Ray Data on a real local cluster: a sharded corpus checked as one matrix, exactly."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from collapselab.check import CheckResult, check_files
from collapselab.errors import InputError

ray = pytest.importorskip("ray")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from collapselab.integrations.ray_data import check_dataset, moments_aggregate  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    # one aggregation task per block (Ray coalesces up to 1 GiB per task by default): the
    # states of every block are then merged, as on a real corpus
    ctx.shuffle_input_batch_bytes = 0
    yield
    ray.shutdown()


def write_shards(folder: Path, x: np.ndarray, shards: int, fixed: bool = True) -> list[str]:
    """``x`` split over parquet shards (an id column and the embedding list column)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, part in enumerate(np.array_split(x, shards)):
        flat = pa.array(part.ravel())
        offsets = np.arange(len(part) + 1) * x.shape[1]
        emb = (pa.FixedSizeListArray.from_arrays(flat, x.shape[1]) if fixed
               else pa.ListArray.from_arrays(offsets, flat))  # fmt: skip
        path = folder / f"part-{i:03d}.parquet"
        pq.write_table(pa.table({"id": np.arange(len(part)), "emb": emb}), path,
                       row_group_size=700)  # fmt: skip
        paths.append(str(path))
    return paths


def assert_same(got: CheckResult, ref: CheckResult, unit_rtol: float = 1e-9) -> None:
    a, b = got.measurement.metrics, ref.measurement.metrics
    assert a.n == b.n and a.d == b.d
    ea, eb = np.asarray(a.eigenvalues), np.asarray(b.eigenvalues)
    np.testing.assert_allclose(ea, eb, rtol=1e-10, atol=1e-10 * eb.max())
    assert got.measurement.verdict == ref.measurement.verdict
    assert got.measurement.warning == ref.measurement.warning
    assert a.relative_variance == pytest.approx(b.relative_variance, rel=1e-10)
    # unit-row sums are kept around each state's own reference direction: at spreads below
    # 1e-5 of the norm (Moments' documented floor) merging them costs relative digits
    assert a.std_of_l2_normalized == pytest.approx(b.std_of_l2_normalized, rel=unit_rtol)


def spectrum_matrix(n: int = 6000, d: int = 24) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.normal(size=(n, d)) * np.geomspace(3, 0.01, d)).astype(np.float32)


def test_shards_equal_one_process_check(tmp_path: Path) -> None:
    x = spectrum_matrix()
    paths = write_shards(tmp_path / "a", x[:4000], 3) + write_shards(tmp_path / "b", x[4000:], 2,
                                                                      fixed=False)  # fmt: skip
    ds = ray.data.read_parquet(paths).repartition(5).materialize()
    assert ds.num_blocks() == 5  # one state per block, merged
    got = check_dataset(ds)  # the only list column: "emb"
    ref = check_files(paths)
    assert_same(got, ref)
    assert got.measurement.metrics.n == 6000 and got.files == ["dataset:emb"]
    # the same state from a user's own pipeline: ds.aggregate(moments_aggregate(...))
    from collapselab.metrics import Moments

    agg = moments_aggregate("emb")
    state = Moments.from_bytes(ray.data.read_parquet(paths).aggregate(agg)[agg.name], d=24)
    direct = Moments(24)
    direct.update(x.astype(np.float64))
    np.testing.assert_allclose(state.scatter, direct.scatter, rtol=1e-10, atol=1e-12)


def test_nearly_collapsed_corpus_is_exact_where_float32_sums_fail(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    c = rng.normal(size=16) * 300.0  # |c| ~ 1e3
    x = (c + 1e-3 * rng.normal(size=(8000, 16)) * np.linspace(1, 0.2, 16)).astype(np.float32)
    paths = write_shards(tmp_path, x, 4)
    got = check_dataset(ray.data.read_parquet(paths), "emb")
    ref = check_files(paths)
    assert ref.measurement.metrics.std_of_l2_normalized < 1e-5
    assert_same(got, ref, unit_rtol=1e-4)
    assert got.measurement.verdict == "complete"
    # what a float32 uncentred accumulation of the same rows gives: eigenvalues far off
    x32 = x.astype(np.float32)
    naive = (x32.T @ x32) / len(x32) - np.outer(x32.mean(0), x32.mean(0))
    exact = np.asarray(ref.measurement.metrics.eigenvalues)
    ev = np.sort(np.linalg.eigvalsh(naive.astype(np.float64)))[::-1]
    assert np.abs(ev - exact).max() > 100 * exact.max()


def test_a_killed_worker_is_retried_with_the_identical_result(tmp_path: Path) -> None:
    x = spectrum_matrix(3000, 12)
    paths = write_shards(tmp_path / "s", x, 3)
    marker = tmp_path / "killed"

    def die_once(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not marker.exists():
            marker.touch()
            os._exit(1)  # the worker process dies mid-job; Ray retries the task
        return batch

    ds = ray.data.read_parquet(paths).map_batches(die_once, batch_format="pyarrow")
    got = check_dataset(ds, "emb")
    assert marker.exists()  # the kill did happen
    ref = check_dataset(ray.data.read_parquet(paths), "emb")
    assert_same(got, ref)
    assert_same(got, check_files(paths))


def test_baseline_dataset_gives_the_relative_verdict(tmp_path: Path) -> None:
    x = spectrum_matrix(3000, 12)
    rng = np.random.default_rng(2)
    shrunk = (x.mean(0) + 0.05 * (x - x.mean(0)) + 1.0).astype(np.float32)
    base = write_shards(tmp_path / "base", x + 1.0, 2)
    now = write_shards(tmp_path / "now", shrunk + 1e-6 * rng.normal(size=x.shape), 2)
    got = check_dataset(ray.data.read_parquet(now), "emb", baseline=ray.data.read_parquet(base))
    ref = check_files(now, baseline=base)
    assert_same(got, ref)
    assert got.measurement.baseline is not None
    assert got.measurement.baseline.verdict == ref.measurement.baseline.verdict


def test_errors_are_one_line_and_name_the_problem(tmp_path: Path) -> None:
    ragged = pa.array([[1.0, 2.0, 3.0]] * 5 + [[1.0, 2.0]], type=pa.list_(pa.float32()))
    pq.write_table(pa.table({"emb": ragged}), tmp_path / "ragged.parquet")
    with pytest.raises(InputError, match=r"ragged .*row 5 has 2 values; expected 3") as e:
        check_dataset(ray.data.read_parquet(str(tmp_path / "ragged.parquet")), "emb")
    assert "\n" not in str(e.value)
    x = spectrum_matrix(100, 4)
    x[7] = np.nan
    paths = write_shards(tmp_path / "nan", x, 2)
    with pytest.raises(InputError, match="1 row contain NaN or Inf"):
        check_dataset(ray.data.read_parquet(paths), "emb")
    with pytest.raises(InputError, match="no column named 'vec'"):
        check_dataset(ray.data.read_parquet(paths), "vec")
    two = pa.table({"a": ragged, "b": ragged})
    with pytest.raises(InputError, match=r"2 embedding \(list\) columns"):
        check_dataset(ray.data.from_arrow(two))


def test_cli_engine_ray(tmp_path: Path) -> None:
    import json

    paths = write_shards(tmp_path, spectrum_matrix(2000, 8), 2)
    code = ("import sys; from collapselab.cli import main; "
            "sys.exit(main(sys.argv[1:]))")  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-c", code, "check", str(tmp_path / "*.parquet"), "--engine", "ray",
         "--json"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    ref = check_files(paths).to_dict()
    assert got["verdict"] == ref["verdict"] and got["n"] == 2000
    assert got["effective_rank"] == pytest.approx(ref["effective_rank"], rel=1e-10)
    np.testing.assert_allclose(got["eigenvalues"], ref["eigenvalues"], rtol=1e-10)


def test_without_ray_the_error_names_the_extra() -> None:
    code = ("import sys; sys.modules['ray'] = None\n"
            "from collapselab.integrations.ray_data import check_parquet\n"
            "try:\n    check_parquet(['x.parquet'])\nexcept Exception as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == 'Ray engine needs Ray Data: pip install "collapselab[ray]"'
