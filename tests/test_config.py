"""Tests for moemui.config: schema validation, defaults and the semantic checks.

Every malformed config must fail with a :class:`MoemuiError` that names the offending
key, both from :func:`validate_config` and through the workflow (``snakemake -n``).
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from moemui.config import SCHEMA, all_models, load_schema, model_resources, validate_config
from moemui.errors import MoemuiError
from moemui.recipes import TRAINED_RECIPES
from moemui.sources import parse_trained
from moemui.tasks import BUILTIN_TASKS

REPO_ROOT = Path(__file__).resolve().parents[1]


def _set(path: str, value):
    """A mutator setting ``config[a][b]...`` (``path`` is ``"a.b"``; ints index lists;
    missing mappings are made); a callable ``value`` is called with the test's
    ``tmp_path``."""

    def mutate(config: dict, tmp_path: Path) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node = config
        for part in parents:
            node = node.setdefault(part, {}) if isinstance(node, dict) else node[part]
        node[last] = value(tmp_path) if callable(value) else value

    return mutate


def _delete(path: str):
    def mutate(config: dict, tmp_path: Path) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node = config
        for part in parents:
            node = node[part]
        del node[last]

    return mutate


def _duplicate(section: str):
    def mutate(config: dict, tmp_path: Path) -> None:
        config[section][1]["id"] = config[section][0]["id"]

    return mutate


# (case id, mutator, the key the message must name, a phrase the message must contain)
MALFORMED = [
    ("model-id-uppercase", _set("models.0.id", "OLMoE"), "models[0].id", "does not match"),
    ("model-id-slash", _set("models.0.id", "org/olmoe"), "models[0].id", "does not match"),
    ("task-id-uppercase", _set("tasks.1.id", "Boolean"), "tasks[1].id", "does not match"),
    ("task-n-zero", _set("tasks.1.n", 0), "tasks[1].n", "less than the minimum"),
    ("task-n-string", _set("tasks.1.n", "4"), "tasks[1].n", "is not of type 'integer'"),
    ("builtin-task-without-n", _delete("tasks.1.n"), "tasks[1].n", "required for builtin"),
    ("threshold-zero", _set("thresholds", [0.0, 0.001]), "thresholds[0]", "less than or equal"),
    ("threshold-one", _set("thresholds", [0.001, 1.0]), "thresholds[1]", "greater than or equal"),
    ("threshold-negative", _set("thresholds", [-0.001]), "thresholds[0]", "less than or equal"),
    ("threshold-above-max", _set("thresholds", [0.001, 0.05]), "thresholds[1]", "exceeds"),
    ("thresholds-duplicate", _set("thresholds", [0.001, 0.001]), "thresholds", "non-unique"),
    ("thresholds-empty", _set("thresholds", []), "thresholds", "should be non-empty"),
    ("results-not-string", _set("results", 3), "results", "is not of type 'string'"),
    (
        "variant-unknown",
        _set("capture.variants", ["gate", "up"]),
        "capture.variants[1]",
        "is not one of",
    ),
    (
        "variant-first-unknown",
        _set("capture.variants", ["GLU"]),
        "capture.variants[0]",
        "is not one of",
    ),
    ("capture-target", _set("capture.target", "prev"), "capture.target", "is not one of"),
    (
        "capture-max-threshold",
        _set("capture.max_threshold", 1.5),
        "capture.max_threshold",
        "greater than or equal",
    ),
    (
        "capture-batch-size",
        _set("capture.batch_size", 0),
        "capture.batch_size",
        "less than the minimum",
    ),
    (
        "capture-batch-invariant",
        _set("capture.batch_invariant", "yes"),
        "capture.batch_invariant",
        "is not of type 'boolean'",
    ),
    (
        "capture-keep",
        _set("capture.keep", "most"),
        "capture.keep",
        "'most' is not one of ['key', 'all']",
    ),
    (
        "generation-batch-size",
        _set("generation.batch_size", 0),
        "generation.batch_size",
        "less than the minimum",
    ),
    (
        "generation-max-new-tokens",
        _set("generation.max_new_tokens", 2.5),
        "generation.max_new_tokens",
        "is not of type 'integer'",
    ),
    (
        "generation-unknown-key",
        _set("generation.temperature", 0.7),
        "generation.temperature",
        "unknown key",
    ),
    (
        "unknown-builtin-recipe",
        _set("models.1.source", "builtin:mixtral_huge"),
        "models[1].source",
        "unknown builtin recipe 'mixtral_huge'",
    ),
    (
        "unparseable-model-source",
        _set("models.0.source", "not a source"),
        "models[0].source",
        "unknown model source",
    ),
    (
        "local-model-missing",
        _set("models.0.source", lambda tmp: f"local:{tmp}/missing-model"),
        "models[0].source",
        "does not exist",
    ),
    (
        "local-path-model-missing",
        _set("models.1.source", lambda tmp: f"{tmp}/missing-model"),
        "models[1].source",
        "does not exist",
    ),
    ("model-dtype", _set("models.0.dtype", "float64"), "models[0].dtype", "is not one of"),
    ("model-seed-negative", _set("models.1.seed", -1), "models[1].seed", "less than the minimum"),
    (
        "model-missing-source",
        _delete("models.0.source"),
        "models[0].source",
        "required but missing",
    ),
    ("duplicate-model-id", _duplicate("models"), "models[1].id", "duplicate model id 'olmoe-tiny'"),
    ("duplicate-task-id", _duplicate("tasks"), "tasks[1].id", "duplicate id 'arithmetic'"),
    ("models-empty", _set("models", []), "models", "no model to measure"),
    ("tasks-empty", _set("tasks", []), "tasks", "should be non-empty"),
    ("models-missing", _delete("models"), "models", "no model to measure"),
    (
        "series-unordered-steps",
        _set(
            "series",
            [
                {
                    "id": "ser",
                    "source": "trained:olmoe_v2",
                    "checkpoints": [{"step": 300}, {"step": 150}],
                }
            ],
        ),
        "series[0].checkpoints[1].step",
        "steps must increase (300 then 150)",
    ),
    (
        "series-unknown-trained-recipe",
        _set("series", [{"id": "ser", "source": "trained:nope", "checkpoints": [{"step": 1}]}]),
        "series[0].source",
        "unknown trained recipe 'nope'",
    ),
    (
        "series-step-not-saved",
        _set("series", [{"id": "ser", "source": "trained:olmoe_v2", "checkpoints": [{"step": 7}]}]),
        "series[0].source",
        "saves no checkpoint at step '7'",
    ),
    (
        "series-hub-without-revision",
        _set("series", [{"id": "ser", "source": "org/name", "checkpoints": [{"step": 1}]}]),
        "series[0].checkpoints[0].revision",
        "required for a Hub series",
    ),
    (
        "series-id-clashes-with-model",
        _set(
            "series",
            [{"id": "olmoe-tiny", "source": "trained:olmoe_v2", "checkpoints": [{"step": 150}]}],
        ),
        "models[0].id",
        "is also a series id",
    ),
    (
        "model-trained-unknown-step",
        _set("models.0.source", "trained:olmoe_v1@5"),
        "models[0].source",
        "saves no checkpoint at step '5'",
    ),
    ("unknown-top-level-key", _set("threshold", [0.001]), "threshold", "unknown key"),
    ("unknown-model-key", _set("models.0.revison", "v1"), "models[0].revison", "unknown key"),
    ("unknown-task-key", _set("tasks.1.samples", 4), "tasks[1].samples", "unknown key"),
    (
        "unknown-builtin-task",
        _set("tasks.1.source", "builtin:sudoku"),
        "tasks[1].source",
        "unknown builtin task 'sudoku'",
    ),
    (
        "unknown-task-scheme",
        _set("tasks.0.source", "csv:data/x.csv"),
        "tasks[0].source",
        "does not match",
    ),
    ("task-source-no-ref", _set("tasks.0.source", "builtin:"), "tasks[0].source", "does not match"),
    (
        "jsonl-task-missing",
        _set("tasks.1.source", lambda tmp: f"jsonl:{tmp}/nope.jsonl"),
        "tasks[1].source",
        "does not exist",
    ),
    ("model-reasoning", _set("models.0.reasoning", "cot"), "models[0].reasoning", "is not one of"),
    (
        "model-template-kwargs-list",
        _set("models.0.chat_template_kwargs", ["enable_thinking"]),
        "models[0].chat_template_kwargs",
        "is not of type 'object'",
    ),
    (
        "task-template-kwargs-string",
        _set("tasks.0.chat_template_kwargs", "enable_thinking=false"),
        "tasks[0].chat_template_kwargs",
        "is not of type 'object'",
    ),
    (
        "responses-unknown-task",
        _set("models.0.responses", {"nope": "jsonl:x.jsonl"}),
        "models[0].responses.nope",
        "unknown task 'nope'",
    ),
    (
        "responses-unknown-format",
        _set("models.0.responses", {"arithmetic": "vllm:x.jsonl"}),
        "models[0].responses.arithmetic",
        "does not match",
    ),
    (
        "responses-file-missing",
        _set("models.0.responses", lambda tmp: {"arithmetic": f"lm-eval:{tmp}/none.jsonl"}),
        "models[0].responses.arithmetic",
        "does not exist",
    ),
    ("capture-tokens", _set("capture.tokens", "final"), "capture.tokens", "is not one of"),
    (
        "task-params-not-mapping",
        _set("tasks.0.params", [2]),
        "tasks[0].params",
        "is not of type 'object'",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "key", "phrase"),
    [pytest.param(m, k, p, id=case) for case, m, k, p in MALFORMED],
)
def test_malformed_config_names_the_key(tiny_config, tmp_path, mutate, key, phrase):
    assert_rejected(tiny_config(), tmp_path, mutate, key, phrase)


def assert_rejected(config: dict, tmp_path: Path, mutate, key: str, phrase: str) -> None:
    """``mutate``-d, ``config`` fails validation with a message that starts by naming
    ``key`` and contains ``phrase``."""
    mutate(config, tmp_path)
    with pytest.raises(MoemuiError) as info:
        validate_config(config)
    message = str(info.value)
    assert message.startswith(f"config key '{key}': "), message
    assert phrase in message, message


def test_enough_malformed_cases():
    assert len(MALFORMED) >= 15
    assert len({case for case, *_ in MALFORMED}) == len(MALFORMED)


def test_jsonl_task_with_params_names_the_key(tiny_config, tmp_path):
    task_file = tmp_path / "mytask.jsonl"
    task_file.write_text('{"id": "a", "prompt": "1+1=", "reference": "2"}\n', encoding="utf-8")
    config = tiny_config()
    config["tasks"][1] = {"id": "mine", "source": f"jsonl:{task_file}", "params": {"digits": 3}}
    with pytest.raises(MoemuiError, match=r"^config key 'tasks\[1\]\.params': only builtin"):
        validate_config(config)


@pytest.mark.parametrize("config", [[], "models: []", None, 3], ids=["list", "str", "none", "int"])
def test_non_mapping_config(config):
    with pytest.raises(MoemuiError, match=r"^config: expected a mapping at the top level$"):
        validate_config(config)


def test_existing_jsonl_task_and_local_model_are_accepted(tiny_config, tmp_path):
    task_file = tmp_path / "mytask.jsonl"
    task_file.write_text('{"id": "a", "prompt": "1+1=", "reference": "2"}\n', encoding="utf-8")
    model_dir = tmp_path / "my-model"
    model_dir.mkdir()
    config = tiny_config()
    config["models"].append({"id": "mine", "source": f"local:{model_dir}"})
    config["models"].append({"id": "mine-path", "source": str(model_dir)})
    config["models"].append({"id": "hub", "source": "allenai/OLMoE-1B-7B-0924"})
    config["tasks"].append({"id": "mytask", "source": f"jsonl:{task_file}"})
    validated = validate_config(config)
    assert validated is config
    assert "n" not in config["tasks"][2]  # a JSONL task keeps all its samples
    assert config["models"][4]["revision"] == "main"


def test_validate_fills_defaults():
    config = {"models": [{"id": "m", "source": "builtin:olmoe_tiny"}], "tasks": []}
    config["tasks"].append({"id": "t", "source": "builtin:arithmetic", "n": 2})
    validate_config(config)
    assert config["models"][0] == {
        "id": "m",
        "source": "builtin:olmoe_tiny",
        "revision": "main",
        "dtype": "float32",
        "seed": 0,
        "trust_remote_code": False,
        "device_map": None,
        "chat_template_kwargs": {},
        "reasoning": "none",
        "responses": {},
    }
    assert config["tasks"][0] == {
        "id": "t",
        "source": "builtin:arithmetic",
        "n": 2,
        "seed": 0,
        "params": {},
        "shards": 1,
    }
    assert config["thresholds"] == [0.0008, 0.001, 0.002]
    assert config["results"] == "results"
    assert config["generation"] == {"batch_size": 16, "max_new_tokens": 16}
    assert config["capture"] == {
        "variants": ["gate", "glu"],
        "target": "next",
        "max_threshold": 0.01,
        "batch_size": 8,
        "batch_invariant": True,
        "tokens": "all",
        "keep": "key",
    }
    assert config["model_resources"] == {"gpu": 1, "mem_mb": 32000, "runtime": 240}


def test_model_resources_are_the_models_own_over_the_defaults(tiny_config):
    """A model's (a series' for its checkpoints) resources, key by key over
    model_resources, whose unset keys take the schema's defaults."""
    config = tiny_config(
        model_resources={"mem_mb": 16000, "gpu_model": "a100"},
        series=[
            {
                "id": "ser",
                "source": "trained:olmoe_v2",
                "resources": {"gpu": 2, "runtime": 30},
                "checkpoints": [{"step": 150}, {"step": 300}],
            }
        ],
    )
    config["models"][1]["resources"] = {"gpu": 0, "mem_mb": 1200, "cpus_per_task": 3}
    validate_config(config)
    assert config["model_resources"] == {
        "gpu": 1,
        "gpu_model": "a100",
        "mem_mb": 16000,
        "runtime": 240,
    }
    assert "resources" not in config["models"][0]  # no defaults filled in per model
    got = {m["id"]: model_resources(config, m) for m in all_models(config)}
    assert got == {
        "olmoe-tiny": {"gpu": 1, "gpu_model": "a100", "mem_mb": 16000, "runtime": 240},
        # no GPU: no GPU type either
        "qwen2moe-tiny": {"gpu": 0, "mem_mb": 1200, "runtime": 240, "cpus_per_task": 3},
        "ser-step150": {"gpu": 2, "gpu_model": "a100", "mem_mb": 16000, "runtime": 30},
        "ser-step300": {"gpu": 2, "gpu_model": "a100", "mem_mb": 16000, "runtime": 30},
    }


