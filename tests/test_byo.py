"""Bring your own encoders: the image and encoder loaders (mipipe.inference.byo), their
errors, and the config checks of the bring_your_own section."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from mipipe.config import ConfigError, check_config, check_keys, validate_schema
from mipipe.inference.byo import (ByoError, build_torchvision, embed, load_encoder,
                                  load_images, random_like, read_state_dict)
from mipipe.inference import CheckpointError, build_encoder, extract_features, save_checkpoint

RNG = np.random.default_rng(0)


# ------------------------------------------------------------------------------ images

def _write_folder(root, arrays_by_class, mode="RGB"):
    for cls, arrays in arrays_by_class.items():
        (root / cls).mkdir(parents=True)
        for i, a in enumerate(arrays):
            Image.fromarray(a, mode=mode).save(root / cls / f"{i:03d}.png")


def test_npz_layouts_give_the_same_nchw_images(tmp_path):
    nhwc = RNG.integers(0, 256, (5, 6, 7, 3), dtype=np.uint8)
    np.savez(tmp_path / "a.npz", images=nhwc, y=np.arange(5))
    np.savez(tmp_path / "b.npz", nhwc.transpose(0, 3, 1, 2))
    x, y = load_images({"path": str(tmp_path / "a.npz"), "labels": "y"})
    assert x.dtype == torch.uint8 and x.shape == (5, 3, 6, 7)
    assert np.array_equal(x.numpy(), nhwc.transpose(0, 3, 1, 2))
    assert y.tolist() == [0, 1, 2, 3, 4]
    x2, y2 = load_images({"path": str(tmp_path / "b.npz"), "layout": "NCHW"})  # the only array
    assert torch.equal(x, x2) and (y2 == -1).all()
    grey = RNG.integers(0, 256, (4, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "g.npz", images=grey, other=np.zeros(3))
    xg, _ = load_images({"path": str(tmp_path / "g.npz"), "layout": "NHW"})
    assert xg.shape == (4, 1, 8, 8) and np.array_equal(xg[:, 0].numpy(), grey)


def test_channel_conversion_matches_pil(tmp_path):
    nhwc = RNG.integers(0, 256, (3, 5, 5, 3), dtype=np.uint8)
    np.savez(tmp_path / "c.npz", images=nhwc)
    x, _ = load_images({"path": str(tmp_path / "c.npz"), "channels": 1})
    pil = np.stack([np.asarray(Image.fromarray(a).convert("L")) for a in nhwc])
    assert x.shape == (3, 1, 5, 5) and np.array_equal(x[:, 0].numpy(), pil)
    np.savez(tmp_path / "g.npz", images=nhwc[..., 0])
    x3, _ = load_images({"path": str(tmp_path / "g.npz"), "layout": "NHW", "channels": 3})
    assert x3.shape == (3, 3, 5, 5) and all(np.array_equal(x3[:, c].numpy(), nhwc[..., 0])
                                            for c in range(3))


@pytest.mark.parametrize("arrays, spec, message", [
    ({"images": np.zeros((2, 4, 4, 3), np.float32)}, {}, "dtype float32, expected uint8"),
    ({"images": np.zeros((2, 4, 4), np.uint8)}, {}, "has 3 axes, layout NHWC needs 4"),
    ({"images": np.zeros((2, 4, 4, 5), np.uint8)}, {}, "5 channels in layout NHWC"),
    ({"x": np.zeros((2, 4, 4, 3), np.uint8), "y": np.zeros(2)}, {}, "has no array 'images'"),
    ({"images": np.zeros((2, 4, 4, 3), np.uint8)}, {"labels": "y"}, "has no array 'y'"),
    ({"images": np.zeros((2, 4, 4, 3), np.uint8), "y": np.zeros(3, int)}, {"labels": "y"},
     "must be integers of shape (2,)"),
])
def test_npz_errors_name_the_file_and_the_array(tmp_path, arrays, spec, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ByoError) as err:
        load_images({"path": str(path), **spec}, "bring_your_own/public")
    assert message in str(err.value) and str(path) in str(err.value)
    assert "bring_your_own/public" in str(err.value)


def test_unreadable_and_missing_files(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ByoError, match="junk.npz: not a readable .npz"):
        load_images({"path": str(tmp_path / "junk.npz")})
    np.savez(tmp_path / "obj.npz", images=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ByoError, match="without pickle"):
        load_images({"path": str(tmp_path / "obj.npz")})
    with pytest.raises(FileNotFoundError, match="members/path: .*nowhere"):
        load_images({"path": str(tmp_path / "nowhere")}, "members")
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(ByoError, match="neither a directory of images"):
        load_images({"path": str(tmp_path / "a.txt")})


def test_image_folder_reads_pngs_losslessly_in_sorted_order(tmp_path):
    cats = [RNG.integers(0, 256, (6, 6, 3), dtype=np.uint8) for _ in range(3)]
    dogs = [RNG.integers(0, 256, (6, 6, 3), dtype=np.uint8) for _ in range(2)]
    _write_folder(tmp_path / "imgs", {"dog": dogs, "cat": cats})
    x, y = load_images({"path": str(tmp_path / "imgs")})
    assert x.shape == (5, 3, 6, 6) and y.tolist() == [0, 0, 0, 1, 1]  # cat < dog
    assert all(np.array_equal(x[i].numpy().transpose(1, 2, 0), a)
               for i, a in enumerate(cats + dogs))
    xg, _ = load_images({"path": str(tmp_path / "imgs"), "channels": 1})
    pil = np.asarray(Image.fromarray(cats[0]).convert("L"))
    assert xg.shape == (5, 1, 6, 6) and np.array_equal(xg[0, 0].numpy(), pil)


def test_image_folder_errors(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(flat / "a.png")
    with pytest.raises(ByoError, match="not an ImageFolder directory.*<class>/<image>"):
        load_images({"path": str(flat)}, "bring_your_own/members")
    mixed = tmp_path / "mixed"
    _write_folder(mixed, {"a": [np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4, 3), np.uint8)]})
    with pytest.raises(ByoError, match=r"001.png is \(3, 5, 4\) .* but .*000.png is \(3, 4, 4\); "
                       r"give members/size"):
        load_images({"path": str(mixed)}, "members")
    Image.fromarray(np.zeros((4, 4), np.uint8), mode="L").save(mixed / "a" / "003.png")
    with pytest.raises(ByoError, match=r"003.png is \(1, 4, 4\) .*; give members/channels"):
        load_images({"path": str(mixed), "size": 4}, "members")
    assert load_images({"path": str(mixed), "size": 4, "channels": 1})[0].shape == (3, 1, 4, 4)
    (mixed / "a" / "003.png").unlink()
    x, _ = load_images({"path": str(mixed), "size": 8})
    assert x.shape == (2, 3, 8, 8)
    (mixed / "a" / "002.png").write_bytes(b"garbage")
    with pytest.raises(ByoError, match="002.png: not a readable image"):
        load_images({"path": str(mixed), "size": 8}, "members")


# ---------------------------------------------------------------------------- encoders

@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory):
    """A torchvision resnet18 (CIFAR stem, grey input, 10 classes) and its state dict file."""
    torch.manual_seed(0)
    net = build_torchvision("resnet18", num_classes=10, in_channels=1, cifar_stem=True)
    path = tmp_path_factory.mktemp("resnet") / "resnet18.pt"
    torch.save(net.state_dict(), path)
    return net.eval(), path


RESNET = {"arch": "resnet18", "num_classes": 10, "in_channels": 1, "cifar_stem": True}


def test_torchvision_state_dict_embeds_the_penultimate_layer(resnet_file, tmp_path):
    net, path = resnet_file
    images = torch.from_numpy(RNG.integers(0, 256, (7, 1, 8, 8), dtype=np.uint8))
    enc = load_encoder({**RESNET, "state_dict": str(path), "mean": 0.2, "std": 0.4})
    z = embed(enc, images, batch_size=3)
    # independent computation: the same net with fc removed, on (x / 255 - 0.2) / 0.4
    net.fc, fc = nn.Identity(), net.fc
    try:
        with torch.no_grad():
            ref = net((images.float() / 255 - 0.2) / 0.4).numpy()
    finally:
        net.fc = fc
    assert z.shape == (7, 512) and z.dtype == np.float32
    np.testing.assert_allclose(z, ref, rtol=1e-4, atol=1e-5)  # batches of 3 vs 7
    # a backbone saved without its classifier loads too, with the same representations
    backbone = {k: v for k, v in net.state_dict().items() if not k.startswith("fc.")}
    torch.save(backbone, tmp_path / "backbone.pt")
    enc2 = load_encoder({**RESNET, "state_dict": str(tmp_path / "backbone.pt"),
                         "mean": 0.2, "std": 0.4})
    np.testing.assert_array_equal(embed(enc2, images, batch_size=3), z)


def _state_error(tmp_path, state, spec=RESNET, exc=CheckpointError):
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(exc) as err:
        load_encoder({**spec, "state_dict": str(path)}, "bring_your_own/suspects/bob")
    text = str(err.value)
    assert str(path) in text and "bring_your_own/suspects/bob" in text
    return text


def test_state_dict_key_and_shape_errors(resnet_file, tmp_path):
    net, _ = resnet_file
    state = net.state_dict()
    text = _state_error(tmp_path, {k: v for k, v in state.items() if k != "layer1.0.conv1.weight"})
    assert "missing keys (1): [layer1.0.conv1.weight]" in text
    text = _state_error(tmp_path, {**state, "extra.weight": torch.zeros(1)})
    assert "unexpected keys (1): [extra.weight]" in text
    text = _state_error(tmp_path, {f"module.{k}": v for k, v in state.items()})
    assert "nn.DataParallel" in text
    text = _state_error(tmp_path, state, {**RESNET, "num_classes": 1000})
    assert "fc.weight: checkpoint (10, 512) vs model (1000, 512)" in text
    text = _state_error(tmp_path, state, {**RESNET, "in_channels": 3})
    assert "conv1.weight: checkpoint (64, 1, 3, 3) vs model (64, 3, 3, 3)" in text


def test_state_dict_file_errors(resnet_file, tmp_path):
    net, _ = resnet_file
    text = _state_error(tmp_path, {"state_dict": net.state_dict(), "epoch": 3}, exc=ByoError)
    assert "training checkpoint" in text and "'state_dict'" in text
    text = _state_error(tmp_path, net, exc=ByoError)  # a pickled module: refused by weights_only
    assert "weights_only=True" in text
    with pytest.raises(FileNotFoundError, match="bob/state_dict: .*missing.pt: no such file"):
        load_encoder({**RESNET, "state_dict": str(tmp_path / "missing.pt")}, "bob")
    with pytest.raises(ByoError, match=r"'resnet81' is not a torchvision .*resnet18"):
        build_torchvision("resnet81", where="bob")
    with pytest.raises(ByoError, match="ResNets, not 'squeezenet1_1'"):
        build_torchvision("squeezenet1_1", in_channels=1)
    with pytest.raises(ByoError, match="either checkpoint"):
        load_encoder({"checkpoint": "a.pt", "arch": "resnet18"})
    with pytest.raises(ByoError, match="needs state_dict"):
        load_encoder({"arch": "resnet18"})


def test_mipipe_checkpoint_embeds_as_mipipe_does(tmp_path):
    spec = {"arch": "small_cnn", "in_channels": 3, "widths": [4, 8]}
    torch.manual_seed(1)
    encoder = build_encoder(spec)
    save_checkpoint(tmp_path / "v.pt", encoder, spec)
    images = torch.from_numpy(RNG.integers(0, 256, (9, 3, 8, 8), dtype=np.uint8))
    z = embed(load_encoder({"checkpoint": str(tmp_path / "v.pt")}), images, batch_size=4)
    np.testing.assert_allclose(z, extract_features(encoder, images), rtol=1e-6, atol=1e-6)
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="victim/checkpoint: .*not a mipipe encoder"):
        load_encoder({"checkpoint": str(tmp_path / "other.pt")}, "victim")
    # random encoders of the same architecture: seeded, and not the trained one
    r0 = embed(random_like({"checkpoint": str(tmp_path / "v.pt")}, 0), images)
    r0b = embed(random_like({"checkpoint": str(tmp_path / "v.pt")}, 0), images)
    r1 = embed(random_like({"checkpoint": str(tmp_path / "v.pt")}, 1), images)
    assert np.array_equal(r0, r0b) and not np.allclose(r0, r1) and r0.shape == z.shape
    with pytest.raises(ByoError, match="expected uint8"):
        embed(load_encoder({"checkpoint": str(tmp_path / "v.pt")}), images.float())


# ---------------------------------------------------------------------- config checks

def _config(tmp_path, **byo):
    np.savez(tmp_path / "pub.npz", images=np.zeros((4, 8, 8, 3), np.uint8))
    (tmp_path / "mem" / "a").mkdir(parents=True, exist_ok=True)
    torch.save({}, tmp_path / "v.pt")
    section = {"victim": {"checkpoint": str(tmp_path / "v.pt")},
               "suspects": {"bob": {"arch": "resnet18", "state_dict": str(tmp_path / "v.pt")}},
               "members": {"path": str(tmp_path / "mem")},
               "public": {"path": str(tmp_path / "pub.npz"), "layout": "NHWC"}}
    section.update(byo)
    return {"bring_your_own": section}


def _check(cfg):
    check_keys(cfg)
    validate_schema(cfg)
    check_config(cfg)


def test_config_without_synthetic_stage_is_valid(tmp_path):
    _check(_config(tmp_path))
    with pytest.raises(ConfigError, match="'seeds' is a required property"):
        _check({})


@pytest.mark.parametrize("change, message", [
    ({"victim": {"checkpoint": "nope.pt"}}, "bring_your_own/victim/checkpoint: nope.pt: no such file"),
    ({"suspects": {"bob": {"arch": "resnet81", "state_dict": "{v}"}}},
     "bring_your_own/suspects/bob/arch: 'resnet81' is not a torchvision"),
    ({"suspects": {"bob": {"arch": "vgg11", "state_dict": "{v}", "cifar_stem": True}}},
     "bring_your_own/suspects/bob/cifar_stem: applies to torchvision ResNets"),
    ({"suspects": {"bob": {"checkpoint": "{v}", "std": 0}}}, "bring_your_own/suspects/bob/std: must be > 0"),
    ({"members": {"path": "nowhere"}}, "bring_your_own/members/path: nowhere: no such file"),
    ({"members": {"path": "{v}"}}, "bring_your_own/members/path: .* is neither a directory"),
    ({"members": {"path": "{mem}", "layout": "NCHW"}}, "bring_your_own/members/layout: applies to .npz"),
    ({"suspects": {"random_seed1": {"checkpoint": "{v}"}}}, "random_seed1.*reserved"),
    ({"suspects": {"bob": {"checkpoint": "{v}", "arch": "resnet18"}}}, "bring_your_own/suspects/bob"),
    ({"public": {"path": "{v}", "layot": "NHWC"}}, "did you mean 'layout'"),
])
def test_config_errors_name_the_key(tmp_path, change, message):
    subs = {"v": str(tmp_path / "v.pt"), "mem": str(tmp_path / "mem")}

    def fill(node):
        if isinstance(node, dict):
            return {k: fill(v) for k, v in node.items()}
        return node.format(**subs) if isinstance(node, str) else node

    cfg = _config(tmp_path, **fill(change))
    with pytest.raises(ConfigError, match=message):
        _check(cfg)


def test_example_files_are_the_default_runs_digits(tmp_path):
    from mipipe.inference.data import load_images as load_split
    from mipipe.inference.byo_example import write_example

    paths = write_example(tmp_path, members=(5, 25))
    train, test = load_split("digits", "train"), load_split("digits", "test")
    x, y = load_images({"path": str(paths["members"])})
    assert x.shape == (20, 1, 8, 8)  # grey PNGs stay grey
    files = sorted(paths["members"].glob("*/*.png"))
    rows = [int(f.stem) for f in files]
    assert sorted(rows) == list(range(5, 25))
    for f in files:  # each PNG is its digits row, in the folder of its label
        row = int(f.stem)
        assert int(f.parent.name) == int(train.labels[row])
        assert np.array_equal(np.asarray(Image.open(f)), train.images[row, 0].numpy())
    pub, labels = load_images({"path": str(paths["public"]), "layout": "NHW", "labels": "labels"})
    assert torch.equal(pub, test.images) and torch.equal(labels, test.labels.long())
    state = read_state_dict(paths["state_dict"], "example")
    assert state["conv1.weight"].shape == (64, 1, 3, 3) and state["fc.weight"].shape == (10, 512)
