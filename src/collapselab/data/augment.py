"""Two-view augmentations written as batched tensor operations.

One call transforms a whole batch with per-sample random parameters drawn from an
explicit :class:`torch.Generator`, so a fixed seed gives identical views (and runs).
Images: random resized crop, small rotation and translation (all folded into one affine
warp: ``affine_grid`` + ``grid_sample``), optional horizontal flip, brightness / contrast
jitter, Gaussian noise and random erasing (Zhong et al. 2020). Vectors: feature masking
and Gaussian noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from collapselab.data.datasets import Dataset

Tensor = torch.Tensor


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, device: torch.device) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g, device=device)


@dataclass(frozen=True)
class ImageAugment:
    """Batched image augmentation for ``(B, C, H, W)`` inputs in ``[0, 1]``.

    Defaults follow SimCLR (Chen et al. 2020, Appendix A) scaled to small grey images:
    colour distortion reduces to brightness / contrast, blur is dropped (an 8x8 image is
    already blurred), and the crop keeps at least 40% of the area (the paper's 8% would
    remove the whole digit at 8x8).
    """

    crop_scale: tuple[float, float] = (0.4, 1.0)  # area fraction kept by the crop
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # aspect ratio range (paper value)
    max_rotation: float = 15.0  # degrees; larger turns 6 into 9
    max_translate: float = 0.1  # fraction of the image side, on top of the crop offset
    hflip_prob: float = 0.0  # 0 for digits (mirror digits are other symbols)
    brightness: float = 0.4  # factor in [1 - b, 1 + b]; SimCLR: 0.8 s, s = 0.5 on CIFAR
    contrast: float = 0.4  # factor in [1 - c, 1 + c] around each image's mean
    noise_std: float = 0.05  # additive Gaussian noise, in pixel units
    erase_prob: float = 0.25  # probability of erasing one rectangle (Zhong et al. 2020)
    erase_scale: tuple[float, float] = (0.02, 0.15)  # erased area fraction

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Return one augmented view of every image of ``x`` (shape ``(B, C, H, W)``)."""
        b, _, h, w = x.shape
        dev = x.device
        g = generator
        # --- random resized crop + rotation + translation + flip as one affine map -------
        area = _uniform(b, *self.crop_scale, g, dev)
        log_r = _uniform(b, math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1]), g, dev)
        ratio = torch.exp(log_r)
        sx = torch.sqrt(area * ratio).clamp(max=1.0)  # crop width / image width
        sy = torch.sqrt(area / ratio).clamp(max=1.0)
        cx = (1 - sx) * _uniform(b, -1.0, 1.0, g, dev)  # crop centre stays inside
        cy = (1 - sy) * _uniform(b, -1.0, 1.0, g, dev)
        cx = cx + 2 * self.max_translate * _uniform(b, -1.0, 1.0, g, dev)
        cy = cy + 2 * self.max_translate * _uniform(b, -1.0, 1.0, g, dev)
        angle = math.radians(self.max_rotation) * _uniform(b, -1.0, 1.0, g, dev)
        flip = torch.where(torch.rand(b, generator=g, device=dev) < self.hflip_prob, -1.0, 1.0)
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack(  # (B, 2, 3): input coords = R @ diag(flip * sx, sy) @ out + c
            [
                torch.stack([cos * sx * flip, -sin * sy, cx], dim=1),
                torch.stack([sin * sx * flip, cos * sy, cy], dim=1),
            ],
            dim=1,
        ).to(x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (B, H, W, 2)
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        # --- brightness / contrast ------------------------------------------------------
        bright = _uniform(b, 1 - self.brightness, 1 + self.brightness, g, dev).view(b, 1, 1, 1)
        contr = _uniform(b, 1 - self.contrast, 1 + self.contrast, g, dev).view(b, 1, 1, 1)
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        out = ((out - mean) * contr + mean) * bright
        # --- noise ----------------------------------------------------------------------
        if self.noise_std > 0:
            out = out + self.noise_std * torch.randn(out.shape, generator=g, device=dev)
        # --- random erasing: one rectangle per selected image ----------------------------
        if self.erase_prob > 0:
            e_area = _uniform(b, *self.erase_scale, g, dev)
            e_ratio = torch.exp(_uniform(b, math.log(0.3), math.log(3.3), g, dev))
            eh = (torch.sqrt(e_area * e_ratio) * h).clamp(1, h)  # rows erased
            ew = (torch.sqrt(e_area / e_ratio) * w).clamp(1, w)
            y0 = torch.rand(b, generator=g, device=dev) * (h - eh)
            x0 = torch.rand(b, generator=g, device=dev) * (w - ew)
            on = torch.rand(b, generator=g, device=dev) < self.erase_prob
            ys = torch.arange(h, device=dev).view(1, h, 1)
            xs = torch.arange(w, device=dev).view(1, 1, w)
            mask = (  # (B, H, W)
                (ys >= y0.view(b, 1, 1).floor())
                & (ys < (y0 + eh).view(b, 1, 1).floor())
                & (xs >= x0.view(b, 1, 1).floor())
                & (xs < (x0 + ew).view(b, 1, 1).floor())
                & on.view(b, 1, 1)
            )
            out = out.masked_fill(mask.unsqueeze(1), 0.0)
        return out


@dataclass(frozen=True)
class VectorAugment:
    """Batched augmentation of ``(B, D)`` feature vectors (for the synthetic data).

    Each feature is dropped (set to 0) with probability ``mask_prob`` and Gaussian noise
    of standard deviation ``noise_std`` is added: the same corruption family as
    SCARF-style tabular contrastive learning (Bahri et al. 2022), with noise in place of
    marginal resampling so the view keeps the data's scale.
    """

    mask_prob: float = 0.2  # fraction of features dropped per view
    noise_std: float = 0.3  # in units of the data's RMS scale (the loaders scale it to 1)

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Return one augmented view of every row of ``x`` (shape ``(B, D)``)."""
        keep = torch.rand(x.shape, generator=generator, device=x.device) >= self.mask_prob
        noise = torch.randn(x.shape, generator=generator, device=x.device)
        return x * keep + self.noise_std * noise


Augment = ImageAugment | VectorAugment


def default_augment(data: Dataset) -> Augment:
    """Augmentation defaults per data set (see the field comments for the reasons)."""
    if not data.is_image:
        return VectorAugment()
    if data.name == "fashion-mnist":
        # clothes are mirror-symmetric classes: flips are safe; 28x28 tolerates a wider crop
        return ImageAugment(crop_scale=(0.3, 1.0), hflip_prob=0.5, max_rotation=10.0)
    return ImageAugment()


def two_views(
    x: Tensor, augment: Augment, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Two independently augmented views of the batch ``x``: ``((B, ...), (B, ...))``."""
    return augment(x, generator), augment(x, generator)
