"""Linear evaluation of one frozen encoder on the victim's data and on the query data."""

from mipipe.log import log_to
from mipipe.inference.stages import linear_eval_stage

with log_to(snakemake.log[0]) as log:  # noqa: F821
    p = snakemake.params  # noqa: F821
    df = linear_eval_stage(snakemake.input.ckpt, p.eval_sets, snakemake.output[0],  # noqa: F821
                           encoder_name=snakemake.wildcards.encoder, C=p.C,  # noqa: F821
                           max_iter=p.max_iter, standardise=p.standardise,
                           device=p.device, threads=snakemake.threads)  # noqa: F821
    log.info("\n%s", df.to_string(index=False))
