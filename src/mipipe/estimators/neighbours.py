"""Exact k-th nearest-neighbour distances and ball counts for the kNN and KSG estimators.

Two interchangeable back ends compute the same quantities:

* ``"brute"`` -- multi-threaded numba loops over all pairs, cost O(n^2 (d_x + d_y)). The
  KSG counts for p in {1, 2, inf} use a two-pass tiled kernel that visits each unordered
  pair once per pass (see "tiled kernel" below; for p = inf it runs in float32 and settles
  every close call in float64, so the results are exact); kNN and general p use a
  single-pass row-wise kernel that, for each point, forms the distances to every other
  point once per variable, keeps the k smallest joint distances and counts marginal
  neighbours in the same pass (memory O(n) per thread). Brute force wins in high
  dimension, where trees degrade to brute force with a large constant.
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

import logging
import math
import numbers
import time
import types

import numba
import numpy as np
from numba import njit, prange
from scipy.spatial import cKDTree

# p is passed to the kernels as a code plus the exponent for the general case.
P_INF, P_ONE, P_TWO, P_GENERAL = 0, 1, 2, 3

# method="auto" picks the tree while d_x + d_y <= the bound below for the first entry
# (n_below, bound) with n < n_below. Measured with benchmarks/estimators.py and same-process
# tree/brute ratios on the 2-core AMD EPYC (k = 3; kNN p = 2, KSG p = inf). kNN: brute wins
# from 2+2 at n = 1e3, ties at 3+3 for n = 3e3, the tree wins at 4+4 for n = 1e4 (0.6x)
# and loses at 6+6 (2.3x). KSG (tiled kernel): brute wins from 1+1 to 3+3 at n = 1e3 and
# 2+2 at n = 3e3, ties at 2+2 for n = 1e4; at n = 1e5 the tree wins at 2+2 (0.4x), ties
# at 3+3 and loses at 4+4 (3x). At 1+1 the tree is kept for every n (1-D sorted counts).
TREE_MAX_JOINT_DIM = {
    "knn": ((2_000, 2), (5_000, 6), (math.inf, 8)),
    "ksg": ((20_000, 2), (math.inf, 5)),
}


def tree_max_joint_dim(estimator: str, n: int) -> int:
    """Largest d_x + d_y for which method="auto" uses the tree (estimator "knn" or "ksg")."""
    for n_below, bound in TREE_MAX_JOINT_DIM[estimator]:
        if n < n_below:
            return bound
    raise AssertionError("the last entry of TREE_MAX_JOINT_DIM covers every n")


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

    ``a`` is stored transposed, (d, n), so the inner loops run over contiguous j (see
    :func:`_dist_run`). For a general p the distance is m (sum_c (|diff_c| / m)^p)^(1/p)
    with m the largest |diff_c|, which neither overflows nor underflows for any p.
    """
    d, n = at.shape
    _dist_run(at, i, 0, n, P_INF if code == P_GENERAL else code, buf)
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
def _insert_nb(kd, ki, v, j):
    """Insert neighbour j at distance v into the ascending kd/ki (length M) if v < kd[-1]."""
    pos = kd.shape[0] - 1
    while pos > 0 and kd[pos - 1] > v:
        kd[pos] = kd[pos - 1]
        ki[pos] = ki[pos - 1]
        pos -= 1
    kd[pos] = v
    ki[pos] = j


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
                    _insert_nb(kd, kidx, v, j)
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
                    _insert_nb(kx, idx, vx, j)
                if vy < ky[k - 1]:
                    _insert_nb(ky, idx, vy, j)
                if vj < kj[k - 1]:
                    _insert_nb(kj, idx, vj, j)
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
                    _insert_nb(kd, kidx, v, j)
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


