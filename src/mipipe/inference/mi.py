"""Dataset inference by mutual information between embeddings (thesis section 5, Table 3;
Dziedzic et al. 2022, "Dataset inference for self-supervised models").

The question: was an encoder stolen from a victim? Both encoders embed the same N images
(the first N evaluation images, unshuffled); the MI between the two embedding matrices is
high for a copy or a stolen encoder and low for an independent or random one.

Recipe (shared/README.md section 4, the code behind thesis Table 3): centre each
embedding matrix per dimension, divide it by its Frobenius norm
(:func:`normalise_embeddings`), then estimate the MI with the project's kNN ("3KL")
estimator, k = 1, Euclidean norm (:func:`embedding_mi`). The MI score
``S = (clip(I(V;S), I_min, I_max) - I_min) / (I_max - I_min)`` puts it on [0, 1] with
I_max = I(V;V) and I_min = I(V;random) (:func:`mi_score`, :func:`score_table`).
Beyond the thesis: a permutation test per pair (:func:`permutation_test`) and the spread of
I_min over the random encoders' seeds.

All MI values are in nats.
"""

from __future__ import annotations

import inspect
import logging
import math
import numbers
import re
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import digamma

from ..estimators import _validation as v
from ..estimators import knn_mi, ksg_mi, log_unit_ball_volume
from ..estimators.permutation import knn_mi_permutation_null, permutations
from ..io import read_parquet, write_parquet

log = logging.getLogger("mipipe.inference")

__all__ = [
    "ESTIMATORS",
    "PSI_TERMS",
    "PermutationResult",
    "mi_stage",
    "pair_mi",
    "drop_constant_columns",
    "embedding_mi",
    "mi_max_closed_form",
    "mi_score",
    "normalise_embeddings",
    "permutation_test",
    "permutations",
    "read_embedding",
    "score_table",
]

ESTIMATORS = ("knn", "ksg", "ksg1", "ksg2", "ksliced", "latent")
PSI_TERMS = ("digamma", "log", "code")

# the fast permutation null keeps two n x n float64 distance matrices up to this size
_FAST_MAX_BYTES = 2 * 1024**3


# --------------------------------------------------------------------------- preparation


def normalise_embeddings(z, name: str = "z") -> np.ndarray:
    """Centre each dimension and divide by the Frobenius norm (shared/README.md section 4).

    Parameters
    ----------
    z : (N, d) real array (N >= 2), one embedding per row.
    name : name used in error messages.

    Returns
    -------
    (N, d) float64 array with column means 0 and Frobenius norm 1.

    Raises
    ------
    ValueError
        NaN/inf, not 2-D (a 1-D array is one dimension), empty, or all rows equal (the
        centred matrix is zero and cannot be scaled).
    """
    a = v.as_samples(z, name)
    centred = a - a.mean(axis=0)
    # Divide by the largest |value| first (exact up to rounding) so that the norm neither
    # overflows (embeddings ~1e300) nor underflows (~1e-320).
    scale = float(np.abs(centred).max())
    if scale > 0.0:
        centred = centred / scale
    norm = float(np.linalg.norm(centred))
    if norm == 0.0:
        raise ValueError(
            f"{name}: all {a.shape[0]} embeddings are identical; after centring the matrix is "
            f"zero and cannot be divided by its Frobenius norm"
        )
    return centred / norm


def drop_constant_columns(z, name: str = "z") -> tuple[np.ndarray, np.ndarray]:
    """Remove the dimensions that are constant over all rows.

    A constant embedding dimension (e.g. a ReLU unit that is zero on every image) carries no
    information, and the kNN entropy is undefined with it (no density on R^d); dropping it
    leaves the MI unchanged in theory.

    Returns
    -------
    (kept (N, d') float64 array, dropped column indices (int64 array)).

    Raises
    ------
    ValueError
        As :func:`normalise_embeddings`; every column constant.
    """
    a = v.as_samples(z, name)
    const = (a == a[0]).all(axis=0)
    if const.all():
        raise ValueError(
            f"{name}: all {a.shape[1]} dimensions are constant over the {a.shape[0]} rows "
            f"(every embedding is identical); its MI with anything is 0 and cannot be estimated"
        )
    return np.ascontiguousarray(a[:, ~const]), np.flatnonzero(const)


