"""The dataset-inference stage end to end through Snakemake on a tiny digits config, and the
paper config's DAG without data (about 2 minutes on 2 cores, most of it process start-up)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from mipipe.dataset_inference import mi_max_closed_form
from mipipe.io import read_parquet
from mipipe.ssl import extract_features, load_checkpoint
from mipipe.ssl.mi import read_embedding

from conftest import REPO, snakemake

pytestmark = pytest.mark.pipeline
TINY_INF = REPO / "tests" / "configs" / "tiny_inference.yaml"
TABLES = ["di_table1_linear_eval", "di_table2_stealing", "di_table3_mi", "di_mi_scores"]


@pytest.fixture(scope="module")
def inference_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("inference")
    snakemake(work, "inference", configfile=TINY_INF)
    return work


def test_tables_exist_in_every_format(inference_run):
    for name in TABLES:
        for ext in ("parquet", "csv", "md"):
            assert (inference_run / "results" / "tables" / f"{name}.{ext}").stat().st_size > 0


def test_mi_scores_copy_is_one_and_values_in_range(inference_run):
    cfg = yaml.safe_load(TINY_INF.read_text())["inference"]
    scores = read_parquet(inference_run / "results" / "tables" / "di_mi_scores.parquet")
    assert (scores["status"] == "ok").all(), scores[scores["status"] != "ok"]
    assert set(scores["N"]) == set(cfg["embeddings"]["n"])
    others = {"victim_tau0.1", "victim_tau0.2", "copy", "independent", "stolen_none",
              "stolen_stolen", "random_seed0", "random_seed1", "random_seed2"}
    assert set(scores["other"]) == others and set(scores["reference"]) == {"victim_tau0.2"}
    copy = scores[scores["other"] == "copy"]
    assert np.allclose(copy["mi_score"], 1.0) and np.allclose(copy["mi_nats"], copy["I_max"])
    assert scores["mi_score"].between(0, 1).all()
    assert ((scores["p_value"] > 0) & (scores["p_value"] <= 1)).all()
    # with 19 permutations the smallest p-value is 1/20
    assert scores["p_value"].min() == pytest.approx(1 / 20)
    # I_min is the mean of the three random encoders' MI, with their spread
    for n, grp in scores.groupby("N"):
        rand = grp[grp["role"] == "random"]["mi_nats"]
        assert len(rand) == 3 and grp["n_random"].iloc[0] == 3
        assert grp["I_min"].iloc[0] == pytest.approx(rand.mean())
        assert grp["I_min_max"].iloc[0] == pytest.approx(rand.max())


def test_self_mi_matches_the_closed_form_and_embeddings_are_the_encoders(inference_run):
    res = inference_run / "results"
    mi = read_parquet(res / "tables" / "di_table3_mi.parquet")
    z = read_embedding(res / "inference" / "embeddings" / "victim_tau0.2.parquet")
    assert z.dtype == np.float32 and z.shape == (120, 16)
    self_rows = mi[mi["other"] == "victim_tau0.2"]
    for row in self_rows.itertuples():
        assert row.mi_nats == pytest.approx(mi_max_closed_form(row.N, z.shape[1]), abs=1e-6)
    # the embeddings are the checkpoint's features of the first images, unshuffled
    enc, _, _ = load_checkpoint(res / "inference" / "encoders" / "victim_tau0.2.pt")
    cache = torch.load(res / "inference" / "data" / "digits_train.pt", weights_only=True)
    assert np.array_equal(extract_features(enc, cache["images"][:120]), z)
    ids = read_parquet(res / "inference" / "embeddings" / "victim_tau0.2.parquet")["image"]
    assert list(ids) == list(range(120))


def test_linear_eval_tables(inference_run):
    t1 = read_parquet(inference_run / "results" / "tables" / "di_table1_linear_eval.parquet")
    assert list(t1["encoder"][:2]) == ["victim_tau0.1", "victim_tau0.2"]
    assert t1["test_acc"].between(0, 100).all() and (t1["n_test"] == 359).all()
    rand = t1[t1["role"] == "random"]["test_acc"]
    assert t1[t1["role"] == "random_mean"]["test_acc"].iloc[0] == pytest.approx(rand.mean())
    t2 = read_parquet(inference_run / "results" / "tables" / "di_table2_stealing.parquet")
    assert list(t2["encoder"]) == ["victim_tau0.2", "stolen_none", "stolen_stolen",
                                   "random (mean of 3)"]
    victim = t2.iloc[0]
    assert victim["ratio_victim_test"] == 1.0
    stolen = t2.iloc[1]
    assert stolen["ratio_victim_test"] == pytest.approx(
        stolen["victim_test_acc"] / victim["victim_test_acc"])
    lin = read_parquet(inference_run / "results" / "inference" / "linear_eval" / "stolen_none.parquet")
    assert dict(zip(lin["eval_set"], lin["n_train"])) == {"victim": 300, "query": 200}


def test_stolen_checkpoint_records_its_queries(inference_run):
    _, head, payload = load_checkpoint(
        inference_run / "results" / "inference" / "encoders" / "stolen_none.pt")
    assert payload["metrics"]["n_queries"] == 150 and head is None
    assert len(payload["metrics"]["loss"]) == 2


def test_paper_config_dag_builds_without_data(tmp_path):
    """configs/paper.yaml: CIFAR10/SVHN/STL10 are not inputs, so -n needs no data."""
    out = snakemake(tmp_path, "-n", "inference", configfile=REPO / "configs" / "paper.yaml")
    text = out.stdout
    assert not (tmp_path / "data").exists()
    for rule, count in [("di_victim", 4), ("di_steal", 5), ("di_data", 5), ("di_random", 3)]:
        assert any(line.split()[:2] == [rule, str(count)] for line in text.splitlines()), text
    assert "gpu=1" in text


def test_bad_inference_keys_are_refused(tmp_path):
    cfg = yaml.safe_load(TINY_INF.read_text())
    cfg["inference"]["victim"]["target"] = 0.3
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    out = snakemake(tmp_path, "-n", configfile=bad, check=False)
    assert out.returncode != 0 and "victim/target" in out.stdout + out.stderr
    cfg["inference"]["victim"]["target"] = 0.2
    cfg["inference"]["stealing"]["epoch"] = 3
    bad.write_text(yaml.safe_dump(cfg))
    out = snakemake(tmp_path, "-n", configfile=bad, check=False)
    assert out.returncode != 0 and "'epoch'" in out.stdout + out.stderr


def test_editing_the_stealing_recipe_reruns_only_what_depends_on_it(inference_run, tmp_path):
    cfg = yaml.safe_load(TINY_INF.read_text())
    cfg["inference"]["stealing"]["shuffle"] = False
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(cfg))
    out = snakemake(inference_run, "-n", "inference", configfile=edited)
    counts = {}
    for line in out.stdout.split("Job stats:")[1].split("\n\n")[0].splitlines()[3:]:
        name, n = line.split()
        counts[name] = int(n)
    # two stolen encoders: their training, evaluation, embeddings; then the MI and tables
    assert counts == {"di_steal": 2, "di_linear_eval": 2, "di_embed": 2, "di_mi": 1,
                      "di_tables": 1, "di_represent": 2, "di_detection": 1,
                      "check_inference_failures": 1, "inference": 1, "total": 13}


def test_detection_verdicts_and_error_rates(inference_run):
    """One verdict per (suspect, detector); error rates per detector from those verdicts."""
    tables = inference_run / "results" / "tables"
    verdicts = read_parquet(tables / "di_verdicts.parquet")
    summary = read_parquet(tables / "di_detection.parquet")
    roles = verdicts.drop_duplicates("encoder")["role"].value_counts().to_dict()
    assert roles == {"victim": 2, "stolen": 2, "independent": 2, "random": 3}
    assert list(summary["detector"]) == ["gmm", "mi_gap", "linear_cka", "cosine", "l2"]
    assert len(verdicts) == 9 * 5 and (verdicts["status"] == "ok").all()
    for det, g in verdicts.groupby("detector"):
        row = summary[summary["detector"] == det].iloc[0]
        for role, col in (("stolen", "tpr"), ("independent", "fpr"), ("random", "fpr_random")):
            assert row[col] == pytest.approx(g.loc[g["role"] == role, "flagged"].mean())
        assert (row["n_stolen"], row["n_independent"], row["n_random"]) == (2, 2, 3)
    tests = verdicts[verdicts["kind"] == "test"]
    assert ((tests["p_value"] > 0) & (tests["p_value"] <= 1)).all()
    assert set(tests["verdict"]) <= {"stolen", "inconclusive"}
    assert ((tests["p_value"] < 0.05) == (tests["verdict"] == "stolen")).all()
    gmm = verdicts[(verdicts["detector"] == "gmm") & (verdicts["encoder"] != "victim_tau0.2")]
    assert gmm["alternative"].nunique() == 1  # the direction the positive control fixed
    cka = verdicts[verdicts["detector"] == "linear_cka"]
    assert ((cka["statistic"] >= 0) & (cka["statistic"] <= 1)).all()
    assert (inference_run / "results" / "figures" / "di_detection.png").stat().st_size > 0


def test_detection_members_must_be_the_victims_images(tmp_path):
    cfg = yaml.safe_load(TINY_INF.read_text())
    cfg["inference"]["detection"]["members"]["rows"] = [100, 300]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    out = snakemake(tmp_path, "-n", configfile=bad, check=False)
    assert out.returncode != 0 and "detection/members/rows" in out.stdout + out.stderr


def test_extra_stolen_seeds_go_to_the_named_heads_only(tmp_path):
    """detection/stolen_heads: the extra stolen_seeds are trained for those heads only, and a
    head that is not stolen at all is a config error naming the key."""
    cfg = yaml.safe_load(TINY_INF.read_text())
    cfg["inference"]["detection"].update(stolen_seeds=[5, 6], stolen_heads=["stolen"])
    path = tmp_path / "heads.yaml"
    path.write_text(yaml.safe_dump(cfg))
    text = snakemake(tmp_path, "-n", "inference", configfile=path).stdout
    assert any(line.split()[:2] == ["di_steal_seed", "2"] for line in text.splitlines()), text
    assert "stolen_stolen_seed5.pt" in text and "stolen_none_seed5" not in text
    from mipipe.config import ConfigError, check_config

    cfg["inference"]["detection"]["stolen_heads"] = ["both"]
    with pytest.raises(ConfigError, match="detection/stolen_heads"):
        check_config(cfg)


def test_failed_mi_rows_fail_the_run_unless_allowed(inference_run, tmp_path):
    """The failure check covers dataset inference too (issue 12: 18 of 18 MI rows failed and
    snakemake returned 0): a failed row stops the run after the tables, naming the file,
    unless allow_failures: true."""
    import shutil

    from mipipe.io import write_parquet

    assert (inference_run / "results" / "checks" / "inference.ok").read_text().startswith(
        "no estimate failed")
    work = tmp_path / "w"
    shutil.copytree(inference_run, work, symlinks=True)
    mi_path = work / "results" / "inference" / "mi.parquet"
    mi = read_parquet(mi_path)
    mi.loc[0, ["status", "error", "mi_nats"]] = ["failed", "ValueError: injected", math.nan]
    write_parquet(mi, mi_path)
    out = snakemake(work, "inference", configfile=TINY_INF, check=False)
    log = out.stdout + out.stderr
    assert out.returncode != 0
    assert "1 estimate(s) failed (all are listed in results/inference/mi.parquet" in log
    assert (work / "results" / "tables" / "di_table3_mi.csv").exists()
    assert not (work / "results" / "checks" / "inference.ok").exists()
    ok = snakemake(work, "inference", "--config", "allow_failures=True", configfile=TINY_INF)
    assert ok.returncode == 0
    assert "allowed by allow_failures" in (work / "results" / "checks" / "inference.ok").read_text()


def test_victim_names_are_exact_temperatures_that_the_wildcard_matches(tmp_path):
    """tau = 1e-05 (repr's exponent form) and two temperatures that agree to 6 digits get
    distinct, exact names, and the DAG builds for all of them."""
    import re

    from mipipe.inference.stages import TAU_PATTERN, victim_name

    taus = [1e-05, 0.1234567, 0.1234568]
    names = [victim_name(t) for t in taus]
    assert names == ["victim_tau1e-05", "victim_tau0.1234567", "victim_tau0.1234568"]
    assert all(re.fullmatch(TAU_PATTERN, n[10:]) and float(n[10:]) == t
               for n, t in zip(names, taus))
    cfg = yaml.safe_load(TINY_INF.read_text())
    cfg["inference"]["victim"].update(temperatures=taus, target=0.1234567)
    path = tmp_path / "taus.yaml"
    path.write_text(yaml.safe_dump(cfg))
    text = snakemake(tmp_path, "-n", "inference", configfile=path).stdout
    assert any(line.split()[:2] == ["di_victim", "3"] for line in text.splitlines()), text
    for name in names:
        assert f"encoders/{name}.pt" in text
    assert "embeddings/victim_tau0.1234567.parquet" in text


def test_every_inference_job_writes_its_benchmark_under_its_rule(inference_run):
    """results/benchmarks/{rule}/...tsv for the dataset-inference rules too (issue 12)."""
    bench = inference_run / "results" / "benchmarks"
    assert not (bench / "inference").exists()
    rules = {p.name for p in bench.iterdir() if p.is_dir()}
    assert {"di_data", "di_victim", "di_independent", "di_steal", "di_random", "di_copy",
            "di_linear_eval", "di_embed", "di_mi", "di_tables",
            "check_inference_failures"} <= rules
    steal = pd.read_csv(bench / "di_steal" / "stolen_none.tsv", sep="\t")
    assert {"s", "max_rss", "cpu_time"} <= set(steal.columns) and steal["s"].iloc[0] > 0
