"""Neural MI estimators (MINE, NWJ, InfoNCE), their bounds and the fused InfoNCE critic.

Reference values: the analytic MI of a correlated Gaussian, -1/2 log(1 - rho^2), and its
analytic log density ratio (the optimal critic); the tiled (thesis/CLUB) critic as the
exact reference for the fused and broadcasting forms. Runtime: about 40 s on 2 loaded cores
(numba kernels cached after the first run; the first run compiles them, ~20 s more).
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pandas as pd
import pytest
import torch

from mipipe.estimators import (
    NeuralResult,
    neural,
    TrainingDiverged,
    _critic,
    dv_bound,
    infonce_bound,
    infonce_mi,
    mine_mi,
    nwj_bound,
    nwj_mi,
    smile_bound,
    smile_mi,
)
from mipipe.estimators.bounds import infonce_from_rows, js_bound
from mipipe.estimators.neural import TRACE_COLUMNS, _batches, _make_critic

CPU = torch.device("cpu")


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """The tests' batches are tiny: torch's intra-op threads only add contention (on a loaded
    2-core machine a 480-step MINE run took 63 s on 2 threads and 5 s on 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def gaussian(n: int, rho: float, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    y = rho * x + math.sqrt(1 - rho**2) * rng.standard_normal(n)
    return x, y


def true_mi(rho: float) -> float:
    return -0.5 * math.log(1 - rho**2)


def log_ratio(x, y, rho: float):
    """log p(x, y) / (p(x) p(y)) of the standard bivariate normal with correlation rho."""
    q = (rho**2 * x**2 - 2 * rho * x * y + rho**2 * y**2) / (2 * (1 - rho**2))
    return -0.5 * math.log(1 - rho**2) - q


# --------------------------------------------------------------------------- bounds
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_infonce_never_above_log_b(dtype):
    gen = torch.Generator().manual_seed(1)
    for b in (1, 2, 7, 100, 333):
        log_b = math.log(b)
        cases = [
            torch.randn(b, b, generator=gen, dtype=dtype),
            1e3 * torch.randn(b, b, generator=gen, dtype=dtype),
            torch.full((b, b), 1e3, dtype=dtype),
            torch.diag(torch.full((b,), 1e3, dtype=dtype)) - 1e3,  # perfect separation
            torch.diag(torch.full((b,), 1e30, dtype=dtype)),
        ]
        for scores in cases:
            value = float(infonce_bound(scores))
            assert math.isfinite(value)
            assert value <= log_b, (b, value, log_b)
    # perfect separation reaches log b (to the dtype's rounding)
    scores = torch.diag(torch.full((50,), 1e3, dtype=dtype)) - 1e3
    assert float(infonce_bound(scores)) == pytest.approx(math.log(50), rel=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("big", [100.0, 1000.0])
def test_large_critic_outputs_give_finite_bounds_and_gradients(dtype, big):
    gen = torch.Generator().manual_seed(2)
    tj = (big + torch.randn(64, generator=gen, dtype=dtype)).requires_grad_()
    tm = (big + torch.randn(64, generator=gen, dtype=dtype)).requires_grad_()
    for fn in (dv_bound, nwj_bound):
        value = fn(tj, tm)
        value.backward()
        assert math.isfinite(float(value.detach())), fn.__name__
        assert torch.isfinite(tj.grad).all() and torch.isfinite(tm.grad).all(), fn.__name__
        tj.grad = tm.grad = None
    # DV of a constant critic is exactly 0; NWJ of T = big is 'big - e^(big - 1)', hugely
    # negative but finite (the exponential is continued slowly above log(max) - 4)
    assert float(
        dv_bound(torch.full((8,), big, dtype=dtype), torch.full((8,), big, dtype=dtype))
    ) == pytest.approx(0, abs=1e-3)
    nwj = float(nwj_bound(torch.full((8,), big, dtype=dtype), torch.full((8,), big, dtype=dtype)))
    assert nwj < -1e30 and math.isfinite(nwj)
    scores = (big * torch.rand(40, 40, generator=gen, dtype=dtype)).requires_grad_()
    value = infonce_bound(scores)
    value.backward()
    value = float(value.detach())
    assert math.isfinite(value) and value <= math.log(40)
    assert torch.isfinite(scores.grad).all()


def test_nwj_below_cap_is_the_plain_formula():
    gen = torch.Generator().manual_seed(3)
    tj = torch.randn(100, generator=gen, dtype=torch.float64)
    tm = 3 * torch.randn(100, generator=gen, dtype=torch.float64)
    assert float(nwj_bound(tj, tm)) == pytest.approx(
        float(tj.mean() - torch.exp(tm - 1).mean()), rel=1e-13
    )
    assert float(dv_bound(tj, tm)) == pytest.approx(
        float(tj.mean() - torch.log(torch.exp(tm).mean())), rel=1e-13
    )


def test_bounds_with_the_optimal_critic_of_a_gaussian_match_the_true_mi():
    """rho = 0.5, 1-D, n = 20000: the analytic log density ratio as critic."""
    rho, n = 0.5, 20000
    x, y = gaussian(n, rho, seed=11)
    mi = true_mi(rho)  # 0.1438
    perm = np.random.default_rng(12).permutation(n)
    t_joint = torch.from_numpy(log_ratio(x, y, rho))
    t_marg = torch.from_numpy(log_ratio(x, y[perm], rho))
    dv = float(dv_bound(t_joint, t_marg))
    nwj = float(nwj_bound(1 + t_joint, 1 + t_marg))  # NWJ's optimal critic: 1 + log ratio
    # InfoNCE: scores[i, j] = r(x_j, y_i) on 10 batches of 2000 (a 20000^2 matrix is 3 GB)
    values = []
    for lo in range(0, n, 2000):
        xb, yb = x[lo : lo + 2000], y[lo : lo + 2000]
        scores = torch.from_numpy(log_ratio(xb[None, :], yb[:, None], rho))
        values.append(float(infonce_bound(scores)))
    nce = float(np.mean(values))
    for name, value in (("dv", dv), ("nwj", nwj), ("infonce", nce)):
        assert abs(value - mi) < 0.05, (name, value, mi)
    # and a useless critic (constant) gives 0 for DV and InfoNCE
    assert float(dv_bound(torch.zeros(5), torch.zeros(7))) == pytest.approx(0, abs=1e-6)
    assert float(infonce_bound(torch.zeros(9, 9))) == pytest.approx(0, abs=1e-6)


def test_bound_input_errors():
    with pytest.raises(ValueError, match="square"):
        infonce_bound(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="2-D"):
        infonce_bound(torch.zeros(3))
    with pytest.raises(ValueError, match="empty"):
        dv_bound(torch.zeros(0), torch.zeros(3))
    with pytest.raises(ValueError, match="tensor"):
        nwj_bound(np.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="floating"):
        dv_bound(torch.zeros(3, dtype=torch.int64), torch.zeros(3))


# --------------------------------------------------------------------------- critic forms
def _grads(net, fn):
    net.zero_grad()
    out = fn()
    weights = torch.linspace(-1, 2, out.numel(), dtype=out.dtype, device=out.device).reshape(
        out.shape
    )
    (out * weights).sum().backward()
    return [out.detach().clone()] + [p.grad.detach().clone() for p in net.parameters()]


def _rel(u, v):
    return float((u - v).abs().max() / v.abs().max().clamp_min(1e-30))


# Relative to the largest entry. float64: all forms agree to 1e-10. float32: the critic matrix
# and the InfoNCE bound to 1e-5; gradients to 5e-5, as they are sums of b^2 = 4489 terms of
# O(1) with cancellation, rounded in different orders (float32 eps 6e-8 x 4489 ~ 3e-4 of
# one term in the worst case).
TOL = {torch.float64: (1e-10, 1e-10), torch.float32: (1e-5, 5e-5)}


def _check_close(got, ref, dtype, name):
    for label, u, v in zip(("value", "W1", "b1", "w2", "b2"), got, ref):
        tol = TOL[dtype][0 if label == "value" else 1]
        assert _rel(u, v) < tol, (name, label, _rel(u, v))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_broadcast_and_tiled_critic_matrix_and_gradients_agree(dtype):
    gen = torch.Generator().manual_seed(4)
    b, dx, dy, h = 67, 3, 2, 21  # h not a multiple of the SIMD padding
    x = torch.randn(b, dx, generator=gen, dtype=dtype)
    y = torch.randn(b, dy, generator=gen, dtype=dtype)
    net = _make_critic(dx + dy, h, True, 5, dtype, CPU)
    ref = _grads(net, lambda: _critic.tiled_logits(net, x, y))
    # the tiled form is the critic applied pair by pair: scores[i, j] = F(x_j, y_i)
    direct = net[2](net[1](net[0](torch.cat([x[3], y[5]])))).squeeze()
    assert float(ref[0][5, 3]) == pytest.approx(float(direct.detach()), rel=1e-6)
    forms = {
        "fused": lambda: _critic.fused_logits(net, x, y),
        "broadcast": lambda: _critic.broadcast_logits(net, x, y),
        "broadcast chunked": lambda: _critic.broadcast_logits(net, x, y, chunk=10),
    }
    for name, fn in forms.items():
        _check_close(_grads(net, fn), ref, dtype, name)
    # the fused InfoNCE row terms (softplus and log-sum-exp inside the kernels)
    fused = _grads(net, lambda: infonce_from_rows(_critic.fused_infonce_rows(net, x, y)).reshape(1))
    tiled = _grads(net, lambda: infonce_bound(net[3](_critic.tiled_logits(net, x, y))).reshape(1))
    _check_close(fused, tiled, dtype, "infonce rows")


def test_fused_infonce_is_finite_and_below_log_b_for_huge_critic_outputs():
    b = 40
    x = torch.randn(b, 2, generator=torch.Generator().manual_seed(6))
    y = x + 0.1
    for scale in (100.0, 1000.0):
        net = _make_critic(4, 8, True, 0, torch.float32, CPU)
        with torch.no_grad():
            net[2].weight.mul_(scale)
            net[2].bias.fill_(scale)
        out = infonce_from_rows(_critic.fused_infonce_rows(net, x, y))
        out.backward()
        assert math.isfinite(float(out.detach())) and float(out.detach()) <= math.log(b)
        assert all(torch.isfinite(p.grad).all() for p in net.parameters())


def test_vectorised_float32_exponential_matches_libm():
    rng = np.random.default_rng(9)
    src = np.concatenate([rng.uniform(-90, 0, 20000), [0.0, -1e-8, -86.9, -87.0, -88.0, -1e3]])
    src = src.astype(np.float32)
    shift = np.float32(0.0)
    out, scratch = np.empty_like(src), np.empty_like(src)
    _critic._exp_shifted(src, shift, out, scratch)
    ref = np.exp(src.astype(np.float64))
    normal = ref > 2e-38
    assert np.max(np.abs(out[normal] - ref[normal]) / ref[normal]) < 5e-7
    assert (out[~normal] <= 2e-38).all() and (out[~normal] > 0).all()
    assert out[src == 0][0] == 1.0
    src64 = src.astype(np.float64)
    out64 = np.empty_like(src64)
    _critic._exp_shifted(src64, 1.5, out64, np.empty_like(src64))
    assert np.allclose(out64, np.exp(src64 - 1.5), rtol=1e-15, atol=0)


@pytest.mark.parametrize("offset", [0.0, 40.0])
def test_fused_float32_is_as_accurate_as_the_tiled_form_under_a_large_offset(offset):
    # dw2 is computed as sum_j a_jk dA_jk + sum_i c_ik dC_ik (an O(b h) identity after the
    # pass over the pairs), and the logits as base_i + sum_k w2_k max(a_jk, -c_ik). With
    # pre-activations a = -40 + ..., c = 40 + ... both have large opposite terms; centred as
    # in _finish they stay within 2x the float32 error of the thesis's own tiled form
    # (measured at offset 40, relative to the largest entry: W1 1.6e-6 vs 2.3e-6, w2 5.5e-6
    # vs 6.6e-6; without the centring w2 is 1.7e-5, 2.6x). Reference: float64 tiled.
    gen = torch.Generator().manual_seed(11)
    b, dx, dy, h = 120, 3, 2, 21
    x = torch.randn(b, dx, generator=gen, dtype=torch.float64)
    y = torch.randn(b, dy, generator=gen, dtype=torch.float64) + offset
    net64 = _make_critic(dx + dy, h, True, 5, torch.float64, CPU)
    with torch.no_grad():
        net64[0].weight[:, dx:] = 1.0 / dy
        net64[0].bias.fill_(-offset)
    net32 = _make_critic(dx + dy, h, True, 5, torch.float32, CPU)
    net32.load_state_dict({k: v.float() for k, v in net64.state_dict().items()})
    x32, y32 = x.float(), y.float()

    def tiled(net, x, y):
        return lambda: infonce_bound(net[3](_critic.tiled_logits(net, x, y))).reshape(1)

    ref = _grads(net64, tiled(net64, x, y))
    thesis32 = _grads(net32, tiled(net32, x32, y32))
    fused = _grads(
        net32, lambda: infonce_from_rows(_critic.fused_infonce_rows(net32, x32, y32)).reshape(1)
    )
    for label, u, t, v in zip(("value", "W1", "b1", "w2", "b2"), fused, thesis32, ref):
        err, err_thesis = _rel(u.double(), v), _rel(t.double(), v)
        assert err <= max(2 * err_thesis, 1e-6), (offset, label, err, err_thesis)


def test_fused_kernels_do_not_depend_on_the_arrays_alignment():
    # The vectorised loops must not peel iterations by address: the same values at another
    # offset in memory give the same bits (a run's arrays land wherever the allocator puts them).
    rng = np.random.default_rng(12)
    b, hp = 203, 32
    base = {
        "aT": rng.standard_normal((hp, b)).astype(np.float32),
        "nc": rng.standard_normal((b, hp)).astype(np.float32),
    }
    w2 = rng.standard_normal(hp).astype(np.float32)
    off = rng.standard_normal(b).astype(np.float32)

    def shifted(arr, shift):
        buf = np.empty(arr.size + 16, dtype=arr.dtype)
        view = buf[shift : shift + arr.size].reshape(arr.shape)
        view[...] = arr
        return view

    results = []
    for shift in (0, 1, 3, 7):
        aT, nc = shifted(base["aT"], shift), shifted(base["nc"], shift)
        terms = np.empty((b, b), np.float32)
        scale, psum = np.empty(b), np.empty(b)
        zdiag, lse, rows = (np.empty(b, np.float32) for _ in range(3))
        _critic._infonce_rows_kernel(aT, nc, w2, off, terms, scale, zdiag, lse, psum, rows)
        sig = (1 / (1 + np.exp(-zdiag))).astype(np.float32)
        g = np.linspace(-1, 1, b).astype(np.float32)
        dAT, dC = np.zeros((2, hp, b), np.float32), np.zeros((b, hp), np.float32)
        _critic._infonce_grad_kernel(aT, nc, shifted(terms, shift), scale, sig, g, 2, dAT, dC)
        results.append((terms, lse, rows, dAT, dC))
    for other in results[1:]:
        for u, v in zip(results[0], other):
            assert np.array_equal(u, v)


def test_fused_kernels_are_bit_identical_across_thread_counts(monkeypatch):
    monkeypatch.setattr(_critic, "_PARALLEL_MIN_WORK", 0)  # parallel even for this small batch
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(150, 4, generator=gen)
    y = torch.randn(150, 3, generator=gen)
    net = _make_critic(7, 30, True, 1, torch.float32, CPU)
    before = numba.get_num_threads()
    results = []
    try:
        for threads in sorted({1, before}):
            numba.set_num_threads(threads)
            results.append(
                _grads(
                    net, lambda: infonce_from_rows(_critic.fused_infonce_rows(net, x, y)).reshape(1)
                )
            )
            results.append(_grads(net, lambda: _critic.fused_logits(net, x, y)))
    finally:
        numba.set_num_threads(before)
    for u, v in zip(results[0] + results[1], results[-2] + results[-1]):
        assert torch.equal(u, v)


# --------------------------------------------------------------------------- training
def test_batches_follow_the_thesis_protocol():
    assert _batches(10000, 3334) == [(0, 3334), (3334, 6668), (6668, 10000)]
    assert _batches(100, 3334) == [(0, 100)]
    assert _batches(7, 3) == [(0, 3), (3, 7)]  # a 1-row tail joins the previous batch
    assert _batches(8, 3) == [(0, 3), (3, 6), (6, 8)]


# Trained estimators on a 1-D Gaussian with rho = 0.8 (MI 0.5108). The thesis's settings
# (n = 10000, batch 3334, 300 epochs) take minutes; here n = 4000 in batches of 500 gives
# 8 Adam steps per epoch, and 60 epochs (480 steps) at lr 0.01 converge within a few seconds
# (InfoNCE ~5 s CPU). All three land 0.02-0.03 below the true MI (seed 21: MINE -0.023,
# NWJ -0.027, InfoNCE -0.021; data seed 5: -0.016, -0.019, -0.006): a lower bound with a
# 30-unit critic; averaging the last 20 steps removes most of the per-batch noise.
TRAIN = {"hidden": 30, "lr": 0.01, "epochs": 60, "batch_size": 500, "seed": 0, "device": "cpu"}


@pytest.mark.parametrize("estimator", [mine_mi, nwj_mi, infonce_mi])
def test_trained_estimators_recover_gaussian_mi(estimator):
    x, y = gaussian(4000, 0.8, seed=21)
    result = estimator(x, y, **TRAIN)
    assert isinstance(result, NeuralResult) and result.device == "cpu"
    assert abs(result.estimate - true_mi(0.8)) < 0.05, (estimator.__name__, result.estimate)
    assert float(result) == result.estimate
    assert result.estimate == pytest.approx(result.trace["estimate_nats"].to_numpy()[-20:].mean())
    assert result.seconds > 0
    assert len(result.trace) == 60 * 8


def test_trace_columns_and_types_and_progress_callback():
    x, y = gaussian(300, 0.8, seed=22)
    calls = []
    result = infonce_mi(
        x, y, hidden=5, epochs=3, batch_size=100, progress=lambda s, r: calls.append((s, r))
    )
    trace = result.trace
    assert tuple(trace.columns) == TRACE_COLUMNS
    assert [str(t) for t in trace.dtypes] == ["int64"] * 3 + ["float64"] * 3
    assert trace["step"].tolist() == list(range(9))
    assert trace["epoch"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert trace["batch"].tolist() == [0, 1, 2] * 3
    assert trace["heldout_nats"].isna().all()
    assert [s for s, _ in calls] == list(range(9))
    assert calls[4][1]["estimate_nats"] == trace["estimate_nats"][4]
    assert set(calls[0][1]) == set(TRACE_COLUMNS)
    assert (trace["estimate_nats"] <= math.log(100)).all()
    assert trace["loss"].to_numpy() == pytest.approx(-trace["estimate_nats"].to_numpy())
    infonce_mi(x, y, hidden=5, epochs=1, batch_size=100, progress=True)  # tqdm bar runs


@pytest.mark.parametrize(
    "estimator, options",
    [
        (infonce_mi, {}),
        (infonce_mi, {"form": "broadcast", "shuffle": True}),
        (mine_mi, {"holdout": 0.25}),
        (mine_mi, {"ema": 0.1, "shuffle": True}),
        (nwj_mi, {}),
    ],
)
def test_same_seed_identical_different_seed_different(estimator, options):
    x, y = gaussian(400, 0.8, seed=23)
    kw = dict(hidden=8, epochs=4, batch_size=100, device="cpu", **options)
    a = estimator(x, y, seed=3, **kw)
    b = estimator(x, y, seed=3, **kw)
    c = estimator(x, y, seed=4, **kw)
    assert a.estimate == b.estimate
    pd.testing.assert_frame_equal(a.trace, b.trace, check_exact=True)
    assert not np.array_equal(
        a.trace["estimate_nats"].to_numpy(), c.trace["estimate_nats"].to_numpy()
    )


def test_infonce_forms_train_identically_to_float_tolerance():
    x, y = gaussian(300, 0.8, seed=24)
    kw = {"hidden": 6, "epochs": 3, "batch_size": 100, "dtype": "float64"}
    traces = [
        infonce_mi(x, y, form=f, **kw).trace["estimate_nats"].to_numpy()
        for f in ("fused", "broadcast", "tiled")
    ]
    assert traces[0] == pytest.approx(traces[2], rel=1e-9, abs=1e-12)
    assert traces[1] == pytest.approx(traces[2], rel=1e-9, abs=1e-12)


def test_holdout_estimates_on_held_out_rows():
    x, y = gaussian(400, 0.8, seed=25)
    result = mine_mi(x, y, hidden=8, epochs=5, batch_size=100, holdout=0.25, last=5)
    held = result.trace["heldout_nats"].to_numpy()
    assert np.isfinite(held).all() and len(held) == 5 * 3  # 300 training rows, 3 batches
    assert result.estimate == pytest.approx(held[-5:].mean())
    assert not np.array_equal(held, result.trace["estimate_nats"].to_numpy())


def test_mine_moving_average_of_rate_one_is_the_plain_gradient():
    """With alpha = 1 the moving average is the batch's own mean exp T, so the bias-corrected
    gradient (Belghazi et al. 2018, section 3.2) equals the plain gradient of the DV bound."""
    x, y = gaussian(300, 0.8, seed=26)
    kw = {"hidden": 8, "epochs": 4, "batch_size": 100, "dtype": "float64"}
    plain = mine_mi(x, y, **kw).trace["estimate_nats"].to_numpy()
    ema1 = mine_mi(x, y, ema=1.0, **kw).trace["estimate_nats"].to_numpy()
    ema_small = mine_mi(x, y, ema=0.01, **kw).trace["estimate_nats"].to_numpy()
    assert ema1 == pytest.approx(plain, rel=1e-10, abs=1e-12)
    assert not np.allclose(ema_small[3:], plain[3:], rtol=1e-6)
    assert ema_small[0] == plain[0]  # same initial critic and draws


def test_last_longer_than_training_averages_all_steps():
    x, y = gaussian(200, 0.8, seed=27)
    result = nwj_mi(x, y, hidden=4, epochs=2, batch_size=100, last=50)
    assert result.estimate == pytest.approx(result.trace["estimate_nats"].mean())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"y": np.zeros(9)}, "same number of samples"),
        ({"x": np.r_[np.nan, np.ones(9)]}, "NaN"),
        ({"x": np.r_[np.inf, np.ones(9)]}, "inf"),
        ({"x": np.ones(1), "y": np.ones(1)}, "at least 2"),
        ({"x": np.ones((10, 2, 2))}, "shape"),
        ({"hidden": 0}, "hidden"),
        ({"lr": 0.0}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 1}, "batch_size"),
        ({"holdout": 1.0}, "holdout"),
        ({"holdout": 0.05}, "holdout"),
        ({"last": 0}, "last"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**64}, "seed must be < 2\\*\\*64"),
        ({"x": np.r_[1e39, np.ones(9)]}, "beyond float32's range"),
        ({"device": "tpu"}, "device"),
        ({"progress": "yes"}, "progress"),
        ({"shuffle": 1}, "shuffle"),
        ({"dtype": "float16"}, "dtype"),
        ({"threads": 0}, "threads"),
    ],
)
def test_bad_input_raises_value_error(kwargs, message):
    rng = np.random.default_rng(0)
    args = {"x": rng.standard_normal(10), "y": rng.standard_normal(10), "epochs": 1}
    args.update(kwargs)
    x, y = args.pop("x"), args.pop("y")
    for estimator in (mine_mi, nwj_mi, infonce_mi):
        with pytest.raises(ValueError, match=message):
            estimator(x, y, **args)


