"""One encoder's representations of the detection stage's member and public images."""

from mipipe.inference.stages import represent_stage
from mipipe.log import log_to

with log_to(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    represent_stage(sm.input.ckpt, {"members": (sm.input.members, sm.params.members_rows),
                                    "public": (sm.input.public, sm.params.public_rows)},
                    sm.output[0], device=sm.params.device, threads=sm.threads)
