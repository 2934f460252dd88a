"""Neural estimators in the synthetic benchmark: grids, rows and traces (library level, a few
epochs on small data), figures, valid configs (the config errors are in
test_io_and_experiments.py), and the tiny pipeline's neural experiment
(``fig_neural``: MINE with the EMA gradient and InfoNCE next to KSG1). About 40 s, most
of it the shared tiny run and one run with an injected failure."""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pytest
import yaml

import mipipe.experiments as ex
from mipipe.config import check_config, check_keys, validate_schema
from mipipe.estimators import infonce_mi, mine_mi
from mipipe.experiments import (
    RESULT_COLUMNS,
    TRACE_COLUMNS,
    aggregate,
    estimator_grid,
    grid_size,
    run_grid,
    run_neural_grid,
)
from mipipe.io import read_parquet, read_sample
from mipipe.plotting import plot_convergence, plot_sweep

from conftest import TINY, snakemake

LABELS = {"experiment": "e", "dataset": "d", "distribution": "f", "seed": 5}


def correlated(n=400, d=2, rho=0.8, seed=0):
    """X, Y with d independent coordinate pairs of correlation rho: MI = -d/2 log(1 - rho^2)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = rho * x + math.sqrt(1 - rho**2) * rng.standard_normal((n, d))
    truth = np.array([-D / 2 * math.log(1 - rho**2) for D in range(d + 1)])
    return x, y, truth


# ---------------------------------------------------------------------------------------
# grids


def test_neural_grid_defaults_overrides_and_options():
    experiment = {"hidden": [10, 20], "epochs": [5], "shuffle": True,
                  "estimators": {"mine": {"lr": [0.004], "ema": 0.01}, "infonce": {},
                                 "ksg1": {"p": [2]}}}
    assert estimator_grid(experiment, "mine") == {
        "hidden": [10, 20], "lr": [0.004], "epochs": [5], "batch_size": [3334],
        "shuffle": True, "holdout": 0.0, "ema": 0.01, "device": "auto",
    }
    nce = estimator_grid(experiment, "infonce")
    assert nce["lr"] == [0.005] and nce["ema"] is None  # thesis width-sweep defaults
    assert grid_size(nce) == 2
    # the nearest-neighbour grid is unchanged by neural keys
    assert estimator_grid(experiment, "ksg1") == {
        "k": [1], "p": [2.0], "correction": ["digamma"], "eps": [1e-10]
    }
    with pytest.raises(ValueError, match="use run_neural_grid"):
        run_grid(np.zeros((5, 1)), np.zeros((5, 1)), np.zeros(2), "mine", nce, [5], [1],
                 labels=LABELS)


# ---------------------------------------------------------------------------------------
# rows and traces


@pytest.fixture(scope="module")
def neural_run():
    x, y, truth = correlated()
    grid = estimator_grid({"hidden": [4, 8], "epochs": [3], "batch_size": [150], "lr": [0.01],
                           "device": "cpu", "estimators": {"mine": {"ema": 0.1}}}, "mine")
    return x, y, truth, grid, run_neural_grid(x, y, truth, "mine", grid, [200, 400], [1, 2],
                                              labels=LABELS, threads=1)


def test_neural_rows_equal_direct_library_calls(neural_run):
    x, y, truth, grid, out = neural_run
    rows = out.rows
    assert list(rows.columns) == RESULT_COLUMNS
    assert len(rows) == 2 * 2 * 2  # D x n x hidden
    assert (rows["status"] == "ok").all()
    # nearest-neighbour grid columns are missing values for a neural estimator
    assert rows[["k", "p", "eps", "correction"]].isna().all().all()
    assert (rows["device"] == "cpu").all() and (rows["ema"] == 0.1).all()
    for r in rows.itertuples():
        assert r.true_mi_nats == truth[r.D]
        direct = mine_mi(x[: r.n, : r.D], y[: r.n, : r.D], hidden=r.hidden, lr=r.lr,
                         epochs=r.epochs, batch_size=r.batch_size, seed=5, device="cpu", ema=0.1)
        assert r.estimate_nats == direct.estimate  # same seed on CPU: identical
    # the traces: one row per step of every grid point, the grid identifiers attached
    traces = out.traces
    assert list(traces.columns) == TRACE_COLUMNS
    for (n, D, h), tr in traces.groupby(["n", "D", "hidden"]):
        batches = math.ceil(n / 150)
        assert list(tr["step"]) == list(range(3 * batches))
        assert list(tr["epoch"]) == [s // batches for s in range(3 * batches)]
        assert (tr["true_mi_nats"] == truth[D]).all() and (tr["seed"] == 5).all()
        row = rows[(rows.n == n) & (rows.D == D) & (rows.hidden == h)].iloc[0]
        # the estimate is the mean of the last 20 per-batch estimates (thesis protocol)
        assert row.estimate_nats == pytest.approx(tr["estimate_nats"].tail(20).mean(), abs=1e-12)
    assert traces["heldout_nats"].isna().all()


def test_neural_and_nn_rows_aggregate_together(neural_run):
    x, y, truth, grid, out = neural_run
    nn = run_grid(x, y, truth, "ksg1", {"k": [1], "p": [2.0], "correction": ["digamma"],
                                        "eps": [1e-10]}, [200, 400], [1, 2], labels=LABELS)
    assert list(nn.columns) == RESULT_COLUMNS
    assert nn[["hidden", "lr", "epochs", "batch_size"]].isna().all().all()
    two_seeds = pd.concat([out.rows, nn, out.rows.assign(seed=6, estimate_nats=out.rows.estimate_nats + 0.2)],
                          ignore_index=True)
    agg = aggregate(two_seeds)
    assert len(agg) == 8 + 4
    mine = agg[agg.estimator == "mine"]
    assert (mine["n_seeds"] == 2).all() and mine["k"].isna().all()
    assert np.allclose(mine["estimate_max_nats"] - mine["estimate_min_nats"], 0.2)
    ksg = agg[agg.estimator == "ksg1"]
    assert (ksg["n_seeds"] == 1).all() and ksg["hidden"].isna().all() and (ksg["k"] == 1).all()


def test_a_raising_neural_point_is_a_failed_row_and_the_rest_trains(monkeypatch):
    x, y, truth = correlated(n=200)

    def flaky(x, y, *, hidden, **kw):
        if hidden == 8:
            raise FloatingPointError("critic diverged")
        return infonce_mi(x, y, hidden=hidden, **kw)

    monkeypatch.setitem(ex.NEURAL_ESTIMATORS, "infonce", flaky)
    grid = estimator_grid({"hidden": [4, 8], "epochs": [2], "batch_size": [100],
                           "device": "cpu", "estimators": {"infonce": {}}}, "infonce")
    out = run_neural_grid(x, y, truth, "infonce", grid, [200], [2], labels=LABELS)
    assert list(out.rows["status"]) == ["ok", "failed"]
    bad = out.rows.iloc[1]
    assert math.isnan(bad.estimate_nats) and bad.error == "FloatingPointError: critic diverged"
    assert set(out.traces["hidden"]) == {4} and len(out.traces) == 2 * 2
    # InfoNCE never exceeds log b
    assert out.rows.iloc[0].estimate_nats <= math.log(100) + 1e-9
    with pytest.raises(ValueError, match="outside the cached sample"):
        run_neural_grid(x, y, truth, "infonce", grid, [201], [2], labels=LABELS)
    with pytest.raises(ValueError, match="unknown neural estimator"):
        run_neural_grid(x, y, truth, "ksg1", grid, [200], [2], labels=LABELS)


def test_a_diverging_training_is_a_failed_row_with_the_step():
    """Issue 12: NWJ with lr = 10 ran to -6.4e37 nats and was recorded as status ok."""
    x, y, truth = correlated(n=200, d=1, rho=0.98)  # MI 1.609 nats
    grid = estimator_grid({"hidden": [8], "epochs": [3], "batch_size": [100], "device": "cpu",
                           "estimators": {"nwj": {"lr": [10.0, 0.01]}}}, "nwj")
    out = run_neural_grid(x, y, truth, "nwj", grid, [200], [1], labels=LABELS, threads=1)
    assert list(out.rows["status"]) == ["failed", "ok"]
    bad = out.rows.iloc[0]
    assert math.isnan(bad.estimate_nats)
    assert bad.error.startswith("TrainingDiverged: nwj training diverged at step 1")
    assert abs(out.rows.iloc[1].estimate_nats) < 2


# ---------------------------------------------------------------------------------------
# figures


def _agg(estimators, widths=(30,)):
    rows = []
    for est in estimators:
        for D in (1, 2, 3):
            for h in widths if est in ("mine", "infonce") else (None,):
                rows.append({"experiment": "e", "dataset": "d", "distribution": "f",
                             "estimator": est, "k": None if h else 1, "p": math.nan if h else 2.0,
                             "eps": math.nan if h else 1e-10, "correction": None if h else "digamma",
                             "hidden": h, "lr": 0.01 if h else math.nan, "epochs": 5 if h else None,
                             "batch_size": 16 if h else None, "n": 300, "D": D, "seed": 1,
                             "estimate_nats": D * 0.9 - (4.0 if est == "knn" and D == 1 else 0.0),
                             "true_mi_nats": float(D), "seconds": 0.1, "status": "ok", "error": ""})
    return aggregate(pd.DataFrame(rows))


def test_all_estimators_share_one_axis_with_true_mi_curve_and_ceiling():
    fig = plot_sweep(_agg(["knn", "ksg1", "mine", "infonce"]), "D", "all estimators")
    assert len(fig.axes) == 1
    labels = [line.get_label() for line in fig.axes[0].lines]
    assert {"kNN", "KSG1", "MINE", "InfoNCE", "true MI"} <= set(labels)
    truth = next(line for line in fig.axes[0].lines if line.get_label() == "true MI")
    assert list(truth.get_ydata()) == [1.0, 2.0, 3.0]
    # kNN at D = 1 (-3.1 nats) lies under the cut: marked on the bottom edge
    assert fig.axes[0].get_ylim()[0] == pytest.approx(-0.1 * 3.0)
    assert any(lab.startswith("kNN below the axis (down to -3.1)") for lab in labels)
    ceiling = next(line for line in fig.axes[0].lines if line.get_label().startswith("InfoNCE ceiling"))
    assert ceiling.get_ydata()[0] == pytest.approx(math.log(16))


def test_width_sweep_has_a_panel_per_estimator_and_a_line_per_width():
    fig = plot_sweep(_agg(["mine", "infonce"], widths=(10, 20, 30)), "D", "widths")
    assert [ax.get_title() for ax in fig.axes] == ["MINE", "InfoNCE"]
    labels = [line.get_label() for line in fig.axes[0].lines]
    assert [lab for lab in labels if lab.startswith("hidden")] == [
        "hidden = 10", "hidden = 20", "hidden = 30"]


def test_panels_say_which_norm_each_estimator_uses_when_they_differ():
    """Figures 3 and 5: lines by k, kNN and KSG1 with p = 2 and KSG2 with p = 1; each panel's
    title says its norm (the legend only gives k)."""
    rows = []
    for est, p in (("knn", 2.0), ("ksg1", 2.0), ("ksg2", 1.0)):
        for k in (1, 2):
            for n in (100, 300):
                rows.append({"experiment": "e", "dataset": "d", "distribution": "f",
                             "estimator": est, "k": k, "p": p, "eps": 1e-10,
                             "correction": "digamma", "n": n, "D": 2, "seed": 1,
                             "estimate_nats": 0.5, "true_mi_nats": 0.6, "seconds": 0.1,
                             "status": "ok", "error": ""})
    fig = plot_sweep(aggregate(pd.DataFrame(rows)), "n", "by k")
    assert [ax.get_title() for ax in fig.axes] == ["kNN (p = 2)", "KSG1 (p = 2)", "KSG2 (p = 1)"]
    assert [line.get_label() for line in fig.axes[2].lines][:2] == ["k = 1", "k = 2"]


def test_shared_axis_is_cut_below_0_only_when_an_estimate_falls_below_the_cut():
    """The README's claim: the y axis is cut at -0.1 x the top when an estimate lies below
    that (Figure 11 in the default run); otherwise matplotlib's own limits stay."""
    agg = _agg(["knn", "ksg1", "mine", "infonce"])
    lifted = agg.assign(**{c: agg[c] + 4.0 * ((agg.estimator == "knn") & (agg.D == 1))
                           for c in ("estimate_mean_nats", "estimate_min_nats", "estimate_max_nats")})
    ax = plot_sweep(lifted, "D", "all above").axes[0]
    assert ax.get_ylim()[0] > -0.1 * 3.0
    assert not any(line.get_label().endswith("below the axis") or "below the axis" in
                   line.get_label() for line in ax.lines)


