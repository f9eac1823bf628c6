import json
import re
from pathlib import Path

from moemui import __version__ as MOEMUI_VERSION
from moemui.cache import install as install_cache_guard
from moemui.config import (
    SCHEMA,
    all_models,
    check_config_files,
    config_hash,
    load_schema,
    record_config_files,
    model_resources,
    validate_config,
    write_run_config,
)
from moemui.errors import MoemuiError
from moemui.imports import import_paths
from moemui.recipes import recipe_spec
from moemui.sources import parse_source, parse_trained
from moemui.tasks import parse_task_source
from moemui.train import checkpoint_dir

try:
    # Against the schema the package ships (moemui/schemas/config.schema.yaml), the one
    # the CLI's defaults are read from. The main process also reads local benchmark
    # datasets (as their make_task jobs will), so that their mistakes fail here; the
    # jobs' processes skip that read.
    validate_config(config, load_schema(SCHEMA), read_data=workflow.is_main_process)
except MoemuiError as err:
    raise WorkflowError(f"invalid config: {err}") from None

# Every output goes under this directory (config key `results`, default "results").
RESULTS = config["results"]

# One results directory per config: a run whose config files are not those that made
# RESULTS (recorded by onstart below) fails here, before any job, and writes nothing.
if workflow.is_main_process:
    try:
        check_config_files(RESULTS, workflow.configfiles)
    except MoemuiError as err:
        raise WorkflowError(str(err)) from None

# Snakemake's output cache (--cache): two projects storing one entry at once keep one
install_cache_guard()

MODELS = {m["id"]: m for m in all_models(config)}
TASKS = {t["id"]: t for t in config["tasks"]}
CELLS = [(m, t) for m in MODELS for t in TASKS]
# Tasks split into shards (tasks[].shards > 1): their cells are generated and captured
# shard by shard (workflow/rules/shards.smk) and gathered; the others in one job each.
SHARDED = sorted(t for t, spec in TASKS.items() if spec["shards"] > 1)
UNSHARDED = sorted(t for t in TASKS if t not in SHARDED)


def one_of(names):
    """A wildcard constraint matching exactly ``names`` (none: a regex matching nothing)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


def task_spec(task_id):
    """What makes a task's samples: its config entry without ``shards``, which only
    splits the work (changing it does not re-make the task or change any hash)."""
    return {k: v for k, v in TASKS[task_id].items() if k != "shards"}


# What each model's source is (moemui.sources decides: builtin, trained, local, Hub).
SOURCES = {m: parse_source(spec["source"], m) for m, spec in MODELS.items()}


def _model_paths(model):
    """(what the workflow makes for the model, what from_pretrained loads)."""
    source = SOURCES[model]
    if source.kind == "builtin":
        built = f"{RESULTS}/models/{model}"
        return built, built
    if source.kind == "trained":
        recipe, step = parse_trained(source.ref)
        run = f"{RESULTS}/training/{recipe}"
        return run, str(checkpoint_dir(run, step))
    return [], source.ref


MODEL_PATHS = {m: _model_paths(m) for m in MODELS}
# The trained recipes the models use, each trained once (rule train_model).
TRAINED = sorted(
    {parse_trained(s.ref)[0] for s in SOURCES.values() if s.kind == "trained"}
)
SERIES = [
    {
        "id": s["id"],
        "checkpoints": [
            {"model": m["id"], "step": m["step"]}
            for m in MODELS.values()
            if m.get("series") == s["id"]
        ],
    }
    for s in config["series"]
]


wildcard_constraints:
    model="|".join(MODELS),
    task="|".join(TASKS),
    recipe="|".join(TRAINED) or "no-trained-recipe",


def get_model_dir(wildcards):
    """What the workflow makes for the model: a builtin model or a training run."""
    return MODEL_PATHS[wildcards.model][0]


def get_model_source(wildcards):
    """What from_pretrained loads: a built or trained directory, a local path or a Hub id."""
    return MODEL_PATHS[wildcards.model][1]


def get_load_args(wildcards):
    """The model's placement and remote-code flags of the moemui model commands, a list."""
    model = MODELS[wildcards.model]
    args = ["--device-map", model["device_map"]] if model["device_map"] else []
    return args + (["--trust-remote-code"] if model["trust_remote_code"] else [])


def get_recipe(wildcards):
    """The builtin recipe of a model (rule build_model)."""
    return SOURCES[wildcards.model].ref


def get_task_file(wildcards):
    """A task's local file (a jsonl task's own file, a benchmark's local copy), so that
    editing it re-materialises the task."""
    task = TASKS[wildcards.task]
    scheme, ref = parse_task_source(task["source"], wildcards.task)
    if scheme == "jsonl":
        return ref
    return task.get("path") or []


def get_max_new_tokens(wildcards):
    """The response budget: the model's own (reasoning models), else the task's, else
    generation.max_new_tokens."""
    model, task = MODELS[wildcards.model], TASKS[wildcards.task]
    if "max_new_tokens" in model:
        return model["max_new_tokens"]
    return task.get("max_new_tokens", config["generation"]["max_new_tokens"])


def get_template_kwargs(wildcards):
    """The chat template's variables: the model's, with the task's merged over them."""
    merged = {
        **MODELS[wildcards.model]["chat_template_kwargs"],
        **TASKS[wildcards.task].get("chat_template_kwargs", {}),
    }
    return json.dumps(merged, sort_keys=True)


