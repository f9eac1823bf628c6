rule derive_keys:
    """Read a store group's score arrays once: its key neurons at every threshold, the
    one input of every table of the group (MUI, experts, diversity, ablation)."""
    input:
        "results/activations.zarr/{model}/{task}",
    output:
        "results/keys/{model}/{task}.npz",
    log:
        "results/logs/derive_keys/{model}/{task}.log",
    benchmark:
        "results/benchmarks/derive_keys/{model}/{task}.tsv"
    conda:
        "../../envs/tables.yaml"
    params:
        thresholds=config["thresholds"],
        version=MOEMUI_VERSION,
    shell:
        """
        moemui keys --group {input:q} --thresholds {params.thresholds} \
            --out {output:q} 2>{log:q}
        """


rule compute_mui:
    input:
        "results/keys/{model}/{task}.npz",
    output:
        "results/tables/mui/{model}/{task}.csv",
    log:
        "results/logs/compute_mui/{model}/{task}.log",
    benchmark:
        "results/benchmarks/compute_mui/{model}/{task}.tsv"
    conda:
        "../../envs/tables.yaml"
    params:
        thresholds=config["thresholds"],
        correct_only="--correct-only" if config["correct_only"] else "",
        version=MOEMUI_VERSION,
    shell:
        """
        moemui mui --group {input:q} --thresholds {params.thresholds} \
            {params.correct_only} --out {output:q} 2>{log:q}
        """


rule aggregate_mui:
    input:
        expand("results/tables/mui/{cell}.csv", cell=[f"{m}/{t}" for m, t in CELLS]),
    output:
        "results/tables/mui.csv",
    log:
        "results/logs/aggregate_mui.log",
    benchmark:
        "results/benchmarks/aggregate_mui.tsv"
    conda:
        "../../envs/tables.yaml"
    shell:
        """
        moemui concat {input:q} --out {output:q} 2>{log:q}
        """


rule tabulate_performance:
    input:
        expand("results/responses/{cell}.jsonl", cell=[f"{m}/{t}" for m, t in CELLS]),
    output:
        "results/tables/performance.csv",
    log:
        "results/logs/tabulate_performance.log",
    benchmark:
        "results/benchmarks/tabulate_performance.tsv"
    conda:
        "../../envs/tables.yaml"
    params:
        version=MOEMUI_VERSION,
    shell:
        """
        moemui performance {input:q} --out {output:q} 2>{log:q}
        """


rule tabulate_trajectory:
    input:
        mui="results/tables/mui.csv",
        performance="results/tables/performance.csv",
    output:
        "results/tables/trajectory.csv",
    log:
        "results/logs/tabulate_trajectory.log",
    benchmark:
        "results/benchmarks/tabulate_trajectory.tsv"
    conda:
        "../../envs/tables.yaml"
    params:
        series=json.dumps(SERIES),
        version=MOEMUI_VERSION,
    shell:
        """
        moemui trajectory --mui {input.mui:q} --performance {input.performance:q} \
            --series {params.series:q} --out {output:q} 2>{log:q}
        """
