"""Cache one image-data split (read from inference.data.root via params, never an input)."""

from mipipe.log import log_to
from mipipe.inference.stages import prepare_source

with log_to(snakemake.log[0]) as log:  # noqa: F821
    info = prepare_source(snakemake.params.spec, snakemake.params.data, snakemake.output[0])  # noqa: F821
    log.info("cached %s: %d images of shape %s", info["name"], info["n"], info["shape"])
