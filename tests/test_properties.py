"""Property-based tests (hypothesis) of the nearest-neighbour estimators.

For any finite input with enough distinct points the estimators return a finite number,
unchanged by permuting rows, translating, or rescaling x and y together, and (KSG, kNN MI)
symmetric in x and y. Inputs that break the preconditions raise a ValueError.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mipipe.estimators import knn_entropy, knn_mi, ksg_mi

SETTINGS = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

ESTIMATORS = {
    "knn": lambda x, y, **kw: knn_mi(x, y, **kw),
    "ksg1": lambda x, y, **kw: ksg_mi(x, y, variant=1, **kw),
    "ksg2": lambda x, y, **kw: ksg_mi(x, y, variant=2, **kw),
}
NORMS = [1.0, 2.0, 3.0, math.inf]


@st.composite
def samples(draw, min_n=8, max_n=60):
    """(x, y) of continuous-looking data: finite floats on a random common scale, with
    distinct rows and no ties among pairwise distances (checked, else the example is
    discarded), so every estimator's preconditions hold."""
    n = draw(st.integers(min_n, max_n))
    dx = draw(st.integers(1, 3))
    dy = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scale = 10.0 ** draw(st.integers(-8, 8))
    x = rng.standard_normal((n, dx)) * scale
    y = (x[:, :1] * draw(st.floats(-2, 2)) + rng.standard_normal((n, dy))) * scale
    return x, y


def _rows_distinct(a):
    return len(np.unique(a, axis=0)) == len(a)


@SETTINGS
@given(data=samples(), est=st.sampled_from(sorted(ESTIMATORS)), p=st.sampled_from(NORMS),
       k=st.integers(1, 3), perm_seed=st.integers(0, 1000))
def test_finite_and_invariant_to_row_order_translation_and_common_scale(data, est, p, k, perm_seed):
    x, y = data
    f = ESTIMATORS[est]
    value = f(x, y, k=k, p=p)
    assert math.isfinite(value)
    perm = np.random.default_rng(perm_seed).permutation(len(x))
    assert f(x[perm], y[perm], k=k, p=p) == pytest.approx(value, abs=1e-9)
    # a common power-of-two scale is exact in floating point: identical estimates
    assert f(x * 2.0**-30, y * 2.0**30 * 2.0**-60, k=k, p=p) == pytest.approx(value, abs=1e-9)
    # translation by a few standard deviations changes the rounding of x - x_j only slightly
    shift_x = 3.0 * x.std()
    shift_y = -2.0 * y.std()
    assert f(x + shift_x, y + shift_y, k=k, p=p) == pytest.approx(value, abs=1e-6)


@SETTINGS
@given(data=samples(), est=st.sampled_from(sorted(ESTIMATORS)), p=st.sampled_from(NORMS),
       k=st.integers(1, 3))
def test_symmetric_in_x_and_y(data, est, p, k):
    """KSG's joint metric max(|dx|, |dy|) and kNN's H(X) + H(Y) - H(X, Y) are symmetric."""
    x, y = data
    f = ESTIMATORS[est]
    assert f(x, y, k=k, p=p) == pytest.approx(f(y, x, k=k, p=p), abs=1e-9)


@SETTINGS
@given(data=samples(), p=st.sampled_from(NORMS), k=st.integers(1, 3),
       log2_scale=st.integers(-40, 40))
def test_entropy_shifts_by_d_log_scale(data, p, k, log2_scale):
    x, _ = data
    s = 2.0**log2_scale
    h = knn_entropy(x, k=k, p=p)
    assert math.isfinite(h)
    assert knn_entropy(x * s, k=k, p=p) == pytest.approx(h + x.shape[1] * math.log(s), abs=1e-9)


@SETTINGS
@given(n=st.integers(2, 30), d=st.integers(1, 3), k=st.integers(1, 5),
       values=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=4),
       est=st.sampled_from(sorted(ESTIMATORS)))
def test_repeated_values_raise_or_give_a_finite_number(n, d, k, values, est):
    """Data drawn from a handful of values (heavy ties): either a ValueError that says what
    is wrong, or a finite number; never NaN or -inf."""
    rng = np.random.default_rng(n * 31 + d)
    x = rng.choice(np.asarray(values), size=(n, d))
    y = rng.choice(np.asarray(values), size=(n, d))
    try:
        value = ESTIMATORS[est](x, y, k=k)
    except ValueError as exc:
        msg = str(exc)
        assert any(word in msg for word in ("constant", "distance 0", "tied", "n > k", "n = "))
    else:
        assert math.isfinite(value)


@SETTINGS
@given(x=arrays(np.float64, st.tuples(st.integers(3, 20), st.integers(1, 3)),
                elements=st.floats(allow_nan=True, allow_infinity=True)),
       est=st.sampled_from(sorted(ESTIMATORS)))
def test_any_float_array_gives_a_finite_value_or_a_value_error(x, est):
    """Arbitrary float64 arrays, NaN and inf included, against a continuous y."""
    y = np.random.default_rng(0).standard_normal(len(x))
    try:
        value = ESTIMATORS[est](x, y, k=1)
    except ValueError:
        return
    assume(_rows_distinct(x))
    assert math.isfinite(value)
