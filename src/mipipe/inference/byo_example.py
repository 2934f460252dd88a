"""Files for the bring-your-own example (configs/byo_example.yaml), in a researcher's formats.

``python -m mipipe.inference.byo_example [DIR]`` (default ``data/byo``) writes, from
scikit-learn's digits as the default run splits them (``mipipe.data``, seed 0):

* ``DIR/members/<digit>/<row>.png`` -- the default victim's private training images (train
  rows 0-359, ``inference.victim.data`` of config.yaml) as an ``ImageFolder`` directory;
* ``DIR/public.npz`` -- the 359 test images, never trained on: ``images`` uint8 ``(N, 8, 8)``
  (layout NHW) and ``labels``;
* ``DIR/resnet18_untrained.pt`` -- the state dict of an untrained torchvision ResNet18 for
  grey 8x8 images (CIFAR stem, 10 classes, seed 0): a suspect in the arch + state-dict form.

The victim and the other suspects are the default run's checkpoints
(``results/inference/encoders/``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def write_example(root="data/byo", *, members=(0, 360), seed: int = 0) -> dict:
    """Write the example files under ``root``; returns {members, public, state_dict} paths."""
    import torch
    from PIL import Image

    from .data import load_images
    from .byo import build_torchvision

    root = Path(root)
    train = load_images("digits", "train", seed=seed)
    test = load_images("digits", "test", seed=seed)
    start, stop = members
    for row in range(start, stop):
        folder = root / "members" / str(int(train.labels[row]))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(train.images[row, 0].numpy(), mode="L").save(folder / f"{row:04d}.png")
    np.savez(root / "public.npz", images=test.images[:, 0].numpy(),
             labels=test.labels.numpy().astype(np.int64))
    torch.manual_seed(seed)
    net = build_torchvision("resnet18", num_classes=10, in_channels=1, cifar_stem=True)
    torch.save(net.state_dict(), root / "resnet18_untrained.pt")
    return {"members": root / "members", "public": root / "public.npz",
            "state_dict": root / "resnet18_untrained.pt"}


if __name__ == "__main__":
    paths = write_example(sys.argv[1] if len(sys.argv) > 1 else "data/byo")
    for key, path in paths.items():
        print(f"{key}: {path}")
