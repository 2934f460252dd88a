"""Draw one experiment's figure (PNG + PDF) from its aggregate table: the sweep plot, or the
heat map of a task sweep."""

from mipipe.io import read_parquet, save_figure
from mipipe.log import log_to
from mipipe.synthetic.plotting import plot_sweep, plot_task_suite

with log_to(snakemake.log[0]):  # noqa: F821
    agg = read_parquet(snakemake.input[0])  # noqa: F821
    sweep, title = snakemake.params.sweep, snakemake.params.title  # noqa: F821
    if sweep == "task":
        fig = plot_task_suite(agg, title, task_order=snakemake.params.tasks)  # noqa: F821
    else:
        fig = plot_sweep(agg, sweep, title)
    save_figure(fig, snakemake.output.png, snakemake.output.pdf)  # noqa: F821
