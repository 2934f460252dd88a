"""Concatenate one experiment's estimates and summarise them over seeds."""

import pandas as pd

from mipipe.synthetic.experiments import aggregate
from mipipe.io import read_parquet, write_table
from mipipe.log import log_to

with log_to(snakemake.log[0]) as log:  # noqa: F821
    rows = pd.concat([read_parquet(p) for p in snakemake.input], ignore_index=True)  # noqa: F821
    agg = aggregate(rows)
    out = snakemake.output  # noqa: F821
    write_table(agg, out.parquet, out.csv, out.md)
    log.info("%d estimates -> %d grid points", len(rows), len(agg))
