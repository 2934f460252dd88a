"""The synthetic benchmark's experiment logic: estimator grids, runs and aggregation.

An *experiment* (one figure or table of the thesis) fixes a data set and sweeps one
quantity (the sample size n, the dimension D or the tolerance eps) for a set of estimators,
each over a grid of its own parameters (k, p, correction, eps). The pipeline runs one job
per (experiment, estimator, seed): :func:`run_grid` evaluates that estimator on every grid
point, on prefixes of one cached sample (the first n rows and the first D columns of X and
of Y, as the thesis did), and returns one row per estimate. :func:`aggregate` summarises the
rows over seeds.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .estimators import knn_mi, ksg_mi

# estimator name -> (function, fixed keyword arguments)
NN_ESTIMATORS = {
    "knn": (knn_mi, {}),
    "ksg1": (ksg_mi, {"variant": 1}),
    "ksg2": (ksg_mi, {"variant": 2}),
}
ESTIMATOR_LABELS = {"knn": "kNN", "ksg1": "KSG1", "ksg2": "KSG2"}
GRID_KEYS = ("k", "p", "correction", "eps")
DEFAULTS = {"k": [1], "p": [2.0], "correction": ["digamma"], "eps": [1e-10]}

RESULT_COLUMNS = [
    "experiment", "dataset", "distribution", "estimator", "k", "p", "eps", "correction",
    "n", "D", "seed", "estimate_nats", "true_mi_nats", "seconds", "status", "error",
]


def parse_p(p) -> float:
    """A norm from config: a number >= 1, or inf (YAML ``.inf`` or the string "inf")."""
    if isinstance(p, str):
        if p.strip().lower() in ("inf", ".inf", "infinity", "max"):
            return math.inf
        raise ValueError(f"p must be a number >= 1 or 'inf', got {p!r}")
    return float(p)


@dataclass(frozen=True)
class GridPoint:
    n: int
    D: int
    k: int
    p: float
    correction: str
    eps: float


def estimator_grid(experiment: dict, estimator: str) -> dict:
    """The parameter lists of one estimator in one experiment.

    Experiment-level keys (``k``, ``p``, ``correction``, ``eps``) are defaults that the
    estimator's own entry overrides. Returns a plain dict of lists (JSON-friendly, so the
    pipeline can pass it as a rule parameter and rerun exactly what changed).
    """
    own = (experiment.get("estimators") or {}).get(estimator)
    if own is None:
        raise ValueError(
            f"estimator {estimator!r} is not part of this experiment; it has "
            f"{sorted((experiment.get('estimators') or {}))}"
        )
    grid = {}
    for key in GRID_KEYS:
        values = own.get(key, experiment.get(key, DEFAULTS[key]))
        if not isinstance(values, list):
            values = [values]
        if key == "p":
            values = [parse_p(v) for v in values]
        elif key == "eps":
            values = [float(v) for v in values]
        grid[key] = values
    return grid


def iter_grid(grid: dict, n_values, D_values):
    for D, n, k, p, corr, eps in itertools.product(
        D_values, n_values, grid["k"], grid["p"], grid["correction"], grid["eps"]
    ):
        yield GridPoint(int(n), int(D), int(k), float(p), str(corr), float(eps))


def run_grid(
    x: np.ndarray,
    y: np.ndarray,
    true_mi: np.ndarray,
    estimator: str,
    grid: dict,
    n_values,
    D_values,
    *,
    labels: dict,
    workers: int = -1,
    progress=None,
) -> pd.DataFrame:
    """Evaluate one estimator on every grid point; one row per estimate.

    Parameters
    ----------
    x, y : (n_max, d) float arrays, the cached sample (rows and columns are used as prefixes).
    true_mi : (d + 1,) array, analytic MI in nats of the first D coordinates.
    estimator : "knn", "ksg1" or "ksg2".
    grid : from :func:`estimator_grid`.
    n_values, D_values : the sample sizes and dimensions to use (each <= the sample's).
    labels : the identifying columns copied into every row (experiment, dataset,
        distribution, seed).
    workers : threads for the neighbour search.
    progress : optional callable(done, total, row) for logging.

    Returns
    -------
    DataFrame with :data:`RESULT_COLUMNS`; estimates and true MI in nats. A grid point
    whose estimator raises (or returns a non-finite value) becomes a row with
    ``status = "failed"``, ``estimate_nats = NaN`` and the error message in ``error``;
    the other points still run.

    Raises
    ------
    ValueError
        Unknown estimator; n or D larger than the sample.
    """
    if estimator not in NN_ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; known: {sorted(NN_ESTIMATORS)}")
    func, fixed = NN_ESTIMATORS[estimator]
    n_max, d = x.shape
    for n in n_values:
        if not 1 <= int(n) <= n_max:
            raise ValueError(f"n = {n} is outside the cached sample's 1..{n_max} rows")
    for D in D_values:
        if not 1 <= int(D) <= d:
            raise ValueError(f"D = {D} is outside the sample's 1..{d} dimensions")
    points = list(iter_grid(grid, n_values, D_values))
    if points:
        _warm_up(func, fixed, x, y, points[0], workers)
    rows = []
    for i, pt in enumerate(points):
        xs = x[: pt.n, : pt.D]
        ys = y[: pt.n, : pt.D]
        t0 = time.perf_counter()
        try:
            est = func(xs, ys, k=pt.k, p=pt.p, correction=pt.correction, eps=pt.eps,
                       workers=workers, **fixed)
            status, error = "ok", ""
            if not math.isfinite(est):
                status, error = "failed", f"non-finite estimate {est!r}"
        except Exception as exc:  # recorded, so one bad grid point does not sink the run
            est, status, error = math.nan, "failed", f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - t0
        row = {
            **labels,
            "estimator": estimator,
            "k": pt.k,
            "p": pt.p,
            "eps": pt.eps,
            "correction": pt.correction,
            "n": pt.n,
            "D": pt.D,
            "estimate_nats": float(est),
            "true_mi_nats": float(true_mi[pt.D]),
            "seconds": seconds,
            "status": status,
            "error": error,
        }
        rows.append(row)
        if progress is not None:
            progress(i + 1, len(points), row)
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def _warm_up(func, fixed, x, y, pt, workers) -> None:
    """Run the estimator once on a small slice so that numba's one-off compilation (or the
    loading of its cache) is not counted in the first grid point's ``seconds``."""
    m = min(x.shape[0], max(2 * pt.k + 2, 64))
    try:
        func(x[:m, : pt.D], y[:m, : pt.D], k=pt.k, p=pt.p, correction=pt.correction,
             eps=pt.eps, workers=workers, **fixed)
    except Exception:  # the real call records any error
        pass


