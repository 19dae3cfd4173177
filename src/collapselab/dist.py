"""Distributed helpers whose collectives autograd sees.

A loss computed on one rank's shard of the batch must give, after DDP averages the
parameter gradients over ``W`` ranks, the gradient of the loss on the whole batch.
DDP divides by ``W``, so every collective inside the graph must make the local gradient
``W`` times the gradient of the global loss with respect to the local inputs. Both
helpers here do so by summing the incoming gradients over ranks in backward:

- :func:`gather` (all-gather along dim 0): forward concatenates every rank's rows,
  backward all-reduces (sums) the gradient of the concatenation and keeps this rank's rows.
- :func:`all_reduce_sum`: forward sums over ranks, backward sums the gradients over ranks.

A raw ``torch.distributed.all_reduce`` inside the graph is invisible to autograd and makes
the gradients ``1/W`` too small (lightly issue #1977, Barlow Twins); use these instead.

Without an initialised process group every helper is the identity (world size 1), so a
loss with ``gather_distributed=True`` also runs in a single process.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from collapselab.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = [
    "is_distributed",
    "rank",
    "world_size",
    "is_main",
    "local_rank",
    "gather",
    "gather_with_offset",
    "all_reduce_sum",
    "require_distributed_available",
    "torchrun_group",
]


def is_distributed() -> bool:
    """True when ``torch.distributed`` is available and a process group is initialised.

    The package's one answer to "distributed? rank 0?" (with :func:`rank`,
    :func:`world_size`, :func:`is_main`). It never imports torch: without
    ``torch.distributed`` already imported there can be no process group, so a NumPy-only
    caller (``collapselab check``) stays light.
    """
    if "torch.distributed" not in sys.modules:
        return False
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank in the default group (0 without a process group)."""
    if not is_distributed():
        return 0
    import torch.distributed as dist

    return dist.get_rank()


def world_size() -> int:
    """Number of processes in the default group (1 without a process group)."""
    if not is_distributed():
        return 1
    import torch.distributed as dist

    return dist.get_world_size()


def is_main() -> bool:
    """True on rank 0, and in a single process (the one that prints and writes)."""
    return rank() == 0


def local_rank() -> int:
    """This process's rank on its node, as ``torchrun`` sets it (``LOCAL_RANK``; 0 without):
    the index of the GPU it drives."""
    return int(os.environ.get("LOCAL_RANK", "0"))


@contextlib.contextmanager
def torchrun_group(backend: str = "gloo") -> Iterator[bool]:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE > 1`` in the
    environment) for the block and destroy it after, on every rank, before the process
    exits; yields whether this process is rank 0 (the one that prints). Without
    ``WORLD_SIZE > 1``, or inside a group the caller already set up, nothing changes.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or is_distributed():
        yield rank() == 0
        return
    require_distributed_available("torchrun")
    import torch.distributed as dist

    dist.init_process_group(backend=backend)
    try:
        yield dist.get_rank() == 0
    finally:
        dist.destroy_process_group()


def require_distributed_available(where: str) -> None:
    """Raise :class:`ConfigError` if this torch build has no ``torch.distributed``.

    Args:
        where: name of the caller, used in the message (e.g. ``"NTXentLoss"``).
    """
    import torch.distributed as dist

    if not dist.is_available():
        raise ConfigError(
            f"{where}: gather_distributed=True but torch.distributed is not available "
            "in this torch build"
        )