# --------------------------------------------------------------------------- tiled kernel
#
# The KSG brute force for p in {1, 2, inf}. Each unordered pair {i, j} is visited once
# (the distance matrix is symmetric), in tiles of TILE x TILE points so that the columns
# of a tile stay in cache while its rows are matched against them, in two passes:
#   1. the m = k (+1 for variant 2) nearest joint neighbours of every point;
#   2. the marginal counts against each point's radius, known after pass 1.
# Distances of a row to a run of columns are computed with the dimensions taken four at a
# time inside a loop over contiguous columns, which LLVM vectorises. Every thread keeps
# its own neighbour lists and counts for all points (both ends of a pair are updated) and
# these are merged at the end, so results do not depend on how the work is split.
#
# For p = inf the passes run on a float32 copy of the data (twice the SIMD width, half
# the memory traffic) and every decision that float32 could get wrong is re-done in
# float64, so the results are those of the float64 kernel, bit for bit. With the data
# centred and S = max |x - centre|, a float32 distance is within DELTA = S 2^-20 of the
# float64 one (rounding to float32 moves each coordinate by <= S 2^-24, the float32
# difference adds <= 2S 2^-24; the max norm is 1-Lipschitz). Hence:
#   * pass 1 keeps the M = m + SLACK nearest by float32 distance; every point within
#     float64 rank m has float32 distance <= R32 + 2 DELTA (R32 = m-th float32 distance),
#     so those candidates are re-measured in float64 and the exact m nearest chosen; a
#     point whose M-th float32 distance is still inside that band (near-ties, data on a
#     grid too fine for float32) gets an exact float64 scan of all points;
#   * pass 2 counts a pair as inside (outside) a ball when its float32 distance is below
#     (above) the radius by more than DELTA, and re-measures the pairs in between in
#     float64 (about one per point: the neighbour that sets the radius).

TILE = 256
SLACK = 2  # extra float32 candidates kept per point beyond m


@njit(cache=True, inline="always", fastmath={"nnan", "ninf"})
def _dist_run(at, i, j0, jn, code, out):
    """out[jj] = |a_(j0 + jj) - a_i|_p in comparison space (see :func:`to_power`) for
    jj < jn and p in {1, 2, inf}, in the dtype of ``at``. The arithmetic depends only on
    the two points (the same operations in the same order whichever is i), and equals
    :func:`_exact_dist`."""
    d = at.shape[0]
    for jj in range(jn):
        out[jj] = 0.0
    c = 0
    while c + 4 <= d:
        r0 = at[c, j0:j0 + jn]
        r1 = at[c + 1, j0:j0 + jn]
        r2 = at[c + 2, j0:j0 + jn]
        r3 = at[c + 3, j0:j0 + jn]
        a0 = at[c, i]
        a1 = at[c + 1, i]
        a2 = at[c + 2, i]
        a3 = at[c + 3, i]
        if code == P_INF:
            for jj in range(jn):
                t0 = abs(r0[jj] - a0)
                t1 = abs(r1[jj] - a1)
                t2 = abs(r2[jj] - a2)
                t3 = abs(r3[jj] - a3)
                t0 = t0 if t0 > t1 else t1
                t2 = t2 if t2 > t3 else t3
                t0 = t0 if t0 > t2 else t2
                u = out[jj]
                out[jj] = t0 if t0 > u else u
        elif code == P_ONE:
            for jj in range(jn):
                out[jj] += (abs(r0[jj] - a0) + abs(r1[jj] - a1)) + (
                    abs(r2[jj] - a2) + abs(r3[jj] - a3))
        else:
            for jj in range(jn):
                t0 = r0[jj] - a0
                t1 = r1[jj] - a1
                t2 = r2[jj] - a2
                t3 = r3[jj] - a3
                out[jj] += (t0 * t0 + t1 * t1) + (t2 * t2 + t3 * t3)
        c += 4
    while c < d:
        r0 = at[c, j0:j0 + jn]
        a0 = at[c, i]
        if code == P_INF:
            for jj in range(jn):
                t0 = abs(r0[jj] - a0)
                u = out[jj]
                out[jj] = t0 if t0 > u else u
        elif code == P_ONE:
            for jj in range(jn):
                out[jj] += abs(r0[jj] - a0)
        else:
            for jj in range(jn):
                t0 = r0[jj] - a0
                out[jj] += t0 * t0
        c += 1


