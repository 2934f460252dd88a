# Synthetic benchmark: samples with known MI -> estimates -> tables -> figures.


rule sample:
    output:
        f"{RESULTS}/samples/{{dataset}}/seed{{seed}}.parquet",
    params:
        dataset=dataset_params,
    log:
        f"{RESULTS}/logs/sample/{{dataset}}/seed{{seed}}.log",
    conda:
        "../envs/mipipe.yaml"
    script:
        "../scripts/sample.py"


rule estimate:
    input:
        sample=lambda wc: f"{RESULTS}/samples/{EXPERIMENTS[wc.experiment]['dataset']}/seed{wc.seed}.parquet",
    output:
        f"{RESULTS}/estimates/{{experiment}}/{{estimator}}/seed{{seed}}.parquet",
    params:
        run=estimate_params,
        estimator=lambda wc: wc.estimator,
    threads: config.get("threads", 2)
    log:
        f"{RESULTS}/logs/estimate/{{experiment}}/{{estimator}}/seed{{seed}}.log",
    conda:
        "../envs/mipipe.yaml"
    script:
        "../scripts/estimate.py"


rule aggregate:
    input:
        estimate_files,
    output:
        parquet=f"{RESULTS}/tables/{{experiment}}.parquet",
        csv=f"{RESULTS}/tables/{{experiment}}.csv",
        md=f"{RESULTS}/tables/{{experiment}}.md",
    log:
        f"{RESULTS}/logs/aggregate/{{experiment}}.log",
    conda:
        "../envs/mipipe.yaml"
    script:
        "../scripts/aggregate.py"


rule figure:
    input:
        f"{RESULTS}/tables/{{experiment}}.parquet",
    output:
        png=f"{RESULTS}/figures/{{experiment}}.png",
        pdf=f"{RESULTS}/figures/{{experiment}}.pdf",
    params:
        sweep=lambda wc: EXPERIMENTS[wc.experiment]["sweep"],
        title=lambda wc: EXPERIMENTS[wc.experiment].get("title", wc.experiment),
    log:
        f"{RESULTS}/logs/figure/{{experiment}}.log",
    conda:
        "../envs/mipipe.yaml"
    script:
        "../scripts/figure.py"


rule eps_table:
    input:
        expand(f"{RESULTS}/tables/{{experiment}}.parquet", experiment=eps_experiments()),
    output:
        parquet=f"{RESULTS}/tables/eps_sensitivity.parquet",
        csv=f"{RESULTS}/tables/eps_sensitivity.csv",
        md=f"{RESULTS}/tables/eps_sensitivity.md",
    log:
        f"{RESULTS}/logs/eps_table.log",
    conda:
        "../envs/mipipe.yaml"
    script:
        "../scripts/eps_table.py"
