"""Fail the run when an estimate failed (unless allow_failures), after all else is written."""

from mipipe.synthetic.experiments import check_failures
from mipipe.io import read_parquet, write_text
from mipipe.log import log_to

with log_to(snakemake.log[0]) as log:  # noqa: F821
    failed = read_parquet(snakemake.input.failures)  # noqa: F821
    message = check_failures(failed, snakemake.params.allow_failures,  # noqa: F821
                             table=snakemake.params.get("table", "results/tables/failures.csv"))  # noqa: F821
    log.info(message)
    write_text(message + "\n", snakemake.output[0])  # noqa: F821
