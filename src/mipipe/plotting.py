"""Figures of the synthetic benchmark: estimate against the swept quantity, true MI drawn."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .experiments import ESTIMATOR_LABELS  # noqa: E402

SWEEP_LABELS = {
    "n": "sample size n (log scale)",
    "D": "dimension D of X and of Y",
    "eps": "relative tolerance ε (log scale)",
}
LINE_KEYS = ("D", "n", "k", "p", "correction", "eps")
STYLES = ["-", "--", ":", "-."]
MARKERS = ["o", "s", "^", "D", "v", "P", "X"]


def _fmt_value(key, v):
    if key == "p":
        return "∞" if math.isinf(v) else f"{v:g}"
    if key == "eps":
        return f"{v:.0e}"
    return f"{v}"


def line_label(key_values: dict) -> str:
    """e.g. {'p': inf, 'k': 1} -> 'p = ∞, k = 1'."""
    if not key_values:
        return "estimate"
    return ", ".join(f"{k} = {_fmt_value(k, v)}" for k, v in key_values.items())


def plot_sweep(agg: pd.DataFrame, sweep: str, title: str) -> plt.Figure:
    """One panel per estimator; one line per combination of the parameters that vary.

    Parameters
    ----------
    agg : output of :func:`mipipe.experiments.aggregate` for one experiment.
    sweep : the x-axis column: "n", "D" or "eps".
    title : figure title.

    The line is the mean over seeds; with more than one seed a band spans the min and max
    across seeds. The true MI is drawn in black (dashed). Grid points with a failed estimate
    are marked by a red cross on the panel's bottom edge.
    """
    if sweep not in SWEEP_LABELS:
        raise ValueError(f"sweep must be one of {list(SWEEP_LABELS)}, got {sweep!r}")
    estimators = [e for e in ESTIMATOR_LABELS if e in set(agg["estimator"])]
    estimators += sorted(set(agg["estimator"]) - set(estimators))
    varying = [c for c in LINE_KEYS if c != sweep and agg[c].nunique() > 1]
    n_seeds = int(agg["n_seeds"].max())
    ncol = len(estimators)
    fig, axes = plt.subplots(1, ncol, figsize=(4.6 * ncol, 4.2), squeeze=False, sharey=False)
    for ax, est in zip(axes[0], estimators):
        sub = agg[agg["estimator"] == est]
        panel_failed = False
        groups = sub.groupby(varying, sort=True) if varying else [((), sub)]
        for j, (key, grp) in enumerate(groups):
            key = key if isinstance(key, tuple) else (key,)
            grp = grp.sort_values(sweep)
            xs = grp[sweep].to_numpy(dtype=float)
            ax.plot(xs, grp["estimate_mean_nats"], linestyle=STYLES[j % len(STYLES)],
                    marker=MARKERS[j % len(MARKERS)], markersize=4,
                    label=line_label(dict(zip(varying, key))))
            if n_seeds > 1:
                ax.fill_between(xs, grp["estimate_min_nats"], grp["estimate_max_nats"], alpha=0.2)
            failed = grp["n_failed"].to_numpy() > 0
            if failed.any():
                panel_failed = True
                # failed points sit on the bottom edge (x in data, y in axes coordinates)
                ax.plot(xs[failed], np.full(failed.sum(), 0.04), linestyle="none", marker="x",
                        color="red", markersize=9, markeredgewidth=2,
                        transform=ax.get_xaxis_transform(), clip_on=False)
        truth = sub.groupby(sweep)["true_mi_nats"].mean().sort_index()
        if sweep == "eps":
            # eps barely moves the estimates: zoom on them so a change would show
            lo = np.nanmin(sub[["estimate_min_nats", "estimate_mean_nats"]].to_numpy())
            hi = np.nanmax(sub[["estimate_max_nats", "estimate_mean_nats"]].to_numpy())
            if np.isfinite(lo) and np.isfinite(hi):
                pad = max(0.05, 0.1 * (hi - lo))
                ax.set_ylim(lo - pad, hi + pad)
        if truth.nunique() == 1:
            value = truth.iloc[0]
            ymin, ymax = ax.get_ylim()
            off = sweep == "eps" and not ymin <= value <= ymax
            ax.axhline(value, color="black", linestyle="--", linewidth=1.5,
                       label=f"true MI = {value:.3f}" + (" (off this zoomed scale)" if off else ""))
        else:
            ax.plot(truth.index.to_numpy(dtype=float), truth.to_numpy(), color="black",
                    linestyle="--", linewidth=1.5, label="true MI")
        if sweep in ("n", "eps"):
            ax.set_xscale("log")
        ax.set_xlabel(SWEEP_LABELS[sweep])
        ax.set_ylabel("MI estimate (nats)")
        ax.set_title(ESTIMATOR_LABELS.get(est, est))
        ax.grid(True, alpha=0.3)
        if panel_failed:
            ax.plot([], [], linestyle="none", marker="x", color="red", markeredgewidth=2,
                    label="failed (see table)")
        ax.legend(fontsize=8)
    band = f"; band: min–max over {n_seeds} seeds" if n_seeds > 1 else ""
    fig.suptitle(f"{title}{band}", fontsize=11)
    fig.tight_layout()
    return fig
