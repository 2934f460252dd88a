"""The estimators past the kNN collapse in the synthetic benchmark (issue 14): Gaussian/CCA,
sliced, k-sliced and latent MI. One row per (n, D) grid point, the same result columns as the
nearest-neighbour and neural estimators plus ``true_target_nats``: the true value of what the
estimator estimates where that is not I(X; Y) -- the sliced (k-sliced) MI of the Gaussian
families over the drawn directions (:func:`true_sliced_mi`); NaN where the estimator targets
I(X; Y) itself or the family has no closed form (the linear family).

Each estimator has single-valued options (no grid), set on its config entry; the defaults
are those of the functions in :mod:`mipipe.estimators`. CLUB and SMILE are neural
estimators and run through :func:`mipipe.experiments.run_neural_grid`.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd

# estimator -> (function in mipipe.estimators, its options with their defaults)
SCALABLE_ESTIMATORS = {
    "cca": ("cca_mi", {}),
    "sliced": ("sliced_mi", {"n_slices": 128, "k": 3}),
    "ksliced": ("ksliced_mi", {"dim": 2, "n_slices": 64, "k": 3}),
    "latent": ("latent_mi", {"latent_dim": 8, "width": None, "lr": 1e-4, "epochs": 300,
                             "patience": 30, "batch_size": 512}),
}
SCALABLE_LABELS = {"cca": "Gaussian (CCA)", "sliced": "sliced MI", "ksliced": "k-sliced MI",
                   "latent": "latent MI"}
SLICED = ("sliced", "ksliced")
TARGET_COLUMN = "true_target_nats"


def is_scalable(estimator: str) -> bool:
    """Whether ``estimator`` is one of :data:`SCALABLE_ESTIMATORS`."""
    return estimator in SCALABLE_ESTIMATORS


def scalable_grid(experiment: dict, estimator: str) -> dict:
    """The options of one scalable estimator in one experiment: its defaults overridden by
    its own config entry (``{"options": {...}}``, JSON-friendly). Unknown keys raise
    ValueError naming them (the config check reports them first)."""
    own = (experiment.get("estimators") or {}).get(estimator) or {}
    defaults = SCALABLE_ESTIMATORS[estimator][1]
    unknown = sorted(set(own) - set(defaults))
    if unknown:
        raise ValueError(
            f"estimator {estimator!r} has no option(s) {unknown}; it takes {sorted(defaults)}"
        )
    return {"options": {key: own.get(key, default) for key, default in defaults.items()}}


def sample_covariance(params: dict, D: int) -> np.ndarray | None:
    """The (2D, 2D) covariance of the first D coordinates of X and of Y for the Gaussian
    families (``params`` as :func:`mipipe.distributions.draw_sample` returns them; the last
    ``noise_dims`` coordinates are independent N(0, 1)); None for the linear family."""
    from .families import beta_cholesky_factor, random_cholesky_covariance

    family = params.get("family")
    d = int(params["d"])
    s = int(params.get("signal_dims", d - int(params.get("noise_dims") or 0)))
    if family == "gaussian_beta":
        L = beta_cholesky_factor(s, float(params["beta"]))
        signal = L @ L.T
    elif family == "gaussian_cholesky":
        signal = random_cholesky_covariance(s, int(params["cov_seed"]))
    else:
        return None
    full = np.eye(2 * d)
    idx = np.r_[0:s, d:d + s]
    full[np.ix_(idx, idx)] = signal
    keep = np.r_[0:D, d:d + D]
    return full[np.ix_(keep, keep)]


def true_sliced_mi(cov, dx: int, *, n_slices: int, dim: int = 1, seed: int = 0) -> float:
    """True sliced (dim = 1) or k-sliced MI (nats) of a Gaussian with covariance ``cov``
    ((dx + dy, dx + dy), X first) over the frames that :func:`mipipe.estimators.ksliced_mi`
    draws with the same ``n_slices``, ``dim`` and ``seed``: the exact mean of the slice MIs
    -1/2 log(1 - rho^2) (Goldfeld & Greenewald 2021; k-sliced: the Gaussian MI of each
    projected covariance). Not I(X; Y)."""
    from ..estimators import gaussian_sliced_mi, slice_frames

    cov = np.asarray(cov, dtype=np.float64)
    frames = slice_frames(dx, cov.shape[0] - dx, n_slices, dim, seed)
    return float(gaussian_sliced_mi(cov, dx, *frames).mean())


def _call(estimator, x, y, options, seed, threads):
    from .. import estimators

    func = getattr(estimators, SCALABLE_ESTIMATORS[estimator][0])
    if estimator == "cca":
        return float(func(x, y))
    if estimator in SLICED:
        opts = dict(options)
        if estimator == "ksliced":
            # D = 1 (or a 1-D task variable): a 1-D frame
            opts["dim"] = min(int(opts["dim"]), x.shape[1], y.shape[1])
        return float(func(x, y, seed=seed, **opts))
    return float(func(x, y, seed=seed, threads=threads, **options))


def run_scalable_grid(
    x: np.ndarray,
    y: np.ndarray,
    true_mi: np.ndarray,
    estimator: str,
    grid: dict,
    n_values,
    D_values,
    *,
    labels: dict,
    params: dict | None = None,
    threads: int | None = None,
    progress=None,
    standardise: bool = False,
) -> pd.DataFrame:
    """Evaluate one scalable estimator at every (D, n); one row per estimate.

    Parameters
    ----------
    x, y : (n_max, d) cached sample (prefixes of rows and columns are used); for a task
        sample (``D_values=None``) x (n_max, dim_x) and y (n_max, dim_y) are used whole.
    true_mi : (d + 1,) analytic MI (nats) of the first D coordinates; for a task sample, (1,).
    D_values : prefix widths, or None for a task sample (all columns, dim_x may differ from
        dim_y; no sliced truth: ``true_target_nats`` is NaN).
    estimator : "cca", "sliced", "ksliced" or "latent".
    grid : from :func:`scalable_grid`.
    labels : experiment, dataset, distribution, seed (the seed also draws the slices and
        seeds latent MI's training).
    params : the sample's parameters (:func:`mipipe.io.read_sample`); with a Gaussian
        family the sliced estimators' rows get their exact truth in ``true_target_nats``.
    threads : torch threads for latent MI.
    standardise : z-score each variable's columns first (the task suite's default).

    Returns
    -------
    DataFrame with :data:`mipipe.experiments.RESULT_COLUMNS` + ``true_target_nats`` (``k``
    is set for the sliced ones). A failing point is a ``status = "failed"`` row with the
    error, as in :func:`mipipe.experiments.run_grid`.

    Raises
    ------
    ValueError
        Unknown estimator; n or D larger than the sample.
    """
    from .experiments import RESULT_COLUMNS, _check_prefixes, _dims, _slice, _typed

    if not is_scalable(estimator):
        raise ValueError(f"unknown estimator {estimator!r}; known: {sorted(SCALABLE_ESTIMATORS)}")
    _check_prefixes(x, n_values, D_values)
    options = grid["options"]
    seed = int(labels.get("seed", 0))
    rows = []
    points = [(None if D is None else int(D), int(n))
              for D in (D_values if D_values is not None else [None]) for n in n_values]
    for i, (D, n) in enumerate(points):
        target = math.nan
        xs, ys, truth = _slice(x, y, true_mi, n, D, standardise)
        if estimator in SLICED and params and D is not None:
            cov = sample_covariance(params, D)
            if cov is not None:
                dim = 1 if estimator == "sliced" else min(int(options["dim"]), D)
                target = true_sliced_mi(cov, D, n_slices=int(options["n_slices"]), dim=dim,
                                        seed=seed)
        t0 = time.perf_counter()
        try:
            est = _call(estimator, xs, ys, options, seed, threads)
            status, error = "ok", ""
            if not math.isfinite(est):
                status, error = "failed", f"non-finite estimate {est!r}"
        except Exception as exc:  # recorded, so one bad grid point does not sink the run
            est, status, error = math.nan, "failed", f"{type(exc).__name__}: {exc}"
        row = {**labels, "estimator": estimator, "n": n, **_dims(x, y, D),
               "standardise": bool(standardise), "estimate_nats": est,
               "true_mi_nats": truth, TARGET_COLUMN: target,
               "seconds": time.perf_counter() - t0, "status": status, "error": error}
        if estimator in SLICED:
            row["k"] = int(options["k"])
        rows.append(row)
        if progress is not None:
            progress(i + 1, len(points), row)
    return _typed(pd.DataFrame(rows), [*RESULT_COLUMNS, TARGET_COLUMN]).astype(
        {TARGET_COLUMN: "float64"}
    )
