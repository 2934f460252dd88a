"""Run one scalable estimator (cca, sliced, ksliced, latent) at every (n, D) of one cached
sample, or (sweep: task) at every n of every task's cached sample; the sliced ones also get
their own exact truth for the thesis's Gaussian families."""

from mipipe.io import path_list, read_sample, write_parquet
from mipipe.log import log_to
from mipipe.synthetic.experiments import run_task_suite
from mipipe.synthetic.scalable import run_scalable_grid

with log_to(snakemake.log[0]) as log:  # noqa: F821
    run = snakemake.params.run  # noqa: F821

    def progress(done, total, row):
        log.info("[%d/%d] %s %s n=%d D=%d: %.4f nats (true MI %.4f, own truth %.4f) in %.2f s %s",
                 done, total, row["estimator"], row.get("task") or "", row["n"], row["D"],
                 row["estimate_nats"], row["true_mi_nats"], row["true_target_nats"],
                 row["seconds"], row["error"])

    if "tasks" in run:
        samples = (read_sample(p) for p in path_list(snakemake.input.tasks))  # noqa: F821
        rows = run_task_suite(samples, snakemake.params.estimator, run["grid"], run["n"],  # noqa: F821
                              labels=run["labels"], standardise=run["standardise"],
                              threads=snakemake.threads, progress=progress).rows  # noqa: F821
    else:
        x, y, true_mi, params = read_sample(snakemake.input.sample)  # noqa: F821
        rows = run_scalable_grid(x, y, true_mi, snakemake.params.estimator, run["grid"],  # noqa: F821
                                 run["n"], run["D"], labels=run["labels"], params=params,
                                 threads=snakemake.threads, progress=progress)  # noqa: F821
    write_parquet(rows, snakemake.output[0])  # noqa: F821
