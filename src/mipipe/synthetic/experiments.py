"""The synthetic benchmark's experiment logic: estimator grids, runs and aggregation.

An *experiment* (one figure or table of the thesis) fixes a data set and sweeps one
quantity (the sample size n, the dimension D or the tolerance eps) for a set of estimators,
each over a grid of its own parameters: k, p, correction, eps for the nearest-neighbour
estimators (kNN, KSG1, KSG2), and the critic width ``hidden``, ``lr``, ``epochs`` and
``batch_size`` for the neural ones (MINE, InfoNCE, NWJ; thesis section 4.2.2). The pipeline
runs one job per (experiment, estimator, seed): :func:`run_grid` evaluates that estimator
on every grid point, on prefixes of one cached sample (the first n rows and the first D
columns of X and of Y, as the thesis did), and returns one row per estimate (neural
estimators also return their training traces). Rows of every estimator share one schema
(:data:`RESULT_COLUMNS`): the other family's grid columns are missing values (NA).
:func:`aggregate` summarises the rows over seeds.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..estimators import knn_mi, ksg_mi
from ..estimators._validation import check_p
from ..estimators.neighbours import SERIAL_WORK, compile_tiled_kernels
from .scalable import (SCALABLE_LABELS, TARGET_COLUMN, is_scalable, run_scalable_grid,
                       scalable_grid)

# estimator name -> (function, fixed keyword arguments)
NN_ESTIMATORS = {
    "knn": (knn_mi, {}),
    "ksg1": (ksg_mi, {"variant": 1}),
    "ksg2": (ksg_mi, {"variant": 2}),
}
# neural estimator name -> its function in mipipe.estimators, resolved on first use (a
# callable may replace the name, e.g. in tests). Resolved lazily so that importing this
# module (the Snakefile does, to build the DAG) does not have to load the training code.
NEURAL_ESTIMATORS = {"mine": "mine_mi", "infonce": "infonce_mi", "nwj": "nwj_mi",
                     "smile": "smile_mi", "club": "club_mi"}
ESTIMATOR_LABELS = {"knn": "kNN", "ksg1": "KSG1", "ksg2": "KSG2", "mine": "MINE",
                    "infonce": "InfoNCE", "nwj": "NWJ", "smile": "SMILE",
                    "club": "CLUB (upper bound)", **SCALABLE_LABELS}
ESTIMATORS = tuple(ESTIMATOR_LABELS)
GRID_KEYS = ("k", "p", "correction", "eps")
DEFAULTS = {"k": [1], "p": [2.0], "correction": ["digamma"], "eps": [1e-10]}
# neural grid (lists) and options (one value per experiment and estimator); the defaults
# are the thesis's width-sweep protocol (section 4.2.2: h = 30, lr 0.005, 300 epochs,
# fixed unshuffled batches of 3334)
NEURAL_GRID_KEYS = ("hidden", "lr", "epochs", "batch_size")
NEURAL_DEFAULTS = {"hidden": [30], "lr": [0.005], "epochs": [300], "batch_size": [3334]}
NEURAL_OPTIONS = {"shuffle": False, "holdout": 0.0, "ema": None, "device": "auto"}
# Single-valued options of the nearest-neighbour estimators. An option left at its default is
# not put in the grid, so adding one never changes existing grids (nor reruns their jobs).
NN_OPTIONS = {"jitter": None}

# Task sweeps (``sweep: task``, the Beyond Normal suite, mipipe.synthetic.tasks) add the task id,
# X's and Y's dimensions (which may differ; thesis rows have dim_x = dim_y = D, task rows D = dim_x)
# and whether each variable was standardised per column before the estimator.
TASK_COLUMNS = ["task", "dim_x", "dim_y", "standardise"]
RESULT_COLUMNS = [
    "experiment", "dataset", "distribution", "estimator", "k", "p", "eps", "correction",
    "hidden", "lr", "epochs", "batch_size", "n", "D", "seed", "estimate_nats",
    "true_mi_nats", "seconds", "status", "error", "shuffle", "holdout", "ema", "device",
    *TASK_COLUMNS,
]
# one dtype per column, whichever estimator wrote the rows (NA where it does not apply),
# so that estimates of different estimators concatenate and compare exactly
COLUMN_DTYPES = {
    "k": "Int64", "p": "float64", "eps": "float64", "correction": "str",
    "hidden": "Int64", "lr": "float64", "epochs": "Int64", "batch_size": "Int64",
    "n": "int64", "D": "int64", "seed": "int64", "estimate_nats": "float64",
    "true_mi_nats": "float64", "seconds": "float64", "status": "str", "error": "str",
    "shuffle": "boolean", "holdout": "float64", "ema": "float64", "device": "str",
    "task": "str", "dim_x": "int64", "dim_y": "int64", "standardise": "bool",
}
TRACE_COLUMNS = [
    "experiment", "dataset", "distribution", "estimator", "hidden", "lr", "epochs",
    "batch_size", "n", "D", "seed", "step", "epoch", "batch", "estimate_nats", "loss",
    "heldout_nats", "true_mi_nats",
]


def is_neural(estimator: str) -> bool:
    """Whether ``estimator`` is one of the neural (variational lower bound) estimators."""
    return estimator in NEURAL_ESTIMATORS


def neural_function(estimator: str):
    """The training function of a neural estimator (e.g. ``mine_mi`` for "mine")."""
    func = NEURAL_ESTIMATORS[estimator]
    if isinstance(func, str):
        from .. import estimators

        func = getattr(estimators, func)
    return func


def _typed(df: pd.DataFrame, columns) -> pd.DataFrame:
    df = df.reindex(columns=columns)
    return df.astype({c: COLUMN_DTYPES[c] for c in columns if c in COLUMN_DTYPES})


def parse_p(p, name: str = "p") -> float:
    """A norm from config: a number >= 1, or inf (YAML ``.inf`` or the string "inf").

    :func:`mipipe.estimators._validation.check_p`, the parser every stage shares.
    """
    return check_p(p, name)


@dataclass(frozen=True)
class GridPoint:
    n: int
    D: int | None  # None: all columns (a task sample)
    k: int
    p: float
    correction: str
    eps: float


def estimator_grid(experiment: dict, estimator: str) -> dict:
    """The parameter lists of one estimator in one experiment.

    Experiment-level keys are defaults that the estimator's own entry overrides: ``k``,
    ``p``, ``correction``, ``eps`` (lists) and the option ``jitter`` (a single value, present
    only when set) for the nearest-neighbour estimators; ``hidden``, ``lr``,
    ``epochs``, ``batch_size`` (lists) and the options ``shuffle``, ``holdout``, ``device``
    (single values; ``ema``, MINE only, is set on the estimator) for the neural ones.
    Returns a plain dict (JSON-friendly, so the pipeline can pass it as a rule parameter
    and rerun exactly what changed): lists for the grid keys, values for the options.

    Raises
    ------
    ValueError
        ``estimator`` is not part of the experiment.
    """
    own = (experiment.get("estimators") or {}).get(estimator, ...)
    if own is ...:
        raise ValueError(
            f"estimator {estimator!r} is not part of this experiment; it has "
            f"{sorted((experiment.get('estimators') or {}))}"
        )
    if is_scalable(estimator):  # cca, sliced, ksliced, latent: single-valued options
        return scalable_grid(experiment, estimator)
    own = own or {}
    grid = {}
    if is_neural(estimator):
        for key in NEURAL_GRID_KEYS:
            values = own.get(key, experiment.get(key, NEURAL_DEFAULTS[key]))
            values = values if isinstance(values, list) else [values]
            grid[key] = [float(v) if key == "lr" else int(v) for v in values]
        for key, default in NEURAL_OPTIONS.items():
            value = own.get(key, experiment.get(key, default))
            grid[key] = float(value) if key in ("holdout", "ema") and value is not None else value
        return grid
    for key in GRID_KEYS:
        values = own.get(key, experiment.get(key, DEFAULTS[key]))
        if not isinstance(values, list):
            values = [values]
        if key == "p":
            values = [parse_p(v) for v in values]
        elif key == "eps":
            values = [float(v) for v in values]
        grid[key] = values
    for key, default in NN_OPTIONS.items():
        value = own.get(key, experiment.get(key, default))
        if value is not None:
            grid[key] = float(value)
    return grid


def grid_size(grid: dict) -> int:
    """Number of estimates per (n, D) of a grid from :func:`estimator_grid`."""
    if "options" in grid:  # a scalable estimator: one estimate per (n, D)
        return 1
    keys = NEURAL_GRID_KEYS if "hidden" in grid else GRID_KEYS
    return math.prod(len(grid[key]) for key in keys)


def iter_grid(grid: dict, n_values, D_values):
    for D, n, k, p, corr, eps in itertools.product(
        D_values, n_values, grid["k"], grid["p"], grid["correction"], grid["eps"]
    ):
        yield GridPoint(int(n), None if D is None else int(D), int(k), float(p), str(corr), float(eps))


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
    standardise: bool = False,
) -> pd.DataFrame:
    """Evaluate one estimator on every grid point; one row per estimate.

    Parameters
    ----------
    x, y : (n_max, d) float arrays, the cached sample (rows and columns are used as prefixes).
    true_mi : (d + 1,) array, analytic MI in nats of the first D coordinates.
    estimator : "knn", "ksg1" or "ksg2".
    grid : from :func:`estimator_grid`. Its ``jitter``, if set, is passed to the estimator
        with ``seed = labels["seed"]`` (see :func:`mipipe.estimators.knn_mi`).
    n_values, D_values : the sample sizes and dimensions to use (each <= the sample's).
        ``D_values=None``: all columns of x and of y (a task sample, whose dims may differ;
        ``true_mi[-1]`` is its MI).
    labels : the identifying columns copied into every row (experiment, dataset,
        distribution, seed; task for task samples).
    workers : threads for the neighbour search.
    progress : optional callable(done, total, row) for logging.
    standardise : z-score each column of the n rows used before estimating (recorded in the
        ``standardise`` column).

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
    if estimator in NEURAL_ESTIMATORS:
        raise ValueError(f"{estimator!r} is a neural estimator: use run_neural_grid")
    if estimator not in NN_ESTIMATORS:
        raise ValueError(f"unknown estimator {estimator!r}; known: {sorted(ESTIMATORS)}")
    func, fixed = NN_ESTIMATORS[estimator]
    _check_prefixes(x, n_values, D_values)
    points = list(iter_grid(grid, n_values, D_values or [None]))
    if points:
        big = any(q.n * q.n * (2 * q.D if q.D else x.shape[1] + y.shape[1]) >= SERIAL_WORK
                  for q in points)
        _warm_up(func, fixed, x, y, points[0], workers, parallel_kernels=big)
    # jitter (repeated points, e.g. float32-rounded draws): seeded by the sample's seed
    jitter = {}
    if grid.get("jitter") is not None:
        jitter = {"jitter": grid["jitter"], "seed": int(labels.get("seed", 0))}
    rows = []
    for i, pt in enumerate(points):
        t0 = time.perf_counter()
        xs, ys, truth = _slice(x, y, true_mi, pt.n, pt.D, standardise)
        try:
            est = func(xs, ys, k=pt.k, p=pt.p, correction=pt.correction, eps=pt.eps,
                       workers=workers, **jitter, **fixed)
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
            **_dims(x, y, pt.D),
            "estimate_nats": float(est),
            "true_mi_nats": truth,
            "seconds": seconds,
            "status": status,
            "error": error,
            "standardise": bool(standardise),
        }
        rows.append(row)
        if progress is not None:
            progress(i + 1, len(points), row)
    return _typed(pd.DataFrame(rows), RESULT_COLUMNS)


