"""Exact k-th nearest-neighbour distances and ball counts for the kNN and KSG estimators.

Two interchangeable back ends compute the same quantities:

* ``"brute"`` -- a blocked, multi-threaded numba loop over all pairs. For each point it
  forms the distances to every other point once, per variable, keeps the k smallest joint
  distances, and counts marginal neighbours in the same pass. Cost O(n^2 (d_x + d_y)),
  memory O(n) per thread. It wins in high dimension, where trees degrade to brute force
  with a large constant.
* ``"tree"`` -- scipy's :class:`~scipy.spatial.cKDTree` (``workers`` threads) for the k-th
  neighbour, and either ``query_ball_point(return_length=True)`` or, for a 1-D variable, a
  sorted array with :func:`numpy.searchsorted`, for the counts. It wins in low dimension.

Distances are compared in "p-th power" space (sum of |diff|^p, or the max for p = inf),
so the radius of a ball and the distances counted against it come from identical
arithmetic and the comparisons are exact: strict (<) and closed (<=) counts do not depend
on the scale of the data. The relative tolerance ``eps`` (thesis section 4.2.1) widens a
closed ball to r (1 + eps) and shrinks an open ball to r (1 - eps); being relative, it is
scale-free too.
"""

from __future__ import annotations

import math
import numbers

import numba
import numpy as np
from numba import njit, prange
from scipy.spatial import cKDTree

# p is passed to the kernels as a code plus the exponent for the general case.
P_INF, P_ONE, P_TWO, P_GENERAL = 0, 1, 2, 3

# Joint dimension up to which the tree back end is chosen by method="auto" (measured by
# benchmarks/estimators.py on a 2-core machine: trees win clearly at d = 1 + 1 and lose
# beyond a handful of dimensions).
TREE_MAX_JOINT_DIM = 4


def p_code(p: float) -> int:
    if math.isinf(p):
        return P_INF
    if p == 1.0:
        return P_ONE
    if p == 2.0:
        return P_TWO
    return P_GENERAL


def to_power(r, p: float):
    """Distance r -> the quantity the kernels compare: r^2 for p = 2 (no square root in
    the inner loop), r itself otherwise (p = 1, inf, and general p, whose kernel computes
    overflow-safe distances directly)."""
    return np.square(r) if p == 2.0 else r


def from_power(rp, p: float):
    """Inverse of :func:`to_power`."""
    return np.sqrt(rp) if p == 2.0 else rp


def resolve_workers(workers) -> int:
    """Number of threads: ``-1`` or ``None`` means all cores numba may use."""
    if workers is None or workers == -1:
        return numba.config.NUMBA_NUM_THREADS
    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 1:
        raise ValueError(f"workers must be a positive integer or -1 (all cores), got {workers!r}")
    return min(int(workers), numba.config.NUMBA_NUM_THREADS)


# --------------------------------------------------------------------------- numba kernels


@njit(cache=True, inline="always")
def _pairwise_to_all(at, i, code, p, buf):
    """buf[j] = |a_j - a_i|_p in comparison space (see :func:`to_power`), for all j.

    ``a`` is stored transposed, (d, n), so the inner loops run over contiguous j. For a
    general p the distance is m (sum_c (|diff_c| / m)^p)^(1/p) with m the largest |diff_c|,
    which neither overflows nor underflows for any p.
    """
    d, n = at.shape
    row = at[0]
    ai = row[i]
    if code == P_TWO:
        for j in range(n):
            t = row[j] - ai
            buf[j] = t * t
    else:
        for j in range(n):
            buf[j] = abs(row[j] - ai)
    for c in range(1, d):
        row = at[c]
        ai = row[i]
        if code == P_INF or code == P_GENERAL:
            for j in range(n):
                t = abs(row[j] - ai)
                buf[j] = t if t > buf[j] else buf[j]
        elif code == P_ONE:
            for j in range(n):
                buf[j] += abs(row[j] - ai)
        else:
            for j in range(n):
                t = row[j] - ai
                buf[j] += t * t
    if code == P_GENERAL and d > 1:
        for j in range(n):
            m = buf[j]
            if m > 0.0:
                acc = 0.0
                for c in range(d):
                    acc += (abs(at[c, j] - at[c, i]) / m) ** p
                buf[j] = m * acc ** (1.0 / p)


@njit(cache=True, inline="always")
def _combine(vx, vy, code, p):
    """Distance in the concatenation (x, y) from the two marginal distances."""
    if code == P_INF:
        return vx if vx > vy else vy
    if code == P_ONE or code == P_TWO:
        return vx + vy
    m = vx if vx > vy else vy
    if m == 0.0:
        return 0.0
    return m * ((vx / m) ** p + (vy / m) ** p) ** (1.0 / p)


