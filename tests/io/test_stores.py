"""Vector stores read directly: FAISS index files, Lance datasets, Chroma stores.

Every store is written with its real library (no mocks) into a temporary directory,
from one seeded float32 matrix with structure (a few strong directions plus noise), then
read back through ``open_embeddings`` / ``check_files`` / the console script. Exact
kinds must give the matrix bit for bit; lossy FAISS kinds must give what faiss's own
``reconstruct_n`` gives.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from collapselab.check import check_files
from collapselab.errors import InputError
from collapselab.io import open_embeddings

N, D = 600, 24


def matrix(seed: int = 7) -> np.ndarray:
    """(N, D) float32: five directions of falling strength plus a little noise."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((5, D))
    scales = np.array([3.0, 2.0, 1.0, 0.5, 0.25])
    z = (rng.standard_normal((N, 5)) * scales) @ basis + 0.05 * rng.standard_normal((N, D))
    return (z + 0.3).astype(np.float32)


Z = matrix()


@pytest.fixture(autouse=True, scope="module")
def _faiss_one_thread() -> Any:
    """faiss's OpenMP threads spin-wait: on a busy machine one thread trains far faster."""
    try:
        import faiss
    except ImportError:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


# ------------------------------------------------------------------------------ writers
def write_faiss(folder: Path, factory: str, name: str | None = None) -> str:
    """``factory`` (faiss's index_factory string) trained and filled with Z."""
    faiss = pytest.importorskip("faiss")
    index = faiss.index_factory(D, factory)
    index.train(Z)
    if factory.startswith("IDMap"):
        index.add_with_ids(Z, np.arange(N, dtype=np.int64) * 3 + 11)
    else:
        index.add(Z)
    path = folder / f"{name or factory.replace(',', '_')}.faiss"
    faiss.write_index(index, str(path))
    return str(path)


def write_lance(folder: Path, fragments: int = 3) -> str:
    """A LanceDB table "items" (id, vector, text) written in ``fragments`` appends."""
    lancedb = pytest.importorskip("lancedb")
    pa = pytest.importorskip("pyarrow")
    db = lancedb.connect(str(folder / "db"))

    def batch(lo: int, hi: int) -> Any:
        vectors = pa.FixedSizeListArray.from_arrays(pa.array(Z[lo:hi].reshape(-1)), D)
        return pa.table({"id": pa.array(np.arange(lo, hi)), "vector": vectors,
                         "text": pa.array([f"row {i}" for i in range(lo, hi)])})  # fmt: skip

    bounds = np.linspace(0, N, fragments + 1).astype(int)
    table = db.create_table("items", batch(int(bounds[0]), int(bounds[1])))
    for lo, hi in zip(bounds[1:-1], bounds[2:], strict=True):
        table.add(batch(int(lo), int(hi)))
    return str(folder / "db" / "items.lance")


def chroma_client(folder: Path) -> Any:
    chromadb = pytest.importorskip("chromadb")
    from chromadb.config import Settings

    return chromadb.PersistentClient(path=str(folder),
                                     settings=Settings(anonymized_telemetry=False))  # fmt: skip


def write_chroma(folder: Path, names: tuple[str, ...] = ("docs",)) -> str:
    """A persistent Chroma store with the collections ``names``, each holding Z."""
    client = chroma_client(folder)
    for name in names:
        col = client.create_collection(name, embedding_function=None)
        for lo in range(0, N, 250):
            hi = min(lo + 250, N)
            col.add(ids=[f"{name}-{i:04d}" for i in range(lo, hi)], embeddings=Z[lo:hi])
    return str(folder / "chroma.sqlite3")


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One of each store, written once for the module: kind -> spec."""
    folder = tmp_path_factory.mktemp("stores")
    np.save(folder / "z.npy", Z)
    out = {"npy": str(folder / "z.npy")}
    for kind, factory in {"flat": "Flat", "ivfflat": "IVF8,Flat", "pq": "PQ6x4",
                          "ivfpq": "IVF8,PQ6x4", "hnsw": "HNSW16"}.items():  # fmt: skip
        out[kind] = write_faiss(folder, factory, kind)
    out["lance"] = write_lance(folder) + ":vector"
    out["chroma"] = write_chroma(folder / "chroma") + ":docs"
    return out


# ------------------------------------------------------------------------- references
def faiss_rows(spec: str) -> tuple[np.ndarray, str]:
    """What faiss itself reconstructs, in the order the reader promises (inverted-list
    order for IVF), and the type's name."""
    faiss = pytest.importorskip("faiss")
    index = faiss.read_index(spec)
    owner = index  # wrappers own their inner index: keep the owner alive
    if isinstance(index, (faiss.IndexIDMap, faiss.IndexIDMap2)):
        index = faiss.downcast_index(owner.index)
    if isinstance(index, faiss.IndexRefine):
        index = faiss.downcast_index(owner.refine_index)
    if isinstance(index, faiss.IndexIVF):
        index.make_direct_map()
        lists = faiss.downcast_InvertedLists(index.invlists)
        ids = [faiss.rev_swig_ptr(lists.get_ids(k), lists.list_size(k)).copy()
               for k in range(index.nlist) if lists.list_size(k)]  # fmt: skip
        rows = index.reconstruct_n(0, index.ntotal)[np.concatenate(ids)]
    else:
        rows = index.reconstruct_n(0, index.ntotal)
    return rows, type(owner).__name__


