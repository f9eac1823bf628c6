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
        gpu=get_model_resource("gpu"),
        gpu_model=get_model_resource("gpu_model"),
        mem_mb=get_model_resource("mem_mb"),
        runtime=get_model_resource("runtime"),
        cpus_per_task=get_model_resource("cpus_per_task"),
    params:
        **GENERATE_PARAMS,
        shard=shard_flag,
    shell:
        """
        moemui --threads {threads} generate --model-id {wildcards.model:q} \
            --source {params.source:q} --revision {params.revision:q} --dtype {params.dtype:q} \
            {params.load} \
            --tasks {input.tasks:q} --batch-size {params.batch_size} \
            --max-new-tokens {params.max_new_tokens} --reasoning {params.reasoning:q} \
            --chat-template-kwargs {params.template_kwargs:q} {params.imported} \
            --shard {params.shard} --out {output:q} 2>{log:q}
        """


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
        gpu=get_model_resource("gpu"),
        gpu_model=get_model_resource("gpu_model"),
        mem_mb=get_model_resource("mem_mb"),
        runtime=get_model_resource("runtime"),
        cpus_per_task=get_model_resource("cpus_per_task"),
    params:
        **CAPTURE_PARAMS,
        shard=shard_flag,
    shell:
        """
        moemui --threads {threads} capture --model-id {wildcards.model:q} \
            --source {params.source:q} --revision {params.revision:q} --dtype {params.dtype:q} \
            {params.load} \
            --task-id {wildcards.task:q} --tasks {input.tasks:q} \
            --responses {input.responses:q} --variants {params.variants:q} \
            --target {params.target:q} --max-threshold {params.max_threshold} \
            --batch-size {params.batch_size} {params.invariant} --keep {params.keep:q} \
            --tokens {params.tokens:q} \
            --attrs {params.attrs:q} \
            --shard {params.shard} --out {output:q} 2>{log:q}
        """


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
