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


def ramps(b: int = 64, size: int = 28) -> torch.Tensor:
    """Channel 0 holds each pixel centre's x coordinate, channel 1 its y coordinate, in
    affine_grid's normalised units ((2j + 1) / size - 1): bilinear sampling of a linear
    function is exact, so an output pixel holds the input coordinate it was sampled at."""
    c = (2 * torch.arange(size) + 1) / size - 1
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([xx, yy]).expand(b, 2, size, size).clone()


def fitted_affine(out: torch.Tensor) -> torch.Tensor:
    """(B, 2, 3) map from output pixel coordinates to sampled input coordinates, fitted on
    the central half of the image (whose samples stay inside it for these settings)."""
    size = out.shape[-1]
    c = (2 * torch.arange(size) + 1) / size - 1
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    inner = (xx.abs() <= 0.5) & (yy.abs() <= 0.5)
    design = torch.stack([xx[inner], yy[inner], torch.ones(int(inner.sum()))], dim=1)
    target = out[:, :, inner].transpose(1, 2)  # (B, P, 2)
    sol = torch.linalg.lstsq(design.expand(out.shape[0], -1, -1).double(), target.double())
    theta = sol.solution.transpose(1, 2)  # (B, 2, 3)
    fit = (design.double() @ theta.transpose(1, 2)).float()
    torch.testing.assert_close(fit, target, atol=1e-5, rtol=0)  # the warp is affine
    return theta


def with_(**kw: object) -> ImageAugment:
    return ImageAugment(**{**IDENTITY.__dict__, **kw})  # type: ignore[arg-type]


def test_crop_zooms_by_the_square_root_of_the_area_and_stays_inside() -> None:
    theta = fitted_affine(with_(crop_scale=(0.25, 0.25))(ramps(), torch.Generator().manual_seed(0)))
    lin, shift = theta[:, :, :2], theta[:, :, 2]
    torch.testing.assert_close(lin, 0.5 * torch.eye(2, dtype=lin.dtype).expand_as(lin), atol=1e-5,
                               rtol=0)  # fmt: skip
    assert float(shift.abs().max()) <= 0.5 + 1e-5  # the crop lies inside the image
    assert float(shift.std()) > 0.1  # and moves from image to image
    # an aspect ratio r stretches the crop: width sqrt(area r), height sqrt(area / r)
    theta = fitted_affine(with_(crop_scale=(0.25, 0.25), crop_ratio=(2.0, 2.0))(
        ramps(), torch.Generator().manual_seed(0)))  # fmt: skip
    torch.testing.assert_close(theta[:, 0, 0], torch.full((64,), 0.5**0.5, dtype=theta.dtype))
    torch.testing.assert_close(theta[:, 1, 1], torch.full((64,), 0.125**0.5, dtype=theta.dtype))


def test_rotation_is_a_rotation_within_the_limit() -> None:
    theta = fitted_affine(with_(max_rotation=15.0)(ramps(), torch.Generator().manual_seed(0)))
    angle = torch.atan2(theta[:, 1, 0], theta[:, 0, 0])
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    torch.testing.assert_close(theta[:, :, :2], rot, atol=1e-5, rtol=0)
    torch.testing.assert_close(theta[:, :, 2], torch.zeros(64, 2, dtype=theta.dtype), atol=1e-5,
                               rtol=0)  # fmt: skip
    degrees = angle.rad2deg()
    assert float(degrees.abs().max()) <= 15.0 + 1e-3 and float(degrees.abs().max()) > 10.0
    assert float(degrees.min()) < 0 < float(degrees.max())  # both directions


def test_translation_shifts_by_up_to_twice_the_fraction() -> None:
    # max_translate t moves the sampling centre by up to 2t normalised units (t of the side)
    theta = fitted_affine(with_(max_translate=0.1)(ramps(), torch.Generator().manual_seed(0)))
    eye = torch.eye(2, dtype=theta.dtype).expand(64, 2, 2)
    torch.testing.assert_close(theta[:, :, :2], eye, atol=1e-5, rtol=0)
    shift = theta[:, :, 2]
    for axis in (0, 1):  # x and y, each in both directions
        s = shift[:, axis]
        assert float(s.abs().max()) <= 0.2 + 1e-5 and float(s.abs().max()) > 0.15, axis
        assert float(s.min()) < 0 < float(s.max()), axis


def test_contrast_scales_around_each_images_mean() -> None:
    x = images(b=64)
    out = with_(contrast=0.4)(x, torch.Generator().manual_seed(0))
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(out.mean(dim=(1, 2, 3), keepdim=True), mean, atol=1e-5, rtol=0)
    factor = ((out - mean).flatten(1) / (x - mean).flatten(1)).median(dim=1).values  # (B,)
    torch.testing.assert_close(out, (x - mean) * factor.view(-1, 1, 1, 1) + mean, atol=1e-5,
                               rtol=0)  # fmt: skip
    assert float(factor.min()) >= 0.6 - 1e-4 and float(factor.max()) <= 1.4 + 1e-4
    assert float(factor.max() - factor.min()) > 0.5  # one factor per image, spread out


def test_noise_adds_zero_mean_gaussian_noise_of_the_given_std() -> None:
    x = images(b=64, size=28)
    noise = with_(noise_std=0.05)(x, torch.Generator().manual_seed(0)) - x
    assert abs(float(noise.mean())) < 1e-3
    assert float(noise.std()) == pytest.approx(0.05, rel=0.02)
    assert float((noise.abs() > 4 * 0.05).float().mean()) < 1e-3  # Gaussian tails


@pytest.mark.parametrize("option, value", [
    ("crop_scale", (0.5, 0.5)), ("crop_ratio", (2.0, 2.0)), ("max_rotation", 15.0),
    ("max_translate", 0.1), ("contrast", 0.4), ("brightness", 0.4), ("noise_std", 0.05),
])  # fmt: skip
def test_each_option_changes_the_output_and_its_zero_is_the_identity(
    option: str, value: object
) -> None:
    x = ramps(b=16) * 0.5 + 0.5  # positive pixels, not constant (contrast acts on them)
    changed = with_(**{option: value})(x, torch.Generator().manual_seed(0))
    assert float((changed - x).abs().max()) > 0.01, option
    if option == "crop_ratio":  # a ratio only acts on a crop smaller than the image
        assert float((with_(crop_scale=(0.5, 0.5))(x, torch.Generator().manual_seed(0))
                      - changed).abs().max()) > 0.01  # fmt: skip
        return
    zero = IDENTITY.__dict__[option]  # the option's neutral value (full crop, 0 elsewhere)
    same = with_(**{option: zero})(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
