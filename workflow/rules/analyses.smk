# Analyses (SPEC §4-§6): tidy tables from the store and the MUI and performance tables.
# Downstream only: no rule here feeds a generation or capture job. Helpers and settings:
# analyses_common.smk.


rule tabulate_experts:
    input:
        get_key_files,
    output:
        experts=report(
            f"{RESULTS}/tables/experts.csv",
            category="Tables",
            labels={"table": "experts (per expert)"},
        ),
        key_experts=report(
            f"{RESULTS}/tables/key_experts.csv",
            category="Tables",
            labels={"table": "key experts"},
        ),
        top=report(
            f"{RESULTS}/tables/top_experts.csv",
            category="Tables",
            labels={"table": "top experts by activation rate"},
        ),
        top_key=report(
            f"{RESULTS}/tables/top_key_experts.csv",
            category="Tables",
            labels={"table": "top experts by key rate"},
        ),
    log:
        f"{RESULTS}/logs/tabulate_experts.log",
    benchmark:
        f"{RESULTS}/benchmarks/tabulate_experts.tsv"
    conda:
        "../../envs/tables.yaml"
    params:
        thresholds=config["thresholds"],
        rho=ANALYSES["rho"],
        top=ANALYSES["top_experts"],
        version=MOEMUI_VERSION,
    shell:
        """
        moemui experts {input:q} --thresholds {params.thresholds} --rho {params.rho} \
            --top {params.top} --out-experts {output.experts:q} \
            --out-key-experts {output.key_experts:q} --out-top {output.top:q} \
            --out-top-key {output.top_key:q} 2>{log:q}
        """


rule tabulate_robustness:
    input:
        mui=f"{RESULTS}/tables/mui.csv",
        key_experts=f"{RESULTS}/tables/key_experts.csv",
        experts=f"{RESULTS}/tables/experts.csv",
    output:
        report(
            f"{RESULTS}/tables/robustness.csv",
            category="Tables",
            labels={"table": "robustness"},
        ),
    log:
        f"{RESULTS}/logs/tabulate_robustness.log",
    benchmark:
        f"{RESULTS}/benchmarks/tabulate_robustness.tsv"
    conda:
        "../../envs/tables.yaml"
    params:
        version=MOEMUI_VERSION,
    shell:
        """
        moemui robustness --mui {input.mui:q} --key-experts {input.key_experts:q} \
            --experts {input.experts:q} --out {output:q} 2>{log:q}
        """


rule tabulate_mui_performance:
    input:
        mui=f"{RESULTS}/tables/mui.csv",
        performance=f"{RESULTS}/tables/performance.csv",
    output:
        table=report(
            f"{RESULTS}/tables/mui_performance.csv",
            category="Tables",
            labels={"table": "MUI vs performance"},
        ),
        fits=report(
            f"{RESULTS}/tables/mui_performance_fits.csv",
            category="Tables",
            labels={"table": "MUI vs performance: log fits"},
        ),
    log:
        f"{RESULTS}/logs/tabulate_mui_performance.log",
    benchmark:
        f"{RESULTS}/benchmarks/tabulate_mui_performance.tsv"
    conda:
        "../../envs/tables.yaml"
    params:
        models=get_model_info(),
        version=MOEMUI_VERSION,
    shell:
        """
        moemui mui-performance --mui {input.mui:q} --performance {input.performance:q} \
            --models {params.models:q} --out {output.table:q} --out-fits {output.fits:q} \
            2>{log:q}
        """


rule tabulate_diversity:
    input:
        get_key_files,
    output:
        report(
            f"{RESULTS}/tables/diversity.csv",
            category="Tables",
            labels={"table": "data diversity"},
        ),
    log:
        f"{RESULTS}/logs/tabulate_diversity.log",
    benchmark:
        f"{RESULTS}/benchmarks/tabulate_diversity.tsv"
    conda:
        "../../envs/tables.yaml"
    params:
        thresholds=config["thresholds"],
        sizes=ANALYSES["diversity"]["sizes"],
        draws=ANALYSES["diversity"]["draws"],
        seed=ANALYSES["diversity"]["seed"],
        version=MOEMUI_VERSION,
    shell:
        """
        moemui diversity {input:q} --thresholds {params.thresholds} \
            --sizes {params.sizes} --draws {params.draws} --seed {params.seed} \
            --out {output:q} 2>{log:q}
        """


rule ablate_neurons:
    input:
        model=get_model_dir,
        tasks=f"{RESULTS}/tasks/{{task}}.jsonl",
        # the store group itself: its key neurons at any threshold up to max_threshold
        group=f"{RESULTS}/activations.zarr/{{model}}/{{task}}",
    output:
        f"{RESULTS}/tables/ablation/{{model}}/{{task}}.csv",
    log:
        f"{RESULTS}/logs/ablate_neurons/{{model}}/{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/ablate_neurons/{{model}}/{{task}}.tsv"
    conda:
        "../../envs/model.yaml"
    threads: 1
    resources:
        **MODEL_RESOURCES,
    params:
        source=get_model_source,
        revision=lambda wc: MODELS[wc.model]["revision"],
        dtype=lambda wc: MODELS[wc.model]["dtype"],
        load=get_load_flags,
        variant=ANALYSES["ablation"]["variant"],
        thresholds=ANALYSES["ablation"]["thresholds"],
        seeds=ANALYSES["ablation"]["seeds"],
        n_samples=ANALYSES["ablation"]["n_samples"],
        max_new_tokens=ANALYSES["ablation"]["max_new_tokens"],
        batch_size=config["generation"]["batch_size"],
        reasoning=lambda wc: MODELS[wc.model]["reasoning"],
        template_kwargs=get_template_kwargs,
        version=MOEMUI_VERSION,
    shell:
        """
        moemui --threads {threads} ablate --model-id {wildcards.model:q} \
            --source {params.source:q} --revision {params.revision:q} --dtype {params.dtype:q} \
            {params.load} --tasks {input.tasks:q} --group {input.group:q} --variant {params.variant:q} \
            --thresholds {params.thresholds} --seeds {params.seeds} \
            --n-samples {params.n_samples} --max-new-tokens {params.max_new_tokens} \
            --batch-size {params.batch_size} --reasoning {params.reasoning:q} \
            --chat-template-kwargs {params.template_kwargs:q} --out {output:q} 2>{log:q}
        """


rule aggregate_ablation:
    input:
        get_ablation_tables,
    output:
        table=report(
            f"{RESULTS}/tables/ablation.csv",
            category="Tables",
            labels={"table": "ablation"},
        ),
        summary=report(
            f"{RESULTS}/tables/ablation_summary.csv",
            category="Tables",
            labels={"table": "ablation: key drop against the random draws"},
        ),
    log:
        f"{RESULTS}/logs/aggregate_ablation.log",
    benchmark:
        f"{RESULTS}/benchmarks/aggregate_ablation.tsv"
    conda:
        "../../envs/tables.yaml"
    shell:
        """
        moemui aggregate-ablation {input:q} --out {output.table:q} \
            --out-summary {output.summary:q} 2>{log:q}
        """
