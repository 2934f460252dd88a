"""The detectors on the bring-your-own embeddings -> results/tables/byo_verdicts.*."""

from mipipe.inference.byo_detect import detect_stage
from mipipe.log import log_to

with log_to(snakemake.log[0]) as log:  # noqa: F821
    i, p, o = snakemake.input, snakemake.params, snakemake.output  # noqa: F821
    df = detect_stage(i.victim, dict(zip(p.suspects, i.suspects)), dict(zip(p.randoms, i.random)),
                      {"parquet": o.parquet, "csv": o.csv, "md": o.md}, seed=p.seed,
                      **p.detection)
    log.info("\n%s", df[["suspect", "detector", "statistic", "p_value", "verdict"]].to_string())
