"""Figures of the synthetic benchmark: estimate against the swept quantity, true MI drawn;
training curves (estimate against training step) of the neural estimators."""

from __future__ import annotations

import math
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .experiments import ESTIMATOR_LABELS  # noqa: E402
from .scalable import SLICED  # noqa: E402

SWEEP_LABELS = {
    "n": "sample size n (log scale)",
    "D": "dimension D of X and of Y",
    "eps": "relative tolerance ε (log scale)",
}
LINE_KEYS = ("D", "n", "k", "p", "correction", "eps", "hidden", "lr", "epochs", "batch_size")
STYLES = ["-", "--", ":", "-."]
MARKERS = ["o", "s", "^", "D", "v", "P", "X"]
LAST = 20  # the estimate is the mean of the last 20 batch estimates (thesis section 4.2.2)
# one colour and marker per estimator where several share an axis
ESTIMATOR_STYLES = {
    "knn": ("tab:blue", "o"), "ksg1": ("tab:orange", "s"), "ksg2": ("tab:green", "^"),
    "mine": ("tab:red", "D"), "infonce": ("tab:purple", "P"), "nwj": ("tab:brown", "X"),
    "smile": ("tab:pink", "v"), "club": ("tab:gray", "^"), "cca": ("tab:olive", "s"),
    "sliced": ("tab:cyan", "o"), "ksliced": ("darkblue", "D"), "latent": ("darkgreen", "P"),
}
TARGET = "true_target_nats"  # a sliced estimator's own truth (mipipe.synthetic.scalable)


def _fmt_value(key, v):
    if key == "p":
        return "∞" if math.isinf(v) else f"{v:g}"
    if key == "eps":
        return f"{v:.0e}"
    if key == "lr":
        return f"{v:g}"
    if key in ("k", "hidden", "epochs", "batch_size"):
        return f"{int(v)}"
    return f"{v}"


def line_label(key_values: dict) -> str:
    """e.g. {'p': inf, 'k': 1} -> 'p = ∞, k = 1'."""
    if not key_values:
        return "estimate"
    return ", ".join(f"{k} = {_fmt_value(k, v)}" for k, v in key_values.items())


def _estimators(df: pd.DataFrame) -> list:
    found = set(df["estimator"])
    return [e for e in ESTIMATOR_LABELS if e in found] + sorted(found - set(ESTIMATOR_LABELS))


def _varying(df: pd.DataFrame, sweep: str) -> list:
    return [c for c in LINE_KEYS if c != sweep and c in df and df[c].nunique() > 1]


