"""Every bad input raises InputError with one line: ``"<name>: <problem>"``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from collapselab.errors import DegenerateInputError, InputError
from collapselab.io import open_embeddings


def error(spec: Any, kind: type[InputError] = InputError) -> str:
    """The message ``open_embeddings(spec)`` fails with (one line, checked)."""
    with pytest.raises(kind) as e:
        open_embeddings(spec)
    message = str(e.value)
    assert "\n" not in message
    return message


class Touch:
    """Unpickling this creates a marker file: proof of whether anything was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


# --- the file itself -------------------------------------------------------------------


def test_missing_file_directory_and_unknown_extension(tmp_path: Path) -> None:
    assert error(tmp_path / "nope.npy") == f"{tmp_path / 'nope.npy'}: no such file"
    (tmp_path / "d.npy").mkdir()
    assert error(tmp_path / "d.npy") == f"{tmp_path / 'd.npy'}: is a directory, not a file"
    (tmp_path / "e.h5").write_bytes(b"x")
    assert error(tmp_path / "e.h5") == (
        f"{tmp_path / 'e.h5'}: unsupported file type '.h5'; supported: .csv, .faiss, "
        ".index, .lance, .npy, .npz, .parquet, .pt, .pth, .safetensors, .sqlite3, .tsv"
    )
    (tmp_path / "noext").write_bytes(b"x")
    assert "unsupported file without an extension; supported: .csv" in error(tmp_path / "noext")


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # chmod 0 does not stop root (which runs CI here), so make open() refuse instead.
    import collapselab.io.raw

    def refuse(path: Any, *args: Any, **kwargs: Any) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    np.save(tmp_path / "z.npy", np.zeros((3, 2)))
    monkeypatch.setattr(collapselab.io.raw, "open", refuse, raising=False)
    assert error(tmp_path / "z.npy") == f"{tmp_path / 'z.npy'}: cannot read (Permission denied)"


def test_key_on_single_array_format(tmp_path: Path) -> None:
    np.save(tmp_path / "z.npy", np.zeros((3, 2)))
    assert error(f"{tmp_path}/z.npy:emb") == (
        f"{tmp_path}/z.npy: a .npy file holds a single array; drop ':emb'"
    )


def test_empty_key(tmp_path: Path) -> None:
    np.savez(tmp_path / "e.npz", a=np.zeros((3, 2)))
    assert error(f"{tmp_path}/e.npz:") == (
        f"{tmp_path}/e.npz: empty KEY in '{tmp_path}/e.npz:'; write {tmp_path}/e.npz:KEY "
        f"or just {tmp_path}/e.npz"
    )


# --- shape and dtype (npy) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "problem"),
    [
        ((512,), "1-D array of shape (512,); expected (N, d)"),
        ((), "0-D array of shape (); expected (N, d)"),
        ((4, 3, 2), "3-D array of shape (4, 3, 2); expected (N, d)"),
        ((5, 0), "0 columns (shape (5, 0)); expected d >= 1"),
    ],
)
def test_npy_bad_shapes(tmp_path: Path, shape: tuple, problem: str) -> None:
    np.save(tmp_path / "emb.npy", np.zeros(shape, np.float32))
    assert error(tmp_path / "emb.npy") == f"{tmp_path / 'emb.npy'}: {problem}"


@pytest.mark.parametrize(("n", "rows"), [(1, "1 row"), (0, "0 rows")])
def test_fewer_than_two_rows_is_degenerate(tmp_path: Path, n: int, rows: str) -> None:
    np.save(tmp_path / "emb.npy", np.zeros((n, 3)))
    assert error(tmp_path / "emb.npy", DegenerateInputError) == (
        f"{tmp_path / 'emb.npy'}: {rows} (shape ({n}, 3)); need at least 2 rows to measure a spread"
    )


