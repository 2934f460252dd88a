"""Artifact I/O, experiment grids, aggregation and config checks (no Snakemake)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mipipe.config import ConfigError, check_config, check_keys, select_estimators, validate_schema
from mipipe.estimators import knn_mi, ksg_mi
from mipipe.experiments import aggregate, estimator_grid, eps_sensitivity, run_grid
from mipipe.io import (
    atomic_path,
    read_metadata,
    read_parquet,
    read_sample,
    write_parquet,
    write_sample,
    write_table,
)

import yaml
from pathlib import Path

TINY = Path(__file__).resolve().parent / "configs" / "tiny.yaml"


def test_parquet_round_trip_with_metadata_is_byte_identical(tmp_path):
    df = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, math.inf, -1.0], "c": ["x", "y", "z"]})
    write_parquet(df, tmp_path / "one.parquet", metadata={"true_mi_nats": [0.0, 1.5]})
    write_parquet(df, tmp_path / "two.parquet", metadata={"true_mi_nats": [0.0, 1.5]})
    assert (tmp_path / "one.parquet").read_bytes() == (tmp_path / "two.parquet").read_bytes()
    pd.testing.assert_frame_equal(read_parquet(tmp_path / "one.parquet"), df)
    assert read_metadata(tmp_path / "one.parquet") == {"true_mi_nats": [0.0, 1.5]}


def test_atomic_write_leaves_nothing_when_the_writer_fails(tmp_path):
    target = tmp_path / "out.parquet"
    target.write_bytes(b"previous complete artifact")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"previous complete artifact"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.parquet"]


def test_truncated_parquet_gives_an_error_naming_the_file(tmp_path):
    df = pd.DataFrame({"a": np.arange(1000.0)})
    path = tmp_path / "table.parquet"
    write_parquet(df, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"table\.parquet.*not a readable Parquet file"):
        read_parquet(path)
    (tmp_path / "foreign.parquet").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="foreign.parquet"):
        read_parquet(tmp_path / "foreign.parquet")


def test_sample_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((50, 3)), rng.standard_normal((50, 3))
    truth = np.array([0.0, 0.1, 0.2, 0.3])
    write_sample(x, y, truth, tmp_path / "s.parquet", params={"family": "test"})
    x2, y2, t2, params = read_sample(tmp_path / "s.parquet")
    assert np.array_equal(x, x2) and np.array_equal(y, y2) and np.array_equal(truth, t2)
    assert params == {"family": "test"}
    write_parquet(pd.DataFrame({"q": [1.0]}), tmp_path / "other.parquet")
    with pytest.raises(ValueError, match="not a mipipe sample"):
        read_sample(tmp_path / "other.parquet")


def test_write_table_markdown_and_csv(tmp_path):
    df = pd.DataFrame({"estimator": ["ksg1"], "estimate_nats": [1.234567891]})
    write_table(df, tmp_path / "t.parquet", tmp_path / "t.csv", tmp_path / "t.md")
    assert (tmp_path / "t.csv").read_text().splitlines() == ["estimator,estimate_nats", "ksg1,1.23457"]
    md = (tmp_path / "t.md").read_text().splitlines()
    assert md[0] == "| estimator | estimate_nats |" and md[2] == "| ksg1 | 1.23457 |"


def test_estimator_grid_overrides_and_parses_inf():
    ex = {"k": [1], "p": [1, ".inf"], "estimators": {"knn": {}, "ksg2": {"p": [1], "k": [2, 3]}}}
    assert estimator_grid(ex, "knn") == {
        "k": [1], "p": [1.0, math.inf], "correction": ["digamma"], "eps": [1e-10]
    }
    assert estimator_grid(ex, "ksg2")["k"] == [2, 3]
    assert estimator_grid(ex, "ksg2")["p"] == [1.0]
    with pytest.raises(ValueError, match="not part of this experiment"):
        estimator_grid(ex, "ksg1")


def test_run_grid_rows_are_prefix_estimates():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((400, 3))
    y = x + rng.standard_normal((400, 3))
    truth = np.array([0.0, 0.3, 0.6, 0.9])
    grid = {"k": [1, 2], "p": [math.inf], "correction": ["digamma", "log"], "eps": [1e-10]}
    rows = run_grid(x, y, truth, "ksg1", grid, [100, 400], [1, 3],
                    labels={"experiment": "e", "dataset": "d", "distribution": "f", "seed": 7},
                    workers=1)
    assert len(rows) == 2 * 2 * 2 * 2
    for r in rows.itertuples():
        assert r.estimate_nats == ksg_mi(x[: r.n, : r.D], y[: r.n, : r.D], k=r.k, p=r.p,
                                         correction=r.correction, variant=1)
        assert r.true_mi_nats == truth[r.D]
        assert r.seed == 7 and r.seconds >= 0
    with pytest.raises(ValueError, match="outside the cached sample"):
        run_grid(x, y, truth, "ksg1", grid, [401], [1], labels={})
    with pytest.raises(ValueError, match="unknown estimator"):
        run_grid(x, y, truth, "kde", grid, [100], [1], labels={})


def test_jitter_option_reaches_the_estimator_and_breaks_repeated_values():
    # continuous x rounded to a grid of 2**-16 (as float32 rounds draws): ~65 repeated values
    # at n = 3000. X ~ U(0, 1), Y = X + N(0, 0.5^2): I(X; Y) = 0.1437 nats (numerical integral
    # of h(Y) minus h(noise)). Noise of one grid step (2**-16 / std(X)) undoes the rounding.
    rng = np.random.default_rng(3)
    x = np.round(rng.uniform(size=(3000, 1)) * 2**16) / 2**16
    y = x + 0.5 * rng.standard_normal((3000, 1))
    assert len(np.unique(x)) < 2950
    truth = np.array([0.0, 0.1437])
    step = 2**-16 / np.sqrt(1 / 12)
    ex = {"jitter": step, "estimators": {"knn": {}, "ksg2": {"p": [1]}, "ksg1": {"jitter": 1e-6},
                                         "mine": {}}}
    assert estimator_grid(ex, "knn")["jitter"] == step
    assert estimator_grid(ex, "ksg1")["jitter"] == 1e-6  # the estimator's own value wins
    assert "jitter" not in estimator_grid(ex, "mine")
    # unset: not in the grid at all, so existing grids (and their cached jobs) are unchanged
    assert "jitter" not in estimator_grid({"estimators": {"knn": {}}}, "knn")
    labels = {"experiment": "e", "dataset": "d", "distribution": "f", "seed": 11}
    for est, kw in (("knn", {}), ("ksg2", {"variant": 2})):
        grid = estimator_grid(ex, est)
        plain = {key: value for key, value in grid.items() if key != "jitter"}
        failed = run_grid(x, y, truth, est, plain, [3000], [1], labels=labels, workers=1)
        assert failed.status.tolist() == ["failed"] and "jitter" in failed.error.iloc[0]
        rows = run_grid(x, y, truth, est, grid, [3000], [1], labels=labels, workers=1)
        assert rows.status.tolist() == ["ok"]
        func = knn_mi if est == "knn" else ksg_mi
        expected = func(x, y, k=1, p=grid["p"][0], jitter=step, seed=11, **kw)
        assert rows.estimate_nats.iloc[0] == expected  # seeded by the sample's seed
        assert abs(expected - 0.1437) < 0.06  # measured: kNN 0.171, KSG2 0.189 (n = 3000)


def test_aggregate_mean_std_band_and_eps_sensitivity():
    base = {"experiment": "e", "dataset": "d", "distribution": "f", "estimator": "ksg1",
            "k": 1, "p": 2.0, "correction": "digamma", "n": 100, "D": 2, "true_mi_nats": 1.0,
            "seconds": 0.1, "status": "ok", "error": ""}
    rows = pd.DataFrame([
        {**base, "eps": 1e-10, "seed": 1, "estimate_nats": 0.8},
        {**base, "eps": 1e-10, "seed": 2, "estimate_nats": 1.0},
        {**base, "eps": 1e-10, "seed": 3, "estimate_nats": 1.2},
        {**base, "eps": 1e-8, "seed": 1, "estimate_nats": 0.9},
    ])
    agg = aggregate(rows)
    row = agg[agg.eps == 1e-10].iloc[0]
    assert row.n_seeds == 3
    assert row.estimate_mean_nats == pytest.approx(1.0)
    assert row.estimate_std_nats == pytest.approx(0.2)
    assert (row.estimate_min_nats, row.estimate_max_nats) == (0.8, 1.2)
    assert row.bias_nats == pytest.approx(0.0)
    sens = eps_sensitivity(agg)
    assert len(sens) == 1
    assert sens.iloc[0].max_abs_change_nats == pytest.approx(0.1)
    assert sens.iloc[0].estimate_at_max_eps_nats == pytest.approx(0.9)


def _tiny():
    return yaml.safe_load(TINY.read_text())


def test_tiny_config_is_valid():
    cfg = _tiny()
    validate_schema(cfg)
    check_config(cfg)


def test_only_estimators_keeps_a_subset_and_drops_emptied_experiments():
    cfg = _tiny()
    before = {name: list(ex["estimators"]) for name, ex in cfg["experiments"].items()}
    used = sorted({e for names in before.values() for e in names})
    assert "knn" in used and len(used) > 1
    cfg["only_estimators"] = ["knn"]
    validate_schema(cfg)
    select_estimators(cfg)
    assert set(cfg["experiments"]) == {n for n, names in before.items() if "knn" in names}
    for name, ex in cfg["experiments"].items():
        assert list(ex["estimators"]) == ["knn"], name
    untouched = _tiny()
    select_estimators(untouched)  # no key: unchanged
    assert {n: list(ex["estimators"]) for n, ex in untouched["experiments"].items()} == before
    cfg = _tiny()
    cfg["only_estimators"] = ["knn", "kgs1"]
    with pytest.raises(ConfigError, match=r"only_estimators: \['kgs1'\] appear in no experiment"):
        select_estimators(cfg)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda c: c.__setitem__("sedes", [1]), "sedes"),
        (lambda c: c["datasets"]["gauss"].pop("beta"), "needs the key 'beta'"),
        (lambda c: c["datasets"]["lin"].__setitem__("beta", 1.0), "lin/beta"),
        (lambda c: c["datasets"]["lin"].__setitem__("noise_dims", 2), "noise_dims"),
        (lambda c: c["experiments"]["fig_n"].__setitem__("n", [60, 5000]), "exceeds"),
        (lambda c: c["experiments"]["fig_n"].__setitem__("D", [3]), "D: 3 exceeds"),
        (lambda c: c["experiments"]["fig_n"].__setitem__("k", [60]), "k = 60 must be <"),
        (lambda c: c["experiments"]["fig_n"].__setitem__("sweep", "k"), "sweep"),
        (lambda c: c["experiments"]["fig_n"]["estimators"]["knn"].__setitem__("p", ["two"]), "p"),
        (lambda c: c["datasets"]["gauss"].__setitem__("n", 0), "n"),
        (lambda c: c["datasets"]["gauss"].__setitem__("n", 300.0), "gauss/n: must be an integer"),
        (lambda c: c["datasets"]["lin"].__setitem__("alpha", float("nan")), "alpha"),
        (lambda c: c["datasets"]["gauss"].__setitem__("beta", float("inf")), "beta: must be a finite"),
        (lambda c: c["experiments"]["fig_n"].__setitem__("p", [float("nan")]), "p"),
        (lambda c: c["experiments"]["fig_n"].__setitem__("eps", [float("nan")]), "eps"),
        (lambda c: c["experiments"]["fig_n"].__setitem__("p", [float("inf"), "inf"]), "twice"),
        (lambda c: c["experiments"]["fig_n"].__setitem__("k", [1, 1]), "non-unique"),
        (lambda c: c.__setitem__("seeds", [-1]), "seeds"),
        (lambda c: c["experiments"].__setitem__("eps_sensitivity", c["experiments"]["eps_lin"]), "reserved"),
        (lambda c: c["experiments"]["fig_n"]["estimators"].__setitem__("kde", {}), r"unknown key 'kde'\. Allowed here: \['cca', 'club', 'infonce', 'knn', 'ksg1', 'ksg2', 'ksliced', 'latent', 'mine', 'nwj', 'sliced', 'smile'\]"),
        # neural estimators (fig_neural: mine, infonce, ksg1)
        (lambda c: c["experiments"]["fig_neural"]["estimators"]["infonce"].__setitem__("ema", 0.1),
         r"unknown key 'ema'.*Allowed here: \['batch_size', 'device', 'epochs', 'hidden', 'holdout', 'lr', 'shuffle'\]"),
        (lambda c: c["experiments"]["fig_neural"]["estimators"]["mine"].__setitem__("hiden", [4]), "did you mean 'hidden'"),
        (lambda c: c["experiments"]["fig_neural"].__setitem__("hidden", [0]), "hidden"),
        (lambda c: c["experiments"]["fig_neural"].__setitem__("lr", [0.0]), "lr"),
        (lambda c: c["experiments"]["fig_neural"].__setitem__("lr", [float("nan")]), "lr: nan is not a finite"),
        (lambda c: c["experiments"]["fig_neural"].__setitem__("epochs", [2.0]), "epochs: 2.0 is not an integer"),
        (lambda c: c["experiments"]["fig_neural"].__setitem__("batch_size", [1]), "batch_size"),
        (lambda c: c["experiments"]["fig_neural"].__setitem__("holdout", 1.0), "holdout"),
        (lambda c: c["experiments"]["fig_neural"].__setitem__("device", "tpu"), "tpu"),
        (lambda c: c["experiments"]["fig_neural"]["estimators"]["mine"].__setitem__("ema", 0), "ema"),
        (lambda c: c["experiments"]["fig_neural"].__setitem__("ema", 0.1), "unknown key 'ema'"),
        (lambda c: c["experiments"]["eps_lin"]["estimators"].__setitem__("mine", {}),
         "eps_lin/estimators: an eps sweep.*'mine'"),
        (lambda c: c["experiments"]["fig_k"].__setitem__("epochs", [3]),
         "fig_k/epochs: a neural .* parameter, but the experiment has no neural"),
        (lambda c: c["experiments"]["fig_neural"]["estimators"].pop("ksg1") and c["experiments"]["fig_neural"].__setitem__("k", [1]),
         "fig_neural/k: a nearest-neighbour"),
        (lambda c: c["experiments"].__setitem__("fig_neural_convergence", c["experiments"]["fig_k"]),
         "taken by the convergence figure of experiment 'fig_neural'"),
        (lambda c: c["experiments"]["fig_neural"].__setitem__("seeds", [1.5]), "seeds"),
        # jitter: nearest-neighbour only, a finite number in (0, 1e-3]
        (lambda c: c["experiments"]["fig_n"].__setitem__("jitter", 0), "jitter"),
        (lambda c: c["experiments"]["fig_n"].__setitem__("jitter", 0.01), "jitter"),
        (lambda c: c["experiments"]["fig_n"].__setitem__("jitter", float("nan")), "jitter: nan is not a finite"),
        (lambda c: c["experiments"]["fig_n"]["estimators"]["knn"].__setitem__("jitter", "1e-8"), "jitter"),
        (lambda c: c["experiments"]["fig_neural"]["estimators"]["infonce"].__setitem__("jitter", 1e-8),
         "unknown key 'jitter'"),
        (lambda c: c["experiments"]["fig_neural"]["estimators"].pop("ksg1") and c["experiments"]["fig_neural"].__setitem__("jitter", 1e-8),
         "fig_neural/jitter: a nearest-neighbour"),
    ],
)
def test_config_errors_name_the_key(mutate, match):
    cfg = _tiny()
    mutate(cfg)
    with pytest.raises(ConfigError, match=match):
        check_keys(cfg)
        validate_schema(cfg)
        check_config(cfg)


def test_unknown_key_lists_the_allowed_keys_and_the_closest_match():
    cfg = _tiny()
    cfg["experiments"]["fig_n"]["estimators"]["ksg1"]["kk"] = [1]
    with pytest.raises(ConfigError, match=r"experiments/fig_n/estimators/ksg1/kk.*did you mean 'k'.*Allowed here"):
        check_keys(cfg)


def test_a_raising_estimator_becomes_a_failed_row_and_the_rest_runs(monkeypatch):
    import mipipe.experiments as ex

    def flaky(x, y, k, p, **kw):
        if k == 2:
            raise FloatingPointError("critic diverged")
        return ksg_mi(x, y, k=k, p=p, **kw)

    monkeypatch.setitem(ex.NN_ESTIMATORS, "ksg1", (flaky, {"variant": 1}))
    rng = np.random.default_rng(2)
    x = rng.standard_normal((200, 2))
    y = x + rng.standard_normal((200, 2))
    grid = {"k": [1, 2, 3], "p": [2.0], "correction": ["digamma"], "eps": [1e-10]}
    rows = run_grid(x, y, np.zeros(3), "ksg1", grid, [200], [2],
                    labels={"experiment": "e", "dataset": "d", "distribution": "f", "seed": 1})
    assert list(rows["status"]) == ["ok", "failed", "ok"]
    bad = rows.iloc[1]
    assert math.isnan(bad.estimate_nats)
    assert bad.error == "FloatingPointError: critic diverged"
    assert rows.iloc[2].estimate_nats == ksg_mi(x, y, k=3, p=2.0)

    agg = aggregate(pd.concat([rows, rows.assign(seed=2)]))
    failed = agg[agg.k == 2].iloc[0]
    assert (failed.n_seeds, failed.n_failed) == (0, 2)
    assert math.isnan(failed.estimate_mean_nats)
    assert failed.error == "FloatingPointError: critic diverged"
    ok = agg[agg.k == 3].iloc[0]
    assert (ok.n_seeds, ok.n_failed, ok.error) == (2, 0, "")

    from mipipe.plotting import plot_sweep

    fig = plot_sweep(agg, "n", "with a failure")
    crosses = [line for ax in fig.axes for line in ax.lines if line.get_marker() == "x"]
    assert crosses and crosses[0].get_color() == "red"


INFERENCE_TINY = Path(__file__).parent / "configs" / "tiny_inference.yaml"


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda i: i["victim"].update(temperatures=[math.nan, 0.2]),
         r"inference/victim/temperatures/0: nan is not a finite number"),
        (lambda i: i["simclr"].update(lr=math.inf), r"inference/simclr/lr: inf is not a finite"),
        (lambda i: i["linear_eval"].update(C=math.nan), r"inference/linear_eval/C: nan"),
        (lambda i: i["victim"]["data"].update(split="unlabeled"),
         r"inference/victim/data/split: digits has no split 'unlabeled'"),
        (lambda i: i["encoder"].update(in_channels=3),
         r"inference/victim/data: digits images have 1 channel\(s\) but inference/encoder/in_channels is 3"),
        # checks that fired only inside a job, with messages naming no key (issue 12)
        (lambda i: i["simclr"]["augmentation"].update(blur={"kernel": 2, "sigma": [0.1, 2.0]}),
         r"inference/simclr/augmentation/blur/kernel: .* odd number of pixels .* got 2"),
        (lambda i: i["simclr"]["augmentation"].update(crop_scale=[1.0, 0.5]),
         r"inference/simclr/augmentation/crop_scale: \[min, max\] must have min <= max, got \[1.0, 0.5\]"),
        (lambda i: i["simclr"]["augmentation"].update(blur={"kernel": 3, "sigma": [2.0, 0.1]}),
         r"inference/simclr/augmentation/blur/sigma: \[min, max\] must have min <= max"),
        (lambda i: i["victim"].update(seed=2**64),
         r"inference/victim/seed: seed 18446744073709551616 is outside \[0, 2\*\*64\)"),
        (lambda i: i["random"].update(seeds=[0, 2**70]),
         r"inference/random/seeds/1: seed 1180591620717411303424 is outside"),
        (lambda i: i["mi"].update(p="0.5"), r"inference/mi/p must be a real number >= 1 or inf, got '0.5'"),
        (lambda i: i["mi"].update(p=0.5), r"inference/mi/p must be >= 1"),
        # sizes against the known split sizes (digits train: round(0.8 * 1797) = 1438)
        (lambda i: (i["stealing"]["queries"].pop("rows"), i["stealing"].update(n_queries=2000)),
         r"inference/stealing/n_queries = 2000 exceeds the 1438 images of stealing/queries "
         r"\(digits/train\)"),
        (lambda i: i["embeddings"].update(data={"dataset": "digits", "split": "test"},
                                          n=[60, 400]),
         r"inference/embeddings/n: 400 exceeds the 359 images of embeddings/data \(digits/test\)"),
        (lambda i: i["victim"]["data"].update(rows=[0, 5000]),
         r"inference/victim/data/rows: stop 5000 is past the end of digits/train, which has "
         r"1438 images"),
    ],
)
def test_inference_config_errors_name_the_key(mutate, match):
    cfg = yaml.safe_load(INFERENCE_TINY.read_text())
    check_config(cfg)  # the tiny inference config itself is valid
    mutate(cfg["inference"])
    with pytest.raises(ConfigError, match=match):
        check_config(cfg)


@pytest.mark.parametrize("p, expected", [(".inf", math.inf), ("inf", math.inf), (" Inf ", math.inf),
                                         ("chebyshev", math.inf), (math.inf, math.inf), (1, 1.0),
                                         (2.5, 2.5)])
def test_one_norm_parser_for_every_stage(p, expected):
    """Config norms parse the same way in the synthetic grid, the estimators and the
    dataset-inference MI (``inference.mi.p: ".inf"`` is the max norm, as in experiments)."""
    from mipipe.estimators._validation import check_p
    from mipipe.experiments import parse_p

    assert parse_p(p) == check_p(p) == expected
    cfg = yaml.safe_load(INFERENCE_TINY.read_text())
    cfg["inference"]["mi"]["p"] = p
    check_config(cfg)


def test_the_mi_stage_reads_the_max_norm_from_a_config_string():
    """inference.mi.p: ".inf" (issue 12: float(".inf") failed all 18 MI rows): the MI rows
    equal those of p = inf."""
    from mipipe.inference.mi import pair_mi

    rng = np.random.default_rng(0)
    z = rng.normal(size=(40, 3)).astype(np.float32)
    w = (z + rng.normal(size=(40, 3))).astype(np.float32)
    kw = dict(reference="v", other="o", role="stolen", seed=0, n_values=[40])
    mi = {"estimator": "knn", "k": 1, "n_permutations": 3, "seed": 0}
    (text,) = pair_mi(z, w, mi={**mi, "p": ".inf"}, **kw)
    (num,) = pair_mi(z, w, mi={**mi, "p": math.inf}, **kw)
    assert text["status"] == "ok" and text["mi_nats"] == num["mi_nats"]
