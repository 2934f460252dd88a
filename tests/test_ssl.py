"""Unit tests of mipipe.ssl: encoders, checkpoints, NT-Xent, stealing, linear evaluation,
determinism (about 20 s on one core)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mipipe.ssl import (CheckpointError, black_box, build_encoder, build_head, extract_features,
                        linear_eval, linear_eval_features, load_checkpoint, nt_xent,
                        save_checkpoint, seed_everything, simclr_augmentation, steal,
                        stealing_heads, train_simclr)
from mipipe.inference.encoders import to_input
from mipipe.ssl.train import query_victim

SMALL = {"arch": "small_cnn", "in_channels": 1, "widths": [8, 16]}


def images(n, c=1, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, size, size), dtype=torch.uint8, generator=g)


@pytest.mark.parametrize("arch", ["resnet18", "resnet34"])
def test_cifar_resnets_give_512_d_and_keep_resolution_in_the_stem(arch):
    enc = build_encoder({"arch": arch, "in_channels": 3}).eval()
    assert enc.out_dim == 512
    conv1 = enc.net.conv1
    assert conv1.kernel_size == (3, 3) and conv1.stride == (1, 1)
    assert isinstance(enc.net.maxpool, torch.nn.Identity)
    assert isinstance(enc.net.fc, torch.nn.Identity)
    n_blocks = sum(len(getattr(enc.net, f"layer{i}")) for i in range(1, 5))
    assert n_blocks == {"resnet18": 8, "resnet34": 16}[arch]
    with torch.no_grad():
        out = enc(torch.zeros(2, 3, 32, 32))
    assert out.shape == (2, 512)
    head = build_head(512, {"hidden": 512, "out": 128})
    assert head(out).shape == (2, 128)
    assert [type(m).__name__ for m in head] == ["Linear", "ReLU", "Linear"]


def test_small_cnn_shape_and_bad_specs():
    enc = build_encoder({"arch": "small_cnn", "in_channels": 1, "widths": [4, 8, 12]})
    assert enc(torch.zeros(3, 1, 8, 8)).shape == (3, 12)
    with pytest.raises(ValueError, match="arch"):
        build_encoder({"arch": "vgg"})
    with pytest.raises(ValueError, match="widths"):
        build_encoder({"arch": "small_cnn", "widths": [0]})


def test_checkpoint_round_trip_is_exact(tmp_path):
    seed_everything(3)
    enc, head = build_encoder(SMALL), build_head(16, {"hidden": 8, "out": 4})
    path = tmp_path / "enc.pt"
    save_checkpoint(path, enc, SMALL, head=head, head_spec={"hidden": 8, "out": 4},
                    config={"tau": 0.2}, metrics={"final_loss": 1.5})
    enc2, head2, payload = load_checkpoint(path)
    x = images(5)
    assert torch.equal(extract_features_t(enc.eval(), x), extract_features_t(enc2, x))
    assert payload["metrics"]["final_loss"] == 1.5 and payload["config"]["tau"] == 0.2
    assert head2 is not None and not list(tmp_path.glob(".enc.pt.*"))  # no temporary left


def extract_features_t(enc, x):
    return torch.from_numpy(extract_features(enc, x))


def _tamper(path, rename):
    payload = torch.load(path, weights_only=True)
    payload["encoder"] = {rename(k): v for k, v in payload["encoder"].items()}
    torch.save(payload, path)


def test_module_prefixed_checkpoint_fails_naming_the_keys(tmp_path):
    """The original code's fault: DataParallel 'module.' keys, loaded with strict=False."""
    path = tmp_path / "victim.pt"
    save_checkpoint(path, build_encoder(SMALL), SMALL)
    _tamper(path, lambda k: "module." + k)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    msg = str(err.value)
    assert "module." in msg and "missing keys" in msg and "net.0.weight" in msg
    assert "unexpected keys" in msg and "module.net.0.weight" in msg