def test_estimator_specific_errors():
    x, y = gaussian(20, 0.5, seed=0)
    with pytest.raises(ValueError, match="form"):
        infonce_mi(x, y, form="dense", epochs=1)
    for bad in (0.0, 1.5, True):
        with pytest.raises(ValueError, match="ema"):
            mine_mi(x, y, ema=bad, epochs=1)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            mine_mi(x, y, device="cuda", epochs=1)


def _engine_run(kind, x, y, engine, **options):
    """neural._train with the public function's defaults and the chosen engine."""
    import inspect

    func = {"mine": mine_mi, "nwj": nwj_mi, "smile": smile_mi}[kind]
    kw = {
        k: p.default
        for k, p in inspect.signature(func).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    kw.update(options, ema=options.get("ema") if kind == "mine" else None, form="auto")
    return neural._train(kind, x, y, engine=engine, **kw)


@pytest.mark.parametrize(
    "kind, options",
    [
        ("mine", {}),
        ("mine", {"ema": 0.1, "shuffle": True}),
        ("mine", {"holdout": 0.25}),
        ("nwj", {}),
        ("smile", {"clip": 1.0}),
    ],
)
def test_numba_step_trains_as_autograd_and_torch_adam(kind, options):
    """The one-call numba step of MINE/NWJ/SMILE against autograd + torch.optim.Adam: the
    same per-step bounds and losses over 40 steps, to 1e-9 in float64 (the numba sums are
    vectorised in another order; 40 Adam steps amplify those 1e-16 differences to ~1e-10)."""
    x, y = gaussian(400, 0.8, seed=34)
    kw = {"hidden": 12, "lr": 0.01, "epochs": 10, "batch_size": 100, "dtype": "float64", **options}
    ref = _engine_run(kind, x, y, "torch", **kw).trace
    got = _engine_run(kind, x, y, "numba", **kw).trace
    for column in ("estimate_nats", "loss", "heldout_nats"):
        np.testing.assert_allclose(got[column], ref[column], rtol=1e-8, atol=1e-9)
    # float32: the same first step, and the same training to float32 rounding
    kw["dtype"] = "float32"
    ref = _engine_run(kind, x, y, "torch", **kw).trace["estimate_nats"].to_numpy()
    got = _engine_run(kind, x, y, "numba", **kw).trace["estimate_nats"].to_numpy()
    assert abs(got[0] - ref[0]) < 1e-5 and np.abs(got - ref).max() < 5e-3


@pytest.mark.parametrize(
    "b, dx, dy, h, prod",
    [
        (2 * _critic._PAIR_ROWS + 37, 3, 5, 7, True),  # three blocks, the last partial; odd widths
        (_critic._PAIR_ROWS + 1, 10, 10, 30, True),  # thesis widths: 4-unit groups + 2 left over
        (150, 1, 1, 5, False),  # joint rows only (no product half)
    ],
)
def test_pair_kernels_match_autograd_exactly(b, dx, dy, h, prod):
    """The blocked pair forward (x's share of the first layer computed once for both halves)
    and backward against torch on [x_r; y_r] and [x_r; y_idx(r)] rows, in float64: critic
    values to 1e-12, and the gradients of sum_r g_r T_r to 1e-10 relative."""
    from mipipe.estimators import _critic

    rng = np.random.default_rng(b + h)
    x = rng.standard_normal((b, dx))
    y = rng.standard_normal((b, dy))
    idx = rng.integers(0, b, b) if prod else np.zeros(0, dtype=np.int64)
    net = _make_critic(dx + dy, h, False, 3, torch.float64, torch.device("cpu"))
    first, last = net[0], net[2]
    params = tuple(
        np.ascontiguousarray(p.detach().numpy())
        for p in (first.weight.T, first.bias, last.weight.reshape(-1), last.bias.reshape(1))
    )
    rows = 2 * b if prod else b
    xt, pre = np.full((dx + dy, 2 * b), np.nan), np.full((h, 2 * b), np.nan)
    t = np.full(2 * b, np.nan)
    _critic._pair_forward(x, y, idx, *params[:3], params[3][0], xt, pre, t)
    inputs = torch.from_numpy(np.hstack([x, y]))
    if prod:
        inputs = torch.cat([inputs, torch.from_numpy(np.hstack([x, y[idx]]))])
    want = net(inputs).reshape(-1)
    np.testing.assert_allclose(t[:rows], want.detach().numpy(), rtol=0, atol=1e-12)
    g = rng.standard_normal(rows)
    (want * torch.from_numpy(g)).sum().backward()
    grads = tuple(np.full_like(p, np.nan) for p in params)
    _critic._pair_backward(g, params, xt, pre, grads, b, dx, prod)
    ref = (first.weight.grad.T, first.bias.grad, last.weight.grad.reshape(-1), last.bias.grad)
    for got, exp in zip(grads, ref):
        exp = exp.numpy()
        np.testing.assert_allclose(got, exp, rtol=0, atol=1e-10 * np.abs(exp).max())


def test_default_threads_is_one_and_bit_identical():
    x, y = gaussian(300, 0.8, seed=35)
    before = torch.get_num_threads()
    seen = []
    try:
        torch.set_num_threads(2)
        for estimator in (mine_mi, infonce_mi):
            a = estimator(x, y, hidden=6, epochs=2, batch_size=100,
                          progress=lambda s, r: seen.append(torch.get_num_threads()))
            assert torch.get_num_threads() == 2  # restored
            b = estimator(x, y, hidden=6, epochs=2, batch_size=100, threads=1)
            pd.testing.assert_frame_equal(a.trace, b.trace, check_exact=True)
    finally:
        torch.set_num_threads(before)
    assert set(seen) == {1}  # training ran on one thread by default


def test_threads_option_restores_settings_and_keeps_results():
    x, y = gaussian(300, 0.8, seed=29)
    before = (torch.get_num_threads(), numba.get_num_threads())
    a = infonce_mi(x, y, hidden=6, epochs=2, batch_size=100, threads=1)
    assert (torch.get_num_threads(), numba.get_num_threads()) == before
    b = infonce_mi(x, y, hidden=6, epochs=2, batch_size=100)
    assert a.estimate == b.estimate


def test_torch_inputs_and_auto_device():
    x, y = gaussian(200, 0.8, seed=28)
    a = mine_mi(
        torch.from_numpy(x), torch.from_numpy(y)[:, None], hidden=4, epochs=2, batch_size=100
    )
    b = mine_mi(x, y, hidden=4, epochs=2, batch_size=100)
    assert a.estimate == b.estimate
    assert a.device == ("cuda:0" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_broadcast_matches_the_cpu_forms_and_trains():
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(300, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(300, 2, generator=gen, dtype=torch.float64)
    net = _make_critic(5, 16, True, 2, torch.float64, CPU)
    ref = _grads(net, lambda: _critic.tiled_logits(net, x, y))
    gpu = net.to("cuda")
    xc, yc = x.cuda(), y.cuda()
    for chunk in (None, 64):
        got = [
            t.cpu() for t in _grads(gpu, lambda c=chunk: _critic.broadcast_logits(gpu, xc, yc, c))
        ]
        _check_close(got, ref, torch.float64, f"cuda broadcast chunk={chunk}")
    xs, ys = gaussian(4000, 0.8, seed=21)
    for estimator in (mine_mi, nwj_mi, infonce_mi):
        result = estimator(xs, ys, **{**TRAIN, "device": "cuda"})
        assert result.device.startswith("cuda")
        assert abs(result.estimate - true_mi(0.8)) < 0.05, (estimator.__name__, result.estimate)


def test_low_precision_tensors_and_float64_range():
    x, y = gaussian(200, 0.8, seed=3)
    kw = {"hidden": 4, "epochs": 2, "batch_size": 64}
    # bfloat16 / float16 tensors are widened to float32 (numpy has no bfloat16)
    xb = torch.tensor(x, dtype=torch.bfloat16)
    ref = mine_mi(xb.float(), y, **kw)
    got = mine_mi(xb, y, **kw)
    assert got.estimate == ref.estimate
    # values beyond float32 are refused in float32, accepted with dtype="float64" (where a
    # critic on inputs of 1e39 then diverges, and says so)
    with pytest.raises(TrainingDiverged, match="mine training diverged at step 0"):
        mine_mi(x * 1e39, y, dtype="float64", **kw)


# --------------------------------------------------------------------------- divergence
# Issue 12: on data with true MI 1.609 nats these returned -6.3e37, -inf (a numpy warning
# only), NaN and -4.7e29 as if they were estimates.
@pytest.mark.parametrize(
    "estimator, scale, options, message",
    [
        (nwj_mi, 1.0, {"lr": 10.0}, "at step 1: from there on the per-step bound stayed below"),
        (nwj_mi, 1.0, {"lr": 1e3, "dtype": "float64"}, "at step 1: from there on"),
        (nwj_mi, 1e30, {}, "nwj training diverged at step 0"),
        (nwj_mi, 1e30, {"lr": 1e3}, "nwj training diverged at step 0"),
        (mine_mi, 1e30, {}, "at step 0: from there on"),
        (smile_mi, 1e30, {}, "at step 0: from there on"),
        (infonce_mi, 1.0, {"lr": 1e30}, "at step 1 \\(epoch 0, batch 1\\): the bound became nan"),
    ],
)
def test_diverging_training_raises_with_the_step(estimator, scale, options, message):
    x, y = gaussian(400, math.sqrt(1 - math.exp(-2 * 1.609)), seed=30)
    kw = {"hidden": 8, "epochs": 5, "batch_size": 100, **options}
    with pytest.raises(TrainingDiverged, match=message) as info:
        estimator(x * scale, y * scale, **kw)
    assert "training diverged" in str(info.value) and info.value.step in (0, 1)


def test_an_untrained_or_well_trained_critic_is_not_divergence():
    x, y = gaussian(400, 0.8, seed=31)
    for estimator in (mine_mi, nwj_mi, smile_mi, infonce_mi):
        result = estimator(x, y, hidden=4, lr=1e-6, epochs=2, batch_size=100)
        assert abs(result.estimate) < 2, estimator.__name__


# --------------------------------------------------------------------------- SMILE
def test_smile_bound_clips_the_partition_term_and_takes_the_js_gradient():
    gen = torch.Generator().manual_seed(11)
    tj = (3 * torch.randn(50, generator=gen, dtype=torch.float64)).requires_grad_()
    tm = (3 * torch.randn(70, generator=gen, dtype=torch.float64)).requires_grad_()
    for tau in (1.0, 5.0):
        clipped = np.clip(tm.detach().numpy(), -tau, tau)
        expected = tj.detach().numpy().mean() - math.log(np.mean(np.exp(clipped)))
        value = smile_bound(tj, tm, clip=tau)
        assert float(value.detach()) == pytest.approx(expected, rel=1e-12)
        value.backward()
        # the gradient of -mean softplus(-T_joint) - mean softplus(T_marginal)
        sig = torch.sigmoid
        assert torch.allclose(tj.grad, sig(-tj.detach()) / 50, rtol=1e-12, atol=0)
        assert torch.allclose(tm.grad, -sig(tm.detach()) / 70, rtol=1e-12, atol=0)
        tj.grad, tm.grad = None, None
    # tau -> infinity is the DV bound; T = 0 gives 0 (and JS = -2 log 2)
    with torch.no_grad():
        assert float(smile_bound(tj, tm, clip=math.inf)) == pytest.approx(float(dv_bound(tj, tm)))
    zero = torch.zeros(5, dtype=torch.float64)
    assert float(smile_bound(zero, zero)) == 0.0
    assert float(js_bound(zero, zero)) == pytest.approx(-2 * math.log(2))
    for bad in (0.0, -1.0, True, "5"):
        with pytest.raises(ValueError, match="clip"):
            smile_bound(tj, tm, clip=bad)
        with pytest.raises(ValueError, match="clip"):
            smile_mi(np.zeros(10), np.ones(10), clip=bad, epochs=1)


def test_smile_with_the_optimal_critic_of_a_gaussian_is_the_true_mi_minus_the_clip_bias():
    rho = 0.8
    x, y = gaussian(200_000, rho, seed=32)
    xs, ys = gaussian(200_000, rho, seed=33)
    tj = torch.from_numpy(log_ratio(x, y, rho))
    tm = torch.from_numpy(log_ratio(x, ys, rho))  # x with an independent y: product samples
    # the log ratio (<= 0.51 here) stays mostly inside [-5, 5]: SMILE(5) is about the DV
    # value, the true MI
    assert float(smile_bound(tj, tm, 5.0)) == pytest.approx(true_mi(rho), abs=0.02)
    # clipping at 0.5 lifts the many T < -0.5 of the product samples: a larger partition
    # term, a value below the true MI (the bias of a small tau)
    # (0.482 against 0.511; the sampling error of either value is about 0.003)
    assert float(smile_bound(tj, tm, 0.5)) < true_mi(rho) - 0.015


def test_smile_mi_recovers_gaussian_mi_and_is_reproducible():
    x, y = gaussian(4000, 0.8, seed=21)
    result = smile_mi(x, y, **TRAIN)
    assert abs(result.estimate - true_mi(0.8)) < 0.05, result.estimate
    assert len(result.trace) == 60 * 8
    assert result.trace["loss"].to_numpy() == pytest.approx(-result.trace["estimate_nats"])
    again = smile_mi(x, y, **TRAIN)
    pd.testing.assert_frame_equal(result.trace, again.trace, check_exact=True)
    # a small clip gives a different (higher-variance-free, biased) estimate
    assert smile_mi(x, y, clip=0.5, **TRAIN).estimate != result.estimate


@pytest.mark.parametrize("estimator", ["mine_mi", "nwj_mi", "smile_mi"])
@pytest.mark.parametrize("holdout", [0.6, 0.9])
def test_held_out_batches_larger_than_training_batches_fit_the_numba_buffers(estimator, holdout):
    # holdout > 0.5 with batches larger than n: every held-out batch has more rows than any
    # training batch; the numba step's scratch buffers were once sized from the training
    # batches only and the held-out evaluation wrote past them (double free, segfault)
    import mipipe.estimators as est

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    y = x + rng.normal(size=(200, 2))
    fn = getattr(est, estimator)
    first = fn(x, y, holdout=holdout, epochs=5, batch_size=500, hidden=8, seed=0)
    again = fn(x, y, holdout=holdout, epochs=5, batch_size=500, hidden=8, seed=0)
    assert np.isfinite(first.estimate)
    assert first.estimate == again.estimate
    assert first.trace["heldout_nats"].notna().all()
