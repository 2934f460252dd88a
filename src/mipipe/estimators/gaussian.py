"""The Gaussian (CCA) MI estimator: the MI of the Gaussian with the sample covariance.

For jointly Gaussian (X, Y) with covariance S = [[S_xx, S_xy], [S_yx, S_yy]],
I(X; Y) = 1/2 (log det S_xx + log det S_yy - log det S) = -1/2 sum_i log(1 - rho_i^2), rho_i
the canonical correlations (Cover & Thomas 2006, eq. 8.56 with h(X) = 1/2 log det(2 pi e S);
bmi's "CCA" baseline, Czyz et al. 2023). Exact in the large-sample limit for Gaussian data;
for other data it measures only the linear (second-moment) dependence. Units: nats.
"""

from __future__ import annotations

import numpy as np

from . import _validation as v

__all__ = ["cca_mi", "gaussian_mi_from_cov"]


def _logdet(cov: np.ndarray, what: str) -> float:
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        rank = int(np.linalg.matrix_rank(cov))
        raise ValueError(
            f"the {what} is singular (rank {rank} < {cov.shape[0]}): a column is constant "
            f"or a linear combination of the others, or n is too small for the dimension; "
            f"the Gaussian MI is then infinite or undefined. Drop the redundant columns"
        ) from None
    diag = np.diag(chol)
    if not (diag > 0).all() or diag.min() < 1e-7 * diag.max():
        raise ValueError(
            f"the {what} is numerically singular (condition number about "
            f"{(diag.max() / diag.min()) ** 2:.3g}); drop redundant columns"
        )
    return float(2.0 * np.log(diag).sum())


def gaussian_mi_from_cov(cov, dx: int) -> float:
    """I(X; Y) in nats of a Gaussian with covariance ``cov`` ((dx + dy, dx + dy)), X the
    first ``dx`` coordinates: 1/2 (log det S_xx + log det S_yy - log det S).

    Raises ValueError on a non-square or non-finite ``cov``, ``dx`` outside [1, d), or a
    singular block (naming it).
    """
    cov = np.asarray(cov, dtype=np.float64)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1] or not np.isfinite(cov).all():
        raise ValueError(f"cov must be a finite square matrix, got shape {cov.shape}")
    d = cov.shape[0]
    if isinstance(dx, bool) or not isinstance(dx, (int, np.integer)) or not 1 <= dx < d:
        raise ValueError(f"dx must be an integer in [1, {d - 1}], got {dx!r}")
    cov = 0.5 * (cov + cov.T)
    return 0.5 * (
        _logdet(cov[:dx, :dx], "covariance S_xx of x")
        + _logdet(cov[dx:, dx:], "covariance S_yy of y")
        - _logdet(cov, "joint covariance S of (x, y)")
    )


def cca_mi(x, y) -> float:
    """Gaussian (CCA) estimate of I(X; Y) in nats: the MI of the Gaussian with the sample
    covariance S of (x, y), 1/2 (log det S_xx + log det S_yy - log det S)
    (= -1/2 sum log(1 - rho_i^2) over the sample canonical correlations; Cover & Thomas
    2006, eq. 8.56; bmi's Gaussian/CCA baseline).

    Columns are standardised first (the value is invariant to it; it conditions the
    determinants). Exact for Gaussian data as n grows; for non-Gaussian data it is the MI of
    the Gaussian with the same covariance, which is a lower bound on I(X; Y) only for
    Gaussian-noise channels, and in general neither a lower nor an upper bound.

    Parameters
    ----------
    x : (n,) or (n, d_x) real array.
    y : (n,) or (n, d_y) real array with the same n; n > d_x + d_y.

    Returns
    -------
    float, nats (>= 0).

    Raises
    ------
    ValueError
        NaN/inf, empty, 3-D or mismatched inputs; n <= d_x + d_y; a singular sample
        covariance (a constant or collinear column), naming which of S_xx, S_yy, S.
    """
    x = v.as_samples(x, "x")
    y = v.as_samples(y, "y")
    v.check_pair(x, y)
    n, d = x.shape[0], x.shape[1] + y.shape[1]
    if n <= d:
        raise ValueError(
            f"cca_mi needs more samples than dimensions: n = {n} but d_x + d_y = {d}; the "
            f"sample covariance is singular"
        )
    z = np.concatenate([x, y], axis=1)
    z = z - z.mean(axis=0)
    scale = z.std(axis=0)
    const = np.flatnonzero(scale == 0)
    if const.size:
        which = ["x" if c < x.shape[1] else "y" for c in const[:1]][0]
        col = int(const[0]) if which == "x" else int(const[0]) - x.shape[1]
        raise ValueError(
            f"the sample covariance is singular: {which} column {col} is constant; drop it"
        )
    z = z / scale
    cov = z.T @ z / (n - 1)
    return max(gaussian_mi_from_cov(cov, x.shape[1]), 0.0)
