"""Dataset inference scoring (mipipe.dataset_inference): the I(V;V) closed form against the
thesis's 4.832 nats and against the estimator, invariances of the normalised MI, the
permutation test against from-scratch estimates, and the MI score table on thesis Table 3
numbers.

Runtime: about 10 s (one estimate at N = 2000, d = 512).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.special import digamma, gammaln

from mipipe.dataset_inference import (
    drop_constant_columns,
    embedding_mi,
    mi_max_closed_form,
    mi_score,
    normalise_embeddings,
    permutation_test,
    permutations,
    score_table,
)
from mipipe.estimators import ksg_mi

EULER_GAMMA = 0.5772156649015329


def _rotation(d, rng):
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


# --------------------------------------------------------------------------- closed form


def test_closed_form_with_the_original_codes_psi_term_gives_4_832():
    """shared/README.md section 4: log(N-1) + gamma + lnGamma(d+1) - 2 lnGamma(d/2+1) - d log 2."""
    assert mi_max_closed_form(2000, 512, "code") == pytest.approx(4.832, abs=1e-3)
    for n in (2000, 4000, 8000):
        by_hand = (math.log(n - 1) + EULER_GAMMA + gammaln(513) - 2 * gammaln(257)
                   - 512 * math.log(2))
        assert mi_max_closed_form(n, 512, "code") == pytest.approx(by_hand, abs=1e-10)
    # thesis Table 3, "victim" row: 4.8, 5.5, 6.2 nats (one decimal)
    assert [round(mi_max_closed_form(n, 512, "code"), 1) for n in (2000, 4000, 8000)] == [
        4.8, 5.5, 6.2]


def test_closed_form_psi_terms():
    n, d = 2000, 512
    rest = gammaln(d + 1) - 2 * gammaln(d / 2 + 1) - d * math.log(2)
    assert mi_max_closed_form(n, d, "digamma") == pytest.approx(digamma(n) + EULER_GAMMA + rest,
                                                                abs=1e-10)
    assert mi_max_closed_form(n, d, "log") == pytest.approx(math.log(n) + EULER_GAMMA + rest,
                                                            abs=1e-10)
    # p = inf: the joint max-norm distance equals the marginal one, only the psi-term is left
    assert mi_max_closed_form(n, d, "digamma", k=3, p=math.inf) == pytest.approx(
        digamma(n) - digamma(3), abs=1e-12)
    with pytest.raises(ValueError, match="psi_term"):
        mi_max_closed_form(n, d, "kraskov")
    with pytest.raises(ValueError, match="d must be"):
        mi_max_closed_form(n, 0)
    with pytest.raises(ValueError, match="n = 1"):
        mi_max_closed_form(1, 4)


@pytest.mark.parametrize(
    "n, d, kw, psi_term",
    [
        (2000, 512, {}, "digamma"),
        (50, 3, {}, "digamma"),
        (400, 32, {"correction": "log"}, "log"),
        (300, 10, {"k": 3}, "digamma"),
        (300, 6, {"p": math.inf}, "digamma"),
        (200, 5, {"p": 1.0}, "digamma"),
        (200, 2, {}, "digamma"),  # joint dimension 4: the tree back end
    ],
)
def test_self_mi_equals_the_closed_form(n, d, kw, psi_term):
    rng = np.random.default_rng(n + d)
    z = rng.standard_normal((n, d)) * rng.uniform(0.1, 10, size=d) + 3.0
    got = embedding_mi(z, z, **kw)
    want = mi_max_closed_form(n, d, psi_term, k=kw.get("k", 1), p=kw.get("p", 2.0))
    assert got == pytest.approx(want, abs=1e-9)
    # the closed form holds without the normalisation as well (every log r cancels)
    assert embedding_mi(z, z, normalise=False, **kw) == pytest.approx(want, abs=1e-9)


# --------------------------------------------------------------------------- normalisation


def test_normalise_embeddings():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((100, 7)) * 5 + np.arange(7)
    u = normalise_embeddings(z)
    np.testing.assert_allclose(u.mean(axis=0), 0, atol=1e-15)
    assert np.linalg.norm(u) == pytest.approx(1.0, abs=1e-14)
    np.testing.assert_allclose(u * np.linalg.norm(z - z.mean(0)), z - z.mean(0), atol=1e-12)
    with pytest.raises(ValueError, match="identical"):
        normalise_embeddings(np.ones((10, 3)))
    with pytest.raises(ValueError, match="NaN"):
        normalise_embeddings(np.where(np.eye(10, 3) > 0, np.nan, 1.0))


def test_normalised_mi_is_invariant_to_scale_and_translation():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((400, 12))
    b = a[:, :8] @ rng.standard_normal((8, 8)) + 0.5 * rng.standard_normal((400, 8))
    base = embedding_mi(a, b)
    moved = embedding_mi(1e3 * a + rng.normal(size=12) * 50, 0.02 * b - 7.0)
    assert moved == pytest.approx(base, abs=1e-9)
    assert embedding_mi(a * 1e-6, b * 1e6) == pytest.approx(base, abs=1e-9)
    # without the normalisation, rescaling one matrix changes the 3KL estimate
    raw = embedding_mi(a, b, normalise=False)
    assert abs(embedding_mi(1e3 * a, b, normalise=False) - raw) > 1e-2
    # the KSG estimator is selectable
    assert embedding_mi(1e3 * a, b, estimator="ksg2", p=2.0) == pytest.approx(
        embedding_mi(a, b, estimator="ksg2", p=2.0), abs=1e-9)


def test_constant_dimensions_are_dropped():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((200, 6))
    b = a[:, :4] + 0.3 * rng.standard_normal((200, 4))
    dead = np.hstack([b[:, :2], np.zeros((200, 1)), b[:, 2:], np.full((200, 1), 4.0)])
    kept, dropped = drop_constant_columns(dead)
    assert dropped.tolist() == [2, 5] and np.array_equal(kept, b)
    assert embedding_mi(a, dead) == pytest.approx(embedding_mi(a, b), abs=1e-12)
    with pytest.raises(ValueError, match="constant"):
        embedding_mi(a, dead, drop_constant=False)


def test_embedding_mi_errors():
    z = np.random.default_rng(4).standard_normal((50, 3))
    with pytest.raises(ValueError, match="same number of rows"):
        embedding_mi(z, z[:40])
    with pytest.raises(ValueError, match="estimator"):
        embedding_mi(z, z, estimator="mine")
    bad = z.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="z_other contains 1 non-finite value.*NaN"):
        embedding_mi(z, bad)
    with pytest.raises(ValueError, match="repeated points"):
        embedding_mi(np.vstack([z, z[:1]]), np.vstack([z, z[:1]]))
    with pytest.raises(ValueError, match=r"unknown estimator option.*'foo'"):
        embedding_mi(z, z, foo=1)
    with pytest.raises(ValueError, match=r"unknown estimator option.*'foo'"):
        permutation_test(z, z, n_permutations=3, foo=1)


def test_normalisation_survives_extreme_scales():
    rng = np.random.default_rng(8)
    a = rng.standard_normal((80, 4))
    b = a + rng.standard_normal((80, 4))
    ref = normalise_embeddings(a)
    # 1e300: the Frobenius norm of the raw matrix overflows; 1e-300: squares underflow
    for s in (1e300, 1e-300):
        np.testing.assert_allclose(normalise_embeddings(a * s), ref, rtol=1e-12, atol=1e-15)
        assert embedding_mi(a * s, b) == pytest.approx(embedding_mi(a, b), abs=1e-9)
    assert mi_score(1e308, -1e308, 1e308) == 1.0
    assert mi_score(0.0, -1e308, 1e308) == pytest.approx(0.5)


# --------------------------------------------------------------------------- permutation test


@pytest.mark.parametrize("kw, m", [({}, 35), ({"k": 2, "correction": "log"}, 35),
                                   ({"p": math.inf}, 35), ({"p": 3.0}, 4)])
def test_permutation_null_equals_from_scratch_estimates(kw, m):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((300, 16))
    mixed = np.hstack([x[:, :10], x[:, 10:] ** 2]) @ rng.standard_normal((16, 24))
    y = mixed + rng.standard_normal((300, 24))
    res = permutation_test(x, y, n_permutations=m, seed=11, **kw)  # 35 > one batch of 32
    perms = permutations(300, m, 11)
    assert len({tuple(p) for p in perms}) == m
    scratch = [embedding_mi(x, y[perm], **kw) for perm in perms]
    np.testing.assert_allclose(res.null, scratch, rtol=0, atol=1e-9)
    assert res.mi == pytest.approx(embedding_mi(x, y, **kw), abs=1e-12)
    assert res.p_value == (1 + np.sum(res.null >= res.mi)) / (m + 1)


def test_permutation_test_ksg_and_determinism():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((120, 3))
    y = x[:, :2] + rng.standard_normal((120, 2))
    res = permutation_test(x, y, n_permutations=5, seed=2, estimator="ksg1")
    scratch = [ksg_mi(normalise_embeddings(x), normalise_embeddings(y)[perm], 1, 2.0)
               for perm in permutations(120, 5, 2)]
    np.testing.assert_allclose(res.null, scratch, rtol=0, atol=1e-12)
    again = permutation_test(x, y, n_permutations=5, seed=2, estimator="ksg1")
    assert np.array_equal(again.null, res.null)
    other = permutation_test(x, y, n_permutations=5, seed=3)
    assert not np.array_equal(other.null, permutation_test(x, y, n_permutations=5, seed=2).null)
    with pytest.raises(ValueError, match="n_permutations"):
        permutation_test(x, y, n_permutations=0)
    with pytest.raises(ValueError, match="seed"):
        permutation_test(x, y, seed=-1)


def test_dependent_pair_has_a_small_p_value():
    """z_other = z_ref rotated plus small noise: the observed MI beats all 49 shuffles."""
    rng = np.random.default_rng(7)
    z = rng.standard_normal((300, 16))
    other = z @ _rotation(16, rng) + 0.1 * rng.standard_normal((300, 16))
    res = permutation_test(z, other, n_permutations=49, seed=0)
    assert res.p_value <= 0.02
    assert res.p_value == pytest.approx(1 / 50)
    assert res.mi > res.null.max() + 1.0


def test_independent_pairs_give_spread_p_values():
    """Under independence the p-value is uniform on {1/50, ..., 1}: P(p <= 0.1) = 0.1, so
    over 8 independent pairs all-small would have probability 1e-8 and a mean p-value
    outside (0.15, 0.85) about 1e-3 (sd of the mean 0.1)."""
    pvals = []
    for s in range(8):
        rng = np.random.default_rng(100 + s)
        a, b = rng.standard_normal((200, 8)), rng.standard_normal((200, 8))
        pvals.append(permutation_test(a, b, n_permutations=49, seed=s).p_value)
    assert max(pvals) > 0.1
    assert 0.15 < np.mean(pvals) < 0.85


# --------------------------------------------------------------------------- MI score


def test_mi_score_on_thesis_table_3():
    """Thesis Table 3 at N = 2000: I_max 4.832, I_min -337.1 (random, mean of 3)."""
    i_max, i_min = mi_max_closed_form(2000, 512, "code"), -337.1
    assert mi_score(-73.2, i_min, i_max) == pytest.approx((337.1 - 73.2) / (i_max + 337.1))
    assert mi_score(-73.2, i_min, i_max) == pytest.approx(0.7718, abs=1e-4)  # STL10 encoder
    assert mi_score(-1450.6, i_min, i_max) == 0.0  # stolen, clipped at I_min
    assert mi_score(i_max, i_min, i_max) == 1.0
    assert mi_score(10.0, i_min, i_max) == 1.0  # clipped at I_max
    assert mi_score(5.0, 0.0, 10.0) == 0.5


@pytest.mark.parametrize(
    "args, match",
    [
        ((1.0, 2.0, 2.0), "I_max = 2 nats must exceed I_min = 2"),
        ((1.0, 3.0, 2.0), "must exceed"),
        ((math.nan, 0.0, 1.0), r"I \(the pair's MI\) is nan"),
        ((0.5, math.nan, 1.0), "I_min .* is nan"),
        ((0.5, 0.0, math.inf), "I_max .* is inf"),
        ((None, 0.0, 1.0), "real number"),
    ],
)
def test_mi_score_errors(args, match):
    with pytest.raises(ValueError, match=match):
        mi_score(*args)


def _rows():
    rows = []
    for n, (vv, st, ind, rand) in {
        2000: (4.832, -1450.6, -73.2, (-300.0, -337.1, -374.2)),
        4000: (5.526, -1394.8, -76.3, (-359.1, -340.0)),
    }.items():
        rows += [
            ("victim", "victim", "victim", 0, n, vv, 0.01),
            ("victim", "stolen", "stolen", 0, n, st, 0.5),
            ("victim", "stl10", "independent", 0, n, ind, 0.02),
        ]
        rows += [("victim", f"random{s}", "random", s, n, r, 0.3) for s, r in enumerate(rand)]
    return pd.DataFrame(rows, columns=["reference", "other", "role", "seed", "N", "mi_nats",
                                       "p_value"])


def test_score_table_by_hand():
    table = score_table(_rows())
    assert len(table) == 11 and (table["status"] == "ok").all()
    at = table.set_index(["N", "other"])
    r = at.loc[(2000, "stl10")]
    assert r["I_max"] == 4.832 and r["I_min"] == pytest.approx(-337.1)
    assert r["I_min_sd"] == pytest.approx(37.1) and r["n_random"] == 3
    assert (r["I_min_min"], r["I_min_max"]) == (-374.2, -300.0)
    assert r["mi_score"] == pytest.approx((337.1 - 73.2) / (4.832 + 337.1))
    assert r["p_value"] == 0.02
    assert at.loc[(2000, "stolen"), "mi_score"] == 0.0
    assert at.loc[(2000, "victim"), "mi_score"] == 1.0
    assert at.loc[(2000, "random0"), "mi_score"] == pytest.approx(37.1 / (4.832 + 337.1))
    r4 = at.loc[(4000, "stl10")]
    assert r4["I_min"] == pytest.approx(-349.55) and r4["n_random"] == 2
    assert r4["I_min_sd"] == pytest.approx(19.1 / math.sqrt(2))
    assert r4["mi_score"] == pytest.approx((349.55 - 76.3) / (5.526 + 349.55))


def test_score_table_failures_and_errors():
    rows = _rows()
    rows["status"] = "ok"
    rows["error"] = ""
    failed = (rows["other"] == "random2") | ((rows["other"] == "stolen") & (rows["N"] == 4000))
    rows.loc[failed, ["status", "error"]] = ["failed", "repeated points"]
    rows.loc[failed, "mi_nats"] = np.nan
    table = score_table(rows).set_index(["N", "other"])
    assert table.loc[(2000, "stl10"), "n_random"] == 2  # the failed random left out
    assert table.loc[(2000, "stl10"), "I_min"] == pytest.approx(-318.55)
    assert table.loc[(4000, "stolen"), "status"] == "failed"
    assert table.loc[(4000, "stolen"), "error"] == "repeated points"
    assert math.isnan(table.loc[(4000, "stolen"), "mi_score"])
    # no random row for a reference: every row of it fails with the reason
    no_random = score_table(_rows().query("role != 'random'"))
    assert (no_random["status"] == "failed").all()
    assert no_random["error"].str.contains("no random-encoder row").all()
    no_self = score_table(_rows().query("other != 'victim'"))
    assert no_self["error"].str.contains(r"no I\(V;V\) row").all()
    with pytest.raises(ValueError, match="NaN"):
        score_table(_rows().assign(mi_nats=lambda df: df["mi_nats"].where(df["N"] < 4000)))
    with pytest.raises(ValueError, match="duplicate"):
        score_table(pd.concat([_rows(), _rows().iloc[:1]]))
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['p_value'\]"):
        score_table(_rows().drop(columns="p_value"))


# --------------------------------------------------------------------------- layout


def test_old_import_paths_are_the_moved_modules():
    """mipipe.data, .data_meta, .dataset_inference and .ssl.* resolve to the very modules of
    mipipe.inference (one copy: classes compare equal), and torch-free ones stay torch-free."""
    import importlib
    import subprocess
    import sys

    import mipipe
    import mipipe.inference.mi as new_mi

    for old, new in mipipe.MOVED.items():
        assert importlib.import_module(old) is importlib.import_module(new), old
    from mipipe.dataset_inference import permutation_test as old_fn
    from mipipe.ssl.mi import read_embedding

    assert old_fn is new_mi.permutation_test and read_embedding is new_mi.read_embedding
    code = ("import sys, mipipe.config, mipipe.ssl.mi, mipipe.data_meta, mipipe.inference.detectors;"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def _embedding_file(path, z, images=None):
    from mipipe.io import write_parquet

    df = pd.DataFrame(z, columns=[f"z{j}" for j in range(np.shape(z)[1])])
    if images is not None:
        df.insert(0, "image", np.asarray(images, dtype=np.int64))
    write_parquet(df, path)
    return path


def test_embedding_files_with_bad_values_fail_naming_the_file(tmp_path):
    from mipipe.inference.mi import read_embedding

    z = np.random.default_rng(0).normal(size=(6, 2))
    good = _embedding_file(tmp_path / "victim.parquet", z, range(6))
    np.testing.assert_array_equal(read_embedding(good), z.astype(np.float32))
    text = pd.DataFrame({"image": range(6), "z0": z[:, 0], "z1": ["a"] * 6})
    text.to_parquet(tmp_path / "text.parquet")
    with pytest.raises(ValueError, match=r"text\.parquet: embedding column\(s\) \['z1'\] are "
                                         r"not numeric"):
        read_embedding(tmp_path / "text.parquet")
    huge = z.copy()
    huge[2, 1] = 1e300
    _embedding_file(tmp_path / "huge.parquet", huge)
    with pytest.raises(ValueError, match=r"huge\.parquet: 1 embedding value\(s\) overflow "
                                         r"float32 \(largest \|z\| = 1e\+300"):
        read_embedding(tmp_path / "huge.parquet")


def test_mi_stage_aligns_embeddings_on_the_image_column(tmp_path):
    from mipipe.inference.mi import mi_stage

    rng = np.random.default_rng(1)
    z = rng.normal(size=(40, 2))
    ref = _embedding_file(tmp_path / "victim.parquet", z, range(40))
    order = rng.permutation(40)
    shuffled = _embedding_file(tmp_path / "copy.parquet", z[order], order)
    other = _embedding_file(tmp_path / "other.parquet", z, range(1, 41))
    mi = {"estimator": "knn", "k": 1, "p": 2.0, "n_permutations": 3, "seed": 0}
    df = mi_stage(ref, {"victim": (ref, "victim", 0), "copy": (shuffled, "copy", 0)},
                  tmp_path / "mi.parquet", reference="victim", n_values=[40], mi=mi)
    # the shuffled copy, realigned, is the victim itself: the same MI, exactly
    assert df["mi_nats"].iloc[0] == df["mi_nats"].iloc[1] and (df["status"] == "ok").all()
    with pytest.raises(ValueError, match=r"victim\.parquet and .*other\.parquet do not embed "
                                         r"the same images"):
        mi_stage(ref, {"other": (other, "independent", 0)}, tmp_path / "mi2.parquet",
                 reference="victim", n_values=[40], mi=mi)