GROUP_COLUMNS = ["experiment", "dataset", "distribution", "estimator", "k", "p", "eps",
                 "correction", "n", "D"]


def aggregate(rows: pd.DataFrame) -> pd.DataFrame:
    """Summarise estimates over seeds, one row per grid point.

    Columns: the grid columns, ``n_seeds`` (seeds with a successful estimate),
    ``n_failed`` (seeds whose estimate failed), ``true_mi_nats`` (mean over seeds; seeds
    share the covariance, so it is constant), ``estimate_mean_nats``,
    ``estimate_std_nats`` (sample std, ddof = 1; NaN for one seed), ``bias_nats``
    (mean - true), ``estimate_min_nats``, ``estimate_max_nats``, ``seconds_mean`` and
    ``error`` (the first failure's message, "" if none). Failed estimates are left out of
    the statistics.
    """
    rows = rows.assign(
        _ok=(rows["status"] == "ok").astype(int), _failed=(rows["status"] != "ok").astype(int)
    )
    g = rows.groupby(GROUP_COLUMNS, sort=True, dropna=False)
    out = g.agg(
        n_seeds=("_ok", "sum"),
        n_failed=("_failed", "sum"),
        true_mi_nats=("true_mi_nats", "mean"),
        estimate_mean_nats=("estimate_nats", "mean"),
        estimate_std_nats=("estimate_nats", "std"),
        estimate_min_nats=("estimate_nats", "min"),
        estimate_max_nats=("estimate_nats", "max"),
        seconds_mean=("seconds", "mean"),
        error=("error", lambda e: next((m for m in e if m), "")),
    ).reset_index()
    out.insert(out.columns.get_loc("estimate_std_nats") + 1, "bias_nats",
               out["estimate_mean_nats"] - out["true_mi_nats"])
    return out


def failures(rows: pd.DataFrame) -> pd.DataFrame:
    """The failed rows of an estimates table (status != "ok")."""
    return rows[rows["status"] != "ok"].reset_index(drop=True)


class EstimatesFailed(RuntimeError):
    """Some estimates of the benchmark failed and the config does not allow failures."""


def check_failures(failed: pd.DataFrame, allow_failures: bool) -> str:
    """Summarise the failure table; raise :class:`EstimatesFailed` if it is not empty and
    failures are not allowed. Returns the summary line otherwise."""
    if failed.empty:
        return "no estimate failed"
    cols = ["experiment", "estimator", "seed", "n", "D", "k", "p", "error"]
    listing = failed[cols].head(10).to_string(index=False)
    summary = (
        f"{len(failed)} estimate(s) failed (all are listed in results/tables/failures.csv; "
        f"every other estimate, table and figure was written):\n{listing}"
    )
    if not allow_failures:
        raise EstimatesFailed(summary + "\nSet allow_failures: true in the config to accept them.")
    return summary + "\n(allowed by allow_failures: true)"


def eps_sensitivity(agg: pd.DataFrame) -> pd.DataFrame:
    """For eps sweeps: the spread of each estimator's mean estimate across eps values.

    One row per (dataset, estimator, k, p, correction, n, D) with the smallest and largest
    eps tried, the estimate at each end, and ``max_abs_change_nats`` = max - min of the
    estimates over eps.
    """
    keys = ["dataset", "distribution", "estimator", "k", "p", "correction", "n", "D"]
    rows = []
    for key, grp in agg.groupby(keys, sort=True):
        grp = grp.sort_values("eps")
        est = grp["estimate_mean_nats"].to_numpy()
        rows.append({
            **dict(zip(keys, key)),
            "eps_values": ", ".join(f"{e:.0e}" for e in grp["eps"]),
            "true_mi_nats": float(grp["true_mi_nats"].iloc[0]),
            "estimate_at_min_eps_nats": float(est[0]),
            "estimate_at_max_eps_nats": float(est[-1]),
            "max_abs_change_nats": float(est.max() - est.min()),
        })
    return pd.DataFrame(rows)
