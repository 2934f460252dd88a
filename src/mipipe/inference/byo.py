"""Bring your own encoders: a user's images and checkpoints into the dataset-inference detectors.

The pieces behind ``rules/byo.smk`` (config section ``bring_your_own``), importable without
Snakemake:

* :func:`load_images` -- an image set from a directory in torchvision's ``ImageFolder``
  layout (``root/<class>/<image>.png``) or an ``.npz`` of uint8 arrays, as uint8
  ``(N, C, H, W)``;
* :func:`load_encoder` -- a mipipe checkpoint (:func:`mipipe.inference.load_checkpoint`) or a
  torchvision architecture name plus a plain state-dict file, both loaded with
  ``torch.load(..., weights_only=True)`` and ``load_state_dict(strict=True)``;
* :func:`random_like` -- the same architecture, untrained and seeded (the MI score's I_min);
* :func:`embed` -- representations ``(N, d)``, batched, in eval mode, without gradients.

Every error names the config key and the file it came from, so a researcher can fix the
right entry. Dziedzic et al. 2022 ("Dataset Inference for Self-Supervised Models") embed the
victim's private (member) and public (non-member) images with every suspect encoder; this
module produces exactly those representations from files a researcher has at hand.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .checkpoints import CheckpointError, load_checkpoint, load_state_strict

LAYOUTS = ("NHWC", "NCHW", "NHW")
# torchvision attribute that holds the classifier, in the order tried: ResNets, VGG/
# MobileNet/EfficientNet/ConvNeXt/DenseNet/SqueezeNet, ViT, Swin
CLASSIFIER_ATTRS = ("fc", "classifier", "heads", "head")
IMAGE_SUFFIXES = (".npz",)


class ByoError(ValueError):
    """Bad bring-your-own input: the message names the config key and the file."""


# ------------------------------------------------------------------------------ images

def load_images(spec: dict, where: str = "images") -> tuple[torch.Tensor, torch.Tensor]:
    """An image set as uint8 ``(N, C, H, W)`` and int64 labels ``(N,)`` (-1 when unknown).

    Parameters
    ----------
    spec : dict
        ``path``: a directory in ``ImageFolder`` layout (``path/<class>/<file>``; classes
        sorted by name, files sorted within a class) or an ``.npz`` file. For ``.npz``:
        ``array`` (default: the only array, else ``images``), ``layout`` (``NHWC``, the
        default, as CIFAR10's ``data``; ``NCHW``; or ``NHW`` for grey images) and
        ``labels`` (optional name of an integer array of length N). For both:
        ``channels`` (1 grey or 3 colour; without it an ``ImageFolder`` keeps grey files
        grey and makes the rest RGB; images are converted: grey is repeated, colour
        becomes luma L = 0.299 R + 0.587 G + 0.114 B, rounded as PIL's ``convert("L")``) and ``size`` (resize to
        size x size pixels, antialiased; without it every image must have the same size).
    where : str
        The config key, for error messages (e.g. ``bring_your_own/members``).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ByoError
        Not a directory or ``.npz``; an unreadable image (named); an ``ImageFolder`` without
        class folders or images; images of different sizes without ``size``; an ``.npz``
        array that is missing, not uint8, or of the wrong rank or channel count.
    """
    path = Path(spec["path"])
    if not path.exists():
        raise FileNotFoundError(f"{where}/path: {path}: no such file or directory")
    channels = spec.get("channels")
    if path.is_dir():
        x, y = _image_folder(path, where, channels, spec.get("size"))
    elif path.suffix.lower() == ".npz":
        x, y = _npz(path, spec, where)
        x = _convert_channels(x, channels, f"{where}: {path}")
    else:
        raise ByoError(
            f"{where}/path: {path} is neither a directory of images (ImageFolder layout: "
            f"root/<class>/<image>) nor an .npz file"
        )
    if spec.get("size") and tuple(x.shape[-2:]) != (spec["size"],) * 2:
        from torchvision.transforms import v2

        x = v2.functional.resize(x, [spec["size"], spec["size"]], antialias=True)
    if len(x) == 0:
        raise ByoError(f"{where}: {path} holds no images")
    return x.contiguous(), y


def _image_folder(root: Path, where: str, channels, size):
    from PIL import Image, UnidentifiedImageError
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    def loader(file):
        try:
            with Image.open(file) as im:
                # without channels: grey files stay grey, anything else becomes RGB
                mode = {1: "L", 3: "RGB"}.get(channels, "L" if im.mode == "L" else "RGB")
                return im.convert(mode)
        except (UnidentifiedImageError, OSError) as exc:
            raise ByoError(f"{where}: {file}: not a readable image ({exc})") from exc

    try:
        folder = ImageFolder(str(root), loader=loader)
    except FileNotFoundError as exc:  # no class folder, or a class folder without images
        raise ByoError(
            f"{where}/path: {root}: not an ImageFolder directory ({exc}); expected "
            f"{root}/<class>/<image>.png (one sub-folder per class, even a single one)"
        ) from exc
    images, first = [], None
    for file, _ in folder.samples:
        im = v2.functional.pil_to_tensor(folder.loader(file))
        if size:
            im = v2.functional.resize(im, [size, size], antialias=True)
        if first is None:
            first = (file, tuple(im.shape))
        elif tuple(im.shape) != first[1]:
            hint = (f"give {where}/channels (1 or 3)" if im.shape[0] != first[1][0]
                    else f"give {where}/size to resize them all")
            raise ByoError(
                f"{where}: {file} is {tuple(im.shape)} (channels, height, width) but "
                f"{first[0]} is {first[1]}; {hint}"
            )
        images.append(im)
    labels = torch.tensor([c for _, c in folder.samples], dtype=torch.int64)
    return torch.stack(images), labels


def _npz(path: Path, spec: dict, where: str):
    import zipfile

    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ByoError(f"{where}: {path}: not a readable .npz file ({exc})") from exc
    with npz:
        names = list(npz.files)
        name = spec.get("array") or (names[0] if len(names) == 1 else "images")
        if name not in names:
            raise ByoError(
                f"{where}/array: {path} has no array {name!r}; it holds {names} (name the "
                f"images with {where}/array)"
            )
        try:
            x = npz[name]
        except ValueError as exc:  # an object array needs pickle, which is refused
            raise ByoError(f"{where}: {path}: array {name!r} cannot be read without pickle") from exc
        labels = None
        if spec.get("labels"):
            if spec["labels"] not in names:
                raise ByoError(f"{where}/labels: {path} has no array {spec['labels']!r}; it holds {names}")
            labels = npz[spec["labels"]]
    layout = spec.get("layout", "NHWC")
    if layout not in LAYOUTS:
        raise ByoError(f"{where}/layout: {layout!r} is not one of {list(LAYOUTS)}")
    what = f"{where}: {path} array {name!r}"
    if x.dtype != np.uint8:
        raise ByoError(f"{what}: dtype {x.dtype}, expected uint8 images in 0..255")
    if x.ndim != len(layout):
        raise ByoError(f"{what}: shape {x.shape} has {x.ndim} axes, layout {layout} needs {len(layout)}")
    stored = x.shape
    if layout == "NHW":
        x = x[:, None]
    elif layout == "NHWC":
        x = x.transpose(0, 3, 1, 2)
    if x.shape[1] not in (1, 3):
        raise ByoError(
            f"{what}: {x.shape[1]} channels in layout {layout} (shape {stored}); "
            f"expected 1 or 3 -- is the layout right?"
        )
    if labels is None:
        y = torch.full((len(x),), -1, dtype=torch.int64)
    else:
        if labels.ndim != 1 or len(labels) != len(x) or not np.issubdtype(labels.dtype, np.integer):
            raise ByoError(
                f"{where}/labels: {path} array {spec['labels']!r} must be integers of shape "
                f"({len(x)},), got {labels.dtype} {labels.shape}"
            )
        y = torch.from_numpy(labels.astype(np.int64))
    return torch.from_numpy(np.ascontiguousarray(x)), y


def _convert_channels(x: torch.Tensor, channels, what: str) -> torch.Tensor:
    if channels is None or x.shape[1] == channels:
        return x
    if channels == 3 and x.shape[1] == 1:
        return x.repeat(1, 3, 1, 1)
    if channels == 1 and x.shape[1] == 3:
        # PIL's convert("L") in 16-bit fixed point: (19595 R + 38470 G + 7471 B + 2^15) >> 16
        w = torch.tensor([19595, 38470, 7471], dtype=torch.int64).view(1, 3, 1, 1)
        luma = ((x.to(torch.int64) * w).sum(1, keepdim=True) + 0x8000) >> 16
        return luma.to(torch.uint8)
    raise ByoError(f"{what}: cannot convert {x.shape[1]} channels to {channels}")


# ---------------------------------------------------------------------------- encoders

class Encoder(nn.Module):
    """A user's encoder behind mipipe's input convention: uint8 ``(B, C, H, W)`` ->
    float ``(B, d)``, normalised first as ``(x / 255 - mean) / std`` per channel."""

    def __init__(self, net: nn.Module, mean, std, description: str):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.description = description

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(torch.float32) / 255.0
        out = self.net((x - self.mean) / self.std)
        return out.flatten(1)


def torchvision_names() -> list[str]:
    """torchvision's classification architectures (``torchvision.models.list_models``)."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def build_torchvision(arch: str, *, num_classes: int = 1000, in_channels: int = 3,
                      cifar_stem: bool = False, where: str = "encoder") -> nn.Module:
    """An untrained torchvision classifier ``arch`` (``weights=None``).

    ``cifar_stem`` (ResNets only) swaps the 7x7 stride-2 ``conv1`` for a 3x3 stride-1 one and
    drops the max-pool, as the CIFAR ResNets of SimCLR and of Dziedzic et al. 2022 do;
    ``in_channels`` != 3 (ResNets only) rebuilds ``conv1`` for grey images.

    Raises
    ------
    ByoError
        An unknown architecture (with the closest names), or ``cifar_stem``/``in_channels``
        on a non-ResNet.
    """
    import torchvision

    names = torchvision_names()
    if arch not in names:
        close = difflib.get_close_matches(arch, names, n=3)
        raise ByoError(f"{where}/arch: {arch!r} is not a torchvision classification model"
                       + (f"; did you mean {close}?" if close else f"; known: {names}"))
    net = torchvision.models.get_model(arch, weights=None, num_classes=int(num_classes))
    if cifar_stem or in_channels != 3:
        if not isinstance(net, torchvision.models.ResNet):
            raise ByoError(f"{where}: cifar_stem and in_channels apply to torchvision ResNets, not {arch!r}")
        k, s, p = (3, 1, 1) if cifar_stem else (7, 2, 3)
        net.conv1 = nn.Conv2d(int(in_channels), 64, kernel_size=k, stride=s, padding=p, bias=False)
        if cifar_stem:
            net.maxpool = nn.Identity()
    return net


