"""Fail the run when a detector failed on a suspect (unless allow_failures), after the table."""

from mipipe.inference.byo_detect import check_verdicts
from mipipe.io import read_parquet, write_text
from mipipe.log import log_to

with log_to(snakemake.log[0]) as log:  # noqa: F821
    message = check_verdicts(read_parquet(snakemake.input[0]), snakemake.params.allow_failures)  # noqa: F821
    log.info(message)
    write_text(message + "\n", snakemake.output[0])  # noqa: F821
