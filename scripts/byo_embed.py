"""Embed the member and public images with one bring-your-own encoder (or a random one)."""

from mipipe.inference.byo import embed_stage
from mipipe.log import log_to

with log_to(snakemake.log[0]) as log:  # noqa: F821
    p, i = snakemake.params, snakemake.input  # noqa: F821
    df, what = embed_stage(p.spec, i.members, i.public, snakemake.output[0], where=p.where,  # noqa: F821
                           random_seed=p.random_seed, batch_size=p.batch_size,
                           device=p.device, threads=snakemake.threads)  # noqa: F821
    log.info("%s: %d embeddings of dimension %d", what, len(df), df.shape[1] - 2)
