"""Every format round-trips exactly: what a writer stored is what the chunks hold.

Exactness is the right tolerance here: every conversion the readers do (float16 /
bfloat16 -> float32, integers -> float64, decimal text -> float64) is the same cast the
reference ``astype`` performs, so any difference is a bug.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from collapselab.io import load_embeddings, open_embeddings

FLOATS = ["float16", "float32", "float64"]
INTS = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]


def sample(dtype: str, shape: tuple[int, int] = (37, 5), seed: int = 0) -> np.ndarray:
    """Random data that uses the dtype's range (ints: extremes included)."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return (rng.standard_normal(shape) * 10).astype(dt)
    if dt.kind == "b":
        return rng.random(shape) < 0.5
    info = np.iinfo(dt)
    z = rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)
    z[0, 0], z[1, 0] = info.min, info.max
    return z


def expected_out(dtype: str) -> np.dtype:
    small = dtype in ("float16", "float32", "bfloat16", "bool")
    return np.dtype(np.float32 if small else np.float64)


def check_roundtrip(spec: str, z: np.ndarray, dtype: str) -> None:
    src = open_embeddings(spec)
    assert (src.n, src.d, src.dtype) == (*z.shape, dtype)
    got = src.read()
    assert got.dtype == expected_out(dtype)
    np.testing.assert_array_equal(got, z.astype(expected_out(dtype)))
    chunks = [c.copy() for c in src.chunks(rows=8)]
    assert all(c.flags.c_contiguous and c.ndim == 2 for c in chunks)
    np.testing.assert_array_equal(np.concatenate(chunks), got)


# --- .npy ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [*FLOATS, *INTS, "bool"])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("endian", ["<", ">"])
def test_npy_every_dtype_order_and_byte_order(
    tmp_path: Path, dtype: str, order: str, endian: str
) -> None:
    z = sample(dtype)
    stored = np.array(z, dtype=z.dtype.newbyteorder(endian), order=order)
    assert stored.flags.f_contiguous == (order == "F")
    np.save(tmp_path / "z.npy", stored)
    check_roundtrip(str(tmp_path / "z.npy"), z, dtype)


def test_npy_format_version_2(tmp_path: Path) -> None:
    z = sample("float32")
    with open(tmp_path / "v2.npy", "wb") as f:
        np.lib.format.write_array(f, z, version=(2, 0))
    check_roundtrip(str(tmp_path / "v2.npy"), z, "float32")


def test_npy_native_float_chunks_are_views_of_one_reused_buffer(tmp_path: Path) -> None:
    # The documented contract: a chunk is valid until the next iteration only.
    z = sample("float32", (40, 3))
    np.save(tmp_path / "z.npy", z)
    it = open_embeddings(tmp_path / "z.npy").chunks(rows=16)
    first = next(it)
    first_copy = first.copy()
    second = next(it)
    assert np.shares_memory(first, second)
    np.testing.assert_array_equal(first_copy, z[:16])
    np.testing.assert_array_equal(second, z[16:32])


@pytest.mark.parametrize(
    ("suffix", "dtype"), [(".npy", "float32"), (".npy", "float16"), (".csv", "float64")]
)
def test_two_buffers_keep_the_previous_chunk_valid(tmp_path: Path, suffix: str, dtype: str) -> None:
    # buffers=2: chunk i is untouched while chunk i + 1 is read, and the reader cycles
    # through two buffers (chunk i + 2 reuses chunk i's memory: bounded, no allocation)
    z = sample(dtype, (70, 3))
    path = tmp_path / f"z{suffix}"
    if suffix == ".npy":
        np.save(path, z)
    else:
        np.savetxt(path, z, delimiter=",", fmt="%.17g")
    expect = z.astype(np.float32 if dtype != "float64" else np.float64)
    chunks = list(open_embeddings(path).chunks(rows=16, buffers=2))
    for i, c in enumerate(chunks[:-2]):
        assert np.shares_memory(c, chunks[i + 2])
    for i, c in enumerate(chunks[-2:], start=len(chunks) - 2):
        np.testing.assert_array_equal(c, expect[16 * i : 16 * (i + 1)])
    it = open_embeddings(path).chunks(rows=16, buffers=2)
    first = next(it)
    second = next(it)
    np.testing.assert_array_equal(first, expect[:16])
    np.testing.assert_array_equal(second, expect[16:32])
    assert not np.shares_memory(first, second)


