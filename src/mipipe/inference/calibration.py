"""Calibration of the dataset-inference detectors on repeated encoders: one verdict per suspect
encoder and detector, then the error rates per detector (torch-free).

The suspects are encoders whose role is known: ``stolen`` (black-box copies of the target
victim, several seeds per head variant), ``independent`` (SimCLR on other data, several
seeds), ``random`` (untrained) and ``victim`` (the target victim and victims of other seeds
trained on the same private images: positive controls). Every encoder represents the same
two image sets: ``members`` (the victim's private training images; the first half fits the
GMM, the second half is scored) and ``public`` (non-members of the same distribution, e.g.
the test split).

Detectors (:mod:`mipipe.inference.detectors`):

* ``gmm`` -- :func:`~mipipe.inference.detectors.gmm_test` on the suspect's representations.
  The direction of the membership signal is a property of the victim, not a constant: it is
  measured on the target victim (the positive control, two-sided, must reach
  ``control_alpha``), and every suspect is then tested one-sided in that direction. When the
  control fails, suspects are tested two-sided and the verdicts table says so.
* ``mi_gap`` -- :func:`~mipipe.inference.detectors.mi_score_gap` (MI score with the target
  victim on members minus on public images), two-sided (a victim's score with itself is 1
  on both sets, so no control can fix a direction).
* ``linear_cka``, ``cosine``, ``l2`` -- similarity measures with the target victim on the
  public images, flagged against thresholds stated in the config; not theft tests.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd

from .detectors import (centred_cosine_similarity, centred_l2_distance, gmm_test, linear_cka,
                        mi_score_gap)

__all__ = ["DETECTORS", "SIMILARITIES", "TESTS", "detection_summary", "detection_verdicts",
           "plot_detection"]

TESTS = ("gmm", "mi_gap")
SIMILARITIES = ("linear_cka", "cosine", "l2")
DETECTORS = TESTS + SIMILARITIES
# similarity measures: does a larger value mean "more alike"?
_HIGHER_IS_SIMILAR = {"linear_cka": True, "cosine": True, "l2": False}
_SIMILARITY_FN = {"linear_cka": linear_cka, "cosine": centred_cosine_similarity,
                  "l2": centred_l2_distance}
ROLES = ("victim", "stolen", "independent", "random")
# roles detection_verdicts accepts: also "suspect", an encoder of unknown role (bring your
# own encoders; left out of the calibration summary and figure)
VERDICT_ROLES = ROLES + ("suspect",)

VERDICT_COLUMNS = ["encoder", "role", "head", "seed", "detector", "kind", "statistic",
                   "p_value", "threshold", "alternative", "direction_source", "verdict",
                   "flagged", "score", "status", "error", "seconds"]


def _gmm_direction(control, control_alpha):
    """(alternative, explanation) from the target victim's two-sided GMM test."""
    if control is None:
        return "two-sided", "no positive control (the target victim failed); two-sided"
    if control.p_value < control_alpha:
        alt = "greater" if control.statistic > 0 else "less"
        side = "higher" if control.statistic > 0 else "lower"
        return alt, (f"positive control: the target victim scores its held-out members {side} "
                     f"than public images (statistic {control.statistic:.3g} nats, two-sided "
                     f"p = {control.p_value:.2g} < {control_alpha:g}); one-sided {alt}")
    return "two-sided", (f"positive control failed (two-sided p = {control.p_value:.2g} >= "
                         f"{control_alpha:g}): no direction; two-sided")


