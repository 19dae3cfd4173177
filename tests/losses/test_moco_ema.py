"""MoCo queue (order, wrap-around, partial batches), MoCo loss, momentum update."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from collapselab.errors import ConfigError
from collapselab.losses import KeyQueue, MoCoLoss, cosine_momentum, ema_update, moco_loss


def _batch(start: int, n: int, d: int = 2) -> torch.Tensor:
    # Row r holds the value start + r in every column: order is readable from column 0.
    return torch.arange(start, start + n, dtype=torch.float32).unsqueeze(1).repeat(1, d)


def test_queue_order_wrap_around_and_partial_batches() -> None:
    q = KeyQueue(size=5, dim=2)
    assert q.ordered().shape == (0, 2)
    q.dequeue_and_enqueue(_batch(0, 3))  # 0 1 2
    assert q.ordered()[:, 0].tolist() == [0, 1, 2]
    assert q.current().shape == (3, 2)
    q.dequeue_and_enqueue(_batch(3, 3))  # wraps: 1 2 3 4 5
    assert q.ordered()[:, 0].tolist() == [1, 2, 3, 4, 5]
    assert q.keys[:, 0].tolist() == [5, 1, 2, 3, 4]  # circular storage
    assert int(q.ptr) == 1 and int(q.count) == 5
    q.dequeue_and_enqueue(_batch(6, 1))  # a last partial batch of one row
    assert q.ordered()[:, 0].tolist() == [2, 3, 4, 5, 6]
    q.dequeue_and_enqueue(_batch(7, 4))
    assert q.ordered()[:, 0].tolist() == [6, 7, 8, 9, 10]
    q.dequeue_and_enqueue(_batch(11, 12))  # larger than the queue: last 5 rows survive
    assert q.ordered()[:, 0].tolist() == [18, 19, 20, 21, 22]
    assert sorted(q.current()[:, 0].tolist()) == [18, 19, 20, 21, 22]


def test_queue_matches_a_python_deque_over_many_batch_sizes() -> None:
    from collections import deque

    q, ref = KeyQueue(size=7, dim=1), deque(maxlen=7)
    start = 0
    for n in [3, 1, 7, 2, 9, 4, 4, 1, 6, 5]:
        q.dequeue_and_enqueue(_batch(start, n, d=1))
        ref.extend(range(start, start + n))
        start += n
        assert q.ordered()[:, 0].tolist() == list(ref)


def test_queue_state_dict_round_trip_and_errors() -> None:
    q = KeyQueue(size=4, dim=2)
    q.dequeue_and_enqueue(_batch(0, 6))
    q2 = KeyQueue(size=4, dim=2)
    q2.load_state_dict(q.state_dict())
    assert torch.equal(q2.ordered(), q.ordered())
    with pytest.raises(ConfigError, match="keys: dimension 3"):
        q.dequeue_and_enqueue(torch.zeros(2, 3))
    with pytest.raises(ConfigError, match="size=0"):
        KeyQueue(0, 2)


def test_moco_loss_matches_loop_and_stops_gradients() -> None:
    g = torch.Generator().manual_seed(0)
    q = torch.randn(4, 3, dtype=torch.float64, generator=g, requires_grad=True)
    k = torch.randn(4, 3, dtype=torch.float64, generator=g, requires_grad=True)
    queue = torch.randn(6, 3, dtype=torch.float64, generator=g, requires_grad=True)
    tau = 0.2
    loss = moco_loss(q, k, queue, temperature=tau)
    # He et al. Eq. 1, written out.
    qn, kn, un = (F.normalize(x.detach(), dim=1) for x in (q, k, queue))
    total = 0.0
    for i in range(4):
        pos = float(qn[i] @ kn[i]) / tau
        negs = [float(qn[i] @ u) / tau for u in un]
        total += -pos + math.log(math.exp(pos) + sum(math.exp(v) for v in negs))
    assert loss.item() == pytest.approx(total / 4, rel=1e-12)
    loss.backward()
    assert q.grad is not None and k.grad is None and queue.grad is None
    empty = moco_loss(q, k, torch.zeros(0, 3, dtype=torch.float64))
    assert empty.item() == 0.0


def test_moco_module_enqueues_normalised_keys_after_scoring() -> None:
    torch.manual_seed(0)
    loss_fn = MoCoLoss(queue_size=8, dim=4, temperature=0.2)
    q1, k1 = torch.randn(3, 4), torch.randn(3, 4)
    assert loss_fn(q1, k1).item() == 0.0  # empty queue: no negatives yet
    torch.testing.assert_close(loss_fn.queue.ordered(), F.normalize(k1, dim=1))
    q2, k2 = torch.randn(3, 4), torch.randn(3, 4)
    expected = moco_loss(q2, k2, F.normalize(k1, dim=1), temperature=0.2)
    torch.testing.assert_close(loss_fn(q2, k2), expected)
    assert loss_fn.queue.ordered().shape == (6, 4)


def test_ema_update_values_and_stop_gradient() -> None:
    torch.manual_seed(0)
    online, target = nn.Linear(3, 2), nn.Linear(3, 2)
    for p in target.parameters():
        p.requires_grad_(False)
    before = [p.clone() for p in target.parameters()]
    ema_update(target, online, momentum=0.9)
    for t, b, o in zip(target.parameters(), before, online.parameters(), strict=True):
        torch.testing.assert_close(t, 0.9 * b + 0.1 * o.detach())
    ema_update(target, online, momentum=0.0)
    for t, o in zip(target.parameters(), online.parameters(), strict=True):
        assert torch.equal(t, o.detach())
    with pytest.raises(ConfigError, match="momentum"):
        ema_update(target, online, 1.5)
    with pytest.raises(ConfigError, match="differ"):
        ema_update(nn.Linear(3, 2, bias=False), online, 0.5)
    with pytest.raises(ConfigError, match="shape"):
        ema_update(nn.Linear(4, 2), online, 0.5)


def test_cosine_momentum_schedule() -> None:
    assert cosine_momentum(0, 100, base=0.996) == pytest.approx(0.996)
    assert cosine_momentum(100, 100, base=0.996) == pytest.approx(1.0)
    assert cosine_momentum(50, 100, base=0.99) == pytest.approx(0.995)
    with pytest.raises(ConfigError):
        cosine_momentum(101, 100)
