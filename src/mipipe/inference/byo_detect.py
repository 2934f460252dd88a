"""Bring your own encoders: the dataset-inference detectors on a user's embeddings -> verdicts.

Torch-free. Input: for the victim, each suspect and each random encoder of the victim's
architecture, the representations of the member images (the victim's private training
images) and of the public images (non-members of the same distribution), as written by
:func:`mipipe.inference.byo.embed_stage`. Output: one row per suspect and detector.

The recipe (Dziedzic et al. 2022, "Dataset Inference for Self-Supervised Models", section 4,
made sound as in :func:`mipipe.inference.detectors.gmm_test`):

1. Split the members once, with a seed, into a *fit* half and a *test* half (the same
   images for every encoder).
2. **Positive control.** The GMM test on the victim itself, two-sided: fitted on the
   victim's representations of the fit half, it compares the test half against the public
   images. The sign of a significant statistic is the direction of the membership signal of
   this victim (a SimCLR victim may give its training images *lower* likelihood; the paper
   assumed higher). With ``direction="auto"`` every suspect is tested one-sided in that
   direction; when the control is not significant, two-sided, and the table says so.
3. **GMM test** per suspect, on the suspect's own representations of the same images.
4. **MI score** (thesis section 5.3) against the victim, on the test half and on the
   public images, I_min from the random encoders, with the members-minus-public
   difference and its bootstrap interval.
5. **Similarity measures** (linear CKA, cosine, L2 of the centred representations, on the
   members): similarity, not tests of theft; they carry no verdict.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..io import read_metadata, read_parquet, write_table

SETS = ("members", "public")
GMM_DEFINITION = ("mean log-likelihood under a GMM fitted on the fit half of the members: "
                  "members (test half) - public (nats per image)")
MI_DEFINITION = ("MI score against the victim (I_min: the random encoders): members (test "
                 "half) - public; interval over random half-subsets")
NOT_A_TEST = "n/a: similarity, not a test"
SIMILARITIES = {  # detector -> (function name in .detectors, definition)
    "linear_cka": ("linear_cka", "linear CKA with the victim on the members (test half), in [0, 1]"),
    "cosine": ("centred_cosine_similarity",
               "mean cosine with the victim's centred representations, members (test half)"),
    "l2": ("centred_l2_distance",
           "mean L2 distance to the victim's centred, scaled representations, members "
           "(test half), in [0, 2]"),
}
COLUMNS = ["suspect", "role", "detector", "kind", "statistic", "statistic_definition",
           "members_value", "public_value", "p_value", "alpha", "ci_low", "ci_high",
           "alternative", "direction_reason", "verdict", "n_fit", "n_members", "n_public",
           "encoder", "status", "error"]


def read_sets(path) -> dict[str, np.ndarray]:
    """{members, public} -> float64 ``(n, d)`` representations of an embeddings Parquet file.

    Raises ValueError naming the file when a set or the z columns are missing.
    """
    df = read_parquet(path)
    cols = [c for c in df.columns if c.startswith("z")]
    if "set" not in df.columns or not cols:
        raise ValueError(f"{path}: expected columns set, image, z0, z1, ...")
    out = {}
    for name in SETS:
        part = df[df["set"] == name].sort_values("image")
        if part.empty:
            raise ValueError(f"{path}: no {name} rows")
        out[name] = part[cols].to_numpy(dtype=np.float64)
    return out


def split_members(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the fit half (floor(n / 2) images) and the test half of n members, from a
    seeded permutation (``numpy.random.default_rng(seed)``), each sorted.

    Raises ValueError for n < 4 (each half needs two images for a variance).
    """
    if n < 4:
        raise ValueError(f"{n} member images: need at least 4 (two per half)")
    perm = np.random.default_rng(int(seed)).permutation(n)
    return np.sort(perm[: n // 2]), np.sort(perm[n // 2:])


def control_direction(statistic: float, p_value: float, alpha: float,
                      requested: str = "auto") -> tuple[str, str]:
    """(alternative, reason): the direction in which suspects are tested.

    ``requested`` other than ``auto`` is used as given. ``auto``: ``greater`` when the
    victim's two-sided positive control is significant (p < alpha) with members above
    public, ``less`` when below, else ``two-sided``.
    """
    if requested != "auto":
        return requested, f"set in the config (direction: {requested})"
    if math.isfinite(p_value) and p_value < alpha:
        alt = "greater" if statistic > 0 else "less"
        side = "higher" if statistic > 0 else "lower"
        return alt, (f"positive control: the victim gives its held-out members {side} "
                     f"likelihood than public images (statistic {statistic:.4g}, two-sided "
                     f"p = {p_value:.3g} < {alpha:g})")
    return "two-sided", (f"positive control failed: the victim's own members and public "
                         f"images do not differ (two-sided p = {p_value:.3g} >= {alpha:g}), so "
                         f"no direction is known; a verdict here is weak evidence")


def _row(**kw) -> dict:
    rec = {c: math.nan for c in COLUMNS}
    rec.update(status="ok", error="", ci_low=math.nan, ci_high=math.nan)
    rec.update(kw)
    return rec


def _failed(base: dict, exc: Exception) -> dict:
    return _row(**{**base, "verdict": "failed", "status": "failed",
                   "error": f"{type(exc).__name__}: {exc}"})


def _gmm(sets, fit, test, *, alternative, alpha, seed, gmm, base) -> dict:
    from .detectors import gmm_test

    res = gmm_test(sets["members"][fit], sets["members"][test], sets["public"],
                   alternative=alternative, alpha=alpha, seed=seed, **gmm)
    return _row(**base, detector="gmm_test", kind="test", statistic=res.statistic,
                statistic_definition=GMM_DEFINITION, members_value=res.mean_loglik_members,
                public_value=res.mean_loglik_public, p_value=res.p_value, alpha=alpha,
                alternative=res.alternative, verdict=res.verdict)


def verdict_table(victim: dict, suspects: dict, randoms: list, *, alpha: float = 0.05,
                  direction: str = "auto", seed: int = 0, gmm: dict | None = None,
                  mi: dict | None = None, encoders: dict | None = None) -> pd.DataFrame:
    """The verdicts of every detector on every suspect (and the victim's positive control).

    Parameters
    ----------
    victim : {members: (n, d_v), public: (m, d_v)} the victim's representations.
    suspects : {name: {members: (n, d_s), public: (m, d_s)}}, the same images in the same
        order.
    randoms : [{members, public}] random encoders of the victim's architecture (I_min).
    alpha : significance level of the tests. direction : auto | greater | less | two-sided
        (see :func:`control_direction`). seed : the member split and the GMM's seed.
    gmm : {n_components, covariance_type}. mi : {estimator, k, n_bootstrap}.
    encoders : {name: description} for the ``encoder`` column.

    Returns
    -------
    DataFrame with :data:`COLUMNS`: ``role`` is "positive control" for the victim's own
    row, "suspect" otherwise; ``kind`` "test" (with a p-value and a verdict "stolen" or
    "inconclusive") or "similarity" (verdict "n/a: similarity, not a test"). A detector that
    fails on a suspect is a row with status "failed" and the error.
    """
    gmm = dict(gmm or {})
    mi = dict(mi or {})
    encoders = encoders or {}
    n, n_pub = len(victim["members"]), len(victim["public"])
    fit, test = split_members(n, seed)
    sizes = {"n_fit": len(fit), "n_members": len(test), "n_public": n_pub}
    rows = []

    base = {"suspect": "victim", "role": "positive control", "encoder": encoders.get("victim", ""),
            **sizes, "direction_reason": "the positive control itself is two-sided"}
    try:
        control = _gmm(victim, fit, test, alternative="two-sided", alpha=alpha, seed=seed,
                       gmm=gmm, base=base)
        alternative, reason = control_direction(control["statistic"], control["p_value"],
                                                alpha, direction)
    except ValueError as exc:
        control = _failed({**base, "detector": "gmm_test", "kind": "test"}, exc)
        alternative, reason = (direction if direction != "auto" else "two-sided",
                               f"positive control failed to run ({exc}); two-sided")
    rows.append(control)

    for name, sets in suspects.items():
        base = {"suspect": name, "role": "suspect", "encoder": encoders.get(name, ""), **sizes}
        for s in SETS:
            if len(sets[s]) != len(victim[s]):
                raise ValueError(f"suspect {name!r}: {len(sets[s])} {s} representations, the "
                                 f"victim has {len(victim[s])}")
        try:
            rows.append(_gmm(sets, fit, test, alternative=alternative, alpha=alpha, seed=seed,
                             gmm=gmm, base={**base, "direction_reason": reason}))
        except ValueError as exc:
            rows.append(_failed({**base, "detector": "gmm_test", "kind": "test",
                                 "alternative": alternative, "direction_reason": reason}, exc))
        rows += _mi_rows(victim, sets, randoms, test, alpha=alpha, seed=seed, mi=mi, base=base)
        rows += _similarity_rows(victim["members"][test], sets["members"][test], base)
    df = pd.DataFrame(rows, columns=COLUMNS)
    return df


def _mi_rows(victim, sets, randoms, test, *, alpha, seed, mi, base) -> list[dict]:
    """The MI score on the members' test half and on the public images, their difference
    and its interval (:func:`mipipe.inference.detectors.mi_score_gap`)."""
    from .detectors import mi_score_gap

    alternative = mi.get("alternative", "greater")
    reason = (f"set in the config (mi/alternative: {alternative})" if "alternative" in mi else
              "members expected to score higher; the victim cannot fix this direction (its "
              "MI score with itself is 1 on both sets)")
    row = {**base, "detector": "mi_score", "kind": "test", "alternative": alternative,
           "direction_reason": reason, "statistic_definition": MI_DEFINITION}
    if not randoms:
        return [_failed(row, ValueError("no random encoder (random_seeds) for I_min"))]
    try:
        res = mi_score_gap(victim["members"][test], sets["members"][test],
                           [r["members"][test] for r in randoms], victim["public"],
                           sets["public"], [r["public"] for r in randoms],
                           alternative=alternative, n_subsets=int(mi.get("n_subsets", 50)),
                           subset_fraction=float(mi.get("subset_fraction", 0.5)), seed=seed,
                           alpha=alpha, k=int(mi.get("k", 1)))
    except ValueError as exc:
        return [_failed(row, exc)]
    return [_row(**row, statistic=res.statistic, members_value=res.score_members,
                 public_value=res.score_public, p_value=res.p_value, alpha=alpha,
                 ci_low=res.ci_low, ci_high=res.ci_high, verdict=res.verdict)]


def _similarity_rows(z_v, z_s, base) -> list[dict]:
    """Linear CKA, cosine and L2 between the victim's and the suspect's representations of
    the same images; cosine and L2 need the same dimension and are skipped otherwise."""
    from . import detectors

    rows = []
    for name, (fn, definition) in SIMILARITIES.items():
        row = {**base, "detector": name, "kind": "similarity", "verdict": NOT_A_TEST,
               "statistic_definition": definition, "direction_reason": ""}
        if name != "linear_cka" and z_v.shape[1] != z_s.shape[1]:
            rows.append(_row(**row, status="skipped",
                             error=f"needs the same dimension: victim {z_v.shape[1]}, "
                                   f"suspect {z_s.shape[1]}"))
            continue
        try:
            rows.append(_row(**row, statistic=getattr(detectors, fn)(z_v, z_s)))
        except ValueError as exc:
            rows.append(_failed(row, exc))
    return rows


def detect_stage(victim_path, suspect_paths: dict, random_paths: list, out: dict, **kw) -> pd.DataFrame:
    """Read the embeddings, build :func:`verdict_table` and write it to ``out`` = {parquet,
    csv, md} (atomically)."""
    paths = {"victim": victim_path, **suspect_paths}
    encoders = {name: read_metadata(p).get("encoder", "") for name, p in paths.items()}
    df = verdict_table(read_sets(victim_path),
                       {name: read_sets(p) for name, p in suspect_paths.items()},
                       [read_sets(p) for p in random_paths], encoders=encoders, **kw)
    write_table(df, out["parquet"], out["csv"], out["md"])
    return df


class DetectionFailed(RuntimeError):
    """A detector failed on a suspect and the config does not allow failures."""


def check_verdicts(df: pd.DataFrame, allow_failures: bool) -> str:
    """Summarise failed rows of the verdict table; raise :class:`DetectionFailed` if there
    are any and failures are not allowed."""
    failed = df[df["status"] == "failed"]
    if failed.empty:
        return f"every detector ran on every suspect ({len(df)} rows)"
    listing = failed[["suspect", "detector", "error"]].to_string(index=False)
    summary = (f"{len(failed)} detector run(s) failed (listed in results/tables/byo_verdicts.csv; "
               f"the table was written):\n{listing}")
    if not allow_failures:
        raise DetectionFailed(summary + "\nSet allow_failures: true in the config to accept them.")
    return summary + "\n(allowed by allow_failures: true)"
