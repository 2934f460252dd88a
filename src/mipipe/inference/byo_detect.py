"""Bring your own encoders: the dataset-inference detectors on a user's embeddings -> verdicts.

Torch-free. Input: for the victim, each suspect and each random encoder of the victim's
architecture, the representations of the member images (the victim's private training
images) and of the public images (non-members of the same distribution), as written by
:func:`mipipe.inference.byo.embed_stage`. The detectors and the verdicts are those of the
calibrated stage, :func:`mipipe.inference.calibration.detection_verdicts` (Dziedzic et al.
2022, "Dataset Inference for Self-Supervised Models", made sound):

* the members are shuffled once with a seed (an ``ImageFolder`` lists them class by class)
  and halved: the first half fits the GMM, the second is compared against the public images;
* the victim's own GMM test, two-sided, is the positive control: when it reaches
  ``control_alpha`` its sign sets the one-sided direction of every suspect's test, else the
  suspects are tested two-sided, and ``direction_source`` says which and why;
* the MI-score gap (members - public), two-sided; linear CKA, cosine and L2 with the victim,
  similarity measures flagged at stated thresholds, not theft tests.

The random encoders get rows too: negative controls whose verdicts should be "inconclusive".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..io import read_metadata, read_parquet, write_table

SETS = ("members", "public")
COLUMNS = ["suspect", "role", "detector", "kind", "statistic", "p_value", "threshold",
           "alternative", "direction_source", "verdict", "flagged", "n_fit", "n_members",
           "n_public", "description", "status", "error"]


def read_sets(path) -> dict[str, np.ndarray]:
    """{members, public} -> float64 ``(n, d)`` representations of an embeddings Parquet file,
    rows in image order.

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


def member_order(n: int, seed: int) -> np.ndarray:
    """The seeded shuffle of the n members (``numpy.random.default_rng(seed).permutation``);
    its first floor(n / 2) entries fit the GMM, the rest are the tested members.

    Raises ValueError for n < 4 (each half needs two images).
    """
    if n < 4:
        raise ValueError(f"{n} member images: need at least 4 (two per half)")
    return np.random.default_rng(int(seed)).permutation(n)


def verdict_table(victim: dict, suspects: dict, randoms: dict, *, seed: int = 0,
                  descriptions: dict | None = None, **kw) -> pd.DataFrame:
    """The verdicts of every detector on every suspect, the victim (positive control) and the
    random encoders (negative controls).

    Parameters
    ----------
    victim : {members: (n, d_v), public: (m, d_v)} the victim's representations.
    suspects, randoms : {name: {members: (n, d), public: (m, d)}}, the same images in the
        same order (randoms: untrained encoders of the victim's architecture, at least two).
    seed : the shuffle of the members (:func:`member_order`).
    descriptions : {name: text} for the ``description`` column (which file, which arch).
    **kw : alpha, control_alpha, gmm, mi_gap, thresholds of
        :func:`mipipe.inference.calibration.detection_verdicts`.

    Returns
    -------
    DataFrame with :data:`COLUMNS`, one row per encoder and detector (gmm, mi_gap,
    linear_cka, cosine, l2): ``role`` victim (the positive control), suspect or random.
    cosine and L2 rows of an encoder whose width differs from the victim's have status
    "skipped" and the reason; a detector that fails has status "failed" and the error.

    Raises
    ------
    ValueError
        A suspect with another number of member or public images than the victim; fewer
        than 4 members.
    """
    from .calibration import detection_verdicts

    order = member_order(len(victim["members"]), seed)
    encoders = {"victim": ("victim", victim),
                **{n: ("suspect", s) for n, s in suspects.items()},
                **{n: ("random", r) for n, r in randoms.items()}}
    reps = {}
    for name, (role, sets) in encoders.items():
        for s in SETS:
            if len(sets[s]) != len(victim[s]):
                raise ValueError(f"{name}: {len(sets[s])} {s} representations, the victim has "
                                 f"{len(victim[s])}")
        reps[name] = {"role": role, "members": np.asarray(sets["members"])[order],
                      "public": sets["public"]}
    df = detection_verdicts(reps, "victim", **kw).rename(columns={"encoder": "suspect"})
    # cosine and L2 compare coordinates: undefined between representations of different
    # widths (e.g. a 512-d ResNet against a 128-d victim); skipped there, not failed
    d_v = victim["public"].shape[1]
    widths = df["suspect"].map({name: r["public"].shape[1] for name, r in reps.items()})
    skip = df["detector"].isin(["cosine", "l2"]) & (widths != d_v)
    df.loc[skip, ["status", "verdict", "flagged"]] = ["skipped", "n/a", False]
    df.loc[skip, "error"] = [f"needs the same dimension: victim {d_v}, suspect {w}"
                             for w in widths[skip]]
    n = len(order)
    df["n_fit"], df["n_members"], df["n_public"] = n // 2, n - n // 2, len(victim["public"])
    df["description"] = df["suspect"].map(descriptions or {}).fillna("")
    rank = {name: i for i, name in enumerate(encoders)}  # victim, suspects, randoms
    df = df.sort_values("suspect", key=lambda c: c.map(rank), kind="stable")
    return df[COLUMNS].reset_index(drop=True)


def detect_stage(victim_path, suspect_paths: dict, random_paths: dict, out: dict,
                 **kw) -> pd.DataFrame:
    """Read the embeddings, build :func:`verdict_table` and write it to ``out`` = {parquet,
    csv, md} (atomically)."""
    paths = {"victim": victim_path, **suspect_paths, **random_paths}
    descriptions = {name: read_metadata(p).get("encoder", "") for name, p in paths.items()}
    df = verdict_table(read_sets(victim_path),
                       {name: read_sets(p) for name, p in suspect_paths.items()},
                       {name: read_sets(p) for name, p in random_paths.items()},
                       descriptions=descriptions, **kw)
    write_table(df, out["parquet"], out["csv"], out["md"])
    return df


class DetectionFailed(RuntimeError):
    """A detector failed on an encoder and the config does not allow failures."""


def check_verdicts(df: pd.DataFrame, allow_failures: bool) -> str:
    """Summarise the failed rows of the verdict table; raise :class:`DetectionFailed` if there
    are any and failures are not allowed."""
    failed = df[df["status"] == "failed"]
    if failed.empty:
        return f"every detector ran on every encoder ({len(df)} rows)"
    listing = failed[["suspect", "detector", "error"]].to_string(index=False)
    summary = (f"{len(failed)} detector run(s) failed (listed in results/tables/byo_verdicts.csv; "
               f"the table was written):\n{listing}")
    if not allow_failures:
        raise DetectionFailed(summary + "\nSet allow_failures: true in the config to accept them.")
    return summary + "\n(allowed by allow_failures: true)"
