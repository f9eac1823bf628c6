"""Sizing before spending: samples, store bytes and weight memory per (model, task).

``moemui plan --configfile FILE`` reads a workflow config the way Snakemake does (the
repository's ``config/config.yaml``, then each ``--configfile`` merged on top), builds
each model from its config alone on the meta device (a builtin or trained recipe, a local
directory's ``config.json``, or a Hub id whose config is in the Hugging Face cache;
nothing is downloaded, no weight is read), and prints, per (model, task), the samples,
K, the store bytes the capture will write and the model's weight memory.

The store estimate per sample is, per MoE layer::

    variants * (score + K * 4)  +  (E_r + E_s) * 8

with ``score`` = ``(E_r + E_s) * N * 4`` (raw float32, an upper bound) for ``keep: all``
and :data:`KEPT_BYTES` ``* K`` for the default ``keep: key`` (at most K neurons kept;
``benchmarks/store_bench.py`` measures 3 to 7 bytes per K at the paper's geometries), the
``pairtop`` array K * 4 bytes, and ``route_tokens`` + ``route_weight`` 8 bytes per
expert.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from moemui.defaults import default
from moemui.errors import MoemuiError
from moemui.keyrule import k_for
from moemui.tasks import parse_task_source

#: Bytes on disk per kept score, per K (an upper bound of what store_bench.py measures).
KEPT_BYTES = 8
#: Rows of each benchmark's evaluation split as published, for tasks not materialised yet.
PUBLISHED_ROWS = {
    "arc_challenge": 1172,
    "arc_easy": 2376,
    "gsm8k": 1319,
    "mmlu": 14042,
    "bbh": 6511,
    "mbpp": 500,
    "math": 5000,
    "humaneval": 164,
}
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def merge(base: dict, extra: dict) -> dict:
    """``extra`` merged into a copy of ``base`` as Snakemake merges config files:
    nested mappings key by key, anything else replaced."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_config(configfiles: list[str | os.PathLike], default: Path | None) -> dict:
    """The validated config of ``default`` (if it exists) with ``configfiles`` on top."""
    from moemui.config import validate_config

    config: dict = {}
    for path in ([default] if default is not None and default.exists() else []) + [
        Path(p) for p in configfiles
    ]:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise MoemuiError(f"{path}: config file not found") from None
        except yaml.YAMLError as err:
            raise MoemuiError(f"{path}: not valid YAML ({err})") from None
        config = merge(config, loaded)
    return validate_config(config)


@dataclass
class ModelSize:
    """What the plan needs of a model: its geometry and parameter count, or why not."""

    geometry: dict | None
    parameters: int | None
    problem: str | None = None


def model_size(model: dict) -> ModelSize:
    """Geometry and parameter count of a config model, from its config alone
    (:func:`moemui.sources.model_skeleton`; a Hub config only from the cache)."""
    from moemui.adapters import adapter_for
    from moemui.sources import model_skeleton

    name = model["id"]
    try:
        skeleton = model_skeleton(
            model["source"],
            name,
            model.get("revision"),
            local_files_only=True,
            trust_remote_code=bool(
                model.get("trust_remote_code", default("models.trust_remote_code"))
            ),
        )
        geometry = adapter_for(skeleton, name).geometry(skeleton, name).as_dict()
    except MoemuiError as err:
        return ModelSize(None, None, str(err))
    return ModelSize(geometry, sum(p.numel() for p in skeleton.parameters()))


def store_bytes_per_sample(geometry: dict, k_top: int, n_variants: int, keep: str) -> int:
    """The store bytes one sample takes (the module docstring's estimate)."""
    n_exp = geometry["routed_experts"] + geometry["shared_experts"]
    score = n_exp * geometry["neurons_per_expert"] * 4 if keep == "all" else KEPT_BYTES * k_top
    per_layer = n_variants * (score + k_top * 4) + n_exp * 8
    return len(geometry["moe_layers"]) * per_layer + 16


def task_samples(task: dict, results: Path) -> tuple[int | None, str]:
    """Samples of a config task and where the count comes from."""
    materialised = results / "tasks" / f"{task['id']}.jsonl"
    if materialised.exists():
        with materialised.open(encoding="utf-8") as fh:
            return sum(1 for line in fh if line.strip()), "task file"
    scheme, ref = parse_task_source(task["source"], task["id"])
    limit = task.get("n")
    if scheme == "builtin":
        return limit, "config n"
    if scheme == "hf":
        rows = PUBLISHED_ROWS.get(ref)
        if rows is None:
            return limit, "config n" if limit else "unknown"
        return (min(rows, limit) if limit else rows), "published rows"
    return limit, "config n" if limit else "unknown"


def plan_rows(config: dict, results: Path = Path("results")) -> list[dict]:
    """One row per (model, task) of a validated config."""
    from moemui.config import all_models

    capture = config["capture"]
    n_variants, keep = len(capture["variants"]), capture["keep"]
    rows = []
    for model in all_models(config):
        size = model_size(model)
        dtype_bytes = DTYPE_BYTES.get(model.get("dtype", default("models.dtype")), 4)
        for task in config["tasks"]:
            samples, counted = task_samples(task, results)
            row = {
                "model": model["id"],
                "task": task["id"],
                "samples": samples,
                "samples_from": counted,
                "k_top": None,
                "store_bytes": None,
                "weight_bytes": None,
                "problem": size.problem,
            }
            if size.geometry is not None:
                k_top = k_for(capture["max_threshold"], size.geometry["neurons_per_layer"])
                per_sample = store_bytes_per_sample(size.geometry, k_top, n_variants, keep)
                row.update(
                    k_top=k_top,
                    store_bytes=None if samples is None else per_sample * samples,
                    weight_bytes=size.parameters * dtype_bytes,
                )
            rows.append(row)
    return rows


def human_bytes(value: int | None) -> str:
    """Bytes in decimal units: ``12.3 MB``, ``4.36 GB``; ``?`` for unknown."""
    if value is None:
        return "?"
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value} B"


def format_plan(rows: list[dict], keep: str) -> str:
    """The plan as a text table with totals."""
    lines = [
        f"{'model':<28} {'task':<18} {'samples':>8} {'K':>6} {'store':>9} {'weights':>9}  note"
    ]
    for r in rows:
        note = r["problem"] or ("" if r["samples_from"] == "task file" else r["samples_from"])
        samples = "?" if r["samples"] is None else str(r["samples"])
        k_top = "?" if r["k_top"] is None else str(r["k_top"])
        lines.append(
            f"{r['model']:<28} {r['task']:<18} {samples:>8} {k_top:>6} "
            f"{human_bytes(r['store_bytes']):>9} {human_bytes(r['weight_bytes']):>9}  {note}"
        )
    known = [r["store_bytes"] for r in rows if r["store_bytes"] is not None]
    weights = {r["model"]: r["weight_bytes"] for r in rows if r["weight_bytes"] is not None}
    unknown = sum(r["store_bytes"] is None for r in rows)
    lines.append(
        f"total store (keep: {keep}): {human_bytes(sum(known))} over {len(known)} cells"
        + (f" ({unknown} cells unknown)" if unknown else "")
    )
    if weights:
        biggest = max(weights, key=weights.get)
        lines.append(f"largest model: {biggest}, {human_bytes(weights[biggest])} of weights")
    return "\n".join(lines)
