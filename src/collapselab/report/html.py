"""A self-contained report: one HTML file (figures embedded, no network, no JavaScript),
the same figures as PNG files, and a JSON file holding every number the report shows.

Every table is stored in the JSON under ``tables[<id>]`` with its raw values, and the
HTML cells are rendered from those values with :func:`cell_text`, so a number in the
report is always a number in the JSON. Every file is written atomically: an interrupted
run never leaves a half-written report, and re-running into the same folder replaces it
cleanly.
"""

from __future__ import annotations

import base64
import html
import json
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from collapselab._atomic import write_bytes
from collapselab._json import jsonable
from collapselab.report.plots import save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def cell_text(v: Any) -> str:
    """How a table value is shown (the JSON keeps the raw value)."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if not math.isfinite(v) else f"{v:.4g}"
    return str(v)


@dataclass
class Table:
    """A table: ``id`` keys it in the JSON; ``rows`` hold raw values (str / int / float)."""

    id: str
    header: list[str]
    rows: list[list[Any]]
    caption: str = ""


@dataclass
class FigureRef:
    """A rendered figure: saved as ``<name>.png`` and embedded in the HTML."""

    name: str
    caption: str
    png: bytes = b""


@dataclass
class Section:
    """One section of the report, rendered in order: paragraphs, tables, figures."""

    id: str
    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[FigureRef] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # numbers behind the section


@dataclass
class Summary:
    """The card a report opens with: what to conclude, before any evidence.

    ``headline`` is the one sentence a reader acts on; ``verdict`` (``healthy``,
    ``warning``, ``dimensional``, ``complete``, or any word) colours the card; ``facts``
    are short label / value lines; ``actions`` say what to do, in order.
    """

    headline: str
    verdict: str = ""
    facts: list[tuple[str, str]] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"headline": self.headline, "verdict": self.verdict,
                "facts": [list(f) for f in self.facts], "actions": self.actions}  # fmt: skip


@dataclass
class Report:
    """Sections plus free-form data; :func:`write_report` renders it (the optional
    :class:`Summary` card first)."""

    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)
    summary: Summary | None = None

    def add_figure(self, section: Section, name: str, fig: Figure, caption: str) -> None:
        """Render ``fig`` to PNG bytes now (figures are not kept open)."""
        with tempfile.TemporaryDirectory() as tmp:
            path = save_figure(fig, Path(tmp) / f"{name}.png")
            section.figures.append(FigureRef(name, caption, path.read_bytes()))

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "summary": None if self.summary is None else self.summary.to_json(),
            "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "sections": {
                s.id: {
                    "title": s.title,
                    "data": s.data,
                    "figures": [f"{f.name}.png" for f in s.figures],
                }
                for s in self.sections
            },
            "tables": {
                t.id: {"header": t.header, "rows": t.rows, "caption": t.caption}
                for s in self.sections
                for t in s.tables
            },
        }


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.7em;margin-bottom:.2em}
h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3} td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1em 0} figure img{max-width:100%;box-sizing:border-box;border:1px solid #eee}
figcaption{font-size:.9em;color:#444} .subtitle{color:#555} nav li{margin:.15em 0}
nav ul{list-style:none;padding-left:1.2em}
.v-healthy{color:#00734d;font-weight:600} .v-dimensional{color:#b35900;font-weight:600}
.v-complete{color:#b3003b;font-weight:600} .v-fails{color:#b3003b;font-weight:600}
.v-holds{color:#00734d;font-weight:600} .v-holds-with-correction{color:#b35900;font-weight:600}
.card{border:2px solid #999;border-left-width:10px;border-radius:6px;padding:.8em 1.2em;
margin:1.2em 0;background:#fafafa} .card p.headline{font-size:1.25em;font-weight:600;margin:.2em 0}
.card dl{display:grid;grid-template-columns:max-content 1fr;gap:.15em 1em;margin:.6em 0}
.card dt{color:#555} .card dd{margin:0} .card ol{margin:.4em 0}
.card.s-healthy,.card.s-holds{border-color:#00734d} .card.s-warning{border-color:#b38f00}
.card.s-dimensional,.card.s-holds-with-correction{border-color:#b35900}
.card.s-complete,.card.s-fails{border-color:#b3003b}
"""


