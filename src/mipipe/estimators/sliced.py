"""Sliced, k-sliced and max-sliced mutual information, and their Gaussian truths.

* Sliced MI (Goldfeld & Greenewald 2021, "Sliced mutual information: a scalable measure of
  statistical dependence", NeurIPS, Definition 1):
  SI(X; Y) = E_{theta, phi} I(theta^T X; phi^T Y), theta, phi uniform on the unit spheres.
* k-sliced MI (Goldfeld, Greenewald, Nuradha & Reeves 2022, "k-sliced mutual information: a
  quantitative study of scalability with dimension", NeurIPS, eq. 2): the same average over
  uniformly random k-dimensional orthonormal frames A (d_x x k), B (d_y x k),
  I(A^T X; B^T Y).
* Max-sliced MI (Tsur, Goldfeld & Greenewald 2023, "Max-sliced mutual information",
  NeurIPS, Definition 1): the maximum of I(theta^T X; phi^T Y) over the directions.

None of them equals I(X; Y): sliced MI <= I(X; Y) (data processing), and it is what the
estimators here estimate. For a Gaussian each slice has I = -1/2 log(1 - rho^2),
rho = theta^T S_xy phi / sqrt(theta^T S_xx theta  phi^T S_yy phi) (k-sliced: the Gaussian MI
of the projected covariance), so the true sliced MI over the *drawn* directions is the exact
average :func:`gaussian_sliced_mi`; the true max-sliced MI of a Gaussian is
-1/2 log(1 - rho_1^2), rho_1 its largest canonical correlation. Units: nats.

Estimation (Goldfeld & Greenewald 2021, section 4): draw m slices, estimate the MI of each
projected pair with a low-dimensional estimator (KSG1 here, vectorised over slices in one
numba kernel; or the Gaussian/CCA one) and average.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from numba import njit, prange
from scipy.special import digamma

from . import _validation as v
from .gaussian import cca_mi, gaussian_mi_from_cov
from .ksg import ksg_mi

__all__ = [
    "gaussian_max_sliced_mi",
    "gaussian_sliced_mi",
    "ksliced_mi",
    "max_sliced_mi",
    "slice_frames",
    "sliced_mi",
]

SLICE_ESTIMATORS = ("ksg1", "cca")
# slices projected and estimated per kernel call: bounds the (slices, n, dim) projections
# to about 8 * 64 * n * dim bytes (5 MB per dimension at n = 10^4)
_CHUNK = 64


def _positive_int(value, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def slice_frames(dx: int, dy: int, n_slices: int, dim: int = 1, seed: int = 0):
    """The random frames of :func:`sliced_mi` / :func:`ksliced_mi`.

    Each frame is uniform on the Stiefel manifold of orthonormal (d, dim) matrices (Haar):
    the Q factor of a standard Gaussian (d, dim) matrix with the signs of R's diagonal
    folded in (Mezzadri 2007). dim = 1 gives unit vectors uniform on the sphere. The x
    frames are drawn first, then the y frames, from ``numpy.random.default_rng(seed)``.

    Returns
    -------
    (theta, phi): arrays (n_slices, dx, dim) and (n_slices, dy, dim), float64.

    Raises
    ------
    ValueError
        dx, dy, n_slices or dim not positive integers; dim > min(dx, dy); bad seed.
    """
    dx = _positive_int(dx, "dx")
    dy = _positive_int(dy, "dy")
    n_slices = _positive_int(n_slices, "n_slices")
    dim = _positive_int(dim, "dim")
    seed = v.check_seed(seed)
    if dim > min(dx, dy):
        raise ValueError(
            f"dim = {dim} exceeds the dimension of x ({dx}) or y ({dy}); a {dim}-dimensional "
            f"orthonormal frame needs dim <= min(d_x, d_y)"
        )
    rng = np.random.default_rng(seed)

    def frames(d):
        g = rng.standard_normal((n_slices, d, dim))
        q, r = np.linalg.qr(g)
        sign = np.sign(np.diagonal(r, axis1=1, axis2=2))
        sign[sign == 0] = 1.0
        return np.ascontiguousarray(q * sign[:, None, :])

    theta = frames(dx)
    return theta, frames(dy)


def gaussian_sliced_mi(cov, dx: int, theta, phi) -> np.ndarray:
    """True MI of every slice of a Gaussian with covariance ``cov``: for frames A = theta[s],
    B = phi[s], the Gaussian MI of cov(A^T X, B^T Y) = [[A^T S_xx A, A^T S_xy B], [., B^T S_yy B]]
    (for dim = 1: -1/2 log(1 - rho^2), Goldfeld & Greenewald 2021, section 3). The true
    sliced (k-sliced) MI over these directions is the mean of the result.

    Parameters
    ----------
    cov : (dx + dy, dx + dy) covariance of (X, Y).
    dx : dimension of X.
    theta, phi : (n_slices, dx, dim), (n_slices, dy, dim) frames (:func:`slice_frames`).

    Returns
    -------
    (n_slices,) float64, nats.
    """
    cov = np.asarray(cov, dtype=np.float64)
    theta = np.asarray(theta, dtype=np.float64)
    phi = np.asarray(phi, dtype=np.float64)
    if theta.ndim != 3 or phi.ndim != 3 or theta.shape[0] != phi.shape[0]:
        raise ValueError(
            f"theta and phi must be (n_slices, d, dim) arrays with the same n_slices, got "
            f"{theta.shape} and {phi.shape}"
        )
    if cov.shape != (theta.shape[1] + phi.shape[1],) * 2 or theta.shape[1] != dx:
        raise ValueError(
            f"cov must be ({theta.shape[1] + phi.shape[1]}, {theta.shape[1] + phi.shape[1]}) "
            f"with dx = {theta.shape[1]}, got cov {cov.shape} and dx = {dx}"
        )
    k = theta.shape[2]
    sxx, sxy, syy = cov[:dx, :dx], cov[:dx, dx:], cov[dx:, dx:]
    a = np.einsum("sik,ij,sjl->skl", theta, sxx, theta)
    c = np.einsum("sik,ij,sjl->skl", theta, sxy, phi)
    b = np.einsum("sik,ij,sjl->skl", phi, syy, phi)
    joint = np.block([[a, c], [np.swapaxes(c, 1, 2), b]])
    if k == 1:
        rho2 = c[:, 0, 0] ** 2 / (a[:, 0, 0] * b[:, 0, 0])
        return -0.5 * np.log1p(-np.minimum(rho2, 1.0))
    return np.array([gaussian_mi_from_cov(j, k) for j in joint])


def gaussian_max_sliced_mi(cov, dx: int) -> float:
    """True max-sliced MI of a Gaussian: -1/2 log(1 - rho_1^2), rho_1 the largest canonical
    correlation of cov = [[S_xx, S_xy], [S_yx, S_yy]] (the correlation of theta^T X and
    phi^T Y is maximised by the first canonical pair; Tsur et al. 2023, section 3). Nats."""
    rho = _canonical(np.asarray(cov, dtype=np.float64), dx)[0]
    return float(-0.5 * math.log1p(-min(rho[0] ** 2, 1.0)))


def _canonical(cov, dx):
    """Canonical correlations (descending) and the first pair of directions."""
    sxx, sxy, syy = cov[:dx, :dx], cov[:dx, dx:], cov[dx:, dx:]
    lx = np.linalg.cholesky(sxx)
    ly = np.linalg.cholesky(syy)
    m = np.linalg.solve(lx, np.linalg.solve(ly, sxy.T).T)  # Lx^-1 Sxy Ly^-T
    u, s, vt = np.linalg.svd(m)
    theta = np.linalg.solve(lx.T, u[:, 0])
    phi = np.linalg.solve(ly.T, vt[0])
    return s, theta, phi


# ----------------------------------------------------------------------------- kernel
@njit(cache=True, inline="always")
def _norm(a, i, j, code, p):
    """|a[i] - a[j]|_p for rows of a (n, m); code 0: max, 1: sum |.|, 2: euclidean, 3: p."""
    m = a.shape[1]
    acc = 0.0
    for c in range(m):
        t = abs(a[i, c] - a[j, c])
        if code == 0:
            if t > acc:
                acc = t
        elif code == 1:
            acc += t
        elif code == 2:
            acc += t * t
        else:
            acc += t**p
    if code == 2:
        return math.sqrt(acc)
    if code == 3:
        return acc ** (1.0 / p)
    return acc


@njit(cache=True)
def _count_sorted(a, order_pos, thr, code, p, out):
    """out[q] = #{r != q : |a[r] - a[q]|_p < thr[q]} for a sorted by its first column
    (a's rows in sorted order, thr in the same order); scans outwards while the first
    coordinate alone (a lower bound on the norm) is below thr."""
    n = a.shape[0]
    for q in range(n):
        t = thr[q]
        c = 0
        r = q + 1
        while r < n and a[r, 0] - a[q, 0] < t:
            if _norm(a, q, r, code, p) < t:
                c += 1
            r += 1
        r = q - 1
        while r >= 0 and a[q, 0] - a[r, 0] < t:
            if _norm(a, q, r, code, p) < t:
                c += 1
            r -= 1
        out[order_pos[q]] = c


@njit(parallel=True, cache=True)
def _ksg1_slices(px, py, k, code, p, eps, psi, out_mi, out_zero):
    """KSG1 (Kraskov et al. 2004, eq. 8, digamma form) on every slice s of px (S, n, kx),
    py (S, n, ky); joint distance max(|dx|_p, |dy|_p). out_mi[s] the estimate, out_zero[s]
    the number of points whose k-th joint neighbour is at distance 0. psi[m] = digamma(m)."""
    S, n = px.shape[0], px.shape[1]
    for s in prange(S):
        ox = np.argsort(px[s, :, 0])
        xs = np.ascontiguousarray(px[s][ox])
        ys = np.ascontiguousarray(py[s][ox])
        r = np.empty(n)
        kd = np.empty(k)
        for i in range(n):
            for t in range(k):
                kd[t] = np.inf
            for direction in (1, -1):
                j = i + direction
                while 0 <= j < n and abs(xs[j, 0] - xs[i, 0]) < kd[k - 1]:
                    d = max(_norm(xs, i, j, code, p), _norm(ys, i, j, code, p))
                    if d < kd[k - 1]:
                        t = k - 1
                        while t > 0 and kd[t - 1] > d:
                            kd[t] = kd[t - 1]
                            t -= 1
                        kd[t] = d
                    j += direction
            r[i] = kd[k - 1]
        zeros = 0
        for i in range(n):
            if r[i] == 0.0:
                zeros += 1
        out_zero[s] = zeros
        thr = r * (1.0 - eps)
        cx = np.empty(n, np.int64)
        cy = np.empty(n, np.int64)
        ident = np.arange(n)
        _count_sorted(xs, ident, thr, code, p, cx)
        oy = np.argsort(ys[:, 0])
        ys2 = np.ascontiguousarray(ys[oy])
        _count_sorted(ys2, oy, thr[oy], code, p, cy)
        acc = 0.0
        for i in range(n):
            acc += psi[cx[i] + 1] + psi[cy[i] + 1]
        out_mi[s] = psi[k] + psi[n] - acc / n


def _code(p: float) -> int:
    if math.isinf(p):
        return 0
    return {1.0: 1, 2.0: 2}.get(p, 3)


def _standardised_slices(x, frames):
    """(S, n, dim) projections x @ frames[s], each coordinate scaled to unit variance (MI is
    invariant to it; the max-norm KSG is not, and mixes scales of the two slices otherwise)."""
    proj = np.einsum("nd,sdk->snk", x, frames)
    proj -= proj.mean(axis=1, keepdims=True)
    sd = proj.std(axis=1, keepdims=True)
    if (sd == 0).any():
        raise ValueError(
            "a projection of the data is constant (the data lie in a lower-dimensional "
            "subspace orthogonal to a drawn direction); drop redundant columns"
        )
    return np.ascontiguousarray(proj / sd)


def _per_slice(x, y, theta, phi, estimator, k, p, eps):
    """MI estimate (nats) of every slice, in chunks of _CHUNK slices."""
    n = x.shape[0]
    out = np.empty(theta.shape[0])
    psi = digamma(np.arange(n + 2, dtype=np.float64)) if estimator == "ksg1" else None
    if psi is not None:
        psi[0] = np.nan
    for lo in range(0, theta.shape[0], _CHUNK):
        hi = min(lo + _CHUNK, theta.shape[0])
        px = _standardised_slices(x, theta[lo:hi])
        py = _standardised_slices(y, phi[lo:hi])
        if estimator == "cca":
            out[lo:hi] = [cca_mi(a, b) for a, b in zip(px, py)]
            continue
        zero = np.zeros(hi - lo, np.int64)
        _ksg1_slices(px, py, k, _code(p), p, eps, psi, out[lo:hi], zero)
        if zero.any():
            s = int(np.flatnonzero(zero)[0])
            raise ValueError(
                f"slice {lo + s}: {int(zero[s])} of {n} projected points have their k-th "
                f"nearest neighbour (k = {k}) at distance 0 because of repeated points; "
                f"remove duplicate rows or add jitter to the data"
            )
    return out


def _prepare(x, y, estimator, k, p, eps):
    x = v.as_samples(x, "x")
    y = v.as_samples(y, "y")
    v.check_pair(x, y)
    v.check_choice(estimator, "estimator", SLICE_ESTIMATORS)
    v.check_not_constant(x, "x")
    v.check_not_constant(y, "y")
    k = v.check_k(k, x.shape[0])
    p = v.check_p(p)
    eps = v.check_eps(eps)
    return x, y, k, p, eps


def ksliced_mi(
    x,
    y,
    *,
    dim: int = 2,
    n_slices: int = 64,
    estimator: str = "ksg1",
    k: int = 3,
    p: float = math.inf,
    eps: float = 1e-10,
    seed: int = 0,
    return_slices: bool = False,
):
    """k-sliced MI estimate in nats: the mean over ``n_slices`` random orthonormal frames
    A (d_x x dim), B (d_y x dim) of an estimate of I(A^T X; B^T Y).

    Goldfeld, Greenewald, Nuradha & Reeves 2022, eq. 2 (k-SMI; ``dim`` is their k) and their
    estimator (section 4: m frames, a plug-in MI estimate per frame, averaged). This is
    **not** I(X; Y): it is at most I(X; Y) and, at fixed dim, it falls as the dimension
    grows. For Gaussian data the true value over the same frames is
    ``gaussian_sliced_mi(cov, dx, *slice_frames(dx, dy, n_slices, dim, seed)).mean()``.

    Each projected coordinate is standardised; each frame's MI is estimated by KSG1
    (Kraskov et al. 2004, eq. 8, digamma form, joint distance max(|.|_p, |.|_p); equal to
    ``ksg_mi(A^T x, B^T y, k, p)`` on the standardised projections) in one numba kernel
    parallel over frames, or by the Gaussian/CCA estimator (``estimator="cca"``).

    Parameters
    ----------
    x : (n,) or (n, d_x) real array.
    y : (n,) or (n, d_y) real array with the same n.
    dim : int >= 1, <= min(d_x, d_y): the frame dimension (dim = 1 is sliced MI).
    n_slices : int >= 1, number of frames m.
    estimator : "ksg1" (default) or "cca".
    k : int >= 1 with n > k, KSG neighbours (3, as NPEET and the papers' code).
    p : float >= 1 or inf, the marginal norm of KSG (default inf; irrelevant for dim = 1).
    eps : relative tolerance of the open balls, as in :func:`ksg_mi`.
    seed : int >= 0, draws the frames (:func:`slice_frames`).
    return_slices : also return the (n_slices,) per-frame estimates.

    Returns
    -------
    float (nats), or (float, (n_slices,) array) with ``return_slices``.

    Raises
    ------
    ValueError
        Bad x/y (as :func:`ksg_mi`), a constant x or y or projection, dim > min(d_x, d_y),
        n_slices < 1, unknown estimator, bad k/p/eps/seed, repeated projected points.
    """
    x, y, k, p, eps = _prepare(x, y, estimator, k, p, eps)
    theta, phi = slice_frames(x.shape[1], y.shape[1], n_slices, dim, seed)
    per = _per_slice(x, y, theta, phi, estimator, k, p, eps)
    mean = float(per.mean())
    return (mean, per) if return_slices else mean


def sliced_mi(
    x,
    y,
    *,
    n_slices: int = 128,
    estimator: str = "ksg1",
    k: int = 3,
    eps: float = 1e-10,
    seed: int = 0,
    return_slices: bool = False,
):
    """Sliced MI estimate in nats: the mean over ``n_slices`` random unit directions theta,
    phi (uniform on the spheres) of an estimate of I(theta^T X; phi^T Y).

    Goldfeld & Greenewald 2021, Definition 1 (SI) and section 4 (the estimator: m slices, a
    1-D MI estimate per slice, averaged). **Not** I(X; Y): SI <= I(X; Y), and for
    high-dimensional data it is far below it. :func:`ksliced_mi` with dim = 1; the per-slice
    estimator is KSG1 (k = 3, one numba kernel over all slices) or "cca".

    Parameters, returns and errors as :func:`ksliced_mi` (no ``dim``; p does not apply).
    """
    return ksliced_mi(
        x, y, dim=1, n_slices=n_slices, estimator=estimator, k=k, p=math.inf, eps=eps,
        seed=seed, return_slices=return_slices,
    )


def max_sliced_mi(
    x,
    y,
    *,
    k: int = 3,
    split: float = 0.5,
    eps: float = 1e-10,
    seed: int = 0,
) -> float:
    """Max-sliced MI estimate in nats: the directions are the first canonical pair of a
    seeded random ``split`` fraction of the rows (the maximiser of the slice MI for Gaussian
    data), and I(theta^T X; phi^T Y) is estimated by KSG1 (k) on the other rows.

    Tsur, Goldfeld & Greenewald 2023 (max-SMI, Definition 1). They maximise a neural
    estimate over the directions; the CCA directions are exact for Gaussians and a
    linear-dependence heuristic otherwise, so for non-Gaussian data this is a lower
    estimate of max-SMI. Not I(X; Y). True value for a Gaussian:
    :func:`gaussian_max_sliced_mi`.

    Raises ValueError on bad x/y/k/eps/seed, ``split`` outside (0, 1), fewer than
    d_x + d_y + 2 rows on the fitting side, or a singular covariance there.
    """
    x = v.as_samples(x, "x")
    y = v.as_samples(y, "y")
    v.check_pair(x, y)
    seed = v.check_seed(seed)
    if isinstance(split, bool) or not isinstance(split, numbers.Real) or not 0 < split < 1:
        raise ValueError(f"split must be a fraction in (0, 1), got {split!r}")
    n = x.shape[0]
    n_fit = round(split * n)
    if n_fit < x.shape[1] + y.shape[1] + 2 or n - n_fit <= k:
        raise ValueError(
            f"split = {split} of n = {n} leaves {n_fit} rows to fit the directions (need > "
            f"d_x + d_y + 1 = {x.shape[1] + y.shape[1] + 1}) and {n - n_fit} to estimate "
            f"(need > k = {k})"
        )
    perm = np.random.default_rng(seed).permutation(n)
    fit, est = np.sort(perm[:n_fit]), np.sort(perm[n_fit:])
    z = np.concatenate([x[fit], y[fit]], axis=1)
    cov = np.cov(z, rowvar=False)
    try:
        _, theta, phi = _canonical(cov, x.shape[1])
    except np.linalg.LinAlgError:
        raise ValueError(
            "max_sliced_mi: the sample covariance of the fitting rows is singular (a "
            "constant or collinear column); drop redundant columns"
        ) from None
    return ksg_mi(x[est] @ theta, y[est] @ phi, k=k, eps=eps)
