"""`collapselab compare`: table, figures, and resume from cached runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import collapselab.experiments.compare as cmp
from collapselab.cli import main
from collapselab.errors import ConfigError


def test_compare_cli_writes_report_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    out = tmp_path / "cmp"
    argv = [
        "compare",
        "--methods",
        "simclr,variance",
        "--data",
        "digits",
        "--epochs",
        "2",
        "--seeds",
        "2",
        "--out",
        str(out),
        "--json",
    ]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["header"][0] == "method" and "±" in first["header"]
    assert [r[0] for r in first["rows"]] == ["simclr", "variance"]
    assert sorted(p.name for p in (out / "runs").iterdir()) == [
        "simclr-s0.json",
        "simclr-s1.json",
        "variance-s0.json",
        "variance-s1.json",
    ]
    # every number of the table is the mean / std over seeds of the cached runs' summaries
    runs = {p.stem: json.loads(p.read_text())["summary"] for p in (out / "runs").iterdir()}
    header = first["header"]
    for row in first["rows"]:
        per_seed = [runs[f"{row[0]}-s{s}"] for s in (0, 1)]
        for key, label in [("knn_accuracy", "kNN acc"), ("linear_accuracy", "linear acc"),
                           ("effective_rank", "eff. rank")]:  # fmt: skip
            values = [r[key] for r in per_seed]
            col = header.index(label)
            assert row[col] == pytest.approx(np.mean(values), rel=1e-12), (row[0], key)
            assert row[col + 1] == pytest.approx(np.std(values), rel=1e-9, abs=1e-15)
        assert row[header.index("verdict")] == "/".join(sorted({r["verdict"] for r in per_seed}))
        assert per_seed[0]["knn_accuracy"] != per_seed[1]["knn_accuracy"]  # seeds differ
    simclr, variance = ({h: v for h, v in zip(header, r, strict=True)} for r in first["rows"])
    # what 2 epochs on digits must show: SimCLR learns (chance is 0.1, raw pixels ~0.95
    # kNN), the article's variance objective concentrates the representation in a few
    # directions and loses accuracy against it
    assert simclr["kNN acc"] > 0.8 and simclr["kNN acc"] > variance["kNN acc"]
    # (measured: kNN 0.946 vs 0.876, 5-label 0.81 vs 0.56, effective rank 10.2 vs 4.7)
    assert variance["5-label acc"] < simclr["5-label acc"] - 0.1
    assert variance["eff. rank"] < 0.7 * simclr["eff. rank"]
    data = json.loads((out / "report.json").read_text())
    figs = data["sections"]["compare"]["figures"]
    assert len(figs) == 4 and all((out / f).exists() for f in figs)
    # every figure titled, its axes labelled, and wide enough to read at the page's width
    meta = data["sections"]["compare"]["data"]["figures"]
    assert sorted(f"{n}.png" for n in meta) == sorted(figs)
    for name, m in meta.items():
        assert m["title"] and all(a["labelled"] for a in m["axes"]), name
        width = int.from_bytes((out / f"{name}.png").read_bytes()[16:20], "big")
        assert width == m["size_px"][0] >= 1000, name
    assert data["tables"]["compare"]["rows"] == first["rows"]

    # resume: every run is cached, so nothing trains again and the table is identical
    def no_training(*a: Any, **k: Any) -> None:
        raise AssertionError("a cached run was trained again")

    monkeypatch.setattr(cmp, "train", no_training)
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == first["rows"]

    # a changed setting is not served from the cache
    with pytest.raises(AssertionError, match="trained again"):
        main([*argv[:6], "3", *argv[7:]])


def test_unknown_method_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", "--methods", "simclr,nope", "--out", str(tmp_path)]) == 2
    assert "unknown method" in capsys.readouterr().err
    with pytest.raises(ConfigError):
        cmp.run_compare(["simclr"], seeds=0)


def _record(method: str, verdict: str, uniformity: float, mean_cosine: float,
            spread: float, erank: float) -> cmp.RunRecord:  # fmt: skip
    h = cmp.MonitorPoint(20, uniformity=uniformity, mean_cosine=mean_cosine,
                         relative_variance=spread, effective_rank=erank, alignment=0.3)
    return cmp.RunRecord(method, 0, verdict=verdict, history=[h])


def test_align_uniform_caption_explains_a_collapsing_run_that_looks_uniform() -> None:
    healthy = _record("simclr", "healthy", -0.663, 0.828, 0.192, 14.6)
    odd = _record("alignment", "dimensional", -0.905, 0.646, 0.51, 1.93)
    text = cmp.align_uniform_caption([healthy, odd])
    assert "Why alignment (dimensional collapse) looks MORE uniform than simclr" in text
    assert "uncentred" in text and "angles" in text
    for number in ("-0.905", "0.646", "0.51", "1.93", "-0.663", "0.828", "0.192", "14.6"):
        assert number in text, number
    # a collapsing run that also looks less uniform needs no explanation
    plain = cmp.align_uniform_caption([healthy, _record("variance", "complete", -0.1, 0.99,
                                                        0.01, 1.0)])  # fmt: skip
    assert "MORE uniform" not in plain and "Complete collapse sits at uniformity 0" in plain


# a record as the previous version cached it: RunRecord's dict fields written as they were
# (the monitor's whole MonitorState.to_dict() per evaluation, losses as [step, loss] lists)
_LEGACY = {
    "method": "simclr", "seed": 1,
    "summary": {"method": "simclr", "data": "digits", "steps": 10, "epochs": 2,
                "first_collapse_step": None, "train_seconds": 1.5,
                "early_warning": {"alarm_step": None}, "knn_accuracy": 0.9,
                "linear_accuracy": 0.8, "knn_accuracy_5_per_class": 0.7,
                "effective_rank": 10.25, "verdict": "healthy", "severity": 0.0,
                "warning": None, "seconds": 2.5},
    "history": [{"step": 4, "verdict": "healthy", "warning": None, "effective_rank": 9.5,
                 "rankme": 11.0, "total_variance": 3.0, "uniformity": -2.0,
                 "alignment": None, "level": 0.0, "trends": {"effective_rank": None}}],
    "losses": [[0, 5.0], [1, 4.5]],
    "spectrum": [2.0, 1.0],
    "settings": {"method": "simclr", "data": "digits", "seed": 1, "epochs": 2},
}  # fmt: skip


def test_a_cached_record_of_the_previous_version_loads_typed() -> None:
    rec = cmp.RunRecord.from_dict(json.loads(json.dumps(_LEGACY)))
    assert (rec.method, rec.seed, rec.verdict, rec.steps) == ("simclr", 1, "healthy", 10)
    assert (rec.knn_accuracy, rec.linear_accuracy, rec.knn_accuracy_5_per_class,
            rec.effective_rank, rec.seconds) == (0.9, 0.8, 0.7, 10.25, 2.5)  # fmt: skip
    assert rec.first_collapse_step is None
    assert rec.history == [cmp.MonitorPoint(4, "healthy", effective_rank=9.5,
                                            total_variance=3.0, uniformity=-2.0)]  # fmt: skip
    assert rec.losses == [(0, 5.0), (1, 4.5)] and rec.spectrum == [2.0, 1.0]
    # the summary keeps every entry (report.json's runs), typed or passed through
    assert rec.summary() == _LEGACY["summary"]
    assert rec.extra["early_warning"] == {"alarm_step": None}
    # written and read again: the same record
    assert cmp.RunRecord.from_dict(json.loads(json.dumps(rec.to_dict()))) == rec


def test_a_malformed_cached_record_is_trained_again(tmp_path: Path, monkeypatch: Any) -> None:
    class Trained(Exception):
        pass

    def train(*a: Any, **k: Any) -> None:
        raise Trained

    monkeypatch.setattr(cmp, "train", train)
    path = tmp_path / "simclr-s1.json"
    settings = _LEGACY["settings"]
    for text in ("not json", "[]", json.dumps({"settings": settings, "summary": 3}),
                 json.dumps({**_LEGACY, "history": [{"verdict": "healthy"}]})):  # fmt: skip
        path.write_text(text)
        with pytest.raises(Trained):
            cmp.run_one("simclr", "digits", 1, 2, tmp_path)
    path.write_text(json.dumps(_LEGACY))  # well formed, same settings: served from the cache
    assert cmp.run_one("simclr", "digits", 1, 2, tmp_path).knn_accuracy == 0.9
