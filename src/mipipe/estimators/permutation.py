"""Fast permutation null of the kNN ("3KL") MI estimator: the MI of (x, y[perm]) for many row
permutations at O(n^2) per permutation.

A row shuffle of y leaves H(X) and H(Y) unchanged, so only the joint entropy is recomputed:
both marginal distance matrices are formed once (in the comparison space and with the
arithmetic of the kNN kernels of :mod:`mipipe.estimators.neighbours`) and each permutation
takes the k-th smallest joint distance per row from them. The values equal
:func:`mipipe.estimators.knn_mi` on the shuffled pair. Used by the dataset-inference
permutation test (:func:`mipipe.inference.mi.permutation_test`); beyond the thesis.
"""

from __future__ import annotations

import numbers

import numpy as np
from numba import njit, prange

from . import _validation as v
from .knn import _entropy_from_radii, knn_entropy
from .neighbours import (
    _chunks,
    _combine,
    _insert_nb,
    _pairwise_to_all,
    _pexp,
    _threads,
    from_power,
    p_code,
    resolve_workers,
)

__all__ = ["knn_mi_permutation_null", "permutations"]


def permutations(n: int, n_permutations: int, seed: int) -> np.ndarray:
    """The (M, n) int64 row permutations of a permutation test: row m is the m-th
    ``numpy.random.default_rng(seed).permutation(n)`` (M = n_permutations, may be 0)."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n) for _ in range(n_permutations)]) if n_permutations else (
        np.empty((0, n), dtype=np.int64)
    )


@njit(parallel=True, cache=True)
def _distance_matrix(at, code, p, bounds, out):
    """out[i, j] = |a_i - a_j|_p in comparison space, the kNN kernels' own arithmetic."""
    for c in prange(bounds.shape[0] - 1):
        for i in range(bounds[c], bounds[c + 1]):
            _pairwise_to_all(at, i, code, p, out[i])


@njit(parallel=True, cache=True)
def _shuffled_joint_radii(dx, dy, perms, k, code, p, bounds, out):
    """out[m, i] = k-th neighbour distance of (x_i, y_perm[m, i]) in the joint space."""
    n = dx.shape[0]
    for m in range(perms.shape[0]):
        perm = perms[m]
        for c in prange(bounds.shape[0] - 1):
            kd = np.empty(k)
            kidx = np.empty(k, dtype=np.int64)
            for i in range(bounds[c], bounds[c + 1]):
                rowx = dx[i]
                rowy = dy[perm[i]]
                kd[:] = np.inf
                for j in range(n):
                    if j == i:
                        continue
                    val = _combine(rowx[j], rowy[perm[j]], code, p)
                    if val < kd[k - 1]:
                        _insert_nb(kd, kidx, val, j)
                out[m, i] = kd[k - 1]


def knn_mi_permutation_null(x, y, perms, *, k: int = 1, p: float = 2.0,
                            correction: str = "digamma", eps: float = 1e-10,
                            workers=-1) -> np.ndarray:
    """kNN MI (nats) of (x, y[perm]) for every row permutation ``perm`` of ``perms``.

    Parameters
    ----------
    x : (n, d_x) real array; y : (n, d_y) real array, same rows.
    perms : (M, n) integer array, each row a permutation of range(n) (:func:`permutations`).
    k, p, correction, eps, workers : as :func:`mipipe.estimators.knn_mi`.

    Returns
    -------
    (M,) float64 array: entry m equals ``knn_mi(x, y[perms[m]], k, p, correction, eps)``.
    Memory: two n x n float64 matrices (16 n^2 bytes).

    Raises
    ------
    ValueError
        NaN/inf or non-2-D data, different numbers of rows, bad k/p, or perms not of shape
        (M, n) with rows that are permutations of range(n).
    """
    x = v.as_samples(x, "x")
    y = v.as_samples(y, "y")
    n = x.shape[0]
    if y.shape[0] != n:
        raise ValueError(f"x and y must have the same number of rows, got {n} and {y.shape[0]}")
    k = v.check_k(k, n)
    p = v.check_p(p)
    perms = np.asarray(perms)
    if perms.ndim != 2 or perms.shape[1] != n or (
        perms.size and not np.issubdtype(perms.dtype, np.integer)
    ):
        raise ValueError(f"perms must be an (M, {n}) integer array, got shape {perms.shape}")
    if perms.size and not (np.sort(perms, axis=1) == np.arange(n)).all():
        raise ValueError("every row of perms must be a permutation of range(n)")
    if not isinstance(eps, numbers.Real):
        raise ValueError(f"eps must be a real number, got {eps!r}")
    hx = knn_entropy(x, k, p, correction, eps, workers=workers)
    hy = knn_entropy(y, k, p, correction, eps, workers=workers)
    (xc, yc), log_scale = v.condition([x, y])  # as knn_mi: one common power of two
    nthreads = resolve_workers(workers)
    code, pe = p_code(p), _pexp(p)
    bounds = _chunks(n, nthreads)
    dx = np.empty((n, n))
    dy = np.empty((n, n))
    d = x.shape[1] + y.shape[1]
    null = np.empty(perms.shape[0])
    batch = 32  # shuffles per kernel call: bounds the radii buffer to 32 n floats
    radii = np.empty((min(batch, perms.shape[0]), n))
    with _threads(nthreads):
        _distance_matrix(np.ascontiguousarray(xc.T), code, pe, bounds, dx)
        _distance_matrix(np.ascontiguousarray(yc.T), code, pe, bounds, dy)
        for start in range(0, perms.shape[0], batch):
            chunk = np.ascontiguousarray(perms[start:start + batch], dtype=np.int64)
            out = radii[: chunk.shape[0]]
            _shuffled_joint_radii(dx, dy, chunk, k, code, pe, bounds, out)
            for m in range(chunk.shape[0]):
                r = from_power(out[m], p) * (1.0 + eps)
                hxy = _entropy_from_radii(r, d, k, p, correction) + d * log_scale
                null[start + m] = hx + hy - hxy
    return null
