# What a cell's responses depend on: the params of generate_responses, of each shard's
# generate_shard, and of gather_responses (so that a change re-makes a gathered file).
GENERATE_PARAMS = dict(
    source=get_model_source,
    revision=lambda wc: MODELS[wc.model]["revision"],
    dtype=lambda wc: MODELS[wc.model]["dtype"],
    load=get_load_flags,
    batch_size=config["generation"]["batch_size"],
    max_new_tokens=get_max_new_tokens,
    reasoning=lambda wc: MODELS[wc.model]["reasoning"],
    template_kwargs=get_template_kwargs,
    imported=get_import_flag,
    version=MOEMUI_VERSION,
)


rule generate_responses:
    input:
        model=get_model_dir,
        tasks=f"{RESULTS}/tasks/{{task}}.jsonl",
        imported=get_imported_file,
    output:
        f"{RESULTS}/responses/{{model}}/{{task}}.jsonl",
    log:
        f"{RESULTS}/logs/generate_responses/{{model}}/{{task}}.log",
    wildcard_constraints:
        task=one_of(UNSHARDED),
    cache: "omit-software"
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
    shell:
        """
        moemui --threads {threads} generate --model-id {wildcards.model:q} \
            --source {params.source:q} --revision {params.revision:q} --dtype {params.dtype:q} \
            {params.load} \
            --tasks {input.tasks:q} --batch-size {params.batch_size} \
            --max-new-tokens {params.max_new_tokens} --reasoning {params.reasoning:q} \
            --chat-template-kwargs {params.template_kwargs:q} {params.imported} \
            --out {output:q} 2>{log:q}
        """
