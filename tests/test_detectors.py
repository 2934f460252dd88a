"""Dataset-inference detectors (mipipe.inference.detectors): the GMM test against an
independent computation (numpy diagonal-Gaussian mixture log-likelihoods from the fitted
parameters, Welch's t by hand), linear CKA against the HSIC formula and its invariances, the
centred distances, and the MI-score gap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp
from sklearn.mixture import GaussianMixture

from mipipe.dataset_inference import gmm_test, linear_cka
from mipipe.inference import (centred_cosine_similarity, centred_l2_distance, embedding_mi,
                              mi_score, mi_score_gap)


def _unit(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def _diag_loglik(x, gm):
    """log sum_c w_c N(x; mu_c, diag(var_c)), written out."""
    comp = []
    for w, mu, var in zip(gm.weights_, gm.means_, gm.covariances_):
        comp.append(math.log(w) - 0.5 * np.sum(np.log(2 * np.pi * var))
                    - 0.5 * np.sum((x - mu) ** 2 / var, axis=1))
    return logsumexp(np.stack(comp, axis=1), axis=1)


def _welch(a, b):
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return t, df


def _sets(rng, n=150, d=6, spread=2.0):
    centres = rng.standard_normal((3, d)) * 3
    def draw(m, s):
        return centres[rng.integers(0, 3, m)] + s * rng.standard_normal((m, d))
    return draw(n, 0.5), draw(n, 0.5), draw(n, 0.5 * spread)


@pytest.mark.parametrize("swap", [False, True], ids=["members_higher", "members_lower"])
def test_gmm_test_matches_an_independent_computation(swap):
    rng = np.random.default_rng(3)
    fit, members, public = _sets(rng)
    if swap:  # members from the wide distribution: the gap changes sign
        members, public = public, members
    gm = GaussianMixture(4, covariance_type="diag", max_iter=1000, random_state=7).fit(_unit(fit))
    ll_m, ll_p = _diag_loglik(_unit(members), gm), _diag_loglik(_unit(public), gm)
    t, df = _welch(ll_m, ll_p)
    expected_p = {"greater": stats.t.sf(t, df), "less": stats.t.cdf(t, df),
                  "two-sided": 2 * stats.t.sf(abs(t), df)}
    for alternative, p_ref in expected_p.items():
        res = gmm_test(fit, members, public, n_components=4, seed=7, alternative=alternative)
        assert res.statistic == pytest.approx(ll_m.mean() - ll_p.mean(), rel=1e-9)
        assert res.mean_loglik_members == pytest.approx(ll_m.mean(), rel=1e-9)
        assert res.mean_loglik_public == pytest.approx(ll_p.mean(), rel=1e-9)
        assert res.t_statistic == pytest.approx(t, rel=1e-9)
        assert res.p_value == pytest.approx(p_ref, rel=1e-6, abs=1e-300)
        assert res.verdict == ("stolen" if p_ref < 0.05 else "inconclusive")
        assert (res.n_fit, res.n_members, res.n_public) == (150, 150, 150)
    # the sign is respected: the right one-sided test flags, the wrong one does not
    assert (t < 0) == swap
    right, wrong = ("less", "greater") if swap else ("greater", "less")
    assert gmm_test(fit, members, public, n_components=4, seed=7,
                    alternative=right).p_value < 1e-6
    assert gmm_test(fit, members, public, n_components=4, seed=7,
                    alternative=wrong).p_value > 0.99


def test_gmm_test_is_scale_free_seeded_and_checks_its_arguments():
    rng = np.random.default_rng(0)
    fit, members, public = _sets(rng, n=60, d=4)
    a = gmm_test(fit, members, public, n_components=3, seed=1)
    b = gmm_test(4.0 * fit, 0.125 * members, 2.0 * public, n_components=3, seed=1)
    assert a == b  # rows are L2-normalised (powers of two: exactly)
    c = gmm_test(5.0 * fit, 0.1 * members, 3.0 * public, n_components=3, seed=1)
    assert c.statistic == pytest.approx(a.statistic, rel=1e-6)
    # same distribution for members and public: inconclusive at alpha = 0.05 here
    same = gmm_test(fit, members, members[::-1], n_components=3, seed=1)
    assert same.statistic == pytest.approx(0.0, abs=1e-12) and same.verdict == "inconclusive"
    with pytest.raises(ValueError, match="alternative"):
        gmm_test(fit, members, public, alternative="bigger")
    with pytest.raises(ValueError, match="alpha"):
        gmm_test(fit, members, public, alpha=1.5)
    with pytest.raises(ValueError, match="same dimension"):
        gmm_test(fit, members[:, :3], public)
    with pytest.raises(ValueError, match="n_components"):
        gmm_test(fit[:5], members, public, n_components=10)
    with pytest.raises(ValueError, match="row 2 is zero"):
        gmm_test(fit, np.vstack([members[:2], np.zeros((1, 4)), members]), public)


def _cka_hsic(a, b):
    """HSIC form: tr(K H L H) / sqrt(tr(K H K H) tr(L H L H)), K = a a^T, L = b b^T."""
    n = len(a)
    h = np.eye(n) - 1.0 / n
    k, l_ = a @ a.T, b @ b.T
    hsic = lambda p, q: np.trace(p @ h @ q @ h)  # noqa: E731
    return hsic(k, l_) / math.sqrt(hsic(k, k) * hsic(l_, l_))


@pytest.mark.parametrize("n,d", [(40, 5), (12, 30)], ids=["n>d", "n<d"])
def test_linear_cka_against_hsic_and_invariances(n, d):
    rng = np.random.default_rng(n)
    a = rng.standard_normal((n, d))
    b = a @ rng.standard_normal((d, 7)) + 0.5 * rng.standard_normal((n, 7))
    ref = _cka_hsic(a, b)
    assert 0.05 < ref < 0.999
    assert linear_cka(a, b) == pytest.approx(ref, rel=1e-10)
    assert linear_cka(a, a) == pytest.approx(1.0, rel=1e-12)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    assert linear_cka(a @ q, b) == pytest.approx(ref, rel=1e-10)  # orthogonal transform
    assert linear_cka(a, 3.7e4 * b + 2.0) == pytest.approx(ref, rel=1e-10)  # scale, shift
    assert linear_cka(b, a) == pytest.approx(ref, rel=1e-10)
    # not invariant to a general invertible linear map (stretch one axis)
    stretch = np.diag([50.0] + [1.0] * (d - 1))
    assert abs(linear_cka(a @ stretch, b) - ref) > 1e-3
    with pytest.raises(ValueError, match="same images"):
        linear_cka(a, b[:-1])
    with pytest.raises(ValueError, match="every row is the same"):
        linear_cka(np.ones((n, 3)), b)


def test_centred_cosine_and_l2():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((50, 8))
    assert centred_cosine_similarity(a, 4.0 * a + 1.0) == pytest.approx(1.0)
    assert centred_l2_distance(a, 4.0 * a + 1.0) == pytest.approx(0.0, abs=1e-12)
    assert centred_cosine_similarity(a, -a) == pytest.approx(-1.0)
    ac = a - a.mean(0)
    rms = np.sqrt(np.mean(np.sum(ac**2, 1)))
    assert centred_l2_distance(a, -a) == pytest.approx(2 * np.linalg.norm(ac, axis=1).mean() / rms)
    assert centred_l2_distance(a, -a) < 2.0
    b = rng.standard_normal((50, 8))
    # brute force for unrelated b
    bc = b - b.mean(0)
    cos = np.mean(np.sum(ac * bc, 1) / np.linalg.norm(ac, axis=1) / np.linalg.norm(bc, axis=1))
    assert centred_cosine_similarity(a, b) == pytest.approx(cos, rel=1e-10)
    ar = ac / np.sqrt(np.mean(np.sum(ac**2, 1)))
    br = bc / np.sqrt(np.mean(np.sum(bc**2, 1)))
    assert centred_l2_distance(a, b) == pytest.approx(np.linalg.norm(ar - br, axis=1).mean())
    with pytest.raises(ValueError, match="same dimension"):
        centred_cosine_similarity(a, b[:, :3])


def test_mi_score_gap_members_copy_public_independent():
    rng = np.random.default_rng(2)
    n, d = 80, 3
    vm, vp = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    sm = vm + 0.01 * rng.standard_normal((n, d))  # the suspect reproduces members
    sp = rng.standard_normal((n, d))  # but not public images
    rm = [rng.standard_normal((n, d)) for _ in range(2)]
    rp = [rng.standard_normal((n, d)) for _ in range(2)]
    res = mi_score_gap(vm, sm, rm, vp, sp, rp, n_subsets=20, seed=0)
    expect_m = mi_score(embedding_mi(vm, sm), np.mean([embedding_mi(vm, r) for r in rm]),
                        embedding_mi(vm, vm))
    assert res.score_members == pytest.approx(expect_m, rel=1e-12)
    assert res.score_members > 0.5 and res.score_public < 0.2
    assert res.statistic == pytest.approx(res.score_members - res.score_public)
    assert res.ci_low > 0 and res.p_value == pytest.approx(1 / 21) and res.verdict == "stolen"
    less = mi_score_gap(vm, sm, rm, vp, sp, rp, n_subsets=20, seed=0, alternative="less")
    assert less.p_value == 1.0 and less.verdict == "inconclusive"
    with pytest.raises(ValueError, match="random_members"):
        mi_score_gap(vm, sm, [], vp, sp, rp)


def test_detection_verdicts_direction_and_error_rates():
    """Synthetic encoders: the victim's members sit in a tight cluster (it memorised them),
    stolen encoders inherit the victim's map plus noise, independent/random ones do not.
    The positive control fixes the direction; the summary's rates are the verdicts' means
    and the AUC is scikit-learn's."""
    from sklearn.metrics import roc_auc_score

    from mipipe.inference.calibration import detection_summary, detection_verdicts

    rng = np.random.default_rng(5)
    n, d = 120, 6
    x_m, x_p = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    w = rng.standard_normal((d, d))

    def victim_map(x, members):
        z = np.tanh(x @ w)
        return z * (1.0 if not members else 0.3) + 2.0  # members pulled together

    reps = {"victim": {"role": "victim", "members": victim_map(x_m, True),
                       "public": victim_map(x_p, False)}}
    for s in range(4):
        noise = 0.05 * (s + 1)
        reps[f"stolen_{s}"] = {
            "role": "stolen", "head": "none", "seed": s,
            "members": victim_map(x_m, True) + noise * rng.standard_normal((n, d)),
            "public": victim_map(x_p, False) + noise * rng.standard_normal((n, d))}
        u = rng.standard_normal((d, d))
        reps[f"independent_{s}"] = {"role": "independent", "seed": s,
                                    "members": np.tanh(x_m @ u) + 2.0,
                                    "public": np.tanh(x_p @ u) + 2.0}
    for s in range(2):
        u = rng.standard_normal((d, d))
        reps[f"random_{s}"] = {"role": "random", "seed": s, "members": x_m @ u,
                               "public": x_p @ u}
    v = detection_verdicts(reps, "victim", gmm={"n_components": 2}, mi_gap={"n_subsets": 5})
    assert (v["status"] == "ok").all() and len(v) == len(reps) * 5
    g = v[v["detector"] == "gmm"].set_index("encoder")
    assert g.loc["victim", "alternative"] == "two-sided" and g.loc["victim", "p_value"] < 0.01
    direction = "greater" if g.loc["victim", "statistic"] > 0 else "less"
    assert set(g.drop("victim")["alternative"]) == {direction}
    s = detection_summary(v, "victim").set_index("detector")
    for det, grp in v.groupby("detector"):
        stolen, indep = grp[grp["role"] == "stolen"], grp[grp["role"] == "independent"]
        assert s.loc[det, "tpr"] == pytest.approx(stolen["flagged"].mean())
        assert s.loc[det, "fpr"] == pytest.approx(indep["flagged"].mean())
        y = np.r_[np.ones(len(stolen)), np.zeros(len(indep))]
        assert s.loc[det, "auc"] == pytest.approx(
            roc_auc_score(y, np.r_[stolen["score"], indep["score"]]))
    assert s.loc["linear_cka", "auc"] == 1.0 and s.loc["linear_cka", "tpr"] == 1.0
    assert s.loc["gmm", "control_p_value"] == g.loc["victim", "p_value"]
    with pytest.raises(ValueError, match="target victim"):
        detection_verdicts(reps, "nobody")