def plot_sweep(agg: pd.DataFrame, sweep: str, title: str) -> plt.Figure:
    """Estimate against the swept quantity, the true MI drawn (dashed, black).

    Parameters
    ----------
    agg : output of :func:`mipipe.experiments.aggregate` for one experiment.
    sweep : the x-axis column: "n", "D" or "eps".
    title : figure title.

    Layout: when every estimator has a single line (its other parameters fixed, as in the
    thesis's Figures 8-11, "all estimators"), all share one axis, one colour per estimator;
    otherwise one panel per estimator with one line per combination of the parameters
    that vary (norm p, k, width h, ...), as in Figures 2-7. A line is the mean over seeds;
    with more than one seed a band spans the min and max across seeds. Grid points with a
    failed estimate are marked by a red cross on the bottom edge. A sliced estimator's own
    truth (``true_target_nats``: the sliced MI over its drawn directions) is drawn dotted in
    its colour, so it is not read against the MI. For InfoNCE with one
    batch size, its ceiling log b (b = min(batch_size, n)) is drawn dotted.
    """
    if sweep not in SWEEP_LABELS:
        raise ValueError(f"sweep must be one of {list(SWEEP_LABELS)}, got {sweep!r}")
    estimators = _estimators(agg)
    varying = _varying(agg, sweep)
    n_seeds = int(agg["n_seeds"].max())
    shared = len(estimators) > 1 and all(
        not _varying(agg[agg["estimator"] == e], sweep) for e in estimators
    )
    if shared:
        fig, ax = plt.subplots(figsize=(7.5, 5.0))
        panels = [(ax, estimators)]
    else:
        ncol = len(estimators)
        fig, axes = plt.subplots(1, ncol, figsize=(4.6 * ncol, 4.2), squeeze=False)
        panels = [(ax, [est]) for ax, est in zip(axes[0], estimators)]
    for ax, members in panels:
        sub = agg[agg["estimator"].isin(members)]
        panel_failed = False
        j = 0
        for est in members:
            own = sub[sub["estimator"] == est]
            # the parameters that vary in this estimator's lines; with one line, those that
            # vary across the figure (so the line says which norm or width it is)
            keys = _varying(own, sweep) or [c for c in varying if own[c].notna().any()]
            groups = own.groupby(keys, sort=True, dropna=False) if keys else [((), own)]
            for key, grp in groups:
                key = key if isinstance(key, tuple) else (key,)
                grp = grp.sort_values(sweep)
                xs = grp[sweep].to_numpy(dtype=float)
                if shared:
                    color, marker = ESTIMATOR_STYLES.get(est, (None, MARKERS[j % len(MARKERS)]))
                    style = dict(color=color, marker=marker, linestyle="-",
                                 label=_estimator_label(est, own, varying, _varying(own, sweep)))
                else:
                    style = dict(linestyle=STYLES[j % len(STYLES)], marker=MARKERS[j % len(MARKERS)],
                                 label=line_label(dict(zip(keys, key))))
                j += 1
                line, = ax.plot(xs, grp["estimate_mean_nats"].to_numpy(dtype=float),
                                markersize=4, **style)
                if n_seeds > 1:
                    ax.fill_between(xs, grp["estimate_min_nats"].to_numpy(dtype=float),
                                    grp["estimate_max_nats"].to_numpy(dtype=float),
                                    alpha=0.15 if shared else 0.2, color=line.get_color())
                if TARGET in grp and grp[TARGET].notna().any():
                    # sliced MI is not I(X; Y): draw what it estimates beside it
                    name = ESTIMATOR_LABELS.get(est, est)
                    ax.plot(xs, grp[TARGET].to_numpy(dtype=float), color=line.get_color(),
                            linestyle=":", linewidth=1.8,
                            label=f"true {name} (its target, not the MI)")
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
        _draw_infonce_ceiling(ax, sub, sweep)
        if truth.nunique() == 1:
            value = truth.iloc[0]
            ymin, ymax = ax.get_ylim()
            off = sweep == "eps" and not ymin <= value <= ymax
            ax.axhline(value, color="black", linestyle="--", linewidth=1.5,
                       label=f"true MI = {value:.3f}" + (" (off this zoomed scale)" if off else ""))
        else:
            ax.plot(truth.index.to_numpy(dtype=float), truth.to_numpy(), color="black",
                    linestyle="--", linewidth=1.5, label="true MI")
        if shared:
            _cut_below(ax, sub, sweep, truth)
        if sweep in ("n", "eps"):
            ax.set_xscale("log")
        if sweep == "n":
            # the n values themselves (log axes label only powers of ten, or crowd them)
            ns = np.sort(sub["n"].unique())
            ax.set_xticks(ns, [f"{int(v)}" for v in ns])
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        if sweep == "D":
            ax.set_xticks(np.sort(sub["D"].unique()))
        ax.set_xlabel(SWEEP_LABELS[sweep])
        ax.set_ylabel("MI estimate (nats)")
        if not shared:
            own = sub[sub["estimator"] == members[0]]
            ax.set_title(_estimator_label(members[0], own, varying, _varying(own, sweep)),
                         fontsize=10)
        ax.grid(True, alpha=0.3)
        if panel_failed:
            ax.plot([], [], linestyle="none", marker="x", color="red", markeredgewidth=2,
                    label="failed (see table)")
        if shared and len(ax.get_legend_handles_labels()[0]) > LEGEND_INSIDE_MAX:
            # many estimators on one panel: the legend beside it, so it hides no line
            fig.set_size_inches(12.0, 5.0)
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                      borderaxespad=0.0)
        else:
            ax.legend(fontsize=8)
    band = f"; band: min–max over {n_seeds} seeds" if n_seeds > 1 else ""
    _title(fig, f"{title}{band}")
    return fig


def _estimator_label(est: str, own: pd.DataFrame, varying: list, lines: list) -> str:
    """The estimator's name with the parameters it holds fixed while another estimator of
    the figure uses other values, e.g. 'KSG2 (p = 1)' beside 'KSG1 (p = 2)' (thesis Figures
    3 and 5: KSG2 with the L1 norm, the others with L2)."""
    fixed = {c: own[c].dropna().iloc[0] for c in varying
             if c not in lines and own[c].notna().any() and own[c].nunique() == 1}
    name = ESTIMATOR_LABELS.get(est, est)
    return f"{name} ({line_label(fixed)})" if fixed else name


LEGEND_INSIDE_MAX = 8  # legend entries drawn inside a shared panel; more go beside it


