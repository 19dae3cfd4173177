"""Two gloo processes on CPU: every loss with ``gather_distributed=True`` must give, with the
batch split over the ranks, the loss and (DDP-averaged) gradients of one process on the whole
batch. One spawn checks everything to keep the suite fast.

Convention checked (the one DDP needs): the mean over ranks of the local losses equals the
whole-batch loss, and each rank's input gradient divided by the world size W (DDP averages
gradients over ranks) equals the whole-batch gradient of that rank's rows. A collective that
autograd cannot see (a raw ``all_reduce``) breaks the second check by a factor W.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp

from collapselab import dist
from collapselab.losses import (
    DINOLoss,
    MoCoLoss,
    barlow_twins_loss,
    info_nce,
    nt_xent,
    vicreg_loss,
)

WORLD = 2
N_PER_RANK = 4
F64 = torch.float64

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, bool], torch.Tensor]

# Every gathered loss as f(z1, z2, candidates, gather_distributed) -> scalar.
LOSSES: dict[str, LossFn] = {
    "nt_xent": lambda a, b, c, g: nt_xent(a, b, 0.3, gather_distributed=g),
    "nt_xent_blockwise": lambda a, b, c, g: nt_xent(a, b, 0.3, block_size=3, gather_distributed=g),
    "nt_xent_raw": lambda a, b, c, g: nt_xent(a, b, 0.5, normalize=False, gather_distributed=g),
    "info_nce": lambda a, b, c, g: info_nce(a, b, temperature=0.2, gather_distributed=g),
    "info_nce_blockwise": lambda a, b, c, g: info_nce(a, b, block_size=2, gather_distributed=g),
    "info_nce_candidates": lambda a, b, c, g: info_nce(a, b, c, 0.2, gather_distributed=g),
    "barlow_twins": lambda a, b, c, g: barlow_twins_loss(a, b, 0.01, gather_distributed=g),
    "vicreg": lambda a, b, c, g: vicreg_loss(a, b, gather_distributed=g),
}


def _data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1234)
    n = WORLD * N_PER_RANK
    return (
        torch.randn(n, 5, dtype=F64, generator=g),
        torch.randn(n, 5, dtype=F64, generator=g) + 0.3,
        torch.randn(WORLD * 3, 5, dtype=F64, generator=g),
    )


def _close(name: str, got: torch.Tensor, want: torch.Tensor, failures: list[str]) -> None:
    if not torch.allclose(got, want, rtol=1e-9, atol=1e-12):
        err = (got - want).abs().max().item()
        failures.append(f"{name}: max abs error {err:.3e}\n got {got}\n want {want}")


def _check_losses(rank: int, failures: list[str]) -> None:
    z1, z2, cand = _data()
    rows = slice(rank * N_PER_RANK, (rank + 1) * N_PER_RANK)
    crow = slice(rank * 3, (rank + 1) * 3)
    for name, fn in LOSSES.items():
        full = [t.clone().requires_grad_(True) for t in (z1, z2, cand)]
        loss_full = fn(*full, False)
        grads_full = torch.autograd.grad(loss_full, full, allow_unused=True)
        local = [t.clone().requires_grad_(True) for t in (z1[rows], z2[rows], cand[crow])]
        loss_local = fn(*local, True)
        grads_local = torch.autograd.grad(loss_local, local, allow_unused=True)
        mean_loss = loss_local.detach().clone()
        torch_dist.all_reduce(mean_loss)
        _close(f"{name} loss", mean_loss / WORLD, loss_full.detach(), failures)
        for which, gl, gf, sl in zip(
            ("z1", "z2", "cand"), grads_local, grads_full, (rows, rows, crow), strict=True
        ):
            if (gl is None) != (gf is None):
                failures.append(f"{name} grad {which}: None on one side only")
            elif gl is not None and gf is not None:
                _close(f"{name} grad {which}", gl / WORLD, gf[sl], failures)


def _check_state_updates(rank: int, failures: list[str]) -> None:
    z1, z2, _ = _data()
    rows = slice(rank * N_PER_RANK, (rank + 1) * N_PER_RANK)
    # DINO centre: local teacher outputs (2 views), centre over all ranks.
    teacher = torch.stack([z1, z2]).float()
    student = teacher.flip(0) * 2
    dino_full, dino_dist = DINOLoss(5), DINOLoss(5, gather_distributed=True)
    dino_full(student, teacher)
    dino_dist(student[:, rows], teacher[:, rows])
    _close("dino centre", dino_dist.center.double(), dino_full.center.double(), failures)
    # MoCo: every rank enqueues every rank's keys, in rank order.
    moco_full, moco_dist = MoCoLoss(6, 5), MoCoLoss(6, 5, gather_distributed=True)
    moco_full(z1.float(), z2.float())
    moco_dist(z1[rows].float(), z2[rows].float())
    _close("moco queue", moco_dist.queue.ordered().double(), moco_full.queue.ordered().double(),
           failures)


def _check_uneven_gather(rank: int, failures: list[str]) -> None:
    # Rank 0 holds 5 rows, rank 1 holds 2 (a last partial batch).
    sizes = [5, 2]
    full = torch.arange(7 * 3, dtype=F64).reshape(7, 3)
    start = sum(sizes[:rank])
    local = full[start : start + sizes[rank]].clone().requires_grad_(True)
    gathered, offset = dist.gather_with_offset(local)
    _close("uneven gather", gathered.detach(), full, failures)
    if offset != start:
        failures.append(f"gather offset {offset} != {start}")
    weight = torch.arange(21, dtype=F64).reshape(7, 3) * (rank + 1)  # rank-specific loss
    (g,) = torch.autograd.grad((gathered * weight).sum(), local)
    # sum over ranks r' of d(loss_r')/d(local rows) = weight rows * (1 + 2)
    _close("uneven gather grad", g, weight[start : start + sizes[rank]] / (rank + 1) * 3, failures)
    x = torch.full((2,), float(rank + 1), dtype=F64, requires_grad=True)
    y = dist.all_reduce_sum(x)
    _close("all_reduce_sum", y.detach(), torch.full((2,), 3.0, dtype=F64), failures)
    (gx,) = torch.autograd.grad((y * (rank + 1)).sum(), x)
    _close("all_reduce_sum grad", gx, torch.full((2,), 3.0, dtype=F64), failures)


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    torch_dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                                  world_size=WORLD)
    failures: list[str] = []
    try:
        assert dist.world_size() == WORLD and dist.rank() == rank
        _check_losses(rank, failures)
        _check_state_updates(rank, failures)
        _check_uneven_gather(rank, failures)
    except Exception:  # report, then let the other rank finish too
        failures.append(traceback.format_exc())
    finally:
        Path(out_dir, f"rank{rank}.txt").write_text("\n".join(failures))
        torch_dist.destroy_process_group()


def test_gathered_losses_equal_single_process(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    reports = {r: (tmp_path / f"rank{r}.txt").read_text() for r in range(WORLD)}
    assert reports == {r: "" for r in range(WORLD)}, "\n".join(reports.values())


def test_gather_is_identity_without_process_group() -> None:
    z = torch.randn(3, 2, requires_grad=True)
    out, offset = dist.gather_with_offset(z)
    assert out is z and offset == 0 and dist.all_reduce_sum(z) is z
    assert dist.world_size() == 1 and dist.rank() == 0
    # gather_distributed=True still runs (world size 1) and equals the local loss
    assert nt_xent(z, z * 2, gather_distributed=True).item() == nt_xent(z, z * 2).item()