def test_convergence_figure_panels_and_truth(neural_run):
    traces = neural_run[4].traces
    fig = plot_convergence(pd.concat([traces, traces.assign(seed=6)]), "D", "tiny")
    assert [ax.get_title() for ax in fig.axes] == ["MINE, D = 1", "MINE, D = 2"]
    for ax, D in zip(fig.axes, (1, 2)):
        truth = [line for line in ax.lines if line.get_label().startswith("true MI")]
        assert truth[0].get_ydata()[0] == pytest.approx(neural_run[2][D])
        assert ax.get_xlabel() == "training step"
    with pytest.raises(ValueError, match="no training traces"):
        plot_convergence(traces.iloc[:0], "D", "none")
    empty = plot_convergence(traces.iloc[:0], "D", "none", allow_empty=True)
    assert "every neural estimate" in empty.axes[0].texts[0].get_text()


# ---------------------------------------------------------------------------------------
# config


def test_default_and_paper_configs_are_valid():
    from conftest import REPO

    for path in (REPO / "config.yaml", REPO / "configs" / "paper.yaml", TINY):
        cfg = yaml.safe_load(path.read_text())
        check_keys(cfg)
        validate_schema(cfg)
        check_config(cfg)


# ---------------------------------------------------------------------------------------
# pipeline (tiny config)


