# Dataset inference rules (helpers in rules/inference_common.smk, see its header).


rule di_data:
    output:
        f"{DI}/data/{{source}}.pt",
    log:
        f"{RESULTS}/logs/inference/data/{{source}}.log",
    benchmark:
        f"{BENCHMARKS}/di_data/{{source}}.tsv"
    conda:
        "../envs/mipipe.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        spec=lambda wc: DI_SOURCES[wc.source],
        data=INF.get("data", {}),
    script:
        "../scripts/di_data.py"


rule di_victim:
    input:
        data=di_data(INF["victim"]["data"]),
    output:
        f"{DI}/encoders/victim_tau{{tau}}.pt",
    log:
        f"{RESULTS}/logs/inference/victim_tau{{tau}}.log",
    benchmark:
        f"{BENCHMARKS}/di_victim/victim_tau{{tau}}.tsv"
    conda:
        "../envs/mipipe.yaml"
    threads: DI_THREADS
    resources:
        mem_mb=16000,
        runtime=24 * 60,
        gpu=di_gpu,
    params:
        rows=INF["victim"]["data"].get("rows"),
        encoder=INF["encoder"],
        head=INF["head"],
        recipe=INF["simclr"],
        temperature=lambda wc: float(wc.tau),
        seed=INF["victim"].get("seed", 0),
        device=DI_DEVICE,
        role="victim",
    script:
        "../scripts/di_simclr.py"


rule di_independent:
    input:
        data=di_data(INF["independent"]["data"]),
    output:
        f"{DI}/encoders/independent.pt",
    log:
        f"{RESULTS}/logs/inference/independent.log",
    benchmark:
        f"{BENCHMARKS}/di_independent/independent.tsv"
    conda:
        "../envs/mipipe.yaml"
    threads: DI_THREADS
    resources:
        mem_mb=16000,
        runtime=24 * 60,
        gpu=di_gpu,
    params:
        rows=INF["independent"]["data"].get("rows"),
        encoder=INF["encoder"],
        head=INF["head"],
        recipe=INF["simclr"],
        temperature=float(INF["independent"]["temperature"]),
        seed=INF["independent"].get("seed", 0),
        device=DI_DEVICE,
        role="independent",
    script:
        "../scripts/di_simclr.py"


rule di_steal:
    input:
        victim=di_ckpt(DI_TARGET),
        queries=di_data(INF["stealing"]["queries"]),
    output:
        f"{DI}/encoders/stolen_{{head}}.pt",
    log:
        f"{RESULTS}/logs/inference/stolen_{{head}}.log",
    benchmark:
        f"{BENCHMARKS}/di_steal/stolen_{{head}}.tsv"
    conda:
        "../envs/mipipe.yaml"
    threads: DI_THREADS
    resources:
        mem_mb=16000,
        runtime=12 * 60,
        gpu=di_gpu,
    params:
        rows=INF["stealing"]["queries"].get("rows"),
        n_queries=INF["stealing"]["n_queries"],
        encoder=INF["encoder"],
        head=INF["head"],
        variant=lambda wc: wc.head,
        recipe={
            k: INF["stealing"].get(k, d)
            for k, d in [
                ("temperature", 0.1),
                ("epochs", None),
                ("batch_size", None),
                ("lr", None),
                ("weight_decay", None),
                ("shuffle", True),
            ]
        },
        seed=INF["stealing"].get("seed", 0),
        device=DI_DEVICE,
    script:
        "../scripts/di_steal.py"


rule di_random:
    output:
        f"{DI}/encoders/random_seed{{seed}}.pt",
    log:
        f"{RESULTS}/logs/inference/random_seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/di_random/random_seed{{seed}}.tsv"
    conda:
        "../envs/mipipe.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        encoder=INF["encoder"],
        seed=lambda wc: int(wc.seed),
    script:
        "../scripts/di_random.py"


rule di_copy:
    input:
        di_ckpt(DI_TARGET),
    output:
        f"{DI}/encoders/copy.pt",
    log:
        f"{RESULTS}/logs/inference/copy.log",
    benchmark:
        f"{BENCHMARKS}/di_copy/copy.tsv"
    conda:
        "../envs/mipipe.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    script:
        "../scripts/di_copy.py"


