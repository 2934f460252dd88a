"""Run one estimator over its grid on one cached sample, or (sweep: task) over its grid on
every task's cached sample: the nearest-neighbour ones (n, D, k, p, correction, eps; rule
estimate) and the scalable ones (cca, sliced, ksliced, latent at every (n, D), the sliced
ones with their own exact truth for the thesis's Gaussian families; rule estimate_scalable)."""

from mipipe.io import path_list, read_sample, write_parquet
from mipipe.log import log_to
from mipipe.synthetic.experiments import run_grid, run_task_suite
from mipipe.synthetic.scalable import TARGET_COLUMN, is_scalable, run_scalable_grid

with log_to(snakemake.log[0]) as log:  # noqa: F821
    run = snakemake.params.run  # noqa: F821
    estimator, threads = snakemake.params.estimator, snakemake.threads  # noqa: F821

    def progress(done, total, row):
        own = f", own truth {row[TARGET_COLUMN]:.4f}" if TARGET_COLUMN in row else ""
        log.info("[%d/%d] %s %s n=%d D=%d k=%s p=%s %s eps=%s: %.4f nats (true %.4f%s) in %.3f s %s",
                 done, total, estimator, row.get("task") or "", row["n"], row["D"],
                 row.get("k", ""), row.get("p", ""), row.get("correction", ""),
                 row.get("eps", ""), row["estimate_nats"], row["true_mi_nats"], own,
                 row["seconds"], row.get("error", ""))

    if "tasks" in run:
        samples = (read_sample(p) for p in path_list(snakemake.input.tasks))  # noqa: F821
        rows = run_task_suite(samples, estimator, run["grid"], run["n"], labels=run["labels"],
                              standardise=run["standardise"], workers=threads,
                              threads=threads, progress=progress).rows
    elif is_scalable(estimator):
        x, y, true_mi, params = read_sample(snakemake.input.sample)  # noqa: F821
        rows = run_scalable_grid(x, y, true_mi, estimator, run["grid"], run["n"], run["D"],
                                 labels=run["labels"], params=params, threads=threads,
                                 progress=progress)
    else:
        x, y, true_mi, _ = read_sample(snakemake.input.sample)  # noqa: F821
        rows = run_grid(x, y, true_mi, estimator, run["grid"], run["n"], run["D"],
                        labels=run["labels"], workers=threads, progress=progress,
                        standardise=run.get("standardise", False))
    write_parquet(rows, snakemake.output[0])  # noqa: F821