def _title(fig: plt.Figure, text: str) -> None:
    """A suptitle wrapped to the figure's width (measured as drawn, with a margin)."""
    width = max(40, int(fig.get_figwidth() * 13))
    title = fig.suptitle(textwrap.fill(text, width), fontsize=11)
    renderer = fig.canvas.get_renderer()
    limit = 0.96 * fig.bbox.width
    while width > 30 and title.get_window_extent(renderer).width > limit:
        width -= 4
        title.set_text(textwrap.fill(text, width))
    fig.tight_layout()


def _draw_infonce_ceiling(ax, sub: pd.DataFrame, sweep: str) -> None:
    """InfoNCE cannot exceed log b: draw that ceiling when the panel has one batch size."""
    nce = sub[sub["estimator"] == "infonce"]
    if nce.empty or nce["batch_size"].nunique() != 1:
        return
    top = np.nanmax([sub["true_mi_nats"].max(), sub["estimate_max_nats"].max()])
    b = np.minimum(nce.groupby(sweep)["n"].first().sort_index().to_numpy(dtype=float),
                   float(nce["batch_size"].iloc[0]))
    xs = np.sort(nce[sweep].unique()).astype(float)
    ceiling = np.log(b)
    if not ceiling.min() <= 1.25 * top:
        return  # far above every value: it would only squash the lines
    label = ("InfoNCE ceiling log b" if len(set(ceiling)) > 1
             else f"InfoNCE ceiling log b = {ceiling[0]:.2f}")
    ax.plot(xs, ceiling, color="grey", linestyle=":", linewidth=1.5, label=label)


def _cut_below(ax, sub: pd.DataFrame, sweep: str, truth: pd.Series) -> None:
    """Cut the y axis a little below 0 (thesis Figures 8-9: kNN falls far below 0 at D = 1);
    points under the cut are marked on the bottom edge in their estimator's colour."""
    top = np.nanmax([truth.max(), np.nanmax(sub["estimate_max_nats"].to_numpy(dtype=float))])
    if not np.isfinite(top) or top <= 0:
        return
    floor = -0.1 * top
    values = sub["estimate_mean_nats"].to_numpy(dtype=float)
    if not (values < floor).any():
        return
    ax.set_ylim(bottom=floor)
    for est, grp in sub[sub["estimate_mean_nats"] < floor].groupby("estimator", sort=False):
        color = ESTIMATOR_STYLES.get(est, ("black", "v"))[0]
        lowest = grp["estimate_mean_nats"].min()
        ax.plot(grp[sweep].to_numpy(dtype=float), np.full(len(grp), 0.015), linestyle="none",
                marker="v", color=color, markersize=8, transform=ax.get_xaxis_transform(),
                clip_on=False,
                label=f"{ESTIMATOR_LABELS.get(est, est)} below the axis (down to {lowest:.1f})")


