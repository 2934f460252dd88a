"""Tables 1-3 and the MI-score table of the dataset-inference stage."""

import pandas as pd

from mipipe.inference.mi import score_table
from mipipe.inference.tables import table1_linear_eval, table2_stealing, table3_mi
from mipipe.io import read_parquet, write_table
from mipipe.log import log_to

with log_to(snakemake.log[0]) as log:  # noqa: F821
    inp, out = snakemake.input, snakemake.output  # noqa: F821
    lineval = pd.concat([read_parquet(p) for p in inp.linear_eval], ignore_index=True)
    mi = read_parquet(inp.mi)
    tables = {
        "di_table1_linear_eval": table1_linear_eval(lineval),
        "di_table2_stealing": table2_stealing(lineval, snakemake.params.target),  # noqa: F821
        "di_table3_mi": table3_mi(mi),
        "di_mi_scores": score_table(mi),
    }
    for name, df in tables.items():
        write_table(df, out[f"{name}_parquet"], out[f"{name}_csv"], out[f"{name}_md"])
        log.info("%s:\n%s", name, df.to_string(index=False))
