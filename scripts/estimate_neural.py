"""Train one neural estimator over its grid (n, D, hidden, lr, epochs, batch_size) on one
cached sample, or (sweep: task) on every task's cached sample: estimates and per-step
training traces; a tqdm bar goes to the log."""

from mipipe.io import path_list, read_sample, write_parquet
from mipipe.log import log_to
from mipipe.synthetic.experiments import run_neural_grid, run_task_suite

with log_to(snakemake.log[0]) as log:  # noqa: F821
    run = snakemake.params.run  # noqa: F821

    def progress(done, total, row):
        log.info("[%d/%d] %s %s n=%d D=%d hidden=%d lr=%g epochs=%d batch=%d on %s: %.4f nats "
                 "(true %.4f) in %.1f s %s", done, total, row["estimator"], row.get("task") or "",
                 row["n"], row["D"], row["hidden"], row["lr"], row["epochs"], row["batch_size"],
                 row["device"], row["estimate_nats"], row["true_mi_nats"], row["seconds"],
                 row["error"])

    if "tasks" in run:
        samples = (read_sample(p) for p in path_list(snakemake.input.tasks))  # noqa: F821
        out = run_task_suite(samples, snakemake.params.estimator, run["grid"], run["n"],  # noqa: F821
                             labels=run["labels"], standardise=run["standardise"],
                             threads=snakemake.threads, progress=progress, progress_bar=True)  # noqa: F821
    else:
        x, y, true_mi, _ = read_sample(snakemake.input.sample)  # noqa: F821
        out = run_neural_grid(x, y, true_mi, snakemake.params.estimator, run["grid"], run["n"],  # noqa: F821
                              run["D"], labels=run["labels"], threads=snakemake.threads,  # noqa: F821
                              progress=progress, progress_bar=True,
                              standardise=run.get("standardise", False))
    write_parquet(out.traces, snakemake.output.traces)  # noqa: F821
    write_parquet(out.rows, snakemake.output.estimates)  # noqa: F821
