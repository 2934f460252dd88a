"""Draw one benchmark task's sample (mipipe.tasks, bmi's id) with its analytic MI -> Parquet."""

from mipipe.io import write_sample
from mipipe.log import log_to
from mipipe.tasks import get_task

with log_to(snakemake.log[0]) as log:  # noqa: F821
    task = get_task(snakemake.wildcards.task)  # noqa: F821
    n, seed = int(snakemake.params.n), int(snakemake.wildcards.seed)  # noqa: F821
    x, y = task.sample(n, seed)
    write_sample(x, y, [task.true_mi], snakemake.output[0],  # noqa: F821
                 params={"task": task.task_id, "family": task.family, "n": n, "seed": seed,
                         "dim_x": task.dim_x, "dim_y": task.dim_y})
    log.info("drew %s (%d x %d) n=%d seed=%d; true MI = %.4f nats",
             task.task_id, task.dim_x, task.dim_y, n, seed, task.true_mi)
