rule derive_keys:
    """Read a store group's score arrays once: its key neurons at every threshold, the
    one input of every table of the group (MUI, experts, diversity; the ablation of a
    cell reads the group itself, for its thresholds up to capture.max_threshold)."""
    input:
        f"{RESULTS}/activations.zarr/{{model}}/{{task}}",
    output:
        f"{RESULTS}/keys/{{model}}/{{task}}.npz",
    log:
        f"{RESULTS}/logs/derive_keys/{{model}}/{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/derive_keys/{{model}}/{{task}}.tsv"
    conda:
        "../../envs/tables.yaml"
    params:
        thresholds=config["thresholds"],
        version=MOEMUI_VERSION,
    shell:
        r"""
        moemui keys --group {input:q} --thresholds {params.thresholds:q} \
            --out {output:q} 2>{log:q}
        """


rule compute_mui:
    """MUI of one store group at every threshold, from its key neurons."""
    input:
        f"{RESULTS}/keys/{{model}}/{{task}}.npz",
    output:
        f"{RESULTS}/tables/mui/{{model}}/{{task}}.csv",
    log:
        f"{RESULTS}/logs/compute_mui/{{model}}/{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/compute_mui/{{model}}/{{task}}.tsv"
    conda:
        "../../envs/tables.yaml"
    params:
        thresholds=config["thresholds"],
        correct_only=["--correct-only"] if config["correct_only"] else [],
        version=MOEMUI_VERSION,
    shell:
        r"""
        moemui mui --group {input:q} --thresholds {params.thresholds:q} \
            {params.correct_only:q} --out {output:q} 2>{log:q}
        """


rule aggregate_mui:
    """Concatenate the cells' MUI tables into one."""
    input:
        expand(
            f"{RESULTS}/tables/mui/{{cell}}.csv", cell=[f"{m}/{t}" for m, t in CELLS]
        ),
    output:
        report(
            f"{RESULTS}/tables/mui.csv",
            category="Tables",
            labels={"table": "MUI (per model, task, variant, threshold)"},
        ),
    log:
        f"{RESULTS}/logs/aggregate_mui.log",
    benchmark:
        f"{RESULTS}/benchmarks/aggregate_mui.tsv"
    conda:
        "../../envs/tables.yaml"
    shell:
        r"""
        moemui concat {input:q} --out {output:q} 2>{log:q}
        """


rule tabulate_performance:
    """Accuracy per model and task, from the responses."""
    input:
        expand(
            f"{RESULTS}/responses/{{cell}}.jsonl", cell=[f"{m}/{t}" for m, t in CELLS]
        ),
    output:
        report(
            f"{RESULTS}/tables/performance.csv",
            category="Tables",
            labels={"table": "performance (accuracy per model and task)"},
        ),
    log:
        f"{RESULTS}/logs/tabulate_performance.log",
    benchmark:
        f"{RESULTS}/benchmarks/tabulate_performance.tsv"
    conda:
        "../../envs/tables.yaml"
    params:
        # each responses file's model and task, in the order of the input
        models=[m for m, _ in CELLS],
        tasks=[t for _, t in CELLS],
        version=MOEMUI_VERSION,
    shell:
        r"""
        moemui performance {input:q} --model-ids {params.models:q} \
            --task-ids {params.tasks:q} --out {output:q} 2>{log:q}
        """


rule tabulate_trajectory:
    """MUI and accuracy along each checkpoint series, with their phases."""
    input:
        mui=f"{RESULTS}/tables/mui.csv",
        performance=f"{RESULTS}/tables/performance.csv",
    output:
        report(
            f"{RESULTS}/tables/trajectory.csv",
            category="Tables",
            labels={"table": "trajectories (MUI and accuracy per checkpoint)"},
        ),
    log:
        f"{RESULTS}/logs/tabulate_trajectory.log",
    benchmark:
        f"{RESULTS}/benchmarks/tabulate_trajectory.tsv"
    conda:
        "../../envs/tables.yaml"
    params:
        series=json.dumps(SERIES),
        version=MOEMUI_VERSION,
    shell:
        r"""
        moemui trajectory --mui {input.mui:q} --performance {input.performance:q} \
            --series {params.series:q} --out {output:q} 2>{log:q}
        """
