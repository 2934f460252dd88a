"""Dataset-inference detectors and similarity measures on encoder representations (numpy in,
results out; torch-free).

Theft tests (a p-value and a verdict):

* :func:`gmm_test` -- the dataset-inference test of Dziedzic et al. (2022, "Dataset Inference
  for Self-Supervised Models", section 4): a Gaussian mixture fitted on the suspect's
  representations of one half of the victim's private images scores the other half
  (members) and public images; members of a stolen encoder's training signal score
  differently. Made sound here: Welch's t-test with an explicit ``alternative`` and a fixed
  ``alpha``.
* :func:`mi_score_gap` -- the MI score (thesis section 5) on members minus the MI score on
  public images, with a subsampling interval over image subsets.

Similarity measures (how alike two encoders' representations of the same images are; they
are *not* theft tests and give no p-value):

* :func:`linear_cka` -- linear centred kernel alignment (Kornblith et al. 2019, eq. 5);
* :func:`centred_cosine_similarity`, :func:`centred_l2_distance` -- the distance measures of
  Dziedzic et al. (2022), on centred, scale-normalised representations.
"""

from __future__ import annotations

import hashlib
import math
import numbers
from dataclasses import asdict, dataclass

import numpy as np

from ..estimators import _validation as v

__all__ = [
    "ALTERNATIVES",
    "GMMTestResult",
    "MIScoreGapResult",
    "centred_cosine_similarity",
    "centred_l2_distance",
    "gmm_test",
    "l2_normalise_rows",
    "linear_cka",
    "mi_score_gap",
]

ALTERNATIVES = ("two-sided", "greater", "less")


def _alpha(alpha) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be a number in (0, 1), got {alpha!r}")
    return float(alpha)


def _alternative(alternative) -> str:
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {list(ALTERNATIVES)}, got {alternative!r}")
    return alternative


def l2_normalise_rows(z, name: str = "z") -> np.ndarray:
    """Every row divided by its Euclidean norm.

    z : (N, d) finite real array. Returns an (N, d) float64 array with unit rows.
    Raises ValueError for NaN/inf, a non-2-D or empty array, or a zero row (named by index).
    """
    a = v.as_samples(z, name)
    # scale by the largest |value| of each row first: no overflow/underflow in the norm
    peak = np.abs(a).max(axis=1, keepdims=True)
    zero = np.flatnonzero(peak[:, 0] == 0.0)
    if len(zero):
        raise ValueError(f"{name}: row {int(zero[0])} is zero and has no direction "
                         f"({len(zero)} zero row(s))")
    a = a / peak
    return a / np.linalg.norm(a, axis=1, keepdims=True)


# ------------------------------------------------------------------------------ GMM test


@dataclass(frozen=True)
class GMMTestResult:
    """Result of :func:`gmm_test`.

    statistic : mean log-likelihood of members minus that of public images (nats per image,
        under the mixture fitted on ``fit``; the density is over the unit sphere's ambient
        space of the L2-normalised representations).
    p_value : Welch's t-test of the two log-likelihood samples under ``alternative``.
    verdict : "stolen" when p_value < alpha, else "inconclusive".
    t_statistic : Welch's t.
    mean_loglik_members, mean_loglik_public : the two means (nats per image).
    n_fit, n_members, n_public : rows of each set; n_components, covariance_type,
    alternative, alpha, seed : the settings; converged : whether EM converged within 1000
    iterations.
    """

    statistic: float
    p_value: float
    verdict: str
    t_statistic: float
    mean_loglik_members: float
    mean_loglik_public: float
    n_fit: int
    n_members: int
    n_public: int
    n_components: int
    covariance_type: str
    alternative: str
    alpha: float
    seed: int
    converged: bool

    def as_dict(self) -> dict:
        return asdict(self)