def _torchvision_net(spec: dict, where: str) -> tuple[nn.Module, str | None]:
    """The untrained torchvision model of an {arch, num_classes?, in_channels?, cifar_stem?}
    spec and the name of its classifier attribute (None if it has none)."""
    net = build_torchvision(spec["arch"], num_classes=spec.get("num_classes", 1000),
                            in_channels=int(spec.get("in_channels", 3)),
                            cifar_stem=bool(spec.get("cifar_stem", False)), where=where)
    return net, _classifier_attr(net)


def _classifier_attr(net: nn.Module) -> str | None:
    for attr in CLASSIFIER_ATTRS:
        if isinstance(getattr(net, attr, None), nn.Module):
            return attr
    return None


def read_state_dict(path, where: str) -> dict:
    """A plain state dict (names -> tensors) read with ``torch.load(weights_only=True)``.

    Raises
    ------
    FileNotFoundError
        No such file.
    ByoError
        Refused by the safe unpickler, or not a flat dict of tensors (a training checkpoint
        that wraps one, e.g. under ``state_dict``, is named with its keys).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{where}/state_dict: {path}: no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ByoError(f"{where}/state_dict: {path}: not loadable with torch.load(weights_only=True) "
                       f"({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or not state:
        raise ByoError(f"{where}/state_dict: {path}: expected a state dict (parameter name -> "
                       f"tensor), got {type(state).__name__}")
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        inner = [k for k in not_tensors if isinstance(state[k], dict)]
        hint = (f"; it looks like a training checkpoint: save its {inner[0]!r} entry alone "
                f"(torch.save(ckpt[{inner[0]!r}], path))" if inner else "")
        raise ByoError(f"{where}/state_dict: {path}: not a plain state dict, the entries "
                       f"{sorted(map(str, not_tensors))[:8]} are not tensors{hint}")
    return state


def load_encoder(spec: dict, where: str = "encoder", device="cpu") -> Encoder:
    """A user's encoder, in eval mode, producing representations ``(B, d)``.

    Parameters
    ----------
    spec : dict
        Either ``{checkpoint: path}`` -- a mipipe checkpoint (the encoder, its head is not
        used) -- or ``{arch, state_dict, ...}``: a torchvision architecture name and a plain
        state-dict file, with optional ``num_classes`` (default 1000), ``in_channels`` and
        ``cifar_stem`` (see :func:`build_torchvision`). The representation is the input of
        the classifier (``fc``, ``classifier``, ``heads`` or ``head``), which is replaced by
        the identity; a state dict without any of the classifier's keys (a backbone saved
        with ``fc = Identity()``) is accepted, any other difference in the key set is not.
        Both take ``mean`` and ``std`` (per channel, or one value; default 0.5 and 0.5, the
        [-1, 1] scaling of mipipe's encoders; ImageNet weights want [0.485, 0.456, 0.406]
        and [0.229, 0.224, 0.225]).
    where : str
        The config key, for error messages.

    Raises
    ------
    FileNotFoundError
        A missing checkpoint or state-dict file.
    ByoError, CheckpointError
        A spec with both or neither of checkpoint/arch; an unknown architecture; a file the
        safe unpickler refuses; missing or unexpected keys or mismatched shapes (all named,
        with the file).
    """
    has_ckpt, has_arch = "checkpoint" in spec, "arch" in spec
    if has_ckpt == has_arch:
        raise ByoError(f"{where}: give either checkpoint (a mipipe checkpoint) or arch + "
                       f"state_dict (a torchvision architecture and a plain state dict)")
    if has_ckpt:
        path = Path(spec["checkpoint"])
        if not path.is_file():
            raise FileNotFoundError(f"{where}/checkpoint: {path}: no such file")
        try:
            net, _, payload = load_checkpoint(path)
        except CheckpointError as exc:
            raise CheckpointError(f"{where}/checkpoint: {exc}") from exc
        description = f"mipipe {payload['encoder_spec'].get('arch')} checkpoint {path}"
    else:
        if "state_dict" not in spec:
            raise ByoError(f"{where}: arch {spec['arch']!r} needs state_dict (a file from "
                           f"torch.save(model.state_dict(), path))")
        path = Path(spec["state_dict"])
        state = read_state_dict(path, where)
        net, attr = _torchvision_net(spec, where)
        if attr and not any(k.startswith(f"{attr}.") for k in state):
            setattr(net, attr, nn.Identity())  # a backbone saved without its classifier
        load_state_strict(net, state, f"{where}/state_dict: {path}")
        if attr:
            setattr(net, attr, nn.Identity())
        description = f"torchvision {spec['arch']} state dict {path}"
    mean, std = _stats(spec, "mean", 0.5, where), _stats(spec, "std", 0.5, where)
    return Encoder(net, mean, std, description).to(device).eval()


def _stats(spec, key, default, where):
    value = spec.get(key, default)
    values = [float(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
    if key == "std" and min(values) <= 0:
        raise ByoError(f"{where}/std: must be > 0, got {value!r}")
    return values


def random_like(spec: dict, seed: int, where: str = "victim") -> Encoder:
    """The architecture of ``spec`` (see :func:`load_encoder`), untrained, initialised with
    ``torch.manual_seed(seed)``: the random encoder whose MI with the victim is the MI
    score's I_min (thesis section 5.3)."""
    torch.manual_seed(int(seed))
    if "checkpoint" in spec:
        from .encoders import build_encoder

        payload = torch.load(spec["checkpoint"], map_location="cpu", weights_only=True)
        net = build_encoder(payload["encoder_spec"])
        description = f"random {payload['encoder_spec'].get('arch')} (seed {seed})"
    else:
        net, attr = _torchvision_net(spec, where)
        if attr:
            setattr(net, attr, nn.Identity())
        description = f"random torchvision {spec['arch']} (seed {seed})"
    mean, std = _stats(spec, "mean", 0.5, where), _stats(spec, "std", 0.5, where)
    return Encoder(net, mean, std, description).eval()