@njit(cache=True, inline="always")
def _exact_dist(at, i, j, code):
    """|a_j - a_i|_p in comparison space with exactly the operations of :func:`_dist_run`
    (float64 data)."""
    d = at.shape[0]
    acc = 0.0
    c = 0
    while c + 4 <= d:
        t0 = at[c, j] - at[c, i]
        t1 = at[c + 1, j] - at[c + 1, i]
        t2 = at[c + 2, j] - at[c + 2, i]
        t3 = at[c + 3, j] - at[c + 3, i]
        if code == P_INF:
            t0 = abs(t0)
            t1 = abs(t1)
            t2 = abs(t2)
            t3 = abs(t3)
            t0 = t0 if t0 > t1 else t1
            t2 = t2 if t2 > t3 else t3
            t0 = t0 if t0 > t2 else t2
            acc = t0 if t0 > acc else acc
        elif code == P_ONE:
            acc += (abs(t0) + abs(t1)) + (abs(t2) + abs(t3))
        else:
            acc += (t0 * t0 + t1 * t1) + (t2 * t2 + t3 * t3)
        c += 4
    while c < d:
        t0 = at[c, j] - at[c, i]
        if code == P_INF:
            t0 = abs(t0)
            acc = t0 if t0 > acc else acc
        elif code == P_ONE:
            acc += abs(t0)
        else:
            acc += t0 * t0
        c += 1
    return acc


def _tile_rows(n, nthreads):
    """Row tiles of each thread, dealt back and forth so that every thread gets a similar
    share of the triangle {(row tile, column tile >= row tile)}. Returns (order, starts):
    thread t takes the row tiles order[starts[t]:starts[t + 1]]."""
    nb = (n + TILE - 1) // TILE
    b = np.arange(nb)
    r = b % (2 * nthreads)
    owner = np.where(r < nthreads, r, 2 * nthreads - 1 - r)
    order = np.argsort(owner, kind="stable")
    starts = np.searchsorted(owner[order], np.arange(nthreads + 1))
    return order.astype(np.int64), starts.astype(np.int64)


@njit(cache=True, inline="always", fastmath={"nnan", "ninf"})
def _nearest_run(xt, yt, code, i, c0, jn, t, kd, ki, kth, bx, by):
    """Pass 1 on the pairs (i, c0 + jj), jj < jn: update the lists of both ends."""
    _dist_run(xt, i, c0, jn, code, bx)
    _dist_run(yt, i, c0, jn, code, by)
    big = kd.shape[2] - 1
    ri = kth[t, i]
    kcol = kth[t, c0:c0 + jn]
    hits = 0
    for jj in range(jn):
        u = bx[jj]
        w = by[jj]
        v = u if u > w else w
        bx[jj] = v
        hits += (v < ri) + (v < kcol[jj])
    if hits == 0:
        return
    for jj in range(jn):
        v = bx[jj]
        j = c0 + jj
        if v < kth[t, i]:
            _insert_nb(kd[t, i], ki[t, i], v, j)
            kth[t, i] = kd[t, i, big]
        if v < kth[t, j]:
            _insert_nb(kd[t, j], ki[t, j], v, i)
            kth[t, j] = kd[t, j, big]


