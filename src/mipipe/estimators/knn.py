"""k-nearest-neighbour entropy (Singh et al. 2003) and the "3KL" MI estimator built from it.

Thesis Definitions 3.1 and 3.2. Units: nats.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import digamma, gammaln

from . import _validation as v
from .neighbours import knn_mi_radii, knn_radii, tree_max_joint_dim

__all__ = ["knn_entropy", "knn_mi", "log_unit_ball_volume"]


def log_unit_ball_volume(d: int, p: float) -> float:
    """log c_{d,p}: log of the volume of the unit p-norm ball in R^d.

    ``log c_{d,p} = d log 2 + d lnGamma(1 + 1/p) - lnGamma(1 + d/p)``, and ``d log 2`` for
    p = inf (the cube [-1, 1]^d). Thesis Remark 3.1 omits the factor 2^d (an erratum; it
    cancels in kNN MI but not in kNN entropy).
    """
    if math.isinf(p):
        return d * math.log(2.0)
    return d * math.log(2.0) + d * float(gammaln(1.0 + 1.0 / p)) - float(gammaln(1.0 + d / p))


def _n_term(n: int, correction: str) -> float:
    return float(digamma(n)) if correction == "digamma" else math.log(n)


def _entropy_from_radii(r: np.ndarray, d: int, k: int, p: float, correction: str) -> float:
    n = r.shape[0]
    return (
        log_unit_ball_volume(d, p)
        + d * float(np.mean(np.log(r)))
        - float(digamma(k))
        + _n_term(n, correction)
    )


def _prepare(arrays, names, k, p, correction, method, eps, jitter, seed,
             no_constant_columns: str | None = None):
    """Validate the arguments shared by all estimators and condition the data.

    Returns ``(arrays, k, p, log_scale)``. The arrays are multiplied by one common power of
    two so that the largest magnitude lies in [0.5, 1) (:func:`_validation.condition`):
    exact in floating point, so no comparison changes, while squared or p-th power
    distances can no longer overflow or underflow. Distances shrink by exp(log_scale); the
    MI estimators are invariant to it and :func:`knn_entropy` adds d * log_scale back.
    ``no_constant_columns`` names the estimator that refuses constant columns (kNN).
    """
    out = [v.as_samples(a, name) for a, name in zip(arrays, names)]
    for a in out[1:]:
        v.check_pair(out[0], a)
    k = v.check_k(k, out[0].shape[0])
    p = v.check_p(p)
    v.check_choice(correction, "correction", v.CORRECTIONS)
    v.check_choice(method, "method", v.METHODS)
    v.check_eps(eps)
    jitter = v.check_jitter(jitter)
    seed = v.check_seed(seed)
    for a, name in zip(out, names):
        v.check_not_constant(a, name)
        if no_constant_columns:
            v.check_no_constant_column(a, name, no_constant_columns)
    conditioned, log_scale = v.condition(out)
    v.check_scales(out, conditioned, names)
    if jitter is not None:
        rng = np.random.default_rng(seed)
        jittered = [v.add_jitter(a, jitter, rng) for a in conditioned]
        conditioned, extra = v.condition(jittered)
        log_scale += extra
    return conditioned, k, p, log_scale


def _method_for(estimator: str, n: int, d_total: int, p: float, method: str) -> str:
    """"auto": scipy's tree for the common norms (p = 1, 2, inf; for other p its p-th
    powers can underflow) while the joint dimension is at most
    :func:`~mipipe.estimators.neighbours.tree_max_joint_dim` (estimator "knn" or "ksg",
    n samples), the exact brute-force kernel otherwise. Any other method is returned as is."""
    if method != "auto":
        return method
    common = p in (1.0, 2.0) or math.isinf(p)
    return "tree" if common and d_total <= tree_max_joint_dim(estimator, n) else "brute"


def knn_entropy(
    x,
    k: int = 1,
    p: float = 2,
    correction: str = "digamma",
    eps: float = 1e-10,
    *,
    method: str = "auto",
    workers: int = -1,
    jitter: float | None = None,
    seed: int = 0,
) -> float:
    """k-nearest-neighbour (Kozachenko-Leonenko for k = 1) differential entropy in nats.

    ``H = log c_{d,p} + (d/n) sum_i log r_i - psi(k) + psi(n)``, r_i the p-norm distance
    from x_i to its k-th nearest neighbour (itself excluded); Singh et al. 2003, thesis
    Definition 3.1 (with the 2^d of the unit-ball volume restored, see
    :func:`log_unit_ball_volume`).

    Parameters
    ----------
    x : (n,) or (n, d) array of real numbers (any real dtype; integers are converted).
    k : int >= 1, with n > k.
    p : float >= 1 or ``inf`` (Chebyshev / max norm); also the strings "inf"/"max".
    correction : "digamma" (default) uses psi(n), Kraskov et al. 2004 eq. 20;
        "log" uses log n, the thesis's Definition 3.1 as written.
    eps : relative tolerance of thesis section 4.2.1, in [0, 1e-3]. The radius enters only
        through log r, so eps shifts the entropy by d log(1 + eps) (about d * eps) and
        cancels exactly in :func:`knn_mi`; it is accepted for a uniform interface.
    method : "auto" (tree for p in {1, 2, inf} while d is at most 2 for n < 2000, 6 for
        n < 5000, 8 beyond; else brute force, see ``neighbours.TREE_MAX_JOINT_DIM``), "tree"
        (scipy cKDTree; a sorted array in 1-D) or "brute" (exact multi-threaded numba loop). They give the same
        value (for p far above 100 only "brute" is exact: the tree's p-th powers underflow).
    workers : threads; -1 uses all cores.
    jitter : None (default) or a float > 0. With None, repeated points that put some k-th
        neighbour at distance 0 raise ``ValueError`` (log 0). With a float, every column c
        is centred on its median and gets N(0, (jitter * std_c)^2) noise, drawn from
        ``numpy.random.default_rng(seed)`` (1e-8 is a good value). Each group of repeated
        points then acts as one atom: x = y taking 5 equiprobable values gives about log 5,
        the MI of that discrete distribution. Continuous data rounded to a grid (e.g.
        float32 draws) need noise of about one grid step (jitter ~ step / std_c), which
        undoes the rounding; continuous data that were merely duplicated should be
        deduplicated instead. A variable whose rows are all equal, or (kNN) any
        constant column, raises ``ValueError`` with or without jitter.
    seed : seed of the jitter noise.

    Returns
    -------
    float, entropy in nats.

    Raises
    ------
    ValueError
        NaN or inf in x; x empty, masked or not 1-D/2-D; n <= k; k < 1; p < 1; eps outside
        [0, 1e-3]; unknown correction or method; a negative seed; a constant column;
        repeated points at distance 0 (without ``jitter``, or with one too small to
        separate them).
    """
    (xa,), k, p, log_scale = _prepare([x], ["x"], k, p, correction, method, eps, jitter, seed,
                                      no_constant_columns="knn_entropy")
    n, d = xa.shape
    r = knn_radii(xa, k, p, _method_for("knn", n, d, p, method), workers)
    zeros = int((r == 0).sum())
    if zeros:
        raise v.repeated_points_error("knn_entropy", zeros, n, k, jitter)
    return _entropy_from_radii(r * (1.0 + eps), d, k, p, correction) + d * log_scale


def knn_mi(
    x,
    y,
    k: int = 1,
    p: float = 2,
    correction: str = "digamma",
    eps: float = 1e-10,
    *,
    method: str = "auto",
    workers: int = -1,
    jitter: float | None = None,
    seed: int = 0,
) -> float:
    """kNN ("3KL") mutual information in nats: I = H(X) + H(Y) - H(X, Y).

    Each entropy is :func:`knn_entropy` with the same k and p; (X, Y) is the concatenation
    [x, y] under the same p-norm (thesis Definition 3.2). The three k-th neighbour searches
    share one pass over all pairs in the brute-force back end.

    Parameters
    ----------
    x : (n,) or (n, d_x) real array.
    y : (n,) or (n, d_y) real array with the same n.
    k, p, correction, eps, method, workers, jitter, seed : as in :func:`knn_entropy`
        (the jitter is added to x and y independently before the search; "auto" bounds
        d_x + d_y as it bounds d there).

    Returns
    -------
    float, MI in nats. It can be negative (thesis Remark 3.2).

    Raises
    ------
    ValueError
        As :func:`knn_entropy`, and when x and y have different numbers of rows.
    """
    (xa, ya), k, p, _ = _prepare([x, y], ["x", "y"], k, p, correction, method, eps, jitter,
                                 seed, no_constant_columns="knn_mi")
    n, dx = xa.shape
    dy = ya.shape[1]
    rx, ry, rxy = knn_mi_radii(xa, ya, k, p, _method_for("knn", n, dx + dy, p, method),
                               workers)
    for r, name in ((rx, "knn_mi (x)"), (ry, "knn_mi (y)"), (rxy, "knn_mi (joint)")):
        zeros = int((r == 0).sum())
        if zeros:
            raise v.repeated_points_error(name, zeros, n, k, jitter)
    f = 1.0 + eps
    hx = _entropy_from_radii(rx * f, dx, k, p, correction)
    hy = _entropy_from_radii(ry * f, dy, k, p, correction)
    hxy = _entropy_from_radii(rxy * f, dx + dy, k, p, correction)
    return hx + hy - hxy
