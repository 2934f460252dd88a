"""Run one estimator over its grid (n, D, k, p, correction, eps) on one cached sample."""

from mipipe.synthetic.experiments import run_grid
from mipipe.io import read_sample, write_parquet
from mipipe.log import log_to

with log_to(snakemake.log[0]) as log:  # noqa: F821
    run = snakemake.params.run  # noqa: F821
    x, y, true_mi, _ = read_sample(snakemake.input.sample)  # noqa: F821

    def progress(done, total, row):
        log.info("[%d/%d] %s n=%d D=%d k=%d p=%s %s eps=%g: %.4f nats (true %.4f) in %.3f s",
                 done, total, row["estimator"], row["n"], row["D"], row["k"], row["p"],
                 row["correction"], row["eps"], row["estimate_nats"], row["true_mi_nats"],
                 row["seconds"])

    rows = run_grid(x, y, true_mi, snakemake.params.estimator, run["grid"], run["n"], run["D"],  # noqa: F821
                    labels=run["labels"], workers=snakemake.threads, progress=progress)  # noqa: F821
    write_parquet(rows, snakemake.output[0])  # noqa: F821
