"""The README as a reader follows it: every link of its contents and every relative link
lands, and every snippet marked as an excerpt of an example is that file's code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _headings(text: str) -> set[str]:
    in_code, out = False, set()
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            out.add(_anchor(line.lstrip("#")))
    return out


def test_every_anchor_link_lands_on_a_heading() -> None:
    anchors = _headings(README)
    links = re.findall(r"\]\(#([^)]+)\)", README)
    assert len(links) >= 10  # the table of contents
    assert [a for a in links if a not in anchors] == []


def test_every_relative_link_names_a_file_that_exists() -> None:
    targets = re.findall(r"\]\((?!https?:|#)([^)#]+)", README)
    assert any(t.startswith("docs/") for t in targets)
    assert [t for t in targets if not (ROOT / t).exists()] == []


def test_the_first_screen_is_a_quick_start() -> None:
    head = "\n".join(README.splitlines()[:80])
    for must in ("## Contents", "## Quick start", "collapselab check emb.npy",
                 "--report", "--baseline"):  # fmt: skip
        assert must in head, must


EXCERPTS = re.findall(r"<!-- excerpt: (\S+) -->\n```python\n(.*?)```", README, re.S)


def test_the_readme_has_the_three_examples_as_excerpts() -> None:
    assert sorted(f for f, _ in EXCERPTS) == [
        "examples/hf_trainer.py", "examples/lightning_digits.py",
        "examples/sentence_transformers_trainer.py"]  # fmt: skip


@pytest.mark.parametrize(("path", "block"), EXCERPTS, ids=[f for f, _ in EXCERPTS])
def test_each_excerpt_is_the_example_s_code(path: str, block: str) -> None:
    source = [ln.strip() for ln in (ROOT / path).read_text().splitlines()]
    for line in block.splitlines():
        if line.strip():
            assert line.strip() in source, f"{path} has no line {line.strip()!r}"
