"""Bring your own encoders end to end through Snakemake, on tiny files the test writes: a
mipipe victim checkpoint and a copy of it, another mipipe encoder, a torchvision ResNet18
state dict, member images as an ImageFolder of PNGs and public images as an .npz. The config
has no synthetic experiments (only the detection stages run)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from mipipe.inference.byo import build_torchvision, embed, load_encoder, load_images
from mipipe.inference.byo_detect import member_order, read_sets
from mipipe.inference.detectors import gmm_test, linear_cka
from mipipe.io import read_parquet
from mipipe.inference import build_encoder, save_checkpoint

from conftest import snakemake

pytestmark = pytest.mark.pipeline
N_MEMBERS, N_PUBLIC = 40, 30
SMALL = {"arch": "small_cnn", "in_channels": 1, "widths": [4, 8]}
RESNET = {"arch": "resnet18", "num_classes": 10, "in_channels": 1, "cifar_stem": True}


def _write_inputs(work):
    """Members: dark 8x8 grey noise (0..150) as PNGs in two class folders; public: brighter
    noise (100..255) in an .npz (NHW), so the victim's positive control has a signal. (Public
    images of another distribution than the members make every encoder look "stolen" to the
    GMM test; real public images must come from the members' distribution.)"""
    rng = np.random.default_rng(0)
    for i in range(N_MEMBERS):
        folder = work / "members" / f"class{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 151, (8, 8), dtype=np.uint8), mode="L").save(
            folder / f"{i:03d}.png")
    np.savez(work / "public.npz", images=rng.integers(100, 256, (N_PUBLIC, 8, 8), dtype=np.uint8))
    torch.manual_seed(100)  # not a random_seeds value: those are the I_min encoders
    victim = build_encoder(SMALL)
    save_checkpoint(work / "victim.pt", victim, SMALL)
    save_checkpoint(work / "copy.pt", victim, SMALL)  # a perfect theft
    torch.manual_seed(101)
    save_checkpoint(work / "other.pt", build_encoder(SMALL), SMALL)
    torch.manual_seed(2)
    torch.save(build_torchvision("resnet18", **{k: RESNET[k] for k in RESNET if k != "arch"}
                                 ).state_dict(), work / "resnet18.pt")
    return {
        "bring_your_own": {
            "victim": {"checkpoint": "victim.pt"},
            "suspects": {"copy": {"checkpoint": "copy.pt"}, "other": {"checkpoint": "other.pt"},
                         "resnet": {**RESNET, "state_dict": "resnet18.pt"}},
            "members": {"path": "members"},
            "public": {"path": "public.npz", "layout": "NHW"},
            "random_seeds": [0, 1],
            "gmm": {"n_components": 2},
            "mi_gap": {"n_subsets": 10},
            "device": "cpu",
        }
    }


@pytest.fixture(scope="module")
def byo_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("byo")
    cfg = _write_inputs(work)
    (work / "byo.yaml").write_text(yaml.safe_dump(cfg))
    snakemake(work, configfile=work / "byo.yaml")
    return work, cfg["bring_your_own"]


def test_only_the_detection_stages_run(byo_run):
    work, _ = byo_run
    res = work / "results"
    for ext in ("parquet", "csv", "md"):
        assert (res / "tables" / f"byo_verdicts.{ext}").stat().st_size > 0
    assert (res / "checks" / "byo.ok").exists()
    assert not (res / "samples").exists() and not (res / "inference").exists()
    assert sorted(p.stem for p in (res / "byo" / "embeddings").iterdir()) == [
        "copy", "other", "random_seed0", "random_seed1", "resnet", "victim"]