@njit(cache=True, inline="always", fastmath={"nnan", "ninf"})
def _count_run(at, at64, code, closed, thr, lo, hi, i, c0, jn, t, cnt, b):
    """Pass 2 on the pairs (i, c0 + jj), jj < jn: count each end inside the other's ball."""
    _dist_run(at, i, c0, jn, code, b)
    loi = lo[i]
    hii = hi[i]
    locol = lo[c0:c0 + jn]
    hicol = hi[c0:c0 + jn]
    ccol = cnt[t, c0:c0 + jn]
    row = 0
    amb = 0
    for jj in range(jn):
        v = b[jj]
        ins = v < loi
        row += ins
        amb += (v <= hii) - ins
        insc = v < locol[jj]
        ccol[jj] += insc
        amb += (v <= hicol[jj]) - insc
    if amb > 0:
        ti = thr[i]
        for jj in range(jn):
            v = b[jj]
            in_row = v >= loi and v <= hii
            in_col = v >= locol[jj] and v <= hicol[jj]
            if in_row or in_col:
                j = c0 + jj
                e = _exact_dist(at64, i, j, code)
                if in_row:
                    row += (e <= ti) if closed else (e < ti)
                if in_col:
                    tj = thr[j]
                    ccol[jj] += (e <= tj) if closed else (e < tj)
    cnt[t, i] += row


@njit(parallel=True, cache=True, fastmath={"nnan", "ninf"})
def _tile_pass(nearest, xt, yt, code, order, starts, kd, ki, kth,
               at64, closed, thr, lo, hi, cnt):
    """One pass over the unordered pairs, tile by tile; thread t takes the row tiles
    order[starts[t]:starts[t + 1]] and each of them against the column tiles from itself on.

    ``nearest`` -- pass 1: kd[t, i] (ascending, length M) and ki[t, i] become the M smallest
    joint distances max(|dx|_p, |dy|_p) from i among the pairs thread t visits, and the
    neighbours; kth[t, i] = kd[t, i, M - 1]; all in the dtype of xt.
    else -- pass 2 for the variable xt: cnt[t, i] = #{j paired with i by thread t :
    |x_j - x_i|_p < thr[i]} (<= when ``closed``), thr in float64 comparison space; a pair
    counts as inside when its distance (dtype of xt) is below lo[i], outside when above
    hi[i], and is re-measured in float64 (``at64``) in between.
    """
    n = xt.shape[1]
    for t in prange(starts.shape[0] - 1):
        bx = np.empty(TILE, dtype=xt.dtype)
        by = np.empty(TILE, dtype=xt.dtype)
        for s in range(starts[t], starts[t + 1]):
            i0 = order[s] * TILE
            i1 = min(n, i0 + TILE)
            for j0 in range(i0, n, TILE):
                j1 = min(n, j0 + TILE)
                for i in range(i0, i1):
                    c0 = i + 1 if j0 == i0 else j0
                    jn = j1 - c0
                    if jn <= 0:
                        continue
                    if nearest:
                        _nearest_run(xt, yt, code, i, c0, jn, t, kd, ki, kth, bx, by)
                    else:
                        _count_run(xt, at64, code, closed, thr, lo, hi, i, c0, jn, t, cnt, bx)


