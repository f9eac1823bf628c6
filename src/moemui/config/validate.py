"""Validate a workflow config: JSON Schema (with defaults, :mod:`moemui.config.schema`)
plus the checks a schema cannot express. Every error names the offending config key.
"""

from __future__ import annotations

import os
from pathlib import Path

from moemui.config.analyses import check_analyses
from moemui.config.models import all_models, keyed_models, model_context
from moemui.config.schema import check_schema
from moemui.config.thresholds import check_unique, same_row
from moemui.errors import MoemuiError
from moemui.sources import check_source, parse_source
from moemui.tasks import BUILTIN_TASKS, PUBLISHED_DATASETS, make_published, parse_task_source


def validate_config(config: dict, schema: dict | None = None, read_data: bool = False) -> dict:
    """Validate ``config`` in place, filling defaults; return it.

    Every check that needs no file runs always, and so does the one of each response
    budget against its model's context (read from a recipe, a local ``config.json`` or
    the Hugging Face cache). With ``read_data``, benchmark tasks with a local ``path``
    are also materialised in memory, as their ``make_task`` job would, so that ``n``,
    ``k_shot`` and rows that do not fit the benchmark's schema fail here, before any
    job (the workflow does this in its main process only).

    Raises
    ------
    MoemuiError
        ``config key '<key>': <what is wrong>`` for the first problem found.
    """
    if not isinstance(config, dict):
        raise MoemuiError("config: expected a mapping at the top level")
    check_schema(config, schema)
    _check_semantics(config)
    _check_contexts(config)
    if read_data:
        _check_local_benchmarks(config)
    return config


def _check_benchmark(task: dict, key: str, name: str) -> None:
    """A hf:<benchmark> task: a known benchmark, valid params, an existing local path."""
    if name not in PUBLISHED_DATASETS:
        raise MoemuiError(
            f"config key '{key}.source': unknown benchmark {name!r}; "
            f"known benchmarks: {', '.join(sorted(PUBLISHED_DATASETS))}"
        )
    try:
        PUBLISHED_DATASETS[name].resolve(task.get("params"))
    except MoemuiError as err:
        raise MoemuiError(f"config key '{key}.params': {err}") from None
    if "path" in task and not Path(task["path"]).expanduser().exists():
        raise MoemuiError(f"config key '{key}.path': local dataset {task['path']} does not exist")


def _check_input_path(path: str, key: str, tilde: bool) -> None:
    """A path the workflow names as a job input must read the same to Snakemake as here:
    not empty, no braces (Snakemake reads them as wildcards), and, where the jobs do not
    expand it (``tilde`` False), no leading ``~``."""
    if not path.strip():
        raise MoemuiError(f"config key '{key}': empty path")
    if "{" in path or "}" in path:
        raise MoemuiError(
            f"config key '{key}': path {path!r} contains '{{' or '}}', which Snakemake reads "
            "as a wildcard; rename the file or its directory"
        )
    if not tilde and path.startswith("~"):
        raise MoemuiError(
            f"config key '{key}': path {path!r} starts with '~', which Snakemake does not "
            "expand in a task's input (it would look for a directory named '~'); write the "
            "full path"
        )


def _count_rows(path: str) -> int:
    """The non-blank lines of a task file: its samples, as :func:`moemui.tasks.load_jsonl`
    counts them."""
    text = Path(path).read_bytes().decode("utf-8", errors="replace")
    return sum(1 for line in text.split("\n") if line.strip())


def _check_unique_ids(config: dict, section: str, what: str = "id") -> None:
    """No two entries of ``config[section]`` share an id (naming both)."""
    first: dict[str, int] = {}
    for i, entry in enumerate(config[section]):
        if entry["id"] in first:
            raise MoemuiError(
                f"config key '{section}[{i}].id': duplicate {what} {entry['id']!r} "
                f"(also {section}[{first[entry['id']]}])"
            )
        first[entry["id"]] = i


def _check_results(config: dict) -> None:
    """The results directory reads the same to Snakemake as here: not empty, no braces
    (wildcards), no leading ``~`` (Snakemake does not expand it), not a file, not the
    working directory itself."""
    results = config["results"]
    if not results.strip():
        raise MoemuiError("config key 'results': empty path")
    if "{" in results or "}" in results:
        raise MoemuiError(
            f"config key 'results': path {results!r} contains '{{' or '}}', which Snakemake "
            "reads as a wildcard; name another directory"
        )
    if results.startswith("~"):
        raise MoemuiError(
            f"config key 'results': path {results!r} starts with '~', which Snakemake does "
            "not expand (it would make a directory named '~'); write the full path"
        )
    if os.path.normpath(results) in (".", os.sep):
        raise MoemuiError(
            f"config key 'results': path {results!r} is the working directory (or the root) "
            "itself; name a directory of its own for the outputs"
        )
    if os.path.lexists(results) and not os.path.isdir(results):
        what = "a file" if os.path.isfile(results) else "not a directory"
        raise MoemuiError(
            f"config key 'results': {results} is {what}; name a directory for the outputs"
        )
    # as every workflow path writes it: `results/` and `./results` are `results`
    config["results"] = os.path.normpath(results)


