"""Result tables of the dataset-inference stage (thesis Tables 1-3 and the MI-score table)."""

from __future__ import annotations

import numpy as np
import pandas as pd

ACC = ["train_acc", "test_acc"]


def table1_linear_eval(lineval: pd.DataFrame, eval_set: str = "victim") -> pd.DataFrame:
    """Thesis Table 1: linear evaluation of each victim (per tau), the independent encoder,
    and the random encoders (each seed and their mean), on the victim's data.

    lineval : rows of :func:`mipipe.inference.stages.linear_eval_stage` for every encoder.
    Columns: encoder, role, temperature, final_loss (nats), train_acc, test_acc (%), n_train,
    n_test.
    """
    df = lineval[(lineval["eval_set"] == eval_set) & lineval["role"].isin(
        ["victim", "independent", "random"])].copy()
    order = {"victim": 0, "independent": 1, "random": 2}
    df = df.sort_values(["role", "temperature", "encoder"], key=lambda s: s.map(order)
                        if s.name == "role" else s).reset_index(drop=True)
    out = df[["encoder", "role", "temperature", "final_loss", *ACC, "n_train", "n_test"]].copy()
    rand = out[out["role"] == "random"]
    if len(rand):
        mean = {"encoder": f"random (mean of {len(rand)})", "role": "random_mean",
                "temperature": np.nan, "final_loss": np.nan,
                **{c: rand[c].mean() for c in ACC},
                "n_train": rand["n_train"].iloc[0], "n_test": rand["n_test"].iloc[0]}
        out = pd.concat([out, pd.DataFrame([mean])], ignore_index=True)
    for c in ACC:
        out[c] = 100.0 * out[c]
    return out


def table2_stealing(lineval: pd.DataFrame, target: str) -> pd.DataFrame:
    """Thesis Table 2: the stolen encoders (one per head variant) beside their victim and the
    random baseline, linear-evaluated on the victim's data and on the query data.

    Columns: encoder, role, head, final_loss (stealing InfoNCE, nats), victim_train_acc,
    victim_test_acc, query_train_acc, query_test_acc (%), and ratio_victim_test,
    ratio_query_test = the encoder's test accuracy / the victim's.
    """
    wide = lineval.pivot_table(index=["encoder", "role", "head"], columns="eval_set",
                               values=ACC, aggfunc="first")
    wide.columns = [f"{s}_{m}" for m, s in wide.columns]
    wide = wide.reset_index()
    final = lineval.groupby("encoder")["final_loss"].first()
    wide["final_loss"] = wide["encoder"].map(final)
    keep = (wide["encoder"] == target) | wide["role"].isin(["stolen", "random"])
    wide = wide[keep].copy()
    rand = wide[wide["role"] == "random"]
    rows = [wide[wide["encoder"] == target], wide[wide["role"] == "stolen"].sort_values("encoder")]
    if len(rand):
        mean = {c: rand[c].mean() for c in rand.columns if c.endswith("_acc")}
        mean.update(encoder=f"random (mean of {len(rand)})", role="random_mean", head="",
                    final_loss=np.nan)
        rows.append(pd.DataFrame([mean]))
    out = pd.concat(rows, ignore_index=True)
    acc_cols = [f"{s}_{m}" for s in ("victim", "query") for m in ACC if f"{s}_{m}" in out]
    victim = out[out["encoder"] == target].iloc[0]
    for s in ("victim", "query"):
        col = f"{s}_test_acc"
        if col in out:
            out[f"ratio_{s}_test"] = out[col] / victim[col]
    for c in acc_cols:
        out[c] = 100.0 * out[c]
    cols = ["encoder", "role", "head", "final_loss", *acc_cols,
            *[c for c in out.columns if c.startswith("ratio_")]]
    return out[cols]


def table3_mi(mi_rows: pd.DataFrame) -> pd.DataFrame:
    """Thesis Table 3: raw MI (nats) between the reference victim and every encoder, per N,
    with the permutation p-value and the null's mean and sd."""
    cols = ["reference", "other", "role", "seed", "N", "mi_nats", "p_value", "null_mean_nats",
            "null_sd_nats", "status", "error"]
    order = {"victim": 0, "copy": 1, "stolen": 2, "independent": 3, "random": 4}
    df = mi_rows[cols].copy()
    df["_o"] = df["role"].map(order).fillna(9)
    return df.sort_values(["_o", "other", "N"]).drop(columns="_o").reset_index(drop=True)
