"""Draw one synthetic sample (largest n and d) with its analytic MI -> Parquet."""

from mipipe.synthetic.families import draw_sample
from mipipe.io import write_sample
from mipipe.log import log_to

with log_to(snakemake.log[0]) as log:  # noqa: F821
    spec = dict(snakemake.params.dataset)  # noqa: F821
    seed = int(snakemake.wildcards.seed)  # noqa: F821
    family, n, d = spec.pop("family"), spec.pop("n"), spec.pop("d")
    s = draw_sample(family, n, d, seed, **spec)
    write_sample(s.x, s.y, s.true_mi, snakemake.output[0], params=s.params)  # noqa: F821
    log.info("drew %s n=%d d=%d seed=%d; true MI (all %d dims) = %.4f nats",
             family, n, d, seed, d, s.true_mi[d])