def standardised(a: np.ndarray) -> np.ndarray:
    """Each column minus its mean, divided by its standard deviation (ddof = 0), as bmi and
    scikit-learn's ``mutual_info_regression`` scale before KSG; constant columns are only
    centred. Shape (n, d) -> (n, d)."""
    a = np.asarray(a, dtype=np.float64)
    sd = a.std(axis=0)
    return (a - a.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def _slice(x, y, true_mi, n, D, standardise):
    """The first n rows (and, for D not None, the first D columns) of x and y, standardised if
    asked, and their true MI: ``true_mi[D]``, or for a task sample (D None) its last entry."""
    xs, ys = (x[:n], y[:n]) if D is None else (x[:n, :D], y[:n, :D])
    if standardise:
        xs, ys = standardised(xs), standardised(ys)
    return xs, ys, float(true_mi[-1] if D is None else true_mi[D])


def _dims(x, y, D):
    """Row columns D, dim_x, dim_y: thesis prefixes (D) or a task's full widths (D None)."""
    if D is None:
        return {"D": x.shape[1], "dim_x": x.shape[1], "dim_y": y.shape[1]}
    return {"D": D, "dim_x": D, "dim_y": D}


def _check_prefixes(x: np.ndarray, n_values, D_values) -> None:
    n_max, d = x.shape
    for n in n_values:
        if not 1 <= int(n) <= n_max:
            raise ValueError(f"n = {n} is outside the cached sample's 1..{n_max} rows")
    for D in D_values or ():
        if not 1 <= int(D) <= d:
            raise ValueError(f"D = {D} is outside the sample's 1..{d} dimensions")


@dataclass(frozen=True)
class NeuralRun:
    """What :func:`run_neural_grid` returns: one row per estimate, one trace row per step."""

    rows: pd.DataFrame
    traces: pd.DataFrame


def run_neural_grid(
    x: np.ndarray,
    y: np.ndarray,
    true_mi: np.ndarray,
    estimator: str,
    grid: dict,
    n_values,
    D_values,
    *,
    labels: dict,
    threads: int | None = None,
    progress=None,
    progress_bar: bool = False,
    standardise: bool = False,
) -> NeuralRun:
    """Train one neural estimator on every grid point; its estimates and training traces.

    For each (D, n, hidden, lr, epochs, batch_size) the critic is trained on the first n
    rows and D columns of x and y (thesis section 4.2.2: Adam, fixed batches, the estimate
    is the mean of the last 20 per-batch bounds), with the options of ``grid`` (shuffle,
    holdout, ema, device) and the sample's seed (``labels["seed"]``) as the training seed,
    so the same sample and grid give the same rows and traces on CPU.

    Parameters
    ----------
    x, y : (n_max, d) float arrays, the cached sample.
    true_mi : (d + 1,) array, analytic MI in nats of the first D coordinates.
    estimator : "mine", "infonce" or "nwj".
    grid : from :func:`estimator_grid`.
    n_values, D_values : sample sizes and dimensions (each <= the sample's); ``D_values=None``
        uses all columns of x and of y (a task sample, see :func:`run_grid`).
    labels : identifying columns copied into every row (experiment, dataset,
        distribution, seed).
    standardise : z-score each column of the rows used before training.
    threads : PyTorch's intra-op threads while training (None: leave as is).
    progress : optional callable(done, total, row), called after each grid point.
    progress_bar : show a tqdm bar (on stderr, with the current estimate) while training.

    Returns
    -------
    NeuralRun
        ``rows``: DataFrame with :data:`RESULT_COLUMNS` (k, p, eps, correction are NA;
        ``device`` is the device actually used). A grid point whose training raises or
        ends non-finite is a row with ``status = "failed"`` and the message in ``error``.
        ``traces``: DataFrame with :data:`TRACE_COLUMNS`, one row per training step of
        every grid point (``estimate_nats`` is the bound on that step's batch before the
        update, in nats; ``heldout_nats`` is NaN unless holdout > 0).

    Raises
    ------
    ValueError
        Unknown estimator; n or D larger than the sample.
    """
    if estimator not in NEURAL_ESTIMATORS:
        raise ValueError(
            f"unknown neural estimator {estimator!r}; known: {sorted(NEURAL_ESTIMATORS)}"
        )
    _check_prefixes(x, n_values, D_values)
    func = neural_function(estimator)
    options = {key: grid.get(key, default) for key, default in NEURAL_OPTIONS.items()}
    kwargs = {k: v for k, v in options.items() if v is not None or k != "ema"}
    if estimator != "mine":
        kwargs.pop("ema", None)
    points = list(itertools.product(
        D_values or [None], n_values, *(grid[key] for key in NEURAL_GRID_KEYS)
    ))
    rows, traces = [], []
    old_threads = None
    if threads is not None:
        import numba
        import torch

        old_threads = torch.get_num_threads(), numba.get_num_threads()
        torch.set_num_threads(max(int(threads), 1))
        # the fused InfoNCE kernels are numba-parallel: hold them to the job's threads too
        numba.set_num_threads(min(max(int(threads), 1), numba.config.NUMBA_NUM_THREADS))
    try:
        for i, (D, n, hidden, lr, epochs, batch_size) in enumerate(points):
            point = {"hidden": int(hidden), "lr": float(lr), "epochs": int(epochs),
                     "batch_size": int(batch_size), "n": int(n),
                     **_dims(x, y, None if D is None else int(D))}
            t0 = time.perf_counter()
            device = options["device"]
            xs, ys, truth = _slice(x, y, true_mi, point["n"], D, standardise)
            try:
                res = func(xs, ys, hidden=point["hidden"], lr=point["lr"], epochs=point["epochs"],
                           batch_size=point["batch_size"], seed=int(labels.get("seed", 0)),
                           progress=progress_bar, **kwargs)
                est, device = float(res.estimate), res.device
                status, error = "ok", ""
                if not math.isfinite(est):
                    status, error = "failed", f"non-finite estimate {est!r}"
                trace = res.trace.assign(**labels, estimator=estimator, **point,
                                         true_mi_nats=truth)
                traces.append(trace)
            except Exception as exc:  # recorded, so one diverging point does not sink the run
                est, status, error = math.nan, "failed", f"{type(exc).__name__}: {exc}"
            row = {
                **labels, "estimator": estimator, **point, "estimate_nats": est,
                "true_mi_nats": truth, "standardise": bool(standardise),
                "seconds": time.perf_counter() - t0, "status": status, "error": error,
                "shuffle": bool(options["shuffle"]), "holdout": float(options["holdout"]),
                "ema": options["ema"] if estimator == "mine" else None, "device": device,
            }
            rows.append(row)
            if progress is not None:
                progress(i + 1, len(points), row)
    finally:
        if old_threads is not None:
            torch.set_num_threads(old_threads[0])
            numba.set_num_threads(old_threads[1])
    rows = _typed(pd.DataFrame(rows), RESULT_COLUMNS)
    trace_df = (pd.concat(traces, ignore_index=True) if traces
                else pd.DataFrame(columns=TRACE_COLUMNS))
    trace_df = _typed(trace_df, TRACE_COLUMNS).astype(
        {"step": "int64", "epoch": "int64", "batch": "int64", "estimate_nats": "float64",
         "loss": "float64", "heldout_nats": "float64"}
    )
    return NeuralRun(rows, trace_df)


def run_task_suite(
    samples,
    estimator: str,
    grid: dict,
    n_values,
    *,
    labels: dict,
    standardise: bool = True,
    workers: int = -1,
    threads: int | None = None,
    progress=None,
    progress_bar: bool = False,
) -> NeuralRun:
    """Run one estimator over its grid on every task sample of a task sweep (``sweep: task``).

    Each sample is estimated on its first n rows and all its columns (dim_x and dim_y may differ),
    by :func:`run_grid` (nearest-neighbour estimators), :func:`run_neural_grid` (neural ones)
    or :func:`mipipe.synthetic.scalable.run_scalable_grid` (cca, sliced, ksliced, latent; their
    rows also carry ``true_target_nats``, NaN on tasks).

    Parameters
    ----------
    samples : iterable of ``(x, y, true_mi, params)`` as :func:`mipipe.io.read_sample` returns
        them for a task sample: x (n_max, dim_x), y (n_max, dim_y), true_mi (1,) nats, params
        with ``task`` (bmi's id) and ``family``.
    estimator, grid : as for :func:`run_grid` / :func:`run_neural_grid`.
    n_values : sample sizes (each <= every sample's rows).
    labels : identifying columns (experiment, seed); ``dataset`` and ``task`` are set to the
        task id and ``distribution`` to its family.
    standardise : z-score each variable's columns before the estimator (default on, as bmi).
    workers, threads, progress, progress_bar : passed on.

    Returns
    -------
    NeuralRun
        ``rows`` with :data:`RESULT_COLUMNS` (one per task and grid point; failures are rows
        with ``status = "failed"``); ``traces`` (neural estimators only, else empty).

    Raises
    ------
    ValueError
        Unknown estimator; n larger than a sample.
    """
    rows, traces = [], []
    for x, y, true_mi, params in samples:
        task_labels = {**labels, "dataset": params["task"], "distribution": params["family"],
                       "task": params["task"]}
        if is_scalable(estimator):
            rows.append(run_scalable_grid(x, y, true_mi, estimator, grid, n_values, None,
                                          labels=task_labels, params=params, threads=threads,
                                          progress=progress, standardise=standardise))
        elif is_neural(estimator):
            out = run_neural_grid(x, y, true_mi, estimator, grid, n_values, None,
                                  labels=task_labels, threads=threads, progress=progress,
                                  progress_bar=progress_bar, standardise=standardise)
            rows.append(out.rows)
            traces.append(out.traces)
        else:
            rows.append(run_grid(x, y, true_mi, estimator, grid, n_values, None,
                                 labels=task_labels, workers=workers, progress=progress,
                                 standardise=standardise))
    columns = [*RESULT_COLUMNS, TARGET_COLUMN] if is_scalable(estimator) else RESULT_COLUMNS
    rows = _typed(pd.concat(rows, ignore_index=True), columns)
    trace_df = (pd.concat(traces, ignore_index=True) if traces
                else _typed(pd.DataFrame(columns=TRACE_COLUMNS), TRACE_COLUMNS))
    return NeuralRun(rows, trace_df)


def _warm_up(func, fixed, x, y, pt, workers, parallel_kernels=False) -> None:
    """Run the estimator once on a small slice so that numba's one-off compilation (or the
    loading of its cache) is not counted in the first grid point's ``seconds``; with
    ``parallel_kernels`` (some grid point is large enough for them) also KSG's parallel
    tiled kernels, which a small slice does not reach."""
    m = min(x.shape[0], max(2 * pt.k + 2, 64))
    try:
        func(x[:m, : pt.D], y[:m, : pt.D], k=pt.k, p=pt.p, correction=pt.correction,
             eps=pt.eps, workers=workers, **fixed)
        if parallel_kernels and func is ksg_mi:  # the slice ran the serial copies only
            compile_tiled_kernels(pt.p, workers)
    except Exception:  # the real call records any error
        pass


GROUP_COLUMNS = ["experiment", "dataset", "distribution", "task", "dim_x", "dim_y", "estimator",
                 "k", "p", "eps", "correction", "hidden", "lr", "epochs", "batch_size", "n", "D",
                 "standardise"]


def aggregate(rows: pd.DataFrame) -> pd.DataFrame:
    """Summarise estimates over seeds, one row per grid point.

    Columns: the grid columns, ``n_seeds`` (seeds with a successful estimate),
    ``n_failed`` (seeds whose estimate failed), ``true_mi_nats`` (mean over seeds; seeds
    share the covariance, so it is constant), ``estimate_mean_nats``,
    ``estimate_std_nats`` (sample std, ddof = 1; NaN for one seed), ``bias_nats``
    (mean - true), ``estimate_min_nats``, ``estimate_max_nats``, ``seconds_mean`` and
    ``error`` (the first failure's message, "" if none). Failed estimates are left out of
    the statistics. With rows of a sliced estimator, ``true_target_nats``: the mean of
    their own truth (the sliced MI over the drawn directions; NaN for the others).
    """
    # estimates written before the neural (or task) columns existed lack them
    rows = rows.copy()
    if "dim_x" not in rows or rows["dim_x"].isna().any():
        for col in ("dim_x", "dim_y"):
            rows[col] = rows[col].fillna(rows["D"]) if col in rows else rows["D"]
    rows["standardise"] = rows["standardise"].fillna(False) if "standardise" in rows else False
    rows = _typed(rows, list(dict.fromkeys([*RESULT_COLUMNS, *rows.columns])))
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
        **({TARGET_COLUMN: (TARGET_COLUMN, "mean")} if TARGET_COLUMN in rows else {}),
    ).reset_index()
    out.insert(out.columns.get_loc("estimate_std_nats") + 1, "bias_nats",
               out["estimate_mean_nats"] - out["true_mi_nats"])
    return out


def failures(rows: pd.DataFrame) -> pd.DataFrame:
    """The failed rows of an estimates table (status != "ok")."""
    return rows[rows["status"] != "ok"].reset_index(drop=True)


class EstimatesFailed(RuntimeError):
    """Some estimates of the benchmark failed and the config does not allow failures."""


def check_failures(failed: pd.DataFrame, allow_failures: bool,
                   table: str = "results/tables/failures.csv") -> str:
    """Summarise the failed rows (status != "ok") of a stage; raise :class:`EstimatesFailed`
    if there are any and failures are not allowed. Returns the summary line otherwise.

    The one failure check of every stage: the synthetic benchmark (``failed`` = its failure
    table) and dataset inference (its MI rows; ``table`` names the file that lists them)."""
    if "status" in failed.columns:
        failed = failures(failed)
    if failed.empty:
        return "no estimate failed"
    cols = [c for c in ("experiment", "estimator", "reference", "other", "role", "seed", "n",
                        "N", "D", "k", "p", "hidden", "lr", "epochs", "error")
            if c in failed.columns]
    listing = failed[cols].head(10).to_string(index=False)
    summary = (
        f"{len(failed)} estimate(s) failed (all are listed in {table}; "
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
