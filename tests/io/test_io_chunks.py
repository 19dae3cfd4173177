"""Chunking contract, row ranges, spec parsing and glob expansion."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from io_writers import WRITERS, Writer

from collapselab.errors import ConfigError, InputError
from collapselab.io import (
    CHUNK_BYTES,
    EmbeddingSource,
    default_chunk_rows,
    iter_sources,
    open_embeddings,
    parse_spec,
)
from collapselab.io.api import SUPPORTED

N, D = 53, 4  # 53 is prime: most chunk sizes leave a short last chunk


def matrix(n: int = N, d: int = D, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def collect(src: EmbeddingSource, rows: int, start: int = 0, stop: int | None = None) -> list:
    return [c.copy() for c in src.chunks(rows=rows, start=start, stop=stop)]


@pytest.mark.parametrize("rows", [1, 7, 53, 100])
def test_chunks_cover_every_row_exactly_once_in_every_format(
    tmp_path: Path, writer: Writer, rows: int
) -> None:
    z = matrix()
    src = open_embeddings(writer(tmp_path / "z", z))
    chunks = collect(src, rows)
    sizes = [len(c) for c in chunks]
    assert sizes == [rows] * (N // rows) + ([N % rows] if N % rows else [])
    assert all(c.shape[1] == D and c.dtype == src.out_dtype for c in chunks)
    np.testing.assert_array_equal(np.concatenate(chunks), z.astype(src.out_dtype))


def test_chunks_when_rows_divide_n(tmp_path: Path, writer: Writer) -> None:
    z = matrix(n=48)
    src = open_embeddings(writer(tmp_path / "z", z))
    chunks = collect(src, 12)
    assert [len(c) for c in chunks] == [12, 12, 12, 12]
    np.testing.assert_array_equal(np.concatenate(chunks), z.astype(src.out_dtype))


@pytest.mark.parametrize(("start", "stop"), [(0, 53), (5, 40), (17, 18), (52, 53), (30, 30)])
def test_row_ranges_in_every_format(tmp_path: Path, writer: Writer, start: int, stop: int) -> None:
    z = matrix()
    src = open_embeddings(writer(tmp_path / "z", z))
    chunks = collect(src, 6, start, stop)
    got = np.concatenate(chunks) if chunks else np.empty((0, D), src.out_dtype)
    np.testing.assert_array_equal(got, z[start:stop].astype(src.out_dtype))
    np.testing.assert_array_equal(src.read(start, stop), z[start:stop].astype(src.out_dtype))


def test_shards_by_row_range_reassemble_the_matrix(tmp_path: Path) -> None:
    # What each rank of a torchrun job does: rows [r*n/W, (r+1)*n/W).
    z = matrix()
    src = open_embeddings(WRITERS["npy"](tmp_path / "z", z))
    world = 4
    bounds = [src.n * r // world for r in range(world + 1)]
    parts = [src.read(bounds[r], bounds[r + 1]) for r in range(world)]
    np.testing.assert_array_equal(np.concatenate(parts), z)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, EmbeddingSource]:
    tmp = tmp_path_factory.mktemp("prop")
    return {name: open_embeddings(w(tmp / "z", matrix())) for name, w in WRITERS.items()}


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_property_any_rows_and_range(
    sources: dict[str, EmbeddingSource], data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(sorted(sources)))
    start = data.draw(st.integers(0, N))
    stop = data.draw(st.integers(start, N))
    rows = data.draw(st.integers(1, N + 3))
    src = sources[name]
    chunks = collect(src, rows, start, stop)
    assert all(0 < len(c) <= rows for c in chunks)
    assert all(len(c) == rows for c in chunks[:-1])
    got = np.concatenate(chunks) if chunks else np.empty((0, D), src.out_dtype)
    np.testing.assert_array_equal(got, matrix()[start:stop].astype(src.out_dtype))


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"rows": 0}, "chunk rows must be a positive integer, got 0"),
        ({"rows": 2.5}, "chunk rows must be a positive integer, got 2.5"),
        ({"rows": 4, "start": 10, "stop": 5}, "row range 10:5 is outside 0:53"),
        ({"rows": 4, "start": 0, "stop": 54}, "row range 0:54 is outside 0:53"),
        ({"rows": 4, "start": -1}, "row range -1:53 is outside 0:53"),
    ],
)
def test_bad_chunk_arguments(tmp_path: Path, kwargs: dict, problem: str) -> None:
    src = open_embeddings(WRITERS["npy"](tmp_path / "z", matrix()))
    with pytest.raises(ConfigError) as e:
        src.chunks(**kwargs)  # raised at the call, before iterating
    assert str(e.value) == f"{src.name}: {problem}"


def test_default_rows_one_chunk_size_for_readers_and_check(tmp_path: Path) -> None:
    """One chunk-size default (io.CHUNK_BYTES, 128 MiB): readers and check use it."""
    from collapselab import check

    assert CHUNK_BYTES == 128 * 2**20
    assert check.default_chunk_rows is default_chunk_rows
    np.save(tmp_path / "wide.npy", np.zeros((3, 200_000), np.float32))
    src = open_embeddings(tmp_path / "wide.npy")
    assert src.default_rows() == CHUNK_BYTES // (200_000 * 4) == 167  # float32 chunks
    np.save(tmp_path / "wide64.npy", np.zeros((3, 200_000), np.float64))
    assert open_embeddings(tmp_path / "wide64.npy").default_rows() == 83  # float64 chunks
    assert default_chunk_rows(384) == 87381  # the size check's timings were measured at
    assert default_chunk_rows(2**40) == 1  # always at least one row


@pytest.mark.parametrize(
    ("spec", "path", "key"),
    [
        ("emb.npy", "emb.npy", None),
        ("emb.npz:train", "emb.npz", "train"),
        ("dir.v2/emb.SAFETENSORS:a:b", "dir.v2/emb.SAFETENSORS", "a:b"),
        ("C:\\data\\emb.pt:model.emb", "C:\\data\\emb.pt", "model.emb"),
        ("x:y/emb.parquet:vec", "x:y/emb.parquet", "vec"),
        ("notes.txt:key", "notes.txt:key", None),  # no supported extension before ':'
    ],
)
def test_parse_spec(spec: str, path: str, key: str | None) -> None:
    assert parse_spec(spec) == (Path(path), key)


def test_parse_spec_takes_pathlike_literally_and_rejects_empty_key() -> None:
    assert parse_spec(Path("a.npz:k")) == (Path("a.npz:k"), None)
    with pytest.raises(InputError, match=r"^emb\.npz: empty KEY in 'emb\.npz:'"):
        parse_spec("emb.npz:")
    assert SUPPORTED == (".csv", ".faiss", ".index", ".lance", ".npy", ".npz", ".parquet", ".pt",
                         ".pth", ".safetensors", ".sqlite3", ".tsv")


def test_iter_sources_expands_globs_sorted_and_keeps_keys(tmp_path: Path) -> None:
    for i in (2, 0, 1):
        np.savez(tmp_path / f"shard-{i}.npz", emb=matrix(seed=i), other=np.zeros((2, 2)))
    np.save(tmp_path / "extra.npy", matrix(seed=9))
    srcs = iter_sources([f"{tmp_path}/shard-*.npz:emb", str(tmp_path / "extra.npy")])
    assert [s.name for s in srcs] == [
        *(f"{tmp_path}/shard-{i}.npz:emb" for i in range(3)),
        str(tmp_path / "extra.npy"),
    ]
    for i, s in enumerate(srcs[:3]):
        np.testing.assert_array_equal(s.read(), matrix(seed=i))


def test_iter_sources_glob_matching_nothing(tmp_path: Path) -> None:
    with pytest.raises(InputError) as e:
        iter_sources([f"{tmp_path}/shard-*.npy"])
    assert str(e.value) == f"{tmp_path}/shard-*.npy: no files match this pattern"


@pytest.mark.parametrize("dtype", ["<f4", ">f4", "<f2", "<f8"])
@pytest.mark.parametrize("buffers", [1, 2])
def test_direct_io_reads_the_same_rows_as_the_buffered_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dtype: str, buffers: int
) -> None:
    """O_DIRECT reads (4 KiB-aligned, rounded out; the chunk a view at its offset in the
    buffer) give exactly the buffered path's rows, for row ranges and chunk sizes whose
    byte ranges start and end off the 4 KiB grid, and fail on a file cut short."""
    import collapselab.io.raw as raw

    z = np.random.default_rng(3).standard_normal((3001, 37)).astype(dtype)
    path = tmp_path / "z.npy"
    np.save(path, z)  # 128-byte header: no row starts on the 4 KiB grid by accident
    calls = []
    real = raw.RawSource._direct_rows

    def spy(self: raw.RawSource, *a: object) -> object:
        calls.append(a)
        return real(self, *a)

    monkeypatch.setattr(raw.RawSource, "_direct_rows", spy)
    for rows, start, stop in [(997, 0, 3001), (64, 5, 2999), (3001, 0, 3001), (1, 3000, 3001)]:
        monkeypatch.setenv("COLLAPSELAB_DIRECT_IO", "0")
        want = [c.copy() for c in open_embeddings(path).chunks(rows, start, stop, buffers)]
        monkeypatch.setenv("COLLAPSELAB_DIRECT_IO", "1")
        before = len(calls)
        got = [c.copy() for c in open_embeddings(path).chunks(rows, start, stop, buffers)]
        assert len(calls) == before + 1  # the direct path did read
        assert [len(c) for c in got] == [len(c) for c in want]
        np.testing.assert_array_equal(np.concatenate(got), np.concatenate(want))
        np.testing.assert_array_equal(np.concatenate(got), z[start:stop].astype(got[0].dtype))
    src = open_embeddings(path)  # header and size checked at open; then the file shrinks
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 5000)
    with pytest.raises(InputError, match=r"truncated: file ended while reading rows"):
        list(src.chunks(1000))


def test_direct_io_is_the_default_for_cold_or_larger_than_memory_files_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from collapselab.io import raw
    from collapselab.io.raw import cached_fraction, use_direct_io

    path = tmp_path / "z.npy"
    np.save(path, matrix())
    monkeypatch.delenv("COLLAPSELAB_DIRECT_IO", raising=False)
    assert not use_direct_io(path)  # small: the page cache serves a second read
    # From _COLD_MIN_BYTES on, the probe decides: cold goes direct, cached or unknown not.
    monkeypatch.setattr(raw, "_COLD_MIN_BYTES", 0)
    fd = os.open(path, os.O_RDONLY)
    try:  # written back, then dropped: the kernel holds none of its pages
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    assert cached_fraction(path) == 0.0
    # probing fetches nothing: the next check of the same cold file is still direct
    assert use_direct_io(path) and use_direct_io(path)
    assert cached_fraction(path) == 0.0
    path.read_bytes()
    assert cached_fraction(path) == 1.0  # the kernel's answer for a cached file
    assert not use_direct_io(path)
    for frac, direct in ((0.0, True), (0.4375, True), (0.5, False), (1.0, False), (None, False)):
        monkeypatch.setattr(raw, "cached_fraction", lambda p, f=frac: f)
        assert use_direct_io(path) is direct, frac
    monkeypatch.setattr(raw, "cached_fraction", lambda p: 0.0)
    monkeypatch.setenv("COLLAPSELAB_DIRECT_IO", "1")
    assert use_direct_io(path)
    monkeypatch.setenv("COLLAPSELAB_DIRECT_IO", "off")
    assert not use_direct_io(path)


def test_shards_read_in_one_pass_are_sized_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many small shards that together exceed the cache go direct like one big file."""
    from collapselab.io.raw import RawSource, use_direct_io

    for i in range(3):
        np.save(tmp_path / f"s{i}.npy", matrix(seed=i))
    sources = iter_sources([str(tmp_path / "s*.npy")])
    sizes = sum((tmp_path / f"s{i}.npy").stat().st_size for i in range(3))
    assert all(isinstance(s, RawSource) and s.group_bytes == sizes for s in sources)
    monkeypatch.delenv("COLLAPSELAB_DIRECT_IO", raising=False)
    assert use_direct_io(tmp_path / "s0.npy", group_bytes=2**62)
    assert not use_direct_io(tmp_path / "s0.npy", group_bytes=sizes)


@pytest.mark.parametrize(
    ("fmt", "direct"), [(f, "0") for f in WRITERS] + [("npy", "1")]
)
def test_prefetched_chunks_are_intact_when_consumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str, direct: str
) -> None:
    """check reads up to _AHEAD chunks ahead into a ring of _AHEAD + 1 buffers: a chunk
    must still hold its own rows when a slow consumer gets to it (a ring one buffer too
    small would have overwritten it). Readers that fill the ring themselves (raw files
    read direct, Parquet) and the generic copying ring are all held to it."""
    import time

    from collapselab.check import _AHEAD, _prefetched

    z = matrix(n=1000, d=16)
    monkeypatch.setenv("COLLAPSELAB_DIRECT_IO", direct)
    (src,) = iter_sources([WRITERS[fmt](tmp_path / "z", z)])
    got = []
    for chunk in _prefetched(src.chunks(64, buffers=_AHEAD + 1)):
        time.sleep(0.01)  # the reader runs ahead meanwhile
        got.append(chunk.copy())
    np.testing.assert_array_equal(np.concatenate(got), z)