@njit(cache=True, inline="always")
def _insert_topk(kd, kidx, v, j):
    """Insert (v, j) into the ascending arrays kd/kidx of length k if v < kd[-1]."""
    k = kd.shape[0]
    pos = k - 1
    while pos > 0 and kd[pos - 1] > v:
        kd[pos] = kd[pos - 1]
        kidx[pos] = kidx[pos - 1]
        pos -= 1
    kd[pos] = v
    kidx[pos] = j


def _chunks(n, nthreads):
    # Several chunks per thread balance the load; results do not depend on the split.
    nchunks = max(1, min(n, 8 * nthreads))
    return np.linspace(0, n, nchunks + 1).astype(np.int64)


@njit(parallel=True, cache=True)
def _knn_radii_brute(at, k, code, p, bounds, out):
    """out[i] = k-th nearest-neighbour distance of point i (power space), self excluded."""
    n = at.shape[1]
    for c in prange(bounds.shape[0] - 1):
        buf = np.empty(n)
        kd = np.empty(k)
        kidx = np.empty(k, dtype=np.int64)
        for i in range(bounds[c], bounds[c + 1]):
            _pairwise_to_all(at, i, code, p, buf)
            kd[:] = np.inf
            for j in range(n):
                v = buf[j]
                if v < kd[k - 1] and j != i:
                    _insert_topk(kd, kidx, v, j)
            out[i] = kd[k - 1]


@njit(parallel=True, cache=True)
def _knn_mi_radii_brute(xt, yt, k, code, p, bounds, out_x, out_y, out_xy):
    """k-th neighbour distances (power space) in x, in y and in the concatenation (x, y)."""
    n = xt.shape[1]
    for c in prange(bounds.shape[0] - 1):
        bx = np.empty(n)
        by = np.empty(n)
        kx = np.empty(k)
        ky = np.empty(k)
        kj = np.empty(k)
        idx = np.empty(k, dtype=np.int64)
        for i in range(bounds[c], bounds[c + 1]):
            _pairwise_to_all(xt, i, code, p, bx)
            _pairwise_to_all(yt, i, code, p, by)
            kx[:] = np.inf
            ky[:] = np.inf
            kj[:] = np.inf
            for j in range(n):
                if j == i:
                    continue
                vx = bx[j]
                vy = by[j]
                vj = _combine(vx, vy, code, p)
                if vx < kx[k - 1]:
                    _insert_topk(kx, idx, vx, j)
                if vy < ky[k - 1]:
                    _insert_topk(ky, idx, vy, j)
                if vj < kj[k - 1]:
                    _insert_topk(kj, idx, vj, j)
            out_x[i] = kx[k - 1]
            out_y[i] = ky[k - 1]
            out_xy[i] = kj[k - 1]


@njit(parallel=True, cache=True)
def _ksg_brute(xt, yt, k, code, p, variant, f_open, f_closed, bounds, out_r, out_cx, out_cy,
               out_tie):
    """KSG neighbour statistics in one pass over all pairs.

    For each i: the k nearest joint neighbours under max(|dx|_p, |dy|_p) (self excluded).
    variant 1: out_r = joint radius r_i; out_cx = #{j != i : |dx| < r_i} (open ball,
    radius shrunk by f_open); likewise out_cy.
    variant 2: out_cx = #{j != i : |dx| <= r_x,i} with r_x,i the largest x-distance among
    the k joint neighbours (closed ball, radius widened by f_closed); likewise out_cy;
    out_r = min(r_x,i, r_y,i), zero exactly when repeated values collapse a marginal ball;
    out_tie = 1 where the k-th and (k+1)-th joint distances tie (the neighbour set, and so
    r_x,i, r_y,i, would depend on row order).
    """
    n = xt.shape[1]
    # variant 2 keeps one extra neighbour to detect ties at the k-th distance
    m = k + 1 if variant == 2 else k
    for c in prange(bounds.shape[0] - 1):
        bx = np.empty(n)
        by = np.empty(n)
        kd = np.empty(m)
        kidx = np.empty(m, dtype=np.int64)
        for i in range(bounds[c], bounds[c + 1]):
            _pairwise_to_all(xt, i, code, p, bx)
            _pairwise_to_all(yt, i, code, p, by)
            kd[:] = np.inf
            for j in range(n):
                vx = bx[j]
                vy = by[j]
                v = vx if vx > vy else vy
                if v < kd[m - 1] and j != i:
                    _insert_topk(kd, kidx, v, j)
            r = kd[k - 1]
            out_tie[i] = 1 if (m > k and kd[k] == r) else 0
            out_r[i] = r
            if variant == 1:
                tx = r * f_open
                ty = tx
            else:
                rx = 0.0
                ry = 0.0
                for q in range(k):
                    j = kidx[q]
                    if bx[j] > rx:
                        rx = bx[j]
                    if by[j] > ry:
                        ry = by[j]
                tx = rx * f_closed
                ty = ry * f_closed
                # a zero marginal radius means repeated values in x or y: flag it
                out_r[i] = rx if rx < ry else ry
            cx = 0
            cy = 0
            if variant == 1:
                for j in range(n):
                    cx += bx[j] < tx
                    cy += by[j] < ty
                # the point itself sits at distance 0
                cx -= 0.0 < tx
                cy -= 0.0 < ty
            else:
                for j in range(n):
                    cx += bx[j] <= tx
                    cy += by[j] <= ty
                cx -= 1
                cy -= 1
            out_cx[i] = cx
            out_cy[i] = cy


