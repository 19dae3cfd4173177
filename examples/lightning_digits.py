"""SimCLR on scikit-learn's digits in PyTorch Lightning, watched by CollapseMonitorCallback.

SimCLR (NT-Xent) trains healthy and the monitor stays quiet. With ``--collapse`` the same
model trains on the article's ``collapse_loss`` (minimise the embeddings' variance): the
alarm fires and ``on_collapse="stop"`` ends training. Offline, ~10 s on one CPU core
(``pip install "collapselab[lightning]"``)::

    python examples/lightning_digits.py              # healthy: SimCLR
    python examples/lightning_digits.py --collapse   # collapse-prone loss: stopped early
"""

from __future__ import annotations

import argparse

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from collapselab.data import ImageAugment, load_digits, two_views
from collapselab.integrations.lightning import CollapseMonitorCallback
from collapselab.losses import nt_xent, variance_loss


class SimCLR(pl.LightningModule):
    """An MLP encoder on two augmented views; NT-Xent, or the article's collapse_loss."""

    def __init__(self, collapse: bool, lr: float = 2e-3) -> None:
        super().__init__()
        layers = [nn.Flatten(), nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 64)]
        self.encoder = nn.Sequential(*layers)  # 8x8 digit -> (64,) embedding
        self.collapse, self.lr = collapse, lr
        self.augment, self.gen = ImageAugment(), torch.Generator().manual_seed(0)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> dict:
        v1, v2 = two_views(batch[0], self.augment, self.gen)  # (B, 1, 8, 8) each
        z1, z2 = self.encoder(v1), self.encoder(v2)  # (B, 64) each
        # collapse_loss is minimised when every row is the same vector: complete collapse
        loss = variance_loss(torch.cat([z1, z2])) if self.collapse else nt_xent(z1, z2, 0.2)
        # the callback reads "embeddings" (and "paired", for alignment) from this dict
        return {"loss": loss, "embeddings": z1, "paired": z2}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--collapse", action="store_true", help="train on the article's collapse_loss")
    p.add_argument("--steps", type=int, default=200, help="optimizer steps (default 200)")
    p.add_argument("--every", type=int, default=10, help="monitor interval in steps")
    p.add_argument("--threads", type=int, default=1, help="torch threads (tiny model: 1)")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = load_digits()  # 1347 training images, (N, 1, 8, 8), bundled with scikit-learn
    loader = DataLoader(TensorDataset(data.x_train), batch_size=128, shuffle=True, drop_last=True)
    model = SimCLR(args.collapse)

    cb = CollapseMonitorCallback(every=args.every, window=4, on_collapse="stop")
    trainer = pl.Trainer(max_steps=args.steps, callbacks=[cb], accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)  # fmt: skip
    trainer.fit(model, loader)

    mon, last = cb.monitor, cb.monitor.last  # last: the latest MonitorState
    assert last is not None, "no evaluation: --steps must be at least --every"
    print(f"loss: {'collapse_loss' if args.collapse else 'NT-Xent'}; "
          f"trained {trainer.global_step} of {args.steps} steps")  # fmt: skip
    print(f"last evaluation (step {last.step}): verdict {last.verdict}, effective rank "
          f"{last.metrics['effective_rank']:.1f}, warning: {last.warning or 'none'}")  # fmt: skip
    if mon.first_collapse_step is None:
        print("collapse alarm: none")
    else:
        what = last.verdict if last.collapsed else "collapse under way"
        print(f"collapse alarm: fired at step {mon.first_collapse_step} ({what}); "
              f"training stopped early: {trainer.global_step < args.steps}")  # fmt: skip


if __name__ == "__main__":
    main()
