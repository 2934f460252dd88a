"""Image loaders (mipipe.data): tiny files written in each real on-disk format are read back
through load_images; pixel values, labels and image orientation must round-trip exactly.

Runtime: about 2 s.
"""

from __future__ import annotations

import hashlib
import pickle
import struct

import numpy as np
import pytest
import scipy.io
import torch

from mipipe.data import CHECKSUMS, ImageSet, load_images

# --------------------------------------------------------------------------- writers


class _Py2Str(bytes):
    """A Python 2 ``str``: the CIFAR pickles were written by Python 2, whose strings are
    stored with the (SHORT_)BINSTRING opcodes and decoded on loading with the loader's
    ``encoding`` (b"data" with encoding="bytes", "data" with torchvision's "latin1")."""


class _Py2Pickler(pickle._Pickler):
    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2str(self, obj):
        raw = bytes(obj)
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[_Py2Str] = _save_py2str


def _py2_pickle(path, obj):
    with open(path, "wb") as f:
        _Py2Pickler(f, protocol=2).dump(obj)


def _md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _pattern(n, c, h, w, seed):
    """Random uint8 images whose image 0 has a known asymmetric pattern: channel 0 bright
    along the top row only, channel 1 bright along the left column only, channel 2 zero."""
    imgs = np.random.default_rng(seed).integers(0, 256, size=(n, c, h, w), dtype=np.uint8)
    imgs[0] = 0
    imgs[0, 0, 0, :] = 255
    imgs[0, 1, :, 0] = 200
    return imgs


def _assert_orientation(images: torch.Tensor):
    first = images[0].numpy()
    assert (first[0, 0, :] == 255).all() and (first[0, 1:, :] == 0).all()  # top row
    assert (first[1, :, 0] == 200).all() and (first[1, :, 1:] == 0).all()  # left column
    assert (first[2] == 0).all()


CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck"]


