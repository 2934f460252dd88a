"""Input checks shared by the nearest-neighbour estimators.

Every public estimator funnels its arguments through these helpers first, so a bad input
fails with one clear :class:`ValueError` that names the argument and the problem before any
work is done.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

CORRECTIONS = ("digamma", "log")
METHODS = ("auto", "tree", "brute")


def as_samples(a, name: str) -> np.ndarray:
    """Return ``a`` as a C-contiguous ``(n, d)`` float64 array, or raise ``ValueError``.

    Accepts ``(n,)`` (one variable) and ``(n, d)`` arrays of any real dtype, integers and
    booleans included.
    """
    if isinstance(a, np.ma.MaskedArray):
        raise ValueError(
            f"{name} is a masked array; masks are not supported: drop or impute the masked "
            f"values and pass a plain array"
        )
    try:
        arr = np.asarray(a)
    except Exception as exc:  # pragma: no cover - exotic objects
        raise ValueError(f"{name} could not be converted to an array: {exc}") from exc
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_
    ):
        raise ValueError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be real, got complex dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[:, None]
    elif arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 1-D (n,) or 2-D (n, d) array, got {arr.ndim}-D with shape {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has no samples (shape {arr.shape})")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has no dimensions (shape {arr.shape})")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    finite = np.isfinite(arr)
    if not finite.all():
        bad = np.argwhere(~finite)[0]
        kind = "NaN" if np.isnan(arr[bad[0], bad[1]]) else "inf"
        count = int((~finite).sum())
        raise ValueError(
            f"{name} contains {count} non-finite value(s) ({kind} first at row {bad[0]}, "
            f"column {bad[1]}); remove or impute them before estimating"
        )
    return arr


def check_pair(x: np.ndarray, y: np.ndarray) -> None:
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"x and y must have the same number of samples (rows), got {x.shape[0]} and {y.shape[0]}"
        )


def check_k(k, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise ValueError(f"k must be a positive integer, got {k!r}")
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be >= 1, got k = {k}")
    if n <= k:
        raise ValueError(
            f"need more samples than neighbours: n = {n} samples but k = {k}; "
            f"the k-th nearest neighbour (itself excluded) needs n > k"
        )
    return k


# the spellings of the max (Chebyshev) norm accepted from a config file or a caller
INF_NORM_NAMES = ("inf", ".inf", "infinity", "max", "chebyshev")


def check_p(p, name: str = "p") -> float:
    """The Minkowski norm p as a float in [1, inf]: a real number >= 1, or inf given as
    ``math.inf`` or one of :data:`INF_NORM_NAMES` (YAML's ``.inf`` read as a string).

    The one parser of norms: the estimators, the synthetic grids and the dataset-inference
    MI all call it, so a norm the config check accepts is one every stage can use.
    Raises ``ValueError`` naming ``name`` for anything else (p < 1, NaN, other strings).
    """
    if isinstance(p, str):
        if p.strip().lower() in INF_NORM_NAMES:
            return math.inf
        raise ValueError(f"{name} must be a real number >= 1 or inf, got {p!r}")
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise ValueError(f"{name} must be a real number >= 1 or inf, got {p!r}")
    try:
        p = float(p)
    except OverflowError:
        p = math.inf
    if math.isnan(p) or p < 1:
        raise ValueError(
            f"{name} must be >= 1 (p < 1 is not a norm: the triangle inequality fails), got "
            f"p = {p}"
        )
    return p


def check_choice(value, name: str, allowed) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return value


EPS_MAX = 1e-3


def check_eps(eps) -> float:
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not math.isfinite(eps):
        raise ValueError(f"eps must be a finite real number >= 0, got {eps!r}")
    eps = float(eps)
    if eps < 0 or eps > EPS_MAX:
        raise ValueError(
            f"eps is a tiny relative guard against rounding (thesis: 1e-12 ... 1e-8, default "
            f"1e-10) and must lie in [0, {EPS_MAX:g}]; got eps = {eps}, which would change "
            f"which neighbours are counted"
        )
    return eps


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def check_jitter(jitter):
    if jitter is None:
        return None
    if isinstance(jitter, bool) or not isinstance(jitter, numbers.Real) or not (
        math.isfinite(jitter) and jitter > 0
    ):
        raise ValueError(f"jitter must be None or a finite number > 0, got {jitter!r}")
    return float(jitter)


def check_not_constant(arr: np.ndarray, name: str) -> None:
    """Raise if every row of ``arr`` is identical: a constant variable has no density (its
    differential entropy is -inf and its MI with anything is 0), so the nearest-neighbour
    estimators do not apply, and jitter would only measure the noise."""
    if (arr == arr[0]).all():
        raise ValueError(
            f"{name} is constant (all {arr.shape[0]} rows equal {arr[0].tolist()[:8]}): it has "
            f"no density, its MI with any variable is 0, and the nearest-neighbour estimators "
            f"are undefined for it (jitter would only measure the added noise); drop it"
        )


def check_no_constant_column(arr: np.ndarray, name: str, estimator: str) -> None:
    """kNN entropy needs a density on all of R^d: a constant column makes it degenerate."""
    const = np.flatnonzero((arr == arr[0]).all(axis=0))
    if const.size:
        raise ValueError(
            f"{estimator}: {name} column(s) {const.tolist()[:10]} are constant; the k-NN "
            f"entropy assumes a density on all {arr.shape[1]} dimensions and is not defined "
            f"then. Drop constant columns (they carry no information), or use ksg_mi, which "
            f"only counts neighbours"
        )


def condition(arrays):
    """Multiply all arrays by one common power of two so that the largest magnitude lies in
    [0.5, 1); exact in floating point. Returns ``(arrays, log_scale)`` with distances shrunk
    by exp(log_scale)."""
    biggest = max(float(np.abs(a).max()) for a in arrays)
    exponent = math.frexp(biggest)[1]  # biggest = m * 2**exponent, 0.5 <= m < 1
    return [np.ldexp(a, -exponent) for a in arrays], exponent * math.log(2.0)


def check_scales(before, after, names) -> None:
    """After the common conditioning, a variable that collapsed to constant lived on a scale
    about 1e300 times smaller than the other: no common float64 grid holds both."""
    for b, a, name in zip(before, after, names):
        if not (b == b[0]).all() and (a == a[0]).all():
            raise ValueError(
                f"{name} is about 1e300 times smaller in scale than the other variable; "
                f"float64 cannot hold both on one grid. Standardise each variable first "
                f"(note the estimators are invariant to a common rescaling of x and y, not to "
                f"rescaling one of them)"
            )


def add_jitter(arr: np.ndarray, jitter: float, rng: np.random.Generator) -> np.ndarray:
    """Centre each column on its median, then add N(0, (jitter * s_c)^2) noise, s_c the
    column's standard deviation.

    Centring first keeps the noise above the floating-point resolution of the values
    whatever their offset (the estimators are translation invariant). A constant column
    inside a non-constant variable takes the mean standard deviation of the variable's
    other columns. The noise is drawn from ``rng``, so a fixed seed gives a fixed result.
    """
    arr = arr - np.median(arr, axis=0)
    scale = arr.std(axis=0)
    const = scale == 0
    if const.any():
        scale = scale.copy()
        scale[const] = scale[~const].mean()
    return np.ascontiguousarray(arr + jitter * scale * rng.standard_normal(arr.shape))


def repeated_points_error(name: str, count: int, n: int, k: int, jitter=None) -> ValueError:
    if jitter is not None:
        return ValueError(
            f"{name}: even after jitter={jitter:g}, {count} of {n} points have their k-th "
            f"nearest neighbour (k = {k}) at distance 0: the noise fell below the "
            f"floating-point resolution of the values. Pass a larger jitter, e.g. 1e-6"
        )
    return ValueError(
        f"{name}: {count} of {n} points have their k-th nearest neighbour (k = {k}) at "
        f"distance 0 because of repeated points; the estimate would involve log 0. Remedies: "
        f"remove duplicate rows if the data are continuous but were duplicated, or pass "
        f"jitter=1e-8 to add seeded noise scaled to each column's spread, which treats each "
        f"group of repeated points as one atom (e.g. log 5 for x = y taking 5 equiprobable "
        f"values; see the docstring)"
    )


def distance_ties_error(count: int, n: int, k: int) -> ValueError:
    return ValueError(
        f"ksg_mi (variant 2): for {count} of {n} points the k-th and (k+1)-th joint nearest "
        f"neighbours (k = {k}) are at the same distance (tied distances, e.g. integer-valued "
        f"data), so the k nearest neighbours, and KSG2's marginal radii, depend on row order. "
        f"Pass jitter=1e-8 to break the ties with seeded noise, or use variant 1, which only "
        f"needs the k-th distance"
    )
