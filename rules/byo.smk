# Bring your own encoders (config section bring_your_own): a user's victim and suspect
# encoders and member/public images -> embeddings -> the dataset-inference detectors ->
# results/tables/byo_verdicts.*. Only the detection stages: nothing is trained.
#
# The user's files are declared inputs, so replacing a checkpoint or an image set reruns
# what depends on it. Science: mipipe.inference.byo (loaders, embedding) and
# mipipe.inference.byo_detect (the detectors on the embeddings, the verdict table).

import json

BYO = config["bring_your_own"]
BYO_DIR = f"{RESULTS}/byo"
BYO_SUSPECTS = list(BYO["suspects"])
BYO_RANDOM = [f"random_seed{s}" for s in BYO.get("random_seeds", [0, 1, 2])]
BYO_ENCODERS = ["victim", *BYO_SUSPECTS, *BYO_RANDOM]
BYO_TABLE = "byo_verdicts"


def byo_spec(encoder):
    """(config key, encoder spec, random seed or None) of an encoder name."""
    if encoder == "victim":
        return "bring_your_own/victim", BYO["victim"], None
    if encoder in BYO["suspects"]:
        return f"bring_your_own/suspects/{encoder}", BYO["suspects"][encoder], None
    return "bring_your_own/victim", BYO["victim"], int(encoder[len("random_seed") :])


def byo_encoder_files(wildcards):
    """The user's checkpoint or state-dict file behind an encoder (a random one: the victim's)."""
    _, spec, _ = byo_spec(wildcards.byo_encoder)
    return [spec[k] for k in ("checkpoint", "state_dict") if k in spec]


def byo_targets():
    return [
        f"{RESULTS}/tables/{BYO_TABLE}.{ext}" for ext in ("parquet", "csv", "md")
    ] + [f"{RESULTS}/checks/byo.ok"]


wildcard_constraints:
    byo_set="members|public",
    byo_encoder="|".join(BYO_ENCODERS),


rule byo_images:
    input:
        lambda wc: BYO[wc.byo_set]["path"],
    output:
        f"{BYO_DIR}/images/{{byo_set}}.pt",
    log:
        f"{RESULTS}/logs/byo/images/{{byo_set}}.log",
    benchmark:
        f"{BENCHMARKS}/byo_images/{{byo_set}}.tsv"
    conda:
        "../envs/mipipe.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        spec=lambda wc: json.loads(json.dumps(BYO[wc.byo_set], sort_keys=True)),
        where=lambda wc: f"bring_your_own/{wc.byo_set}",
    script:
        "../scripts/byo_images.py"


rule byo_embed:
    input:
        files=byo_encoder_files,
        members=f"{BYO_DIR}/images/members.pt",
        public=f"{BYO_DIR}/images/public.pt",
    output:
        f"{BYO_DIR}/embeddings/{{byo_encoder}}.parquet",
    log:
        f"{RESULTS}/logs/byo/embed/{{byo_encoder}}.log",
    benchmark:
        f"{BENCHMARKS}/byo_embed/{{byo_encoder}}.tsv"
    conda:
        "../envs/mipipe.yaml"
    threads: BYO.get("threads", 1)
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        where=lambda wc: byo_spec(wc.byo_encoder)[0],
        spec=lambda wc: json.loads(
            json.dumps(byo_spec(wc.byo_encoder)[1], sort_keys=True)
        ),
        random_seed=lambda wc: byo_spec(wc.byo_encoder)[2],
        batch_size=BYO.get("batch_size", 256),
        device=BYO.get("device", "auto"),
    script:
        "../scripts/byo_embed.py"


rule byo_detect:
    input:
        victim=f"{BYO_DIR}/embeddings/victim.parquet",
        suspects=expand(f"{BYO_DIR}/embeddings/{{e}}.parquet", e=BYO_SUSPECTS),
        random=expand(f"{BYO_DIR}/embeddings/{{e}}.parquet", e=BYO_RANDOM),
    output:
        parquet=f"{RESULTS}/tables/{BYO_TABLE}.parquet",
        csv=report(
            f"{RESULTS}/tables/{BYO_TABLE}.csv",
            caption="../report/byo_verdicts.rst",
            category="Bring your own encoders",
            labels={"table": BYO_TABLE, "format": "CSV"},
        ),
        md=f"{RESULTS}/tables/{BYO_TABLE}.md",
    log:
        f"{RESULTS}/logs/byo/detect.log",
    benchmark:
        f"{BENCHMARKS}/byo_detect/detect.tsv"
    conda:
        "../envs/mipipe.yaml"
    threads: BYO.get("threads", 1)
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        suspects=BYO_SUSPECTS,
        randoms=BYO_RANDOM,
        seed=BYO.get("seed", 0),
        detection={
            k: json.loads(json.dumps(BYO[k], sort_keys=True))
            for k in ("alpha", "control_alpha", "gmm", "mi_gap", "thresholds")
            if k in BYO
        },
    script:
        "../scripts/byo_detect.py"


# Runs last: fails the run (after the table is written) when a detector failed on a
# suspect, unless the config sets allow_failures: true.
rule byo_check:
    input:
        f"{RESULTS}/tables/{BYO_TABLE}.parquet",
    output:
        f"{RESULTS}/checks/byo.ok",
    log:
        f"{RESULTS}/logs/byo/check.log",
    conda:
        "../envs/mipipe.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        allow_failures=config.get("allow_failures", False),
    script:
        "../scripts/byo_check.py"
