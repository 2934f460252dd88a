"""An untrained, seeded encoder (the random baseline I_min)."""

from mipipe.log import log_to
from mipipe.inference.stages import random_stage

with log_to(snakemake.log[0]) as log:  # noqa: F821
    random_stage(snakemake.output[0], encoder_spec=snakemake.params.encoder,  # noqa: F821
                 seed=snakemake.params.seed)  # noqa: F821
    log.info("random encoder, seed %d", snakemake.params.seed)  # noqa: F821
