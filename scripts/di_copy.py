"""A copy of the target victim (strict load, save): its MI score must be 1."""

from mipipe.log import log_to
from mipipe.inference.stages import copy_stage

with log_to(snakemake.log[0]) as log:  # noqa: F821
    copy_stage(snakemake.input[0], snakemake.output[0])  # noqa: F821
    log.info("copied %s", snakemake.input[0])  # noqa: F821
