# Helpers that turn the config into target lists and rule parameters.
from mipipe.experiments import estimator_grid

RESULTS = "results"
SEEDS = config["seeds"]
EXPERIMENTS = config["experiments"]
DATASETS = config["datasets"]


wildcard_constraints:
    experiment="[A-Za-z0-9_]+",
    dataset="[A-Za-z0-9_]+",
    estimator="[A-Za-z0-9_]+",
    seed=r"-?\d+",


def experiment_dataset(experiment):
    return DATASETS[EXPERIMENTS[experiment]["dataset"]]


def dataset_params(wildcards):
    ds = DATASETS[wildcards.dataset]
    return {"family": ds["family"], "d": ds["d"], "n": ds["n"],
            **{k: ds[k] for k in ("alpha", "beta", "noise_dims", "cov_seed") if k in ds}}


def estimate_params(wildcards):
    """Everything that determines one estimate job's rows: editing any of it reruns it."""
    ex = EXPERIMENTS[wildcards.experiment]
    ds = experiment_dataset(wildcards.experiment)
    return {
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


def estimate_files(wildcards):
    ex = EXPERIMENTS[wildcards.experiment]
    return expand(
        f"{RESULTS}/estimates/{wildcards.experiment}/{{estimator}}/seed{{seed}}.parquet",
        estimator=list(ex["estimators"]),
        seed=SEEDS,
    )


def eps_experiments():
    return [name for name, ex in EXPERIMENTS.items() if ex["sweep"] == "eps"]


def synthetic_targets():
    targets = expand(
        f"{RESULTS}/figures/{{experiment}}.{{ext}}", experiment=list(EXPERIMENTS), ext=["png", "pdf"]
    )
    targets += expand(
        f"{RESULTS}/tables/{{experiment}}.{{ext}}", experiment=list(EXPERIMENTS), ext=["parquet", "csv", "md"]
    )
    if eps_experiments():
        targets += expand(f"{RESULTS}/tables/eps_sensitivity.{{ext}}", ext=["parquet", "csv", "md"])
    return targets
