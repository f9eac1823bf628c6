# Cells of a task with `shards: N` (N > 1): each shard, a contiguous range of the task's
# samples, is generated and captured by its own job (its own GPU, its own Slurm job);
# the gather jobs write the one responses file and store group that readers use, exactly
# as generate_responses and capture_scores write them for an unsharded task. A shard's
# files are temporary: removed once gathered, kept while a shard of the cell is missing,
# so a killed shard re-runs alone.


rule generate_shard:
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
        generate_shell("--shard {params.shard} ")


rule gather_responses:
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
        """
        moemui gather-responses --tasks {input.tasks:q} --parts {input.parts:q} \
            --out {output:q} 2>{log:q}
        """


rule capture_shard:
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
        capture_shell("--shard {params.shard} ")


rule gather_store:
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
        """
        moemui gather-store --tasks {input.tasks:q} --parts {input.parts:q} \
            --out {output:q} 2>{log:q}
        """