def _prepare_pair(z_ref, z_other, normalise: bool, drop_constant: bool):
    x = v.as_samples(z_ref, "z_ref")
    y = v.as_samples(z_other, "z_other")
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"z_ref and z_other must embed the same images (same number of rows), got "
            f"{x.shape[0]} and {y.shape[0]}"
        )
    if drop_constant:
        x, _ = drop_constant_columns(x, "z_ref")
        y, _ = drop_constant_columns(y, "z_other")
    if normalise:
        x = normalise_embeddings(x, "z_ref")
        y = normalise_embeddings(y, "z_other")
    return x, y


def _check_estimator(estimator: str, kw: dict) -> tuple:
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {list(ESTIMATORS)}, got {estimator!r}")
    if estimator in ("ksg1", "ksg2"):
        if "variant" in kw:
            raise ValueError(f"estimator {estimator!r} fixes the KSG variant; drop 'variant'")
        kw = {**kw, "variant": int(estimator[-1])}
    elif estimator == "knn" and "variant" in kw:
        raise ValueError("'variant' applies to the KSG estimator, not to estimator='knn'")
    if estimator in ("ksliced", "latent"):  # issue 14: k-sliced MI, latent MI
        from .. import estimators

        lib = estimators.ksliced_mi if estimator == "ksliced" else estimators.latent_mi
        allowed = set(inspect.signature(lib).parameters) - {"x", "y", "k", "p", "return_slices"}

        def fn(x, y, k, p, **opts):
            if estimator == "ksliced":
                return lib(x, y, k=k, p=p, **opts)
            return lib(x, y, k=k, **opts).estimate  # latent: KSG1 with the max norm
    else:
        fn = ksg_mi if estimator.startswith("ksg") else knn_mi
        allowed = set(inspect.signature(fn).parameters) - {"x", "y", "k", "p"}
    unknown = sorted(set(kw) - allowed)
    if unknown:
        raise ValueError(
            f"unknown estimator option(s) {unknown} for estimator={estimator!r}; "
            f"allowed: {sorted(allowed)}"
        )
    return fn, kw


# --------------------------------------------------------------------------- MI


def mi_max_closed_form(n: int, d: int, psi_term: str = "digamma", *, k: int = 1,
                       p: float = 2.0) -> float:
    """I(V;V): the kNN ("3KL") MI of an embedding matrix with itself, in nats.

    For x = y the joint distance is 2^(1/p) times the marginal one, so every log r_i cancels
    and the estimate does not depend on the data (nor on the normalisation):

    ``I = T + 2 log c_{d,p} - log c_{2d,p} - (2d/p) log 2``,

    which for p = 2 is ``T + lnGamma(d+1) - 2 lnGamma(d/2+1) - d log 2``
    (shared/README.md section 4), and for p = inf is T. The psi-term T is
    ``n_term - psi(k)`` with

    * "digamma": n_term = psi(n), what :func:`mipipe.estimators.knn_mi` computes with its
      default ``correction="digamma"`` (and so :func:`embedding_mi`);
    * "log": n_term = log n, ``correction="log"`` (thesis Definition 3.1 as written);
    * "code": n_term = log(n - 1), the original code behind thesis Table 3 (with k = 1:
      log(n-1) + gamma; N = 2000, d = 512 gives 4.832 nats, the thesis's 4.8).

    Parameters
    ----------
    n : number of embeddings N >= 2 (> k).
    d : embedding dimension >= 1.
    psi_term : "digamma", "log" or "code".
    k : neighbour order; p : the norm (>= 1 or inf).

    Raises
    ------
    ValueError
        n <= k, d < 1, unknown psi_term, bad k or p.
    """
    if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1:
        raise ValueError(f"d must be a positive integer, got {d!r}")
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise ValueError(f"n must be an integer, got {n!r}")
    k = v.check_k(k, int(n))
    p = v.check_p(p)
    v.check_choice(psi_term, "psi_term", PSI_TERMS)
    n_term = {"digamma": float(digamma(n)), "log": math.log(n), "code": math.log(n - 1)}[psi_term]
    t = n_term - float(digamma(k))
    scale = 0.0 if math.isinf(p) else (2 * d / p) * math.log(2.0)
    return t + 2 * log_unit_ball_volume(d, p) - log_unit_ball_volume(2 * d, p) - scale