def detection_verdicts(reps: dict, target: str, *, alpha: float = 0.05,
                       control_alpha: float = 0.01, gmm: dict | None = None,
                       mi_gap: dict | None = None, thresholds: dict | None = None,
                       detectors=DETECTORS) -> pd.DataFrame:
    """One row per (suspect encoder, detector) with its statistic, p-value or threshold and
    verdict.

    Parameters
    ----------
    reps : {encoder name: {"role": str, "head": str, "seed": int, "members": (N_m, d) array,
        "public": (N_p, d) array}}; must hold ``target`` and at least one "random" encoder
        (the MI score's I_min).
    target : the target victim (the reference of the similarity measures and the MI gap,
        and the GMM test's positive control).
    alpha : level of every test's verdict (fixed in advance); control_alpha : level the
        positive control must reach to fix the GMM test's direction.
    gmm : {n_components, covariance_type, seed} for :func:`gmm_test`.
    mi_gap : {n_subsets, subset_fraction, seed, k, p} for :func:`mi_score_gap`.
    thresholds : {linear_cka, cosine, l2}: flagged when CKA/cosine >= its threshold, or the
        L2 distance <= its threshold.

    Returns
    -------
    DataFrame with :data:`VERDICT_COLUMNS`. kind: "test" or "similarity"; verdict: "stolen"
    / "inconclusive" for tests, "similar" / "dissimilar" for similarity measures; flagged:
    bool; score: the value the ROC curve ranks by (-log10 p for tests; the similarity, or
    minus the distance). A detector that fails on an encoder gives a row with status
    "failed" and the error.

    Raises
    ------
    ValueError
        ``target`` missing, no random encoder, an unknown detector or role.
    """
    gmm = dict(gmm or {})
    mi_gap = dict(mi_gap or {})
    thresholds = {"linear_cka": 0.9, "cosine": 0.5, "l2": 1.0, **(thresholds or {})}
    unknown = sorted(set(detectors) - set(DETECTORS))
    if unknown:
        raise ValueError(f"unknown detector(s) {unknown}; known: {list(DETECTORS)}")
    if target not in reps:
        raise ValueError(f"target victim {target!r} has no representations")
    bad = {name: r["role"] for name, r in reps.items() if r["role"] not in VERDICT_ROLES}
    if bad:
        raise ValueError(f"unknown role(s) {bad}; known: {list(VERDICT_ROLES)}")
    randoms = [name for name, r in reps.items() if r["role"] == "random"]
    if "mi_gap" in detectors and not randoms:
        raise ValueError("the MI-score gap needs at least one encoder with role 'random'")
    ref = reps[target]

    def gmm_run(r, alternative):
        m = np.asarray(r["members"])
        h = len(m) // 2
        return gmm_test(m[:h], m[h:], r["public"], alternative=alternative, alpha=alpha,
                        n_components=int(gmm.get("n_components", 10)),
                        covariance_type=gmm.get("covariance_type", "diag"),
                        seed=int(gmm.get("seed", 0)))

    control, control_error = None, ""
    if "gmm" in detectors:
        try:
            control = gmm_run(ref, "two-sided")
        except ValueError as exc:
            control_error = str(exc)
    alternative, why = _gmm_direction(control, control_alpha)

    rows = []
    mi_cache = {}  # I(V;V) and I(V;random) on each subset: the same for every suspect
    for name in sorted(reps):
        r = reps[name]
        base = {"encoder": name, "role": r["role"], "head": str(r.get("head", "")),
                "seed": int(r.get("seed", 0))}
        for det in detectors:
            t0 = time.perf_counter()
            rec = {**base, "detector": det, "kind": "test" if det in TESTS else "similarity",
                   "statistic": math.nan, "p_value": math.nan, "threshold": math.nan,
                   "alternative": "", "direction_source": "", "verdict": "", "flagged": False,
                   "score": math.nan, "status": "ok", "error": ""}
            try:
                if det == "gmm":
                    if name == target and control is None:
                        raise ValueError(control_error)
                    res = control if name == target else gmm_run(r, alternative)
                    rec.update(statistic=res.statistic, p_value=res.p_value,
                               threshold=alpha, alternative=res.alternative,
                               direction_source=("the positive control itself (two-sided)"
                                                 if name == target else why))
                elif det == "mi_gap":
                    pool = [n for n in randoms if n != name]  # leave a random suspect out
                    if not pool:
                        raise ValueError("no other random encoder for the MI score's I_min")
                    res = mi_score_gap(
                        ref["members"], r["members"], [reps[n]["members"] for n in pool],
                        ref["public"], r["public"], [reps[n]["public"] for n in pool],
                        alternative="two-sided", alpha=alpha,
                        n_subsets=int(mi_gap.get("n_subsets", 30)),
                        subset_fraction=float(mi_gap.get("subset_fraction", 0.5)),
                        seed=int(mi_gap.get("seed", 0)), k=int(mi_gap.get("k", 1)),
                        p=float(mi_gap.get("p", 2.0)), cache=mi_cache)
                    rec.update(statistic=res.statistic, p_value=res.p_value, threshold=alpha,
                               alternative="two-sided",
                               direction_source="two-sided by design (no positive control)")
                else:
                    value = _SIMILARITY_FN[det](ref["public"], r["public"])
                    thr = float(thresholds[det])
                    hi = _HIGHER_IS_SIMILAR[det]
                    similar = value >= thr if hi else value <= thr
                    rec.update(statistic=value, threshold=thr,
                               alternative=">= threshold" if hi else "<= threshold",
                               direction_source="threshold stated in the config",
                               verdict="similar" if similar else "dissimilar",
                               flagged=bool(similar), score=value if hi else -value)
                if rec["kind"] == "test":
                    stolen = rec["p_value"] < alpha
                    rec.update(verdict="stolen" if stolen else "inconclusive",
                               flagged=bool(stolen),
                               score=-math.log10(max(rec["p_value"], 1e-300)))
            except ValueError as exc:
                rec.update(status="failed", error=str(exc), verdict="failed")
            rec["seconds"] = time.perf_counter() - t0
            rows.append(rec)
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)


