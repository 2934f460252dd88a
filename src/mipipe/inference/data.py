"""Image data sets for dataset inference (thesis section 5; Dziedzic et al. 2022).

Every loader returns an :class:`ImageSet`: uint8 images ``(N, C, H, W)`` and int64 labels.

* ``digits`` -- scikit-learn's handwritten digits (1,797 grey 8x8 images, shipped inside
  scikit-learn, no download). The embedded default of the pipeline.
* ``cifar10``, ``svhn``, ``stl10`` -- the real data sets in their standard on-disk formats,
  read by torchvision's dataset classes from ``root``:

  - CIFAR10: ``root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``
    (python pickles);
  - SVHN: ``root/train_32x32.mat`` and ``root/test_32x32.mat`` (MATLAB, ``X`` of shape
    (32, 32, 3, N), ``y`` with label 10 for the digit 0);
  - STL10: ``root/stl10_binary/{train_X, train_y, test_X, test_y, unlabeled_X}.bin`` (raw
    uint8, images column-major) and ``class_names.txt``.

  The md5 of every file is checked against :data:`CHECKSUMS` (the official values, those
  torchvision uses) or the caller's ``checksums`` overrides.
* ``svhn_reshuffled`` -- SVHN's train and test pooled and split anew at random, 80/20:
  "the SVHN dataset's test and train data distribution is not the same, therefore they
  reshuffled the whole dataset and used it after an 80 - 20% train-test split" (thesis
  section 5, on the stealing set-up of Dziedzic et al. 2022).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["CHANNELS", "CHECKSUMS", "DATASETS", "SIZES", "SPLITS", "ImageSet", "load_images",
           "split_index"]

# What the data sets are, without loading them (and without importing torch: mipipe.config
# checks configs with these facts before any job runs).
DATASETS = ("digits", "cifar10", "svhn", "svhn_reshuffled", "stl10")

SPLITS = {
    "digits": ("train", "test"),
    "cifar10": ("train", "test"),
    "svhn": ("train", "test"),
    "svhn_reshuffled": ("train", "test"),
    "stl10": ("train", "test", "unlabeled"),
}

# images per split as distributed; digits (1,797) and svhn_reshuffled (73,257 + 26,032 =
# 99,289) are split by train_fraction, see :func:`split_size`
SIZES = {
    "digits": {None: 1797},
    "cifar10": {"train": 50000, "test": 10000},
    "svhn": {"train": 73257, "test": 26032},
    "svhn_reshuffled": {None: 99289},
    "stl10": {"train": 5000, "test": 8000, "unlabeled": 100000},
}


def split_size(name: str, split: str, train_fraction: float = 0.8) -> int:
    """Number of images of ``name``'s ``split`` (as :func:`load_images` returns them, before
    any rows slice). The seeded splits have ``round(train_fraction * n)`` train images
    (:func:`split_index`). Raises KeyError for an unknown data set or split."""
    sizes = SIZES[name]
    if None not in sizes:
        return sizes[split]
    n_train = round(train_fraction * sizes[None])
    return {"train": n_train, "test": sizes[None] - n_train}[split]


# colour channels of each data set's images (digits are grey)
CHANNELS = {"digits": 1, "cifar10": 3, "svhn": 3, "svhn_reshuffled": 3, "stl10": 3}


# Official md5 sums of the files as distributed (the same values torchvision checks),
# keyed by the path relative to ``root``.
_CIFAR = "cifar-10-batches-py"
_STL = "stl10_binary"
CHECKSUMS: dict[str, dict[str, str]] = {
    "cifar10": {
        f"{_CIFAR}/data_batch_1": "c99cafc152244af753f735de768cd75f",
        f"{_CIFAR}/data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        f"{_CIFAR}/data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        f"{_CIFAR}/data_batch_4": "634d18415352ddfa80567beed471001a",
        f"{_CIFAR}/data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        f"{_CIFAR}/test_batch": "40351d587109b95175f43aff81a1287e",
        f"{_CIFAR}/batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
    },
    "svhn": {
        "train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
        "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
    },
    "stl10": {
        f"{_STL}/train_X.bin": "918c2871b30a85fa023e0c44e0bee87f",
        f"{_STL}/train_y.bin": "5a34089d4802c674881badbb80307741",
        f"{_STL}/unlabeled_X.bin": "5242ba1fed5e4be9e1e742405eb56ca4",
        f"{_STL}/test_X.bin": "7f263ba9f9e0b06b93213547f721ac82",
        f"{_STL}/test_y.bin": "36f9794fa4beb8a2c72628de14fa638e",
    },
}

# STL10's classes in label order, as its class_names.txt lists them (used if that file is
# absent; it is not among the checksummed files).
STL10_CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship",
                 "truck")

_REMEDY = (
    "Set `download: true` in the config (needs internet), or put the files there yourself "
    "(README: 'Image data sets')"
)


@dataclass(frozen=True)
class ImageSet:
    """Images with labels.

    Attributes
    ----------
    images : (N, C, H, W) uint8 tensor, pixel values 0..255.
    labels : (N,) int64 tensor, class indices 0..len(classes)-1; -1 where unlabelled
        (STL10 "unlabeled").
    classes : class names, index i naming label i.
    name : "<data set>/<split>", e.g. "cifar10/train".
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    name: str

    def __post_init__(self):
        import torch

        if not isinstance(self.images, torch.Tensor) or self.images.dtype != torch.uint8 or (
            self.images.dim() != 4
        ):
            raise ValueError(
                f"ImageSet {self.name!r}: images must be a uint8 tensor (N, C, H, W), got "
                f"{type(self.images).__name__} {getattr(self.images, 'dtype', '')} "
                f"{tuple(getattr(self.images, 'shape', ()))}"
            )
        if not isinstance(self.labels, torch.Tensor) or self.labels.dtype != torch.int64 or (
            self.labels.shape != (self.images.shape[0],)
        ):
            raise ValueError(
                f"ImageSet {self.name!r}: labels must be an int64 tensor of shape "
                f"({self.images.shape[0]},), got {getattr(self.labels, 'dtype', '')} "
                f"{tuple(getattr(self.labels, 'shape', ()))}"
            )
        if len(self.labels) and int(self.labels.max()) >= len(self.classes):
            raise ValueError(
                f"ImageSet {self.name!r}: label {int(self.labels.max())} but only "
                f"{len(self.classes)} classes"
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, index) -> ImageSet:
        """Rows selected by ``index`` (slice, integer array/list or tensor), in that order."""
        import torch

        if isinstance(index, slice):
            return ImageSet(self.images[index], self.labels[index], self.classes, self.name)
        idx = torch.as_tensor(np.asarray(index), dtype=torch.int64)
        if idx.dim() != 1:
            raise ValueError(f"subset index must be 1-D, got shape {tuple(idx.shape)}")
        n = len(self)
        if len(idx) and (int(idx.min()) < -n or int(idx.max()) >= n):
            raise ValueError(f"subset index out of range for {self.name!r} with {n} images")
        return ImageSet(self.images[idx], self.labels[idx], self.classes, self.name)


