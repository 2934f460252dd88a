"""Load one bring-your-own image set (ImageFolder directory or .npz) and cache it."""

from mipipe.inference.byo import images_stage
from mipipe.log import log_to

with log_to(snakemake.log[0]) as log:  # noqa: F821
    p = snakemake.params  # noqa: F821
    info = images_stage(p.spec, snakemake.output[0], where=p.where)  # noqa: F821
    log.info("%s: %d images of shape %s", p.where, info["n"], info["shape"])
