# mipipe: mutual-information estimation benchmark and dataset inference.
# `snakemake --cores N` builds every table and figure; see README.md.
from snakemake.utils import min_version, validate

from mipipe.config import SCHEMA_PATH, check_config, check_keys, select_estimators

min_version("9.0")


# config.yaml is the default run. A config given with --configfile replaces it instead of
# being merged into it (Snakemake's default merge would keep config.yaml's experiments).
if not workflow.config_settings.configfiles:

    configfile: "config.yaml"


report: "report/workflow.rst"


check_keys(config)  # unknown keys: name the allowed ones and the closest match
validate(config, str(SCHEMA_PATH))
check_config(config)
select_estimators(config)  # only_estimators: a subset of every experiment's estimators


include: "rules/common.smk"
include: "rules/synthetic.smk"


# Dataset inference (thesis section 5) runs when the config has an `inference:` section.
if "inference" in config:

    include: "rules/inference_common.smk"
    include: "rules/inference.smk"


DI_TARGETS = inference_targets() if "inference" in config else []

# Bring your own encoders: only the detection stages, on a user's checkpoints and images.
if "bring_your_own" in config:

    include: "rules/byo.smk"


BYO_TARGETS = byo_targets() if "bring_your_own" in config else []


rule all:
    default_target: True
    input:
        synthetic_targets(),
        DI_TARGETS,
        BYO_TARGETS,


# Named target: every synthetic table and figure (Figures 2-11, the eps and failure tables),
# without the dataset-inference stage. Single figures and tables are targets by path,
# e.g. `snakemake results/figures/figure_3.png`.
rule synthetic:
    input:
        synthetic_targets(),


# Named target: the dataset-inference tables (Tables 1-3, MI scores) and their inputs.
rule inference:
    input:
        DI_TARGETS,


# Named target: the bring-your-own verdict table (config section bring_your_own).
rule byo:
    input:
        BYO_TARGETS,
