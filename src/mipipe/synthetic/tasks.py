"""The benchmark tasks of "Beyond Normal" (Czyż et al., NeurIPS 2023; package ``benchmark-mi``).

Forty distributions with known mutual information, named by the paper's (bmi's) task ids, so that
mipipe's estimates can be read beside the paper's main table. Written from the paper's definitions
(section 3 and appendix), with the same distributions and transform parameters as bmi's task list:

* **Bivariate / multivariate normal** (``1v1-normal-0.75``, ``multinormal-dense-D-D-0.5``,
  ``multinormal-sparse-D-D-2-2.0``): I = ½(log det Σ_XX + log det Σ_YY − log det Σ).
  *Dense*: every off-diagonal entry of the joint correlation is 0.5. *Sparse*: the paper's Gaussian
  latent-variable model with 2 interacting pairs, strength λ = η = 2, unit noise: X_i = λZ_i + E_i and
  Y_i = λZ_i + F_i for i < 2 (the other coordinates ηV_i + E_i), so corr(X_i, Y_i) = λ²/(λ² + 1) = 0.8
  and I = −log(1 − 0.64) = 1.0217 at any dimension.
* **Multivariate Student-t**, identity dispersion, ν degrees of freedom (``student-identity-dx-dy-ν``):
  I = h(d_x) + h(d_y) − h(d_x + d_y), h(d) the differential entropy of the standard d-dimensional t
  (paper, appendix on the Student distribution): −lnΓ((ν+d)/2) + lnΓ(ν/2) + (d/2)ln(νπ)
  + ((ν+d)/2)(ψ((ν+d)/2) − ψ(ν/2)).
* **Additive uniform noise** (``1v1-additive-ε``): X ~ U(0, 1), Y = X + U(−ε, ε);
  I = ε − log 2ε for ε ≤ ½ and 1/(4ε) above.
* **Transforms** of X and of Y separately (diffeomorphisms onto their images keep I): ``normal_cdf``
  Φ(t); ``half_cube`` t·√|t|; ``asinh``; ``wiggly`` (x + 0.4 sin x + 0.2 sin(1.7x + 1) + 0.03 sin(3.3x − 2.5),
  y − 0.4 sin 0.4y + 0.17 sin(1.3y + 3.5) + 0.02 sin(4.3y − 2.5)); ``spiral`` x ↦ exp(A·v·|x|²) x, A the
  so(d) generator of the (0, 1) plane for X and of the (1, 2) plane for Y, speed v = 1/d;
  ``swissroll_x`` (1-D in [0, 1] → 2-D: t = 1.5π(1 + 2x), (t cos t, t sin t)/21); ``bimodal``: the uniform
  task pushed through the inverse CDFs of 0.3 N(0, 1) + 0.7 N(5, 1) (X) and 0.5 N(−1, 1) + 0.5 N(3, 1) (Y).

Every task is a :class:`Task` with ``dim_x``, ``dim_y``, ``true_mi`` (nats) and ``sample(n, seed)``
(float64 arrays, deterministic for a seed; drawn with NumPy's PCG64, so the values differ from bmi's
JAX draws while the distribution is the same). ``TASKS`` maps id → task, in the order of the paper's
main table (bmi's ``BENCHMARK_TASKS_LIST``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.special import digamma, gammaln, ndtr

Sampler = Callable[[int, np.random.Generator], "tuple[np.ndarray, np.ndarray]"]
MAX_VALUES = 2 * 10**8
"""Largest n·(dim_x + dim_y) that :meth:`Task.sample` draws in memory."""


@dataclass(frozen=True)
class Task:
    """One benchmark task: a joint distribution of (X, Y) with known mutual information.

    Attributes
    ----------
    task_id : bmi's id, e.g. ``"multinormal-sparse-5-5-2-2.0"``.
    name : the paper's label, e.g. ``"Multinormal 5 × 5 (sparse)"``.
    dim_x, dim_y : dimensions of X and of Y.
    true_mi : I(X; Y) in nats (analytic).
    family : the base distribution ("normal", "student", "additive").
    """

    task_id: str
    name: str
    dim_x: int
    dim_y: int
    true_mi: float
    family: str
    _draw: Sampler = field(repr=False, compare=False)

    def sample(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw n independent pairs.

        Parameters
        ----------
        n : int >= 1, the number of rows.
        seed : int in [0, 2**64), seed of NumPy's PCG64 generator (the same seed gives identical arrays).

        Returns
        -------
        (x, y): float64 arrays of shape (n, dim_x) and (n, dim_y).

        Raises
        ------
        ValueError
            ``n`` not an integer >= 1 or too large to draw in memory; ``seed`` not an integer in [0, 2**64).
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be an integer >= 1, got {n!r}")
        if int(n) * (self.dim_x + self.dim_y) > MAX_VALUES:
            raise ValueError(f"n = {n}: n * (dim_x + dim_y) exceeds {MAX_VALUES:.0e} values")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**64:
            raise ValueError(f"seed must be an integer in [0, 2**64), got {seed!r}")
        x, y = self._draw(int(n), np.random.default_rng(int(seed)))
        return (np.ascontiguousarray(x, dtype=np.float64).reshape(n, self.dim_x),
                np.ascontiguousarray(y, dtype=np.float64).reshape(n, self.dim_y))


# ---------------------------------------------------------------------------------------------
# Analytic mutual information


def gaussian_mi(cov: np.ndarray, dim_x: int) -> float:
    """I(X; Y) in nats of (X, Y) ~ N(0, cov), X the first ``dim_x`` coordinates:
    ½(log det Σ_XX + log det Σ_YY − log det Σ) (Cover & Thomas, eq. 8.56 applied three times)."""
    cov = np.asarray(cov, dtype=np.float64)
    ld = lambda m: np.linalg.slogdet(m)[1]  # noqa: E731
    return 0.5 * float(ld(cov[:dim_x, :dim_x]) + ld(cov[dim_x:, dim_x:]) - ld(cov))


def student_entropy(d: int, df: float) -> float:
    """Differential entropy (nats) of the standard d-dimensional Student-t with ``df`` degrees of
    freedom and identity dispersion (Czyż et al. 2023, appendix; Kotz & Nadarajah 2004)."""
    a = 0.5 * (df + d)
    return float(-gammaln(a) + gammaln(0.5 * df) + 0.5 * d * math.log(df * math.pi)
                 + a * (digamma(a) - digamma(0.5 * df)))


def student_identity_mi(dim_x: int, dim_y: int, df: float) -> float:
    """I(X; Y) (nats) of the split multivariate Student-t with identity dispersion:
    h(d_x) + h(d_y) − h(d_x + d_y) (the Gaussian part of the paper's formula is 0 here)."""
    return student_entropy(dim_x, df) + student_entropy(dim_y, df) - student_entropy(dim_x + dim_y, df)


def additive_uniform_mi(epsilon: float) -> float:
    """I(X; X + N) (nats), X ~ U(0, 1), N ~ U(−ε, ε): ε − log 2ε for ε ≤ ½, else 1/(4ε)."""
    return epsilon - math.log(2 * epsilon) if epsilon <= 0.5 else 0.25 / epsilon


def dense_correlation(dim_x: int, dim_y: int, off_diag: float = 0.5) -> np.ndarray:
    """Joint correlation with every off-diagonal entry ``off_diag``, shape (dim_x + dim_y,)*2."""
    d = dim_x + dim_y
    return np.full((d, d), off_diag) + (1.0 - off_diag) * np.eye(d)


def sparse_correlation(dim_x: int, dim_y: int, n_interacting: int = 2, strength: float = 2.0) -> np.ndarray:
    """The joint correlation of the paper's sparse latent-variable model (α = β = 0, λ = η = strength,
    unit noise): identity except corr(X_i, Y_i) = λ²/(λ² + 1) for i < n_interacting."""
    c = np.eye(dim_x + dim_y)
    rho = strength**2 / (strength**2 + 1.0)
    for i in range(n_interacting):
        c[i, dim_x + i] = c[dim_x + i, i] = rho
    return c


# ---------------------------------------------------------------------------------------------
# Base samplers


def _normal(cov: np.ndarray, dim_x: int) -> Sampler:
    chol = np.linalg.cholesky(cov)

    def draw(n, rng):
        z = rng.standard_normal((n, cov.shape[0])) @ chol.T
        return z[:, :dim_x], z[:, dim_x:]

    return draw


def _student(dim_x: int, dim_y: int, df: float) -> Sampler:
    def draw(n, rng):
        z = rng.standard_normal((n, dim_x + dim_y))
        t = z / np.sqrt(rng.chisquare(df, size=(n, 1)) / df)  # one scale for X and Y together
        return t[:, :dim_x], t[:, dim_x:]

    return draw


def _additive(epsilon: float) -> Sampler:
    def draw(n, rng):
        x = rng.uniform(0.0, 1.0, size=(n, 1))
        return x, x + rng.uniform(-epsilon, epsilon, size=(n, 1))

    return draw


# ---------------------------------------------------------------------------------------------
# Transforms (each applied to X and to Y separately)


def half_cube(t: np.ndarray) -> np.ndarray:
    """t·√|t|, a signed t^{3/2} (heavier tails)."""
    return t * np.sqrt(np.abs(t))


def wiggly_x(t: np.ndarray) -> np.ndarray:
    """The paper's monotone "wiggly" map of X."""
    return t + 0.4 * np.sin(t) + 0.2 * np.sin(1.7 * t + 1) + 0.03 * np.sin(3.3 * t - 2.5)


def wiggly_y(t: np.ndarray) -> np.ndarray:
    """The paper's monotone "wiggly" map of Y."""
    return t - 0.4 * np.sin(0.4 * t) + 0.17 * np.sin(1.3 * t + 3.5) + 0.02 * np.sin(4.3 * t - 2.5)


def spiral(v: np.ndarray, i: int, j: int, speed: float) -> np.ndarray:
    """x ↦ exp(speed·|x|²·A_ij) x: a rotation in the (i, j) plane by the angle speed·|x|²
    (A_ij the so(d) generator with A[i, j] = −1, A[j, i] = 1). Shape (n, d) → (n, d)."""
    theta = speed * np.einsum("nd,nd->n", v, v)
    c, s = np.cos(theta), np.sin(theta)
    out = v.copy()
    out[:, i] = c * v[:, i] - s * v[:, j]
    out[:, j] = s * v[:, i] + c * v[:, j]
    return out


def swissroll(u: np.ndarray) -> np.ndarray:
    """(n, 1) in [0, 1] → (n, 2): t = 1.5π(1 + 2u), (t cos t, t sin t) / 21."""
    t = 1.5 * np.pi * (1 + 2 * u[:, 0])
    return np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / 21.0


def mixture_icdf(u: np.ndarray, weights, means, lo: float = -10.0, hi: float = 10.0) -> np.ndarray:
    """Inverse CDF of a mixture of unit-variance normals at u in [0, 1], by bisection on [lo, hi]
    (as bmi, which also clips to ±10): 60 halvings, error below 2e-17·(hi − lo)."""
    cdf = lambda t: sum(w * ndtr(t - m) for w, m in zip(weights, means))  # noqa: E731
    a = np.full_like(u, lo)
    b = np.full_like(u, hi)
    for _ in range(60):
        mid = 0.5 * (a + b)
        below = cdf(mid) < u
        a = np.where(below, mid, a)
        b = np.where(below, b, mid)
    return 0.5 * (a + b)


def _transformed(base: Task, prefix: str, fx, fy, name: str, dim_x: int | None = None) -> Task:
    def draw(n, rng):
        x, y = base._draw(n, rng)
        return fx(x), fy(y)

    return Task(f"{prefix}-{base.task_id}", name, dim_x or base.dim_x, base.dim_y, base.true_mi,
                base.family, draw)


# ---------------------------------------------------------------------------------------------
# The task list


def bivariate_normal(rho: float = 0.75) -> Task:
    cov = np.array([[1.0, rho], [rho, 1.0]])
    return Task(f"1v1-normal-{rho}", "Bivariate normal 1 × 1", 1, 1, gaussian_mi(cov, 1), "normal",
                _normal(cov, 1))


def multinormal_dense(dim_x: int, dim_y: int, off_diag: float = 0.5) -> Task:
    cov = dense_correlation(dim_x, dim_y, off_diag)
    return Task(f"multinormal-dense-{dim_x}-{dim_y}-{off_diag}", f"Multinormal {dim_x} × {dim_y} (dense)",
                dim_x, dim_y, gaussian_mi(cov, dim_x), "normal", _normal(cov, dim_x))


def multinormal_sparse(dim_x: int, dim_y: int, n_interacting: int = 2, strength: float = 2.0) -> Task:
    cov = sparse_correlation(dim_x, dim_y, n_interacting, strength)
    return Task(f"multinormal-sparse-{dim_x}-{dim_y}-{n_interacting}-{strength}",
                f"Multinormal {dim_x} × {dim_y} (2-pair)", dim_x, dim_y, gaussian_mi(cov, dim_x),
                "normal", _normal(cov, dim_x))


def student_identity(dim_x: int, dim_y: int, df: int) -> Task:
    return Task(f"student-identity-{dim_x}-{dim_y}-{df}", f"Student-t {dim_x} × {dim_y} (dof={df})",
                dim_x, dim_y, student_identity_mi(dim_x, dim_y, df), "student",
                _student(dim_x, dim_y, df))


def additive_noise(epsilon: float) -> Task:
    return Task(f"1v1-additive-{epsilon}", f"Uniform 1 × 1 (additive noise={epsilon})", 1, 1,
                additive_uniform_mi(epsilon), "additive", _additive(epsilon))


def normal_cdf(base: Task) -> Task:
    return _transformed(base, "normal_cdf", ndtr, ndtr, f"Normal CDF @ {base.name}")


def half_cube_of(base: Task) -> Task:
    return _transformed(base, "half_cube", half_cube, half_cube, f"Half-cube @ {base.name}")


def asinh_of(base: Task) -> Task:
    return _transformed(base, "asinh", np.arcsinh, np.arcsinh, f"Asinh @ {base.name}")


def wiggly(base: Task) -> Task:
    return _transformed(base, "wiggly", wiggly_x, wiggly_y, f"Wiggly @ {base.name}")


def spiral_of(base: Task, speed: float = 1.0) -> Task:
    dx, dy = base.dim_x, base.dim_y
    return _transformed(base, "spiral", lambda v: spiral(v, 0, 1, speed / dx),
                        lambda v: spiral(v, 1, 2, speed / dy), f"Spiral @ {base.name}")


def bimodal(rho: float = 0.75) -> Task:
    uniform = normal_cdf(bivariate_normal(rho))
    task = _transformed(uniform, "bimodal", lambda u: mixture_icdf(u, (0.3, 0.7), (0.0, 5.0)),
                        lambda u: mixture_icdf(u, (0.5, 0.5), (-1.0, 3.0)), "Bimodal 1 × 1")
    return Task(f"1v1-bimodal-{rho}", task.name, 1, 1, task.true_mi, "normal", task._draw)


def swissroll_x(base: Task) -> Task:
    return _transformed(base, "swissroll_x", swissroll, lambda v: v, "Swiss roll 2 × 1", dim_x=2)


def _task_list() -> list[Task]:
    normal = bivariate_normal(0.75)
    uniform = normal_cdf(normal)
    cauchy = student_identity(1, 1, 1)
    sparse = {d: multinormal_sparse(d, d) for d in (2, 3, 5, 25)}
    one_dim = [normal, uniform, additive_noise(0.1), additive_noise(0.75), bimodal(0.75), wiggly(normal),
               half_cube_of(normal), cauchy, asinh_of(cauchy)]
    embedding = [swissroll_x(uniform)]
    multinormal = [multinormal_dense(d, d) for d in (2, 3, 5, 25, 50)] + [sparse[d] for d in (2, 3, 5, 25)]
    student = [student_identity(d, d, df) for d, df in ((2, 1), (2, 2), (3, 2), (3, 3), (5, 2), (5, 3))]
    transformed = (
        [normal_cdf(sparse[d]) for d in (3, 5, 25)]
        + [half_cube_of(sparse[d]) for d in (3, 5, 25)]
        + [spiral_of(sparse[d]) for d in (3, 5, 25)]
        + [spiral_of(normal_cdf(sparse[d])) for d in (3, 5, 25)]
        + [asinh_of(student_identity(d, d, df)) for d, df in ((2, 1), (3, 2), (5, 2))]
    )
    return one_dim + embedding + multinormal + student + transformed


TASKS: dict[str, Task] = {t.task_id: t for t in _task_list()}
"""The 40 tasks of the paper's main table, id → :class:`Task`, in the table's order."""


def get_task(task_id: str) -> Task:
    """The task with bmi's id ``task_id`` (e.g. ``"1v1-normal-0.75"``).

    Raises
    ------
    KeyError
        Unknown id; the message names the closest known ids.
    """
    try:
        return TASKS[task_id]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(str(task_id), TASKS, n=3, cutoff=0.5)
        hint = f"; did you mean {close}?" if close else f"; known: {len(TASKS)} ids, see mipipe.tasks.TASKS"
        raise KeyError(f"unknown task id {task_id!r}{hint}") from None
