"""Draw the training curves (estimate against step) of one experiment's neural estimators."""

import pandas as pd

from mipipe.io import read_parquet, save_figure
from mipipe.log import log_to
from mipipe.synthetic.plotting import plot_convergence

with log_to(snakemake.log[0]):  # noqa: F821
    traces = pd.concat([read_parquet(p) for p in snakemake.input], ignore_index=True)  # noqa: F821
    fig = plot_convergence(traces, snakemake.params.sweep, snakemake.params.title,  # noqa: F821
                           allow_empty=True)
    save_figure(fig, snakemake.output.png, snakemake.output.pdf)  # noqa: F821