def plot_convergence(traces: pd.DataFrame, sweep: str, title: str, max_columns: int = 4,
                     allow_empty: bool = False) -> plt.Figure:
    """Training curves of neural estimators: the per-batch estimate against training step.

    Parameters
    ----------
    traces : rows of :data:`mipipe.experiments.TRACE_COLUMNS` (one experiment, any seeds).
    sweep : the experiment's swept column ("n" or "D"): one column of panels per value, at
        most ``max_columns`` of them (evenly spaced, first and last included).
    title : figure title.
    allow_empty : with no traces, draw a figure that says every training failed instead of
        raising ValueError (the pipeline's convergence rule, so its failure check still runs).

    One row of panels per estimator; in a panel one line per combination of the other
    grid parameters that vary (width h, lr, epochs, batch size): thin, the mean over seeds
    of the bound on each step's batch in nats; thick, its running mean over the last 20
    steps (at the last step, the reported estimate), with a min–max band over the seeds;
    the held-out bound (if any) dotted; the true MI of that panel dashed black.
    """
    if traces.empty:
        if not allow_empty:
            raise ValueError("no training traces to plot (every neural estimate failed?)")
        # every training failed: say so, so that the run goes on to its failure check
        fig, ax = plt.subplots(figsize=(7.5, 3.0))
        ax.axis("off")
        ax.text(0.5, 0.5, "no training traces: every neural estimate of this experiment "
                "failed\n(see results/tables/failures.*)", ha="center", va="center",
                fontsize=11, color="firebrick", transform=ax.transAxes)
        _title(fig, title)
        return fig
    if sweep not in ("n", "D"):
        raise ValueError(f"sweep must be 'n' or 'D' for training curves, got {sweep!r}")
    estimators = _estimators(traces)
    values = np.sort(traces[sweep].unique())
    if len(values) > max_columns:
        values = values[np.unique(np.round(np.linspace(0, len(values) - 1, max_columns)).astype(int))]
    n_seeds = traces["seed"].nunique()
    nrow, ncol = len(estimators), len(values)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.8 * ncol, 3.0 * nrow + 0.6),
                             squeeze=False)
    for r, est in enumerate(estimators):
        own = traces[traces["estimator"] == est]
        keys = [c for c in ("hidden", "lr", "epochs", "batch_size") if own[c].nunique() > 1]
        for c, value in enumerate(values):
            ax = axes[r][c]
            sub = own[own[sweep] == value]
            groups = sub.groupby(keys, sort=True) if keys else [((), sub)]
            lows, highs = [], []
            for j, (key, grp) in enumerate(groups):
                key = key if isinstance(key, tuple) else (key,)
                # per step: the mean over seeds of the batch estimate (thin), and of its
                # running mean over the last 20 steps (thick; at the end, the estimate)
                per_seed = grp.pivot_table(index="step", columns="seed", values="estimate_nats")
                smooth = per_seed.rolling(LAST, min_periods=1).mean()
                steps = per_seed.index.to_numpy(dtype=float)
                raw, mean = per_seed.mean(axis=1).to_numpy(), smooth.mean(axis=1).to_numpy()
                label = line_label(dict(zip(keys, key))) if keys else "estimate"
                line, = ax.plot(steps, mean, linewidth=1.6, label=f"{label} (mean of last {LAST})")
                ax.plot(steps, raw, linewidth=0.6, alpha=0.35, color=line.get_color())
                if n_seeds > 1:
                    ax.fill_between(steps, smooth.min(axis=1).to_numpy(),
                                    smooth.max(axis=1).to_numpy(), alpha=0.2,
                                    color=line.get_color(), linewidth=0)
                held = grp.groupby("step")["heldout_nats"].mean()
                if held.notna().any():
                    ax.plot(steps, held.rolling(LAST, min_periods=1).mean().to_numpy(),
                            linestyle=":", color=line.get_color(), linewidth=1.2,
                            label="held out (mean of last 20)" if j == 0 else None)
                lows.append(np.nanpercentile(raw, 2))
                highs.append(np.nanpercentile(raw, 99.5))
            truth = float(sub["true_mi_nats"].iloc[0]) if len(sub) else math.nan
            if math.isfinite(truth):
                ax.axhline(truth, color="black", linestyle="--", linewidth=1.2,
                           label=f"true MI = {truth:.3f}")
            if lows:
                # early steps of a bound can be far below 0: show the bulk of the curve
                lo = min(min(lows), 0.0)
                hi = max(max(highs), truth if math.isfinite(truth) else -math.inf)
                pad = 0.08 * (hi - lo) if hi > lo else 0.5
                ax.set_ylim(lo - pad, hi + pad)
            ax.set_title(f"{ESTIMATOR_LABELS.get(est, est)}, {sweep} = {value}", fontsize=10)
            ax.grid(True, alpha=0.3)
            if r == nrow - 1:
                ax.set_xlabel("training step")
            if c == 0:
                ax.set_ylabel("batch estimate (nats)")
            if c == ncol - 1 or keys:
                ax.legend(fontsize=7)
    band = f"; band: min–max over {n_seeds} seeds" if n_seeds > 1 else ""
    _title(fig, f"{title}: training curves (thin: batch estimate; thick: its mean over the "
                f"last {LAST} steps, the reported estimate at the end){band}")
    return fig


# grid columns that name a heat-map column when they vary within an estimator
TASK_COLUMN_KEYS = ("k", "p", "correction", "eps", "hidden", "lr", "epochs", "batch_size")


def _task_columns(agg: pd.DataFrame) -> list[tuple[str, dict, str]]:
    """(estimator, its grid values, label) per heat-map column, estimators in ESTIMATOR_LABELS order;
    a nearest-neighbour column always shows its k, other values only where they vary."""
    cols = []
    for est in _estimators(agg):
        sub = agg[agg["estimator"] == est]
        keys = [c for c in TASK_COLUMN_KEYS if sub[c].notna().any()]
        combos = sub[keys].drop_duplicates().sort_values(keys).to_dict("records") if keys else [{}]
        shown = [c for c in keys if sub[c].nunique() > 1 or c == "k"]
        for combo in combos:
            extra = ", ".join(f"{k}={_fmt_value(k, combo[k])}" for k in shown)
            label = ESTIMATOR_LABELS.get(est, est) + (f"\n{extra}" if extra else "")
            if est in SLICED:  # a different quantity: say so on the axis
                label += "\n(not I(X;Y))"
            cols.append((est, combo, label))
    return cols