@pytest.mark.pipeline
def test_tiny_run_writes_neural_rows_traces_figures_and_progress(tiny_run):
    res = tiny_run / "results"
    for name in ("fig_neural", "fig_neural_convergence"):
        assert (res / "figures" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (res / "figures" / f"{name}.pdf").read_bytes()[:4] == b"%PDF"
    assert not (res / "estimates" / "fig_neural" / "mine" / "seed2.parquet").exists()  # seeds: [1]
    x, y, truth, _ = read_sample(res / "samples" / "gauss" / "seed1.parquet")
    for est in ("mine", "infonce"):
        rows = read_parquet(res / "estimates" / "fig_neural" / est / "seed1.parquet")
        traces = read_parquet(res / "traces" / "fig_neural" / est / "seed1.parquet")
        assert list(rows.columns) == RESULT_COLUMNS and list(traces.columns) == TRACE_COLUMNS
        assert len(rows) == 2 * 2 and (rows["status"] == "ok").all()  # D x hidden
        assert len(traces) == 4 * 3 * 3  # grid points x epochs x ceil(300 / 100) batches
        # the pipeline's estimate is the library's, trained with the sample's seed
        r = rows[(rows.D == 2) & (rows.hidden == 8)].iloc[0]
        func = mine_mi if est == "mine" else infonce_mi
        extra = {"ema": 0.1} if est == "mine" else {}
        direct = func(x[:, :2], y[:, :2], hidden=8, lr=0.01, epochs=3, batch_size=100, seed=1,
                      device="cpu", **extra)
        assert r.estimate_nats == direct.estimate
        assert r.true_mi_nats == truth[2]
    agg = read_parquet(res / "tables" / "fig_neural.parquet")
    assert set(agg["estimator"]) == {"ksg1", "mine", "infonce"}
    assert len(agg) == 2 + 2 * 2 * 2 and (agg["n_seeds"] == 1).all()
    # the tqdm bar of the training went to the job's log, with the current estimate
    log = (res / "logs" / "estimate" / "fig_neural" / "infonce" / "seed1.log").read_text()
    assert "step/s" in log or "s/step" in log, log[-2000:]
    assert "nats" in log


INJECT = '''
import os
if os.environ.get("MIPIPE_TEST_FAIL_NEURAL"):
    import mipipe.experiments as ex

    def _diverges(*args, **kwargs):
        raise FloatingPointError("injected failure: critic diverged")

    ex.NEURAL_ESTIMATORS[os.environ["MIPIPE_TEST_FAIL_NEURAL"]] = _diverges
'''


def _run_fig_neural(tmp_path, **changes):
    """Run the tiny config's fig_neural experiment alone (with ``changes`` to its keys), not
    checking the exit status; returns (work dir, completed process)."""
    cfg = yaml.safe_load(TINY.read_text())
    cfg["experiments"] = {"fig_neural": {**cfg["experiments"]["fig_neural"], **changes}}
    path = tmp_path / "neural.yaml"
    path.write_text(yaml.safe_dump(cfg))
    work = tmp_path / "run"
    work.mkdir()
    return work, snakemake(work, configfile=path, check=False)


@pytest.mark.pipeline
def test_a_failing_neural_estimator_is_recorded_and_the_run_completes(tmp_path, monkeypatch):
    """MINE raises in every job (injected through sitecustomize): its rows are failed,
    its traces are empty, InfoNCE, the tables and figures are still written, and the run
    exits non-zero."""
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(INJECT)
    # keep this checkout's sources on the path after the injection
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(inject), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("MIPIPE_TEST_FAIL_NEURAL", "mine")
    work, out = _run_fig_neural(tmp_path)
    assert out.returncode != 0
    assert "estimate(s) failed" in out.stdout + out.stderr
    failed = read_parquet(work / "results" / "tables" / "failures.parquet")
    assert len(failed) == 4 and set(failed["estimator"]) == {"mine"}
    assert (failed["error"] == "FloatingPointError: injected failure: critic diverged").all()
    assert read_parquet(work / "results" / "traces" / "fig_neural" / "mine" / "seed1.parquet").empty
    nce = read_parquet(work / "results" / "estimates" / "fig_neural" / "infonce" / "seed1.parquet")
    assert (nce["status"] == "ok").all()
    agg = read_parquet(work / "results" / "tables" / "fig_neural.parquet")
    assert (agg[agg.estimator == "mine"]["n_failed"] == 1).all()
    for name in ("fig_neural", "fig_neural_convergence"):
        assert (work / "results" / "figures" / f"{name}.png").exists()
    assert not (work / "results" / "checks" / "synthetic.ok").exists()


@pytest.mark.pipeline
def test_nwj_with_lr_10_is_a_failed_row_and_the_run_exits_non_zero(tmp_path):
    """Issue 12, with no injection: a schema-valid ``lr: [10.0]`` for NWJ diverged to
    -6.4e37 nats and was written as status ok. Now the row is failed with the step, and the
    failure check stops the run."""
    work, out = _run_fig_neural(tmp_path, D=[1], hidden=[8], epochs=[3],
                                estimators={"nwj": {"lr": [10.0]}})
    assert out.returncode != 0
    assert "estimate(s) failed" in out.stdout + out.stderr, out.stderr[-4000:]
    # every training failed, so the training-curve figure says so instead of stopping the run
    assert (work / "results" / "figures" / "fig_neural_convergence.png").exists()
    rows = read_parquet(work / "results" / "estimates" / "fig_neural" / "nwj" / "seed1.parquet")
    assert list(rows["status"]) == ["failed"] and rows["estimate_nats"].isna().all()
    assert rows["error"].iloc[0].startswith("TrainingDiverged: nwj training diverged at step")
    failed = read_parquet(work / "results" / "tables" / "failures.parquet")
    assert list(failed["estimator"]) == ["nwj"]
    assert not (work / "results" / "checks" / "synthetic.ok").exists()
