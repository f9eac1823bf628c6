# Analyses (docs/method.md §4-§6): tidy tables from the store and the MUI and performance tables.
# Downstream only: no rule here feeds a generation or capture job. Helpers and settings:
# analyses_common.smk.


rule tabulate_experts:
    """Per-expert key rates, key-expert proportions and the top experts (by activation
    rate and by key rate) of every group."""
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
        r"""
        moemui experts {input:q} --thresholds {params.thresholds:q} --rho {params.rho:q} \
            --top {params.top:q} --out-experts {output.experts:q} \
            --out-key-experts {output.key_experts:q} --out-top {output.top:q} \
            --out-top-key {output.top_key:q} 2>{log:q}
        """


rule tabulate_robustness:
    """Threshold and method robustness from the MUI, key-expert and expert tables."""
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
        r"""
        moemui robustness --mui {input.mui:q} --key-experts {input.key_experts:q} \
            --experts {input.experts:q} --out {output:q} 2>{log:q}
        """


rule tabulate_mui_performance:
    """MUI against accuracy per model and task, and the per-family log fits."""
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
        r"""
        moemui mui-performance --mui {input.mui:q} --performance {input.performance:q} \
            --models {params.models:q} --out {output.table:q} --out-fits {output.fits:q} \
            2>{log:q}
        """


rule tabulate_diversity:
    """MUI of seeded random subsets of each task and of a mix of tasks, per model."""
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
        r"""
        moemui diversity {input:q} --thresholds {params.thresholds:q} \
            --sizes {params.sizes:q} --draws {params.draws:q} --seed {params.seed:q} \
            --out {output:q} 2>{log:q}
        """


rule ablate_neurons:
    """Accuracy of a model on a task with its key neurons zeroed, and with as many random
    neurons of the same experts zeroed, against a baseline."""
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
        load=get_load_args,
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
        r"""
        moemui --threads {threads:q} ablate --model-id {wildcards.model:q} \
            --source {params.source:q} --revision {params.revision:q} \
            --dtype {params.dtype:q} {params.load:q} --task-file {input.tasks:q} \
            --group {input.group:q} --variant {params.variant:q} \
            --thresholds {params.thresholds:q} --seeds {params.seeds:q} \
            --n-samples {params.n_samples:q} --max-new-tokens {params.max_new_tokens:q} \
            --batch-size {params.batch_size:q} --reasoning {params.reasoning:q} \
            --chat-template-kwargs {params.template_kwargs:q} --out {output:q} 2>{log:q}
        """


rule aggregate_ablation:
    """The ablation cells' tables as one, and their summary."""
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
        r"""
        moemui aggregate-ablation {input:q} --out {output.table:q} \
            --out-summary {output.summary:q} 2>{log:q}
        """