def gmm_test(fit, members, public, *, n_components: int = 10, covariance_type: str = "diag",
             alternative: str = "two-sided", seed: int = 0, alpha: float = 0.05) -> GMMTestResult:
    """Dataset-inference test of Dziedzic et al. (2022), section 4 ("Dataset Inference for
    Self-Supervised Models"), with a sound p-value.

    1. L2-normalise every row of the suspect's representations.
    2. Fit ``sklearn.mixture.GaussianMixture(n_components, covariance_type, max_iter=1000,
       random_state=seed)`` on ``fit`` (one half of the victim's private training images).
    3. Score ``members`` (the other private half) and ``public`` (non-members of the same
       distribution) with the per-image log-likelihood.
    4. statistic = mean log-likelihood(members) - mean log-likelihood(public); Welch's t-test
       (``scipy.stats.ttest_ind(equal_var=False, alternative=...)``) gives the p-value, with
       the sign respected: "greater" tests members > public, "less" members < public. (The
       original code halves a two-sided p without looking at the sign and sets no
       threshold; the paper assumed members score higher. On digits, a SimCLR victim that
       memorises gives its training images *lower* likelihood: measure the direction on the
       victim first.)

    Parameters
    ----------
    fit : (n_fit, d) real array, n_fit >= max(2, n_components).
    members : (n_members, d) real array, n_members >= 2.
    public : (n_public, d) real array, n_public >= 2.
    n_components : mixture components (the paper: 10 for CIFAR10/SVHN, 50 for ImageNet).
    covariance_type : "diag" (the paper's), "full", "tied" or "spherical".
    alternative : "two-sided", "greater" or "less".
    seed : random_state of the mixture (same seed, same result).
    alpha : the level of the verdict, in (0, 1), fixed in advance.

    Returns
    -------
    :class:`GMMTestResult`.

    Raises
    ------
    ValueError
        NaN/inf, non-2-D input, a zero row, different dimensions, too few rows, a bad
        alternative/alpha/covariance_type/n_components/seed, or log-likelihoods that are
        not finite.
    """
    from scipy import stats
    from sklearn.mixture import GaussianMixture

    alternative = _alternative(alternative)
    alpha = _alpha(alpha)
    seed = v.check_seed(seed)
    if covariance_type not in ("diag", "full", "tied", "spherical"):
        raise ValueError(f"covariance_type must be 'diag', 'full', 'tied' or 'spherical', got "
                         f"{covariance_type!r}")
    if isinstance(n_components, bool) or not isinstance(n_components, numbers.Integral) or (
        n_components < 1
    ):
        raise ValueError(f"n_components must be a positive integer, got {n_components!r}")
    sets = {name: l2_normalise_rows(z, name)
            for name, z in (("fit", fit), ("members", members), ("public", public))}
    dims = {name: a.shape[1] for name, a in sets.items()}
    if len(set(dims.values())) != 1:
        raise ValueError(f"fit, members and public must have the same dimension, got {dims}")
    for name, a in sets.items():
        if a.shape[0] < 2:
            raise ValueError(f"{name} needs at least 2 rows, got {a.shape[0]}")
    if sets["fit"].shape[0] < n_components:
        raise ValueError(f"fit has {sets['fit'].shape[0]} rows, fewer than n_components = "
                         f"{n_components}")
    gm = GaussianMixture(n_components=int(n_components), covariance_type=covariance_type,
                         max_iter=1000, random_state=seed)
    gm.fit(sets["fit"])
    ll_m = gm.score_samples(sets["members"])
    ll_p = gm.score_samples(sets["public"])
    if not (np.isfinite(ll_m).all() and np.isfinite(ll_p).all()):
        raise ValueError("the mixture's log-likelihoods are not finite (degenerate fit)")
    t, p = stats.ttest_ind(ll_m, ll_p, equal_var=False, alternative=alternative)
    p = float(p)
    return GMMTestResult(
        statistic=float(ll_m.mean() - ll_p.mean()), p_value=p,
        verdict="stolen" if p < alpha else "inconclusive", t_statistic=float(t),
        mean_loglik_members=float(ll_m.mean()), mean_loglik_public=float(ll_p.mean()),
        n_fit=int(sets["fit"].shape[0]), n_members=int(len(ll_m)), n_public=int(len(ll_p)),
        n_components=int(n_components), covariance_type=covariance_type,
        alternative=alternative, alpha=alpha, seed=int(seed), converged=bool(gm.converged_))


# ----------------------------------------------------------------------- similarity measures


def _same_images(a, b, name_a="a", name_b="b"):
    x = v.as_samples(a, name_a)
    y = v.as_samples(b, name_b)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{name_a} and {name_b} must represent the same images (same number "
                         f"of rows), got {x.shape[0]} and {y.shape[0]}")
    if x.shape[0] < 2:
        raise ValueError(f"{name_a} and {name_b} need at least 2 rows, got {x.shape[0]}")
    return x, y


def _centred_scaled(a, name):
    c = a - a.mean(axis=0)
    peak = float(np.abs(c).max())
    if peak == 0.0:
        raise ValueError(f"{name}: every row is the same; centred, the matrix is zero")
    return c / peak