def test_defaults_do_not_override_given_values_and_are_not_shared(tiny_config):
    a, b = tiny_config(), tiny_config()
    validate_config(a)
    validate_config(b)
    assert a["generation"] == {"max_new_tokens": 4, "batch_size": 4}
    assert a["capture"]["batch_size"] == 3
    assert a["capture"]["variants"] == ["gate", "glu"]
    a["capture"]["variants"].append("act")
    a["tasks"][0]["params"]["digits"] = 3
    assert b["capture"]["variants"] == ["gate", "glu"]
    assert b["tasks"][0]["params"] == {}


def test_validate_is_idempotent(tiny_config):
    once = validate_config(tiny_config())
    twice = validate_config(copy.deepcopy(once))
    assert twice == once


def test_shipped_config_validates_with_defaults():
    with open(REPO_ROOT / "config" / "config.yaml", encoding="utf-8") as fh:
        config = yaml.safe_load(fh)
    validate_config(
        config, load_schema(REPO_ROOT / "src" / "moemui" / "schemas" / "config.schema.yaml")
    )
    models = all_models(config)
    assert [m["id"] for m in models] == [
        "olmoe-v1",
        "glm4moe-v1",
        *(f"olmoe-v2-step{s}" for s in range(300, 2401, 300)),
        *(f"glm4moe-v2-step{s}" for s in (150, 300, 600)),
    ]
    for model in models:
        assert model["revision"] == "main"
        assert model["dtype"] == "float32"
        recipe, step = parse_trained(model["source"].removeprefix("trained:"))
        assert recipe in TRAINED_RECIPES
        assert model["release"] == (2 if "-v2-" in model["id"] else 1)
        assert model["family"] == TRAINED_RECIPES[recipe].family
        assert model.get("step", step) == step
    for task in config["tasks"]:
        assert task["seed"] == 0
        assert task["source"].removeprefix("builtin:") in BUILTIN_TASKS
        assert task["n"] >= 1
    assert config["tasks"][0]["params"] == {"digits": 2}
    assert config["tasks"][1]["params"] == {}
    assert config["thresholds"] == [0.0008, 0.001, 0.002]
    assert config["generation"] == {"max_new_tokens": 8, "batch_size": 16}
    assert config["capture"] == {
        "variants": ["gate", "glu"],
        "target": "next",
        "max_threshold": 0.01,
        "batch_size": 8,
        "batch_invariant": True,
        "tokens": "all",
        "keep": "key",
    }