def _auc(pos, neg) -> float:
    """P(score of a positive > score of a negative) + half the ties (the ROC AUC)."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    if not len(pos) or not len(neg):
        return math.nan
    diff = pos[:, None] - neg[None, :]
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


def detection_summary(verdicts: pd.DataFrame, target: str) -> pd.DataFrame:
    """One row per detector: the error rates of :func:`detection_verdicts`' verdicts.

    Columns: detector, kind, threshold (alpha for tests, the stated value for similarity
    measures), alternative, n_stolen, n_independent, n_random, n_victim, auc (ROC AUC of
    the score, stolen against independent), tpr (fraction of stolen encoders flagged), fpr
    (fraction of independent encoders flagged), fpr_random (of random encoders),
    victims_flagged (fraction of the victims, positive controls, flagged), control_p_value
    (the target victim's p-value; NaN for similarity measures), group_p_value (Welch's
    t-test of the stolen encoders' statistics against the independents', two-sided: a
    group-level test), stolen_mean, stolen_sd, independent_mean, independent_sd (of the
    statistic), n_failed.
    """
    from scipy import stats

    rows = []
    for det in [d for d in DETECTORS if d in set(verdicts["detector"])]:
        g = verdicts[verdicts["detector"] == det]
        ok = g[g["status"] == "ok"]
        by = {role: ok[ok["role"] == role] for role in ROLES}
        s, i = by["stolen"]["statistic"].to_numpy(float), by["independent"]["statistic"].to_numpy(float)
        group_p = (float(stats.ttest_ind(s, i, equal_var=False).pvalue)
                   if len(s) > 1 and len(i) > 1 else math.nan)
        ctrl = ok[ok["encoder"] == target]

        def rate(df):
            return float(df["flagged"].mean()) if len(df) else math.nan

        rows.append({
            "detector": det, "kind": g["kind"].iloc[0], "threshold": float(g["threshold"].iloc[0]),
            "alternative": ", ".join(sorted(set(ok.loc[ok["encoder"] != target, "alternative"]))),
            **{f"n_{role}": len(by[role]) for role in ("stolen", "independent", "random",
                                                        "victim")},
            "auc": _auc(by["stolen"]["score"], by["independent"]["score"]),
            "tpr": rate(by["stolen"]), "fpr": rate(by["independent"]),
            "fpr_random": rate(by["random"]), "victims_flagged": rate(by["victim"]),
            "control_p_value": (float(ctrl["p_value"].iloc[0])
                                if len(ctrl) and g["kind"].iloc[0] == "test" else math.nan),
            "group_p_value": group_p,
            "stolen_mean": float(np.mean(s)) if len(s) else math.nan,
            "stolen_sd": float(np.std(s, ddof=1)) if len(s) > 1 else math.nan,
            "independent_mean": float(np.mean(i)) if len(i) else math.nan,
            "independent_sd": float(np.std(i, ddof=1)) if len(i) > 1 else math.nan,
            "n_failed": int((g["status"] != "ok").sum()),
        })
    return pd.DataFrame(rows)


_LABEL = {"gmm": "GMM test: -log10 p", "mi_gap": "MI-score gap: -log10 p",
          "linear_cka": "linear CKA (similarity)", "cosine": "centred cosine (similarity)",
          "l2": "centred L2 distance"}
_COLOURS = {"victim": "tab:purple", "stolen": "tab:red", "independent": "tab:blue",
            "random": "tab:grey"}


def plot_detection(verdicts: pd.DataFrame, summary: pd.DataFrame):
    """Strip plot of each detector's value by role (the verdict's threshold drawn), and the
    ROC curves (stolen against independent) of all detectors. Returns a matplotlib Figure."""
    import matplotlib.pyplot as plt

    dets = list(summary["detector"])
    fig, axes = plt.subplots(1, len(dets) + 1, figsize=(3.1 * (len(dets) + 1), 3.8),
                             layout="constrained")
    rng = np.random.default_rng(0)
    for ax, det in zip(axes, dets):
        g = verdicts[(verdicts["detector"] == det) & (verdicts["status"] == "ok")]
        test = g["kind"].iloc[0] == "test" if len(g) else True
        for x, role in enumerate(ROLES):
            sub = g[g["role"] == role]
            y = sub["score"] if test else sub["statistic"]
            jitter = rng.uniform(-0.15, 0.15, len(sub))
            ax.scatter(x + jitter, y, s=22, color=_COLOURS[role], alpha=0.85,
                       edgecolors=np.where(sub["flagged"], "black", "none"), linewidths=0.8)
        thr = summary.loc[summary["detector"] == det, "threshold"].iloc[0]
        ax.axhline(-math.log10(thr) if test else thr, color="black", ls="--", lw=0.8,
                   label=f"alpha = {thr:g}" if test else f"threshold {thr:g}")
        ax.set_xticks(range(len(ROLES)), ROLES, rotation=30)
        ax.set_ylabel(_LABEL[det])
        ax.set_title(det)
        ax.legend(fontsize=7, loc="best")
    ax = axes[-1]
    for det in dets:
        g = verdicts[(verdicts["detector"] == det) & (verdicts["status"] == "ok")]
        pos = np.sort(g.loc[g["role"] == "stolen", "score"].to_numpy(float))
        neg = g.loc[g["role"] == "independent", "score"].to_numpy(float)
        if not len(pos) or not len(neg):
            continue
        cuts = np.unique(np.concatenate([pos, neg, [np.inf]]))[::-1]
        tpr = [0.0] + [float(np.mean(pos >= c)) for c in cuts]
        fpr = [0.0] + [float(np.mean(neg >= c)) for c in cuts]
        auc = summary.loc[summary["detector"] == det, "auc"].iloc[0]
        ax.plot(fpr + [1.0], tpr + [1.0], drawstyle="steps-post", label=f"{det} (AUC {auc:.2f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.6, ls=":")
    ax.set_xlabel("false-positive rate (independent)")
    ax.set_ylabel("true-positive rate (stolen)")
    ax.set_title("ROC, stolen vs independent")
    ax.legend(fontsize=7, loc="lower right")
    n = summary.iloc[0] if len(summary) else {}
    fig.suptitle(f"Dataset-inference detectors by encoder role (black edge: flagged); "
                 f"{n.get('n_stolen', 0)} stolen, {n.get('n_independent', 0)} independent, "
                 f"{n.get('n_random', 0)} random, {n.get('n_victim', 0)} victim encoders",
                 fontsize=9)
    return fig
