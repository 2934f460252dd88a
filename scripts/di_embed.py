"""Embeddings of the first N evaluation images (unshuffled) through one encoder."""

from mipipe.log import log_to
from mipipe.inference.stages import embed_stage

with log_to(snakemake.log[0]) as log:  # noqa: F821
    p = snakemake.params  # noqa: F821
    df = embed_stage(snakemake.input.ckpt, snakemake.input.data, snakemake.output[0],  # noqa: F821
                     rows=p.rows, n=p.n, device=p.device, threads=snakemake.threads)  # noqa: F821
    log.info("%d embeddings of dimension %d", len(df), df.shape[1] - 1)
