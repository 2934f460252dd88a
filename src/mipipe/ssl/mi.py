"""MI between encoder embeddings with permutation tests (thesis §5.3, Table 3; torch-free)."""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import pandas as pd

from ..io import read_parquet, write_parquet

log = logging.getLogger("mipipe.ssl")


def read_embedding(path) -> np.ndarray:
    """(N, d) float32 embedding matrix of an embeddings Parquet file (columns z0..)."""
    df = read_parquet(path)
    cols = [c for c in df.columns if c.startswith("z")]
    if not cols:
        raise ValueError(f"{path}: no embedding columns z0, z1, ...")
    return df[cols].to_numpy(dtype=np.float32)


def pair_mi(z_ref, z_other, *, reference, other, role, seed, n_values, mi) -> list[dict]:
    """MI between the reference (victim) embedding and another encoder's on the first N rows,
    for each N, with :func:`mipipe.dataset_inference.permutation_test`.

    mi : {estimator, k, p, n_permutations, seed}. A failed estimate is a row with status
    "failed" and the error, not a crash. Row keys: reference, other, role, seed, N, mi_nats,
    p_value, null_mean_nats, null_sd_nats, seconds, status, error.
    """
    from ..dataset_inference import permutation_test

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
                                   k=int(mi["k"]), p=float(mi["p"]))
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
    z_ref = read_embedding(ref_path)
    rows = []
    for name, (path, role, seed) in others.items():
        rows += pair_mi(z_ref, read_embedding(path), reference=reference, other=name, role=role,
                        seed=seed, n_values=n_values, mi=mi)
    df = pd.DataFrame(rows)
    write_parquet(df, out_path)
    return df