rule di_linear_eval:
    input:
        ckpt=f"{DI}/encoders/{{encoder}}.pt",
        data=sorted({p for sets in di_eval_sets().values() for p, _ in sets.values()}),
    output:
        f"{DI}/linear_eval/{{encoder}}.parquet",
    log:
        f"{RESULTS}/logs/inference/linear_eval/{{encoder}}.log",
    benchmark:
        f"{BENCHMARKS}/di_linear_eval/{{encoder}}.tsv"
    conda:
        "../envs/mipipe.yaml"
    threads: DI_THREADS
    resources:
        mem_mb=16000,
        runtime=120,
        gpu=di_gpu,
    params:
        eval_sets=di_eval_sets(),
        C=INF["linear_eval"].get("C", 1.0),
        max_iter=INF["linear_eval"].get("max_iter", 1000),
        standardise=INF["linear_eval"].get("standardise", False),
        device=DI_DEVICE,
    script:
        "../scripts/di_linear_eval.py"


rule di_embed:
    input:
        ckpt=f"{DI}/encoders/{{encoder}}.pt",
        data=di_data(INF["embeddings"]["data"]),
    output:
        f"{DI}/embeddings/{{encoder}}.parquet",
    log:
        f"{RESULTS}/logs/inference/embed/{{encoder}}.log",
    benchmark:
        f"{BENCHMARKS}/di_embed/{{encoder}}.tsv"
    conda:
        "../envs/mipipe.yaml"
    threads: DI_THREADS
    resources:
        mem_mb=8000,
        runtime=30,
        gpu=di_gpu,
    params:
        rows=INF["embeddings"]["data"].get("rows"),
        n=max(INF["embeddings"]["n"]),
        device=DI_DEVICE,
    script:
        "../scripts/di_embed.py"


# One job for every (reference, other, N): the kNN MI and its permutations take seconds
# at the default scale; at the paper's (N = 8000, d = 512) budget minutes per pair.
rule di_mi:
    input:
        ref=f"{DI}/embeddings/{DI_TARGET}.parquet",
        others=[path for path, _, _ in di_mi_others().values()],
    output:
        f"{DI}/mi.parquet",
    log:
        f"{RESULTS}/logs/inference/mi.log",
    benchmark:
        f"{BENCHMARKS}/di_mi/mi.tsv"
    conda:
        "../envs/mipipe.yaml"
    threads: DI_THREADS
    resources:
        mem_mb=16000,
        runtime=12 * 60,
    params:
        reference=DI_TARGET,
        others=di_mi_others(),
        n_values=INF["embeddings"]["n"],
        mi={
            "estimator": "knn",
            "k": 1,
            "p": 2,
            "n_permutations": 99,
            "seed": 0,
            **INF.get("mi", {}),
        },
    script:
        "../scripts/di_mi.py"


rule di_tables:
    input:
        linear_eval=expand(
            f"{DI}/linear_eval/{{encoder}}.parquet", encoder=DI_EVALUATED
        ),
        mi=f"{DI}/mi.parquet",
    output:
        **{
            f"{t}_{ext}": (
                report(
                    f"{RESULTS}/tables/{t}.{ext}",
                    caption="../report/inference_tables.rst",
                    category="Dataset inference",
                    labels={"table": t, "format": "CSV"},
                )
                if ext == "csv"
                else f"{RESULTS}/tables/{t}.{ext}"
            )
            for t in DI_TABLES
            for ext in ("parquet", "csv", "md")
        },
    log:
        f"{RESULTS}/logs/inference/tables.log",
    benchmark:
        f"{BENCHMARKS}/di_tables/tables.tsv"
    conda:
        "../envs/mipipe.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        target=DI_TARGET,
    script:
        "../scripts/di_tables.py"


# ---------------------------------------------------------------- calibrated detection
# (inference.detection; issue 11): more encoders per role, their representations of the
# members and public images, one verdict per suspect and detector, error rates per detector.