def split_index(n: int, split: str, seed: int, train_fraction: float) -> np.ndarray:
    """Rows of a seeded random train/test split of ``n`` items.

    The permutation is ``numpy.random.default_rng(seed).permutation(n)``; its first
    ``round(train_fraction * n)`` entries are "train", the rest "test" (each in permutation
    order). Same seed, same split; the two splits are disjoint and cover all rows.
    """
    n_train = round(train_fraction * n)
    perm = np.random.default_rng(seed).permutation(n)
    return perm[:n_train] if split == "train" else perm[n_train:]


def _check_args(name, split, seed, train_fraction):
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; choose one of {list(DATASETS)}")
    if split not in SPLITS[name]:
        raise ValueError(
            f"data set {name!r} has no split {split!r}; choose one of {list(SPLITS[name])}"
        )
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(train_fraction, bool) or not isinstance(train_fraction, numbers.Real) or not (
        0.0 < float(train_fraction) < 1.0
    ):
        raise ValueError(
            f"train_fraction must lie strictly between 0 and 1, got {train_fraction!r}"
        )


def _resolve_checksums(name: str, checksums) -> dict[str, str | None]:
    """The md5 table of data set ``name`` with the caller's overrides applied.

    ``checksums`` maps paths relative to root (the keys of :data:`CHECKSUMS`) to md5 hex
    strings, or to None to check only that the file exists. Keys of other data sets are
    ignored; a key no data set knows is an error.
    """
    table: dict[str, str | None] = dict(CHECKSUMS.get(name, {}))
    if checksums is None:
        return table
    if not isinstance(checksums, Mapping):
        raise ValueError(f"checksums must be a mapping from file path to md5, got {checksums!r}")
    known = {key for files in CHECKSUMS.values() for key in files}
    for key, md5 in checksums.items():
        if key not in known:
            raise ValueError(
                f"checksums: unknown file {key!r}; the known files are {sorted(known)}"
            )
        hex_digits = "0123456789abcdefABCDEF"
        if md5 is not None and not (
            isinstance(md5, str) and len(md5) == 32 and all(c in hex_digits for c in md5)
        ):
            raise ValueError(
                f"checksums[{key!r}] must be a 32-digit md5 hex string or null, got {md5!r}"
            )
        if key in table:
            table[key] = md5.lower() if md5 is not None else None
    return table


