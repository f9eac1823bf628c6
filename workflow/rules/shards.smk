# Cells of a task with `shards: N` (N > 1): each shard, a contiguous range of the task's
# samples, is generated and captured by its own job (its own GPU, its own Slurm job);
# the gather jobs write the one responses file and store group that readers use, exactly
# as generate_responses and capture_scores write them for an unsharded task. A shard's
# files are temporary: removed once gathered, kept while a shard of the cell is missing,
# so a killed shard re-runs alone.


rule generate_shard:
    """Greedy responses of a model to one shard (a contiguous range of samples) of a
    sharded task."""
    input:
        model=get_model_dir,
        tasks=f"{RESULTS}/tasks/{{task}}.jsonl",
        imported=get_imported_file,
    output:
        temp(f"{RESULTS}/shards/{{shard}}/responses/{{model}}/{{task}}.jsonl"),
    log:
        f"{RESULTS}/logs/generate_shard/{{model}}/{{task}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/generate_shard/{{model}}/{{task}}/{{shard}}.tsv"
    wildcard_constraints:
        task=one_of(SHARDED),
        shard=r"\d+-of-\d+",
    conda:
        "../../envs/model.yaml"
    threads: 1
    resources:
        **MODEL_RESOURCES,
    params:
        **GENERATE_PARAMS,
        shard=shard_flag,
    shell:
        generate_command("--shard {params.shard:q}")


rule gather_responses:
    """Join the responses of a cell's shards into the one responses file."""
    input:
        tasks=f"{RESULTS}/tasks/{{task}}.jsonl",
        parts=get_response_shards,
    output:
        f"{RESULTS}/responses/{{model}}/{{task}}.jsonl",
    log:
        f"{RESULTS}/logs/gather_responses/{{model}}/{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/gather_responses/{{model}}/{{task}}.tsv"
    wildcard_constraints:
        task=one_of(SHARDED),
    conda:
        "../../envs/tables.yaml"
    params:
        **GENERATE_PARAMS,
    shell:
        r"""
        moemui gather-responses --task-file {input.tasks:q} --parts {input.parts:q} \
            --out {output:q} 2>{log:q}
        """


rule capture_shard:
    """Capture the contribution scores of one shard of a sharded task's responses."""
    input:
        model=get_model_dir,
        tasks=f"{RESULTS}/tasks/{{task}}.jsonl",
        responses=f"{RESULTS}/responses/{{model}}/{{task}}.jsonl",
    output:
        temp(
            directory(
                f"{RESULTS}/shards/{{shard}}/activations.zarr/{{model}}/{{task}}"
            )
        ),
    log:
        f"{RESULTS}/logs/capture_shard/{{model}}/{{task}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/capture_shard/{{model}}/{{task}}/{{shard}}.tsv"
    wildcard_constraints:
        task=one_of(SHARDED),
        shard=r"\d+-of-\d+",
    conda:
        "../../envs/model.yaml"
    threads: 1
    resources:
        **MODEL_RESOURCES,
    params:
        **CAPTURE_PARAMS,
        shard=shard_flag,
    shell:
        capture_command("--shard {params.shard:q}")


rule gather_store:
    """Join the store groups of a cell's shards into its one store group."""
    input:
        tasks=f"{RESULTS}/tasks/{{task}}.jsonl",
        parts=get_capture_shards,
        recapture=get_recapture_mark,
    output:
        directory(f"{RESULTS}/activations.zarr/{{model}}/{{task}}"),
    log:
        f"{RESULTS}/logs/gather_store/{{model}}/{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/gather_store/{{model}}/{{task}}.tsv"
    wildcard_constraints:
        task=one_of(SHARDED),
    conda:
        "../../envs/tables.yaml"
    params:
        **CAPTURE_PARAMS,
    shell:
        r"""
        moemui gather-store --task-file {input.tasks:q} --parts {input.parts:q} \
            --out {output:q} 2>{log:q}
        """
