"""The models of a validated config: its models, then its series' checkpoints, each a
model of its own; the resources their jobs ask for; their context."""

from __future__ import annotations

import json
from pathlib import Path

from moemui.defaults import default
from moemui.sources import checkpoint_source, parse_source, recipe_context


def _checkpoint_model(entry: dict, ckpt: dict) -> dict:
    """The model one checkpoint of a series entry stands for."""
    step = ckpt["step"]
    model = {
        "id": f"{entry['id']}-step{step}",
        "source": ckpt.get("source", checkpoint_source(entry["source"], step)),
        "revision": ckpt.get("revision", default("models.revision")),
        "dtype": entry["dtype"],
        "trust_remote_code": entry["trust_remote_code"],
        "device_map": entry["device_map"],
        "chat_template_kwargs": entry["chat_template_kwargs"],
        "reasoning": entry["reasoning"],
        "responses": {},
        "seed": default("models.seed"),
        "series": entry["id"],
        "step": step,
    }
    kept = ("family", "release", "max_new_tokens", "resources")
    model.update({key: entry[key] for key in kept if key in entry})
    return model


def series_models(config: dict) -> list[dict]:
    """The models the checkpoint series of a validated config expand to, in order.

    Each checkpoint becomes a model ``<series id>-step<step>`` with the series' source
    (``trained:<recipe>@<step>`` for trained series), dtype, family, release and
    resources, plus ``series`` and ``step``.
    """
    return [
        _checkpoint_model(entry, ckpt)
        for entry in config.get("series", [])
        for ckpt in entry["checkpoints"]
    ]


def all_models(config: dict) -> list[dict]:
    """The config's models followed by its series' checkpoints."""
    return list(config["models"]) + series_models(config)


def keyed_models(config: dict):
    """Every model of :func:`all_models` with the config keys of its id and its source."""
    for i, model in enumerate(config["models"]):
        yield model, f"models[{i}].id", f"models[{i}].source"
    for i, entry in enumerate(config["series"]):
        for j, ckpt in enumerate(entry["checkpoints"]):
            where = f"series[{i}].checkpoints[{j}]" if "source" in ckpt else f"series[{i}]"
            yield _checkpoint_model(entry, ckpt), f"series[{i}].id", f"{where}.source"


def model_resources(config: dict, model: dict) -> dict:
    """What the jobs of ``model`` (one of :func:`all_models`) that load it
    (generate_responses, capture_scores, ablate_neurons) ask a cluster for: its own
    ``resources`` (a series' for its checkpoints), key by key over the config's
    ``model_resources``. Always ``gpu``, ``mem_mb`` and ``runtime``; ``gpu_model`` only
    with at least one GPU, ``cpus_per_task`` only where set."""
    merged = {**config["model_resources"], **model.get("resources", {})}
    if not merged["gpu"]:
        merged.pop("gpu_model", None)
    return merged


def model_context(model: dict) -> int | None:
    """A model's context (``max_position_embeddings`` of its config, as generation reads
    it), where it can be known without a download: from a builtin or trained recipe, a
    local directory's ``config.json``, or a Hub config already in the Hugging Face
    cache; None otherwise."""
    source = parse_source(model["source"], model["id"])
    if source.kind in ("builtin", "trained"):
        return recipe_context(source)
    if source.kind == "local":
        file = Path(source.ref).expanduser() / "config.json"
    else:
        try:
            from huggingface_hub import try_to_load_from_cache

            found = try_to_load_from_cache(
                source.ref,
                "config.json",
                revision=model.get("revision") or default("models.revision"),
            )
        except Exception:  # noqa: BLE001 - no cache, an odd id: the job will tell
            return None
        if not isinstance(found, str):
            return None
        file = Path(found)
    try:
        value = json.loads(file.read_text(encoding="utf-8")).get("max_position_embeddings")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
