# Helpers that turn the config into target lists and rule parameters.
import math
import re

from mipipe.synthetic.scalable import SCALABLE_ESTIMATORS
from mipipe.synthetic.experiments import (
    NEURAL_ESTIMATORS,
    NN_ESTIMATORS,
    estimator_grid,
    grid_size,
    is_neural,
)

RESULTS = "results"
# a bring_your_own config may have no synthetic stage: no seeds, datasets or experiments
SEEDS = config.get("seeds", [])
EXPERIMENTS = config.get("experiments", {})
DATASETS = config.get("datasets", {})
# regex of the configured experiment names (a wildcard constraint; matches nothing if none)
EXPERIMENT_NAMES = "|".join(re.escape(name) for name in EXPERIMENTS) or "(?!)"


def neural_experiments():
    """Experiments with a neural estimator: they get traces and a convergence figure (a
    task sweep's neural jobs write traces too, but its figure is the heat map only)."""
    return [
        name
        for name, ex in EXPERIMENTS.items()
        if any(is_neural(e) for e in ex["estimators"]) and not is_task_sweep(name)
    ]


def is_task_sweep(experiment):
    """A `sweep: task` experiment: bmi's tasks (mipipe.tasks) instead of a dataset."""
    return EXPERIMENTS[experiment]["sweep"] == "task"


def task_experiments():
    return [name for name in EXPERIMENTS if is_task_sweep(name)]


# every task any task sweep uses, and the rows its cached samples need (the largest n)
TASK_N = {}
for _name in task_experiments():
    for _task in EXPERIMENTS[_name]["tasks"]:
        TASK_N[_task] = max(TASK_N.get(_task, 0), *EXPERIMENTS[_name]["n"])
TASK_NAMES = "|".join(re.escape(t) for t in TASK_N) or "(?!)"


def task_sample_file(task, seed):
    return f"{RESULTS}/samples/tasks/{task}/seed{seed}.parquet"


def estimate_inputs(wildcards):
    """An estimate job's samples: its dataset's (named `sample`), or one per task (`tasks`)."""
    ex = EXPERIMENTS[wildcards.experiment]
    if is_task_sweep(wildcards.experiment):
        return {"tasks": [task_sample_file(t, wildcards.seed) for t in ex["tasks"]]}
    return {"sample": f"{RESULTS}/samples/{ex['dataset']}/seed{wildcards.seed}.parquet"}


# regexes of the estimator families and of the experiments with neural estimators
NN_NAMES = "|".join(NN_ESTIMATORS)
NEURAL_NAMES = "|".join(NEURAL_ESTIMATORS)
SCALABLE_NAMES = "|".join(SCALABLE_ESTIMATORS)
NEURAL_EXPERIMENT_NAMES = (
    "|".join(re.escape(name) for name in neural_experiments()) or "(?!)"
)


wildcard_constraints:
    experiment="[A-Za-z0-9_]+",
    dataset="[A-Za-z0-9_]+",
    estimator="[A-Za-z0-9_]+",
    seed=r"-?\d+",


def experiment_dataset(experiment):
    return DATASETS[EXPERIMENTS[experiment]["dataset"]]


def dataset_params(wildcards):
    ds = DATASETS[wildcards.dataset]
    return {
        "family": ds["family"],
        "d": ds["d"],
        "n": ds["n"],
        **{k: ds[k] for k in ("alpha", "beta", "noise_dims", "cov_seed") if k in ds},
    }


def estimate_params(wildcards):
    """Everything that determines one estimate job's rows: editing any of it reruns it."""
    ex = EXPERIMENTS[wildcards.experiment]
    if is_task_sweep(wildcards.experiment):
        return {
            "grid": estimator_grid(ex, wildcards.estimator),
            "n": ex["n"],
            "tasks": ex["tasks"],
            "standardise": ex.get("standardise", True),
            "labels": {"experiment": wildcards.experiment, "seed": int(wildcards.seed)},
        }
    ds = experiment_dataset(wildcards.experiment)
    # standardise only when set, so that existing experiments' parameters (and jobs) stay
    extra = {"standardise": ex["standardise"]} if "standardise" in ex else {}
    return {
        **extra,
        "grid": estimator_grid(ex, wildcards.estimator),
        "n": ex.get("n", [ds["n"]]),
        "D": ex.get("D", [ds["d"]]),
        "labels": {
            "experiment": wildcards.experiment,
            "dataset": ex["dataset"],
            "distribution": ds["family"],
            "seed": int(wildcards.seed),
        },
    }


def experiment_seeds(experiment):
    """The experiment's own seeds if it lists them, else the config's."""
    return EXPERIMENTS[experiment].get("seeds", SEEDS)