def test_buffers_must_be_a_positive_integer(tmp_path: Path) -> None:
    from collapselab.errors import ConfigError

    np.save(tmp_path / "z.npy", sample("float32", (8, 2)))
    with pytest.raises(ConfigError, match="z.npy: buffers must be a positive integer, got 0"):
        open_embeddings(tmp_path / "z.npy").chunks(buffers=0)


# --- .npz ------------------------------------------------------------------------------


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("dtype", ["float16", "float64", "int32", "uint8"])
def test_npz_members_by_key(tmp_path: Path, compressed: bool, dtype: str) -> None:
    z, other = sample(dtype), sample("float32", (4, 2), seed=1)
    save = np.savez_compressed if compressed else np.savez
    save(tmp_path / "e.npz", train=z, test=other)
    check_roundtrip(f"{tmp_path / 'e.npz'}:train", z, dtype)
    check_roundtrip(f"{tmp_path / 'e.npz'}:test", other, "float32")


def test_npz_single_array_needs_no_key_and_fortran_member_reads(tmp_path: Path) -> None:
    z = sample("float32")
    np.savez(tmp_path / "f.npz", emb=np.asfortranarray(z.astype(">f4")))
    src = open_embeddings(tmp_path / "f.npz")
    assert src.name == f"{tmp_path / 'f.npz'}:emb"
    check_roundtrip(str(tmp_path / "f.npz"), z, "float32")


# --- .safetensors ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [*FLOATS, *INTS, "bool"])
def test_safetensors_numpy_dtypes(tmp_path: Path, dtype: str) -> None:
    from safetensors.numpy import save_file

    z = sample(dtype)
    save_file({"emb": z, "bias": np.zeros(3, np.float32)}, str(tmp_path / "e.safetensors"))
    check_roundtrip(f"{tmp_path / 'e.safetensors'}:emb", z, dtype)


def test_safetensors_bfloat16_decodes_like_torch(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    t = torch.randn(37, 5, dtype=torch.float32).mul(100).to(torch.bfloat16)
    t[0, :3] = torch.tensor([float("inf"), -0.0, 1e-40])  # inf, signed zero, subnormal
    save_file({"emb": t}, str(tmp_path / "b.safetensors"))
    z = t.float().numpy()  # torch's own bf16 -> float32 widening is the reference
    check_roundtrip(str(tmp_path / "b.safetensors"), z, "bfloat16")
    got = load_embeddings(str(tmp_path / "b.safetensors"))
    assert np.signbit(got[0, 1]) and got[0, 2] == np.float32(t[0, 2].item())


# --- .pt / .pth ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tdtype", [torch.bfloat16, torch.float16, torch.float32, torch.float64, torch.int64]
)
def test_pt_tensor_and_dict_of_tensors(tmp_path: Path, tdtype: torch.dtype) -> None:
    t = (torch.randn(37, 5) * 100).to(tdtype)
    name = str(tdtype).removeprefix("torch.")
    z = t.float().numpy() if tdtype == torch.bfloat16 else t.numpy()
    torch.save(t, tmp_path / "t.pt")
    check_roundtrip(str(tmp_path / "t.pt"), z, name)
    torch.save({"emb": t, "labels": torch.arange(37), "step": 10}, tmp_path / "d.pth")
    check_roundtrip(f"{tmp_path / 'd.pth'}:emb", z, name)


