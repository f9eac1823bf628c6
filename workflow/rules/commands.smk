# The model rules' commands and flag lists (responses.smk, shards.smk, capture.smk,
# analyses.smk): every value a quoted format of the rule, every list a list.


def get_load_args(wildcards):
    """The model's placement and remote-code flags of the moemui model commands, a list."""
    model = MODELS[wildcards.model]
    args = ["--device-map", model["device_map"]] if model["device_map"] else []
    return args + (["--trust-remote-code"] if model["trust_remote_code"] else [])


def get_import_args(wildcards):
    """``--import FORMAT:PATH`` of the model's responses made elsewhere, or none."""
    spec = get_imported(wildcards)
    return ["--import", spec] if spec else []


def generate_command(*extra):
    """The command of generate_responses, and with ``extra`` flags (formats of the
    rule's values, each quoted) of generate_shard."""
    return " ".join(
        [
            "moemui --threads {threads:q} generate --model-id {wildcards.model:q}",
            "--source {params.source:q} --revision {params.revision:q}",
            "--dtype {params.dtype:q} {params.load:q} --task-file {input.tasks:q}",
            "--batch-size {params.batch_size:q} --max-new-tokens {params.max_new_tokens:q}",
            "--reasoning {params.reasoning:q}",
            "--chat-template-kwargs {params.template_kwargs:q} {params.imported:q}",
            *extra,
            "--out {output:q} 2>{log:q}",
        ]
    )


def capture_command(*extra):
    """The command of capture_scores, and with ``extra`` flags (formats of the rule's
    values, each quoted) of capture_shard."""
    return " ".join(
        [
            "moemui --threads {threads:q} capture --model-id {wildcards.model:q}",
            "--source {params.source:q} --revision {params.revision:q}",
            "--dtype {params.dtype:q} {params.load:q} --task-id {wildcards.task:q}",
            "--task-file {input.tasks:q} --responses {input.responses:q}",
            "--variants {params.variants:q} --target {params.target:q}",
            "--max-threshold {params.max_threshold:q} --batch-size {params.batch_size:q}",
            "{params.invariant:q} --keep {params.keep:q} --tokens {params.tokens:q}",
            "--attrs {params.attrs:q}",
            *extra,
            "--out {output:q} 2>{log:q}",
        ]
    )