def experiment_estimate_files(experiment):
    ex = EXPERIMENTS[experiment]
    return expand(
        f"{RESULTS}/estimates/{experiment}/{{estimator}}/seed{{seed}}.parquet",
        estimator=list(ex["estimators"]),
        seed=experiment_seeds(experiment),
    )


def estimate_files(wildcards):
    return experiment_estimate_files(wildcards.experiment)


def trace_files(wildcards):
    """The training traces of an experiment's neural estimators, every seed."""
    ex = EXPERIMENTS[wildcards.experiment]
    return expand(
        f"{RESULTS}/traces/{wildcards.experiment}/{{estimator}}/seed{{seed}}.parquet",
        estimator=[e for e in ex["estimators"] if is_neural(e)],
        seed=experiment_seeds(wildcards.experiment),
    )


def eps_experiments():
    return [name for name, ex in EXPERIMENTS.items() if ex["sweep"] == "eps"]


def all_estimate_files():
    return [f for name in EXPERIMENTS for f in experiment_estimate_files(name)]


def synthetic_targets():
    """Every synthetic table and figure, the failure table, and the failure check (last);
    nothing when the config has no experiments (a bring_your_own-only config)."""
    if not EXPERIMENTS:
        return []
    return (
        synthetic_outputs()
        + [f"{RESULTS}/tables/failures.{ext}" for ext in ("parquet", "csv", "md")]
        + [f"{RESULTS}/checks/synthetic.ok"]
    )


def synthetic_outputs():
    targets = expand(
        f"{RESULTS}/figures/{{experiment}}.{{ext}}",
        experiment=list(EXPERIMENTS),
        ext=["png", "pdf"],
    )
    targets += expand(
        f"{RESULTS}/tables/{{experiment}}.{{ext}}",
        experiment=list(EXPERIMENTS),
        ext=["parquet", "csv", "md"],
    )
    targets += expand(
        f"{RESULTS}/figures/{{experiment}}_convergence.{{ext}}",
        experiment=neural_experiments(),
        ext=["png", "pdf"],
    )
    if eps_experiments():
        targets += expand(
            f"{RESULTS}/tables/eps_sensitivity.{{ext}}", ext=["parquet", "csv", "md"]
        )
    return targets


# ---------------------------------------------------------------------------------------
# Benchmarks and resources

BENCHMARKS = f"{RESULTS}/benchmarks"


def estimate_runtime(wildcards, threads, attempt):
    """Minutes for one estimate job, from its grid; doubled on each retry (--retries).

    Measured (results/benchmarks/estimate, 2 threads): 2-8 s per job for the default config
    (15 estimates, n <= 10^4, D = 10) and 5-38 s for configs/paper.yaml (up to 50 estimates;
    22 s with a cold numba cache); one estimate at n = 10^4, D = 10 takes 0.4-1.3 s, and the
    brute-force search grows as n^2 D. Budget: 30 s start-up + 2 s per estimate at
    n = 10^4, D = 10, scaled by (n / 10^4)^2 (D / 10) (2 / threads), times 2, at least 10 min.
    """
    run = estimate_params(wildcards)
    grid_points = grid_size(run["grid"])
    seconds = 30.0
    for n in run["n"]:
        for D in run_dims(run):
            seconds += (
                grid_points * 2.0 * (n / 1e4) ** 2 * (D / 10) * 2 / max(threads, 1)
            )
    return attempt * max(10, math.ceil(2 * seconds / 60))


def run_dims(run):
    """The D of each estimate's sample for the runtime budgets: the swept D values, or a
    task's mean width (dim_x + dim_y) / 2, once per task."""
    if "tasks" in run:
        from mipipe.tasks import get_task

        return [(get_task(t).dim_x + get_task(t).dim_y) / 2 for t in run["tasks"]]
    return run["D"]


# per-step cost of a neural training step on the CPU (seconds, 2 threads): a fixed overhead
# plus a term in the batch (MINE and NWJ: b rows through the critic; InfoNCE: all b^2
# pairs), measured on results/benchmarks/estimate_neural (see neural_runtime)
STEP_OVERHEAD_S = 2e-3
STEP_COST_S = {"pairs": 4e-10, "rows": 3e-8}


def neural_runtime(wildcards, threads, attempt):
    """Minutes for one neural estimate job, from its grid; doubled on each retry.

    Budget: 30 s start-up plus, per grid point, epochs x ceil(n / b) training steps of
    STEP_OVERHEAD_S + cost(b), cost = STEP_COST_S["pairs"] b^2 h (InfoNCE scores all b^2
    pairs) or STEP_COST_S["rows"] b h (2D) / 10 (MINE, NWJ), b = min(batch_size, n),
    times 2 / threads; times 3, at least 10 min. On a GPU it is generous.
    """
    run = estimate_params(wildcards)
    grid = run["grid"]
    pairs = wildcards.estimator == "infonce"
    seconds = 30.0
    for n in run["n"]:
        for D in run_dims(run):
            for h in grid["hidden"]:
                for b in grid["batch_size"]:
                    b = min(b, n)
                    cost = (
                        STEP_COST_S["pairs"] * b * b * h
                        if pairs
                        else STEP_COST_S["rows"] * b * h * (2 * D) / 10
                    )
                    step = (STEP_OVERHEAD_S + cost) * 2 / max(threads, 1)
                    steps = sum(grid["epochs"]) * math.ceil(n / b) * len(grid["lr"])
                    seconds += steps * step
    return attempt * max(10, math.ceil(3 * seconds / 60))