def test_pt_legacy_format_and_non_contiguous_tensor(tmp_path: Path) -> None:
    t = torch.randn(5, 37).T  # (37, 5), not contiguous
    torch.save(t, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    check_roundtrip(str(tmp_path / "old.pt"), t.numpy(), "float32")


# --- .csv / .tsv -----------------------------------------------------------------------


def test_csv_with_header_and_tsv_without(tmp_path: Path) -> None:
    z = sample("float64")
    header = ",".join(f"f{j}" for j in range(5))
    np.savetxt(tmp_path / "h.csv", z, delimiter=",", fmt="%.17g", header=header, comments="")
    check_roundtrip(str(tmp_path / "h.csv"), z, "float64")
    np.savetxt(tmp_path / "t.tsv", z, delimiter="\t", fmt="%.17g")
    check_roundtrip(str(tmp_path / "t.tsv"), z, "float64")


def test_csv_pandas_header_blank_lines_spaces_and_nan(tmp_path: Path) -> None:
    lines = ["0,1,2", "", "1.5, -2,3e2", "  ", "nan,inf,-0.25", ""]
    (tmp_path / "p.csv").write_text("\n".join(lines), encoding="utf-8")
    got = load_embeddings(str(tmp_path / "p.csv"))
    want = np.array([[1.5, -2.0, 300.0], [np.nan, np.inf, -0.25]])
    np.testing.assert_array_equal(got, want)


def test_csv_integers_first_row_is_data_not_header(tmp_path: Path) -> None:
    (tmp_path / "i.csv").write_text("3,1,2\n0,1,2\n", encoding="utf-8")
    np.testing.assert_array_equal(
        load_embeddings(str(tmp_path / "i.csv")), [[3.0, 1.0, 2.0], [0.0, 1.0, 2.0]]
    )


# --- .parquet --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["list", "large_list", "fixed_size_list"])
@pytest.mark.parametrize("dtype", ["float16", "float32", "int64"])
def test_parquet_list_columns(tmp_path: Path, kind: str, dtype: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    z = sample(dtype)
    values = pa.array(z.ravel())
    if kind == "fixed_size_list":
        col = pa.FixedSizeListArray.from_arrays(values, 5)
    else:
        cls = pa.ListArray if kind == "list" else pa.LargeListArray
        col = cls.from_arrays(pa.array(np.arange(0, z.size + 1, 5, dtype=np.int32)), values)
    table = pa.table({"id": pa.array(np.arange(37)), "emb": col})
    pq.write_table(table, tmp_path / "e.parquet", row_group_size=10)
    check_roundtrip(str(tmp_path / "e.parquet"), z, dtype)  # the only list column
    check_roundtrip(f"{tmp_path / 'e.parquet'}:emb", z, dtype)


def test_parquet_numeric_columns_skip_strings_and_promote(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    a, b = sample("int32", (37, 1)).ravel(), sample("float32", (37, 1), seed=2).ravel()
    table = pa.table({"name": [str(i) for i in range(37)], "a": a, "b": b})
    pq.write_table(table, tmp_path / "cols.parquet", row_group_size=8)
    z = np.stack([a.astype(np.float64), b.astype(np.float64)], axis=1)
    check_roundtrip(str(tmp_path / "cols.parquet"), z, "float64")


def test_parquet_two_list_columns_by_key(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    z1, z2 = sample("float32"), sample("float32", seed=3)
    table = pa.table(
        {
            "q": pa.FixedSizeListArray.from_arrays(pa.array(z1.ravel()), 5),
            "p": pa.FixedSizeListArray.from_arrays(pa.array(z2.ravel()), 5),
        }
    )
    pq.write_table(table, tmp_path / "two.parquet")
    check_roundtrip(f"{tmp_path / 'two.parquet'}:p", z2, "float32")
    check_roundtrip(f"{tmp_path / 'two.parquet'}:q", z1, "float32")


@pytest.mark.parametrize("rows", [1, 7, 3000, 20000])
def test_npy_fortran_blocks_larger_than_a_chunk(tmp_path: Path, rows: int) -> None:
    # Fortran files are read in blocks of >= 4096 rows and re-cut into `rows`-row chunks.
    z = sample("float64", (10_000, 3))
    np.save(tmp_path / "f.npy", np.asfortranarray(z))
    src = open_embeddings(tmp_path / "f.npy")
    chunks = [c.copy() for c in src.chunks(rows=rows, start=13, stop=9_990)]
    assert all(len(c) == rows for c in chunks[:-1]) and 0 < len(chunks[-1]) <= rows
    np.testing.assert_array_equal(np.concatenate(chunks), z[13:9_990])
