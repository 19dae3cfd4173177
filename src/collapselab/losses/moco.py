"""MoCo: InfoNCE of queries against their keys and a FIFO queue of past keys.

Reference: He, Fan, Wu, Xie, Girshick, "Momentum Contrast for Unsupervised Visual
Representation Learning", CVPR 2020: Eq. 1 (the loss), Sec. 3.2 (the queue; the momentum
update of the key encoder, Eq. 2, is :func:`collapselab.losses.ema.ema_update`).

    L_q = -log exp(q^T k_+ / tau) / (exp(q^T k_+ / tau) + sum_{k in queue} exp(q^T k / tau))

Departure from the reference code, stated: the queue starts *empty* and only filled rows
are used as negatives (MoCo fills it with random unit vectors, which carry no information);
the loss is therefore 0 on the very first step. Keys are treated as constants (stop-gradient),
as the key encoder is updated only by momentum.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from collapselab import dist
from collapselab.errors import ConfigError
from collapselab.losses._validate import check_2d, check_positive
from collapselab.losses.info_nce import info_nce

__all__ = ["KeyQueue", "moco_loss", "MoCoLoss"]


class KeyQueue(nn.Module):
    """FIFO queue of the ``size`` most recent keys, stored as buffers (saved in state_dict).

    Rows are written circularly; a batch that does not divide ``size`` wraps around, and a
    last partial batch simply advances the pointer by its own length. A batch larger than
    the queue keeps its last ``size`` rows.

    Args:
        size: K, number of keys kept (MoCo: 65536).
        dim: key dimension d.
    """

    keys: torch.Tensor
    ptr: torch.Tensor
    count: torch.Tensor

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        if size < 1 or dim < 1:
            raise ConfigError(f"KeyQueue: size={size}, dim={dim}; both must be >= 1")
        self.size = size
        self.register_buffer("keys", torch.zeros(size, dim))  # (K, d) circular storage
        self.register_buffer("ptr", torch.zeros((), dtype=torch.int64))  # next row to write
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))  # filled rows <= K

    @torch.no_grad()
    def dequeue_and_enqueue(self, keys: torch.Tensor, gather_distributed: bool = False) -> None:
        """Append ``keys`` (n, d), dropping the oldest rows once the queue is full.

        Args:
            keys: new keys, (n, d); detached before storing.
            gather_distributed: enqueue the keys of every rank, in rank order (MoCo's
                ``concat_all_gather``), so that every rank holds the same queue.
        """
        check_2d("keys", keys)
        if keys.shape[1] != self.keys.shape[1]:
            raise ConfigError(f"keys: dimension {keys.shape[1]}; queue holds {self.keys.shape[1]}")
        keys = keys.detach()
        if gather_distributed:
            keys = dist.gather(keys)  # (n_total, d)
        keys = keys.to(self.keys.dtype)[-self.size :]  # at most K rows survive
        n, ptr = keys.shape[0], int(self.ptr)
        first = min(n, self.size - ptr)  # rows before the wrap
        self.keys[ptr : ptr + first] = keys[:first]
        self.keys[: n - first] = keys[first:]  # wrapped remainder (possibly empty)
        self.ptr.fill_((ptr + n) % self.size)
        self.count.fill_(min(int(self.count) + n, self.size))

    def current(self) -> torch.Tensor:
        """The stored keys, (count, d), in storage order (what the loss contrasts against)."""
        return self.keys if int(self.count) == self.size else self.keys[: int(self.count)]

    def ordered(self) -> torch.Tensor:
        """The stored keys from oldest to newest, (count, d)."""
        if int(self.count) < self.size:
            return self.keys[: int(self.count)]
        ptr = int(self.ptr)
        return torch.cat([self.keys[ptr:], self.keys[:ptr]], dim=0)


#: default temperature of the MoCo loss, functional and module: MoCo v1's (He et al. 2020)
TEMPERATURE = 0.07


def moco_loss(
    queries: torch.Tensor,
    keys: torch.Tensor,
    queue: torch.Tensor,
    temperature: float = TEMPERATURE,
    normalize: bool = True,
    block_size: int | None = None,
) -> torch.Tensor:
    """MoCo's InfoNCE (Eq. 1), mean over queries; no gradient reaches ``keys`` or ``queue``.

    Args:
        queries: q from the query encoder, (N, d).
        keys: k_+ from the momentum encoder, (N, d); row i is query i's positive.
        queue: past keys used as negatives, (K, d); K may be 0 (loss 0).
        temperature: tau (MoCo v1 0.07, MoCo v2 0.2).
        normalize: L2-normalise queries, keys and queue first.
        block_size: optional blockwise log-sum-exp over the queue (memory-bounded).

    Returns:
        Scalar loss.
    """
    return info_nce(
        queries,
        keys.detach(),
        candidates=queue.detach(),
        temperature=temperature,
        normalize=normalize,
        block_size=block_size,
    )


class MoCoLoss(nn.Module):
    """MoCo loss with its queue: ``forward(q, k)`` scores then enqueues the keys.

    Args:
        queue_size: K (MoCo: 65536).
        dim: key dimension d.
        temperature: tau (MoCo v1 0.07, v2 0.2).
        normalize: L2-normalise (the queue then stores unit keys, as MoCo does).
        gather_distributed: enqueue every rank's keys (all ranks share one queue). The loss
            itself is per-query, so DDP's averaging already gives the whole-batch gradient.
    """

    def __init__(
        self,
        queue_size: int = 65536,
        dim: int = 128,
        temperature: float = TEMPERATURE,
        normalize: bool = True,
        gather_distributed: bool = False,
    ) -> None:
        super().__init__()
        check_positive("temperature", temperature)
        self.queue = KeyQueue(queue_size, dim)
        self.temperature = temperature
        self.normalize = normalize
        self.gather_distributed = gather_distributed

    def forward(
        self, queries: torch.Tensor, keys: torch.Tensor, update_queue: bool = True
    ) -> torch.Tensor:
        loss = moco_loss(
            queries, keys, self.queue.current(), self.temperature, normalize=self.normalize
        )
        if update_queue:
            k = F.normalize(keys.detach(), dim=1) if self.normalize else keys
            self.queue.dequeue_and_enqueue(k, gather_distributed=self.gather_distributed)
        return loss
