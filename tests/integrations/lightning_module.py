"""A tiny LightningModule for the Lightning tests (also run by the DDP script).

``mode="healthy"``: a linear encoder trained to reproduce its input (the spread stays).
``mode="collapse"``: the same encoder trained to shrink the spread of its outputs
(loss = mean squared distance to the batch mean), a positives-only pull that collapses
every row onto the bias within a few dozen SGD steps.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

D = 8


class Tiny(pl.LightningModule):
    def __init__(self, mode: str = "healthy", lr: float = 0.05) -> None:
        super().__init__()
        self.mode, self.lr = mode, lr
        self.encoder = torch.nn.Linear(D, D)

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        (x,) = batch
        z = self.encoder(x)  # (B, D)
        if self.mode == "collapse":
            loss = (z - z.mean(0)).pow(2).sum(1).mean()
        else:
            loss = (z - x).pow(2).mean()
        return {"loss": loss, "embeddings": z}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


class Recorder:
    """A monitor sink keeping every state it is given (``on_state=recorder``)."""

    def __init__(self) -> None:
        self.states: list[Any] = []

    def __call__(self, state: Any) -> None:
        self.states.append(state)

    @property
    def steps(self) -> list[int]:
        return [s.step for s in self.states]


def loader(n: int = 64, batch_size: int = 16, seed: int = 0) -> DataLoader:
    x = torch.randn(n, D, generator=torch.Generator().manual_seed(seed))
    return DataLoader(TensorDataset(x), batch_size=batch_size, shuffle=False)


def trainer(**kwargs: Any) -> pl.Trainer:
    base: dict[str, Any] = dict(accelerator="cpu", devices=1, logger=False,
                                enable_checkpointing=False, enable_progress_bar=False,
                                enable_model_summary=False, num_sanity_val_steps=0)  # fmt: skip
    base.update(kwargs)
    return pl.Trainer(**base)
