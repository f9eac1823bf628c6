# What a cell's responses depend on: the params of generate_responses, of each shard's
# generate_shard, and of gather_responses (so that a change re-makes a gathered file).
GENERATE_PARAMS = dict(
    source=get_model_source,
    revision=lambda wc: MODELS[wc.model]["revision"],
    dtype=lambda wc: MODELS[wc.model]["dtype"],
    load=get_load_args,
    batch_size=config["generation"]["batch_size"],
    max_new_tokens=get_max_new_tokens,
    reasoning=lambda wc: MODELS[wc.model]["reasoning"],
    template_kwargs=get_template_kwargs,
    imported=get_import_args,
    version=MOEMUI_VERSION,
)


rule generate_responses:
    """Greedy responses of a model to an unsharded task (or its responses made elsewhere,
    imported), scored against the references."""
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
        **MODEL_RESOURCES,
    params:
        **GENERATE_PARAMS,
    shell:
        generate_command()