def embedding_mi(z_ref, z_other, *, estimator: str = "knn", k: int = 1, p: float = 2.0,
                 normalise: bool = True, drop_constant: bool = True, **kw) -> float:
    """MI between two encoders' embeddings of the same images, in nats (thesis Table 3).

    Parameters
    ----------
    z_ref : (N, d_ref) real array, the reference (victim) encoder's embeddings.
    z_other : (N, d_other) real array, the other encoder's embeddings of the same images,
        same row order.
    estimator : "knn" (default; :func:`mipipe.estimators.knn_mi`, thesis Definition 3.2),
        "ksg" (:func:`mipipe.estimators.ksg_mi`, ``variant`` from kw, default 1), "ksg1",
        "ksg2", "ksliced" (:func:`mipipe.estimators.ksliced_mi`: k-sliced MI, not I(X; Y);
        kw e.g. dim, n_slices, seed) or "latent" (:func:`mipipe.estimators.latent_mi`, p
        ignored: KSG1 with the max norm on the latents; kw e.g. latent_dim, width, epochs).
    k : neighbours (the thesis: 1). p : norm (the thesis: 2, Euclidean).
    normalise : apply :func:`normalise_embeddings` to each matrix (the thesis's recipe).
    drop_constant : drop constant dimensions first (:func:`drop_constant_columns`); the
        kNN estimator refuses them otherwise.
    **kw : passed to the estimator (correction, eps, method, workers, jitter, seed, variant).

    Returns
    -------
    float, MI in nats; for z_other = z_ref, :func:`mi_max_closed_form` (N, d).

    Raises
    ------
    ValueError
        NaN/inf, different numbers of rows, an all-constant matrix, unknown estimator,
        repeated embeddings (pass ``jitter``), or the estimator's own argument errors.
    """
    fn, kw = _check_estimator(estimator, kw)
    x, y = _prepare_pair(z_ref, z_other, normalise, drop_constant)
    return float(fn(x, y, k, p, **kw))


# --------------------------------------------------------------------------- permutation test


@dataclass(frozen=True)
class PermutationResult:
    """Result of :func:`permutation_test`.

    mi : observed MI in nats; null : (M,) MI of the M row-shuffled pairs, in nats;
    p_value : (1 + #{null >= mi}) / (M + 1).
    """

    mi: float
    null: np.ndarray
    p_value: float


def permutation_test(z_ref, z_other, *, n_permutations: int = 99, seed: int = 0,
                     estimator: str = "knn", k: int = 1, p: float = 2.0,
                     normalise: bool = True, drop_constant: bool = True,
                     **kw) -> PermutationResult:
    """Permutation test of dependence between two embedding matrices (beyond the thesis).

    The null distribution shuffles the rows of z_other (pairing each image's reference
    embedding with another image's embedding) M times, with the permutations of
    :func:`mipipe.estimators.permutation.permutations` (n, M, seed); the p-value is ``(1 + #{null >= observed}) / (M + 1)``
    (never 0; the smallest attainable is 1 / (M + 1)).

    For the kNN estimator a row shuffle changes only the joint entropy: H(X) and H(Y) are
    computed once and each shuffle costs O(N^2) using the two marginal distance matrices
    (:func:`mipipe.estimators.permutation.knn_mi_permutation_null`) (memory 16 N^2 bytes; above 2 GiB, or with
    ``jitter``, every shuffle is estimated from scratch). The null values equal
    :func:`embedding_mi` on the shuffled pair. KSG estimates every shuffle from scratch.

    Parameters
    ----------
    z_ref, z_other : (N, d_ref), (N, d_other) real arrays, as in :func:`embedding_mi`.
    n_permutations : M >= 1.
    seed : seed of the permutations (same seed, same result).
    estimator, k, p, normalise, drop_constant, **kw : as in :func:`embedding_mi`.

    Returns
    -------
    :class:`PermutationResult` (mi and null in nats).

    Raises
    ------
    ValueError
        As :func:`embedding_mi`; M < 1; a bad seed.
    """
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, numbers.Integral) or (
        n_permutations < 1
    ):
        raise ValueError(f"n_permutations must be a positive integer, got {n_permutations!r}")
    seed = v.check_seed(seed)
    fn, kw = _check_estimator(estimator, kw)
    x, y = _prepare_pair(z_ref, z_other, normalise, drop_constant)
    observed = float(fn(x, y, k, p, **kw))
    n = x.shape[0]
    perms = permutations(n, int(n_permutations), seed)
    fast = fn is knn_mi and kw.get("jitter") is None and 16 * n * n <= _FAST_MAX_BYTES
    if fast:
        p_checked = v.check_p(p)
        unknown = set(kw) - {"correction", "eps", "method", "workers", "seed"}
        if unknown:
            raise ValueError(f"unknown keyword(s) for knn_mi: {sorted(unknown)}")
        null = knn_mi_permutation_null(x, y, perms, k=k, p=p_checked,
                                       correction=kw.get("correction", "digamma"),
                                       eps=kw.get("eps", 1e-10), workers=kw.get("workers", -1))
    else:
        null = np.array([float(fn(x, y[perm], k, p, **kw)) for perm in perms])
    p_value = (1.0 + float(np.sum(null >= observed))) / (len(null) + 1.0)
    return PermutationResult(observed, null, p_value)


