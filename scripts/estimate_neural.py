"""Train one neural estimator over its grid (n, D, hidden, lr, epochs, batch_size) on one
cached sample: estimates and per-step training traces; a tqdm bar goes to the log."""

from mipipe.synthetic.experiments import run_neural_grid
from mipipe.io import read_sample, write_parquet
from mipipe.log import log_to

with log_to(snakemake.log[0]) as log:  # noqa: F821
    run = snakemake.params.run  # noqa: F821
    x, y, true_mi, _ = read_sample(snakemake.input.sample)  # noqa: F821

    def progress(done, total, row):
        log.info("[%d/%d] %s n=%d D=%d hidden=%d lr=%g epochs=%d batch=%d on %s: %.4f nats "
                 "(true %.4f) in %.1f s %s", done, total, row["estimator"], row["n"], row["D"],
                 row["hidden"], row["lr"], row["epochs"], row["batch_size"], row["device"],
                 row["estimate_nats"], row["true_mi_nats"], row["seconds"], row["error"])

    out = run_neural_grid(x, y, true_mi, snakemake.params.estimator, run["grid"], run["n"],  # noqa: F821
                          run["D"], labels=run["labels"], threads=snakemake.threads,  # noqa: F821
                          progress=progress, progress_bar=True)
    write_parquet(out.traces, snakemake.output.traces)  # noqa: F821
    write_parquet(out.rows, snakemake.output.estimates)  # noqa: F821
