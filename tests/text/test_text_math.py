"""collapselab.text without a model: retrieval metrics, whitening, anisotropy, data readers.

Tolerances: fits are float64 end to end (``1e-9`` relative); ``apply`` returns float32,
so statistics of transformed rows are compared at ``1e-4`` (values are O(1)).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from collapselab.anisotropy import Geometry, whiten_files
from collapselab.errors import ConfigError, DegenerateInputError, InputError
from collapselab.io import atomic_npy, open_embeddings
from collapselab.text import anisotropy, fit_array, fit_sources, recall_at_k
from collapselab.text.data import (
    lee_corpus,
    parse_wordnet_line,
    word_pairs,
    wordnet_dir,
    wordnet_pairs,
)
from collapselab.text.embed import TextFile
from collapselab.text.evaluate import lee_correlation, spearman, word_similarity_spearman
from collapselab.text.experiment import FinetuneConfig, flush_denormals, pair_loss
from collapselab.whiten import WhiteningTransform

RNG = np.random.default_rng(7)


def reference_recall(q: np.ndarray, d: np.ndarray, k: int) -> float:
    """Recall@k by the definition, one query at a time (ties count against the query)."""
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    dn = d / np.linalg.norm(d, axis=1, keepdims=True)
    hits = 0
    for i in range(len(q)):
        scores = [float(qn[i] @ dn[j]) for j in range(len(d))]
        outrank = sum(1 for j in range(len(d)) if j != i and scores[j] >= scores[i])
        hits += outrank < k
    return hits / len(q)


def nuisance_pairs(n: int, d: int = 32, scale: float = 25.0) -> tuple[np.ndarray, ...]:
    """Paired rows sharing a signal in dims 2..d-1, plus two nuisances: a common offset on
    dim 0 (every row leans one way: high random-pair cosine) and a huge independent
    zero-mean term on dim 1 (it dominates every cosine, so retrieval fails).

    Dim 1 is the top principal direction of a corpus drawn the same way, so removing the
    mean and that direction restores the signal.
    """

    def nuisance(rows: np.ndarray) -> np.ndarray:
        rows[:, 0] = 30.0
        rows[:, 1] = scale * RNG.standard_normal(len(rows))
        return rows

    s = RNG.standard_normal((n, d))
    q = nuisance(s + 0.3 * RNG.standard_normal((n, d)))
    p = nuisance(s + 0.3 * RNG.standard_normal((n, d)))
    return nuisance(RNG.standard_normal((4 * n, d))), q, p


# ------------------------------------------------------------------------------- recall
def test_recall_matches_the_definition_on_random_pairs() -> None:
    q = RNG.standard_normal((60, 5))
    d = q + 0.8 * RNG.standard_normal((60, 5))
    for k in (1, 3, 10):
        assert recall_at_k(q, d, k=k, block=7) == reference_recall(q, d, k)


def test_recall_exact_values_identity_collapse_and_ties() -> None:
    eye = np.eye(6)
    assert recall_at_k(eye, eye) == 1.0
    same = np.ones((6, 4))  # a collapsed model: every score ties, nothing is retrieved
    assert recall_at_k(same, same) == 0.0
    assert recall_at_k(same, same, k=6) == 1.0  # k = N: every rank is inside
    docs = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # docs 0 and 1 tie for query 0
    queries = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    # query 0 ties with doc 1 (-> miss at k=1); query 1 prefers doc 2; query 2 hits.
    assert recall_at_k(queries, docs, k=1) == pytest.approx(1 / 3)
    assert recall_at_k(queries, docs, k=2) == pytest.approx(2 / 3)
    with pytest.raises(InputError, match="shapes"):
        recall_at_k(eye, eye[:3])


def test_lee_and_word_similarity_correlations_match_references() -> None:
    from scipy.stats import spearmanr

    z = RNG.standard_normal((10, 6))
    human = RNG.uniform(size=(10, 10))
    iu = np.triu_indices(10, 1)
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    ref = np.corrcoef((u @ u.T)[iu], human[iu])[0, 1]
    assert lee_correlation(z, human) == pytest.approx(ref, rel=1e-12)
    a, b = RNG.standard_normal(50), RNG.standard_normal(50)
    b[:10] = b[0]  # ties
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, rel=1e-12)
    vectors = {w: RNG.standard_normal(4) for w in "abcdef"}
    wp = [("a", "b", 1.0), ("c", "d", 3.0), ("e", "f", 2.0), ("a", "f", 5.0)]

    def enc(words: list[str]) -> np.ndarray:
        return np.stack([vectors[w] for w in words])

    cos = [vectors[x] @ vectors[y] / np.linalg.norm(vectors[x]) / np.linalg.norm(vectors[y])
           for x, y, _ in wp]  # fmt: skip
    expected = spearmanr(cos, [s for *_, s in wp]).statistic
    assert word_similarity_spearman(enc, wp) == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------------------------- whitening
def correlated(n: int = 3000, d: int = 8) -> np.ndarray:
    return RNG.standard_normal((n, d)) @ RNG.standard_normal((d, d)) + 5.0


def test_whitening_is_su_et_al_u_lambda_inverse_sqrt() -> None:
    z = correlated()
    t = fit_array(z, "whiten")
    cov = np.cov(z, rowvar=False, bias=True)
    # W W^T = U diag(1/lambda) U^T = C^-1, whatever the signs of the eigenvectors
    assert np.allclose(t.matrix @ t.matrix.T, np.linalg.inv(cov), rtol=1e-9, atol=1e-12)
    y = t.apply(z).astype(np.float64)
    assert np.allclose(y.mean(axis=0), 0.0, atol=1e-5)
    assert np.allclose(np.cov(y, rowvar=False, bias=True), np.eye(8), atol=1e-4)
    t3 = fit_array(z, "whiten", dims=3)
    y3 = t3.apply(z).astype(np.float64)
    assert y3.shape == (3000, 3)
    assert np.allclose(np.cov(y3, rowvar=False, bias=True), np.eye(3), atol=1e-4)
    lam, u = np.linalg.eigh(cov)
    top = u[:, ::-1][:, :3]  # the kept directions are the top 3
    assert np.allclose(np.abs(top.T @ t3.matrix * np.sqrt(lam[::-1][:3])), np.eye(3), atol=1e-9)


def test_remove_top_projects_out_the_top_directions() -> None:
    z = correlated()
    t = fit_array(z, "remove-top", remove=2)
    cov = np.cov(z, rowvar=False, bias=True)
    lam, u = np.linalg.eigh(cov)
    lam, u = lam[::-1], u[:, ::-1]
    w = t.matrix
    assert np.allclose(w, w.T, atol=1e-12) and np.allclose(w @ w, w, atol=1e-12)
    assert np.linalg.matrix_rank(w) == 6
    expected = cov - (u[:, :2] * lam[:2]) @ u[:, :2].T  # C - sum_{i<=2} lambda_i u_i u_i^T
    y = t.apply(z).astype(np.float64)
    assert np.allclose(np.cov(y, rowvar=False, bias=True), expected, atol=1e-4 * lam[0])
    assert np.allclose(y @ u[:, :2], 0.0, atol=1e-4 * np.sqrt(lam[0]))
    c = fit_array(z, "center")
    assert np.allclose(c.apply(z), (z - z.mean(axis=0)).astype(np.float32), atol=1e-5)
    assert fit_array(np.zeros((3, 400)) + RNG.standard_normal((3, 400)), "remove-top").removed == 4


def test_whitening_drops_null_directions_and_rejects_degenerate_input() -> None:
    low = RNG.standard_normal((500, 3)) @ RNG.standard_normal((3, 8))  # rank 3 in 8 dims
    t = fit_array(low, "whiten")
    assert t.d_out == 3
    assert np.allclose(np.cov(t.apply(low).astype(np.float64), rowvar=False, bias=True),
                       np.eye(3), atol=1e-4)  # fmt: skip
    with pytest.raises(DegenerateInputError, match="no variance"):
        fit_array(np.ones((10, 4)), "whiten")
    with pytest.raises(ConfigError, match="remove must be"):
        fit_array(low, "remove-top", remove=8)
    with pytest.raises(ConfigError, match="dims applies"):
        fit_array(low, "center", dims=2)
    with pytest.raises(ConfigError, match="unknown transform"):
        fit_array(low, "pca")
    with pytest.raises(InputError, match=r"expects \(N, 8\)"):
        t.apply(np.ones((2, 5)))


def test_transform_save_load_roundtrip_atomic_and_safe(tmp_path: Path) -> None:
    t = fit_array(correlated(), "remove-top", remove=3)
    path = tmp_path / "t.npz"
    t.save(path)
    assert sorted(os.listdir(tmp_path)) == ["t.npz"]  # no temp file left behind
    back = WhiteningTransform.load(path)
    assert (back.method, back.n_fit, back.removed) == ("remove-top", 3000, 3)
    for name in ("mean", "matrix", "eigenvalues"):
        assert np.array_equal(getattr(back, name), getattr(t, name))
    with pytest.raises(InputError, match="no such file"):
        WhiteningTransform.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", mean=np.zeros(3))
    with pytest.raises(InputError, match="missing"):
        WhiteningTransform.load(tmp_path / "other.npz")
    np.savez(tmp_path / "pickled.npz", method=np.array([{"a": 1}], dtype=object),
             mean=np.zeros(3), matrix=np.eye(3), eigenvalues=np.ones(3), n_fit=3,
             removed=0)  # fmt: skip
    with pytest.raises(InputError, match="pickled.npz"):
        WhiteningTransform.load(tmp_path / "pickled.npz")


def test_fit_over_streamed_files_equals_fit_in_memory(tmp_path: Path) -> None:
    z = correlated(1000, 6).astype(np.float32)
    np.save(tmp_path / "a.npy", z[:300])
    np.save(tmp_path / "b.npy", z[300:])
    streamed = fit_sources([open_embeddings(tmp_path / "a.npy"),
                            open_embeddings(tmp_path / "b.npy")])  # fmt: skip
    whole = fit_array(z)
    assert np.allclose(streamed.mean, whole.mean, rtol=1e-12)
    assert np.allclose(streamed.matrix @ streamed.matrix.T, whole.matrix @ whole.matrix.T,
                       rtol=1e-9)  # fmt: skip


# --------------------------------------------------------------------------- anisotropy
def test_geometry_matches_brute_force_definitions() -> None:
    z = RNG.standard_normal((300, 10)) + 2.0 * np.ones(10)  # a common offset: anisotropic
    g = Geometry.of(z, top_k=(1, 3))
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    cos = u @ u.T
    assert g.mean_cosine == pytest.approx((cos.sum() - 300) / (300 * 299), rel=1e-9)
    lam = np.sort(np.linalg.eigvalsh(np.cov(z, rowvar=False, bias=True)))[::-1]
    assert g.top_share[1] == pytest.approx(lam[0] / lam.sum(), rel=1e-9)
    assert g.top_share[3] == pytest.approx(lam[:3].sum() / lam.sum(), rel=1e-9)
    mu = z.mean(axis=0)
    assert g.mean_share == pytest.approx(mu @ mu / (z * z).sum(axis=1).mean(), rel=1e-9)


def test_anisotropy_corrections_and_their_retrieval_effect() -> None:
    corpus, q, p = nuisance_pairs(200)
    rep = anisotropy(corpus, remove=(1,), pairs=(q, p))
    assert [c.name for c in rep.corrections] == ["none", "center", "remove-top-1", "whiten"]
    assert rep.original.mean_cosine > 0.5  # the shared offset on dim 0
    assert rep.original.top_share[1] > 0.9  # ... and its variance dominate
    assert abs(rep.by_name("center").geometry.mean_cosine) < 0.05
    assert rep.by_name("whiten").geometry.top_share[1] == pytest.approx(1 / 32, rel=0.2)
    none, fixed = rep.by_name("none").recall_at_1, rep.by_name("remove-top-1").recall_at_1
    assert none is not None and fixed is not None
    assert none < 0.3 and fixed > 0.8  # the nuisance direction hid the signal
    center = rep.by_name("center").recall_at_1
    assert center is not None and center < 0.5  # removing the mean alone helps little
    assert rep.to_dict()["corrections"][2]["name"] == "remove-top-1"


def test_whiten_files_reports_before_after_and_writes(tmp_path: Path) -> None:
    corpus, q, p = nuisance_pairs(200)
    for name, arr in (("fit", corpus), ("q", q), ("p", p)):
        np.save(tmp_path / f"{name}.npy", arr.astype(np.float32))
    r = whiten_files([str(tmp_path / "fit.npy")], str(tmp_path / "t.npz"), "remove-top",
                     remove=1, apply=str(tmp_path / "q.npy"), apply_out=str(tmp_path / "qw.npy"),
                     queries=str(tmp_path / "q.npy"), docs=str(tmp_path / "p.npy"))  # fmt: skip
    assert r.before.mean_cosine > 0.5 and abs(r.after.mean_cosine) < 0.1
    assert r.recall_before is not None and r.recall_after is not None
    assert r.recall_after > r.recall_before + 0.5
    t = WhiteningTransform.load(tmp_path / "t.npz")
    assert np.allclose(np.load(tmp_path / "qw.npy"), t.apply(q.astype(np.float32)), atol=1e-5)
    assert sorted(os.listdir(tmp_path)) == ["fit.npy", "p.npy", "q.npy", "qw.npy", "t.npz"]
    again = whiten_files([], transform=str(tmp_path / "t.npz"), apply=str(tmp_path / "q.npy"))
    assert again.after.mean_cosine == pytest.approx(r.after.mean_cosine, rel=1e-9)
    with pytest.raises(ConfigError, match="--apply-out needs"):
        whiten_files([str(tmp_path / "fit.npy")], apply_out=str(tmp_path / "x.npy"))
    with pytest.raises(ConfigError, match="not both"):
        whiten_files([str(tmp_path / "fit.npy")], transform=str(tmp_path / "t.npz"))


def test_whiten_files_reads_each_file_once_per_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One read of the fit files gives the fit and the "before" geometry; one more gives
    "after" (the rows through the transform); an ``--apply`` file is read once for both."""
    from collections import Counter

    from collapselab.io import EmbeddingSource

    reads: Counter[str] = Counter()
    chunks = EmbeddingSource.chunks

    def counted(self: EmbeddingSource, *args: Any, **kwargs: Any) -> Any:
        if type(self).__name__ != "Transformed":  # count the files, not the wrapper
            reads[os.path.basename(self.name)] += 1
        return chunks(self, *args, **kwargs)

    monkeypatch.setattr(EmbeddingSource, "chunks", counted)
    corpus, q, _ = nuisance_pairs(200)
    for name, arr in (("a", corpus[:100]), ("b", corpus[100:]), ("q", q)):
        np.save(tmp_path / f"{name}.npy", arr.astype(np.float32))
    fit = [str(tmp_path / "a.npy"), str(tmp_path / "b.npy")]
    r = whiten_files(fit, method="remove-top", remove=1)
    assert reads == {"a.npy": 2, "b.npy": 2}  # fit + before, then after
    assert r.before.mean_cosine == pytest.approx(Geometry.of(corpus).mean_cosine, rel=1e-9)
    reads.clear()
    r = whiten_files(fit, str(tmp_path / "t.npz"), apply=str(tmp_path / "q.npy"),
                     apply_out=str(tmp_path / "qw.npy"))  # fmt: skip
    assert reads == {"a.npy": 1, "b.npy": 1, "q.npy": 1}  # q: before and after together
    assert r.before.mean_cosine == pytest.approx(Geometry.of(q).mean_cosine, rel=1e-9)
    t = WhiteningTransform.load(tmp_path / "t.npz")
    assert r.after.mean_cosine == pytest.approx(Geometry.of(t.apply(q)).mean_cosine, rel=1e-6)
    reads.clear()
    whiten_files([], transform=str(tmp_path / "t.npz"), apply=str(tmp_path / "q.npy"))
    assert reads == {"q.npy": 1}


