# Synthetic benchmark: samples with known MI -> estimates -> tables -> figures.
#
# Resources (threads, mem_mb, runtime in minutes) are sized from the benchmark files that
# every job writes to results/benchmarks/ (seconds, max_rss), measured on the default config
# and configs/paper.yaml, with margins of 2.5x or more (README.md, "Resources").
# Site-specific settings (partitions, accounts) belong in a profile, not here.


rule sample:
    output:
        f"{RESULTS}/samples/{{dataset}}/seed{{seed}}.parquet",
    log:
        f"{RESULTS}/logs/sample/{{dataset}}/seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/sample/{{dataset}}/seed{{seed}}.tsv"
    conda:
        "../envs/mipipe.yaml"
    threads: 1
    resources:
        # measured: 10-16 s, max_rss up to 1043 MB (importing PyTorch dominates)
        mem_mb=2000,
        runtime=10,
    params:
        dataset=dataset_params,
    script:
        "../scripts/sample.py"


# one task of the benchmark suite (sweep: task; mipipe.tasks), at the largest n any task
# sweep uses; cached per task and seed like the datasets' samples
rule sample_task:
    output:
        f"{RESULTS}/samples/tasks/{{task}}/seed{{seed}}.parquet",
    log:
        f"{RESULTS}/logs/sample_task/{{task}}/seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/sample_task/{{task}}/seed{{seed}}.tsv"
    wildcard_constraints:
        task=TASK_NAMES,
    conda:
        "../envs/mipipe.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        n=lambda wc: TASK_N[wc.task],
    script:
        "../scripts/sample_task.py"


# nearest-neighbour estimators (knn, ksg1, ksg2); the neural ones are estimate_neural's.
# Input: the experiment's dataset sample, or (sweep: task) one sample per task.
rule estimate:
    input:
        unpack(estimate_inputs),
    output:
        f"{RESULTS}/estimates/{{experiment}}/{{estimator}}/seed{{seed}}.parquet",
    log:
        f"{RESULTS}/logs/estimate/{{experiment}}/{{estimator}}/seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/estimate/{{experiment}}/{{estimator}}/seed{{seed}}.tsv"
    wildcard_constraints:
        estimator=NN_NAMES,
    conda:
        "../envs/mipipe.yaml"
    threads: config.get("threads", 2)
    resources:
        # measured: 2-38 s, max_rss up to 483 MB (default and paper configs, n <= 10^4)
        mem_mb=1000,
        runtime=estimate_runtime,
    params:
        run=estimate_params,
        estimator=lambda wc: wc.estimator,
    script:
        "../scripts/estimate.py"


# the estimators past the kNN collapse (cca, sliced, ksliced, latent; issue 14): the same
# rows plus true_target_nats, the sliced estimators' own truth. Input as for estimate.
rule estimate_scalable:
    input:
        unpack(estimate_inputs),
    output:
        f"{RESULTS}/estimates/{{experiment}}/{{estimator}}/seed{{seed}}.parquet",
    log:
        f"{RESULTS}/logs/estimate/{{experiment}}/{{estimator}}/seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/estimate_scalable/{{experiment}}/{{estimator}}/seed{{seed}}.tsv"
    wildcard_constraints:
        estimator=SCALABLE_NAMES,
    conda:
        "../envs/mipipe.yaml"
    threads: config.get("threads", 2)
    resources:
        mem_mb=2000,
        runtime=scalable_runtime,
    params:
        run=estimate_params,
        estimator=lambda wc: wc.estimator,
    script:
        "../scripts/estimate.py"


# neural estimators (mine, infonce, nwj): the same rows, plus the per-step training traces;
# a tqdm bar with the current estimate goes to the log
rule estimate_neural:
    input:
        unpack(estimate_inputs),
    output:
        estimates=f"{RESULTS}/estimates/{{experiment}}/{{estimator}}/seed{{seed}}.parquet",
        traces=f"{RESULTS}/traces/{{experiment}}/{{estimator}}/seed{{seed}}.parquet",
    log:
        f"{RESULTS}/logs/estimate/{{experiment}}/{{estimator}}/seed{{seed}}.log",
    benchmark:
        f"{BENCHMARKS}/estimate_neural/{{experiment}}/{{estimator}}/seed{{seed}}.tsv"
    wildcard_constraints:
        estimator=NEURAL_NAMES,
    conda:
        "../envs/mipipe.yaml"
    threads: config.get("neural_threads", 1)
    resources:
        # measured: see neural_runtime (rules/common.smk)
        mem_mb=2000,
        runtime=neural_runtime,
    params:
        run=estimate_params,
        estimator=lambda wc: wc.estimator,
    script:
        "../scripts/estimate_neural.py"