EXACT = ["Flat", "IDMap,Flat", "IDMap2,Flat", "HNSW16", "IVF8,Flat"]
LOSSY = ["PQ6x4", "SQ8", "SQfp16", "IVF8,PQ6x4", "IVF8,SQ8", "HNSW16_SQ8", "HNSW16_PQ6x4",
         "RQ2x4"]  # fmt: skip


@pytest.mark.parametrize("factory", EXACT)
def test_faiss_exact_kinds_give_the_stored_vectors(tmp_path: Path, factory: str) -> None:
    spec = write_faiss(tmp_path, factory)
    src = open_embeddings(spec)
    got = src.read()
    reference, kind = faiss_rows(spec)
    assert (src.n, src.d, src.dtype, got.dtype) == (N, D, "float32", np.float32)
    np.testing.assert_array_equal(got, reference)
    if "IVF" in factory:  # the same rows, in inverted-list order
        assert sorted(map(bytes, got)) == sorted(map(bytes, Z))
        assert src.note is not None and "inverted-list order" in src.note
    else:
        np.testing.assert_array_equal(got, Z)
    assert src.note is not None and src.note.startswith("exact stored vectors")
    assert kind in src.note and "lossy" not in src.note
    assert src.quantised is None


@pytest.mark.parametrize("factory", LOSSY)
def test_faiss_lossy_kinds_give_what_faiss_reconstructs(tmp_path: Path, factory: str) -> None:
    spec = write_faiss(tmp_path, factory)
    src = open_embeddings(spec)
    got = src.read()
    reference, kind = faiss_rows(spec)
    np.testing.assert_array_equal(got, reference)
    assert not np.array_equal(got, Z)  # compressed: not the originals
    assert src.note is not None and src.note.startswith("reconstructed from")
    assert "lossy" in src.note and kind in src.note


@pytest.mark.parametrize("factory", ["IVF8,PQ6x4,RFlat", "PQ6x4,Refine(Flat)"])
def test_faiss_refine_gives_originals_and_the_decoded_base(tmp_path: Path, factory: str
                                                           ) -> None:  # fmt: skip
    faiss = pytest.importorskip("faiss")
    spec = write_faiss(tmp_path, factory, "refine")
    src = open_embeddings(spec)
    np.testing.assert_array_equal(src.read(), Z)
    assert src.note is not None and "exact" in src.note and "lossy" not in src.note
    owner = faiss.read_index(spec)
    base = faiss.downcast_index(owner.base_index)
    if isinstance(base, faiss.IndexIVF):
        base.make_direct_map()
    q = src.quantised
    assert q is not None and q.shape == src.shape
    np.testing.assert_array_equal(q.read(), base.reconstruct_n(0, N))  # id order, like Z
    assert q.note is not None and "lossy" in q.note
    chunks = [c.copy() for c in q.chunks(rows=7, start=5, stop=300)]
    np.testing.assert_array_equal(np.concatenate(chunks), q.read(5, 300))