@torch.no_grad()
def embed(encoder: nn.Module, images: torch.Tensor, *, batch_size: int = 256,
          device="cpu") -> np.ndarray:
    """Representations of uint8 images ``(N, C, H, W)`` -> float32 ``(N, d)``, in order,
    in batches of ``batch_size``, with the encoder in eval mode and no gradients.

    Raises
    ------
    ByoError
        Images that are not uint8 ``(N, C, H, W)``, or whose channel count the encoder
        rejects (the encoder's error is kept).
    """
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ByoError(f"images: expected uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
    device = torch.device(device)
    encoder = encoder.to(device).eval()
    out = []
    for i in range(0, len(images), int(batch_size)):
        try:
            z = encoder(images[i:i + int(batch_size)].to(device))
        except RuntimeError as exc:
            hint = (" (convert the images with channels: 1 or 3 on the image sets)"
                    if "channels" in str(exc) else "")
            raise ByoError(f"{getattr(encoder, 'description', 'encoder')}: failed on images of "
                           f"shape {tuple(images.shape[1:])}{hint}: {exc}") from exc
        out.append(z.float().cpu())
    return torch.cat(out).numpy().astype(np.float32, copy=False)


# ------------------------------------------------------------------------------ stages

def images_stage(spec: dict, out_path, *, where: str) -> dict:
    """:func:`load_images` -> a ``torch.save`` of plain tensors ``{images, labels}`` at
    ``out_path`` (atomic; read back with :func:`mipipe.inference.stages.load_source`).

    Returns {n, shape} for the log.
    """
    from ..io import atomic_path

    x, y = load_images(spec, where)
    with atomic_path(out_path) as tmp:
        torch.save({"images": x, "labels": y, "source": str(spec["path"])}, tmp)
    return {"n": len(x), "shape": list(x.shape[1:])}


def embed_stage(spec: dict, members_path, public_path, out_path, *, where: str,
                random_seed: int | None = None, batch_size: int = 256, device="auto",
                threads: int = 1):
    """Embed the cached member and public images with one encoder -> Parquet.

    ``spec`` is loaded with :func:`load_encoder`, or, when ``random_seed`` is given, its
    architecture is initialised at random with that seed (:func:`random_like`). Columns:
    ``set`` (members | public), ``image`` (row of the cached set), float32 ``z0..z{d-1}``;
    the encoder's description is in the Parquet metadata.
    """
    import pandas as pd

    from ..io import write_parquet
    from .stages import load_source
    from .training import resolve_device

    torch.set_num_threads(max(int(threads), 1))
    dev = resolve_device(device)
    if random_seed is None:
        encoder = load_encoder(spec, where, dev)
    else:
        encoder = random_like(spec, random_seed, where).to(dev)
    frames = []
    for name, path in (("members", members_path), ("public", public_path)):
        x, _ = load_source(path)
        z = embed(encoder, x, batch_size=batch_size, device=dev)
        df = pd.DataFrame(z, columns=[f"z{j}" for j in range(z.shape[1])])
        df.insert(0, "image", np.arange(len(z), dtype=np.int64))
        df.insert(0, "set", name)
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    write_parquet(out, out_path, metadata={"encoder": encoder.description, "config_key": where})
    return out, encoder.description
