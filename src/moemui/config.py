"""Validate a workflow config: JSON Schema (with defaults) plus the checks a schema
cannot express. Every error names the offending config key.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
from pathlib import Path

import jsonschema
import yaml

from moemui.defaults import default
from moemui.errors import MoemuiError
from moemui.limits import TABLE_DIGITS
from moemui.sources import check_source, checkpoint_source, parse_source, recipe_model_config
from moemui.tasks import BUILTIN_TASKS

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def _key(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _extend_with_default(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if "default" in sub and prop not in instance:
                    instance[prop] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _is_integer(checker, instance) -> bool:
    """An int, not a bool and not a float: jsonschema's own ``integer`` takes 64.0, which
    the jobs' ``int`` arguments reject."""
    return isinstance(instance, int) and not isinstance(instance, bool)


_Validator = jsonschema.validators.extend(
    _extend_with_default(jsonschema.Draft7Validator),
    type_checker=jsonschema.Draft7Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)

#: What YAML may give that JSON (the jobs' --spec and params) has too.
_JSON_SCALARS = (str, int, float, bool, type(None))


def _check_values(node, path: list) -> None:
    """Every value in the config is finite (no .nan, .inf) and a JSON value (no YAML
    date, set or binary), naming the first offending key."""
    if isinstance(node, float) and not math.isfinite(node):
        raise MoemuiError(f"config key '{_key(path)}': {node} is not a finite number")
    if isinstance(node, dict):
        for key, value in node.items():
            if path and not isinstance(key, str):  # top level: "unknown key", by the schema
                raise MoemuiError(
                    f"config key '{_key([*path, key])}': the key {key!r} is a YAML "
                    f"{type(key).__name__}, not a string (quote it)"
                )
            _check_values(value, [*path, key])
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _check_values(value, [*path, i])
    elif not isinstance(node, _JSON_SCALARS):
        raise MoemuiError(
            f"config key '{_key(path)}': {node!r} is a YAML {type(node).__name__}, not a "
            "string, number, boolean, list or mapping (quote it)"
        )


def table_value(value: float) -> str:
    """A threshold or rho as the tables write it (``"%.10g"``)."""
    return f"{value:.{TABLE_DIGITS}g}"


