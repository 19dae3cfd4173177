"""The claim registry, the JSON contract and the ``collapselab theory`` command."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import pytest
import torch

from collapselab.cli import main
from collapselab.errors import ConfigError
from collapselab.theory import CLAIMS, VERDICTS, Finding, run_all
from collapselab.theory.registry import jsonable, select, torch_threads

# Every claim id with the verdict its test asserts (tests in test_theory_*.py). A claim
# added to the registry without a test here fails test_every_claim_has_an_expected_verdict.
EXPECTED_VERDICTS = {
    "intro-gradients-vanish": "holds-with-correction",
    "collapsed-rank": "holds-with-correction",
    "attraction-minimum": "holds",
    "attraction-stable": "holds",
    "variance-gradient": "fails",
    "variance-stationary": "holds",
    "training-stops": "holds",
    "second-moment-spectrum": "holds-with-correction",
    "variance-one-dimension": "fails",
    "demo1-variance": "holds",
    "demo1-eigenvalues": "fails",
    "infonce-softmax": "holds",
    "infonce-gradient": "fails",
    "uniform-softmax": "holds",
    "infonce-stationary": "holds",
    "infonce-collapse-unstable": "holds",
    "perturbation-argument": "fails",
    "perturbation-growth": "holds",
    "covariance-zero": "holds",
    "rank-maximised": "fails",
    "centred-spectrum": "fails",
    "small-eigenvalues-grow": "holds-with-correction",
    "energy-softmax": "holds",
    "energy-collapse": "fails",
    "energy-collapse-positives": "holds",
    "charged-particles": "holds-with-correction",
    "demo2-min-eig": "fails",
}


def test_every_claim_has_an_expected_verdict() -> None:
    assert [c.id for c in CLAIMS] == list(EXPECTED_VERDICTS)
    assert len({c.id for c in CLAIMS}) == len(CLAIMS)
    for c in CLAIMS:
        assert c.section and c.quote and c.statement, c.id


@pytest.mark.parametrize("claim_id", list(EXPECTED_VERDICTS))
def test_verdict_of_each_claim(claim_id: str, claim_evidence: Callable[[str], Finding]) -> None:
    ev = claim_evidence(claim_id)
    assert ev.verdict == EXPECTED_VERDICTS[claim_id], ev.summary
    assert ev.summary and ev.explanation and ev.numbers
    # the JSON form of the numbers is strict JSON (no NaN) and round-trips
    json.loads(json.dumps(jsonable(ev.numbers), allow_nan=False))


def test_evidence_correction_rules() -> None:
    Finding("holds-with-correction", "s", {}, "e", correction="the condition")
    Finding("fails", "s", {}, "e", correction="the true statement")
    with pytest.raises(ConfigError):
        Finding("holds-with-correction", "s", {}, "e")
    with pytest.raises(ConfigError):
        Finding("holds", "s", {}, "e", correction="not allowed")
    with pytest.raises(ConfigError):
        Finding("maybe", "s", {}, "e")  # type: ignore[arg-type]
    assert VERDICTS == ("holds", "holds-with-correction", "fails")


@pytest.mark.parametrize("claim_id", [c.id for c in CLAIMS if not c.id.startswith("demo")])
def test_every_failed_claim_gives_the_true_statement(
    claim_id: str, claim_evidence: Callable[[str], Finding]
) -> None:
    ev = claim_evidence(claim_id)
    assert (ev.correction is None) == (ev.verdict == "holds"), (claim_id, ev.verdict)


def test_jsonable_converts_tensors_arrays_and_non_finite() -> None:
    out = jsonable({"t": torch.tensor([1.5, math.nan]), "a": np.array([1, 2]), "f": math.inf,
                    "n": np.float32(0.25), "b": np.bool_(True), 3: (1, 2)})  # fmt: skip
    assert out == {"t": [1.5, None], "a": [1, 2], "f": None, "n": 0.25, "b": True, "3": [1, 2]}


def test_select_keeps_registry_order_and_rejects_unknown_ids() -> None:
    ids = ["demo2-min-eig", "collapsed-rank"]
    assert [c.id for c in select(CLAIMS, ids)] == ["collapsed-rank", "demo2-min-eig"]
    with pytest.raises(ConfigError, match="unknown id 'nope'"):
        select(CLAIMS, ["nope"])


def test_torch_threads_restores_the_setting() -> None:
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_run_all_subset_and_to_dict_contract() -> None:
    results = run_all(["variance-gradient", "covariance-zero"])
    assert [r.id for r in results] == ["variance-gradient", "covariance-zero"]
    d = results[0].to_dict()
    for key in ("id", "section", "quote", "statement", "verdict", "evidence"):
        assert key in d
    assert d["verdict"] == "fails"
    assert d["correction"] == "grad_{z_i} Var(Z) = (2/N)(z_i - mu)."
    assert results[1].to_dict()["correction"] is None


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["theory", "--json", "--claim", "uniform-softmax", "--claim",
                 "covariance-zero"]) == 0  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert [d["id"] for d in data] == ["uniform-softmax", "covariance-zero"]
    assert data[0]["quote"] == "Softmax probabilities become uniform: P(k|i) = 1/N"
    assert data[0]["evidence"]["max_abs_P_minus_1_over_N"] == 0.0


def test_cli_claim_prints_everything_the_check_found(capsys: pytest.CaptureFixture[str]) -> None:
    from collapselab.theory import run_all

    assert main(["theory", "--claim", "variance-gradient"]) == 0
    out = capsys.readouterr().out
    r = run_all(["variance-gradient"])[0]
    assert out.startswith("variance-gradient: FAILS")
    # the article's words, the statement, the finding, the explanation and the correction
    for label, text in [("the article", r.quote), ("statement tested", r.statement),
                        ("finding", r.summary), ("why", r.explanation),
                        ("correction", r.correction)]:  # fmt: skip
        assert f"\n{label}:\n" in out
        assert " ".join(text.split())[:40] in " ".join(out.split())
    assert "numbers:" in out and "ratio_claimed_to_autograd: 17" in out  # N = 17: off by N


def test_cli_claim_without_correction_has_no_correction_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["theory", "--claim", "uniform-softmax"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("uniform-softmax: HOLDS") and "\ncorrection:" not in out


def test_cli_unknown_claim_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["theory", "--claim", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("collapselab theory: error: argument --claim: invalid choice: 'nope'")
    assert "variance-gradient" in err  # the valid ids are listed
    assert err.count("\n") == 1


def test_theory_help_lists_the_claim_ids(capsys: pytest.CaptureFixture[str]) -> None:
    from collapselab.theory import CLAIMS

    assert main(["theory", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert all(c.id in out for c in CLAIMS)


@pytest.mark.slow
def test_cli_full_run_under_a_minute(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["theory", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["id"] for d in data] == list(EXPECTED_VERDICTS)
    assert [d["verdict"] for d in data] == list(EXPECTED_VERDICTS.values())
    assert sum(d["seconds"] for d in data) < 60
