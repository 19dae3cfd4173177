"""`collapselab demo --quick` end to end, and the report writer's guarantees."""

from __future__ import annotations

import json
import re
import struct
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from collapselab.report.html import Report, Section, Table, cell_text, write_report
from collapselab.report.plots import new_figure

sys.path.insert(0, str(Path(__file__).parent))
from cdp import find_chromium, load_and_inspect  # noqa: E402
from page_html import PageHtml as _Tables  # noqa: E402


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``collapselab demo --quick`` run as a user runs it (a whole process, on a pipe); its
    stdout and stderr are kept beside the report."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("demo") / "report"
    proc = subprocess.run([sys.executable, "-m", "collapselab", "demo", "--quick", "--out",
                           str(out)], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (out.parent / "stdout.txt").write_text(proc.stdout)
    (out.parent / "stderr.txt").write_text(proc.stderr)
    return out


def test_demo_prints_what_to_conclude_and_labels_each_run(demo_dir: Path) -> None:
    stdout = (demo_dir.parent / "stdout.txt").read_text()
    stderr = (demo_dir.parent / "stderr.txt").read_text().splitlines()
    summary = json.loads((demo_dir / "report.json").read_text())["summary"]
    lines = stdout.splitlines()
    # the summary card, not the report's tables: its headline first, a short text
    assert " ".join(stdout.split()).startswith(" ".join(summary["headline"].split()))
    assert len(lines) < 60 and max(map(len, lines)) <= 100
    assert lines[-1] == f"report: {demo_dir / 'report.html'}"
    # every run labelled on its own line (no bar on a pipe), and nothing else on stderr
    assert "[demo] digits: simclr (1/2)" in stderr and "[demo] digits: alignment (2/2)" in stderr
    assert "[demo] demo 1: variance loss, 500 steps" in stderr
    assert "variance-gradient" in stdout  # ids are never split at a hyphen
    assert all(ln.startswith("[demo] ") for ln in stderr), stderr


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
    expr = expr[:-2] + (
        ", first: Array.from(document.body.children).slice(0, 4).map(e => e.tagName + '#' + "
        "e.id), card: document.getElementById('summary').getBoundingClientRect().top, "
        "wide: Array.from(document.images).filter(i => i.naturalWidth >= 1000).length})"
    )
    value, errors = load_and_inspect((demo_dir / "report.html").as_uri(), expr, find_chromium())  # type: ignore[arg-type]
    res = json.loads(value)
    assert errors == []
    assert res["n"] >= 7 and res["ok"] == res["n"] and res["wide"] == res["n"]
    assert res["h2"] == 6  # one heading a section
    # the summary card comes first, right under the title (and in the first screen)
    assert res["first"] == ["H1#", "P#", "SECTION#summary", "NAV#"]
    assert res["card"] < 400


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


# ----------------------------------------------------------------------------- summary
class _Card(HTMLParser):
    """The text of the summary card and what precedes it in the body."""

    def __init__(self) -> None:
        super().__init__()
        self.before: list[str] = []  # tags opened in <body> before the card
        self.text: list[str] = []
        self._depth = 0  # > 0 inside the card's <section>
        self._body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "body":
            self._body = True
        elif self._depth:
            self._depth += tag == "section"
        elif tag == "section" and a.get("id") == "summary":
            self._depth = 1
        elif self._body and not self.text:
            self.before.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._depth and tag == "section":
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._depth:
            self.text.append(data)


def test_summary_card_comes_first_and_quotes_the_tables(demo_dir: Path) -> None:
    data = json.loads((demo_dir / "report.json").read_text())
    summary, tables = data["summary"], data["tables"]
    card = _Card()
    card.feed((demo_dir / "report.html").read_text())
    text = " ".join("".join(card.text).split())
    # first: nothing but the title (and subtitle) before it, no section heading
    assert card.before == ["h1", "p"], card.before
    assert summary["headline"] in text and len(summary["facts"]) >= 5
    assert len(summary["actions"]) >= 2
    # every number the card quotes is a table cell, shown as the table shows it
    html_tables = _Tables()
    html_tables.feed((demo_dir / "report.html").read_text())
    assert len(summary["numbers"]) >= 15
    for q in summary["numbers"]:
        t = tables[q["table"]]
        rows = [i for i, r in enumerate(t["rows"]) if r[0] == q["row"]]
        i = rows[q["index"]]
        col = t["header"].index(q["column"])
        assert t["rows"][i][col] == q["value"], q
        assert html_tables.tables[q["table"]][i + 1][col] == q["shown"] == cell_text(q["value"])
        if not isinstance(q["value"], bool):
            assert q["shown"] in text, q
    # the claim counts are the theory table's
    verdicts = [r[2] for r in tables["theory"]["rows"]]
    n = {v: verdicts.count(v) for v in ("holds", "holds-with-correction", "fails")}
    assert summary["counts"]["claims"] == len(verdicts) and all(
        summary["counts"][v] == c for v, c in n.items())  # fmt: skip
    assert (f"{len(verdicts)} checked: {n['holds']} hold, {n['holds-with-correction']} hold "
            f"with a correction, {n['fails']} fail") in text  # fmt: skip
    assert f"{n['fails']} of the article's {len(verdicts)} claims fail" in summary["headline"]
    # every digits method: its verdict, effective rank and kNN accuracy, as in the table
    h = tables["compare"]["header"]
    for row in tables["compare"]["rows"]:
        word = row[h.index("verdict")]
        word = word if word == "healthy" else f"{word} collapse"
        assert (f"{row[0]} {word} (effective rank {cell_text(row[h.index('eff. rank')])}, "
                f"kNN accuracy {cell_text(row[h.index('kNN acc')])})") in text, row[0]
    # the corrected demo raises the rank, and the headline says so
    d2 = {r[0]: r for r in tables["demo2"]["rows"]}
    cor = d2["infonce-corrected, Linear(128, 128)"]
    assert cor[9] > cor[8] and "keeps and raises the rank" in summary["headline"]
    assert f"effective rank {cell_text(cor[8])} -> {cell_text(cor[9])}" in text


# ----------------------------------------------------------------------------- figures
def _png_size_dpi(path: Path) -> tuple[int, int, float]:
    """(width, height, dots per inch) from the PNG's IHDR and pHYs chunks."""
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", raw[16:24])
    pos, dpi = 8, 0.0
    while pos < len(raw):
        (length,) = struct.unpack(">I", raw[pos : pos + 4])
        kind = raw[pos + 4 : pos + 8]
        if kind == b"pHYs":
            ppu_x, _, unit = struct.unpack(">IIB", raw[pos + 8 : pos + 17])
            dpi = ppu_x * 0.0254 if unit == 1 else 0.0
        if kind in (b"IDAT", b"IEND"):
            break
        pos += 12 + length
    return width, height, dpi


def test_every_figure_is_titled_labelled_and_legible(demo_dir: Path) -> None:
    """Each figure: a title, labelled axes, saved >= 150 dpi and >= 1000 px wide (the page
    shows figures ~1070 px wide), as report.json records and the PNG itself says."""
    sections = json.loads((demo_dir / "report.json").read_text())["sections"]
    checked = 0
    for sid, sec in sections.items():
        meta = sec["data"].get("figures", {})
        assert sorted(f"{name}.png" for name in meta) == sorted(sec["figures"]), sid
        for name, m in meta.items():
            assert m["title"].strip(), (sid, name)
            assert m["axes"] and all(a["labelled"] for a in m["axes"]), (name, m["axes"])
            width, height, dpi = _png_size_dpi(demo_dir / f"{name}.png")
            assert width >= 1000 and dpi >= 150 - 0.5, (name, width, dpi)
            assert [width, height] == m["size_px"], name
            checked += 1
    assert checked >= 9


def test_tian_figure_shows_the_weight_decay_collapse(demo_dir: Path) -> None:
    """The Tian figure plots tr F on a log axis: the wd-0.3 run's curve falls by orders of
    magnitude (the alignment alone is ~1 in every run and cannot show it)."""
    sec = json.loads((demo_dir / "report.json").read_text())["sections"]["field"]
    lives, dies = sec["data"]["tian"]
    assert dies["config"]["weight_decay"] == 0.3 and dies["collapsed"]
    rel = [v / dies["trace_f"][0] for v in dies["trace_f"]]
    assert rel[-1] < 1e-10 and rel[-1] == pytest.approx(dies["relative_variance"], rel=1e-9)
    assert lives["trace_f"][-1] / lives["trace_f"][0] > 0.05
    assert len(dies["trace_f"]) == len(dies["steps"]) == len(dies["alignment"])
    axes = sec["data"]["figures"]["field_tian_alignment"]["axes"]
    first = axes[0]
    assert "tr F" in first["ylabel"] and first["yscale"] == "log"
    lo, hi = first["ylim"]
    assert lo <= rel[-1] and hi >= 1.0 and hi / lo > 1e10  # the whole fall is on screen