def _check_semantics(config: dict) -> None:
    """What the schema cannot say: the results directory, unique ids, series steps and
    their sources, every model's source (:func:`moemui.sources.check_source`), imported
    responses, tasks, thresholds and rhos, the analyses section."""
    _check_results(config)
    if not config["models"] and not config["series"]:
        raise MoemuiError("config key 'models': no model to measure (models and series are empty)")
    _check_unique_ids(config, "series", "series id")
    _check_unique_ids(config, "tasks")
    for i, entry in enumerate(config["series"]):
        steps = [c["step"] for c in entry["checkpoints"]]
        for j in range(1, len(steps)):
            if steps[j] <= steps[j - 1]:
                raise MoemuiError(
                    f"config key 'series[{i}].checkpoints[{j}].step': steps must increase "
                    f"({steps[j - 1]} then {steps[j]})"
                )
        kind = parse_source(entry["source"], entry["id"]).kind
        for j, ckpt in enumerate(entry["checkpoints"]):
            if kind == "hub" and "revision" not in ckpt:
                raise MoemuiError(
                    f"config key 'series[{i}].checkpoints[{j}].revision': required for a Hub "
                    "series (the checkpoint's revision)"
                )
            if kind == "local" and "source" not in ckpt:
                raise MoemuiError(
                    f"config key 'series[{i}].checkpoints[{j}].source': required for a local "
                    "series (the checkpoint's directory)"
                )
    series_ids = {e["id"] for e in config["series"]}
    task_ids = {t["id"] for t in config["tasks"]}
    for i, model in enumerate(config["models"]):
        if model["id"] in series_ids:
            raise MoemuiError(f"config key 'models[{i}].id': {model['id']!r} is also a series id")
    seen_models: dict[str, str] = {}
    for model, id_key, key in keyed_models(config):
        if model["id"] in seen_models:
            raise MoemuiError(
                f"config key '{id_key}': duplicate model id {model['id']!r} "
                f"(also {seen_models[model['id']]})"
            )
        seen_models[model["id"]] = id_key
        try:
            check_source(parse_source(model["source"], model["id"]))
        except MoemuiError as err:
            raise MoemuiError(f"config key '{key}': {err}") from None
    for i, model in enumerate(config["models"]):
        for task, spec in model["responses"].items():
            key = f"models[{i}].responses.{task}"
            if task not in task_ids:
                raise MoemuiError(f"config key '{key}': unknown task {task!r}")
            _check_input_path(spec.partition(":")[2], key, tilde=True)
            path = Path(spec.partition(":")[2]).expanduser()
            if not path.is_file():
                raise MoemuiError(f"config key '{key}': responses file {path} does not exist")
    for i, task in enumerate(config["tasks"]):
        key = f"tasks[{i}]"
        scheme, ref = parse_task_source(task["source"], task["id"])
        if "path" in task and scheme != "hf":
            raise MoemuiError(f"config key '{key}.path': only hf: benchmark tasks take a path")
        if "path" in task:
            _check_input_path(task["path"], f"{key}.path", tilde=False)
        if scheme == "jsonl":
            _check_input_path(ref, f"{key}.source", tilde=False)
        if scheme == "builtin":
            if ref not in BUILTIN_TASKS:
                raise MoemuiError(
                    f"config key '{key}.source': unknown builtin task {ref!r}; "
                    f"known tasks: {', '.join(sorted(BUILTIN_TASKS))}"
                )
            if "n" not in task:
                raise MoemuiError(f"config key '{key}.n': required for builtin tasks")
            try:
                BUILTIN_TASKS[ref].resolve(task.get("params"))
            except MoemuiError as err:
                raise MoemuiError(f"config key '{key}.params': {err}") from None
        elif scheme == "hf":
            _check_benchmark(task, key, ref)
        elif not Path(ref).expanduser().is_file():
            raise MoemuiError(f"config key '{key}.source': task file {ref} does not exist")
        elif "n" in task and task["n"] > (rows := _count_rows(ref)):
            raise MoemuiError(
                f"config key '{key}.n': {task['n']} but task file {ref} has only {rows} "
                "samples (non-blank lines)"
            )
        elif task.get("params"):
            raise MoemuiError(f"config key '{key}.params': only builtin tasks take params")
        known = task.get("n") or (_count_rows(ref) if scheme == "jsonl" else None)
        if known is not None and task["shards"] > known:
            raise MoemuiError(
                f"config key '{key}.shards': {task['shards']} shards but the task has "
                f"{known} samples (each shard needs one)"
            )
    check_unique(config["thresholds"], "thresholds")
    check_unique(config["analyses"]["rho"], "analyses.rho")
    for i, rho in enumerate(config["analyses"]["rho"]):
        if rho != 0 and same_row(0.0, rho):
            raise MoemuiError(
                f"config key 'analyses.rho[{i}]': {rho!r} is too close to rho = 0, which is "
                "always reported (the tables would read them as one)"
            )
    top = config["capture"]["max_threshold"]
    for i, tau in enumerate(config["thresholds"]):
        if tau > top:
            raise MoemuiError(
                f"config key 'thresholds[{i}]': {tau} exceeds capture.max_threshold {top}"
            )
    check_analyses(config)