@pytest.mark.parametrize(
    ("array", "problem"),
    [
        (np.zeros((3, 2), "U3"), "string dtype <U3; expected a numeric array"),
        (np.zeros((3, 2), "S3"), "string dtype |S3; expected a numeric array"),
        (
            np.zeros((3, 2), [("a", "<f4"), ("b", "<i4")]),
            "structured (record) dtype [('a', '<f4'), ('b', '<i4')]; expected a numeric array",
        ),
        (np.zeros((3, 2), np.complex64), "complex dtype complex64; expected real numbers"),
        (
            np.zeros((3, 2), "datetime64[s]"),
            "non-numeric dtype datetime64[s]; expected a numeric array",
        ),
    ],
)
def test_npy_non_numeric_dtypes(tmp_path: Path, array: np.ndarray, problem: str) -> None:
    np.save(tmp_path / "emb.npy", array)
    assert error(tmp_path / "emb.npy") == f"{tmp_path / 'emb.npy'}: {problem}"


def test_object_arrays_are_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    objects = np.empty((3, 2), dtype=object)
    objects[:] = Touch(marker)
    np.save(tmp_path / "o.npy", objects, allow_pickle=True)
    np.savez(tmp_path / "o.npz", emb=objects)
    problem = "object array; collapselab never unpickles user data"
    assert error(tmp_path / "o.npy") == f"{tmp_path / 'o.npy'}: {problem}"
    assert error(tmp_path / "o.npz") == f"{tmp_path / 'o.npz'}:emb: {problem}"
    assert not marker.exists()


def test_truncated_npy_detected_up_front(tmp_path: Path) -> None:
    np.save(tmp_path / "t.npy", np.zeros((100, 8), np.float32))
    data = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(data[:-10])
    assert error(tmp_path / "t.npy") == (
        f"{tmp_path / 't.npy'}: truncated: header says shape (100, 8) float32 "
        "(3200 bytes of data) but only 3190 bytes follow the header"
    )


def test_file_shrinking_while_streaming(tmp_path: Path) -> None:
    np.save(tmp_path / "t.npy", np.zeros((100, 8), np.float32))
    src = open_embeddings(tmp_path / "t.npy")
    os.truncate(tmp_path / "t.npy", 128 + 60 * 32)  # header + 60 rows
    with pytest.raises(InputError) as e:
        for _ in src.chunks(rows=25):
            pass
    assert str(e.value) == (
        f"{tmp_path / 't.npy'}: truncated: file ended while reading rows 50:75 "
        "(was it modified while being read?)"
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "not a valid .npy file (EOF: reading magic string, expected 8 bytes got 0)"),
        (b"hello world, this is not numpy", "not a valid .npy file (the magic string is not"),
        (b"\x93NUMPY\x03\x00" + b"\x00" * 40, ".npy format version 3.0 is not supported"),
    ],
)
def test_corrupt_npy(tmp_path: Path, content: bytes, problem: str) -> None:
    (tmp_path / "c.npy").write_bytes(content)
    assert error(tmp_path / "c.npy").startswith(f"{tmp_path / 'c.npy'}: {problem}")


# --- npz ---------------------------------------------------------------------------------


def test_npz_keys(tmp_path: Path) -> None:
    p = tmp_path / "e.npz"
    np.savez(p, train=np.zeros((3, 2)), test=np.zeros((3, 2)))
    assert error(p) == f"{p}: holds 2 arrays; choose one with {p}:KEY (keys: 'train', 'test')"
    assert error(f"{p}:val") == f"{p}: no array named 'val'; available: 'train', 'test'"
    np.savez(tmp_path / "none.npz")
    assert error(tmp_path / "none.npz") == f"{tmp_path / 'none.npz'}: holds no arrays"


def test_npz_member_with_bad_shape_names_the_key(tmp_path: Path) -> None:
    np.savez(tmp_path / "e.npz", emb=np.zeros(7))
    assert error(tmp_path / "e.npz") == (
        f"{tmp_path / 'e.npz'}:emb: 1-D array of shape (7,); expected (N, d)"
    )