def test_one_renamed_or_missing_key_fails(tmp_path):
    path = tmp_path / "a.pt"
    save_checkpoint(path, build_encoder(SMALL), SMALL)
    _tamper(path, lambda k: "net.0.kernel" if k == "net.0.weight" else k)
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): \[net.0.weight\]"):
        load_checkpoint(path)
    path = tmp_path / "b.pt"
    save_checkpoint(path, build_encoder(SMALL), SMALL)
    payload = torch.load(path, weights_only=True)
    payload["encoder"]["net.0.weight"] = torch.zeros(1)
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="shapes differ"):
        load_checkpoint(path)


def test_checkpoint_refuses_pickled_objects_and_foreign_files(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "mipipe-encoder", "obj": object}, path)  # a class: not weights_only-safe
    with pytest.raises(CheckpointError, match="not a loadable checkpoint"):
        load_checkpoint(path)
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a mipipe encoder checkpoint"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_nt_xent_equals_a_hand_computed_value():
    z1 = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    z2 = torch.tensor([[3.0, 3.0], [-1.0, 0.0]])
    tau = 0.5
    # unit vectors a=(1,0), b=(0,1), c=(1,1)/sqrt2, d=(-1,0); anchors a,b,c,d with positives
    # c, d, a, b. Cosines: ab 0, ac s, ad -1, bc s, bd 0, cd -s, s = 1/sqrt2.
    s = 1 / math.sqrt(2)
    e = lambda v: math.exp(v / tau)  # noqa: E731
    terms = [
        -math.log(e(s) / (e(0) + e(s) + e(-1))),   # a: positive c; others b, d
        -math.log(e(0) / (e(0) + e(s) + e(0))),    # b: positive d; others a, c
        -math.log(e(s) / (e(s) + e(s) + e(-s))),   # c: positive a; others b, d
        -math.log(e(0) / (e(-1) + e(0) + e(-s))),  # d: positive b; others a, c
    ]
    assert float(nt_xent(z1, z2, tau)) == pytest.approx(sum(terms) / 4, rel=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(z1, z2, 0.0)
    with pytest.raises(ValueError, match="at least 2"):
        nt_xent(z1[:1], z2[:1], 0.1)


class CountingBlackBox:
    """The victim as the attacker sees it: a callable, no module, no weights."""

    __slots__ = ("_query", "calls", "images")

    def __init__(self, query):
        self._query, self.calls, self.images = query, 0, 0

    def __call__(self, x):
        self.calls += 1
        self.images += len(x)
        return self._query(x)


def test_stealing_queries_only_the_black_box_and_learns_the_victim():
    seed_everything(0)
    victim = build_encoder(SMALL)
    before = {k: v.clone() for k, v in victim.state_dict().items()}
    box = CountingBlackBox(black_box(victim))
    x = images(96, seed=1)
    seed_everything(1)
    stolen = build_encoder(SMALL)
    history, s_head, v_head = steal(box, stolen, x, variant="none", epochs=15, batch_size=32,
                                    lr=3e-3, seed=0)
    assert box.images == 96 and box.calls == 1  # each query image sent once
    assert s_head is None and v_head is None
    assert all(torch.equal(before[k], v) for k, v in victim.state_dict().items())
    assert history[-1]["loss"] < history[0]["loss"] - 0.3
    # the stolen representations now align with the victim's (cosine of matching rows)
    with torch.no_grad():
        zs = torch.nn.functional.normalize(torch.from_numpy(extract_features(stolen, x)), dim=1)
        zv = torch.nn.functional.normalize(query_victim(black_box(victim), x), dim=1)
        fresh = torch.nn.functional.normalize(
            torch.from_numpy(extract_features(build_encoder(SMALL), x)), dim=1)
    assert (zs * zv).sum(1).mean() > (fresh * zv).sum(1).mean() + 0.1


def test_stealing_head_variants_map_to_matching_widths():
    assert stealing_heads("none", 16, 16, None) == (None, None)
    s, v = stealing_heads("stolen", 16, 32, {"hidden": 8})
    assert v is None and s(torch.zeros(2, 16)).shape == (2, 32)
    # victim: the black box answers with the victim's own head; the stolen side only needs a
    # linear map to the head's width, and nothing when the widths agree
    s, v = stealing_heads("victim", 16, 4, {"hidden": 8})
    assert v is None and isinstance(s, torch.nn.Linear) and s(torch.zeros(2, 16)).shape == (2, 4)
    assert stealing_heads("victim", 4, 4, {"hidden": 8}) == (None, None)
    s, v = stealing_heads("both", 16, 4, {"hidden": 8})
    assert v is None and s(torch.zeros(2, 16)).shape == (2, 4) and len(list(s.children())) > 1
    s, v = stealing_heads("attacker", 16, 32, {"hidden": 8})
    assert s is None and v(torch.zeros(2, 32)).shape == (2, 16)
    with pytest.raises(ValueError, match="equal widths"):
        stealing_heads("none", 16, 32, None)
    with pytest.raises(ValueError, match="head variant"):
        stealing_heads("projector", 16, 16, None)


def test_black_box_with_the_victims_head_returns_that_heads_output():
    seed_everything(0)
    victim = build_encoder(SMALL).eval()
    head = build_head(victim.out_dim, {"hidden": 8, "out": 4}).eval()
    x = images(10, seed=3)
    with torch.no_grad():
        expected = head(victim(to_input(x)))
    got = query_victim(black_box(victim, head=head), x)
    assert got.shape == (10, 4)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    assert query_victim(black_box(victim), x).shape == (10, victim.out_dim)


def _cache(path, x):
    """A data cache as the pipeline's di_data rule writes it."""
    torch.save({"images": x, "labels": torch.zeros(len(x), dtype=torch.long)}, path)


def _victim_checkpoint(path, with_head):
    seed_everything(0)
    victim = build_encoder(SMALL)
    head = build_head(victim.out_dim, {"hidden": 8, "out": 4}) if with_head else None
    save_checkpoint(path, victim, SMALL, head=head,
                    head_spec={"hidden": 8, "out": 4} if with_head else None)
    return victim, head


def test_steal_stage_head_victim_learns_the_victims_own_head_output(tmp_path):
    from mipipe.inference.stages import steal_stage

    victim, head = _victim_checkpoint(tmp_path / "victim.pt", with_head=True)
    x = images(64, seed=4)
    _cache(tmp_path / "q.pt", x)
    recipe = {"temperature": 0.1, "epochs": 15, "batch_size": 32, "lr": 3e-3,
              "weight_decay": 0.0}
    m = steal_stage(tmp_path / "victim.pt", tmp_path / "q.pt", tmp_path / "stolen.pt",
                    rows=None, n_queries=None, encoder_spec=SMALL, head_spec={"hidden": 8},
                    variant="victim", recipe=recipe, seed=1, device="cpu")
    assert m["head"] == "victim" and m["loss"][-1] < m["loss"][0] - 0.3
    stolen, s_head, _ = load_checkpoint(tmp_path / "stolen.pt")
    assert s_head is None  # the stealing-time linear map is discarded with the heads
    # the stolen representations carry the head's output: a least-squares linear map from
    # g_s(x) fits h_v(g_v(x)) far better than from a fresh encoder
    target = query_victim(black_box(victim, head=head), x).double()

    def fit_error(z):
        z = torch.cat([torch.from_numpy(z).double(), torch.ones(len(z), 1, dtype=torch.double)], 1)
        w = torch.linalg.lstsq(z, target).solution
        return float(((z @ w - target) ** 2).sum() / ((target - target.mean(0)) ** 2).sum())

    seed_everything(7)
    assert fit_error(extract_features(stolen, x)) < fit_error(
        extract_features(build_encoder(SMALL), x)) - 0.05


def test_steal_stage_head_victim_refuses_a_victim_without_its_head(tmp_path):
    from mipipe.inference.stages import steal_stage

    _victim_checkpoint(tmp_path / "victim.pt", with_head=False)
    _cache(tmp_path / "q.pt", images(8))
    with pytest.raises(CheckpointError, match="victim.pt.*'both'.*own projection head"):
        steal_stage(tmp_path / "victim.pt", tmp_path / "q.pt", tmp_path / "stolen.pt",
                    rows=None, n_queries=None, encoder_spec=SMALL, head_spec={"hidden": 8},
                    variant="both", recipe={"temperature": 0.1, "epochs": 1, "batch_size": 4,
                                            "lr": 1e-3, "weight_decay": 0.0},
                    seed=1, device="cpu")
    assert not (tmp_path / "stolen.pt").exists()


def test_linear_eval_on_separable_features_is_perfect_and_frozen():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 40)
    f = rng.normal(size=(120, 5)) * 0.1
    f[np.arange(120), y] += 5.0  # class c lives at +5 on axis c
    res = linear_eval_features(f[::2], y[::2], f[1::2], y[1::2])
    assert res == {"train_acc": 1.0, "test_acc": 1.0, "n_train": 60, "n_test": 60}
    # unlabelled rows (-1) are dropped
    y_unl = y.copy()
    y_unl[:10] = -1
    assert linear_eval_features(f, y_unl, f, y)["n_train"] == 110
    with pytest.raises(ValueError, match="NaN"):
        linear_eval_features(np.full((4, 2), np.nan), [0, 1, 0, 1], f[:2, :2], [0, 1])
    # through an encoder: frozen (weights unchanged), eval mode afterwards
    enc = build_encoder(SMALL)
    state = {k: v.clone() for k, v in enc.state_dict().items()}
    x = images(40)
    labels = torch.arange(40) % 2
    linear_eval(enc, x, labels, x, labels)
    assert not enc.training
    assert all(torch.equal(state[k], v) for k, v in enc.state_dict().items())


