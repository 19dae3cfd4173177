"""The contrastive log-partition: the engine under InfoNCE, NT-Xent and MoCo.

Every softmax-contrastive loss here is ``mean_i (lse_i - s_{i, t_i})`` with logits
``s = scale * A C^T``. The positive logit ``s_{i, t_i}`` costs O(M d) and is left to plain
autograd; this module computes the expensive part, the row-wise log-sum-exp

    lse_i = log sum_{k != e_i} exp(scale * a_i^T c_k)            (InfoNCE denominator,
                                                                  van den Oord et al. 2018, Eq. 4)

with an optional excluded column ``e_i`` per row (the anchor itself in NT-Xent). Its gradient
is ``d lse_i / d a_i = scale * sum_k P(k|i) c_k`` and ``d lse_i / d c_k = scale * P(k|i) a_i``
with ``P(k|i) = exp(s_ik - lse_i)``, the article's "weighted average of all embeddings".

Two exact implementations, chosen by ``block_size``:

- plain (``block_size=None``): one (M, K) buffer holds the logits, is turned into ``P`` in
  place, and is kept for backward. Backward is two matmuls and allocates nothing of size
  M x K (the upstream gradient is folded into the (M, d) / (K, d) factors), which is why it is
  faster than ``F.cross_entropy`` on a masked logit matrix (that path keeps 3-4 such buffers).
- blockwise (``block_size=b``): rows are processed b at a time in one reused (b, K) buffer;
  only ``lse`` (M,) is kept and backward recomputes each block. Peak memory is O(b K + (M + K) d)
  instead of O(M K); flops are 4/3 of the plain path (one extra forward matmul).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

__all__ = ["contrastive_logsumexp"]

_NEG_INF = float("-inf")


def _logits_into(
    out: torch.Tensor, a_scaled: torch.Tensor, c: torch.Tensor, exclude: torch.Tensor | None
) -> torch.Tensor:
    """Write ``a_scaled @ c.T`` into ``out`` (rows, K) and set excluded entries to -inf."""
    torch.mm(a_scaled, c.T, out=out)  # (rows, d) @ (d, K) -> (rows, K)
    if exclude is not None:
        out.scatter_(1, exclude.unsqueeze(1), _NEG_INF)
    return out


def _lse_inplace(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-wise log-sum-exp of ``s`` (rows, K), leaving ``exp(s - rowmax)`` in ``s``.

    Returns ``(lse, rowsum)``: lse of shape (rows,), and the row sums of the shifted
    exponentials, shape (rows, 1), so that ``s / rowsum`` is the row softmax.
    """
    m = s.amax(dim=1, keepdim=True)  # (rows, 1)
    s.sub_(m).exp_()
    tot = s.sum(dim=1, keepdim=True)  # (rows, 1)
    return (m + tot.log()).squeeze(1), tot


class _PlainLSE(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, a: torch.Tensor, c: torch.Tensor, scale: float, exclude: torch.Tensor | None
    ) -> torch.Tensor:
        s = a.new_empty((a.shape[0], c.shape[0]))
        _logits_into(s, a * scale, c, exclude)
        lse, tot = _lse_inplace(s)
        if any(ctx.needs_input_grad[:2]):
            s.div_(tot)  # exp(s - m) / sum_k exp(s_k - m) = P(k|i), in place
            ctx.save_for_backward(a, c)
            ctx.p = s  # (M, K) softmax over candidates, the only M x K buffer
            ctx.scale = scale
        return lse

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> tuple[Any, ...]:
        a, c = ctx.saved_tensors
        p: torch.Tensor = ctx.p
        w = (g * ctx.scale).unsqueeze(1)  # (M, 1) upstream gradient times scale
        grad_a = grad_c = None
        if ctx.needs_input_grad[0]:
            grad_a = torch.mm(p, c).mul_(w)  # (M, K) @ (K, d) -> (M, d)
        if ctx.needs_input_grad[1]:
            grad_c = torch.mm(p.T, a * w)  # (K, M) @ (M, d) -> (K, d)
        return grad_a, grad_c, None, None


class _BlockwiseLSE(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        a: torch.Tensor,
        c: torch.Tensor,
        scale: float,
        exclude: torch.Tensor | None,
        block_size: int,
    ) -> torch.Tensor:
        m_rows = a.shape[0]
        a_scaled = a * scale
        buf = a.new_empty((min(block_size, m_rows), c.shape[0]))  # reused (b, K) block
        lse = a.new_empty(m_rows)
        for r0 in range(0, m_rows, block_size):
            r1 = min(r0 + block_size, m_rows)
            ex = None if exclude is None else exclude[r0:r1]
            blk = _logits_into(buf[: r1 - r0], a_scaled[r0:r1], c, ex)
            lse[r0:r1] = _lse_inplace(blk)[0]
        ctx.save_for_backward(a, c, lse, exclude)
        ctx.scale = scale
        ctx.block_size = block_size
        return lse

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g: torch.Tensor) -> tuple[Any, ...]:
        a, c, lse, exclude = ctx.saved_tensors
        scale: float = ctx.scale
        b: int = ctx.block_size
        m_rows = a.shape[0]
        need_a, need_c = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        a_scaled = a * scale
        w = (g * scale).unsqueeze(1)  # (M, 1)
        grad_a = torch.empty_like(a) if need_a else None
        grad_c = torch.zeros_like(c) if need_c else None
        buf = a.new_empty((min(b, m_rows), c.shape[0]))
        for r0 in range(0, m_rows, b):
            r1 = min(r0 + b, m_rows)
            ex = None if exclude is None else exclude[r0:r1]
            blk = _logits_into(buf[: r1 - r0], a_scaled[r0:r1], c, ex)
            blk.sub_(lse[r0:r1].unsqueeze(1)).exp_()  # P(k|i) for the block's rows
            if grad_a is not None:
                torch.mm(blk, c, out=grad_a[r0:r1])  # (b, K) @ (K, d) -> (b, d)
                grad_a[r0:r1].mul_(w[r0:r1])
            if grad_c is not None:
                grad_c.addmm_(blk.T, a[r0:r1] * w[r0:r1])  # (K, b) @ (b, d) -> (K, d)
        return grad_a, grad_c, None, None, None


def contrastive_logsumexp(
    a: torch.Tensor,
    c: torch.Tensor,
    scale: float,
    exclude: torch.Tensor | None = None,
    block_size: int | None = None,
) -> torch.Tensor:
    """Row-wise ``log sum_{k != e_i} exp(scale * a_i^T c_k)``, differentiable in ``a`` and ``c``.

    Args:
        a: anchors, shape (M, d).
        c: candidates, shape (K, d); may be the same tensor as ``a``.
        scale: logit scale, ``1 / temperature``.
        exclude: optional int64 (M,) column index removed from row i's sum (e.g. the anchor
            itself when ``c`` contains the anchors); ``None`` keeps every column.
        block_size: ``None`` for the plain path (one M x K buffer); ``b`` for the blockwise
            path (one reused b x K buffer, recomputed in backward). Same value and gradients.

    Returns:
        ``lse`` of shape (M,).
    """
    if block_size is None:
        out: torch.Tensor = _PlainLSE.apply(a, c, scale, exclude)
    else:
        out = _BlockwiseLSE.apply(a, c, scale, exclude, block_size)
    return out
