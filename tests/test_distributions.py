"""Tests for mipipe.distributions: thesis reference values, analytic formulas, samples, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mipipe.distributions import (
    FAMILIES,
    Sample,
    beta_cholesky_factor,
    draw_sample,
    gaussian_beta_mi,
    gaussian_mi,
    gaussian_mi_profile,
    linear_mi,
    random_cholesky_covariance,
    random_cholesky_factor,
    true_mi_profile,
)

# ------------------------------------------------------------------------------------------------ thesis numbers


def test_random_cholesky_d10_seed2023_reproduces_thesis():
    s = draw_sample("gaussian_cholesky", 100, 10, seed=2023)
    assert s.true_mi.shape == (11,)
    assert abs(s.true_mi[10] - 7.7936) < 1e-3


def test_thesis_draw_order_matches_original_torch_calls():
    # The thesis's code: torch.manual_seed(2023); L = tril(2*rand(2d, 2d) - 1) with unit diagonal;
    # MultivariateNormal(0, L L^T).sample([n]) (= randn(n, 2d) times the float32 Cholesky factor).
    d, n = 3, 64
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(2023)
        P = torch.tril(2 * torch.rand([2 * d, 2 * d]) - 1)
        for i in range(2 * d):
            P[i, i] = 1
        ref = torch.distributions.MultivariateNormal(torch.zeros(2 * d), P @ P.T).sample([n])
    finally:
        torch.random.set_rng_state(state)
    L = random_cholesky_factor(d, torch.Generator().manual_seed(2023))
    np.testing.assert_array_equal(L, P.double().numpy())
    s = draw_sample("gaussian_cholesky", n, d, seed=2023)
    np.testing.assert_allclose(np.hstack([s.x, s.y]), ref.double().numpy(), atol=1e-4)


@pytest.mark.parametrize(
    "kwargs, D, expected",
    [
        (dict(family="gaussian_beta", d=10, beta=2.0), 10, 8.0472),
        (dict(family="gaussian_beta", d=2, beta=4.0), 2, 2.8332),
        (dict(family="linear", d=10, alpha=0.6), 10, 8.1083),
        (dict(family="linear", d=2, alpha=0.3), 2, 2.7079),
    ],
)
def test_other_reference_values(kwargs, D, expected):
    s = draw_sample(n=50, **kwargs)
    assert abs(s.true_mi[D] - expected) < 1e-4


def test_beta4_is_log17():
    assert gaussian_beta_mi(2, 4.0) == pytest.approx(math.log(17), abs=1e-14)


# ------------------------------------------------------------------------------------------------ analytic formulas


def test_linear_mi_closed_form_and_prefixes():
    assert linear_mi(1, 1.0) == pytest.approx(0.5)
    assert linear_mi(0, 0.5) == 0.0
    s = draw_sample("linear", 10, 7, alpha=0.45)
    for D in range(8):
        assert s.true_mi[D] == pytest.approx(D * (0.45 / 2 - math.log(0.45)), abs=1e-12)


def test_gaussian_mi_d1_matches_correlation_formula():
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = rng.normal(size=(2, 2))
        cov = a @ a.T + 0.1 * np.eye(2)
        rho = cov[0, 1] / math.sqrt(cov[0, 0] * cov[1, 1])
        assert gaussian_mi(cov) == pytest.approx(-0.5 * math.log(1 - rho**2), abs=1e-12)


def test_gaussian_mi_matches_independent_computation():
    # Independent route: MI = -1/2 sum log(1 - r_i^2) over the canonical correlations r_i.
    cov = random_cholesky_covariance(4, cov_seed=7)
    d = 4
    for D in range(1, d + 1):
        sx = cov[:D, :D]
        sy = cov[d : d + D, d : d + D]
        sxy = cov[:D, d : d + D]
        wx = np.linalg.inv(np.linalg.cholesky(sx))
        wy = np.linalg.inv(np.linalg.cholesky(sy))
        r = np.linalg.svd(wx @ sxy @ wy.T, compute_uv=False)
        assert gaussian_mi(cov, D) == pytest.approx(-0.5 * np.sum(np.log1p(-(r**2))), abs=1e-10)


def test_prefix_true_mi_uses_sub_blocks():
    d = 5
    s = draw_sample("gaussian_cholesky", 20, d, seed=11, cov_seed=3)
    cov = random_cholesky_covariance(d, cov_seed=3)
    assert s.true_mi[0] == 0.0
    for D in range(1, d + 1):
        idx = list(range(D)) + list(range(d, d + D))
        sub = cov[np.ix_(idx, idx)]
        expected = 0.5 * (
            np.linalg.slogdet(sub[:D, :D])[1] + np.linalg.slogdet(sub[D:, D:])[1] - np.linalg.slogdet(sub)[1]
        )
        assert s.true_mi[D] == pytest.approx(expected, abs=1e-10)
    np.testing.assert_allclose(gaussian_mi_profile(cov), s.true_mi, atol=1e-12)
    # true MI grows with the prefix (more of X and Y can only add information)
    assert np.all(np.diff(s.true_mi) >= -1e-12)


def test_beta_profile_matches_general_gaussian_formula():
    L = beta_cholesky_factor(6, 1.7)
    np.testing.assert_allclose(
        gaussian_mi_profile(L @ L.T), [gaussian_beta_mi(D, 1.7) for D in range(7)], atol=1e-12
    )
    s = draw_sample("gaussian_beta", 10, 6, beta=1.7)
    np.testing.assert_allclose(s.true_mi, gaussian_mi_profile(L @ L.T), atol=1e-12)


def test_random_cholesky_factor_structure():
    L = random_cholesky_factor(4, torch.Generator().manual_seed(1))
    assert L.shape == (8, 8) and L.dtype == np.float64
    np.testing.assert_array_equal(np.diag(L), 1.0)
    assert np.all(np.triu(L, 1) == 0)
    below = L[np.tril_indices(8, -1)]
    assert np.all(np.abs(below) < 1) and np.any(below < 0) and np.any(below > 0)


def test_true_mi_profile_equals_sample_true_mi():
    for fam, kw in [("linear", dict(alpha=0.6)), ("gaussian_beta", dict(beta=2.0)), ("gaussian_cholesky", {})]:
        s = draw_sample(fam, 30, 6, seed=5, noise_dims=2, **kw)
        np.testing.assert_array_equal(true_mi_profile(fam, 6, noise_dims=2, **kw), s.true_mi)


# ------------------------------------------------------------------------------------------------ samples


def test_sample_types_and_params():
    s = draw_sample("gaussian_cholesky", 40, 4, seed=9, noise_dims=1, cov_seed=4)
    assert isinstance(s, Sample)
    assert s.x.shape == (40, 4) and s.y.shape == (40, 4) and s.true_mi.shape == (5,)
    assert s.x.dtype == s.y.dtype == s.true_mi.dtype == np.float64
    assert s.x.flags.c_contiguous and s.y.flags.c_contiguous
    assert s.family == "gaussian_cholesky"
    assert s.params == dict(
        family="gaussian_cholesky", n=40, d=4, signal_dims=3, noise_dims=1, seed=9, cov_seed=4, alpha=None, beta=None
    )
    lin = draw_sample("linear", 5, 2, alpha=0.3, cov_seed=99)
    assert lin.params["cov_seed"] is None and lin.params["alpha"] == 0.3


def test_gaussian_sample_covariance_matches_sigma():
    s = draw_sample("gaussian_cholesky", 200_000, 2, seed=1, cov_seed=2)
    emp = np.cov(np.hstack([s.x, s.y]), rowvar=False)
    sigma = random_cholesky_covariance(2, cov_seed=2)
    np.testing.assert_allclose(emp, sigma, atol=2e-2)
    assert np.abs(np.hstack([s.x, s.y]).mean(axis=0)).max() < 2e-2

    b = draw_sample("gaussian_beta", 200_000, 2, seed=3, beta=2.0)
    emp = np.cov(np.hstack([b.x, b.y]), rowvar=False)
    L = beta_cholesky_factor(2, 2.0)
    np.testing.assert_allclose(emp, L @ L.T, atol=1e-2 * np.abs(L @ L.T).max())


def test_linear_sample_support():
    alpha = 0.3
    s = draw_sample("linear", 50_000, 3, seed=4, alpha=alpha)
    assert s.x.min() >= 0.0 and s.x.max() < 1.0
    z = s.y - s.x
    assert z.min() >= -alpha / 2 - 1e-12 and z.max() <= alpha / 2 + 1e-12
    # both ends of the noise interval are reached, and X is spread over [0, 1)
    assert z.min() < -alpha / 2 + 1e-3 and z.max() > alpha / 2 - 1e-3
    assert s.x.min() < 1e-3 and s.x.max() > 1 - 1e-3
    assert abs(np.corrcoef(s.x[:, 0], z[:, 0])[0, 1]) < 0.02  # Z independent of X


def test_linear_draws_z_before_x():
    g = torch.Generator().manual_seed(2023)
    u_z = torch.rand(8, 2, generator=g).double().numpy()
    u_x = torch.rand(8, 2, generator=g).double().numpy()
    s = draw_sample("linear", 8, 2, seed=2023, alpha=0.6)
    np.testing.assert_array_equal(s.x, u_x)
    np.testing.assert_allclose(s.y - s.x, -0.3 + 0.6 * u_z, atol=1e-12)


@pytest.mark.parametrize("family, kw", [("linear", dict(alpha=0.3)), ("gaussian_beta", dict(beta=4.0))])
def test_noise_padding(family, kw):
    n, d, noise = 40_000, 6, 4
    s = draw_sample(family, n, d, seed=8, noise_dims=noise, **kw)
    clean = draw_sample(family, n, d - noise, seed=8, **kw)
    # MI unchanged by padding, and the signal columns are the unpadded sample (noise is drawn after)
    np.testing.assert_array_equal(s.true_mi[: d - noise + 1], clean.true_mi)
    np.testing.assert_array_equal(s.true_mi[d - noise :], clean.true_mi[-1])
    np.testing.assert_array_equal(s.x[:, : d - noise], clean.x)
    np.testing.assert_array_equal(s.y[:, : d - noise], clean.y)
    nx, ny = s.x[:, d - noise :], s.y[:, d - noise :]
    for block in (nx, ny):
        assert np.abs(block.mean(axis=0)).max() < 0.03
        assert np.abs(block.std(axis=0) - 1).max() < 0.03
    corr = np.corrcoef(np.hstack([s.x, s.y]), rowvar=False)
    noise_cols = list(range(d - noise, d)) + list(range(2 * d - noise, 2 * d))
    off = corr[np.ix_(noise_cols, range(2 * d))].copy()
    for i, c in enumerate(noise_cols):
        off[i, c] = 0.0
    assert np.abs(off).max() < 0.03  # noise uncorrelated with the signal and with the other noise


def test_determinism_and_seed_dependence():
    for fam, kw in [("linear", dict(alpha=0.6)), ("gaussian_beta", dict(beta=2.0)), ("gaussian_cholesky", {})]:
        a = draw_sample(fam, 100, 4, seed=21, noise_dims=1, **kw)
        b = draw_sample(fam, 100, 4, seed=21, noise_dims=1, **kw)
        c = draw_sample(fam, 100, 4, seed=22, noise_dims=1, **kw)
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.y, b.y)
        np.testing.assert_array_equal(a.true_mi, b.true_mi)
        assert not np.array_equal(a.x, c.x) and not np.array_equal(a.y, c.y)


def test_draws_do_not_touch_global_generator():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    draw_sample("gaussian_cholesky", 10, 3, seed=1)
    assert torch.equal(torch.rand(3), expected)


def test_cov_seed_semantics():
    # repeated seeds with a fixed cov_seed share the covariance and the true MI
    a = draw_sample("gaussian_cholesky", 50, 3, seed=1, cov_seed=2023)
    b = draw_sample("gaussian_cholesky", 50, 3, seed=2, cov_seed=2023)
    t = draw_sample("gaussian_cholesky", 50, 3, seed=2023, cov_seed=2023)
    np.testing.assert_array_equal(a.true_mi, b.true_mi)
    np.testing.assert_array_equal(a.true_mi, t.true_mi)
    assert not np.array_equal(a.x, b.x)
    # seed == cov_seed: one generator draws L then the sample
    g = torch.Generator().manual_seed(2023)
    L = random_cholesky_factor(3, g)
    eps = torch.randn(50, 6, generator=g).double().numpy()
    np.testing.assert_allclose(np.hstack([t.x, t.y]), eps @ L.T, atol=1e-12)
    # seed != cov_seed: the sample generator does not draw L first
    g = torch.Generator().manual_seed(1)
    eps = torch.randn(50, 6, generator=g).double().numpy()
    np.testing.assert_allclose(np.hstack([a.x, a.y]), eps @ L.T, atol=1e-12)
    # another cov_seed, another covariance
    c = draw_sample("gaussian_cholesky", 50, 3, seed=1, cov_seed=5)
    assert not np.allclose(c.true_mi, a.true_mi)


def test_prefix_consistency_is_not_guaranteed():
    # Documented: draw at n_max and slice. Gaussian rows are a prefix when n1 * 2d is a multiple of 16 ...
    big = draw_sample("gaussian_cholesky", 1000, 10)
    small = draw_sample("gaussian_cholesky", 100, 10)
    np.testing.assert_array_equal(small.x, big.x[:100])
    # ... but not in general, and never for the linear family's X (Z is drawn first).
    odd = draw_sample("gaussian_cholesky", 101, 10)
    assert not np.array_equal(odd.x, big.x[:101])
    lin_big = draw_sample("linear", 1000, 2, alpha=0.5)
    lin_small = draw_sample("linear", 100, 2, alpha=0.5)
    assert not np.array_equal(lin_small.x, lin_big.x[:100])


# ------------------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    "args, kwargs, name",
    [
        (("gauss", 10, 2), {}, "family"),
        (("linear", 0, 2), dict(alpha=0.5), "n"),
        (("linear", 10, 0), dict(alpha=0.5), "d"),
        (("linear", 10.0, 2), dict(alpha=0.5), "n"),
        (("linear", 10, 2), dict(alpha=0.5, noise_dims=-1), "noise_dims"),
        (("linear", 10, 2), dict(alpha=0.5, noise_dims=2), "noise_dims"),
        (("linear", 10, 2), {}, "alpha"),
        (("linear", 10, 2), dict(alpha=0.0), "alpha"),
        (("linear", 10, 2), dict(alpha=1.5), "alpha"),
        (("linear", 10, 2), dict(alpha=float("nan")), "alpha"),
        (("linear", 10, 2), dict(alpha="0.5"), "alpha"),
        (("linear", 10, 2), dict(alpha=0.5, beta=1.0), "beta"),
        (("gaussian_beta", 10, 2), {}, "beta"),
        (("gaussian_beta", 10, 2), dict(beta=float("inf")), "beta"),
        (("gaussian_beta", 10, 2), dict(beta=1.0, alpha=0.5), "alpha"),
        (("gaussian_cholesky", 10, 2), dict(alpha=0.5), "alpha"),
        (("gaussian_cholesky", 10, 2, 1.5), {}, "seed"),
        (("gaussian_cholesky", 10, 2, "1"), {}, "seed"),
        (("gaussian_cholesky", 10, 2, True), {}, "seed"),
        (("gaussian_cholesky", 10, 2, -1), {}, "seed"),
        (("gaussian_cholesky", 10, 2), dict(cov_seed=2.0), "cov_seed"),
    ],
)
def test_bad_inputs_raise(args, kwargs, name):
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        draw_sample(*args, **kwargs)


def test_unknown_family_lists_allowed():
    with pytest.raises(ValueError) as info:
        draw_sample("uniform", 10, 2)
    for fam in FAMILIES:
        assert fam in str(info.value)


def test_analytic_functions_validate():
    with pytest.raises(ValueError, match="alpha"):
        linear_mi(2, 1.2)
    with pytest.raises(ValueError, match=r"\bd must"):
        linear_mi(-1, 0.5)
    with pytest.raises(ValueError, match="beta"):
        gaussian_beta_mi(2, None)
    with pytest.raises(ValueError, match="cov"):
        gaussian_mi(np.eye(3))
    with pytest.raises(ValueError, match="symmetric"):
        gaussian_mi(np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="positive definite"):
        gaussian_mi(np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match=r"\bD must"):
        gaussian_mi(np.eye(4), D=3)
    with pytest.raises(ValueError, match="generator"):
        random_cholesky_factor(2, 2023)
    assert gaussian_mi(np.eye(4), D=0) == 0.0
    assert gaussian_mi(np.eye(4)) == pytest.approx(0.0, abs=1e-15)


def test_huge_beta_has_finite_true_mi_and_huge_n_is_refused():
    import math

    from mipipe.distributions import draw_sample, gaussian_beta_mi

    assert gaussian_beta_mi(2, 1e200) == pytest.approx(2 * math.log(1e200), rel=1e-12)
    assert gaussian_beta_mi(2, 3.0) == pytest.approx(math.log(10.0), rel=1e-12)
    with pytest.raises(ValueError, match="exceed"):
        draw_sample("linear", 2**63, 2, alpha=0.5)
