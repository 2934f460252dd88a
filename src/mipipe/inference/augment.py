"""SimCLR augmentations on uint8 image tensors (torchvision.transforms.v2), config-driven.

The paper's CIFAR10 recipe (shared/README.md §4; Chen et al. 2020, Appendix A):
RandomResizedCrop(32), horizontal flip, ColorJitter(0.8, 0.8, 0.8, 0.2) with p = 0.8,
grayscale with p = 0.2, Gaussian blur (kernel 3, sigma in [0.1, 2]). For 8x8 grey digits the
config drops the flip (digits are not mirror-symmetric), the colour terms and uses milder crops.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

DEFAULTS = {
    "crop_scale": [0.08, 1.0],
    "flip": 0.5,
    "color_jitter": {"brightness": 0.8, "contrast": 0.8, "saturation": 0.8, "hue": 0.2, "p": 0.8},
    "grayscale": 0.2,
    "blur": {"kernel": 3, "sigma": [0.1, 2.0], "p": 0.5},
}


def simclr_augmentation(spec: dict | None, size: int, channels: int) -> v2.Compose:
    """The random view generator for ``(C, size, size)`` uint8 images -> float32 in [0, 1].

    Parameters
    ----------
    spec : dict or None
        Keys (all optional, :data:`DEFAULTS` otherwise): ``crop_scale`` [lo, hi] of
        RandomResizedCrop; ``flip`` probability; ``color_jitter`` {brightness, contrast,
        saturation, hue, p} or null; ``grayscale`` probability; ``blur`` {kernel, sigma, p} or
        null. Saturation, hue and grayscale apply to colour images only.
    size, channels : int
        Image side in pixels and channel count (1 or 3).
    """
    spec = {**DEFAULTS, **(spec or {})}
    lo, hi = spec["crop_scale"]
    if not 0 < lo <= hi <= 1:
        raise ValueError(f"augmentation crop_scale must satisfy 0 < lo <= hi <= 1, got {[lo, hi]}")
    ops = [v2.RandomResizedCrop(size, scale=(lo, hi), antialias=True)]
    if spec["flip"]:
        ops.append(v2.RandomHorizontalFlip(p=spec["flip"]))
    cj = spec["color_jitter"]
    if cj:
        colour = {"saturation": cj.get("saturation", 0), "hue": cj.get("hue", 0)} if channels == 3 else {}
        jitter = v2.ColorJitter(brightness=cj.get("brightness", 0), contrast=cj.get("contrast", 0),
                                **colour)
        ops.append(v2.RandomApply([jitter], p=cj.get("p", 0.8)))
    if channels == 3 and spec["grayscale"]:
        ops.append(v2.RandomGrayscale(p=spec["grayscale"]))
    blur = spec["blur"]
    if blur:
        ops.append(v2.RandomApply([v2.GaussianBlur(int(blur.get("kernel", 3)),
                                                   tuple(blur.get("sigma", (0.1, 2.0))))],
                                  p=blur.get("p", 0.5)))
    ops.append(v2.ToDtype(torch.float32, scale=True))
    return v2.Compose(ops)


def augment_batch(transform, images: torch.Tensor) -> torch.Tensor:
    """One independent random view per image: ``(B, C, H, W)`` uint8 -> float32 in [0, 1].

    v2 transforms draw one set of random parameters per call, so each image is transformed
    on its own; the draws come from torch's global generator (seed it for reproducibility).
    """
    return torch.stack([transform(img) for img in images])
