"""docs/theory.md quotes only numbers and verdicts that this version computes.

Every measured number on the page carries a marker naming its evidence field (see
:mod:`collapselab.theory.quoted`); the test formats the freshly computed value with the
marker's spec and compares the text exactly. Decimal numbers without a marker must be setup
parameters (listed below), and each section heading's verdict must be the computed one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from collapselab.errors import ConfigError
from collapselab.theory import CLAIMS, Finding
from collapselab.theory.quoted import fill, fmt, lookup, mismatches, quotes, unmarked
from collapselab.theory.registry import jsonable

DOCS = Path(__file__).resolve().parents[2] / "docs" / "theory.md"
#: Setup values (step sizes, perturbation sizes, temperatures, noise levels, tolerances) that
#: the page states as inputs, not as results.
PARAMETERS = {"0.2", "0.5", "0.1", "1e-6", "1e-9", "1e-5", "1e-3", "1e-10", "1e-2", "0.05",
              "1e3", "0.99", "0.0000", "1e-7", "1.1180e-12", "0.4286"}  # fmt: skip
#: Marked values below 1e-12 that may keep exact digits: zeros of exact arithmetic (no
#: rounding happens, so every machine gets them). Every other value that small is round-off,
#: a residual or an error whose digits depend on the BLAS, the CPU and the summation order:
#: the page quotes a bound (spec ``lt<bound>``), which both moments paths and every machine
#: reproduce.
EXACT_ZEROS = {
    ("second-moment-spectrum", "max_abs_eigenvalue_c_0"): "eigenvalues of the zero matrix",
    ("energy-collapse", "structured/mean_negative_pair_energy"): "products of distinct rows "
    "of the identity",
}
TINY = 1e-12
HEADING = re.compile(r"^### `([a-z0-9-]+)` — (holds with correction|holds|fails)$", re.M)
Get = Callable[[str], Finding]


def _built_kernel() -> object:
    try:
        import collapselab.metrics._rows as rows
    except ImportError:
        return None
    return rows


def _switched_off() -> bool:
    return os.environ.get("COLLAPSELAB_NO_KERNEL", "") not in ("", "0")


def all_evidence(claim_evidence: Get) -> dict[str, dict[str, object]]:
    return {c.id: jsonable(claim_evidence(c.id).numbers) for c in CLAIMS}


def test_every_quoted_number_is_the_computed_one(claim_evidence: Get) -> None:
    text = DOCS.read_text(encoding="utf-8")
    found = quotes(text, all_evidence(claim_evidence))
    assert len(found) > 100  # the page quotes its numbers through markers
    bad = [f"line {q.line}: {q.claim} {q.path}: page {q.quoted}, computed {q.computed}"
           for q in found if q.quoted != q.computed]  # fmt: skip
    assert not bad, "\n".join(bad) + "\n(refresh: python benchmarks/bench_theory.py)"


def digits_of_round_off(text: str, evidence: dict[str, dict[str, object]]) -> list[str]:
    """Markers that quote digits (not an ``lt`` bound) of a value below :data:`TINY`, but
    for the exact zeros of :data:`EXACT_ZEROS`."""
    bad = []
    for q in quotes(text, evidence):
        value = lookup(evidence[q.claim], q.path)
        assert isinstance(value, (int, float))
        exact = (q.claim, q.path) in EXACT_ZEROS and value == 0
        if abs(value) < TINY and not q.spec.startswith("lt") and not exact:
            bad.append(f"line {q.line}: {q.claim} {q.path} {q.spec} quotes {q.quoted}")
    return bad


def test_round_off_is_quoted_as_a_bound(claim_evidence: Get) -> None:
    """Digits below 1e-12 change with the machine (another machine's BLAS gave 1e-16 where
    this one gives 7e-17): the page quotes a bound (``< 1e-14``, spec ``lt1e-14``)."""
    text = DOCS.read_text(encoding="utf-8")
    bad = digits_of_round_off(text, all_evidence(claim_evidence))
    assert not bad, "\n".join(bad) + "\n(use a bound spec such as lt1e-14)"


def test_digits_of_round_off_are_found() -> None:
    evidence: dict[str, dict[str, object]] = {
        "c": {"err": 7e-17, "zero": 0.0, "big": 3.5e-10},
        "energy-collapse": {"structured": {"mean_negative_pair_energy": 0.0}},
    }
    text = ("7e-17<!--n c err .0e --> 1e-14<!--n c err lt1e-14 --> 0<!--n c zero .1g --> "
            "4e-10<!--n c big .0e --> 0<!--n energy-collapse "
            "structured/mean_negative_pair_energy .1g -->")  # fmt: skip
    assert digits_of_round_off(text, evidence) == [
        "line 1: c err .0e quotes 7e-17", "line 1: c zero .1g quotes 0"]


@pytest.mark.skipif(_built_kernel() is None or _switched_off(),
                    reason="the C row kernel is not built, or switched off: one path only")
def test_quoted_numbers_are_the_same_on_the_numpy_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every number on the page is reproduced by the moments' numpy path (no C kernel) too:
    where the two paths differ in the last digits, the page quotes fewer digits or a bound.
    (CI's second run with COLLAPSELAB_NO_KERNEL=1 checks the page on that path directly.)"""
    import collapselab.metrics.moments as mom

    monkeypatch.setattr(mom, "_rows", None)
    evidence = {c.id: jsonable(c.check().numbers) for c in CLAIMS}
    bad = [f"line {q.line}: {q.claim} {q.path}: page {q.quoted}, numpy path {q.computed}"
           for q in mismatches(DOCS.read_text(encoding="utf-8"), evidence)]  # fmt: skip
    assert not bad, "\n".join(bad)


