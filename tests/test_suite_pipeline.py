"""The task suite (sweep: task) in the library and through the pipeline: rows, per-task table,
heat map, sample caching, standardisation, config checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from mipipe.config import ConfigError, check_config, validate_schema
from mipipe.estimators import cca_mi, knn_mi, ksg_mi
from mipipe.io import read_parquet, read_sample
from mipipe.synthetic.experiments import aggregate, estimator_grid, run_task_suite, standardised
from mipipe.synthetic.plotting import plot_task_suite, task_cells
from mipipe.tasks import get_task

from conftest import REPO, snakemake

SUITE = REPO / "tests" / "configs" / "tiny_suite.yaml"
TASK_IDS = yaml.safe_load(SUITE.read_text())["experiments"]["suite"]["tasks"]


def _samples(n=300, seed=3):
    for tid in TASK_IDS:
        t = get_task(tid)
        x, y = t.sample(n, seed)
        yield x, y, np.array([t.true_mi]), {"task": tid, "family": t.family}


def test_task_rows_use_every_column_standardised_and_equal_direct_calls():
    grid = estimator_grid({"estimators": {"ksg1": {"k": [3]}}}, "ksg1")
    rows = run_task_suite(_samples(), "ksg1", grid, [300], labels={"experiment": "s", "seed": 3}).rows
    assert list(rows["task"]) == TASK_IDS and list(rows["dataset"]) == TASK_IDS
    assert list(zip(rows["dim_x"], rows["dim_y"])) == [(1, 1), (2, 1), (3, 3)]
    assert rows["standardise"].all() and (rows["status"] == "ok").all()
    for (x, y, truth, _), (_, row) in zip(_samples(), rows.iterrows()):
        assert row["estimate_nats"] == ksg_mi(standardised(x), standardised(y), k=3, p=2, variant=1)
        assert row["true_mi_nats"] == truth[0]
    raw = run_task_suite(_samples(), "ksg1", grid, [300], labels={"experiment": "s", "seed": 3},
                         standardise=False).rows
    x, y, _, _ = next(_samples())
    assert not raw["standardise"].any()
    assert raw["estimate_nats"].iloc[1] != rows["estimate_nats"].iloc[1]  # the swiss roll is not unit-scale
    assert raw["estimate_nats"].iloc[0] == ksg_mi(x, y, k=3, p=2, variant=1)


def test_scalable_estimators_run_on_tasks_with_unequal_widths():
    """Issue 13/14: cca, sliced and ksliced in a task sweep use every column (2 x 1 included),
    standardised, equal a direct call, and have no sliced truth on tasks (NaN)."""
    from mipipe.estimators import ksliced_mi

    labels = {"experiment": "s", "seed": 3}
    cca = run_task_suite(_samples(2000), "cca", estimator_grid({"estimators": {"cca": {}}}, "cca"),
                         [2000], labels=labels).rows
    assert list(zip(cca["dim_x"], cca["dim_y"])) == [(1, 1), (2, 1), (3, 3)]
    assert (cca["status"] == "ok").all() and cca["true_target_nats"].isna().all()
    for (x, y, truth, _), (_, row) in zip(_samples(2000), cca.iterrows()):
        assert row["estimate_nats"] == cca_mi(standardised(x), standardised(y))
    # Gaussian tasks: consistent (1v1-normal-0.75: 0.4133 nats; sparse 3x3: 1.0217); at n = 2000
    # the sampling sd is about 0.025 nats per interacting pair, so 0.08 is about 3 sd
    for i in (0, 2):
        assert cca["estimate_nats"].iloc[i] == pytest.approx(cca["true_mi_nats"].iloc[i], abs=0.08)
    grid = estimator_grid({"estimators": {"ksliced": {"n_slices": 8}}}, "ksliced")
    ks = run_task_suite(_samples(300), "ksliced", grid, [300], labels=labels).rows
    assert (ks["status"] == "ok").all() and (ks["k"] == 3).all()
    x, y, _, _ = list(_samples(300))[1]  # 2 x 1: the frame is 1-D
    assert ks["estimate_nats"].iloc[1] == ksliced_mi(standardised(x), standardised(y), dim=1,
                                                     n_slices=8, k=3, seed=3)


def test_standardised_columns_have_zero_mean_and_unit_std():
    a = np.random.default_rng(0).normal(3.0, 7.0, size=(500, 4))
    z = standardised(a)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(z.std(axis=0), 1, atol=1e-12)
    assert np.array_equal(standardised(np.ones((5, 1))), np.zeros((5, 1)))


def test_heat_map_cells_are_the_mean_estimates():
    grid = estimator_grid({"estimators": {"knn": {"k": [3]}}}, "knn")
    rows = pd.concat([run_task_suite(_samples(seed=s), "knn", grid, [300],
                                     labels={"experiment": "s", "seed": s}).rows for s in (3, 4)])
    agg = aggregate(rows)
    cells = task_cells(agg, TASK_IDS)
    assert list(cells["task"]) == TASK_IDS and list(cells.columns[-1:]) == ["kNN k=3"]
    for _, c in cells.iterrows():
        mine = rows[rows["task"] == c["task"]]["estimate_nats"].mean()
        assert c["kNN k=3"] == pytest.approx(mine, rel=1e-12)
        assert c["true_mi_nats"] == get_task(c["task"]).true_mi
    fig = plot_task_suite(agg, "t", TASK_IDS)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[0].startswith("1v1-normal-0.75  (1×1)  I = 0.41")
    with pytest.raises(ValueError, match="not a task sweep"):
        task_cells(agg.assign(task=None))


def _suite_config(**changes):
    cfg = yaml.safe_load(SUITE.read_text())
    cfg["experiments"]["suite"].update(changes)
    return cfg


@pytest.mark.parametrize("changes, expected", [
    ({"tasks": ["1v1-normal-0.7"]}, "experiments/suite/tasks/0: unknown task id '1v1-normal-0.7'; did you mean '1v1-normal-0.75'"),
    ({"k": [150]}, "experiments/suite/estimators/knn/k: k = 150 must be < the smallest n = 150"),
])
def test_check_config_names_the_bad_task_key(changes, expected):
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        cfg = _suite_config(**changes)
        validate_schema(cfg)
        check_config(cfg)


@pytest.mark.parametrize("changes", [{"dataset": "gauss"}, {"D": [1]}, {"standardise": "yes"}])
def test_schema_rejects_thesis_keys_in_a_task_sweep(changes):
    with pytest.raises(ConfigError):
        validate_schema(_suite_config(**changes))


def test_schema_needs_tasks_for_a_task_sweep():
    cfg = _suite_config()
    del cfg["experiments"]["suite"]["tasks"]
    with pytest.raises(ConfigError, match="tasks"):
        validate_schema(cfg)


@pytest.mark.pipeline
def test_suite_pipeline_writes_the_table_heat_map_and_cached_task_samples(tmp_path):
    snakemake(tmp_path, configfile=SUITE)
    res = tmp_path / "results"
    for tid in TASK_IDS:  # cached per task and seed, at the largest n
        x, y, truth, params = read_sample(res / "samples" / "tasks" / tid / "seed3.parquet")
        t = get_task(tid)
        ex, ey = t.sample(300, 3)
        assert np.array_equal(x, ex) and np.array_equal(y, ey) and truth[-1] == t.true_mi
    agg = read_parquet(res / "tables" / "suite.parquet")
    assert set(agg["task"]) == set(TASK_IDS)
    assert set(agg["estimator"]) == {"knn", "ksg1", "infonce", "cca", "ksliced"}
    assert len(agg) == 3 * 5 * 2 and agg["standardise"].all() and (agg["n_failed"] == 0).all()
    row = agg[(agg["task"] == TASK_IDS[1]) & (agg["estimator"] == "knn") & (agg["n"] == 150)].iloc[0]
    x, y, _, _ = read_sample(res / "samples" / "tasks" / TASK_IDS[1] / "seed3.parquet")
    assert (row["dim_x"], row["dim_y"]) == (2, 1)
    assert row["estimate_mean_nats"] == knn_mi(standardised(x[:150]), standardised(y[:150]), k=3, p=2)
    assert row["bias_nats"] == pytest.approx(row["estimate_mean_nats"] - get_task(TASK_IDS[1]).true_mi)
    # the scalable estimators ran through estimate_scalable on every task
    cca = agg[(agg["estimator"] == "cca") & (agg["n"] == 300)].set_index("task")
    x, y, _, _ = read_sample(res / "samples" / "tasks" / TASK_IDS[2] / "seed3.parquet")
    assert cca.loc[TASK_IDS[2], "estimate_mean_nats"] == cca_mi(standardised(x), standardised(y))
    assert (res / "benchmarks" / "estimate_scalable" / "suite" / "ksliced" / "seed3.tsv").exists()
    assert (res / "figures" / "suite.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (res / "figures" / "suite_convergence.png").exists()
    assert (res / "checks" / "synthetic.ok").exists()
