"""Draw one experiment's figure (PNG + PDF) from its aggregate table."""

from mipipe.io import read_parquet, save_figure
from mipipe.log import log_to
from mipipe.synthetic.plotting import plot_sweep

with log_to(snakemake.log[0]):  # noqa: F821
    agg = read_parquet(snakemake.input[0])  # noqa: F821
    fig = plot_sweep(agg, snakemake.params.sweep, snakemake.params.title)  # noqa: F821
    save_figure(fig, snakemake.output.png, snakemake.output.pdf)  # noqa: F821