def _train_once(seed):
    seed_everything(seed)
    enc, head = build_encoder(SMALL), build_head(16, {"hidden": 8, "out": 4})
    aug = simclr_augmentation({"crop_scale": [0.5, 1.0], "flip": 0.0,
                               "color_jitter": {"brightness": 0.4, "contrast": 0.4, "p": 0.8},
                               "blur": {"kernel": 3, "sigma": [0.1, 1.0], "p": 0.5}}, 8, 1)
    hist = train_simclr(enc, head, images(64, seed=2), augmentation=aug, temperature=0.2,
                        lr=1e-3, epochs=2, batch_size=32, seed=seed)
    return enc.state_dict(), hist


def test_same_seed_same_weights_other_seed_other_weights():
    torch.set_num_threads(1)
    a, ha = _train_once(5)
    b, hb = _train_once(5)
    c, _ = _train_once(6)
    assert ha == hb
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert ha[-1]["lr"] < ha[0]["lr"]  # cosine annealing stepped per epoch


def test_augmentation_gives_float_views_of_the_same_shape():
    seed_everything(0)
    aug = simclr_augmentation(None, 32, 3)  # the CIFAR recipe
    x = images(4, c=3, size=32)
    from mipipe.ssl import augment_batch
    out = augment_batch(aug, x)
    assert out.dtype == torch.float32 and out.shape == x.shape
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    with pytest.raises(ValueError, match="crop_scale"):
        simclr_augmentation({"crop_scale": [0.9, 0.1]}, 8, 1)


