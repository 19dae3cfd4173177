"""`collapselab demo --quick` end to end, and the report writer's guarantees."""

from __future__ import annotations

import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from collapselab.cli import main
from collapselab.report.html import Report, Section, Table, cell_text, write_report
from collapselab.report.plots import new_figure

sys.path.insert(0, str(Path(__file__).parent))
from cdp import find_chromium, load_and_inspect  # noqa: E402


class _Tables(HTMLParser):
    """Collects table cells (by table id) and img attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[dict[str, str | None]] = []
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self._table = str(a.get("id", "")).removeprefix("table-")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(a)

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "table":
            self._table = None


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "report"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    return out


def test_demo_writes_every_section_and_figure(demo_dir: Path) -> None:
    data = json.loads((demo_dir / "report.json").read_text())
    assert set(data) >= {"title", "generated", "sections", "tables"}
    assert list(data["sections"]) == ["demo1", "demo2", "theory", "compare", "particles",
                                      "field"]
    html = (demo_dir / "report.html").read_text()
    parser = _Tables()
    parser.feed(html)
    embedded = {img["data-file"] for img in parser.images}
    figures = [f for sec in data["sections"].values() for f in sec["figures"]]
    assert len(figures) >= 7
    for f in figures:
        png = demo_dir / f
        assert png.read_bytes()[:4] == b"\x89PNG", f
        assert f in embedded, f"{f} not referenced in the HTML"
    assert all(str(img["src"]).startswith("data:image/png;base64,") for img in parser.images)
    assert "<script" not in html.lower() and "http://" not in html and "https://" not in html


def test_every_table_number_is_in_the_json(demo_dir: Path) -> None:
    data = json.loads((demo_dir / "report.json").read_text())
    parser = _Tables()
    parser.feed((demo_dir / "report.html").read_text())
    assert set(parser.tables) == set(data["tables"])
    number = re.compile(r"^-?\d+(\.\d+)?(e[-+]?\d+)?$")
    checked = 0
    for tid, rows in parser.tables.items():
        ref = data["tables"][tid]
        assert rows[0] == ref["header"]
        assert len(rows) - 1 == len(ref["rows"])
        for html_row, json_row in zip(rows[1:], ref["rows"], strict=True):
            for text, value in zip(html_row, json_row, strict=True):
                if number.match(text):
                    # the cell shows the JSON's raw value to 4 significant digits
                    assert isinstance(value, (int, float)), (tid, text, value)
                    if isinstance(value, int):
                        assert text == str(value), (tid, text, value)
                    else:
                        assert float(text) == pytest.approx(value, rel=5e-4, abs=1e-300)
                        mantissa = text.lstrip("-").split("e")[0]
                        digits = mantissa.replace(".", "").lstrip("0")
                        assert 1 <= len(digits) <= 4, (tid, text, value)
                    checked += 1
    assert checked > 50


def test_demo_numbers_tell_the_story(demo_dir: Path) -> None:
    data = json.loads((demo_dir / "report.json").read_text())
    secs = data["sections"]
    assert secs["demo1"]["data"]["final_verdict"] == "complete"
    art, art128, cor32, cor = secs["demo2"]["data"]["traces"]
    assert [t["encoder"] for t in (art, art128, cor32, cor)] == [
        "Linear(32, 128)", "Linear(128, 128)", "Linear(32, 128)", "Linear(128, 128)"]
    # the article's printed min eig stays at float32 rounding (bound 128 * eps32 * lambda_max
    # ~ 5e-5); only the corrected loss on the uncapped encoder raises the effective rank
    assert max(abs(v) for v in art["printed"]) < 1e-5
    assert cor["effective_rank"][-1] > 1.5 * cor["effective_rank"][0]
    assert art128["effective_rank"][-1] < 1.05 * art128["effective_rank"][0]
    assert cor32["effective_rank"][-1] < 33 and cor32["min_eig"][-1] < 1e-12
    claims = {c["id"]: c["verdict"] for c in secs["theory"]["data"]["claims"]}
    assert "fails" in claims.values()
    runs = {r["method"]: r for r in secs["compare"]["data"]["runs"]}
    assert runs["simclr"]["verdict"] == "healthy"
    assert runs["alignment"]["verdict"] in ("complete", "dimensional")
    att, nce = secs["particles"]["data"]["runs"]
    assert att["mean_cosine"][-1] > 0.99 and nce["mean_cosine"][-1] < 0.5


def test_theory_and_report_show_the_same_demo_numbers(demo_dir: Path) -> None:
    # one implementation, the same seed: the theory table's evidence for a demo and the
    # report's trace of it are the same numbers, bit for bit (JSON round-trips floats exactly)
    secs = json.loads((demo_dir / "report.json").read_text())["sections"]
    evidence = {c["id"]: c["evidence"] for c in secs["theory"]["data"]["claims"]}

    def printout(trace: dict[str, Any]) -> list[float]:  # the steps the article prints
        return [v for s, v in zip(trace["steps"], trace["printed"], strict=True)
                if s % 50 == 0 and s < trace["total_steps"]]  # fmt: skip

    demo1 = secs["demo1"]["data"]["trace"]
    assert evidence["demo1-variance"]["per_seed"][0]["values"] == printout(demo1)
    ev2 = evidence["demo2-min-eig"]
    art, art128, cor32, cor = secs["demo2"]["data"]["traces"]
    assert ev2["per_seed"][0]["values"] == printout(art)
    for key, trace in (("corrected_linear_128_to_128", cor),
                       ("corrected_loss_article_encoder_32_to_128", cor32),
                       ("article_loss_linear_128_to_128", art128)):  # fmt: skip
        ev = ev2[key]
        assert ev["steps"] == trace["total_steps"], key
        assert [ev["min_eig_init"], ev["min_eig_final"]] == [
            trace["min_eig"][0], trace["min_eig"][-1]], key
        assert [ev["effective_rank_init"], ev["effective_rank_final"]] == [
            trace["effective_rank"][0], trace["effective_rank"][-1]], key
    # and the report's table shows the trace's numbers
    table = {row[0]: row for row in json.loads(
        (demo_dir / "report.json").read_text())["tables"]["demo2"]["rows"]}  # fmt: skip
    row = table["infonce-corrected, Linear(128, 128)"]
    assert row[6:10] == [cor["min_eig"][0], cor["min_eig"][-1], cor["effective_rank"][0],
                         cor["effective_rank"][-1]]  # fmt: skip


@pytest.mark.skipif(
    find_chromium() is None,
    reason="headless Chromium not installed "
    "(Debian: apt-get install chromium); .ci/run installs it",
)
def test_report_renders_in_headless_chromium(demo_dir: Path) -> None:
    expr = (
        "JSON.stringify({n: document.images.length, ok: Array.from(document.images)"
        ".filter(i => i.complete && i.naturalWidth > 0).length, "
        "h2: document.querySelectorAll('h2').length})"
    )
    value, errors = load_and_inspect((demo_dir / "report.html").as_uri(), expr, find_chromium())  # type: ignore[arg-type]
    res = json.loads(value)
    assert errors == []
    assert res["n"] >= 7 and res["ok"] == res["n"]
    assert res["h2"] == 6  # one heading a section


def _tiny_report(names: list[str]) -> Report:
    rep = Report("t")
    sec = Section("s", "S", tables=[Table("t1", ["a", "b"], [["x", 1.23456789], ["y", None]])])
    for n in names:
        fig = new_figure()
        fig.subplots().plot([0, 1], [1, 0])
        rep.add_figure(sec, n, fig, n)
    rep.sections.append(sec)
    return rep


def test_rewrite_replaces_cleanly_and_keeps_other_files(tmp_path: Path) -> None:
    out = tmp_path / "r"
    write_report(_tiny_report(["one", "two"]), out)
    (out / "runs").mkdir()
    (out / "runs" / "keep.json").write_text("{}")
    write_report(_tiny_report(["two", "three"]), out)
    assert sorted(p.name for p in out.glob("*.png")) == ["three.png", "two.png"]
    assert (out / "runs" / "keep.json").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    data = json.loads((out / "report.json").read_text())
    assert data["tables"]["t1"]["rows"] == [["x", 1.23456789], ["y", None]]
    cells = _Tables()
    cells.feed((out / "report.html").read_text())
    assert cells.tables["t1"] == [["a", "b"], ["x", "1.235"], ["y", "-"]]


@pytest.mark.parametrize("value, shown", [
    (None, "-"), (True, "yes"), (False, "no"), (3, "3"), (-12, "-12"), (1.23456789, "1.235"),
    (0.5, "0.5"), (2.0, "2"), (12345.678, "1.235e+04"), (1e-7, "1e-07"),
    (-0.000123456, "-0.0001235"),
    (float("nan"), "nan"), (float("inf"), "nan"), ("simclr", "simclr"),
])  # fmt: skip
def test_cell_text_shows_four_significant_digits(value: object, shown: str) -> None:
    assert cell_text(value) == shown


def test_interrupted_write_leaves_previous_report(tmp_path: Path, monkeypatch: Any) -> None:
    out = tmp_path / "r"
    write_report(_tiny_report(["one"]), out)
    before = (out / "report.html").read_bytes()
    import collapselab.report.html as h

    def boom(report: Report) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(h, "render_html", boom)
    with pytest.raises(KeyboardInterrupt):
        write_report(_tiny_report(["one", "two"]), out)
    assert (out / "report.html").read_bytes() == before
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_field_section_redraws_jing_and_tian_from_its_own_runs(demo_dir: Path) -> None:
    """The report's field section: strong augmentation collapses exactly its 4 noisy
    directions and weak none (Jing et al.); with weight decay 0.05 the predictor aligns
    with F and the run lives, with 0.3 it collapses (Tian et al.); both figures present."""
    sec = json.loads((demo_dir / "report.json").read_text())["sections"]["field"]
    weak, strong = sec["data"]["jing"]
    assert (weak["collapsed_dims"], strong["collapsed_dims"]) == (0, 4)
    assert strong["numerical_rank"] == 12 and weak["effective_rank"] > 15
    lives, dies = sec["data"]["tian"]
    assert lives["alignment"][0] < 0.2 < 0.9 < lives["alignment"][-1]
    assert not lives["collapsed"] and dies["collapsed"]
    assert dies["relative_variance"] < 0.05 < lives["relative_variance"]
    assert {f.split("/")[-1] for f in sec["figures"]} >= {"field_jing_spectra.png",
                                                        "field_tian_alignment.png"}
