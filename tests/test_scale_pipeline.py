"""The scalable estimators (issue 14) in the synthetic benchmark: config checks, rows with
the sliced truth, aggregation and the figure's own-truth line."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import yaml

from mipipe.config import ConfigError, check_config, validate_schema
from mipipe.distributions import draw_sample
from mipipe.estimators import cca_mi, ksliced_mi
from mipipe.synthetic.experiments import aggregate, estimator_grid, grid_size
from mipipe.synthetic.plotting import plot_sweep
from mipipe.synthetic.scalable import run_scalable_grid, sample_covariance, true_sliced_mi

LABELS = {"experiment": "e", "dataset": "d", "distribution": "f", "seed": 3}


@pytest.fixture(scope="module")
def default_config():
    with open("config.yaml") as fh:
        return yaml.safe_load(fh)


def test_default_config_has_the_new_estimators_and_passes(default_config):
    validate_schema(default_config)
    check_config(default_config)
    est = default_config["experiments"]["figure_10"]["estimators"]
    assert {"cca", "sliced", "ksliced", "smile", "club", "latent"} <= set(est)


@pytest.mark.parametrize("estimator, spec, match", [
    ("sliced", {"n_slices": [4]}, "n_slices"),
    ("latent", {"hiddn": 3}, "hiddn"),
    ("ksliced", {"k": 5000}, "smallest n = 3000 is too small for ksliced"),
    ("ksliced", {"dim": 2.0}, "dim: must be an integer"),
])
def test_bad_scalable_options_name_the_key(default_config, estimator, spec, match):
    config = copy.deepcopy(default_config)
    ex = config["experiments"]["figure_8"]
    ex["estimators"] = {**ex["estimators"], estimator: spec}
    with pytest.raises(ConfigError, match=match):
        validate_schema(config)
        check_config(config)


def test_grid_of_a_scalable_estimator_is_its_options():
    ex = {"estimators": {"ksliced": {"n_slices": 8}, "cca": None}}
    assert estimator_grid(ex, "ksliced") == {"options": {"dim": 2, "n_slices": 8, "k": 3}}
    assert estimator_grid(ex, "cca") == {"options": {}}
    assert grid_size(estimator_grid(ex, "cca")) == 1


def test_sample_covariance_matches_the_family_mi():
    s = draw_sample("gaussian_beta", 10, 6, seed=0, beta=2.0, noise_dims=3)
    from mipipe.estimators.gaussian import gaussian_mi_from_cov

    for D in (1, 3, 6):
        assert gaussian_mi_from_cov(sample_covariance(s.params, D), D) == pytest.approx(
            s.true_mi[D], rel=1e-10)
    lin = draw_sample("linear", 10, 3, seed=0, alpha=0.6)
    assert sample_covariance(lin.params, 3) is None


def test_rows_carry_the_estimate_and_the_sliced_truth():
    s = draw_sample("gaussian_beta", 800, 4, seed=1, beta=2.0)
    grid = {"options": {"dim": 2, "n_slices": 6, "k": 3}}
    rows = run_scalable_grid(s.x, s.y, s.true_mi, "ksliced", grid, [800], [1, 4], labels=LABELS,
                             params=s.params)
    assert list(rows["status"]) == ["ok", "ok"]
    assert list(rows["dim_x"]) == list(rows["dim_y"]) == [1, 4]  # the thesis rows' columns
    assert not rows["standardise"].any()
    four = rows[rows["D"] == 4].iloc[0]
    assert four["estimate_nats"] == ksliced_mi(s.x[:, :4], s.y[:, :4], dim=2, n_slices=6, seed=3)
    assert four["true_target_nats"] == true_sliced_mi(sample_covariance(s.params, 4), 4,
                                                      n_slices=6, dim=2, seed=3)
    assert four["true_mi_nats"] == pytest.approx(s.true_mi[4])
    one = rows[rows["D"] == 1].iloc[0]  # a 1-D frame at D = 1 keeps all: target = MI
    assert one["true_target_nats"] == pytest.approx(s.true_mi[1], rel=1e-10)
    cca = run_scalable_grid(s.x, s.y, s.true_mi, "cca", {"options": {}}, [800], [4],
                            labels=LABELS, params=s.params)
    assert cca["estimate_nats"].iloc[0] == cca_mi(s.x[:, :4], s.y[:, :4])
    assert np.isnan(cca["true_target_nats"].iloc[0])
    bad = run_scalable_grid(np.ones((50, 2)), s.y[:50, :2], s.true_mi, "sliced",
                            {"options": {"n_slices": 2, "k": 3}}, [50], [2], labels=LABELS)
    assert bad["status"].iloc[0] == "failed" and "x is constant" in bad["error"].iloc[0]


def test_figure_draws_the_sliced_truth_beside_the_mi():
    s = draw_sample("gaussian_beta", 600, 3, seed=2, beta=2.0)
    parts = [run_scalable_grid(s.x, s.y, s.true_mi, est, {"options": opts}, [600], [1, 2, 3],
                               labels=LABELS, params=s.params)
             for est, opts in (("sliced", {"n_slices": 4, "k": 3}), ("cca", {}))]
    import pandas as pd

    agg = aggregate(pd.concat(parts, ignore_index=True))
    assert agg.loc[agg["estimator"] == "sliced", "true_target_nats"].notna().all()
    fig = plot_sweep(agg, "D", "test")
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert "true sliced MI (its target, not the MI)" in labels
    assert "true MI" in labels
