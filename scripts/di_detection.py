"""Verdicts per suspect encoder and detector, error rates per detector, and the figure."""

from mipipe.inference.stages import detection_stage
from mipipe.log import log_to

with log_to(snakemake.log[0]):  # noqa: F821
    sm = snakemake  # noqa: F821
    out = sm.output
    detection_stage(
        dict(zip(sm.params.encoders, sm.input.reps)), sm.params.encoders, sm.params.target,
        sm.params.detection,
        tables={t: (out[f"{t}_parquet"], out[f"{t}_csv"], out[f"{t}_md"])
                for t in ("di_verdicts", "di_detection")},
        figure=(out.png, out.pdf))
