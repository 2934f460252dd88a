"""MI between the target victim's embeddings and every encoder's, per N, with p-values."""

from mipipe.log import log_to
from mipipe.inference.mi import mi_stage

with log_to(snakemake.log[0]) as log:  # noqa: F821
    p = snakemake.params  # noqa: F821
    df = mi_stage(snakemake.input.ref, p.others, snakemake.output[0],  # noqa: F821
                  reference=p.reference, n_values=p.n_values, mi=p.mi)
    log.info("\n%s", df.to_string(index=False))