@njit(parallel=True, cache=True)
def _refine_nearest(xt, yt, code, kd, ki, m, delta, exact, out_d, out_x, out_y):
    """Merge the per-thread lists of pass 1 and settle them in float64: out_d[i] = the m
    smallest joint distances from i (ascending), out_x/out_y the marginal distances of
    those neighbours. ``exact``: kd holds float64 distances (M = m), else float32 ones
    within ``delta`` of the float64 distances (see the block comment). Returns the number
    of points that needed a full float64 scan."""
    nthreads, n, big = kd.shape
    full = np.zeros(n, dtype=np.int64)
    for i in prange(n):
        md = np.full(big, np.inf)
        mi = np.full(big, -1, dtype=np.int64)
        for t in range(nthreads):
            for q in range(big):
                v = np.float64(kd[t, i, q])
                if v < md[big - 1]:
                    _insert_nb(md, mi, v, ki[t, i, q])
        od = out_d[i]
        ox = out_x[i]
        oy = out_y[i]
        od[:] = np.inf
        oi = np.full(m, -1, dtype=np.int64)
        if exact:
            band = md[m - 1]
            scan_all = False
        else:
            band = md[m - 1] + 2.0 * delta
            scan_all = md[big - 1] <= band
        if scan_all:
            full[i] = 1
            bx = np.empty(TILE)
            by = np.empty(TILE)
            for j0 in range(0, n, TILE):
                jn = min(TILE, n - j0)
                _dist_run(xt, i, j0, jn, code, bx)
                _dist_run(yt, i, j0, jn, code, by)
                for jj in range(jn):
                    vx = bx[jj]
                    vy = by[jj]
                    v = vx if vx > vy else vy
                    if v < od[m - 1] and j0 + jj != i:
                        _insert_nb(od, oi, v, j0 + jj)
        else:
            for q in range(big):
                j = mi[q]
                if j < 0 or md[q] > band:
                    break
                vx = _exact_dist(xt, i, j, code)
                vy = _exact_dist(yt, i, j, code)
                v = vx if vx > vy else vy
                if v < od[m - 1]:
                    _insert_nb(od, oi, v, j)
        for q in range(m):
            j = oi[q]
            if j < 0:
                ox[q] = np.inf
                oy[q] = np.inf
            else:
                ox[q] = _exact_dist(xt, i, j, code)
                oy[q] = _exact_dist(yt, i, j, code)
    return full.sum()


# Below this many pair-dimensions (n^2 (d_x + d_y)) the tiled passes run in the calling
# thread: a parallel launch costs a thread wake-up each (several ms on a busy machine),
# more than the work itself.
SERIAL_WORK = 5e7


def _serial_copy(func, name):
    """The Python function of a parallel kernel under a new name, for a serial compilation.

    numba's on-disk cache names its entries after the function's qualified name and does not
    tell parallel from serial compilations apart, so compiling the same function object
    twice would let whichever compiled first be loaded for both (the parallel kernel then
    runs on one thread). A renamed copy gets cache entries of its own."""
    f = func.py_func
    copy = types.FunctionType(f.__code__, f.__globals__, name, f.__defaults__, f.__closure__)
    copy.__qualname__ = name
    return copy


_tile_pass_serial = njit(cache=True, fastmath={"nnan", "ninf"})(
    _serial_copy(_tile_pass, "_tile_pass_serial")
)
_refine_nearest_serial = njit(cache=True)(_serial_copy(_refine_nearest, "_refine_nearest_serial"))


def _float32_copy(a):
    """(a - centre) in float32, transposed to (d, n), and DELTA: the bound on the difference
    between float32 and float64 max-norm distances (see the block comment)."""
    centre = 0.5 * (a.max(axis=0) + a.min(axis=0))
    c = a - centre
    s = float(np.abs(c).max())
    return np.ascontiguousarray(c.T, dtype=np.float32), s


def _band(thr, delta, dtype):
    """lo, hi in ``dtype`` with lo <= thr - delta and hi >= thr + delta (rounded outwards)."""
    lo = (thr - delta).astype(dtype)
    hi = (thr + delta).astype(dtype)
    lo = np.where(lo.astype(np.float64) > thr - delta, np.nextafter(lo, dtype(-np.inf)), lo)
    hi = np.where(hi.astype(np.float64) < thr + delta, np.nextafter(hi, dtype(np.inf)), hi)
    return np.ascontiguousarray(lo, dtype=dtype), np.ascontiguousarray(hi, dtype=dtype)


log = logging.getLogger("mipipe.estimators")
_ANNOUNCED: set = set()  # (kernel, dtype) pairs whose first use this process has logged