def linear_cka(a, b) -> float:
    """Linear centred kernel alignment of two representation matrices of the same images
    (Kornblith et al. 2019, "Similarity of Neural Network Representations Revisited", eq. 5)::

        CKA(A, B) = ||B'^T A'||_F^2 / (||A'^T A'||_F ||B'^T B'||_F),

    A', B' the column-centred matrices. A similarity measure in [0, 1], not a theft test:
    1 for identical inputs, invariant to orthogonal transforms and isotropic scaling of
    either matrix (not to arbitrary invertible linear maps).

    Parameters
    ----------
    a : (N, d_a) real array; b : (N, d_b) real array, the same N images in the same order.

    Raises
    ------
    ValueError
        NaN/inf, different numbers of rows, N < 2, or a matrix whose rows are all equal.
    """
    x, y = _same_images(a, b)
    x = _centred_scaled(x, "a")
    y = _centred_scaled(y, "b")
    n = x.shape[0]
    if n < max(x.shape[1], y.shape[1]):
        # Gram form: tr(K L) / (||K|| ||L||), K = x x^T; O(N^2 d) instead of O(N d^2)
        kx, ky = x @ x.T, y @ y.T
        num = float(np.sum(kx * ky))
        den = float(np.linalg.norm(kx) * np.linalg.norm(ky))
    else:
        num = float(np.linalg.norm(y.T @ x) ** 2)
        den = float(np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))
    return min(max(num / den, 0.0), 1.0)


def _rms_rows(a, name):
    c = _centred_scaled(a, name)
    return c / math.sqrt(float(np.mean(np.sum(c * c, axis=1))))


def centred_cosine_similarity(a, b) -> float:
    """Mean over images of the cosine between the centred representations of the same image
    by two encoders (the cosine measure of Dziedzic et al. 2022, on centred representations).

    a, b : (N, d) real arrays, the same N images and the same dimension d (a stolen encoder
    with head ``none`` is trained to reproduce the victim's coordinates). Returns a value in
    [-1, 1]. Similarity measure, not a theft test. Rows that are zero after centring are
    left out. Raises ValueError as :func:`linear_cka`, for different dimensions, or when
    every centred row is zero.
    """
    x, y = _same_images(a, b)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"the cosine needs the same dimension, got {x.shape[1]} and "
                         f"{y.shape[1]}")
    x, y = _rms_rows(x, "a"), _rms_rows(y, "b")
    nx, ny = np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1)
    ok = (nx > 0) & (ny > 0)
    if not ok.any():
        raise ValueError("every centred row is zero")
    cos = np.sum(x[ok] * y[ok], axis=1) / (nx[ok] * ny[ok])
    return float(np.clip(cos, -1.0, 1.0).mean())


def centred_l2_distance(a, b) -> float:
    """Mean over images of the Euclidean distance between the centred representations of the
    same image by two encoders, each matrix scaled to a root-mean-square row norm of 1 (so
    the value is scale-free and lies in [0, 2]; 0 for identical inputs). The L2 measure of
    Dziedzic et al. 2022 with the scale removed. A distance, not a theft test.

    a, b : (N, d) real arrays with the same N and d. Raises ValueError as
    :func:`centred_cosine_similarity`.
    """
    x, y = _same_images(a, b)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"the L2 distance needs the same dimension, got {x.shape[1]} and "
                         f"{y.shape[1]}")
    x, y = _rms_rows(x, "a"), _rms_rows(y, "b")
    return float(np.linalg.norm(x - y, axis=1).mean())


# ------------------------------------------------------------------------ MI-score gap


@dataclass(frozen=True)
class MIScoreGapResult:
    """Result of :func:`mi_score_gap`.

    statistic : MI score on members minus MI score on public images (scores in [0, 1]).
    score_members, score_public : the two MI scores on all the images.
    ci_low, ci_high : the (1 - alpha) two-sided percentile interval of the statistic over
        ``n_subsets`` random half-subsets of each image set.
    p_value : subsampling p-value of the direction ``alternative``: (1 + #{subset
        statistics on the wrong side of 0}) / (n_subsets + 1) (one-sided; for "two-sided"
        twice the smaller tail, capped at 1).
    verdict : "stolen" when p_value < alpha, else "inconclusive".
    """

    statistic: float
    score_members: float
    score_public: float
    ci_low: float
    ci_high: float
    p_value: float
    verdict: str
    alternative: str
    alpha: float
    n_members: int
    n_public: int
    n_subsets: int

    def as_dict(self) -> dict:
        return asdict(self)


def _digest(a: np.ndarray) -> bytes:
    a = np.ascontiguousarray(a)
    return hashlib.blake2b(a.tobytes() + repr((a.shape, a.dtype.str)).encode(),
                           digest_size=16).digest()


def _score(ref, sus, randoms, k, p, cache=None):
    from .mi import embedding_mi, mi_score

    def mi(a, b):
        if cache is None:
            return embedding_mi(a, b, k=k, p=p)
        key = (_digest(a), _digest(b), k, p)
        if key not in cache:
            cache[key] = embedding_mi(a, b, k=k, p=p)
        return cache[key]

    i = embedding_mi(ref, sus, k=k, p=p)  # the suspect's own: not shared, not cached
    i_min = float(np.mean([mi(ref, r) for r in randoms]))
    i_max = mi(ref, ref)  # I(V;V), as the MI stage's self row
    return mi_score(i, i_min, i_max)