def test_no_unmarked_measurements() -> None:
    assert unmarked(DOCS.read_text(encoding="utf-8"), PARAMETERS) == []


def test_headings_and_summary_give_the_computed_verdicts(claim_evidence: Get) -> None:
    text = DOCS.read_text(encoding="utf-8")
    headings = {cid: v.replace(" with ", "-with-") for cid, v in HEADING.findall(text)}
    assert list(headings) == [c.id for c in CLAIMS]
    verdicts = {c.id: claim_evidence(c.id).verdict for c in CLAIMS}
    assert headings == verdicts
    m = re.search(r"Of (\d+) claims, (\d+) hold, (\d+) hold with a correction, and (\d+) fail",
                  text)  # fmt: skip
    assert m is not None
    counts = [len(verdicts)] + [sum(v == k for v in verdicts.values())
                                for k in ("holds", "holds-with-correction", "fails")]  # fmt: skip
    assert [int(x) for x in m.groups()] == counts


def test_quoted_detects_a_changed_number_and_fill_repairs_it() -> None:
    evidence = {"c": {"a": {"10.0": [1.0, 9.53e-7]}, "b c": 2}}
    text = "shrinks x9.5e-7<!--n c a/10.0/1 .2g --> and ?<!--n c b%20c .0f --> twice"
    assert [q.computed for q in quotes(text, evidence)] == ["9.5e-7", "2"]
    assert [q.quoted for q in mismatches(text, evidence)] == ["?"]
    wrong = text.replace("9.5e-7", "9.6e-7")
    assert [q.quoted for q in mismatches(wrong, evidence)] == ["9.6e-7", "?"]
    assert mismatches(fill(wrong, evidence), evidence) == []
    assert unmarked("x 0.5 and 3.25<!--n c b%20c .3g --> and `1.5`", {"0.5"}) == []
    assert unmarked("an unmarked 3.25 here", set()) == ["3.25"]


def test_fmt_and_lookup() -> None:
    assert fmt(7e-17, "lt1e-14") == fmt(-3e-15, "lt1e-14") == "1e-14"  # round-off: the bound
    assert fmt(2e-13, "lt1e-14") == "2e-13"  # above it: the value, which no longer matches
    assert fmt(9.536e-7, ".2g") == "9.5e-7"
    assert fmt(1.6e5, ".2g") == "1.6e5"
    assert fmt(-10.0, ".4g") == "-10"
    with pytest.raises(ConfigError, match="no 'x'"):
        lookup({"a": [1]}, "a/x")
    with pytest.raises(ConfigError, match="no '3'"):
        lookup({"a": [1]}, "a/3")
    with pytest.raises(ConfigError, match="not a number"):
        quotes("1<!--n c a .0f -->", {"c": {"a": [1]}})