def _nan_encoder():
    enc = build_encoder(SMALL)
    with torch.no_grad():
        for p in enc.parameters():
            p.fill_(float("nan"))
    return enc


def test_a_non_finite_loss_stops_simclr_and_stealing_naming_epoch_and_step():
    aug = simclr_augmentation({"crop_scale": [0.5, 1.0], "flip": 0.0}, 8, 1)
    with pytest.raises(FloatingPointError, match=r"simclr: the training loss is nan at epoch 1/2, "
                                                  r"step 1; .*no checkpoint"):
        train_simclr(_nan_encoder(), build_head(16, {"hidden": 8, "out": 4}), images(64),
                     augmentation=aug, temperature=0.2, epochs=2, batch_size=32)
    victim = build_encoder(SMALL)
    with pytest.raises(FloatingPointError, match=r"steal: the training loss is nan at epoch 1/3, "
                                                  r"step 1"):
        steal(black_box(victim), _nan_encoder(), images(64), epochs=3, batch_size=32)


def test_a_diverged_training_job_writes_no_checkpoint(tmp_path, monkeypatch):
    from mipipe.inference import stages

    data = tmp_path / "data.pt"
    torch.save({"images": images(64), "labels": torch.zeros(64, dtype=torch.int64),
                "classes": ["a"], "name": "t"}, data)
    monkeypatch.setattr(stages, "build_encoder", lambda spec: _nan_encoder())
    out = tmp_path / "victim.pt"
    recipe = {"epochs": 2, "batch_size": 32, "lr": 1e-3, "weight_decay": 0.0,
              "augmentation": {"crop_scale": [0.5, 1.0], "flip": 0.0}}
    with pytest.raises(FloatingPointError, match="epoch 1/2, step 1"):
        stages.train_simclr_stage(data, out, rows=None, encoder_spec=SMALL,
                                  head_spec={"hidden": 8, "out": 4}, recipe=recipe,
                                  temperature=0.2, seed=0, device="cpu")
    assert not out.exists() and list(tmp_path.iterdir()) == [data]