# ---------------------------------------------------------------------------------------
# Report (snakemake --report): labels shown next to each figure and table. They are
# evaluated only when the report is built, never when jobs run.

SWEEP_NAMES = {
    "n": "sample size n",
    "D": "dimension D",
    "eps": "tolerance eps",
    "task": "benchmark tasks",
}


def sweep_name(wildcards):
    return SWEEP_NAMES[EXPERIMENTS[wildcards.experiment]["sweep"]]


def true_mi_label(table):
    """The analytic MI recorded in a result table, e.g. '7.7936', '0.6931 to 3.4657 (D = 1..5)'."""
    import pandas as pd

    df = pd.read_parquet(table, columns=["dataset", "D", "true_mi_nats"])
    if table_is_task_sweep(table):
        truth = df.groupby("dataset")["true_mi_nats"].first()
        return f"{truth.min():.4f} to {truth.max():.4f} ({len(truth)} tasks)"
    parts = []
    for name, grp in df.groupby("dataset", sort=True):
        by_d = grp.groupby("D")["true_mi_nats"].first().sort_index()
        if len(by_d) == 1:
            text = f"{by_d.iloc[0]:.4f}"
        else:
            text = (
                f"{by_d.min():.4f} to {by_d.max():.4f} "
                f"(D = {by_d.index.min()}..{by_d.index.max()})"
            )
        parts.append(text if df["dataset"].nunique() == 1 else f"{text} ({name})")
    return "; ".join(parts)


def table_is_task_sweep(table):
    """Whether a result table holds task-sweep rows (a non-null `task` column)."""
    import pandas as pd
    import pyarrow.parquet as pq

    if "task" not in pq.read_schema(table).names:
        return False
    return bool(pd.read_parquet(table, columns=["task"])["task"].notna().any())


def experiment_labels(fmt, table):
    """Report labels of one experiment's figure or table; `table` names its parquet file."""

    def labels(wildcards, input, output):
        return {
            "experiment": wildcards.experiment,
            "dataset": EXPERIMENTS[wildcards.experiment].get("dataset", "bmi tasks"),
            "true MI (nats)": true_mi_label(
                input[0] if table == "input" else output.parquet
            ),
            "format": fmt,
        }

    return labels


def convergence_labels(fmt):
    def labels(wildcards, input, output):
        return {
            "experiment": f"{wildcards.experiment} (training)",
            "dataset": EXPERIMENTS[wildcards.experiment]["dataset"],
            "true MI (nats)": true_mi_label(
                f"{RESULTS}/tables/{wildcards.experiment}.parquet"
            ),
            "format": fmt,
        }

    return labels


def eps_table_labels(wildcards, output):
    names = eps_experiments()
    return {
        "experiment": "eps_sensitivity",
        "dataset": ", ".join(dict.fromkeys(EXPERIMENTS[e]["dataset"] for e in names)),
        "true MI (nats)": true_mi_label(output.parquet),
        "format": "CSV",
    }


def scalable_runtime(wildcards, threads, attempt):
    """Minutes for one scalable-estimator job (cca, sliced, ksliced, latent); doubled on each
    retry. Budget per (n, D), from benchmarks/scale.py on the loaded 2-core VM (n = 10^4,
    d = 10 + 10: 128 slices 13 s, 64 two-dimensional frames 62 s): sliced 0.1 s per slice
    and ksliced 1 s per frame, times (n / 10^4)^1.75; latent 2e-9 s per row, epoch and
    squared width L; 30 s start-up; times 3, at least 10 min."""
    run = estimate_params(wildcards)
    opts = run["grid"]["options"]
    seconds = 30.0
    for n in run["n"]:
        for D in run_dims(run):  # one term per task in a task sweep
            scale = (n / 1e4) ** 1.75
            if wildcards.estimator == "sliced":
                seconds += 0.1 * opts["n_slices"] * scale
            elif wildcards.estimator == "ksliced":
                seconds += 1.0 * opts["n_slices"] * scale
            elif wildcards.estimator == "latent":
                seconds += 2e-9 * n * opts["epochs"] * (opts["width"] or 1024) ** 2
            else:
                seconds += 1.0
    return attempt * max(10, math.ceil(3 * seconds * 2 / max(threads, 1) / 60))