# --------------------------------------------------------------------------- MI score


def _finite(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number (nats), got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} is {value}; the MI score needs finite MI values (nats)")
    return value


def mi_score(i, i_min, i_max) -> float:
    """MI score ``S = (clip(I, I_min, I_max) - I_min) / (I_max - I_min)`` in [0, 1].

    Thesis section 5 (Table 3): I = I(V;S) the MI between victim and suspect embeddings,
    I_max = I(V;V), I_min = I(V;random encoder); all in nats. 1 for a copy, 0 at or below a
    random encoder.

    Raises
    ------
    ValueError
        A NaN/inf or non-numeric argument (named), or I_max <= I_min (the scale is empty or
        reversed: the reference's self-MI must exceed its MI with a random encoder).
    """
    i = _finite(i, "I (the pair's MI)")
    lo = _finite(i_min, "I_min (MI with the random encoders)")
    hi = _finite(i_max, "I_max (the reference's self-MI)")
    if not hi > lo:
        raise ValueError(
            f"I_max = {hi:.6g} nats must exceed I_min = {lo:.6g} nats for the MI score "
            f"(I(V;V) at or below I(V;random) leaves no scale)"
        )
    # halve first: hi - lo overflows for values near the float range (e.g. +-1e308)
    return (min(max(i, lo), hi) / 2 - lo / 2) / (hi / 2 - lo / 2)


_ROW_KEYS = ["reference", "other", "role", "seed", "N"]
_REQUIRED = _ROW_KEYS + ["mi_nats", "p_value"]