@pytest.mark.parametrize("kind", ["flat", "ivfflat", "pq", "ivfpq", "hnsw", "lance", "chroma"])
def test_small_chunks_and_row_ranges_give_the_same_rows(
    stores: dict[str, str], kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if kind == "lance":  # several batches per fragment, three fragments
        monkeypatch.setattr("collapselab.io.lance._BATCH_ROWS", 64)
    if kind == "chroma":  # many pages
        monkeypatch.setattr("collapselab.io.chroma._PAGE_ROWS", 50)
    src = open_embeddings(stores[kind])
    full = src.read()
    assert full.shape == (N, D)
    if kind in ("flat", "hnsw", "lance", "chroma"):
        np.testing.assert_array_equal(full, Z)
    for start, stop in [(0, N), (13, 500), (199, 201), (N - 1, N)]:
        for buffers in (1, 2):
            chunks = [c.copy() for c in src.chunks(rows=7, start=start, stop=stop,
                                                   buffers=buffers)]  # fmt: skip
            assert all(len(c) == 7 for c in chunks[:-1]) and 1 <= len(chunks[-1]) <= 7
            assert all(c.flags.c_contiguous and c.dtype == np.float32 for c in chunks)
            np.testing.assert_array_equal(np.concatenate(chunks), full[start:stop])


@pytest.mark.parametrize("kind", ["flat", "ivfflat", "lance", "chroma"])
def test_check_gives_the_eigenvalues_of_the_same_matrix_as_npy(stores: dict[str, str],
                                                               kind: str) -> None:  # fmt: skip
    want = check_files([stores["npy"]]).measurement.metrics.eigenvalues
    got = check_files([stores[kind]], chunk_rows=64).measurement.metrics.eigenvalues
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=0)


def test_check_a_store_against_a_store_baseline(stores: dict[str, str]) -> None:
    result = check_files([stores["lance"]], baseline=[stores["flat"]])
    assert result.measurement.baseline is not None
    assert result.baseline_files == [stores["flat"]]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "collapselab", *args],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


