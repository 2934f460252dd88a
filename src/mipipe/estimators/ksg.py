"""Kraskov-Stoegbauer-Grassberger (KSG) mutual information estimators 1 and 2.

Kraskov, Stoegbauer & Grassberger 2004, eqs. 8 and 9; thesis Definitions 3.3 and 3.4.
Units: nats.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import digamma

from . import _validation as v
from .knn import _method_for, _prepare
from .neighbours import ksg_counts, tree_supports_ksg

__all__ = ["ksg_mi"]


def ksg_mi(
    x,
    y,
    k: int = 1,
    p: float = math.inf,
    variant: int = 1,
    correction: str = "digamma",
    eps: float = 1e-10,
    *,
    method: str = "auto",
    workers: int = -1,
    jitter: float | None = None,
    seed: int = 0,
) -> float:
    """KSG estimate of I(X; Y) in nats.

    The joint distance is max(|x_i - x_j|_p, |y_i - y_j|_p) and r_i is the distance from
    (x_i, y_i) to its k-th joint nearest neighbour (itself excluded).

    * variant 1 (Kraskov eq. 8, thesis Def. 3.3): n_x,i = #{j != i : |x_j - x_i|_p < r_i}
      (open ball), n_y,i likewise;
      "digamma": ``I = psi(k) + psi(n) - <psi(n_x + 1) + psi(n_y + 1)>``;
      "log":     ``I = psi(k) + log n - <log(n_x + 1) + log(n_y + 1)>``.
    * variant 2 (Kraskov eq. 9, thesis Def. 3.4): r_x,i = the largest x-distance among the k
      joint neighbours, m_x,i = #{j != i : |x_j - x_i|_p <= r_x,i} (closed ball), m_y likewise;
      "digamma": ``I = psi(k) - 1/k + psi(n) - <psi(m_x) + psi(m_y)>``;
      "log":     ``I = psi(k) - 1/k + log n - <log m_x + log m_y>``.

    With p = inf, variant 1 and "digamma" this is the estimator of scikit-learn's
    ``mutual_info_regression`` (which also standardises and jitters its inputs).

    Parameters
    ----------
    x : (n,) or (n, d_x) real array (any real dtype; integers are converted).
    y : (n,) or (n, d_y) real array with the same n.
    k : int >= 1 with n > k.
    p : float >= 1 or inf; the marginal norm (default inf, Kraskov's max norm).
    variant : 1 or 2.
    correction : "digamma" (Kraskov's published form, default) or "log" (thesis).
    eps : relative tolerance (thesis section 4.2.1), in [0, 1e-3]: open balls have radius
        r (1 - eps), closed balls r (1 + eps), so a neighbour on the boundary is classified
        as intended despite rounding. Relative, hence scale-free; 0 gives exact comparisons.
    method : "auto" (tree when p in {1, 2, inf}, the tree supports the metric and
        d_x + d_y <= 2 for n < 20000, <= 5 beyond; else brute force, see
        ``neighbours.TREE_MAX_JOINT_DIM``), "tree" (scipy cKDTree; needs p = inf or 1-D x
        and y) or "brute" (exact multi-threaded numba loop).
    workers : threads; -1 uses all cores.
    jitter, seed : tie breaking, as in :func:`mipipe.estimators.knn_entropy`.

    Returns
    -------
    float, MI in nats (may be slightly negative for independent variables).

    Raises
    ------
    ValueError
        NaN/inf, empty, 3-D or mismatched inputs; n <= k; k < 1; p < 1; variant not 1 or 2;
        unknown correction or method; method="tree" with an unsupported metric; x or y
        constant (all rows equal); repeated points that put a k-th joint neighbour at
        distance 0, or (variant 2) collapse a marginal ball to radius 0 (without ``jitter``);
        (variant 2) tied k-th and (k+1)-th joint neighbour distances, which make the
        neighbour set, and so the estimate, depend on row order.
    """
    if variant not in (1, 2) or isinstance(variant, bool):
        raise ValueError(f"variant must be 1 or 2 (Kraskov et al. 2004 eq. 8 or 9), got {variant!r}")
    (xa, ya), k, p, _ = _prepare([x, y], ["x", "y"], k, p, correction, method, eps, jitter, seed)
    n, dx = xa.shape
    dy = ya.shape[1]
    chosen = _method_for("ksg", n, dx + dy, p, method)
    if method == "auto" and chosen == "tree" and not tree_supports_ksg(dx, dy, p):
        chosen = "brute"
    r, cx, cy, tied = ksg_counts(xa, ya, k, p, variant, eps, chosen, workers)
    zeros = int((r == 0).sum())
    if zeros:
        raise v.repeated_points_error("ksg_mi", zeros, n, k, jitter)
    if variant == 2 and tied:
        raise v.distance_ties_error(tied, n, k)
    if correction == "digamma":
        n_term = float(digamma(n))
        f = digamma
    else:
        n_term = math.log(n)
        f = np.log
    if variant == 1:
        avg = float(np.mean(f(cx + 1.0) + f(cy + 1.0)))
        return float(digamma(k)) + n_term - avg
    avg = float(np.mean(f(cx.astype(np.float64)) + f(cy.astype(np.float64))))
    return float(digamma(k)) - 1.0 / k + n_term - avg