def score_table(mi_rows: pd.DataFrame) -> pd.DataFrame:
    """MI scores with the spread of the random baseline (thesis Table 3 and beyond).

    Parameters
    ----------
    mi_rows : one row per (reference, other, role, seed, N), columns ``reference``,
        ``other`` (encoder names), ``role`` (victim | stolen | independent | random | copy
        | ...), ``seed``, ``N`` (number of images), ``mi_nats`` (I(reference; other), nats),
        ``p_value`` (permutation test). Optional ``status``: rows not "ok" (failed
        estimates) are kept in the output as failed and left out of I_max/I_min.
        Per (reference, N) the table must hold I(V;V) -- a row with other == reference
        (else rows with role "copy") -- and at least one row with role "random".

    Returns
    -------
    DataFrame, one row per input row, sorted by reference, N, role, other, seed, with
    columns reference, other, role, seed, N, mi_nats, I_max (mean of the self rows, nats),
    I_min (mean over the random rows, nats), I_min_sd (sample sd, ddof 1; NaN for one
    random), I_min_min, I_min_max, n_random, mi_score (:func:`mi_score`), p_value, status
    ("ok" or "failed") and error (the reason when failed: the row's own failure, no
    I(V;V), no random row, I_max <= I_min).

    Raises
    ------
    ValueError
        Missing columns, duplicate (reference, other, role, seed, N) rows, or a NaN mi_nats
        in a row not marked failed.
    """
    if not isinstance(mi_rows, pd.DataFrame):
        raise ValueError(f"mi_rows must be a pandas DataFrame, got {type(mi_rows).__name__}")
    missing = [c for c in _REQUIRED if c not in mi_rows.columns]
    if missing:
        raise ValueError(f"mi_rows lacks column(s) {missing}; needs {_REQUIRED}")
    df = mi_rows.copy()
    if "status" not in df.columns:
        df["status"] = "ok"
    if "error" not in df.columns:
        df["error"] = ""
    df["error"] = df["error"].fillna("").astype(str)
    ok = df["status"] == "ok"
    dup = df.duplicated(_ROW_KEYS, keep=False)
    if dup.any():
        raise ValueError(
            f"mi_rows has duplicate (reference, other, role, seed, N) rows:\n"
            f"{df.loc[dup, _ROW_KEYS].to_string(index=False)}"
        )
    bad = ok & ~np.isfinite(pd.to_numeric(df["mi_nats"], errors="coerce"))
    if bad.any():
        row = df.loc[bad, _ROW_KEYS].iloc[0].to_dict()
        raise ValueError(
            f"mi_nats is NaN/inf/missing in {int(bad.sum())} row(s) not marked failed, first "
            f"{row}; mark failed estimates with status 'failed'"
        )
    out = []
    for (ref, n), group in df.groupby(["reference", "N"], sort=True):
        good = group[group["status"] == "ok"]
        self_rows = good[good["other"] == ref]
        if self_rows.empty:
            self_rows = good[good["role"] == "copy"]
        rand = good.loc[good["role"] == "random", "mi_nats"].astype(float)
        i_max = float(self_rows["mi_nats"].mean()) if len(self_rows) else math.nan
        stats = {
            "I_max": i_max,
            "I_min": float(rand.mean()) if len(rand) else math.nan,
            "I_min_sd": float(rand.std(ddof=1)) if len(rand) > 1 else math.nan,
            "I_min_min": float(rand.min()) if len(rand) else math.nan,
            "I_min_max": float(rand.max()) if len(rand) else math.nan,
            "n_random": len(rand),
        }
        for _, row in group.iterrows():
            rec = {key: row[key] for key in _ROW_KEYS}
            rec["mi_nats"] = float(row["mi_nats"]) if row["status"] == "ok" else math.nan
            rec.update(stats)
            rec["p_value"] = float(row["p_value"]) if row["status"] == "ok" else math.nan
            score, status, error = math.nan, "failed", ""
            if row["status"] != "ok":
                error = row["error"] or f"estimate failed (status {row['status']!r})"
            elif self_rows.empty:
                error = f"no I(V;V) row (other == {ref!r} or role 'copy') for N = {n}"
            elif rand.empty:
                error = f"no random-encoder row (role 'random') for reference {ref!r}, N = {n}"
            else:
                try:
                    score, status = mi_score(rec["mi_nats"], stats["I_min"], i_max), "ok"
                except ValueError as exc:
                    error = str(exc)
            rec.update(mi_score=score, status=status, error=error)
            out.append(rec)
    cols = _ROW_KEYS + ["mi_nats", "I_max", "I_min", "I_min_sd", "I_min_min", "I_min_max",
                        "n_random", "mi_score", "p_value", "status", "error"]
    table = pd.DataFrame(out, columns=cols)
    return table.sort_values(["reference", "N", "role", "other", "seed"]).reset_index(drop=True)


# --------------------------------------------------------------------------- the MI stage


def read_embedding(path, with_images: bool = False):
    """(N, d) float32 embedding matrix of an embeddings Parquet file (columns z0, z1, ...).

    with_images : also return the ``image`` column (int64 row ids, or None when the file has
        none), as ``(z, images)``.

    Raises ValueError naming the file when there are no z columns, a z column is not
    numeric, a value is NaN/inf, or a finite value is too large for float32 (|z| > 3.4e38,
    which would become inf).
    """
    df = read_parquet(path)
    cols = [c for c in df.columns if re.fullmatch(r"z\d+", str(c))]
    if not cols:
        raise ValueError(f"{path}: no embedding columns z0, z1, ...")
    bad = [c for c in cols if not pd.api.types.is_numeric_dtype(df[c])
           or pd.api.types.is_bool_dtype(df[c])]
    if bad:
        raise ValueError(f"{path}: embedding column(s) {bad[:5]} are not numeric "
                         f"(dtype {df[bad[0]].dtype})")
    z64 = df[cols].to_numpy(dtype=np.float64)
    if not np.isfinite(z64).all():
        raise ValueError(f"{path}: the embeddings hold NaN or inf values")
    big = np.abs(z64) > np.finfo(np.float32).max
    if big.any():
        raise ValueError(f"{path}: {int(big.sum())} embedding value(s) overflow float32 "
                         f"(largest |z| = {np.abs(z64).max():.3g} > "
                         f"{float(np.finfo(np.float32).max):.3g})")
    z = z64.astype(np.float32)
    if not with_images:
        return z
    images = df["image"].to_numpy(dtype=np.int64) if "image" in df.columns else None
    return z, images


