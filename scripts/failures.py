"""Collect every failed estimate of the synthetic benchmark into one table."""

import pandas as pd

from mipipe.synthetic.experiments import failures
from mipipe.io import read_parquet, write_table
from mipipe.log import log_to

with log_to(snakemake.log[0]) as log:  # noqa: F821
    rows = pd.concat([read_parquet(p) for p in snakemake.input], ignore_index=True)  # noqa: F821
    failed = failures(rows).drop(columns=["estimate_nats"])
    out = snakemake.output  # noqa: F821
    write_table(failed, out.parquet, out.csv, out.md)
    log.info("%d of %d estimates failed", len(failed), len(rows))
