rule recapture_mark:
    """A mark newer than a group left incomplete at its final path, so that the group is
    captured again (get_recapture_mark)."""
    output:
        touch(f"{RESULTS}/.moemui/recapture/{{model}}/{{task}}.{{stamp}}"),
    wildcard_constraints:
        stamp=r"\d+",
    localrule: True
    conda:
        "../../envs/tables.yaml"


# What a cell's store group depends on: the params of capture_scores, of each shard's
# capture_shard, and of gather_store (so that a change re-makes a gathered group).
CAPTURE_PARAMS = dict(
    source=get_model_source,
    revision=lambda wc: MODELS[wc.model]["revision"],
    dtype=lambda wc: MODELS[wc.model]["dtype"],
    load=get_load_args,
    variants=config["capture"]["variants"],
    target=config["capture"]["target"],
    max_threshold=config["capture"]["max_threshold"],
    batch_size=config["capture"]["batch_size"],
    invariant=(
        ["--batch-invariant"]
        if config["capture"]["batch_invariant"]
        else ["--no-batch-invariant"]
    ),
    keep=config["capture"]["keep"],
    tokens=config["capture"]["tokens"],
    attrs=get_store_attrs,
    version=MOEMUI_VERSION,
)


rule capture_scores:
    """Capture the contribution scores of a model's responses to an unsharded task into
    its store group."""
    input:
        model=get_model_dir,
        tasks=f"{RESULTS}/tasks/{{task}}.jsonl",
        responses=f"{RESULTS}/responses/{{model}}/{{task}}.jsonl",
        recapture=get_recapture_mark,
    output:
        directory(f"{RESULTS}/activations.zarr/{{model}}/{{task}}"),
    log:
        f"{RESULTS}/logs/capture_scores/{{model}}/{{task}}.log",
    wildcard_constraints:
        task=one_of(UNSHARDED),
    cache: "omit-software"
    conda:
        "../../envs/model.yaml"
    threads: 1
    resources:
        **MODEL_RESOURCES,
    params:
        **CAPTURE_PARAMS,
    shell:
        capture_command()


rule index_store:
    """Write the store's root and model group metadata over every captured group."""
    input:
        get_store_groups,
    output:
        f"{RESULTS}/activations.zarr/zarr.json",
        expand(f"{RESULTS}/activations.zarr/{{model}}/zarr.json", model=MODELS),
    log:
        f"{RESULTS}/logs/index_store.log",
    benchmark:
        f"{RESULTS}/benchmarks/index_store.tsv"
    conda:
        "../../envs/tables.yaml"
    params:
        version=MOEMUI_VERSION,
    shell:
        r"""
        moemui index-store {input:q} 2>{log:q}
        """