def _file_list(folder: str, names, table) -> list[list]:
    """torchvision's ``[[file name, md5], ...]`` for files under ``folder``."""
    return [[f, table[f"{folder}/{f}"]] for f in names]


def _torchvision_class(name: str, table: Mapping[str, str | None]):
    """torchvision's dataset class for ``name`` with its md5 lists taken from ``table``.

    torchvision keeps the file names and checksums as class attributes; a subclass that
    replaces them makes torchvision's own integrity check use mipipe's table.
    """
    from torchvision import datasets

    if name == "cifar10":
        base = datasets.CIFAR10
        attrs = {
            "train_list": _file_list(_CIFAR, [f"data_batch_{i}" for i in range(1, 6)], table),
            "test_list": _file_list(_CIFAR, ["test_batch"], table),
            "meta": {**base.meta, "md5": table[f"{_CIFAR}/batches.meta"]},
        }
    elif name == "svhn":
        base = datasets.SVHN
        attrs = {
            "split_list": {
                split: [url, fname, table.get(fname, md5)]
                for split, (url, fname, md5) in base.split_list.items()
            }
        }
    else:
        base = datasets.STL10
        attrs = {
            "train_list": _file_list(
                _STL, ["train_X.bin", "train_y.bin", "unlabeled_X.bin"], table
            ),
            "test_list": _file_list(_STL, ["test_X.bin", "test_y.bin"], table),
        }
    return type(f"Checked{base.__name__}", (base,), attrs)


