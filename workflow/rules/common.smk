import json

from moemui import __version__ as MOEMUI_VERSION
from moemui.config import config_hash, load_schema, validate_config
from moemui.errors import MoemuiError
from moemui.sources import parse_source

try:
    validate_config(
        config, load_schema(workflow.source_path("../schemas/config.schema.yaml"))
    )
except MoemuiError as err:
    raise WorkflowError(f"invalid config: {err}") from None

MODELS = {m["id"]: m for m in config["models"]}
TASKS = {t["id"]: t for t in config["tasks"]}
CELLS = [(m, t) for m in MODELS for t in TASKS]


wildcard_constraints:
    model="|".join(MODELS),
    task="|".join(TASKS),


def get_model_dir(wildcards):
    """The built model directory for builtin sources; nothing to build otherwise."""
    source = parse_source(MODELS[wildcards.model]["source"], wildcards.model)
    return f"results/models/{wildcards.model}" if source.kind == "builtin" else []


def get_model_source(wildcards):
    """What from_pretrained loads: the built directory, a local path or a Hub id."""
    source = parse_source(MODELS[wildcards.model]["source"], wildcards.model)
    if source.kind == "builtin":
        return f"results/models/{wildcards.model}"
    return source.ref


def get_recipe(wildcards):
    return parse_source(MODELS[wildcards.model]["source"], wildcards.model).ref


def get_task_file(wildcards):
    """A jsonl task's own file, so editing it re-materialises the task."""
    scheme, _, ref = TASKS[wildcards.task]["source"].partition(":")
    return ref if scheme == "jsonl" else []


def get_max_new_tokens(wildcards):
    task = TASKS[wildcards.task]
    return task.get("max_new_tokens", config["generation"]["max_new_tokens"])


def get_cell_hash(wildcards):
    """Hash of everything that determines one store group (not the thresholds)."""
    return config_hash(
        {
            "model": MODELS[wildcards.model],
            "task": TASKS[wildcards.task],
            "generation": config["generation"],
            "capture": config["capture"],
        }
    )


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
    return [f"results/activations.zarr/{m}/{t}" for m, t in CELLS]