def _save_small(path, seed=0):
    seed_everything(seed)
    enc, head = build_encoder(SMALL), build_head(16, {"hidden": 8, "out": 4})
    save_checkpoint(path, enc, SMALL, head=head, head_spec={"hidden": 8, "out": 4},
                    config={"seed": seed}, metrics={"final_loss": 1.5})


def test_same_weights_give_byte_identical_checkpoints_under_any_file_name(tmp_path):
    _save_small(tmp_path / "a.pt")
    _save_small(tmp_path / "b.pt")
    _save_small(tmp_path / "c.pt", seed=1)
    a, b = (tmp_path / "a.pt").read_bytes(), (tmp_path / "b.pt").read_bytes()
    assert a == b and a != (tmp_path / "c.pt").read_bytes()
    assert b"archive/" in a and b"tmp" not in a  # the zip's folder is fixed, not the temp name


def test_a_flipped_weight_byte_fails_the_checksum_naming_the_file(tmp_path):
    from mipipe.inference.checkpoints import weights_digest

    path = tmp_path / "victim.pt"
    _save_small(path)
    payload = torch.load(path, weights_only=True)
    assert payload["weights_sha256"] == weights_digest(payload["encoder"], payload["head"])
    key = next(k for k, v in payload["encoder"].items() if v.is_floating_point())
    payload["encoder"][key].view(-1).view(torch.uint8)[0] ^= 1  # one bit of one weight
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=r"victim\.pt: the weights do not match the "
                                              r"checksum stored in the checkpoint"):
        load_checkpoint(path)


@pytest.mark.parametrize("edit, match", [
    (lambda p: p.update(head_spec=None), r"has head weights but head_spec is None"),
    (lambda p: p.pop("encoder_spec"), r"has no encoder_spec"),
])
def test_checkpoint_without_its_specs_fails_naming_the_file(tmp_path, edit, match):
    path = tmp_path / "enc.pt"
    _save_small(path)
    payload = torch.load(path, weights_only=True)
    edit(payload)
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=r"enc\.pt: the checkpoint " + match):
        load_checkpoint(path)


def test_a_truncated_data_cache_fails_naming_the_file(tmp_path):
    from mipipe.inference.stages import load_source

    path = tmp_path / "digits_train.pt"
    torch.save({"images": images(16), "labels": torch.zeros(16, dtype=torch.int64)}, path)
    assert len(load_source(path)[0]) == 16
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"digits_train\.pt: the data cache is corrupt or "
                                         r"truncated"):
        load_source(path)


def test_head_variants_agree_between_library_schema_and_rules():
    import re
    from pathlib import Path

    import yaml

    from mipipe.config import SCHEMA_PATH
    from mipipe.inference import HEAD_VARIANTS

    schema = yaml.safe_load(Path(SCHEMA_PATH).read_text())
    stealing = schema["properties"]["inference"]["properties"]["stealing"]["properties"]
    assert tuple(stealing["heads"]["items"]["enum"]) == HEAD_VARIANTS
    rules = (Path(__file__).resolve().parents[1] / "rules" / "inference_common.smk").read_text()
    assert tuple(re.search(r'head="([^"]+)"', rules).group(1).split("|")) == HEAD_VARIANTS