# --------------------------------------------------------------------------- public helpers


def knn_radii(a: np.ndarray, k: int, p: float, method: str = "brute", workers=-1) -> np.ndarray:
    """Distance from each point to its k-th nearest neighbour, itself excluded.

    Parameters
    ----------
    a : (n, d) float64 array, validated.
    k : int, 1 <= k < n.
    p : float >= 1 or inf, the Minkowski norm.
    method : "brute" or "tree".
    workers : threads (-1 = all).

    Returns
    -------
    (n,) float64 array of distances (in the units of ``a``).
    """
    nthreads = resolve_workers(workers)
    if method == "tree":
        tree = cKDTree(a)
        dist, _ = tree.query(a, k=k + 1, p=p, workers=nthreads)
        return np.ascontiguousarray(dist[:, k])
    out = np.empty(a.shape[0])
    with _threads(nthreads):
        _knn_radii_brute(
            np.ascontiguousarray(a.T), k, p_code(p), _pexp(p), _chunks(a.shape[0], nthreads), out
        )
    return from_power(out, p)


def knn_mi_radii(x, y, k, p, method="brute", workers=-1):
    """k-th neighbour distances of each point in x, in y and in the concatenation [x, y].

    Returns three (n,) float64 arrays (distances, not powers).
    """
    nthreads = resolve_workers(workers)
    if method == "tree":
        rx = knn_radii(x, k, p, "tree", nthreads)
        ry = knn_radii(y, k, p, "tree", nthreads)
        rxy = knn_radii(np.hstack([x, y]), k, p, "tree", nthreads)
        return rx, ry, rxy
    n = x.shape[0]
    ox, oy, oxy = np.empty(n), np.empty(n), np.empty(n)
    with _threads(nthreads):
        _knn_mi_radii_brute(
            np.ascontiguousarray(x.T),
            np.ascontiguousarray(y.T),
            k,
            p_code(p),
            _pexp(p),
            _chunks(n, nthreads),
            ox,
            oy,
            oxy,
        )
    return from_power(ox, p), from_power(oy, p), from_power(oxy, p)


def ksg_counts(x, y, k, p, variant, eps, method="brute", workers=-1):
    """Neighbour counts of the KSG estimators (Kraskov et al. 2004, eqs. 8 and 9).

    Returns ``(r, cx, cy, tied)``: for variant 1, r is the (n,) joint k-th neighbour distance
    under max(|x_i - x_j|_p, |y_i - y_j|_p); for variant 2, r = min(r_x,i, r_y,i) (zero
    flags repeated values in a marginal). For variant 1, cx = n_x,i (strict count within r_i),
    for variant 2, cx = m_x,i (closed count within r_x,i); cy likewise. Counts exclude the
    point itself. ``tied`` (variant 2 only, else 0) is the number of points whose k-th and
    (k+1)-th joint neighbours are equally far.
    """
    nthreads = resolve_workers(workers)
    n = x.shape[0]
    if method == "tree":
        return _ksg_counts_tree(x, y, k, p, variant, eps, nthreads)
    r = np.empty(n)
    cx = np.empty(n, dtype=np.int64)
    cy = np.empty(n, dtype=np.int64)
    tie = np.zeros(n, dtype=np.int64)
    f_open = float(to_power(1.0 - eps, p))
    f_closed = float(to_power(1.0 + eps, p))
    with _threads(nthreads):
        _ksg_brute(
            np.ascontiguousarray(x.T),
            np.ascontiguousarray(y.T),
            k,
            p_code(p),
            _pexp(p),
            variant,
            f_open,
            f_closed,
            _chunks(n, nthreads),
            r,
            cx,
            cy,
            tie,
        )
    return from_power(r, p), cx, cy, int(tie.sum())


