"""Writers for the io tests: store one matrix in every supported format.

Every file is generated into a temporary directory; no data files are committed.
(A uniquely named module rather than ``conftest`` so that test files can import it.)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

Writer = Callable[[Path, np.ndarray], str]


def write_npy(path: Path, z: np.ndarray) -> str:
    np.save(path.with_suffix(".npy"), z)
    return str(path.with_suffix(".npy"))


def write_npy_fortran(path: Path, z: np.ndarray) -> str:
    p = path.with_name(path.name + "_f.npy")
    np.save(p, np.asfortranarray(z.astype(z.dtype.newbyteorder(">"))))  # column-major, BE
    return str(p)


def write_npz(path: Path, z: np.ndarray) -> str:
    p = path.with_suffix(".npz")
    np.savez(p, emb=z, labels=np.arange(len(z)))
    return f"{p}:emb"


def write_npz_compressed(path: Path, z: np.ndarray) -> str:
    p = path.with_name(path.name + "_c.npz")
    np.savez_compressed(p, z)  # single array, default key arr_0: no KEY needed
    return str(p)


def write_safetensors(path: Path, z: np.ndarray) -> str:
    from safetensors.numpy import save_file

    p = path.with_suffix(".safetensors")
    save_file({"emb": np.ascontiguousarray(z), "labels": np.arange(len(z))}, str(p))
    return f"{p}:emb"


def write_pt(path: Path, z: np.ndarray) -> str:
    import torch

    p = path.with_suffix(".pt")
    torch.save({"emb": torch.from_numpy(z.copy()), "epoch": 3}, p)
    return f"{p}:emb"


def write_csv(path: Path, z: np.ndarray) -> str:
    p = path.with_suffix(".csv")
    header = ",".join(f"dim{j}" for j in range(z.shape[1]))
    # %.17g round-trips float64 exactly, so the float64 parse equals z.astype(float64).
    np.savetxt(p, z, delimiter=",", fmt="%.17g", header=header, comments="")
    return str(p)


def write_tsv(path: Path, z: np.ndarray) -> str:
    p = path.with_suffix(".tsv")
    np.savetxt(p, z, delimiter="\t", fmt="%.17g")
    return str(p)


def write_parquet(path: Path, z: np.ndarray) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = path.with_suffix(".parquet")
    emb = pa.FixedSizeListArray.from_arrays(pa.array(z.ravel()), z.shape[1])
    table = pa.table({"id": pa.array([f"doc{i}" for i in range(len(z))]), "emb": emb})
    pq.write_table(table, p, row_group_size=max(1, len(z) // 3))  # several row groups
    return str(p)


WRITERS: dict[str, Writer] = {
    "npy": write_npy,
    "npy_fortran": write_npy_fortran,
    "npz": write_npz,
    "npz_compressed": write_npz_compressed,
    "safetensors": write_safetensors,
    "pt": write_pt,
    "csv": write_csv,
    "tsv": write_tsv,
    "parquet": write_parquet,
}