def write_cifar10(root, sizes=(2, 1, 2, 1, 2), n_test=3):
    """CIFAR10 python batches: dicts with b"batch_label", b"labels", b"data" ((n, 3072)
    uint8, channel-major, rows top to bottom) and b"filenames"; batches.meta."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    truth = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for idx, (name, n) in enumerate(zip(names, list(sizes) + [n_test])):
        imgs = _pattern(n, 3, 32, 32, seed=idx)
        labels = [(3 * idx + j) % 10 for j in range(n)]
        _py2_pickle(folder / name, {
            _Py2Str(b"batch_label"): _Py2Str(f"batch {idx}".encode()),
            _Py2Str(b"labels"): labels,
            _Py2Str(b"data"): imgs.reshape(n, 3 * 32 * 32),
            _Py2Str(b"filenames"): [_Py2Str(f"img_{idx}_{j}.png".encode()) for j in range(n)],
        })
        truth[name] = (imgs, labels)
    _py2_pickle(folder / "batches.meta", {
        _Py2Str(b"num_cases_per_batch"): 10000,
        _Py2Str(b"label_names"): [_Py2Str(c.encode()) for c in CIFAR_CLASSES],
        _Py2Str(b"num_vis"): 3072,
    })
    sums = {f"cifar-10-batches-py/{f.name}": _md5(f) for f in folder.iterdir()}
    return truth, sums


def write_svhn(root, n_train=5, n_test=4):
    """SVHN .mat files: X (32, 32, 3, N) uint8 indexed [row, column, channel, image], y
    (N, 1) with 10 for the digit 0."""
    root.mkdir(parents=True, exist_ok=True)
    truth = {}
    for split, n, seed in (("train", n_train, 10), ("test", n_test, 11)):
        imgs = _pattern(n, 3, 32, 32, seed)
        digits = np.array([(3 * j + seed) % 10 for j in range(n)])
        y = np.where(digits == 0, 10, digits).astype(np.uint8)[:, None]
        assert (y == 10).any()
        scipy.io.savemat(root / f"{split}_32x32.mat", {"X": imgs.transpose(2, 3, 1, 0), "y": y})
        truth[split] = (imgs, digits)
    sums = {f"{s}_32x32.mat": _md5(root / f"{s}_32x32.mat") for s in ("train", "test")}
    return truth, sums


STL_CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship",
               "truck"]


def write_stl10(root, n_train=3, n_test=2, n_unlabeled=2):
    """STL10 binaries: images 3 x 96 x 96 uint8, each channel stored column by column
    (column-major, as MATLAB wrote them); labels uint8 1..10; class_names.txt."""
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    truth = {}
    for split, n, seed in (("train", n_train, 20), ("test", n_test, 21),
                           ("unlabeled", n_unlabeled, 22)):
        imgs = _pattern(n, 3, 96, 96, seed)
        np.ascontiguousarray(imgs.transpose(0, 1, 3, 2)).tofile(folder / f"{split}_X.bin")
        labels = np.array([(j * 7 + seed) % 10 for j in range(n)])
        if split != "unlabeled":
            (labels + 1).astype(np.uint8).tofile(folder / f"{split}_y.bin")
        truth[split] = (imgs, labels)
    (folder / "class_names.txt").write_text("\n".join(STL_CLASSES) + "\n")
    sums = {f"stl10_binary/{f.name}": _md5(f) for f in folder.glob("*.bin")}
    return truth, sums


# --------------------------------------------------------------------------- real formats


def test_cifar10_round_trip(tmp_path):
    truth, sums = write_cifar10(tmp_path)
    train = load_images("cifar10", "train", tmp_path, checksums=sums)
    test = load_images("cifar10", "test", tmp_path, checksums=sums)
    want = np.concatenate([truth[f"data_batch_{i}"][0] for i in range(1, 6)])
    want_labels = [label for i in range(1, 6) for label in truth[f"data_batch_{i}"][1]]
    assert train.images.dtype == torch.uint8 and train.images.shape == (8, 3, 32, 32)
    np.testing.assert_array_equal(train.images.numpy(), want)
    assert train.labels.dtype == torch.int64 and train.labels.tolist() == want_labels
    np.testing.assert_array_equal(test.images.numpy(), truth["test_batch"][0])
    assert test.labels.tolist() == truth["test_batch"][1]
    assert train.classes == tuple(CIFAR_CLASSES) and train.name == "cifar10/train"
    _assert_orientation(test.images)


def test_svhn_round_trip_maps_label_10_to_digit_0(tmp_path):
    truth, sums = write_svhn(tmp_path)
    for split in ("train", "test"):
        got = load_images("svhn", split, tmp_path, checksums=sums)
        np.testing.assert_array_equal(got.images.numpy(), truth[split][0])
        assert got.labels.tolist() == truth[split][1].tolist()
        assert 0 in got.labels.tolist() and got.labels.max() <= 9
        _assert_orientation(got.images)
    assert got.classes == tuple(str(i) for i in range(10))


def test_svhn_reshuffled_pools_and_splits_80_20(tmp_path):
    truth, sums = write_svhn(tmp_path, n_train=6, n_test=4)
    pooled = np.concatenate([truth["train"][0], truth["test"][0]])
    pooled_labels = np.concatenate([truth["train"][1], truth["test"][1]])
    train = load_images("svhn_reshuffled", "train", tmp_path, checksums=sums, seed=3)
    test = load_images("svhn_reshuffled", "test", tmp_path, checksums=sums, seed=3)
    assert (len(train), len(test)) == (8, 2)  # 80/20 of 10
    perm = np.random.default_rng(3).permutation(10)  # the documented split
    np.testing.assert_array_equal(train.images.numpy(), pooled[perm[:8]])
    np.testing.assert_array_equal(test.images.numpy(), pooled[perm[8:]])
    assert test.labels.tolist() == pooled_labels[perm[8:]].tolist()
    again = load_images("svhn_reshuffled", "test", tmp_path, checksums=sums, seed=3)
    assert torch.equal(again.images, test.images)
    other = load_images("svhn_reshuffled", "train", tmp_path, checksums=sums, seed=4)
    assert not torch.equal(other.images, train.images)


def test_stl10_round_trip_column_major(tmp_path):
    truth, sums = write_stl10(tmp_path)
    for split in ("train", "test", "unlabeled"):
        got = load_images("stl10", split, tmp_path, checksums=sums)
        assert got.images.shape[1:] == (3, 96, 96)
        np.testing.assert_array_equal(got.images.numpy(), truth[split][0])
        _assert_orientation(got.images)
        if split == "unlabeled":
            assert got.labels.tolist() == [-1] * len(got)
        else:
            assert got.labels.tolist() == truth[split][1].tolist()
    assert got.classes == tuple(STL_CLASSES)


# --------------------------------------------------------------------------- errors


def test_official_checksums_reject_the_tiny_files(tmp_path):
    """The defaults are on: files that are not the official ones fail with both md5s."""
    _, sums = write_svhn(tmp_path)
    with pytest.raises(ValueError, match="train_32x32.mat") as err:
        load_images("svhn", "train", tmp_path)
    assert CHECKSUMS["svhn"]["train_32x32.mat"] in str(err.value)
    assert sums["train_32x32.mat"] in str(err.value)


@pytest.mark.parametrize("name", ["cifar10", "stl10"])
def test_wrong_checksum_names_the_file(tmp_path, name):
    writer = write_cifar10 if name == "cifar10" else write_stl10
    _, sums = writer(tmp_path)
    victim = sorted(sums)[1]
    bad = {**sums, victim: "0" * 32}
    with pytest.raises(ValueError, match=rf"{victim}.*md5 is {sums[victim]}, expected 0{{32}}"):
        load_images(name, "test", tmp_path, checksums=bad)


def test_corrupted_file_fails(tmp_path):
    _, sums = write_stl10(tmp_path)
    with open(tmp_path / "stl10_binary" / "test_y.bin", "ab") as f:
        f.write(b"\x01")
    with pytest.raises(ValueError, match="test_y.bin.*corrupt"):
        load_images("stl10", "test", tmp_path, checksums=sums)


def test_missing_root_names_the_path_and_the_remedy(tmp_path):
    root = tmp_path / "nowhere"
    for name in ("cifar10", "svhn", "svhn_reshuffled", "stl10"):
        with pytest.raises(FileNotFoundError, match=r"nowhere.*download: true"):
            load_images(name, "train", root, download=False)


def test_missing_file_is_named(tmp_path):
    _, sums = write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing file\(s\) \[[^]]*data_batch_3'\]"):
        load_images("cifar10", "train", tmp_path, checksums=sums)


def test_checksum_none_skips_the_md5_but_not_the_file(tmp_path):
    truth, _ = write_svhn(tmp_path)
    got = load_images("svhn", "test", tmp_path, checksums={"test_32x32.mat": None})
    np.testing.assert_array_equal(got.images.numpy(), truth["test"][0])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "mnist", "split": "train"}, "unknown data set 'mnist'"),
        ({"name": "cifar10", "split": "unlabeled"}, "no split 'unlabeled'"),
        ({"name": "digits", "split": "train", "seed": -1}, "seed"),
        ({"name": "digits", "split": "train", "train_fraction": 1.0}, "train_fraction"),
        ({"name": "svhn", "split": "train", "checksums": {"train.mat": "0" * 32}},
         "unknown file 'train.mat'"),
        ({"name": "svhn", "split": "train", "checksums": {"train_32x32.mat": "abc"}},
         "md5 hex"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_images(root=tmp_path, **kwargs)


# --------------------------------------------------------------------------- digits


def test_digits_split_is_complete_deterministic_and_seeded():
    from sklearn.datasets import load_digits

    train = load_images("digits", "train", seed=0)
    test = load_images("digits", "test", seed=0)
    assert (len(train), len(test)) == (1438, 359)  # round(0.8 * 1797)
    assert train.images.shape[1:] == (1, 8, 8) and train.images.dtype == torch.uint8
    assert sorted(set(train.labels.tolist()) | set(test.labels.tolist())) == list(range(10))
    assert train.classes == tuple(str(i) for i in range(10))
    # the split is the documented permutation, and the pixels are sklearn's scaled to 0..255
    bunch = load_digits()
    perm = np.random.default_rng(0).permutation(1797)
    np.testing.assert_array_equal(test.labels.numpy(), bunch.target[perm[1438:]])
    np.testing.assert_array_equal(
        test.images[:, 0].numpy(), np.rint(bunch.images[perm[1438:]] * 255 / 16)
    )
    assert int(train.images.max()) == 255 and int(train.images.min()) == 0
    again = load_images("digits", "train", seed=0)
    assert torch.equal(again.images, train.images)
    assert not torch.equal(load_images("digits", "train", seed=1).labels, train.labels)
    half = load_images("digits", "test", train_fraction=0.5)
    assert len(half) == 1797 - 898


def test_image_set_subset_and_validation():
    s = load_images("digits", "test")
    sub = s.subset([5, 2, 7])
    assert torch.equal(sub.images, s.images[[5, 2, 7]]) and sub.labels.tolist() == [
        s.labels[5].item(), s.labels[2].item(), s.labels[7].item()]
    assert len(s.subset(slice(0, 10))) == 10
    with pytest.raises(ValueError, match="out of range"):
        s.subset([len(s)])
    with pytest.raises(ValueError, match="uint8"):
        ImageSet(s.images.float(), s.labels, s.classes, "x")
    with pytest.raises(ValueError, match="int64"):
        ImageSet(s.images, s.labels[:-1], s.classes, "x")


def test_unreadable_file_with_unchecked_md5_is_a_clear_error(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"not a pickle")
    skip = {key: None for key in CHECKSUMS["cifar10"]}
    with pytest.raises(ValueError, match=r"CIFAR10: could not read the data set under"):
        load_images("cifar10", "test", tmp_path, checksums=skip)