use rule di_victim as di_victim_seed with:
    output:
        f"{DI}/encoders/victim_tau{{tau}}_seed{{seed}}.pt",
    log:
        f"{RESULTS}/logs/inference/victim_tau{{tau}}_seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/di_victim_seed/victim_tau{{tau}}_seed{{seed}}.tsv"
    params:
        seed=lambda wc: int(wc.seed),


use rule di_independent as di_independent_seed with:
    output:
        f"{DI}/encoders/independent_seed{{seed}}.pt",
    log:
        f"{RESULTS}/logs/inference/independent_seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/di_independent_seed/independent_seed{{seed}}.tsv"
    params:
        seed=lambda wc: int(wc.seed),


use rule di_steal as di_steal_seed with:
    output:
        f"{DI}/encoders/stolen_{{head}}_seed{{seed}}.pt",
    log:
        f"{RESULTS}/logs/inference/stolen_{{head}}_seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/di_steal_seed/stolen_{{head}}_seed{{seed}}.tsv"
    params:
        seed=lambda wc: int(wc.seed),


rule di_represent:
    input:
        ckpt=f"{DI}/encoders/{{encoder}}.pt",
        members=di_data(DET["members"]) if DET else [],
        public=di_data(DET["public"]) if DET else [],
    output:
        f"{DI}/representations/{{encoder}}.parquet",
    log:
        f"{RESULTS}/logs/inference/represent/{{encoder}}.log",
    benchmark:
        f"{BENCHMARKS}/di_represent/{{encoder}}.tsv"
    conda:
        "../envs/mipipe.yaml"
    threads: DI_THREADS
    resources:
        mem_mb=8000,
        runtime=30,
        gpu=di_gpu,
    params:
        members_rows=DET["members"].get("rows") if DET else None,
        public_rows=DET["public"].get("rows") if DET else None,
        device=DI_DEVICE,
    script:
        "../scripts/di_represent.py"


rule di_detection:
    input:
        reps=[f"{DI}/representations/{e}.parquet" for e in di_detected()] if DET else [],
    output:
        **{
            f"{t}_{ext}": (
                report(
                    f"{RESULTS}/tables/{t}.{ext}",
                    caption="../report/di_detection.rst",
                    category="Dataset inference",
                    labels={"table": t, "format": "CSV"},
                )
                if ext == "csv"
                else f"{RESULTS}/tables/{t}.{ext}"
            )
            for t in DI_DETECTION_TABLES
            for ext in ("parquet", "csv", "md")
        },
        png=report(
            f"{RESULTS}/figures/di_detection.png",
            caption="../report/di_detection_figure.rst",
            category="Dataset inference",
            labels={"figure": "di_detection"},
        ),
        pdf=f"{RESULTS}/figures/di_detection.pdf",
    log:
        f"{RESULTS}/logs/inference/detection.log",
    benchmark:
        f"{BENCHMARKS}/di_detection/detection.tsv"
    conda:
        "../envs/mipipe.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        encoders=di_detected(),
        target=DI_TARGET,
        detection=(
            di_canon(
                {
                    k: DET.get(k)
                    for k in (
                        "alpha",
                        "control_alpha",
                        "detectors",
                        "gmm",
                        "mi_gap",
                        "thresholds",
                    )
                }
            )
            if DET
            else {}
        ),
    script:
        "../scripts/di_detection.py"


# Runs last: fails the run (after the tables are written) when an MI estimate of the
# dataset-inference stage failed, unless allow_failures: true (as check_failures does for
# the synthetic benchmark; the same script and switch).
rule check_inference_failures:
    input:
        failures=f"{DI}/mi.parquet",
        outputs=expand(
            f"{RESULTS}/tables/{{table}}.{{ext}}",
            table=DI_TABLES,
            ext=["parquet", "csv", "md"],
        ),
    output:
        f"{RESULTS}/checks/inference.ok",
    log:
        f"{RESULTS}/logs/check_inference_failures.log",
    benchmark:
        f"{BENCHMARKS}/check_inference_failures/inference.tsv"
    conda:
        "../envs/mipipe.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        allow_failures=config.get("allow_failures", False),
        table=lambda w, input: input.failures,
    script:
        "../scripts/check_failures.py"