rule aggregate:
    input:
        estimate_files,
    output:
        parquet=f"{RESULTS}/tables/{{experiment}}.parquet",
        csv=report(
            f"{RESULTS}/tables/{{experiment}}.csv",
            caption="../report/table.rst",
            category="Tables",
            subcategory=sweep_name,
            labels=experiment_labels("CSV", table="output"),
        ),
        md=f"{RESULTS}/tables/{{experiment}}.md",
    log:
        f"{RESULTS}/logs/aggregate/{{experiment}}.log",
    benchmark:
        f"{BENCHMARKS}/aggregate/{{experiment}}.tsv"
    # only configured experiments: tables/eps_sensitivity.* is eps_table's
    wildcard_constraints:
        experiment=EXPERIMENT_NAMES,
    conda:
        "../envs/mipipe.yaml"
    threads: 1
    resources:
        # measured: 1-4 s, max_rss 285-288 MB
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/aggregate.py"


rule figure:
    input:
        f"{RESULTS}/tables/{{experiment}}.parquet",
    output:
        png=report(
            f"{RESULTS}/figures/{{experiment}}.png",
            caption="../report/figure.rst",
            category="Figures",
            subcategory=sweep_name,
            labels=experiment_labels("PNG", table="input"),
        ),
        pdf=report(
            f"{RESULTS}/figures/{{experiment}}.pdf",
            caption="../report/figure.rst",
            category="Figures",
            subcategory=sweep_name,
            labels=experiment_labels("PDF", table="input"),
        ),
    log:
        f"{RESULTS}/logs/figure/{{experiment}}.log",
    benchmark:
        f"{BENCHMARKS}/figure/{{experiment}}.tsv"
    # only configured experiments: figures/<experiment>_convergence.* is convergence's
    wildcard_constraints:
        experiment=EXPERIMENT_NAMES,
    conda:
        "../envs/mipipe.yaml"
    threads: 1
    resources:
        # measured: 4-8 s, max_rss 336-338 MB
        mem_mb=1000,
        runtime=5,
    params:
        sweep=lambda wc: EXPERIMENTS[wc.experiment]["sweep"],
        title=lambda wc: EXPERIMENTS[wc.experiment].get("title", wc.experiment),
        tasks=lambda wc: EXPERIMENTS[wc.experiment].get("tasks"),
    script:
        "../scripts/figure.py"


# training curves of an experiment's neural estimators: estimate against training step
rule convergence:
    input:
        trace_files,
    output:
        png=report(
            f"{RESULTS}/figures/{{experiment}}_convergence.png",
            caption="../report/convergence.rst",
            category="Figures",
            subcategory="training curves",
            labels=convergence_labels("PNG"),
        ),
        pdf=report(
            f"{RESULTS}/figures/{{experiment}}_convergence.pdf",
            caption="../report/convergence.rst",
            category="Figures",
            subcategory="training curves",
            labels=convergence_labels("PDF"),
        ),
    log:
        f"{RESULTS}/logs/convergence/{{experiment}}.log",
    benchmark:
        f"{BENCHMARKS}/convergence/{{experiment}}.tsv"
    wildcard_constraints:
        experiment=NEURAL_EXPERIMENT_NAMES,
    conda:
        "../envs/mipipe.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        sweep=lambda wc: EXPERIMENTS[wc.experiment]["sweep"],
        title=lambda wc: EXPERIMENTS[wc.experiment].get("title", wc.experiment),
    script:
        "../scripts/convergence.py"


rule eps_table:
    input:
        expand(f"{RESULTS}/tables/{{experiment}}.parquet", experiment=eps_experiments()),
    output:
        parquet=f"{RESULTS}/tables/eps_sensitivity.parquet",
        csv=report(
            f"{RESULTS}/tables/eps_sensitivity.csv",
            caption="../report/eps_table.rst",
            category="Tables",
            subcategory=SWEEP_NAMES["eps"],
            labels=eps_table_labels,
        ),
        md=f"{RESULTS}/tables/eps_sensitivity.md",
    log:
        f"{RESULTS}/logs/eps_table.log",
    benchmark:
        f"{BENCHMARKS}/eps_table/eps_sensitivity.tsv"
    conda:
        "../envs/mipipe.yaml"
    threads: 1
    resources:
        # measured: 3 s, max_rss 285 MB
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/eps_table.py"


rule failures:
    input:
        all_estimate_files(),
    output:
        parquet=f"{RESULTS}/tables/failures.parquet",
        csv=f"{RESULTS}/tables/failures.csv",
        md=f"{RESULTS}/tables/failures.md",
    log:
        f"{RESULTS}/logs/failures.log",
    benchmark:
        f"{BENCHMARKS}/failures/failures.tsv"
    conda:
        "../envs/mipipe.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        "../scripts/failures.py"


# Runs last: fails the run (after every table and figure is written) when an estimate
# failed, unless the config sets allow_failures: true.
rule check_failures:
    input:
        failures=f"{RESULTS}/tables/failures.parquet",
        outputs=synthetic_outputs(),
    output:
        f"{RESULTS}/checks/synthetic.ok",
    log:
        f"{RESULTS}/logs/check_failures.log",
    benchmark:
        f"{BENCHMARKS}/check_failures/synthetic.tsv"
    conda:
        "../envs/mipipe.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        allow_failures=config.get("allow_failures", False),
    script:
        "../scripts/check_failures.py"
