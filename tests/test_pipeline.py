"""End-to-end runs of the Snakemake pipeline on the tiny test config (seconds, not minutes)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import yaml

from mipipe.estimators import knn_mi, ksg_mi
from mipipe.io import read_parquet, read_sample

from conftest import TINY, edited_config, snakemake

pytestmark = pytest.mark.pipeline


def test_tiny_run_builds_every_table_and_figure(tiny_run):
    cfg = yaml.safe_load(TINY.read_text())
    for name in cfg["experiments"]:
        for ext in ("parquet", "csv", "md"):
            assert (tiny_run / "results" / "tables" / f"{name}.{ext}").stat().st_size > 0
        png = tiny_run / "results" / "figures" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (tiny_run / "results" / "figures" / f"{name}.pdf").read_bytes()[:4] == b"%PDF"
    eps = read_parquet(tiny_run / "results" / "tables" / "eps_sensitivity.parquet")
    assert set(eps["estimator"]) == {"ksg2"}


def test_grid_is_complete_and_rows_equal_direct_library_calls(tiny_run):
    agg = read_parquet(tiny_run / "results" / "tables" / "fig_n.parquet")
    # knn and ksg1 over p in {2, inf}, ksg2 over p = 1; n in {60, 300}
    assert len(agg) == (2 + 2 + 1) * 2
    assert (agg["n_seeds"] == 2).all()
    # true MI of the beta-Gaussian, d = 2, beta = 1: (d/2) log(1 + beta^2)
    assert np.allclose(agg["true_mi_nats"], math.log(2.0), atol=1e-12)

    rows = read_parquet(tiny_run / "results" / "estimates" / "fig_n" / "ksg1" / "seed2.parquet")
    x, y, _, _ = read_sample(tiny_run / "results" / "samples" / "gauss" / "seed2.parquet")
    for r in rows.itertuples():
        direct = ksg_mi(x[: r.n, : r.D], y[: r.n, : r.D], k=r.k, p=r.p, variant=1)
        assert r.estimate_nats == pytest.approx(direct, abs=1e-12)
    rows = read_parquet(tiny_run / "results" / "estimates" / "fig_n" / "knn" / "seed1.parquet")
    x, y, _, _ = read_sample(tiny_run / "results" / "samples" / "gauss" / "seed1.parquet")
    r = rows.iloc[-1]
    assert r.estimate_nats == pytest.approx(knn_mi(x[: r.n], y[: r.n], k=r.k, p=r.p), abs=1e-12)

    # mean and band over the two seeds
    both = pd.concat([
        read_parquet(tiny_run / "results" / "estimates" / "fig_n" / "ksg1" / f"seed{s}.parquet")
        for s in (1, 2)
    ])
    pt = both[(both.n == 300) & (both.p == 2.0)]["estimate_nats"]
    row = agg[(agg.estimator == "ksg1") & (agg.n == 300) & (agg.p == 2.0)].iloc[0]
    assert row.estimate_mean_nats == pytest.approx(pt.mean())
    assert row.estimate_min_nats == pytest.approx(pt.min())
    assert row.estimate_std_nats == pytest.approx(pt.std(ddof=1))


def test_same_seed_same_artifacts(tiny_run, tmp_path):
    """A second run from scratch gives identical tables (timing columns aside) and samples."""
    snakemake(tmp_path)
    for rel in ["results/samples/gauss/seed1.parquet", "results/samples/lin/seed2.parquet"]:
        assert (tmp_path / rel).read_bytes() == (tiny_run / rel).read_bytes()
    for name in ("fig_n", "fig_k", "eps_lin"):
        a = read_parquet(tiny_run / "results" / "tables" / f"{name}.parquet")
        b = read_parquet(tmp_path / "results" / "tables" / f"{name}.parquet")
        pd.testing.assert_frame_equal(a.drop(columns="seconds_mean"), b.drop(columns="seconds_mean"))


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda c: c.__setitem__("seedz", [1]), "seedz"),
        (lambda c: c["experiments"]["fig_n"]["estimators"].__setitem__("kde", {}), "kde"),
        (lambda c: c["datasets"]["gauss"].__setitem__("family", "cauchy"), "cauchy"),
        (lambda c: c["experiments"]["fig_n"].__setitem__("p", [0.5]), "0.5"),
        (lambda c: c["datasets"]["lin"].__setitem__("alpha", 1.5), "alpha"),
        (lambda c: c["experiments"]["fig_k"].__setitem__("k", [60]), "k = 60"),
        (lambda c: c["experiments"]["fig_k"].__setitem__("dataset", "nope"), "nope"),
        (lambda c: c.__setitem__("seeds", [1.5]), "1.5"),
    ],
    ids=["typo-key", "unknown-estimator", "unknown-family", "p-below-1", "alpha-above-1",
         "k-not-below-n", "unknown-dataset", "non-integer-seed"],
)
def test_bad_config_stops_before_any_job(tmp_path, mutate, expected):
    bad = edited_config(tmp_path, mutate)
    out = snakemake(tmp_path, "-n", configfile=bad, check=False)
    assert out.returncode != 0
    assert expected in out.stdout + out.stderr
    assert not (tmp_path / "results").exists()