def _announce_compilation(kernel, dtype) -> float | None:
    """Log once per process and kernel/dtype that numba loads or compiles the tiled kernels.

    On an empty numba cache (a fresh install) the first tiled KSG call compiles them: about
    70 s of CPU per dtype (float64 for p in {1, 2}, float32 for the max norm; measured on an
    empty NUMBA_CACHE_DIR, README "Library"), which would otherwise look like a hung call.
    Returns the start time when a message was logged (see :func:`_report_compilation`)."""
    key = (kernel.__name__, np.dtype(dtype).name)
    if key in _ANNOUNCED or any(np.dtype(dtype).name in str(sig) for sig in kernel.signatures):
        return None
    _ANNOUNCED.add(key)
    log.warning("numba: first use of the tiled KSG kernel %s for %s in this process: loading "
                "it from numba's cache, or compiling it if the cache is empty (after a fresh "
                "install about a minute of CPU, once; the compiled code is cached)", *key)
    return time.perf_counter()


def _report_compilation(kernel, started, misses_before) -> None:
    if started is None:
        return
    misses = sum(kernel.stats.cache_misses.values())
    what = "compiled" if misses > misses_before else "loaded from numba's cache"
    log.warning("numba: %s %s in %.1f s", kernel.__name__, what, time.perf_counter() - started)


def compile_tiled_kernels(p: float, workers=-1) -> None:
    """Compile (or load from numba's cache) the parallel tiled KSG kernels for norm ``p``.

    Small problems run the serial copies, so a warm-up call on a few rows leaves the
    parallel kernels uncompiled and the first large call would pay for it (about 30 s after
    a fresh install). This runs them once on 8 points. No-op for p outside {1, 2, inf}."""
    if p_code(p) == P_GENERAL:
        return
    z = np.arange(16.0).reshape(8, 2) * np.array([1.0, 0.5])
    with _threads(resolve_workers(workers)):
        _ksg_tiled(z, z[::-1].copy(), 1, p, 1, 1.0, 1.0, resolve_workers(workers), parallel=True)


def _ksg_tiled(x, y, k, p, variant, f_open, f_closed, nthreads, parallel=None):
    """KSG neighbour statistics with the tiled kernels (p in {1, 2, inf}); the outputs of
    :func:`_ksg_brute`: (r, cx, cy, tie) with r in comparison space. ``parallel`` None:
    the serial copies below SERIAL_WORK pair-dimensions, else the parallel kernels."""
    n = x.shape[0]
    code = p_code(p)
    xt = np.ascontiguousarray(x.T)
    yt = np.ascontiguousarray(y.T)
    m = k + 1 if variant == 2 else k
    if parallel is None:
        parallel = n * n * (x.shape[1] + y.shape[1]) >= SERIAL_WORK
    if not parallel:
        nthreads, tile_pass, refine = 1, _tile_pass_serial, _refine_nearest_serial
    else:
        tile_pass, refine = _tile_pass, _refine_nearest
    order, starts = _tile_rows(n, nthreads)
    low = code == P_INF
    if low:
        x32, sx = _float32_copy(x)
        y32, sy = _float32_copy(y)
        # 2^-20 > 2^-22 + float64 rounding: margin for the centring and the band's own sums
        deltas = (sx * 2.0**-20, sy * 2.0**-20)
        delta = max(deltas)
        dx, dy, dtype, big = x32, y32, np.float32, m + SLACK
    else:
        delta, deltas = 0.0, (0.0, 0.0)
        dx, dy, dtype, big = xt, yt, np.float64, m
    kd = np.full((nthreads, n, big), np.inf, dtype=dtype)
    ki = np.full((nthreads, n, big), -1, dtype=np.int64)
    kth = np.full((nthreads, n), np.inf, dtype=dtype)
    none_i = np.zeros((1, 1), dtype=np.int64)
    none_f = np.zeros(1)
    misses = sum(tile_pass.stats.cache_misses.values())
    started = _announce_compilation(tile_pass, dtype)
    tile_pass(True, dx, dy, code, order, starts, kd, ki, kth,
              xt, False, none_f, kth[0], kth[0], none_i)
    _report_compilation(tile_pass, started, misses)
    od = np.empty((n, m))
    ox = np.empty((n, m))
    oy = np.empty((n, m))
    refine(xt, yt, code, kd, ki, m, delta, not low, od, ox, oy)
    r = od[:, k - 1].copy()
    tie = (od[:, k] == r).astype(np.int64) if m > k else np.zeros(n, dtype=np.int64)
    if variant == 1:
        tx = r * f_open
        ty = tx
        closed = False
    else:
        rx = ox[:, :k].max(axis=1)
        ry = oy[:, :k].max(axis=1)
        tx = rx * f_closed
        ty = ry * f_closed
        r = np.minimum(rx, ry)
        closed = True
    counts = []
    for a, a64, thr, dl in ((dx, xt, tx, deltas[0]), (dy, yt, ty, deltas[1])):
        thr = np.ascontiguousarray(thr)
        if low:
            lo, hi = _band(thr, dl, np.float32)
        else:
            lo = hi = thr
        cnt = np.zeros((nthreads, n), dtype=np.int64)
        tile_pass(False, a, a, code, order, starts, kd, ki, kth,
                  a64, closed, thr, lo, hi, cnt)
        counts.append(cnt.sum(axis=0))
    return r, counts[0], counts[1], tie


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
    if method == "tree" and a.shape[1] == 1:
        # 1-D: the k nearest neighbours of a point are among the k values on either side
        # of it in sorted order (O(n log n + n k), no tree to build or query)
        order = np.argsort(a[:, 0], kind="stable")
        out = np.empty(a.shape[0])
        out[order] = _kth_gap_sorted(a[order, 0], k)
        return out
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