def _budget_key(config: dict, model: dict, task: int) -> tuple[int, str]:
    """The response budget of a model on ``config['tasks'][task]`` and the config key
    that sets it (the model's own, else the task's, else generation's)."""
    if "max_new_tokens" in model:
        if "series" in model:
            i = next(i for i, s in enumerate(config["series"]) if s["id"] == model["series"])
            return model["max_new_tokens"], f"series[{i}].max_new_tokens"
        i = next(i for i, m in enumerate(config["models"]) if m["id"] == model["id"])
        return model["max_new_tokens"], f"models[{i}].max_new_tokens"
    entry = config["tasks"][task]
    if "max_new_tokens" in entry:
        return entry["max_new_tokens"], f"tasks[{task}].max_new_tokens"
    return config["generation"]["max_new_tokens"], "generation.max_new_tokens"


def _check_contexts(config: dict) -> None:
    """No response budget fills a model's whole context: generation would leave no room
    for the prompt and fail (the ablation's budget too, for its cells' models)."""
    contexts: dict[str, int | None] = {}
    models = all_models(config)
    for model in models:
        contexts[model["id"]] = model_context(model)
    for model in models:
        limit = contexts[model["id"]]
        if limit is None:
            continue
        for t, task in enumerate(config["tasks"]):
            if task["id"] in model.get("responses", {}):
                continue  # imported, not generated
            budget, key = _budget_key(config, model, t)
            if budget >= limit:
                raise MoemuiError(
                    f"config key '{key}': {budget} new tokens leave no room for the prompt "
                    f"of task {task['id']!r} in the context of model {model['id']!r} "
                    f"({limit} positions); use at most {limit - 1}"
                )
    ablation = config["analyses"]["ablation"]
    for i, cell in enumerate(ablation["cells"]):
        limit = contexts.get(cell["model"])
        if limit is not None and ablation["max_new_tokens"] >= limit:
            raise MoemuiError(
                f"config key 'analyses.ablation.max_new_tokens': {ablation['max_new_tokens']} "
                f"new tokens leave no room for the prompt in the context of model "
                f"{cell['model']!r} (cells[{i}], {limit} positions); use at most {limit - 1}"
            )


def _check_local_benchmarks(config: dict) -> None:
    """Benchmark tasks read from a local ``path`` materialise as their job would: the
    rows fit the schema, ``k_shot`` examples exist, ``n`` samples exist."""
    for i, task in enumerate(config["tasks"]):
        scheme, name = parse_task_source(task["source"], task["id"])
        if scheme != "hf" or "path" not in task:
            continue
        key = f"tasks[{i}]"
        try:
            total = len(
                make_published(
                    name, None, task.get("seed", 0), task.get("params"), task["path"], task["id"]
                )
            )
        except MoemuiError as err:
            sub = ".params.k_shot" if "k_shot=" in str(err) else ".path"
            raise MoemuiError(
                f"config key '{key}{sub}': task {task['id']!r} from {task['path']}: {err}"
            ) from None
        if "n" in task and task["n"] > total:
            raise MoemuiError(
                f"config key '{key}.n': {task['n']} but {task['path']} gives only {total} "
                f"samples of {name} with these params"
            )
        if task["shards"] > min(total, task.get("n", total)):
            raise MoemuiError(
                f"config key '{key}.shards': {task['shards']} shards but {task['path']} "
                f"gives {min(total, task.get('n', total))} samples (each shard needs one)"
            )
