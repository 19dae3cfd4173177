"""Batch normalisation whose statistics span every rank of a torch.distributed job.

``nn.SyncBatchNorm`` refuses CPU tensors, and a per-rank ``BatchNorm`` makes a DDP run
differ from a single-process run on the same global batch (each rank would normalise with
its own shard's statistics). :class:`BatchNorm` sums ``sum x`` and then
``sum (x - mean)^2`` over ranks with :func:`collapselab.dist.all_reduce_sum` (whose
backward sums the gradients over ranks too), so forward and backward equal a
single-process batch norm over the global batch on any device, up to float summation
order.
"""

from __future__ import annotations

import torch
from torch import nn

from collapselab.dist import all_reduce_sum, world_size

Tensor = torch.Tensor




class BatchNorm(nn.Module):
    """Batch normalisation (Ioffe & Szegedy 2015, Alg. 1) over dim 1 of ``(N, C)`` or
    ``(N, C, H, W)`` inputs, synchronised across ranks when distributed.

    Train mode normalises with the (global) batch mean and biased variance and updates
    running estimates with the unbiased variance, exactly like ``nn.BatchNorm1d/2d``;
    eval mode uses the running estimates.

    Args:
        num_features: ``C``.
        eps: added to the variance.
        momentum: running-estimate update rate (PyTorch convention).
        affine: learn a per-channel scale and shift.
    """

    running_mean: Tensor
    running_var: Tensor

    def __init__(
        self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` of shape ``(N, C)`` or ``(N, C, H, W)``."""
        dims = [0] + list(range(2, x.ndim))  # reduce over all but the channel dim
        shape = [1, -1] + [1] * (x.ndim - 2)
        if not self.training:
            mean, var = self.running_mean, self.running_var
        else:
            # two passes (mean, then mean squared deviation): robust when |mean| >> std,
            # and the same arithmetic with or without ranks
            # (every rank holds an equally sized shard of the global batch)
            n = (x.numel() // x.shape[1]) * world_size()
            mean = all_reduce_sum(x.sum(dim=dims)) / n
            centred = x - mean.view(shape)
            var = all_reduce_sum((centred * centred).sum(dim=dims)) / n
            self._update_running(mean, var, n)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.weight is not None and self.bias is not None:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y

    @torch.no_grad()
    def _update_running(self, mean: Tensor, var: Tensor, n: int) -> None:
        unbiased = var.detach() * (n / max(n - 1, 1))
        self.running_mean.lerp_(mean.detach(), self.momentum)
        self.running_var.lerp_(unbiased, self.momentum)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"
