"""Batched augmentations: determinism, identity settings, exact flips / erasing / masking."""

from __future__ import annotations

import pytest
import torch

from collapselab.data import ImageAugment, VectorAugment, default_augment, load_digits, two_views

IDENTITY = ImageAugment(
    crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), max_rotation=0.0, max_translate=0.0,
    hflip_prob=0.0, brightness=0.0, contrast=0.0, noise_std=0.0, erase_prob=0.0,
)  # fmt: skip


def images(b: int = 16, size: int = 8) -> torch.Tensor:
    return torch.rand(b, 1, size, size, generator=torch.Generator().manual_seed(0))


def test_fixed_seed_gives_identical_views() -> None:
    x = load_digits().x_train[:64]
    aug = default_augment(load_digits())
    a1, a2 = two_views(x, aug, torch.Generator().manual_seed(5))
    b1, b2 = two_views(x, aug, torch.Generator().manual_seed(5))
    assert torch.equal(a1, b1) and torch.equal(a2, b2)
    assert not torch.equal(a1, a2)  # the two views differ
    c1, _ = two_views(x, aug, torch.Generator().manual_seed(6))
    assert not torch.equal(a1, c1)
    assert a1.shape == x.shape and a1.dtype == x.dtype


@pytest.mark.parametrize("size", [8, 28])
def test_identity_settings_return_the_input(size: int) -> None:
    x = images(size=size)
    out = IDENTITY(x, torch.Generator().manual_seed(0))
    # identity affine warp samples at pixel centres (align_corners=False); the float32
    # grid coordinates carry ~size * 1.2e-7 of rounding, hence atol 1e-5 for pixels in [0, 1]
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_flip_with_probability_one_mirrors() -> None:
    x = images()
    aug = ImageAugment(**{**IDENTITY.__dict__, "hflip_prob": 1.0})
    torch.testing.assert_close(aug(x, torch.Generator().manual_seed(0)), x.flip(-1), atol=1e-5,
                               rtol=0)  # fmt: skip


def test_erasing_zeroes_one_rectangle_of_the_requested_area() -> None:
    x = torch.ones(200, 1, 28, 28)
    aug = ImageAugment(**{**IDENTITY.__dict__, "erase_prob": 1.0, "erase_scale": (0.05, 0.1)})
    out = aug(x, torch.Generator().manual_seed(0))
    erased = (out == 0).flatten(1).sum(1).float() / (28 * 28)  # (B,) erased fraction
    assert bool((erased > 0).all())
    assert float(erased.max()) < 0.2  # rounding to whole pixels can only shrink/grow a little
    for img in (out[:20, 0] == 0):  # the zeros form one axis-aligned rectangle
        rows, cols = img.any(1).nonzero().flatten(), img.any(0).nonzero().flatten()
        assert int(img.sum()) == len(rows) * len(cols)
        assert int(rows[-1] - rows[0]) + 1 == len(rows) and int(cols[-1] - cols[0]) + 1 == len(cols)


def test_brightness_contrast_act_per_image() -> None:
    x = images(b=64)
    aug = ImageAugment(**{**IDENTITY.__dict__, "brightness": 0.4})
    out = aug(x, torch.Generator().manual_seed(0))
    ratio = (out / x).flatten(1)  # a pure brightness change scales each image uniformly
    assert torch.allclose(ratio.max(1).values, ratio.min(1).values, rtol=1e-4)
    assert float(ratio[:, 0].min()) >= 0.6 - 1e-5 and float(ratio[:, 0].max()) <= 1.4 + 1e-5


def test_vector_augment_mask_and_noise() -> None:
    x = torch.randn(32, 10)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(VectorAugment(mask_prob=0.0, noise_std=0.0)(x, g), x)
    assert torch.equal(VectorAugment(mask_prob=1.0, noise_std=0.0)(x, g), torch.zeros_like(x))
    out = VectorAugment(mask_prob=0.5, noise_std=0.0)(x, g)
    kept = out != 0
    assert torch.equal(out[kept], x[kept]) and 0.3 < kept.float().mean() < 0.7