def mi_score_gap(victim_members, suspect_members, random_members, victim_public,
                 suspect_public, random_public, *, alternative: str = "greater",
                 n_subsets: int = 50, subset_fraction: float = 0.5, seed: int = 0,
                 alpha: float = 0.05, k: int = 1, p: float = 2.0,
                 cache: dict | None = None) -> MIScoreGapResult:
    """MI score on members minus MI score on public images: a dataset-inference statistic
    built from the MI score of the thesis (section 5, Table 3; the score is
    :func:`mipipe.inference.mi.mi_score` with I_max = I(V;V) and I_min the mean
    MI with the random encoders on the same images).

    Parameters
    ----------
    victim_members, suspect_members : (N_m, d_v), (N_m, d_s) representations of the member
        images by the victim and the suspect; random_members : list of (N_m, d_r) arrays, the
        random encoders' on the same images (at least one).
    victim_public, suspect_public, random_public : the same for N_p public images.
    alternative : "greater" (members score higher: the suspect learnt from the victim's
        answers on its training images), "less" or "two-sided".
    n_subsets : random subsets (without replacement, ``subset_fraction`` of each set) for the
        interval and p-value; seed : their seed. alpha : level in (0, 1).
    k, p : the kNN estimator's (the thesis: 1, 2).
    cache : a dict to share between calls on the same images (several suspects): MI values
        keyed by a digest of the two arrays, so that I(V;V) and I(V;random) on each subset
        are computed once; the results are the same with or without it.

    Raises
    ------
    ValueError
        Bad shapes, no random encoder, a bad alternative/alpha/n_subsets/subset_fraction, or
        what :func:`mipipe.inference.mi.embedding_mi` raises.
    """
    alternative = _alternative(alternative)
    alpha = _alpha(alpha)
    seed = v.check_seed(seed)
    if isinstance(n_subsets, bool) or not isinstance(n_subsets, numbers.Integral) or n_subsets < 1:
        raise ValueError(f"n_subsets must be a positive integer, got {n_subsets!r}")
    if not isinstance(subset_fraction, numbers.Real) or not 0 < subset_fraction <= 1:
        raise ValueError(f"subset_fraction must be in (0, 1], got {subset_fraction!r}")
    sets = {}
    for part, (ref, sus, rands) in {"members": (victim_members, suspect_members, random_members),
                                    "public": (victim_public, suspect_public, random_public)
                                    }.items():
        ref, sus = _same_images(ref, sus, f"victim_{part}", f"suspect_{part}")
        if len(rands) == 0:
            raise ValueError(f"random_{part}: at least one random encoder's representations")
        rands = [_same_images(ref, r, f"victim_{part}", f"random_{part}")[1] for r in rands]
        sets[part] = (ref, sus, rands)

    def gap(idx_m=None, idx_p=None):
        out = []
        for part, idx in (("members", idx_m), ("public", idx_p)):
            ref, sus, rands = sets[part]
            if idx is not None:
                ref, sus, rands = ref[idx], sus[idx], [r[idx] for r in rands]
            out.append(_score(ref, sus, rands, k, p, cache))
        return out

    s_m, s_p = gap()
    rng = np.random.default_rng(seed)
    n_m, n_p = sets["members"][0].shape[0], sets["public"][0].shape[0]
    m_m = max(int(round(subset_fraction * n_m)), k + 2)
    m_p = max(int(round(subset_fraction * n_p)), k + 2)
    boot = np.empty(int(n_subsets))
    for b in range(int(n_subsets)):
        a_m, a_p = gap(np.sort(rng.choice(n_m, m_m, replace=False)),
                       np.sort(rng.choice(n_p, m_p, replace=False)))
        boot[b] = a_m - a_p
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    below = (1.0 + float(np.sum(boot <= 0))) / (len(boot) + 1.0)
    above = (1.0 + float(np.sum(boot >= 0))) / (len(boot) + 1.0)
    p_value = {"greater": below, "less": above,
               "two-sided": min(1.0, 2 * min(below, above))}[alternative]
    return MIScoreGapResult(
        statistic=float(s_m - s_p), score_members=float(s_m), score_public=float(s_p),
        ci_low=float(lo), ci_high=float(hi), p_value=float(p_value),
        verdict="stolen" if p_value < alpha else "inconclusive", alternative=alternative,
        alpha=alpha, n_members=int(n_m), n_public=int(n_p), n_subsets=int(n_subsets))
