"""Run by test_integrations_lightning.py: 2-process CPU DDP (gloo) with the callback.

Each rank writes its monitor's evaluations (rank<r>.json) and the local embeddings it fed
at the evaluation steps (rank<r>.npz) into the directory given as argv[1].
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning_module import Tiny, loader, trainer

from collapselab.integrations.lightning import CollapseMonitorCallback


def main(out: Path) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    seen: dict[int, np.ndarray] = {}

    def grab(pl_module: Any, outputs: Any, batch: Any) -> torch.Tensor:
        z = outputs["embeddings"]
        seen[int(pl_module.trainer.global_step)] = z.detach().numpy().copy()
        return z

    states: list[Any] = []
    cb = CollapseMonitorCallback(every=2, window=1, on_collapse="ignore", get_embeddings=grab,
                                 on_state=states.append)  # fmt: skip
    t = trainer(max_steps=4, strategy="ddp", devices=2, callbacks=[cb])
    t.fit(Tiny(), loader(n=128, batch_size=16))
    rank = t.global_rank
    steps = [s.step for s in states]
    (out / f"rank{rank}.json").write_text(json.dumps({
        "steps": steps, "global_step": t.global_step,
        "rows": [s.metrics["rows"] for s in states],
        "effective_rank": [s.metrics["effective_rank"] for s in states],
        "relative_variance": [s.metrics["relative_variance"] for s in states],
    }))  # fmt: skip
    np.savez(out / f"rank{rank}.npz", **{f"step{s}": seen[s] for s in steps})


if __name__ == "__main__":
    main(Path(sys.argv[1]))