def config_hash(config: dict) -> str:
    """SHA-256 of a config's canonical JSON form."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def write_run_config(config: dict, path: str | os.PathLike) -> None:
    """Write the merged, validated config of a run as YAML, headed by its hash and the
    package version (``<results>/run_config.yaml``)."""
    from moemui import __version__
    from moemui.io import atomic_write_text

    header = (
        "# The merged config of the last run (config files, --config, defaults filled).\n"
        f"# moemui {__version__}; config hash {config_hash(config)}\n"
    )
    atomic_write_text(path, header + yaml.safe_dump(config, sort_keys=False))


def load_schema(path: str | os.PathLike = SCHEMA) -> dict:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


#: Keys of earlier versions -> what took their place.
RENAMED = {
    "analyses.ablation.threshold": (
        "0.7.0 ablates at several thresholds: write analyses.ablation.thresholds, a list"
    ),
}


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
    schema = schema or load_schema()
    _check_values(config, [])
    errors = sorted(_Validator(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        path = list(err.absolute_path)
        if err.validator == "additionalProperties":
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})), key=str)
            key = _key(path + extra[:1])
            hint = f" ({RENAMED[key]})" if key in RENAMED else ""
            raise MoemuiError(f"config key '{key}': unknown key{hint}")
        if err.validator == "required":
            missing = err.message.split("'")[1]
            raise MoemuiError(f"config key '{_key(path + [missing])}': required but missing")
        message = err.message
        wrote_float = err.validator == "type" and isinstance(err.instance, float)
        whole = wrote_float and err.instance.is_integer() and abs(err.instance) < 2**53
        if whole and "integer" in err.validator_value:
            message += f" (write {int(err.instance)}, without a decimal point)"
        raise MoemuiError(f"config key '{_key(path)}': {message}")
    _check_semantics(config)
    _check_contexts(config)
    if read_data:
        _check_local_benchmarks(config)
    return config


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


def all_models(config: dict) -> list[dict]:
    """The config's models followed by its series' checkpoints."""
    return list(config["models"]) + series_models(config)


def _keyed_models(config: dict):
    """Every model of :func:`all_models` with the config keys of its id and its source."""
    for i, model in enumerate(config["models"]):
        yield model, f"models[{i}].id", f"models[{i}].source"
    for i, entry in enumerate(config["series"]):
        for j, ckpt in enumerate(entry["checkpoints"]):
            where = f"series[{i}].checkpoints[{j}]" if "source" in ckpt else f"series[{i}]"
            yield _checkpoint_model(entry, ckpt), f"series[{i}].id", f"{where}.source"


def _check_benchmark(task: dict, key: str, name: str) -> None:
    """A hf:<benchmark> task: a known benchmark, valid params, an existing local path."""
    from moemui.benchmarks import BENCHMARKS, resolve_params

    if name not in BENCHMARKS:
        raise MoemuiError(
            f"config key '{key}.source': unknown benchmark {name!r}; "
            f"known benchmarks: {', '.join(sorted(BENCHMARKS))}"
        )
    try:
        resolve_params(BENCHMARKS[name], task.get("params"))
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


def _same_row(a: float, b: float) -> bool:
    """Whether the tables (``%.10g``) or the charts and robustness table (``np.isclose``,
    within 1e-8 + 1e-5 x the value) would read thresholds (or rhos) ``a`` and ``b`` as
    one."""
    return table_value(a) == table_value(b) or abs(a - b) <= 1e-8 + 1e-5 * max(abs(a), abs(b))


def _check_unique(values: list[float], key: str) -> None:
    """No two thresholds (or rhos) are one row of the tables or one point of the charts."""
    for i, value in enumerate(values):
        for j in range(i):
            if _same_row(values[j], value):
                raise MoemuiError(
                    f"config key '{key}[{i}]': {value!r} is too close to {key}[{j}] "
                    f"({values[j]!r}): the tables ({TABLE_DIGITS} significant digits, "
                    f"{table_value(value)} and {table_value(values[j])}) or the charts "
                    "(within 1e-8 + 1e-5 x the value) would read them as one"
                )


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


#: Where the workflow records the config files that made a results directory.
CONFIG_FILES_RECORD = ".moemui/config-files.json"


def _config_file_entries(results: str | os.PathLike, configfiles) -> list[str]:
    """``configfiles`` as the record holds them: resolved (symlinks and ``..``), then
    relative to the resolved results directory, deduplicated, in order. Relative, so
    that a project moved or copied with its results keeps its record; from the results
    directory, so that two projects sharing one (absolute) results directory differ."""
    base = Path(results).resolve()
    out: list[str] = []
    for file in configfiles:
        path = Path(file).resolve()
        try:
            entry = os.path.relpath(path, base)
        except ValueError:  # another drive (Windows): no relative path
            entry = str(path)
        if entry not in out:
            out.append(entry)
    return out


def _shown(results: str | os.PathLike, entries: list[str]) -> str:
    """Recorded config files as full paths, for a message."""
    base = Path(results).resolve()
    return ", ".join(os.path.normpath(base / entry) for entry in entries) or "(none)"


def check_config_files(results: str | os.PathLike, configfiles) -> None:
    """Refuse a run whose config files are not those that made ``results``.

    ``configfiles`` are this run's (Snakemake's ``workflow.configfiles``; inline
    ``--config`` values are not files and do not count); their order does not matter.
    Nothing is read but the record (``<results>/.moemui/config-files.json``) and nothing
    is written; without a record, any config files may run (:func:`record_config_files`
    makes it).

    Raises
    ------
    MoemuiError
        The record lists other config files (or cannot be read): one message naming the
        results directory, the recorded and this run's config files, and the ways out.
    """
    record = Path(results) / CONFIG_FILES_RECORD
    if not record.exists():
        return
    share = f"delete {record} and run again"
    try:
        recorded = json.loads(record.read_text(encoding="utf-8"))
        if not isinstance(recorded, list) or not all(isinstance(f, str) for f in recorded):
            raise ValueError("not a list of paths")
    except (OSError, ValueError) as err:
        raise MoemuiError(
            f"results directory '{results}': cannot read {record} ({err}), the config files "
            f"that made it; to run this config there anyway, {share}"
        ) from None
    mine = _config_file_entries(results, configfiles)
    if set(recorded) == set(mine):
        return
    raise MoemuiError(
        f"results directory '{results}' was made by other config files; two configs in one "
        "results directory would overwrite or merge each other's tables, store and charts, "
        "so nothing was run.\n"
        f"  made by (recorded in {record}): {_shown(results, recorded)}\n"
        f"  this run's config files: {_shown(results, mine)}\n"
        "Either give this config a results directory of its own: set `results: DIR` in "
        "its config file (or pass --config results=DIR); or, to share "
        f"'{results}' on purpose, {share}."
    )


def record_config_files(results: str | os.PathLike, configfiles) -> None:
    """Record ``configfiles`` as the config files that made ``results``
    (``<results>/.moemui/config-files.json``: a JSON list of paths relative to the
    results directory), unless recorded already."""
    from moemui.io import atomic_write_text

    record = Path(results) / CONFIG_FILES_RECORD
    text = json.dumps(_config_file_entries(results, configfiles), indent=2) + "\n"
    try:
        if record.read_text(encoding="utf-8") == text:
            return
    except (OSError, UnicodeDecodeError):
        pass
    atomic_write_text(record, text)


def _check_semantics(config: dict) -> None:
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
    for model, id_key, key in _keyed_models(config):
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
        scheme, _, ref = task["source"].partition(":")
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
    _check_unique(config["thresholds"], "thresholds")
    _check_unique(config["analyses"]["rho"], "analyses.rho")
    for i, rho in enumerate(config["analyses"]["rho"]):
        if rho != 0 and _same_row(0.0, rho):
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
    _check_analyses(config)


def analysis_settings(config: dict) -> dict:
    """The ``analyses`` section of a validated config with its nulls resolved: the focus
    ``variant`` (null: the first captured variant) and ``threshold`` (null: the first
    configured threshold); the ablation's ``variant`` (null: the focus one) and
    ``thresholds`` (null: the focus threshold and ``capture.max_threshold``), sorted."""
    section = copy.deepcopy(config["analyses"])
    if section["variant"] is None:
        section["variant"] = config["capture"]["variants"][0]
    if section["threshold"] is None:
        section["threshold"] = config["thresholds"][0]
    ablation = section["ablation"]
    if ablation["variant"] is None:
        ablation["variant"] = section["variant"]
    if ablation["thresholds"] is None:
        top = config["capture"]["max_threshold"]
        focus = section["threshold"]
        ablation["thresholds"] = [focus] if _same_row(focus, top) else [focus, top]
    ablation["thresholds"] = sorted(ablation["thresholds"])
    return section


def _check_analyses(config: dict) -> None:
    section = config["analyses"]
    variants, thresholds = config["capture"]["variants"], config["thresholds"]
    for where in ("analyses", "analyses.ablation"):
        part = section if where == "analyses" else section["ablation"]
        variant = part["variant"]
        if variant is not None and variant not in variants:
            raise MoemuiError(
                f"config key '{where}.variant': {variant!r} is not a captured variant "
                f"(capture.variants: {', '.join(variants)})"
            )
    tau = section["threshold"]
    if tau is not None and not any(abs(tau - t) <= 1e-12 * t for t in thresholds):
        raise MoemuiError(
            f"config key 'analyses.threshold': {tau} is not one of the thresholds "
            f"({', '.join(map(str, thresholds))})"
        )
    ablation_thresholds = section["ablation"]["thresholds"]
    if ablation_thresholds is not None:
        _check_unique(ablation_thresholds, "analyses.ablation.thresholds")
        top = config["capture"]["max_threshold"]
        for i, tau in enumerate(ablation_thresholds):
            if tau > top:
                raise MoemuiError(
                    f"config key 'analyses.ablation.thresholds[{i}]': {tau} exceeds "
                    f"capture.max_threshold {top}, the largest threshold the store supports"
                )
    models = {m["id"] for m in all_models(config)}
    tasks = {t["id"] for t in config["tasks"]}
    seen: dict[tuple[str, str], int] = {}
    for i, cell in enumerate(section["ablation"]["cells"]):
        key = f"analyses.ablation.cells[{i}]"
        if cell["model"] not in models:
            raise MoemuiError(f"config key '{key}.model': unknown model {cell['model']!r}")
        if cell["task"] not in tasks:
            raise MoemuiError(f"config key '{key}.task': unknown task {cell['task']!r}")
        pair = (cell["model"], cell["task"])
        if pair in seen:
            raise MoemuiError(f"config key '{key}': duplicate cell (also cells[{seen[pair]}])")
        seen[pair] = i


def model_context(model: dict) -> int | None:
    """A model's context (``max_position_embeddings`` of its config, as generation reads
    it), where it can be known without a download: from a builtin or trained recipe, a
    local directory's ``config.json``, or a Hub config already in the Hugging Face
    cache; None otherwise."""
    source = parse_source(model["source"], model["id"])
    if source.kind in ("builtin", "trained"):
        return getattr(recipe_model_config(source), "max_position_embeddings", None)
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
    from moemui.benchmarks import make_benchmark

    for i, task in enumerate(config["tasks"]):
        scheme, _, name = task["source"].partition(":")
        if scheme != "hf" or "path" not in task:
            continue
        key = f"tasks[{i}]"
        try:
            total = len(
                make_benchmark(
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
