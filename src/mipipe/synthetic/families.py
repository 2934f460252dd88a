"""Synthetic data with known mutual information (thesis §4.1; shared README §2).

Three families, all returning float64 NumPy arrays and an analytic ground truth in nats:

``"linear"``
    X ~ U(0, 1)^d, Z ~ U(-α/2, α/2)^d, Y = X + Z; I(X; Y) = d·(α/2 − log α) for 0 < α ≤ 1
    (thesis §4.1.1, the equation closing the section).
``"gaussian_cholesky"``
    L (2d × 2d) lower-triangular with unit diagonal and U(−1, 1) entries below it, Σ = L Lᵀ,
    (X, Y) ~ N(0, Σ) with X the first d coordinates; I = ½(log det Σ_X + log det Σ_Y − log det Σ)
    (thesis §4.1.2).
``"gaussian_beta"``
    L = [[I, 0], [βI, I]], Σ = [[I, βI], [βI, (1 + β²)I]]; I = (d/2)·log(1 + β²) (thesis §4.1.2, last equation).

Noise padding (thesis §4.2, Figures 10/11): the last ``noise_dims`` coordinates of X and of Y are independent
N(0, 1) columns; they leave the mutual information unchanged.

Random numbers
--------------
PyTorch's CPU generator is the only source of randomness (``torch.Generator().manual_seed(seed)``, which gives the
same stream as the thesis's global ``torch.manual_seed(seed)``), and every draw is made in float32 exactly as the
thesis's code made it; the draws are then converted to float64 (exactly) and all arithmetic after that is float64.
The draw order reproduces the thesis:

* linear: ``u_z = torch.rand(n, d)`` first (Z = −α/2 + α·u_z, as ``torch.distributions.Uniform`` does it), then
  ``u_x = torch.rand(n, d)`` (X = u_x).
* Gaussian: the factor L first (random-Cholesky family only:
  ``L = tril(torch.rand(2d, 2d)·2 − 1, −1) + I`` — a full 2d × 2d matrix of float32 uniforms is drawn and the
  diagonal and upper triangle are discarded), then ``eps = torch.randn(n, 2d)`` and (X, Y) = eps·Lᵀ.
  The thesis sampled with ``MultivariateNormal(0, Σ).sample([n])``, which draws the same
  ``randn(n, 2d)`` and multiplies by the float32 Cholesky factor of Σ (= L up to rounding); this module
  multiplies by the exact L in float64, so samples agree with the thesis's to float32 rounding (≈1e-4 absolute
  on a d = 10 draw whose entries reach ±10), not bit for bit.
* Noise padding: after the signal, ``torch.randn(n, noise_dims)`` for X, then the same for Y.

With seed = cov_seed = 2023 and d = 10 this gives true MI 7.79357 nats for the random-Cholesky family (the thesis
reports 7.7936; its float32 ``torch.det`` computation gives 7.79359). Variants that do *not* reproduce it (checked):
float64 draws (7.5924), drawing only the 190 strictly-lower entries (8.0926), taking the strict upper triangle
transposed (7.0015), 1 − 2·rand (7.4947).

Prefix consistency
------------------
The thesis drew one sample at the largest n and used its first rows. ``draw_sample`` is **not** prefix-consistent
in general, so callers sweeping n must draw once at n_max and slice (the pipeline does this):

* ``torch.rand`` is element-wise sequential, but the linear family draws Z (n·d uniforms) before X, so X of a
  smaller n starts at a different point of the stream.
* ``torch.randn`` on CPU fills float32 tensors of ≥ 16 elements in Box–Muller blocks of 16 and *redraws the last
  16 values* when the element count is not a multiple of 16 (tensors under 16 elements take another path), so
  Gaussian signal rows are a prefix only when n₁·2d is a multiple of 16 (the thesis's n = 100 … 10000 with d = 10
  happen to be).
* Noise columns are drawn after the signal, so their position in the stream depends on n.

``Sample`` arrays are ordinary writable NumPy arrays; the dataclass is frozen but the arrays are not copied on
access, so do not modify them in place if the sample is shared.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "FAMILIES",
    "THESIS_SEED",
    "Sample",
    "beta_cholesky_factor",
    "draw_sample",
    "gaussian_beta_mi",
    "gaussian_mi",
    "gaussian_mi_profile",
    "linear_mi",
    "random_cholesky_covariance",
    "random_cholesky_factor",
    "true_mi_profile",
]

FAMILIES = ("linear", "gaussian_cholesky", "gaussian_beta")
# Largest sample (n * 2d float64 values, 16 GB) drawn in one call.
MAX_VALUES = 2 * 10**9
"""Names accepted by :func:`draw_sample` and :func:`true_mi_profile`."""

THESIS_SEED = 2023
"""The seed the thesis used for most experiments (§4.2)."""

_MAX_SEED = 2**64  # torch.Generator.manual_seed takes seeds in [0, 2**64) (negative ones wrap around)


# ----------------------------------------------------------------------------------------------------------------
# validation helpers


def _check_int(value, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r} of type {type(value).__name__}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def _check_seed(value, name: str) -> int:
    return _check_int(value, name, minimum=0, maximum=_MAX_SEED - 1)


def _check_real(value, name: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r} of type {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _check_alpha(alpha) -> float:
    if alpha is None:
        raise ValueError("alpha is required for the 'linear' family (0 < alpha <= 1)")
    alpha = _check_real(alpha, "alpha")
    if not 0.0 < alpha <= 1.0:
        raise ValueError(
            f"alpha must satisfy 0 < alpha <= 1 (the closed form d*(alpha/2 - log alpha) holds only there), got {alpha}"
        )
    return alpha


def _check_beta(beta) -> float:
    if beta is None:
        raise ValueError("beta is required for the 'gaussian_beta' family (a finite real number)")
    return _check_real(beta, "beta")


def _check_family(family) -> str:
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(repr(f) for f in FAMILIES)}; got {family!r}")
    return family


def _generator(seed: int) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(seed)


def _logdet_pd(m: np.ndarray, what: str) -> float:
    try:
        chol = np.linalg.cholesky(m)
    except np.linalg.LinAlgError as exc:
        raise ValueError(f"{what} is not positive definite") from exc
    return 2.0 * float(np.sum(np.log(np.diag(chol))))


# ----------------------------------------------------------------------------------------------------------------
# analytic mutual information


def linear_mi(d: int, alpha: float) -> float:
    """Mutual information of the d-dimensional linear (uniform) family, in nats.

    Source: thesis §4.1.1 (the closing equation ``I(X; Y) = d(α/2 − log α)``; d = 1 from H(Y) = α/2 (eq. 1) and
    H(Z) = log α, then additivity over the independent coordinate pairs); shared README §2.

    Parameters
    ----------
    d : int, >= 0
        Number of coordinates of X (and of Y); 0 gives 0.
    alpha : float, 0 < alpha <= 1
        Width of the additive noise Z ~ U(−α/2, α/2).

    Returns
    -------
    float
        ``d * (alpha / 2 - log(alpha))`` nats.

    Raises
    ------
    ValueError
        If ``d`` is not a non-negative integer or ``alpha`` is not in (0, 1].
    """
    d = _check_int(d, "d", minimum=0)
    alpha = _check_alpha(alpha)
    return d * (alpha / 2.0 - math.log(alpha))


def gaussian_mi(cov, D: int | None = None) -> float:
    """Mutual information between the first D coordinates of X and of Y for (X, Y) ~ N(0, Σ), in nats.

    ``I = ½ (log det Σ_X + log det Σ_Y − log det Σ_XY)`` where, with d = Σ.shape[0] / 2, Σ_X = Σ[:D, :D],
    Σ_Y = Σ[d:d+D, d:d+D] and Σ_XY is the 2D × 2D matrix on the index set {0..D−1} ∪ {d..d+D−1}
    (the covariance of the D-prefixes). Log-determinants are computed from Cholesky factors, in float64.

    Source: thesis §4.1.2 (``I(X; Y) = ½ log(det Σ_X det Σ_Y / det Σ)``, from the Gaussian entropy, eq. 2);
    shared README §2 (prefix sub-blocks).

    Parameters
    ----------
    cov : array_like, shape (2d, 2d)
        Symmetric positive definite covariance of the concatenation (X, Y), X first.
    D : int, optional
        Prefix length, 0 <= D <= d; default d (the whole vectors). D = 0 gives 0.

    Returns
    -------
    float
        Mutual information in nats (>= 0 up to rounding).

    Raises
    ------
    ValueError
        If ``cov`` is not a square, symmetric, even-sized finite matrix, if the needed sub-block is not positive
        definite, or if ``D`` is not an integer in [0, d].
    """
    cov = np.asarray(cov, dtype=np.float64)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise ValueError(f"cov must be a square 2-D matrix, got shape {cov.shape}")
    if cov.shape[0] == 0 or cov.shape[0] % 2:
        raise ValueError(f"cov must be (2d, 2d) with d >= 1, got shape {cov.shape}")
    if not np.all(np.isfinite(cov)):
        raise ValueError("cov contains non-finite values")
    scale = float(np.max(np.abs(cov)))
    if not np.allclose(cov, cov.T, rtol=0.0, atol=1e-12 * max(scale, 1.0)):
        raise ValueError("cov must be symmetric")
    d = cov.shape[0] // 2
    D = d if D is None else _check_int(D, "D", minimum=0, maximum=d)
    if D == 0:
        return 0.0
    idx = np.r_[0:D, d : d + D]
    joint = cov[np.ix_(idx, idx)]
    lx = _logdet_pd(joint[:D, :D], f"cov (X block of the first {D} coordinates)")
    ly = _logdet_pd(joint[D:, D:], f"cov (Y block of the first {D} coordinates)")
    lxy = _logdet_pd(joint, f"cov (joint block of the first {D} coordinates)")
    return 0.5 * (lx + ly - lxy)


def gaussian_mi_profile(cov) -> np.ndarray:
    """``gaussian_mi(cov, D)`` for every prefix D = 0 … d, as a float64 array of shape (d + 1,) (nats).

    Source: thesis §4.1.2 applied to the prefix sub-blocks (shared README §2). Raises ``ValueError`` as
    :func:`gaussian_mi` does.
    """
    cov = np.asarray(cov, dtype=np.float64)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1] or cov.shape[0] == 0 or cov.shape[0] % 2:
        raise ValueError(f"cov must be (2d, 2d) with d >= 1, got shape {cov.shape}")
    d = cov.shape[0] // 2
    return np.array([gaussian_mi(cov, D) for D in range(d + 1)], dtype=np.float64)


def gaussian_beta_mi(d: int, beta: float) -> float:
    """Mutual information of the d-dimensional β-Gaussian family, in nats: ``(d/2)·log(1 + β²)``.

    Σ = [[I, βI], [βI, (1 + β²)I]] pairs coordinate i of X only with coordinate i of Y, each pair having
    correlation ρ = β / √(1 + β²), so I = d·(−½ log(1 − ρ²)) = (d/2) log(1 + β²).

    Source: thesis §4.1.2, last equation (``I(X; Y) = (d/2) log(1·(1 + β²)/1)``); shared README §2.

    Parameters
    ----------
    d : int, >= 0
        Number of coordinates of X (and of Y); 0 gives 0.
    beta : float
        Any finite real; β = 0 gives independence (0 nats).

    Raises
    ------
    ValueError
        If ``d`` is not a non-negative integer or ``beta`` is not a finite real.
    """
    d = _check_int(d, "d", minimum=0)
    beta = _check_beta(beta)
    b = abs(beta)
    if b > 1e150:  # beta**2 would overflow: log(1 + b^2) = 2 log b + log1p(b^-2)
        return 0.5 * d * (2.0 * math.log(b) + math.log1p((1.0 / b) ** 2))
    return 0.5 * d * math.log1p(b * b)


# ----------------------------------------------------------------------------------------------------------------
# covariance factors


def random_cholesky_factor(d: int, generator: torch.Generator) -> np.ndarray:
    """Draw the thesis's random Cholesky factor L, shape (2d, 2d), float64.

    L is lower-triangular with unit diagonal and i.i.d. U(−1, 1) entries below the diagonal (thesis §4.1.2).
    Draw order (the one that reproduces the thesis's 7.7936 nats for d = 10, seed 2023): one call
    ``torch.rand(2d, 2d, dtype=float32, generator=generator)`` — all 4d² uniforms, row-major — mapped to
    ``u·2 − 1`` and kept only strictly below the diagonal; the diagonal is set to 1. The float32 values are exact
    in float64 (``torch.rand`` float32 yields multiples of 2⁻²⁴, and 2u − 1 is exact).

    Parameters
    ----------
    d : int, >= 1
        Dimension of X (and of Y); L is 2d × 2d.
    generator : torch.Generator
        A CPU generator; it is advanced by 4d² float32 uniforms.

    Returns
    -------
    numpy.ndarray, shape (2d, 2d), float64
        Σ = L Lᵀ is the covariance of (X, Y).

    Raises
    ------
    ValueError
        If ``d`` is not a positive integer or ``generator`` is not a ``torch.Generator``.
    """
    d = _check_int(d, "d", minimum=1)
    if not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    u = torch.rand(2 * d, 2 * d, generator=generator, dtype=torch.float32)
    lower = torch.tril(u * 2 - 1, diagonal=-1).to(torch.float64).numpy()
    return lower + np.eye(2 * d)


def beta_cholesky_factor(d: int, beta: float) -> np.ndarray:
    """The fixed factor L = [[I, 0], [βI, I]] of the β-Gaussian family, shape (2d, 2d), float64.

    L Lᵀ = [[I, βI], [βI, (1 + β²)I]] (thesis §4.1.2). No random numbers are drawn.

    Raises
    ------
    ValueError
        If ``d`` is not a positive integer or ``beta`` is not a finite real.
    """
    d = _check_int(d, "d", minimum=1)
    beta = _check_beta(beta)
    L = np.eye(2 * d)
    L[d:, :d] = beta * np.eye(d)
    return L


def random_cholesky_covariance(d: int, cov_seed: int = THESIS_SEED) -> np.ndarray:
    """Σ = L Lᵀ of the random-Cholesky family for ``d`` signal dimensions and ``cov_seed``; (2d, 2d) float64.

    L is the first draw of ``torch.Generator().manual_seed(cov_seed)`` (see :func:`random_cholesky_factor`), so
    this is the covariance :func:`draw_sample` uses for ``family="gaussian_cholesky"`` with that ``cov_seed``
    and d − noise_dims = ``d``, whatever its ``seed``.

    Raises
    ------
    ValueError
        If ``d`` is not a positive integer or ``cov_seed`` is not an integer in [0, 2**64).
    """
    d = _check_int(d, "d", minimum=1)
    cov_seed = _check_seed(cov_seed, "cov_seed")
    L = random_cholesky_factor(d, _generator(cov_seed))
    return L @ L.T


# ----------------------------------------------------------------------------------------------------------------
# ground truth and sampling


def _validate(family, d, noise_dims, alpha, beta):
    family = _check_family(family)
    d = _check_int(d, "d", minimum=1)
    noise_dims = _check_int(noise_dims, "noise_dims", minimum=0)
    if noise_dims >= d:
        raise ValueError(
            f"noise_dims must be < d (d counts the noise columns and at least one signal dimension is needed); "
            f"got noise_dims={noise_dims}, d={d}"
        )
    if family == "linear":
        alpha = _check_alpha(alpha)
        if beta is not None:
            raise ValueError(f"beta is not a parameter of the 'linear' family (got beta={beta!r}); leave it None")
    elif family == "gaussian_beta":
        beta = _check_beta(beta)
        if alpha is not None:
            raise ValueError(
                f"alpha is not a parameter of the 'gaussian_beta' family (got alpha={alpha!r}); leave it None"
            )
    else:
        if alpha is not None or beta is not None:
            bad = "alpha" if alpha is not None else "beta"
            raise ValueError(
                f"{bad} is not a parameter of the 'gaussian_cholesky' family (got {bad}={alpha if alpha is not None else beta!r});"
                " leave it None"
            )
    return family, d, noise_dims, alpha, beta


def _pad_profile(signal_profile: np.ndarray, d: int) -> np.ndarray:
    out = np.empty(d + 1, dtype=np.float64)
    s = signal_profile.shape[0] - 1
    out[: s + 1] = signal_profile
    out[s + 1 :] = signal_profile[-1]
    return out


def _profile(family: str, s: int, d: int, alpha, beta, L: np.ndarray | None) -> np.ndarray:
    if family == "linear":
        prof = np.array([linear_mi(D, alpha) for D in range(s + 1)], dtype=np.float64)
    elif family == "gaussian_beta":
        prof = np.array([gaussian_beta_mi(D, beta) for D in range(s + 1)], dtype=np.float64)
    else:
        prof = gaussian_mi_profile(L @ L.T)
    return _pad_profile(prof, d)


def true_mi_profile(
    family: str,
    d: int,
    *,
    alpha: float | None = None,
    beta: float | None = None,
    noise_dims: int = 0,
    cov_seed: int = THESIS_SEED,
) -> np.ndarray:
    """Analytic MI (nats) of the first D coordinates of X and of Y, D = 0 … d; float64 array of shape (d + 1,).

    Identical to ``draw_sample(family, n, d, ..., alpha=alpha, beta=beta, noise_dims=noise_dims,
    cov_seed=cov_seed).true_mi`` for any n and seed, but draws no sample (the random-Cholesky family draws only L,
    from ``cov_seed``). Entry 0 is 0; entries beyond the d − noise_dims signal dimensions repeat the last signal
    value (independent noise columns add no information).

    Source: thesis §4.1 (:func:`linear_mi`, :func:`gaussian_mi`, :func:`gaussian_beta_mi`); shared README §2.

    Raises
    ------
    ValueError
        As :func:`draw_sample` for ``family``, ``d``, ``noise_dims``, ``alpha``, ``beta`` and ``cov_seed``.
    """
    family, d, noise_dims, alpha, beta = _validate(family, d, noise_dims, alpha, beta)
    cov_seed = _check_seed(cov_seed, "cov_seed")
    s = d - noise_dims
    L = random_cholesky_factor(s, _generator(cov_seed)) if family == "gaussian_cholesky" else None
    return _profile(family, s, d, alpha, beta, L)


@dataclass(frozen=True)
class Sample:
    """A synthetic sample with its ground truth.

    Attributes
    ----------
    x, y : numpy.ndarray, shape (n, d), float64, C-contiguous
        Paired samples; the last ``params["noise_dims"]`` columns of each are independent N(0, 1) noise.
    true_mi : numpy.ndarray, shape (d + 1,), float64
        ``true_mi[D]`` = analytic mutual information (nats) between the first D coordinates of X and the first D
        coordinates of Y; ``true_mi[0] = 0`` and ``true_mi[d]`` is I(X; Y).
    family : str
        One of :data:`FAMILIES`.
    params : dict
        Everything that determines the sample, JSON-serialisable: ``family``, ``n``, ``d``, ``signal_dims``
        (= d − noise_dims), ``noise_dims``, ``seed``, ``cov_seed`` (None unless the family is
        ``"gaussian_cholesky"``, the only one that uses it), ``alpha`` (None unless ``"linear"``) and ``beta``
        (None unless ``"gaussian_beta"``).
    """

    x: np.ndarray
    y: np.ndarray
    true_mi: np.ndarray
    family: str
    params: dict


def draw_sample(
    family: str,
    n: int,
    d: int,
    seed: int = THESIS_SEED,
    *,
    alpha: float | None = None,
    beta: float | None = None,
    noise_dims: int = 0,
    cov_seed: int = THESIS_SEED,
) -> Sample:
    """Draw n paired samples of a synthetic family with known mutual information (thesis §4.1, README §2).

    Parameters
    ----------
    family : {"linear", "gaussian_cholesky", "gaussian_beta"}
        See the module docstring.
    n : int, >= 1
        Number of samples (rows).
    d : int, >= 1
        Dimension of X and of Y, *including* ``noise_dims``: the first d − noise_dims coordinates are the family's
        signal, the last noise_dims are independent N(0, 1) columns.
    seed : int in [0, 2**64)
        Seed of the PyTorch CPU generator that draws the sample (default 2023, the thesis's).
    alpha : float, 0 < alpha <= 1
        Required for ``"linear"``, must be None otherwise.
    beta : float
        Required for ``"gaussian_beta"`` (any finite real), must be None otherwise.
    noise_dims : int, 0 <= noise_dims < d
        Number of appended noise coordinates in X and in Y (thesis Figures 10/11 use d = 10, noise_dims = 8).
    cov_seed : int in [0, 2**64)
        ``"gaussian_cholesky"`` only (ignored, and recorded as None, otherwise): seed of the generator that draws
        L. When ``seed == cov_seed`` one generator draws L and then the sample, exactly as the thesis did (so the
        defaults reproduce it); otherwise L comes from a generator seeded with ``cov_seed`` and the sample from
        one seeded with ``seed``. Repeated seeds with a fixed ``cov_seed`` thus share Σ and the true MI.

    Returns
    -------
    Sample
        ``x``, ``y`` of shape (n, d) float64; ``true_mi`` of shape (d + 1,) in nats (see :class:`Sample`).

    Raises
    ------
    ValueError
        Naming the parameter: unknown ``family`` (the allowed ones are listed); ``n`` < 1; ``d`` < 1;
        ``noise_dims`` < 0 or >= d; ``alpha`` missing or outside (0, 1] for "linear"; ``beta`` missing or not finite
        for "gaussian_beta"; ``alpha``/``beta`` given to a family that has no such parameter; any of ``n``, ``d``,
        ``noise_dims``, ``seed``, ``cov_seed`` not an integer; a seed outside [0, 2**64).

    Notes
    -----
    Deterministic: the same arguments give identical arrays (the draws use only the generator passed around
    here, never torch's global one). Not prefix-consistent in n (see the module docstring): to use the first
    n₁ rows of an n₂-row sample, as the thesis did, draw at n₂ and slice.
    """
    family, d, noise_dims, alpha, beta = _validate(family, d, noise_dims, alpha, beta)
    n = _check_int(n, "n", minimum=1)
    if n * 2 * d > MAX_VALUES:
        raise ValueError(
            f"n * 2d = {n * 2 * d} values exceed the {MAX_VALUES:.0e} this function draws in "
            f"memory (n = {n}, d = {d}); draw a smaller sample"
        )
    seed = _check_seed(seed, "seed")
    cov_seed = _check_seed(cov_seed, "cov_seed")
    s = d - noise_dims
    g = _generator(seed)
    L = None

    if family == "linear":
        # torch.distributions.Uniform(-a/2, a/2).sample([n, s]) = low + rand(n, s) * (high - low); Z first.
        u_z = torch.rand(n, s, generator=g, dtype=torch.float32).to(torch.float64).numpy()
        u_x = torch.rand(n, s, generator=g, dtype=torch.float32).to(torch.float64).numpy()
        z = -alpha / 2.0 + u_z * alpha
        x_sig = u_x
        y_sig = u_x + z
    else:
        if family == "gaussian_cholesky":
            L = random_cholesky_factor(s, g if seed == cov_seed else _generator(cov_seed))
        else:
            L = beta_cholesky_factor(s, beta)
        eps = torch.randn(n, 2 * s, generator=g, dtype=torch.float32).to(torch.float64).numpy()
        xy = eps @ L.T
        x_sig = xy[:, :s]
        y_sig = xy[:, s:]

    if noise_dims:
        nx = torch.randn(n, noise_dims, generator=g, dtype=torch.float32).to(torch.float64).numpy()
        ny = torch.randn(n, noise_dims, generator=g, dtype=torch.float32).to(torch.float64).numpy()
        x = np.hstack([x_sig, nx])
        y = np.hstack([y_sig, ny])
    else:
        x = np.ascontiguousarray(x_sig, dtype=np.float64)
        y = np.ascontiguousarray(y_sig, dtype=np.float64)

    params = {
        "family": family,
        "n": n,
        "d": d,
        "signal_dims": s,
        "noise_dims": noise_dims,
        "seed": seed,
        "cov_seed": cov_seed if family == "gaussian_cholesky" else None,
        "alpha": alpha,
        "beta": beta,
    }
    return Sample(
        x=x,
        y=y,
        true_mi=_profile(family, s, d, alpha, beta, L),
        family=family,
        params=params,
    )