def task_cells(agg: pd.DataFrame, task_order=None) -> pd.DataFrame:
    """The heat map's cells as a table: one row per (n, task), the task's dims and true MI, and
    each estimator column's mean estimate over seeds (nats; NaN where every seed failed).

    Parameters
    ----------
    agg : :func:`mipipe.synthetic.experiments.aggregate` of a task sweep.
    task_order : task ids in display order (default: the order of mipipe.tasks.TASKS).

    Raises
    ------
    ValueError
        ``agg`` has no task rows.
    """
    from .tasks import TASKS

    if "task" not in agg or agg["task"].isna().all():
        raise ValueError("not a task sweep: the table has no task rows (sweep: task)")
    present = set(agg["task"].dropna())
    order = [t for t in (task_order or TASKS) if t in present] + sorted(present - set(task_order or TASKS))
    out = []
    for n in sorted(agg["n"].unique()):
        for task in order:
            rows = agg[(agg["task"] == task) & (agg["n"] == n)]
            cell = {"n": int(n), "task": task, "dim_x": int(rows["dim_x"].iloc[0]),
                    "dim_y": int(rows["dim_y"].iloc[0]),
                    "true_mi_nats": float(rows["true_mi_nats"].iloc[0])}
            for est, combo, label in _task_columns(agg):
                hit = rows[rows["estimator"] == est]
                for k, v in combo.items():
                    hit = hit[hit[k] == v]
                cell[label.replace("\n", " ")] = float(hit["estimate_mean_nats"].iloc[0]) if len(hit) else math.nan
            out.append(cell)
    return pd.DataFrame(out)


def plot_task_suite(agg: pd.DataFrame, title: str, task_order=None, vmax: float = 1.0) -> plt.Figure:
    """The suite's heat map (as Czyż et al. 2023, Figure 2): tasks (rows) by estimators (columns),
    each cell the mean estimate over seeds in nats, coloured by estimate − true MI (blue: under,
    red: over, white: exact; clipped at ±``vmax`` nats); the task's dims and true MI are written
    beside its row. One panel per sample size n.

    Parameters
    ----------
    agg : :func:`mipipe.synthetic.experiments.aggregate` of a task sweep.
    title : figure title.
    task_order : task ids in display order (default mipipe.tasks.TASKS's).
    vmax : colour scale limit in nats.

    Raises
    ------
    ValueError
        ``agg`` has no task rows.
    """
    cells = task_cells(agg, task_order)
    labels = [lab for _, _, lab in _task_columns(agg)]
    flat = [lab.replace("\n", " ") for lab in labels]
    n_values = sorted(cells["n"].unique())
    n_tasks = cells["task"].nunique()
    width = 4.2 + len(n_values) * (0.85 * len(labels) + 0.6)
    fig, axes = plt.subplots(1, len(n_values), figsize=(width, 1.6 + 0.36 * n_tasks),
                             squeeze=False, constrained_layout=True)
    cmap = plt.get_cmap("RdBu_r")
    for ax, n in zip(axes[0], n_values):
        c = cells[cells["n"] == n].reset_index(drop=True)
        est = c[flat].to_numpy(dtype=float)
        diff = est - c["true_mi_nats"].to_numpy()[:, None]
        im = ax.imshow(np.clip(diff, -vmax, vmax), cmap=cmap, vmin=-vmax, vmax=vmax, aspect="auto")
        for i in range(est.shape[0]):
            for j in range(est.shape[1]):
                text = "failed" if math.isnan(est[i, j]) else f"{est[i, j]:.2f}"
                dark = not math.isnan(diff[i, j]) and abs(diff[i, j]) > 0.6 * vmax
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")
        ax.set_xticks(range(len(labels)), labels, fontsize=8)
        ax.xaxis.tick_top()
        rows = [f"{t}  ({dx}×{dy})  I = {mi:.2f}" for t, dx, dy, mi in
                zip(c["task"], c["dim_x"], c["dim_y"], c["true_mi_nats"])]
        ax.set_yticks(range(len(rows)), rows if ax is axes[0][0] else [""] * len(rows), fontsize=8)
        ax.set_xlabel(f"n = {n}: mean estimate over seeds (nats); I = true MI (nats)", fontsize=9)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.6, extend="both",
                 label="mean estimate − true MI (nats)")
    fig.suptitle("\n".join(textwrap.wrap(title, 90)), fontsize=10)
    return fig