def _diagnose(name: str, root: Path, table: Mapping[str, str | None], needed, exc=None):
    """Raise the clear error for a missing or corrupt file of data set ``name``."""
    from torchvision.datasets.utils import calculate_md5

    label = {"cifar10": "CIFAR10", "svhn": "SVHN", "stl10": "STL10"}[name]
    if not root.is_dir():
        raise FileNotFoundError(
            f"{label}: the data root {str(root)!r} does not exist (expected files "
            f"{[str(root / rel) for rel in needed]}). {_REMEDY}"
        )
    missing = [rel for rel in needed if not (root / rel).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{label}: missing file(s) {[str(root / rel) for rel in missing]} (data set root "
            f"{str(root)!r}). {_REMEDY}"
        )
    for rel in needed:
        md5 = table[rel]
        if md5 is None:
            continue
        actual = calculate_md5(str(root / rel))
        if actual != md5:
            raise ValueError(
                f"{label}: file {str(root / rel)!r} is corrupt or not the official one: its md5 "
                f"is {actual}, expected {md5}. Delete it and download again (`download: true`), "
                f"or, for a deliberately different file, give its md5 under `checksums`"
            )
    if exc is not None:
        raise ValueError(
            f"{label}: could not read the data set under {str(root)!r}: {exc}"
        ) from exc


def _from_torchvision(name, split, root: Path, download, table):
    """(images (N, C, H, W) uint8, labels (N,) int64, classes) of one torchvision split."""
    cls = _torchvision_class(name, table)
    if name == "svhn":
        needed = [f"{split}_32x32.mat"]
    else:
        needed = list(table)  # torchvision checks every file of CIFAR10/STL10 for any split
    if not download and any(not (root / rel).is_file() for rel in needed):
        _diagnose(name, root, table, needed)
    try:
        if name == "cifar10":
            ds = cls(str(root), train=(split == "train"), download=download)
            images = np.ascontiguousarray(np.asarray(ds.data).transpose(0, 3, 1, 2))
            labels = np.asarray(ds.targets, dtype=np.int64)
            classes = tuple(ds.classes)
        elif name == "svhn":
            ds = cls(str(root), split=split, download=download)
            images = np.ascontiguousarray(ds.data)
            labels = np.asarray(ds.labels, dtype=np.int64)
            classes = tuple(str(i) for i in range(10))
        else:
            ds = cls(str(root), split=split, download=download)
            images = np.ascontiguousarray(ds.data)
            labels = np.asarray(ds.labels).astype(np.int64)
            if split == "unlabeled":
                labels = np.full(images.shape[0], -1, dtype=np.int64)
            classes = tuple(getattr(ds, "classes", ()) or STL10_CLASSES)
    except Exception as exc:  # torchvision: "Dataset not found or corrupted", unpickling ...
        if download and any(not (root / rel).is_file() for rel in needed):
            raise FileNotFoundError(
                f"{name}: download into {str(root)!r} failed ({type(exc).__name__}: {exc}); "
                f"without internet, put the files there yourself (README: 'Image data sets')"
            ) from exc
        _diagnose(name, root, table, needed, exc)  # always raises
    if images.dtype != np.uint8:
        raise ValueError(f"{name}: expected uint8 pixels under {str(root)!r}, got {images.dtype}")
    return images, labels, classes


def load_images(
    name: str,
    split: str,
    root="data",
    *,
    download: bool = False,
    checksums: Mapping[str, str | None] | None = None,
    seed: int = 0,
    train_fraction: float = 0.8,
) -> ImageSet:
    """Load one split of an image data set as uint8 ``(N, C, H, W)`` tensors.

    Parameters
    ----------
    name : one of :data:`DATASETS`: "digits", "cifar10", "svhn", "svhn_reshuffled", "stl10".
    split : "train" or "test"; STL10 also "unlabeled" (labels -1).
    root : directory holding the data sets in torchvision's layout (see the module
        docstring); unused for "digits".
    download : passed to torchvision (fetches the official archives; needs internet).
    checksums : overrides of :data:`CHECKSUMS`, ``{path relative to root: md5 or None}``;
        None skips the md5 check of that file (it must still exist).
    seed, train_fraction : the seeded split of "digits" (train = the first
        ``round(train_fraction * 1797)`` rows of ``default_rng(seed).permutation(1797)``)
        and of "svhn_reshuffled" (the same over SVHN train followed by SVHN test, 99,289
        images; the thesis's 80/20 is ``train_fraction=0.8``). Ignored by the fixed
        splits of CIFAR10, SVHN and STL10.

    Returns
    -------
    :class:`ImageSet`. digits: C = 1, 8x8, the 0..16 grey levels mapped to
    ``round(v * 255 / 16)``; CIFAR10, SVHN: 3x32x32; STL10: 3x96x96. SVHN labels are 0..9
    with the file's label 10 mapped to 0 (the digit 0), as torchvision does.

    Raises
    ------
    ValueError
        Unknown data set or split, bad seed/train_fraction, unknown ``checksums`` key, or a
        file whose md5 differs from the expected one (names the file, both md5s and the
        remedy).
    FileNotFoundError
        A file of the data set is missing under ``root`` (names the expected paths and
        the remedy: ``download: true`` or placing the files per the README).
    """
    import torch

    _check_args(name, split, seed, train_fraction)
    if name == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        grey = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None, :, :]
        idx = split_index(grey.shape[0], split, seed, train_fraction)
        return ImageSet(
            torch.from_numpy(np.ascontiguousarray(grey[idx])),
            torch.from_numpy(bunch.target[idx].astype(np.int64)),
            tuple(str(c) for c in bunch.target_names),
            f"digits/{split}",
        )
    root = Path(root)
    base = "svhn" if name == "svhn_reshuffled" else name
    table = _resolve_checksums(base, checksums)
    if name == "svhn_reshuffled":
        parts = [_from_torchvision("svhn", s, root, download, table) for s in ("train", "test")]
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        classes = parts[0][2]
        idx = split_index(images.shape[0], split, seed, train_fraction)
        images, labels = images[idx], labels[idx]
    else:
        images, labels, classes = _from_torchvision(name, split, root, download, table)
    return ImageSet(
        torch.from_numpy(np.ascontiguousarray(images)),
        torch.from_numpy(np.ascontiguousarray(labels)),
        tuple(classes),
        f"{name}/{split}",
    )