def test_whiten_cli_prints_a_before_after_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from collapselab.cli import main

    corpus, q, p = nuisance_pairs(100)
    np.save(tmp_path / "fit.npy", corpus.astype(np.float32))
    rc = main(["whiten", str(tmp_path / "fit.npy"), "-o", str(tmp_path / "t.npz"),
               "--method", "remove-top", "--remove", "1"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and "mean random-pair cosine" in out and "wrote" in out
    rc = main(["whiten", "--json", str(tmp_path / "fit.npy")])
    import json

    assert json.loads(capsys.readouterr().out)["transform"]["method"] == "whiten"
    rc = main(["whiten", str(tmp_path / "fit.npy"), "-o", str(tmp_path / "t.txt")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and ".npz" in err


@pytest.mark.parametrize(
    "options", [[], ["--method", "center"], ["--method", "remove-top", "--remove", "1"]]
)
def test_whiten_huge_finite_entries_work_or_fail_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str]
) -> None:
    """Entries of 1e200 (finite): whitening rescales them (works); centring / removing the
    top direction keeps them beyond float32, which the output cannot hold: one line that
    names the file and says so, never a RuntimeWarning or a false "NaN or Inf"."""
    import warnings

    from collapselab.cli import main

    path = tmp_path / "huge.npy"
    np.save(path, np.random.default_rng(0).standard_normal((50, 8)) * 1e200)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any RuntimeWarning (overflow in ldexp / cast) fails
        rc = main(["whiten", str(path), *options])
    out, err = capsys.readouterr()
    if not options:  # whiten: unit variance whatever the scale
        assert rc == 0 and err == "" and "mean random-pair cosine" in out
        return
    assert rc == 2 and err.count("\n") == 1
    assert f"{path}: the" in err and "beyond the float32 range" in err
    assert "NaN or Inf" not in err


# ------------------------------------------------------------------------- text files
def test_text_file_offsets_slices_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_bytes("first line\r\nsécond\nthird".encode())
    tf = TextFile(path)
    assert len(tf) == 3 and tf[1] == "sécond" and tf[-1] == "third"
    assert tf[0:2] == ["first line", "sécond"] and tf.read(2, 3) == ["third"]
    (tmp_path / "blank.txt").write_text("a\nb\n\nc\n")
    with pytest.raises(InputError, match=r"blank.txt: line 3 is empty"):
        TextFile(tmp_path / "blank.txt")
    (tmp_path / "bad.txt").write_bytes(b"ok\n\xff\xfe\n")
    with pytest.raises(InputError, match="line 2 is not valid UTF-8"):
        TextFile(tmp_path / "bad.txt")
    with pytest.raises(InputError, match="no such file"):
        TextFile(tmp_path / "nope.txt")


def test_atomic_npy_writes_a_valid_file_or_nothing(tmp_path: Path) -> None:
    z = RNG.standard_normal((10, 3)).astype(np.float32)
    out = tmp_path / "z.npy"
    with atomic_npy(out, (10, 3)) as f:
        for i in range(0, 10, 4):
            f.write(z[i : i + 4].tobytes())
    assert np.array_equal(np.load(out), z)
    with pytest.raises(InputError, match="expected 120"):  # a short write never lands
        with atomic_npy(out, (10, 3)) as f:
            f.write(z[:5].tobytes())
    with pytest.raises(RuntimeError):  # an error mid-way leaves the old file as it was
        with atomic_npy(out, (10, 3)) as f:
            f.write(z[:5].tobytes())
            raise RuntimeError("interrupted")
    assert np.array_equal(np.load(out), z)
    assert os.listdir(tmp_path) == ["z.npy"]


# ------------------------------------------------------------------------------- data
WORDNET_LINES = [
    "  1 This software and database is being provided to you, the LICENSEE, by  \n",
    '00003553 03 n 02 whole 0 unit 0 015 @ 00002684 n 0000 | an assemblage of parts that is '
    'regarded as a single entity; "how big is that part compared to the whole?"; "the team '
    'is a unit"  \n',
    "00002137 03 n 02 abstraction 0 abstract_entity 0 010 @ 00001740 n 0000 | a general "
    "concept formed by extracting common features from specific examples  \n",
    '00021939 03 n 01 artifact 0 017 @ 00003553 n 0000 | a man-made object taken as a whole; '
    '"artifacts are common"  \n',
]


def test_parse_wordnet_lines() -> None:
    assert parse_wordnet_line(WORDNET_LINES[0], "noun") is None  # licence header
    whole = parse_wordnet_line(WORDNET_LINES[1], "noun")
    assert whole is not None
    assert whole.gloss == "an assemblage of parts that is regarded as a single entity"
    assert whole.example == "how big is that part compared to the whole?"
    assert (whole.lemma, whole.pos, whole.offset) == ("whole", "noun", 3553)
    assert parse_wordnet_line(WORDNET_LINES[2], "noun") is None  # no example


def test_wordnet_and_gensim_readers_on_fake_installs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "wn").mkdir()
    (tmp_path / "wn" / "data.noun").write_text("".join(WORDNET_LINES), encoding="latin-1")
    got = wordnet_pairs(tmp_path / "wn", pos=("noun",))
    assert [p.lemma for p in got] == ["whole", "artifact"]
    assert [p.lemma for p in wordnet_pairs(tmp_path / "wn", ("noun",), 4)] == ["whole"]
    monkeypatch.setenv("COLLAPSELAB_WORDNET_DIR", str(tmp_path / "wn"))
    assert wordnet_dir() == tmp_path / "wn"
    with pytest.raises(ConfigError, match="apt-get install wordnet-base"):
        wordnet_pairs(tmp_path)
    g = tmp_path / "gensim"
    g.mkdir()
    (g / "lee.cor").write_bytes(b"doc one\ndoc two \xa3\ndoc three\n")
    (g / "similarities0-1.txt").write_text("1 0.2 0.4\n0 1 0.6\n0 0 1\n")
    (g / "simlex999.txt").write_text("# comment\nold\tnew\t1.58\nsmart\tclever\t9.2\n")
    lee = lee_corpus(g)
    assert lee.documents[1] == "doc two \u00a3"
    assert np.array_equal(lee.similarity, [[1, 0.2, 0.4], [0.2, 1, 0.6], [0.4, 0.6, 1]])
    assert word_pairs("simlex999", g) == [("old", "new", 1.58), ("smart", "clever", 9.2)]
    with pytest.raises(ConfigError, match="no gensim test data"):
        lee_corpus(tmp_path / "wn")


def test_real_wordnet_pairs() -> None:
    try:
        pairs = wordnet_pairs()
    except ConfigError:
        pytest.skip("WordNet not installed (apt-get install wordnet-base)")
    assert len(pairs) > 20000  # WordNet 3.0: ~29k synsets with a sentence-long example
    assert all(p.gloss and len(p.example.split()) >= 3 for p in pairs)
    assert {p.pos for p in pairs} == {"noun", "verb", "adj", "adv"}


def test_real_gensim_ground_truth() -> None:
    try:
        lee = lee_corpus()
    except ConfigError:
        pytest.skip("gensim not installed (pip install gensim)")
    assert len(lee.documents) == 50
    assert np.array_equal(lee.similarity, lee.similarity.T)
    assert np.all(np.diag(lee.similarity) == 1.0)
    assert len(word_pairs("simlex999")) == 999 and len(word_pairs("wordsim353")) == 353


# ------------------------------------------------------------------------ experiment
def test_flush_denormals_restores_the_previous_mode() -> None:
    def flushing() -> bool:
        return (torch.tensor([1e-39]) * 1.0).item() == 0.0

    before = flushing()
    with flush_denormals():
        assert flushing()
    assert flushing() == before


def test_pair_losses_exact_values() -> None:
    z = torch.nn.functional.normalize(torch.randn(6, 4, dtype=torch.float64), dim=1)
    assert pair_loss("cosine", z, z, 0.05).item() == pytest.approx(0.0, abs=1e-12)
    assert pair_loss("cosine", z, -z, 0.05).item() == pytest.approx(4.0, rel=1e-12)
    same = torch.ones(5, 4, dtype=torch.float64)  # collapsed: in-batch InfoNCE = log N
    assert pair_loss("infonce", same, same, 0.05).item() == pytest.approx(np.log(5), rel=1e-12)


def test_finetune_config_validation() -> None:
    with pytest.raises(ConfigError, match="multiple of every"):
        FinetuneConfig(steps=25, every=10)
    with pytest.raises(ConfigError, match="unknown losses"):
        FinetuneConfig(losses=("cosine", "triplet"))
