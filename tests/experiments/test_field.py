"""The field's results (Jing et al. 2022, Tian et al. 2021) at tiny scale: each test asserts
one of the papers' claims numerically, with a margin the mechanism's absence would break."""

from __future__ import annotations

import pytest
import torch

from collapselab.experiments import jing, tian


@pytest.fixture(autouse=True)
def _one_thread():  # the runs are tiny: threads only add contention
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------ Jing et al. 2022


def test_lemma1_gradient_is_w_times_sigma1_minus_sigma0() -> None:
    # autograd of Eq. 1 against the closed form dL/dW = W (Sigma_1 - Sigma_0); float64,
    # so agreement to 1e-12 of the gradient's size leaves only round-off
    g = torch.Generator().manual_seed(0)
    w = torch.randn(5, 7, dtype=torch.float64, generator=g).requires_grad_()
    x1 = torch.randn(9, 7, dtype=torch.float64, generator=g)
    x2 = x1 + 0.3 * torch.randn(9, 7, dtype=torch.float64, generator=g)
    jing.euclidean_info_nce(x1 @ w.T, x2 @ w.T).backward()
    assert w.grad is not None
    closed = jing.jing_gradient_closed_form(w.detach(), x1, x2)
    scale = float(w.grad.abs().max())
    assert scale > 1e-3
    assert float((w.grad - closed).abs().max()) < 1e-12 * scale


def test_strong_augmentation_collapses_as_many_directions_as_it_drowns() -> None:
    # noise variance 4 > data variance 1 on 4 of 16 directions: those 4 singular values
    # fall below 1e-3 of the top one; with weak noise everywhere, none does
    cfg = jing.LinearConfig(steps=300, batch=64, eval_rows=500)
    strong = jing.linear_contrastive(jing.LinearConfig(**{**cfg.__dict__, "strong_dims": 4}))
    weak = jing.linear_contrastive(cfg)
    assert strong.collapsed_dims == 4
    assert weak.collapsed_dims == 0
    assert weak.singular_values[-1] > 0.3 * weak.singular_values[0]  # weak: a flat spectrum


def test_two_layers_from_small_init_collapse_under_weak_augmentation() -> None:
    # Jing et al. Theorem 2: same data, same weak noise, same small init; only depth differs
    base = dict(noise=0.02, data_decay=0.1, init_scale=0.01, steps=400, batch=64, eval_rows=500)
    one = jing.linear_contrastive(jing.LinearConfig(layers=1, **base))  # type: ignore[arg-type]
    two = jing.linear_contrastive(jing.LinearConfig(layers=2, **base))  # type: ignore[arg-type]
    big = jing.linear_contrastive(
        jing.LinearConfig(layers=2, **{**base, "init_scale": 1.0})  # type: ignore[arg-type]
    )
    assert two.collapsed_dims >= one.collapsed_dims + 4
    assert two.collapsed_dims >= big.collapsed_dims + 4  # the small init is what does it
    assert two.effective_rank < big.effective_rank - 3


def test_directclr_keeps_more_dimensions_than_no_projector_on_digits() -> None:
    res = jing.projector_study(jing.ProjectorConfig(epochs=2), heads=("no-projector", "directclr"))
    no_proj, direct = res
    assert direct.effective_rank > no_proj.effective_rank + 2
    for r in res:  # both learn something: raw-pixel-level accuracy or better on digits
        assert r.linear_accuracy is not None and r.linear_accuracy > 0.85


# ------------------------------------------------------------------ Tian et al. 2021


def test_eigenspace_alignment_exact_values() -> None:
    f = torch.diag(torch.tensor([3.0, 1.0], dtype=torch.float64))
    assert tian.eigenspace_alignment(f, f) == pytest.approx(1.0, abs=1e-12)
    assert tian.eigenspace_alignment(f, -torch.eye(2, dtype=torch.float64)) == pytest.approx(-1.0)
    rot = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64)  # 90 degrees
    assert tian.eigenspace_alignment(f, rot) == pytest.approx(0.0, abs=1e-12)
    # Wp = [[1, 1], [0, 1]]: cos(Wp e1, e1) = 1, cos(Wp e2, e2) = 1/sqrt(2); weights 3, 1
    shear = torch.tensor([[1.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    assert tian.eigenspace_alignment(f, shear) == pytest.approx((3 + 2**-0.5) / 4, abs=1e-12)


def test_directpred_predictor_is_sqrt_of_normalised_eigenvalues() -> None:
    q, _ = torch.linalg.qr(
        torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    )
    f = q @ torch.diag(torch.tensor([4.0, 1.0, 0.0], dtype=torch.float64)) @ q.T
    wp = tian.directpred_predictor(f, eps=0.1)
    expected = q @ torch.diag(torch.tensor([1.1, 0.6, 0.1], dtype=torch.float64)) @ q.T
    assert torch.allclose(wp, expected, atol=1e-12)


def test_predictor_aligns_with_correlation_eigenspace() -> None:
    r = tian.run(
        tian.TianConfig(weight_decay=0.05, predictor_lr_ratio=0.3, steps=200, eval_every=50)
    )
    assert r.alignment[0] < 0.2  # random small predictor: not aligned
    assert min(r.alignment[1:]) > 0.9


def test_weight_decay_above_threshold_collapses_below_does_not() -> None:
    # eta* = 1 / (4 (1 + sigma^2)) = 0.125 for sigma = 1
    above = tian.run(tian.TianConfig(weight_decay=0.3, predictor_lr_ratio=0.3, steps=300))
    below = tian.run(tian.TianConfig(weight_decay=0.05, predictor_lr_ratio=0.3, steps=300))
    assert above.collapsed and above.relative_variance < 0.05
    assert not below.collapsed and below.relative_variance > 0.2


def test_directpred_reaches_an_aligned_non_collapsed_solution() -> None:
    r = tian.run(tian.TianConfig(loss="byol", predictor="directpred", weight_decay=0.05, steps=300))
    assert min(r.alignment[1:]) > 0.9
    assert not r.collapsed
    assert r.effective_rank > 0.6 * r.config.dim


def test_slow_predictor_leaves_a_dimensional_collapse() -> None:
    # below the weight-decay threshold, a predictor 10x slower than the encoder lets
    # directions die before its eigenvalues grow (effective rank 9.6 against 13.6)
    slow = tian.run(tian.TianConfig(weight_decay=0.05, predictor_lr_ratio=0.03, steps=800))
    fast = tian.run(tian.TianConfig(weight_decay=0.05, predictor_lr_ratio=0.3, steps=800))
    assert slow.effective_rank < fast.effective_rank - 3


def test_ema_slows_collapse_but_does_not_prevent_it() -> None:
    cfg = dict(weight_decay=0.3, predictor_lr_ratio=0.3, steps=400)
    with_ema = tian.run(tian.TianConfig(ema=0.99, **cfg))  # type: ignore[arg-type]
    without = tian.run(tian.TianConfig(ema=0.0, **cfg))  # type: ignore[arg-type]
    assert with_ema.collapsed and without.collapsed
    assert with_ema.relative_variance > 10 * without.relative_variance