def align_on_images(z_ref, ref_images, z_other, other_images, ref_path, other_path):
    """Reorder ``z_other`` so that its rows embed the images of ``z_ref``'s rows, in order.

    Without an ``image`` column in either file the rows are taken as given. Raises
    ValueError naming both files when the two files do not embed the same set of images.
    """
    if ref_images is None or other_images is None:
        return z_other
    if np.array_equal(ref_images, other_images):
        return z_other
    if (len(np.unique(other_images)) != len(other_images)
            or not np.array_equal(np.sort(ref_images), np.sort(other_images))):
        raise ValueError(f"{ref_path} and {other_path} do not embed the same images "
                         "(their 'image' columns differ)")
    where = {int(img): i for i, img in enumerate(other_images)}
    return z_other[[where[int(img)] for img in ref_images]]


def pair_mi(z_ref, z_other, *, reference, other, role, seed, n_values, mi) -> list[dict]:
    """MI between the reference (victim) embedding and another encoder's on the first N rows,
    for each N, with :func:`permutation_test`.

    mi : {estimator, k, p, n_permutations, seed}. A failed estimate is a row with status
    "failed" and the error, not a crash. Row keys: reference, other, role, seed, N, mi_nats,
    p_value, null_mean_nats, null_sd_nats, seconds, status, error.
    """
    rows = []
    for n in n_values:
        t0 = time.perf_counter()
        rec = {"reference": reference, "other": other, "role": role, "seed": int(seed),
               "N": int(n)}
        try:
            if n > min(len(z_ref), len(z_other)):
                raise ValueError(f"N = {n} exceeds the {min(len(z_ref), len(z_other))} embedded images")
            res = permutation_test(z_ref[:n], z_other[:n],
                                   n_permutations=int(mi["n_permutations"]),
                                   seed=int(mi["seed"]), estimator=mi["estimator"],
                                   k=int(mi["k"]), p=v.check_p(mi["p"], "inference/mi/p"))
            rec.update(mi_nats=res.mi, p_value=res.p_value,
                       null_mean_nats=float(np.mean(res.null)),
                       null_sd_nats=float(np.std(res.null, ddof=1)) if len(res.null) > 1 else math.nan,
                       status="ok", error="")
        except ValueError as exc:
            rec.update(mi_nats=math.nan, p_value=math.nan, null_mean_nats=math.nan,
                       null_sd_nats=math.nan, status="failed", error=str(exc))
        rec["seconds"] = time.perf_counter() - t0
        log.info("I(%s; %s) at N = %d: %s nats, p = %s (%s)", reference, other, n,
                 rec["mi_nats"], rec["p_value"], rec["status"])
        rows.append(rec)
    return rows


def mi_stage(ref_path, others: dict, out_path, *, reference, n_values, mi) -> pd.DataFrame:
    """Every (reference, other encoder, N) MI of the run -> one Parquet table.

    others : {encoder name: (embedding path, role, seed)}; the reference itself belongs in it
    (its row is I(V;V) = I_max).
    """
    z_ref, ref_images = read_embedding(ref_path, with_images=True)
    rows = []
    for name, (path, role, seed) in others.items():
        z_other, other_images = read_embedding(path, with_images=True)
        z_other = align_on_images(z_ref, ref_images, z_other, other_images, ref_path, path)
        rows += pair_mi(z_ref, z_other, reference=reference, other=name, role=role,
                        seed=seed, n_values=n_values, mi=mi)
    df = pd.DataFrame(rows)
    write_parquet(df, out_path)
    return df
