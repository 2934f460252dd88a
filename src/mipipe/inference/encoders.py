"""Encoders and the SimCLR projection head (thesis §5.1; Chen et al. 2020; Dziedzic et al. 2022).

Every encoder maps a float image batch ``(B, C, H, W)`` (see :func:`to_input`) to
representations ``(B, out_dim)`` and carries ``out_dim`` as an attribute.
"""

from __future__ import annotations

import torch
from torch import nn

ARCHS = ("resnet18", "resnet34", "small_cnn")


def to_input(images: torch.Tensor) -> torch.Tensor:
    """uint8 images ``(B, C, H, W)`` in 0..255 -> float32 in [-1, 1] (the encoders' input).

    Float input is taken as already scaled to [0, 1] (the output of the augmentations).
    """
    if images.dtype == torch.uint8:
        images = images.to(torch.float32) / 255.0
    elif not torch.is_floating_point(images):
        raise ValueError(f"images: expected uint8 or float, got {images.dtype}")
    return (images - 0.5) / 0.5


class CifarResNet(nn.Module):
    """torchvision ResNet18/34 in the CIFAR form: 3x3 stride-1 conv1, no max-pool, fc removed.

    Output: ``(B, 512)`` representations (global average pool of the last stage).
    """

    def __init__(self, depth: int = 34, in_channels: int = 3):
        super().__init__()
        from torchvision.models import resnet  # imported here: ~2 s that small-CNN jobs skip

        builders = {18: resnet.resnet18, 34: resnet.resnet34}
        if depth not in builders:
            raise ValueError(f"ResNet depth must be 18 or 34, got {depth!r}")
        net = builders[depth](weights=None)
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        net.fc = nn.Identity()
        self.net = net
        self.out_dim = 512

    def forward(self, x):
        return self.net(x)


class SmallCNN(nn.Module):
    """A small convolutional encoder for tiny images (the CPU default on 8x8 digits).

    ``widths[i]`` channels in block i (3x3 conv, batch norm, ReLU); a 2x2 max-pool after
    every block but the last; global average pool -> ``(B, widths[-1])``.
    """

    def __init__(self, widths=(32, 64, 128), in_channels: int = 1):
        super().__init__()
        widths = [int(w) for w in widths]
        if not widths or min(widths) < 1:
            raise ValueError(f"small_cnn widths must be positive integers, got {widths!r}")
        layers, c = [], in_channels
        for i, w in enumerate(widths):
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            c = w
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.net = nn.Sequential(*layers)
        self.out_dim = widths[-1]

    def forward(self, x):
        return self.net(x)


class ProjectionHead(nn.Sequential):
    """SimCLR projection head Linear(d, hidden) -> ReLU -> Linear(hidden, out)
    (paper: 512 -> 512 -> 128); used in training and discarded afterwards."""

    def __init__(self, in_dim: int, hidden: int = 512, out: int = 128):
        super().__init__(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out))
        self.out_dim = out


def build_encoder(spec: dict) -> nn.Module:
    """An untrained encoder from its spec.

    Parameters
    ----------
    spec : dict
        ``arch`` (resnet18, resnet34, small_cnn), ``in_channels`` (1 grey, 3 colour) and, for
        small_cnn, ``widths`` (channels per block).

    Raises
    ------
    ValueError
        Unknown architecture or bad widths.
    """
    arch = spec.get("arch")
    in_channels = int(spec.get("in_channels", 3))
    if arch in ("resnet18", "resnet34"):
        return CifarResNet(int(arch[len("resnet"):]), in_channels)
    if arch == "small_cnn":
        return SmallCNN(tuple(spec.get("widths", (32, 64, 128))), in_channels)
    raise ValueError(f"encoder arch must be one of {ARCHS}, got {arch!r}")


def build_head(in_dim: int, spec: dict | None) -> ProjectionHead | None:
    """The projection head for an encoder of width ``in_dim``; ``spec`` = {hidden, out} or None."""
    if spec is None:
        return None
    return ProjectionHead(in_dim, int(spec.get("hidden", 512)), int(spec.get("out", 128)))
