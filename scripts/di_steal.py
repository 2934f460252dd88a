"""Steal the target victim through its black-box query function (one head variant)."""

from mipipe.log import log_to
from mipipe.inference.stages import steal_stage

with log_to(snakemake.log[0]) as log:  # noqa: F821
    p = snakemake.params  # noqa: F821
    m = steal_stage(snakemake.input.victim, snakemake.input.queries, snakemake.output[0],  # noqa: F821
                    rows=p.rows, n_queries=p.n_queries, encoder_spec=p.encoder, head_spec=p.head,
                    variant=p.variant, recipe=p.recipe, seed=p.seed, device=p.device,
                    threads=snakemake.threads)  # noqa: F821
    log.info("stolen (head %s): %d queries, final InfoNCE %.4f nats, %.1f s", p.variant,
             m["n_queries"], m["final_loss"], m["seconds"])