def test_package_schema_is_the_workflow_schema():
    """The schema ships inside the package, and the workflow validates against that copy."""
    assert SCHEMA == REPO_ROOT / "src" / "moemui" / "schemas" / "config.schema.yaml"
    assert load_schema() == load_schema(SCHEMA)
    common = (REPO_ROOT / "workflow" / "rules" / "common.smk").read_text(encoding="utf-8")
    assert "load_schema(SCHEMA)" in common
    assert not (REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml").exists()  # one copy


def test_installed_package_reads_its_schema(tmp_path):
    """A non-editable install (no source checkout beside it) carries the schema: its
    defaults read, from the installed copy."""
    source, site = tmp_path / "source", tmp_path / "site"
    # a copy of what the build reads: the build writes build/ and *.egg-info beside it
    shutil.copytree(
        REPO_ROOT / "src",
        source / "src",
        ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"),
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(site), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    code = (
        "import moemui.defaults as d; "
        "print(d.SCHEMA); print(d.default('capture.batch_size')); print(d.default('models.dtype'))"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    schema, batch, dtype = out.stdout.split()
    assert schema == str(site / "moemui" / "schemas" / "config.schema.yaml")
    assert (int(batch), dtype) == (
        load_schema()["properties"]["capture"]["properties"]["batch_size"]["default"],
        "float32",
    )


@pytest.mark.workflow
def test_snakemake_rejects_bad_config_before_any_job(
    tiny_config, write_config, run_snakemake, tmp_path
):
    config = tiny_config()
    config["tasks"][1]["source"] = "builtin:sudoku"
    write_config(tmp_path, config)
    proc = run_snakemake(tmp_path, "-n", timeout=300)
    assert proc.returncode != 0, proc.stdout
    assert "invalid config" in proc.stdout
    assert "config key 'tasks[1].source': unknown builtin task 'sudoku'" in proc.stdout
    assert "Job stats" not in proc.stdout
    assert not (tmp_path / "results").exists()


def test_unknown_keys_of_mixed_types(tiny_config):
    config = tiny_config()
    config[1] = "x"
    config["foo"] = 2
    with pytest.raises(MoemuiError, match=r"^config key '(\[1\]|1|foo)': unknown key"):
        validate_config(config)


def test_bad_builtin_task_params_name_the_key(tiny_config):
    config = tiny_config()
    config["tasks"][0]["params"] = {"digits": 40}
    with pytest.raises(MoemuiError, match=r"^config key 'tasks\[0\]\.params"):
        validate_config(config)


@pytest.mark.parametrize(
    ("given", "written"),
    [
        ("results", "results"),
        ("results/", "results"),
        ("./results-paper", "results-paper"),
        ("runs//paper/", "runs/paper"),
        ("/data/moemui/paper", "/data/moemui/paper"),
    ],
)
def test_results_directory_is_normalised(tiny_config, given, written):
    """As every workflow path writes it: `results/` and `results` are one directory."""
    config = validate_config(tiny_config(results=given))
    assert config["results"] == written
    assert validate_config(copy.deepcopy(config)) == config


def test_existing_results_directory_is_accepted(tiny_config, tmp_path):
    (tmp_path / "runs").mkdir()
    assert validate_config(tiny_config(results=str(tmp_path / "runs")))["results"] == str(
        tmp_path / "runs"
    )