@pytest.mark.parametrize("kind", ["flat", "lance", "chroma"])
def test_cli_check_reads_each_store(stores: dict[str, str], kind: str) -> None:
    proc = run_cli("check", stores[kind], "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert (out["n"], out["d"]) == (N, D)
    want = check_files([stores["npy"]]).measurement.metrics.eigenvalues
    np.testing.assert_allclose(out["eigenvalues"], want, rtol=1e-9)


def cli_error(spec: str) -> str:
    proc = run_cli("check", spec, "--json")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_cli_errors_are_one_line_exit_2(stores: dict[str, str], tmp_path: Path) -> None:
    chroma = stores["chroma"].rsplit(":", 1)[0]
    lance = stores["lance"].rsplit(":", 1)[0]
    line = cli_error(f"{chroma}:nope")
    assert "no collection named 'nope'" in line and "'docs'" in line
    line = cli_error(f"{lance}:nope")
    assert "no column named 'nope'" in line and "'vector'" in line and "'text'" in line
    assert "no such file" in cli_error(str(tmp_path / "missing.faiss"))
    assert "no such file" in cli_error(str(Path(lance).parent / "missing.lance"))


# ----------------------------------------------------------------------------- errors
def message(spec: str) -> str:
    with pytest.raises(InputError) as e:
        open_embeddings(spec)
    text = str(e.value)
    assert "\n" not in text
    return text


def test_faiss_refusals_name_the_type(tmp_path: Path) -> None:
    faiss = pytest.importorskip("faiss")
    assert "IndexLSH indexes are not supported" in message(write_faiss(tmp_path, "LSH"))
    assert "IndexPreTransform" in message(write_faiss(tmp_path, "PCA12,Flat", "pca"))
    binary = faiss.IndexBinaryFlat(64)
    binary.add(np.zeros((5, 8), np.uint8))
    faiss.write_index_binary(binary, str(tmp_path / "bin.faiss"))
    assert "binary FAISS index (IndexBinaryFlat)" in message(str(tmp_path / "bin.faiss"))
    junk = tmp_path / "junk.index"
    junk.write_bytes(np.random.default_rng(0).bytes(4000))
    assert "not a readable FAISS index" in message(str(junk))
    flat = Path(write_faiss(tmp_path, "Flat"))
    cut = tmp_path / "cut.faiss"
    cut.write_bytes(flat.read_bytes()[: flat.stat().st_size // 2])
    assert "not a readable FAISS index" in message(str(cut))


def test_lance_column_choice_and_non_datasets(tmp_path: Path) -> None:
    lancedb = pytest.importorskip("lancedb")
    pa = pytest.importorskip("pyarrow")
    db = lancedb.connect(str(tmp_path / "db"))
    lists = pa.FixedSizeListArray.from_arrays(pa.array(Z[:10].reshape(-1)), D)
    db.create_table("two", pa.table({"a": lists, "b": lists, "s": pa.array(["x"] * 10)}))
    spec = str(tmp_path / "db" / "two.lance")
    assert "holds 2 vector columns" in message(spec) and "'a', 'b'" in message(spec)
    assert "column 's' holds string" in message(f"{spec}:s")
    np.testing.assert_array_equal(open_embeddings(f"{spec}:b").read(), Z[:10])
    (tmp_path / "plain.lance").mkdir()
    assert "not a Lance dataset" in message(str(tmp_path / "plain.lance"))


def test_lance_list_column_of_float64(tmp_path: Path) -> None:
    lancedb = pytest.importorskip("lancedb")
    pa = pytest.importorskip("pyarrow")
    z = Z[:50].astype(np.float64)
    db = lancedb.connect(str(tmp_path / "db"))
    db.create_table("v", pa.table({"emb": pa.array(list(z))}))  # list<double>, not fixed
    src = open_embeddings(str(tmp_path / "db" / "v.lance"))
    assert (src.n, src.d, src.dtype) == (50, D, "float64")
    np.testing.assert_array_equal(src.read(), z)


def test_chroma_collection_choice_and_foreign_files(tmp_path: Path) -> None:
    spec = write_chroma(tmp_path / "c", ("b_docs", "a_docs"))
    text = message(spec)
    assert "holds 2 collections" in text and "'a_docs', 'b_docs'" in text
    np.testing.assert_array_equal(open_embeddings(f"{spec}:a_docs").read(), Z)
    other = tmp_path / "other" / "chroma.sqlite3"  # an SQLite file that is not Chroma's
    other.parent.mkdir()
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x INTEGER)")
    before = other.read_bytes()
    assert "not a Chroma store" in message(str(other))
    assert other.read_bytes() == before  # Chroma never got to create its tables
    renamed = other.rename(other.with_name("x.sqlite3"))
    assert "named by its chroma.sqlite3" in message(str(renamed))


def test_chroma_pages_of_inconsistent_dimension() -> None:
    from collapselab.io.chroma import page_matrix

    good = page_matrix([np.ones(3), np.zeros(3)], "s", 3, 0)
    assert good.shape == (2, 3) and good.dtype == np.float32
    with pytest.raises(InputError, match=r"s: vectors of inconsistent dimension: row 11 "
                                         r"has 2 values, expected 3"):  # fmt: skip
        page_matrix([np.ones(3), np.ones(2)], "s", 3, 10)
    with pytest.raises(InputError, match="inconsistent dimension"):
        page_matrix(np.ones((4, 5)), "s", 3, 0)


OPENERS: dict[str, tuple[str, Callable[[Path], str]]] = {
    "faiss": ("reading FAISS indexes needs faiss: pip install \"collapselab[faiss]\"",
              lambda p: str(p / "x.faiss")),
    "lance": ("reading Lance datasets needs pylance: pip install \"collapselab[lancedb]\"",
              lambda p: str(p / "x.lance")),
    "chromadb": ("reading Chroma stores needs chromadb: pip install \"collapselab[chroma]\"",
                 lambda p: str(p / "chroma.sqlite3")),
}  # fmt: skip


@pytest.mark.parametrize("library", sorted(OPENERS))
def test_missing_library_gives_the_install_hint(
    tmp_path: Path, library: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hint, where = OPENERS[library]
    spec = where(tmp_path)
    if spec.endswith(".lance"):
        Path(spec).mkdir()
    else:
        Path(spec).write_bytes(b"")
    monkeypatch.setitem(sys.modules, library, None)  # makes `import <library>` fail
    assert message(spec) == f"{spec}: {hint}"


def test_rank_keeps_each_spec_s_own_key(tmp_path) -> None:
    # a key belongs to its spec: a store without one beside a keyed one must stay keyless
    from collapselab.experiments.rank import rank_inputs

    np.save(tmp_path / "a.npy", np.zeros((3, 2), np.float32))
    np.savez(tmp_path / "b.npz", k=np.zeros((3, 2), np.float32))
    url = "postgresql://u@h/db?table=t"
    assert rank_inputs([str(tmp_path / "a.npy"), f"{tmp_path / 'b.npz'}:k", url]) == [
        str(tmp_path / "a.npy"), f"{tmp_path / 'b.npz'}:k", url]
