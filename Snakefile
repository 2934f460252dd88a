# mipipe: mutual-information estimation benchmark and dataset inference.
# `snakemake --cores N` builds every table and figure; see README.md.
from snakemake.utils import min_version, validate

from mipipe.config import SCHEMA_PATH, check_config

min_version("9.0")


configfile: "config.yaml"


validate(config, str(SCHEMA_PATH))
check_config(config)


include: "rules/common.smk"
include: "rules/synthetic.smk"


rule all:
    input:
        synthetic_targets(),
    default_target: True
