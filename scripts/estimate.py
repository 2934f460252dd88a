"""Run one estimator over its grid (n, D, k, p, correction, eps) on one cached sample, or
(sweep: task) over its grid on every task's cached sample."""

from mipipe.io import path_list, read_sample, write_parquet
from mipipe.log import log_to
from mipipe.synthetic.experiments import run_grid, run_task_suite

with log_to(snakemake.log[0]) as log:  # noqa: F821
    run = snakemake.params.run  # noqa: F821

    def progress(done, total, row):
        log.info("[%d/%d] %s %s n=%d D=%d k=%d p=%s %s eps=%g: %.4f nats (true %.4f) in %.3f s",
                 done, total, row["estimator"], row.get("task") or "", row["n"], row["D"],
                 row["k"], row["p"], row["correction"], row["eps"], row["estimate_nats"],
                 row["true_mi_nats"], row["seconds"])

    if "tasks" in run:
        samples = (read_sample(p) for p in path_list(snakemake.input.tasks))  # noqa: F821
        rows = run_task_suite(samples, snakemake.params.estimator, run["grid"], run["n"],  # noqa: F821
                              labels=run["labels"], standardise=run["standardise"],
                              workers=snakemake.threads, progress=progress).rows  # noqa: F821
    else:
        x, y, true_mi, _ = read_sample(snakemake.input.sample)  # noqa: F821
        rows = run_grid(x, y, true_mi, snakemake.params.estimator, run["grid"], run["n"],  # noqa: F821
                        run["D"], labels=run["labels"], workers=snakemake.threads,  # noqa: F821
                        progress=progress, standardise=run.get("standardise", False))
    write_parquet(rows, snakemake.output[0])  # noqa: F821