def test_corrupt_and_truncated_npz(tmp_path: Path) -> None:
    (tmp_path / "c.npz").write_bytes(b"PK\x03\x04 definitely not a zip")
    assert error(tmp_path / "c.npz") == (
        f"{tmp_path / 'c.npz'}: not a valid .npz (zip) archive (File is not a zip file)"
    )
    np.savez(tmp_path / "t.npz", emb=np.zeros((50, 4)))
    data = (tmp_path / "t.npz").read_bytes()
    (tmp_path / "t.npz").write_bytes(data[: len(data) // 2])
    assert error(tmp_path / "t.npz").startswith(
        f"{tmp_path / 't.npz'}: not a valid .npz (zip) archive ("
    )


def test_npz_damaged_member_data_fails_while_streaming(tmp_path: Path) -> None:
    p = tmp_path / "crc.npz"
    np.savez(p, emb=np.ones((4096, 4)))  # big enough that the CRC is checked at the end
    data = bytearray(p.read_bytes())
    at = data.index(np.ones(4).tobytes())  # inside the member's stored data
    data[at : at + 8] = np.float64(2.0).tobytes()
    p.write_bytes(bytes(data))
    src = open_embeddings(p)
    with pytest.raises(InputError) as e:
        for _ in src.chunks(rows=16):
            pass
    assert str(e.value).startswith(f"{p}:emb: read failed: Bad CRC-32")


# --- safetensors -------------------------------------------------------------------------


def test_safetensors_keys_shape_and_dtype(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    p = tmp_path / "e.safetensors"
    save_file({"a": torch.zeros(3, 2), "b": torch.zeros(4)}, str(p))
    assert error(p) == f"{p}: holds 2 tensors; choose one with {p}:KEY (keys: 'a', 'b')"
    assert error(f"{p}:c") == f"{p}: no tensor named 'c'; available: 'a', 'b'"
    assert error(f"{p}:b") == f"{p}:b: 1-D array of shape (4,); expected (N, d)"
    save_file({"e": torch.zeros(3, 2, dtype=torch.float8_e4m3fn)}, str(tmp_path / "f8.safetensors"))
    assert error(tmp_path / "f8.safetensors") == (
        f"{tmp_path / 'f8.safetensors'}:e: float8 dtypes are not supported (dtype F8_E4M3); "
        "expected a float or int dtype"
    )


def test_corrupt_and_truncated_safetensors(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    p = tmp_path / "c.safetensors"
    p.write_bytes(b"\x01\x02")
    assert error(p) == (
        f"{p}: not a valid .safetensors file (shorter than its 8-byte header length)"
    )
    p.write_bytes(b"garbage!garbage!garbage!")
    assert error(p).startswith(f"{p}: not a valid .safetensors file (header length ")
    p.write_bytes((5).to_bytes(8, "little") + b"{oops")
    assert error(p).startswith(f"{p}: not a valid .safetensors file (header is not valid JSON")
    save_file({"emb": np.zeros((10, 4), np.float32)}, str(tmp_path / "t.safetensors"))
    data = (tmp_path / "t.safetensors").read_bytes()
    (tmp_path / "t.safetensors").write_bytes(data[:-16])
    assert error(tmp_path / "t.safetensors") == (
        f"{tmp_path / 't.safetensors'}:emb: truncated: tensor data ends at byte "
        f"{len(data)} but the file has {len(data) - 16} bytes"
    )


# --- torch -------------------------------------------------------------------------------


def test_torch_keys_and_contents(tmp_path: Path) -> None:
    p = tmp_path / "d.pt"
    torch.save({"emb": torch.zeros(3, 2), "proj": torch.zeros(3, 2), "step": 4}, p)
    assert error(p) == f"{p}: holds 2 tensors; choose one with {p}:KEY (keys: 'emb', 'proj')"
    assert error(f"{p}:step") == f"{p}: no tensor named 'step'; available: 'emb', 'proj'"
    torch.save(torch.zeros(3, 2), tmp_path / "t.pt")
    assert error(f"{tmp_path / 't.pt'}:emb") == (
        f"{tmp_path / 't.pt'}: holds a single tensor, not a dict; drop ':emb'"
    )
    torch.save([torch.zeros(3, 2)], tmp_path / "l.pt")
    assert error(tmp_path / "l.pt") == (
        f"{tmp_path / 'l.pt'}: holds a list; expected a tensor or a dict of tensors"
    )
    torch.save(torch.zeros(2, 3, 4), tmp_path / "3d.pt")
    assert error(tmp_path / "3d.pt") == (
        f"{tmp_path / '3d.pt'}: 3-D array of shape (2, 3, 4); expected (N, d)"
    )
    torch.save(torch.zeros(3, 2, dtype=torch.complex64), tmp_path / "c.pt")
    assert error(tmp_path / "c.pt") == (
        f"{tmp_path / 'c.pt'}: complex dtype complex64; expected real numbers"
    )
    torch.save(torch.zeros(3, 2, dtype=torch.float8_e5m2), tmp_path / "f8.pt")
    assert error(tmp_path / "f8.pt") == (
        f"{tmp_path / 'f8.pt'}: dtype float8_e5m2 is not supported; expected a float or int dtype"
    )
    torch.save(torch.zeros(1, 8), tmp_path / "one.pt")
    assert "1 row (shape (1, 8))" in error(tmp_path / "one.pt", DegenerateInputError)


def test_torch_pickled_code_is_refused_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    torch.save({"emb": torch.zeros(3, 2), "hook": Touch(marker)}, tmp_path / "evil.pt")
    message = error(tmp_path / "evil.pt")
    assert message.startswith(f"{tmp_path / 'evil.pt'}: torch.load(weights_only=True) refused")
    assert "collapselab never unpickles user data" in message
    assert not marker.exists()


def test_corrupt_torch_files(tmp_path: Path) -> None:
    torch.save(torch.zeros(30, 20), tmp_path / "ok.pt")
    data = (tmp_path / "ok.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    assert error(tmp_path / "cut.pt").startswith(
        f"{tmp_path / 'cut.pt'}: not a readable torch file (PytorchStreamReader failed"
    )
    (tmp_path / "empty.pt").write_bytes(b"")
    assert error(tmp_path / "empty.pt") == (
        f"{tmp_path / 'empty.pt'}: not a readable torch file (EOFError)"
    )
    (tmp_path / "junk.pt").write_bytes(b"this is junk" * 10)
    assert error(tmp_path / "junk.pt").startswith(
        f"{tmp_path / 'junk.pt'}: not a readable torch file ("
    )


# --- csv ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty file; expected lines of numbers separated by ','"),
        ("\n  \n", "empty file; expected lines of numbers separated by ','"),
        ("a,b,c\n", "no data rows after the header line; expected lines of numbers separated"),
        ("a,b\n1,2\n3,4\n5\n6,7\n", "ragged rows: line 4 has 1 fields but line 2 has 2"),
        ("1,2\n\n3,4,5\n", "ragged rows: line 3 has 3 fields but line 1 has 2"),
    ],
)
def test_bad_csv_detected_on_open(tmp_path: Path, text: str, problem: str) -> None:
    (tmp_path / "e.csv").write_text(text, encoding="utf-8")
    assert error(tmp_path / "e.csv").startswith(f"{tmp_path / 'e.csv'}: {problem}")


def test_csv_single_row_is_degenerate(tmp_path: Path) -> None:
    (tmp_path / "e.csv").write_text("x,y\n1,2\n", encoding="utf-8")
    assert error(tmp_path / "e.csv", DegenerateInputError) == (
        f"{tmp_path / 'e.csv'}: 1 row (shape (1, 2)); need at least 2 rows to measure a spread"
    )


def test_csv_non_number_in_data_reported_with_line(tmp_path: Path) -> None:
    rows = [f"{i},{i + 1}" for i in range(30)]
    rows[20] = "20,abc"
    (tmp_path / "e.csv").write_text("\n".join(["x,y", *rows]), encoding="utf-8")
    src = open_embeddings(tmp_path / "e.csv")
    with pytest.raises(InputError) as e:
        for _ in src.chunks(rows=8):
            pass
    assert str(e.value) == f"{tmp_path / 'e.csv'}: line 22: 'abc' is not a number"


def test_csv_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_bytes(b"\xff\xfe\x00\x01binary")
    assert error(tmp_path / "b.csv").startswith(f"{tmp_path / 'b.csv'}: not a UTF-8 text file")


# --- parquet -----------------------------------------------------------------------------


def test_parquet_columns_and_keys(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "e.parquet"
    lists = pa.array([[1.0, 2.0]] * 3, type=pa.list_(pa.float32()))
    pq.write_table(pa.table({"a": lists, "b": lists, "n": [1, 2, 3]}), p)
    assert error(p) == f"{p}: holds 2 list columns; choose one with {p}:KEY (keys: 'a', 'b')"
    assert error(f"{p}:zz") == f"{p}: no column named 'zz'; available: 'a', 'b', 'n'"
    assert error(f"{p}:n") == f"{p}:n: column 'n' holds int64, not lists of numbers; " + (
        "name a list column"
    )
    pq.write_table(pa.table({"name": ["x", "y"], "tag": ["p", "q"]}), tmp_path / "s.parquet")
    assert error(tmp_path / "s.parquet") == (
        f"{tmp_path / 's.parquet'}: no numeric or list-of-numbers columns "
        "(columns: 'name', 'tag')"
    )
    strs = pa.array([["a"], ["b"]], type=pa.list_(pa.string()))
    pq.write_table(pa.table({"w": strs}), tmp_path / "w.parquet")
    assert error(tmp_path / "w.parquet") == (
        f"{tmp_path / 'w.parquet'}:w: column 'w' holds lists of string; expected numbers"
    )


def test_parquet_ragged_and_null_rows_fail_while_streaming(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows: list[Any] = [[1.0, 2.0]] * 10
    cases = {
        "ragged": (rows[:7] + [[1.0]] + rows[8:], "ragged column 'emb': row 7 has 1 values; "
                   "expected 2"),
        "nullrow": (rows[:5] + [None] + rows[6:], "column 'emb' has a null at row 5; "
                    "expected numbers everywhere"),
        "nullval": (rows[:5] + [[1.0, None]] + rows[6:], "column 'emb' has null values "
                    "inside its lists"),
    }
    for stem, (values, problem) in cases.items():
        p = tmp_path / f"{stem}.parquet"
        pq.write_table(pa.table({"emb": pa.array(values, type=pa.list_(pa.float64()))}), p,
                       row_group_size=4)
        src = open_embeddings(p)
        with pytest.raises(InputError) as e:
            for _ in src.chunks(rows=3):
                pass
        assert str(e.value) == f"{p}:emb: {problem}"


def test_parquet_null_in_numeric_column(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "n.parquet"
    pq.write_table(pa.table({"a": [1.0, 2.0, 3.0], "b": [1.0, None, 3.0]}), p)
    with pytest.raises(InputError) as e:
        open_embeddings(p).read()
    assert str(e.value) == f"{p}: column 'b' has a null at row 1; expected numbers everywhere"


def test_corrupt_parquet(tmp_path: Path) -> None:
    (tmp_path / "c.parquet").write_bytes(b"PAR1 not really parquet PAR1")
    assert error(tmp_path / "c.parquet").startswith(
        f"{tmp_path / 'c.parquet'}: not a valid .parquet file ("
    )


def test_parquet_without_pyarrow_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "e.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow` fail
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    assert error(tmp_path / "e.parquet") == (
        f'{tmp_path / "e.parquet"}: reading .parquet needs pyarrow: '
        'pip install "collapselab[parquet]"'
    )