def _render_cell(v: Any) -> str:
    text = html.escape(cell_text(v))
    if isinstance(v, str) and v in {"healthy", "dimensional", "complete", "holds", "fails",
                                    "holds-with-correction"}:  # fmt: skip
        return f'<td class="v-{v}">{text}</td>'
    if isinstance(v, int | float) and not isinstance(v, bool):
        return f'<td class="num">{text}</td>'
    return f"<td>{text}</td>"


def _render_summary(s: Summary) -> str:
    word = "".join(c for c in s.verdict.lower() if c.isalnum() or c == "-")
    out = [f'<section id="summary" class="card s-{word}" aria-label="summary">',
           f'<p class="headline">{html.escape(s.headline)}</p>']  # fmt: skip
    if s.facts:
        out.append("<dl>")
        out += [f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in s.facts]
        out.append("</dl>")
    if s.actions:
        out.append("<p><strong>What to do</strong></p><ol>")
        out += [f"<li>{html.escape(a)}</li>" for a in s.actions]
        out.append("</ol>")
    out.append("</section>")
    return "\n".join(out)


def render_html(report: Report) -> str:
    """The report as one HTML string (figures inlined as base64 PNG data URIs)."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(report.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(report.title)}</h1>",
    ]
    if report.subtitle:
        out.append(f'<p class="subtitle">{html.escape(report.subtitle)}</p>')
    if report.summary is not None:
        out.append(_render_summary(report.summary))
    # titles that number themselves ("1. The article's ...") go in a plain list
    numbered = all(s.title[:1].isdigit() for s in report.sections)
    out.append("<nav><ul>" if numbered else "<nav><ol>")
    out += [f'<li><a href="#{s.id}">{html.escape(s.title)}</a></li>' for s in report.sections]
    out.append("</ul></nav>" if numbered else "</ol></nav>")
    for s in report.sections:
        out.append(f'<section id="{s.id}"><h2>{html.escape(s.title)}</h2>')
        out += [f"<p>{html.escape(p)}</p>" for p in s.paragraphs]
        for t in s.tables:
            out.append(f'<table id="table-{t.id}">')
            if t.caption:
                out.append(f"<caption>{html.escape(t.caption)}</caption>")
            out.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in t.header) + "</tr>")
            out += ["<tr>" + "".join(_render_cell(v) for v in row) + "</tr>" for row in t.rows]
            out.append("</table>")
        for f in s.figures:
            data = base64.b64encode(f.png).decode("ascii")
            out.append(
                f'<figure id="figure-{f.name}"><img src="data:image/png;base64,{data}" '
                f'alt="{html.escape(f.caption)}" data-file="{f.name}.png">'
                f"<figcaption>{html.escape(f.caption)}</figcaption></figure>"
            )
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out)


def write_report(report: Report, out_dir: str | Path) -> Path:
    """Write ``report.html``, ``report.json`` and every figure's PNG into ``out_dir``.

    Each file is written atomically (temp file, then rename), figures first, the JSON
    next and the self-contained HTML last; PNGs of an earlier report in the same folder
    that this one no longer has are removed. Other files in ``out_dir`` (e.g. the cached
    runs of ``compare``) are left alone.

    Returns:
        The path of ``report.html``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    previous: set[str] = set()
    old_json = out / "report.json"
    if old_json.exists():
        try:
            old = json.loads(old_json.read_text())
            previous = {f for sec in old.get("sections", {}).values() for f in sec["figures"]}
        except (ValueError, KeyError, TypeError, AttributeError):
            previous = set()
    current = set()
    for s in report.sections:
        for f in s.figures:
            write_bytes(out / f"{f.name}.png", f.png, fsync=False)
            current.add(f"{f.name}.png")
    text = json.dumps(jsonable(report.to_json()), indent=1, allow_nan=False)
    write_bytes(old_json, text.encode(), fsync=False)
    write_bytes(out / "report.html", render_html(report).encode("utf-8"), fsync=False)
    for name in previous - current:
        if "/" not in name and name.endswith(".png"):
            (out / name).unlink(missing_ok=True)
    return out / "report.html"