def ksg_counts(x, y, k, p, variant, eps, method="brute", workers=-1, tiled=None):
    """Neighbour counts of the KSG estimators (Kraskov et al. 2004, eqs. 8 and 9).

    Returns ``(r, cx, cy, tied)``: for variant 1, r is the (n,) joint k-th neighbour distance
    under max(|x_i - x_j|_p, |y_i - y_j|_p); for variant 2, r = min(r_x,i, r_y,i) (zero
    flags repeated values in a marginal). For variant 1, cx = n_x,i (strict count within r_i),
    for variant 2, cx = m_x,i (closed count within r_x,i); cy likewise. Counts exclude the
    point itself. ``tied`` (variant 2 only, else 0) is the number of points whose k-th and
    (k+1)-th joint neighbours are equally far.

    ``tiled`` (brute force only): None picks the two-pass tiled kernel for p in {1, 2, inf}
    and the single-pass row-wise kernel otherwise; True/False force one (for tests and
    benchmarks; the tiled kernel supports p in {1, 2, inf} only).
    """
    nthreads = resolve_workers(workers)
    n = x.shape[0]
    if method == "tree":
        return _ksg_counts_tree(x, y, k, p, variant, eps, nthreads)
    f_open = float(to_power(1.0 - eps, p))
    f_closed = float(to_power(1.0 + eps, p))
    if tiled is None:
        tiled = p_code(p) != P_GENERAL
    if tiled:
        with _threads(nthreads):
            r, cx, cy, tie = _ksg_tiled(x, y, k, p, variant, f_open, f_closed, nthreads)
        return from_power(r, p), cx, cy, int(tie.sum())
    r = np.empty(n)
    cx = np.empty(n, dtype=np.int64)
    cy = np.empty(n, dtype=np.int64)
    tie = np.zeros(n, dtype=np.int64)
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
def _kth_gap_sorted(s, k):
    """out[q] = distance from s[q] to its k-th nearest other value, s sorted ascending:
    a merge of the gaps to the left and to the right, nearest first."""
    n = s.shape[0]
    out = np.empty(n)
    for q in range(n):
        v = s[q]
        a = q - 1
        b = q + 1
        gap = 0.0
        for _ in range(k):
            left = v - s[a] if a >= 0 else np.inf
            right = s[b] - v if b < n else np.inf
            if left <= right:
                gap = left
                a -= 1
            else:
                gap = right
                b += 1
        out[q] = gap
    return out


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

