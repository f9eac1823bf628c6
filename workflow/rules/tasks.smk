rule make_task:
    """Materialise a config task's samples as JSONL."""
    input:
        get_task_file,
    output:
        f"{RESULTS}/tasks/{{task}}.jsonl",
    log:
        f"{RESULTS}/logs/make_task/{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/make_task/{{task}}.tsv"
    conda:
        "../../envs/tables.yaml"
    params:
        spec=lambda wc: json.dumps(task_spec(wc.task), sort_keys=True),
        version=MOEMUI_VERSION,
    shell:
        r"""
        moemui make-task --spec {params.spec:q} --out {output:q} 2>{log:q}
        """