@functools.cache
def _autograd() -> tuple[Any, Any]:
    """The two autograd functions (built on first use: importing this module never
    imports torch). Returns ``(_GatherWithGrad, _AllReduceSum)``."""
    import torch
    import torch.distributed as dist

    def _all_sizes(n: int, device: torch.device) -> list[int]:
        """Rows held by every rank, gathered with one tiny all-gather."""
        local = torch.tensor([n], dtype=torch.int64, device=device)
        out = [torch.zeros_like(local) for _ in range(world_size())]
        dist.all_gather(out, local)
        return [int(t.item()) for t in out]

    class _GatherWithGrad(torch.autograd.Function):
        """All-gather along dim 0 (ranks may hold different row counts), summing backward."""

        @staticmethod
        def forward(ctx: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            sizes = _all_sizes(x.shape[0], x.device)
            me = dist.get_rank()
            n_max = max(sizes)
            padded = x.new_zeros((n_max, *x.shape[1:]))
            padded[: x.shape[0]] = x
            bufs = [torch.empty_like(padded) for _ in sizes]
            dist.all_gather(bufs, padded.contiguous())
            out = torch.cat([b[:s] for b, s in zip(bufs, sizes, strict=True)], dim=0)
            ctx.sizes = sizes
            ctx.me = me
            offset = torch.tensor(sum(sizes[:me]), dtype=torch.int64)
            ctx.mark_non_differentiable(offset)
            return out, offset

        @staticmethod
        def backward(ctx: Any, grad_out: torch.Tensor, _grad_offset: Any) -> torch.Tensor:
            sizes: list[int] = ctx.sizes
            me: int = ctx.me
            n_max = max(sizes)
            # (W, n_max, ...) per-rank chunks of d(local loss)/d(gathered), summed over ranks.
            padded = grad_out.new_zeros((len(sizes), n_max, *grad_out.shape[1:]))
            for r, chunk in enumerate(torch.split(grad_out, sizes, dim=0)):
                padded[r, : sizes[r]] = chunk
            dist.all_reduce(padded, op=dist.ReduceOp.SUM)
            return padded[me, : sizes[me]].clone()

    class _AllReduceSum(torch.autograd.Function):
        """Sum over ranks whose backward also sums the incoming gradients over ranks."""

        @staticmethod
        def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
            out = x.clone()
            dist.all_reduce(out, op=dist.ReduceOp.SUM)
            return out

        @staticmethod
        def backward(ctx: Any, grad_out: torch.Tensor) -> torch.Tensor:
            grad = grad_out.clone()
            dist.all_reduce(grad, op=dist.ReduceOp.SUM)
            return grad

    return _GatherWithGrad, _AllReduceSum


def gather_with_offset(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All-gather ``x`` along dim 0 over ranks, keeping the gradient path to every rank.

    Ranks may hold different numbers of rows (a last partial batch). The backward sums
    the gradient of the concatenation over ranks and returns this rank's rows, so the
    local gradient is ``W`` times that of the global (rank-averaged) loss, which DDP's
    gradient averaging turns into the single-process gradient.

    Args:
        x: this rank's rows, shape ``(n_r, ...)``.

    Returns:
        ``(gathered, offset)``: ``gathered`` of shape ``(sum_r n_r, ...)`` in rank order, and
        ``offset``, the index of this rank's first row in ``gathered``. Without a process
        group: ``(x, 0)``.
    """
    if world_size() == 1:
        return x, 0
    out, offset = _autograd()[0].apply(x)
    return out, int(offset.item())


def gather(x: torch.Tensor) -> torch.Tensor:
    """All-gather ``x`` along dim 0 with gradients (see :func:`gather_with_offset`).

    Args:
        x: this rank's rows, shape ``(n_r, ...)``.

    Returns:
        The concatenation over ranks, shape ``(sum_r n_r, ...)``.
    """
    return gather_with_offset(x)[0]


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum ``x`` over ranks, differentiably (identity without a process group).

    Use it for batch statistics inside the graph (Barlow Twins' cross-correlation,
    VICReg's covariance): each rank's loss then depends on every rank's inputs and the
    backward routes each rank's share of the gradient home.

    Args:
        x: a tensor of the same shape on every rank.

    Returns:
        ``sum_r x_r``, same shape as ``x``.
    """
    if world_size() == 1:
        return x
    out: torch.Tensor = _autograd()[1].apply(x)
    return out