def get_imported(wildcards):
    """The model's responses made elsewhere for the task (format:path), or None."""
    return MODELS[wildcards.model].get("responses", {}).get(wildcards.task)


def get_imported_file(wildcards):
    """The imported responses file, so that editing it re-makes the responses."""
    spec = get_imported(wildcards)
    return import_paths(spec) if spec else []


def get_import_args(wildcards):
    """``--import FORMAT:PATH`` of the model's responses made elsewhere, or none."""
    spec = get_imported(wildcards)
    return ["--import", spec] if spec else []


def get_cell_hash(wildcards):
    """Hash of everything that determines one store group (not the thresholds, not
    the resources its jobs ask for)."""
    model = {k: v for k, v in MODELS[wildcards.model].items() if k != "resources"}
    return config_hash(
        {
            "model": model,
            "task": task_spec(wildcards.task),
            "generation": config["generation"],
            "capture": config["capture"],
        }
    )


def get_model_resource(name):
    """A resources callable of the model rules: the value of ``name`` (gpu, gpu_model,
    mem_mb, runtime, cpus_per_task) for the job's model, its own over model_resources;
    None (no request) where neither sets it."""

    def resource(wildcards):
        return model_resources(config, MODELS[wildcards.model]).get(name)

    return resource


def get_store_attrs(wildcards):
    """Store group attributes from the config: the source as configured, and the hash."""
    model = MODELS[wildcards.model]
    return json.dumps(
        {
            "source": model["source"],
            "config_hash": get_cell_hash(wildcards),
        }
    )


def get_store_groups(wildcards=None):
    """Every store group. Rule all lists them, so that a missing group is captured
    again even when every table is up to date."""
    return [f"{RESULTS}/activations.zarr/{m}/{t}" for m, t in CELLS]


def _incomplete_stamp(model, task):
    """For a group at its final path that is not marked complete (zarr.json missing,
    unreadable, or its attribute complete not true): the mtime (ns) of its zarr.json,
    else of its directory; None otherwise. One small JSON read per cell at parse time.
    """
    path = Path(RESULTS, "activations.zarr", model, task)
    if not path.is_dir():
        return None
    meta = path / "zarr.json"
    try:
        attrs = json.loads(meta.read_text(encoding="utf-8")).get("attributes") or {}
        if attrs.get("complete") is True:
            return None
        return meta.stat().st_mtime_ns
    except (OSError, ValueError, AttributeError):
        return path.stat().st_mtime_ns


def get_recapture_mark(wildcards):
    """For a group at its final path that is not complete, a mark that does not exist
    yet (the recapture_mark rule makes it), an input of capture_scores newer than the group,
    so the group is captured again. Otherwise the newest mark made before, if any, so
    that the job's set of inputs stays what it was (no provenance re-run)."""
    model, task = wildcards.model, wildcards.task
    stamp = _incomplete_stamp(model, task)
    if stamp is not None:
        return f"{RESULTS}/.moemui/recapture/{model}/{task}.{stamp}"
    marks = [
        p
        for p in Path(RESULTS, ".moemui", "recapture", model).glob(f"{task}.*")
        if p.name[len(task) + 1 :].isdigit()
    ]
    return str(max(marks, key=lambda p: p.stat().st_mtime_ns)) if marks else []


# The jobs that load a model, sized per model (a model's resources over model_resources).
MODEL_RESOURCES = dict(
    gpu=get_model_resource("gpu"),
    gpu_model=get_model_resource("gpu_model"),
    mem_mb=get_model_resource("mem_mb"),
    runtime=get_model_resource("runtime"),
    cpus_per_task=get_model_resource("cpus_per_task"),
)


# The model rules' commands (responses.smk, shards.smk, capture.smk): every value a
# quoted format of the rule, every list a list.


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


# Shards (workflow/rules/shards.smk)


def shard_flag(wildcards):
    """``I/N`` for the CLI's --shard, from the wildcard ``I-of-N``."""
    return wildcards.shard.replace("-of-", "/")


def get_shards(wildcards):
    """The shard names of the cell's task, ``1-of-N`` .. ``N-of-N``."""
    count = TASKS[wildcards.task]["shards"]
    return [f"{i}-of-{count}" for i in range(1, count + 1)]


def get_response_shards(wildcards):
    return [
        f"{RESULTS}/shards/{shard}/responses/{wildcards.model}/{wildcards.task}.jsonl"
        for shard in get_shards(wildcards)
    ]


def get_capture_shards(wildcards):
    return [
        f"{RESULTS}/shards/{shard}/activations.zarr/{wildcards.model}/{wildcards.task}"
        for shard in get_shards(wildcards)
    ]


def get_key_files(wildcards=None):
    """Every group's key neurons (rule derive_keys), what the analyses read."""
    return [f"{RESULTS}/keys/{m}/{t}.npz" for m, t in CELLS]


def get_trajectory_table(wildcards=None):
    """The trajectory table, when the config has a checkpoint series."""
    return f"{RESULTS}/tables/trajectory.csv" if SERIES else []


onstart:
    # the merged config of this run, next to its results, and the config files that
    # made the results directory (neither written by a dry run)
    write_run_config(config, f"{RESULTS}/run_config.yaml")
    record_config_files(RESULTS, workflow.configfiles)