def tree_supports_ksg(dx: int, dy: int, p: float) -> bool:
    """cKDTree searches Minkowski norms on the concatenation; the KSG joint metric
    max(|dx|_p, |dy|_p) is one only for p = inf or when both variables are 1-D."""
    return math.isinf(p) or (dx == 1 and dy == 1)


def _ksg_counts_tree(x, y, k, p, variant, eps, nthreads):
    n, dx = x.shape
    dy = y.shape[1]
    if not tree_supports_ksg(dx, dy, p):
        raise ValueError(
            f"method='tree' needs p = inf or 1-D x and y for KSG (joint metric max(|dx|_p, |dy|_p)); "
            f"got p = {p}, d_x = {dx}, d_y = {dy}. Use method='brute' or 'auto'"
        )
    xy = np.hstack([x, y])
    extra = 1 if (variant == 2 and n > k + 1) else 0
    dist, idx = cKDTree(xy).query(xy, k=k + 1 + extra, p=math.inf, workers=nthreads)
    tied = int((dist[:, k + 1] == dist[:, k]).sum()) if extra else 0
    dist, idx = dist[:, : k + 1], idx[:, : k + 1]
    # Column 0 is the point itself unless it has exact duplicates; dropping the entry equal
    # to i (or the last column when i is not among the k + 1) keeps exactly k neighbours.
    is_self = idx == np.arange(n)[:, None]
    drop = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k)
    keep = np.ones_like(idx, dtype=bool)
    keep[np.arange(n), drop] = False
    nb_idx = idx[keep].reshape(n, k)
    r = np.ascontiguousarray(dist[:, k])
    if variant == 1:
        rad_x = np.nextafter(r * (1.0 - eps), 0.0)
        rad_y = rad_x
    else:
        rx = _max_dist_to(x, nb_idx, p)
        ry = _max_dist_to(y, nb_idx, p)
        rad_x = rx * (1.0 + eps)
        rad_y = ry * (1.0 + eps)
        r = np.minimum(rx, ry)
    cx = _count_within(x, rad_x, p, nthreads)
    cy = _count_within(y, rad_y, p, nthreads)
    if variant == 1:
        # an open ball of radius 0 holds nothing, not even the point itself
        cx = np.where(r > 0, cx, 0)
        cy = np.where(r > 0, cy, 0)
    return r, cx, cy, tied


def _max_dist_to(a, nb_idx, p):
    """Largest distance from each point to its listed neighbours. The tree path runs only
    for p = inf or 1-D variables, where the p-norm is the max of |diff| exactly, the same
    arithmetic as the counts that use it."""
    diff = np.abs(a[nb_idx] - a[:, None, :])  # (n, k, d)
    return diff.max(axis=2).max(axis=1)


def _count_within(a, radius, p, nthreads):
    """#{j != i : |a_j - a_i|_p <= radius_i} for every i (closed balls)."""
    if a.shape[1] == 1:
        v = a[:, 0]
        s = np.sort(v)
        # v +- radius is rounded to v's precision, so the search only brackets the ball;
        # the boundary is then settled with |s_j - v_i| <= radius_i, the same arithmetic as
        # the distances of the brute-force kernel.
        hi = np.searchsorted(s, v + radius, side="right")
        lo = np.searchsorted(s, v - radius, side="left")
        return _settle_sorted_counts(s, v, radius, lo, hi)
    counts = cKDTree(a).query_ball_point(a, radius, p=p, return_length=True, workers=nthreads)
    return np.asarray(counts, dtype=np.int64) - 1


@njit(cache=True)
def _settle_sorted_counts(s, v, radius, lo, hi):
    n = s.shape[0]
    out = np.empty(v.shape[0], dtype=np.int64)
    for i in range(v.shape[0]):
        vi = v[i]
        r = radius[i]
        a = lo[i]
        b = hi[i]
        while a > 0 and abs(s[a - 1] - vi) <= r:
            a -= 1
        while a < n and abs(s[a] - vi) > r:
            a += 1
        while b < n and abs(s[b] - vi) <= r:
            b += 1
        while b > a and abs(s[b - 1] - vi) > r:
            b -= 1
        out[i] = b - a - 1
    return out


def _pexp(p: float) -> float:
    return 0.0 if math.isinf(p) else float(p)


class _threads:
    """Context manager that sets numba's thread count and restores it."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        self.old = numba.get_num_threads()
        numba.set_num_threads(self.n)

    def __exit__(self, *exc):
        numba.set_num_threads(self.old)

