"""Combine the eps sweeps into one sensitivity table (thesis section 4.2.1)."""

import pandas as pd

from mipipe.synthetic.experiments import eps_sensitivity
from mipipe.io import read_parquet, write_table
from mipipe.log import log_to

with log_to(snakemake.log[0]):  # noqa: F821
    agg = pd.concat([read_parquet(p) for p in snakemake.input], ignore_index=True)  # noqa: F821
    out = snakemake.output  # noqa: F821
    write_table(eps_sensitivity(agg), out.parquet, out.csv, out.md, float_format="%.3g")
