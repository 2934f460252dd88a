"""Train one SimCLR encoder (a victim at temperature tau, or the independent encoder)."""

from mipipe.log import log_to
from mipipe.inference.stages import train_simclr_stage

with log_to(snakemake.log[0]) as log:  # noqa: F821
    p = snakemake.params  # noqa: F821
    m = train_simclr_stage(snakemake.input.data, snakemake.output[0], rows=p.rows,  # noqa: F821
                           encoder_spec=p.encoder, head_spec=p.head, recipe=p.recipe,
                           temperature=p.temperature, seed=p.seed, device=p.device,
                           threads=snakemake.threads, role=p.role)  # noqa: F821
    log.info("%s: final NT-Xent %.4f nats after %d epochs, %.1f s on %s", p.role,
             m["final_loss"], len(m["loss"]), m["seconds"], m["device"])