def test_verdicts_match_the_detectors_on_the_loaded_files(byo_run):
    work, byo = byo_run
    df = read_parquet(work / "results" / "tables" / "byo_verdicts.parquet")
    assert list(dict.fromkeys(df["suspect"])) == ["victim", "copy", "other", "resnet",
                                                  "random_seed0", "random_seed1"]
    gmm = df[df["detector"] == "gmm"].set_index("suspect")
    # the positive control: members darker than public -> a strong two-sided signal
    control = gmm.loc["victim"]
    assert control["role"] == "victim" and control["alternative"] == "two-sided"
    assert control["p_value"] < 1e-3 and control["verdict"] == "stolen"
    alt = "greater" if control["statistic"] > 0 else "less"
    assert (gmm.drop(index="victim")["alternative"] == alt).all()
    assert gmm.loc["copy", "direction_source"].startswith("positive control")
    # a copy has the victim's representations: the same statistic, p halved (one-sided)
    assert gmm.loc["copy", "statistic"] == control["statistic"]
    assert gmm.loc["copy", "p_value"] == pytest.approx(control["p_value"] / 2, rel=1e-9)
    # an independent computation from the user's files, outside Snakemake
    members, _ = load_images({"path": str(work / "members")})
    public, _ = load_images({"path": str(work / "public.npz"), "layout": "NHW"})
    order = member_order(N_MEMBERS, 0)
    assert sorted(order) == list(range(N_MEMBERS)) and list(order) != sorted(order)
    assert (df["n_fit"] == 20).all() and (df["n_members"] == 20).all()
    for name, spec in byo["suspects"].items():
        spec = {k: (str(work / v) if k in ("checkpoint", "state_dict") else v)
                for k, v in spec.items()}
        enc = load_encoder(spec)
        z_m, z_p = embed(enc, members), embed(enc, public)
        sets = read_sets(work / "results" / "byo" / "embeddings" / f"{name}.parquet")
        np.testing.assert_array_equal(sets["members"], z_m)
        m = z_m[order]
        ref = gmm_test(m[:20], m[20:], z_p, n_components=2, alternative=alt, seed=0)
        assert gmm.loc[name, "statistic"] == pytest.approx(ref.statistic, rel=1e-9)
        assert gmm.loc[name, "p_value"] == pytest.approx(ref.p_value, rel=1e-9)
        assert gmm.loc[name, "verdict"] == ref.verdict


def test_similarity_and_mi_rows(byo_run):
    work, _ = byo_run
    df = read_parquet(work / "results" / "tables" / "byo_verdicts.parquet")
    rows = df.set_index(["suspect", "detector"])
    assert set(df["detector"]) == {"gmm", "mi_gap", "linear_cka", "cosine", "l2"}
    assert rows.loc[("copy", "linear_cka"), "statistic"] == pytest.approx(1.0)
    assert rows.loc[("copy", "cosine"), "statistic"] == pytest.approx(1.0)
    assert rows.loc[("copy", "l2"), "statistic"] == pytest.approx(0.0, abs=1e-12)
    assert rows.loc[("copy", "linear_cka"), "verdict"] == "similar"
    # the MI score of a copy is 1 on both sets: no gap, nothing flagged
    mi = rows.loc[("copy", "mi_gap")]
    assert mi["statistic"] == pytest.approx(0.0, abs=1e-12) and mi["verdict"] == "inconclusive"
    # a 512-d ResNet against an 8-d victim: CKA is defined, cosine and L2 are not
    assert rows.loc[("resnet", "cosine"), "status"] == "skipped"
    assert "victim 8, suspect 512" in rows.loc[("resnet", "cosine"), "error"]
    z_v = read_sets(work / "results" / "byo" / "embeddings" / "victim.parquet")["public"]
    z_r = read_sets(work / "results" / "byo" / "embeddings" / "resnet.parquet")["public"]
    assert rows.loc[("resnet", "linear_cka"), "statistic"] == pytest.approx(
        linear_cka(z_v, z_r), rel=1e-12)
    sim = df[df["kind"] == "similarity"]
    assert sim["p_value"].isna().all() and set(sim["verdict"]) <= {"similar", "dissimilar", "n/a"}
    assert set(df["status"]) <= {"ok", "skipped"}


def test_a_missing_file_stops_the_run_before_any_job(byo_run, tmp_path):
    work, byo = byo_run
    cfg = {"bring_your_own": {**byo, "suspects": {"bob": {"arch": "resnet18",
                                                          "state_dict": "nowhere.pt"}}}}
    (work / "bad.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(work, "-n", configfile=work / "bad.yaml", check=False)
    assert proc.returncode != 0
    assert "bring_your_own/suspects/bob/state_dict: nowhere.pt: no such file" in proc.stderr + proc.stdout
