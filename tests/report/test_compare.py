"""`collapselab compare`: table, figures, and resume from cached runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
    data = json.loads((out / "report.json").read_text())
    figs = data["sections"]["compare"]["figures"]
    assert len(figs) == 4 and all((out / f).exists() for f in figs)
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
