"""Config values a job would reject (or would turn into wrong tables) are rejected by
:func:`moemui.config.validate_config`, before any job, naming the key.

Beyond ``tests/test_config.py``: integers written as floats, NaN and infinities, sizes
over :mod:`moemui.limits`, duplicates (series ids, thresholds and rhos equal at the
tables' precision), input paths Snakemake would read otherwise than the validator, and
non-ASCII digits. The workflow test proves that such a config leaves a finished run's
outputs untouched.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
from pathlib import Path

import pytest
import yaml
from test_config import _set, assert_rejected

from moemui import limits
from moemui.cli import build_parser
from moemui.config import load_schema, validate_config
from moemui.errors import MoemuiError

INT_HINT = "is not of type 'integer'"
NOT_FINITE = "is not a finite number"
ABOVE = "is greater than the maximum of"


def _series(*entries: dict):
    return _set("series", list(entries))


def _trained_series(sid: str = "ser", steps=(150,)) -> dict:
    return {"id": sid, "source": "trained:olmoe_v2", "checkpoints": [{"step": s} for s in steps]}


def _file(name: str, text: str = '{"id": "a", "prompt": "1+1=", "reference": "2"}\n'):
    """A callable making ``tmp_path/name`` (directories too) and returning its path."""

    def make(tmp_path: Path) -> str:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return str(path)

    return make


def _jsonl_task(name: str):
    return _set("tasks.1", lambda tmp: {"id": "mine", "source": f"jsonl:{_file(name)(tmp)}"})


def _hf_task(path):
    return _set(
        "tasks.1",
        lambda tmp: {
            "id": "arc",
            "source": "hf:arc_challenge",
            "path": path(tmp) if callable(path) else path,
        },
    )


def _responses(name: str):
    return _set("models.0.responses", lambda tmp: {"arithmetic": f"jsonl:{_file(name)(tmp)}"})


NAN, INF = float("nan"), float("inf")
CONTEXT_4 = '{"model_type": "olmoe", "max_position_embeddings": 4}'

# (case id, mutator, the key the message must name, a phrase the message must contain)
FAULTS = [
    # ---- integers written as floats (jsonschema's own `integer` takes 64.0) ----------
    ("n-float", _set("tasks.0.n", 64.0), "tasks[0].n", "64.0 is not of type 'integer' (write 64"),
    (
        "gen-max-new-float",
        _set("generation.max_new_tokens", 8.0),
        "generation.max_new_tokens",
        INT_HINT,
    ),
    ("gen-batch-1e20", _set("generation.batch_size", 1.0e20), "generation.batch_size", INT_HINT),
    ("capture-batch-float", _set("capture.batch_size", 3.0), "capture.batch_size", INT_HINT),
    ("model-seed-float", _set("models.0.seed", 1.0), "models[0].seed", INT_HINT),
    (
        "model-max-new-float",
        _set("models.1.max_new_tokens", 16.0),
        "models[1].max_new_tokens",
        INT_HINT,
    ),
    ("model-release-float", _set("models.0.release", 1.0), "models[0].release", INT_HINT),
    ("task-seed-float", _set("tasks.1.seed", 0.0), "tasks[1].seed", INT_HINT),
    (
        "task-max-new-float",
        _set("tasks.0.max_new_tokens", 4.0),
        "tasks[0].max_new_tokens",
        INT_HINT,
    ),
    ("task-n-bool", _set("tasks.0.n", True), "tasks[0].n", INT_HINT),
    (
        "series-step-float",
        _series({"id": "ser", "source": "trained:olmoe_v2", "checkpoints": [{"step": 150.0}]}),
        "series[0].checkpoints[0].step",
        INT_HINT,
    ),
    ("top-experts-float", _set("analyses.top_experts", 10.0), "analyses.top_experts", INT_HINT),
    (
        "sizes-float",
        _set("analyses.diversity.sizes", [1, 2.0]),
        "analyses.diversity.sizes[1]",
        INT_HINT,
    ),
    ("draws-float", _set("analyses.diversity.draws", 5.0), "analyses.diversity.draws", INT_HINT),
    (
        "diversity-seed-float",
        _set("analyses.diversity.seed", 0.0),
        "analyses.diversity.seed",
        INT_HINT,
    ),
    (
        "ablation-seeds-float",
        _set("analyses.ablation.seeds", [0, 1.0]),
        "analyses.ablation.seeds[1]",
        INT_HINT,
    ),
    (
        "ablation-n-float",
        _set("analyses.ablation.n_samples", 64.0),
        "analyses.ablation.n_samples",
        INT_HINT,
    ),
    (
        "ablation-max-new-float",
        _set("analyses.ablation.max_new_tokens", 8.0),
        "analyses.ablation.max_new_tokens",
        INT_HINT,
    ),
    # ---- NaN and infinities, anywhere ---------------------------------------------------
    ("thresholds-nan", _set("thresholds", [NAN]), "thresholds[0]", f"nan {NOT_FINITE}"),
    ("thresholds-inf", _set("thresholds", [0.001, INF]), "thresholds[1]", f"inf {NOT_FINITE}"),
    ("max-threshold-nan", _set("capture.max_threshold", NAN), "capture.max_threshold", NOT_FINITE),
    ("rho-nan", _set("analyses.rho", [0.1, NAN]), "analyses.rho[1]", NOT_FINITE),
    ("analyses-threshold-nan", _set("analyses.threshold", NAN), "analyses.threshold", NOT_FINITE),
    (
        "ablation-threshold-ninf",
        _set("analyses.ablation.thresholds", [0.001, -INF]),
        "analyses.ablation.thresholds[1]",
        "-inf",
    ),
    (
        "gen-max-new-inf",
        _set("generation.max_new_tokens", INF),
        "generation.max_new_tokens",
        NOT_FINITE,
    ),
    (
        "builtin-param-nan",
        _set("tasks.0.params", {"digits": NAN}),
        "tasks[0].params.digits",
        NOT_FINITE,
    ),
    (
        "template-kwarg-nan",
        _set("models.0.chat_template_kwargs", {"temperature": NAN}),
        "models[0].chat_template_kwargs.temperature",
        NOT_FINITE,
    ),
    ("n-nan", _set("tasks.1.n", NAN), "tasks[1].n", NOT_FINITE),
    # ---- sizes a job cannot hold (moemui.limits) ---------------------------------------
    ("n-1e12", _set("tasks.0.n", 1_000_000_000_000), "tasks[0].n", f"{ABOVE} 10000000"),
    (
        "gen-batch-over",
        _set("generation.batch_size", 65_537),
        "generation.batch_size",
        f"{ABOVE} 65536",
    ),
    (
        "capture-batch-over",
        _set("capture.batch_size", 10**9),
        "capture.batch_size",
        f"{ABOVE} 65536",
    ),
    (
        "gen-max-new-over",
        _set("generation.max_new_tokens", 2**20 + 1),
        "generation.max_new_tokens",
        f"{ABOVE} 1048576",
    ),
    (
        "model-max-new-over",
        _set("models.0.max_new_tokens", 10**7),
        "models[0].max_new_tokens",
        ABOVE,
    ),
    ("task-max-new-over", _set("tasks.1.max_new_tokens", 10**9), "tasks[1].max_new_tokens", ABOVE),
    ("model-seed-over", _set("models.0.seed", 2**32), "models[0].seed", f"{ABOVE} 4294967295"),
    ("task-seed-over", _set("tasks.0.seed", 2**64), "tasks[0].seed", f"{ABOVE} 4294967295"),
    (
        "draws-over",
        _set("analyses.diversity.draws", 10**5),
        "analyses.diversity.draws",
        f"{ABOVE} 10000",
    ),
    (
        "sizes-over",
        _set("analyses.diversity.sizes", [1, 10**8]),
        "analyses.diversity.sizes[1]",
        ABOVE,
    ),
    (
        "diversity-seed-over",
        _set("analyses.diversity.seed", 2**33),
        "analyses.diversity.seed",
        ABOVE,
    ),
    (
        "ablation-seeds-over",
        _set("analyses.ablation.seeds", [2**40]),
        "analyses.ablation.seeds[0]",
        ABOVE,
    ),
    (
        "ablation-n-over",
        _set("analyses.ablation.n_samples", 10**9),
        "analyses.ablation.n_samples",
        ABOVE,
    ),
    (
        "ablation-max-new-over",
        _set("analyses.ablation.max_new_tokens", 2**21),
        "analyses.ablation.max_new_tokens",
        ABOVE,
    ),
    ("top-experts-over", _set("analyses.top_experts", 10**7), "analyses.top_experts", ABOVE),
    ("release-over", _set("models.1.release", 10**13), "models[1].release", ABOVE),
    (
        "series-step-over",
        _series(_trained_series(steps=(10**13,))),
        "series[0].checkpoints[0].step",
        ABOVE,
    ),
    # ---- what the model jobs ask a cluster for (resources, model_resources) -------------
    (
        "model-gpu-float",
        _set("models.0.resources", {"gpu": 1.0}),
        "models[0].resources.gpu",
        "1.0 is not of type 'integer' (write 1",
    ),
    (
        "model-gpu-negative",
        _set("models.1.resources", {"gpu": -1}),
        "models[1].resources.gpu",
        "-1 is less than the minimum of 0",
    ),
    (
        "model-gpu-over",
        _set("models.1.resources", {"gpu": 65, "mem_mb": 1000}),
        "models[1].resources.gpu",
        f"{ABOVE} 64",
    ),
    (
        "model-mem-over",
        _set("models.0.resources", {"mem_mb": 2**26 + 1}),
        "models[0].resources.mem_mb",
        f"{ABOVE} 67108864",
    ),
    (
        "model-mem-zero",
        _set("models.0.resources", {"mem_mb": 0}),
        "models[0].resources.mem_mb",
        "0 is less than the minimum of 1",
    ),
    (
        "model-mem-human",
        _set("models.0.resources", {"mem_mb": "32G"}),
        "models[0].resources.mem_mb",
        "'32G' is not of type 'integer'",
    ),
    (
        "model-runtime-over",
        _set("models.1.resources", {"runtime": 10**6}),
        "models[1].resources.runtime",
        f"{ABOVE} 525600",
    ),
    (
        "model-cpus-over",
        _set("models.0.resources", {"cpus_per_task": 4097}),
        "models[0].resources.cpus_per_task",
        f"{ABOVE} 4096",
    ),
    (
        "model-gpu-model-space",
        _set("models.0.resources", {"gpu": 1, "gpu_model": "a100 80gb"}),
        "models[0].resources.gpu_model",
        "does not match",
    ),
    (
        "model-resources-gres",
        _set("models.1.resources", {"gres": "gpu:1"}),
        "models[1].resources.gres",
        "unknown key",
    ),
    (
        "model-resources-nan",
        _set("models.0.resources", {"runtime": NAN}),
        "models[0].resources.runtime",
        NOT_FINITE,
    ),
    (
        "series-gpu-over",
        _series({**_trained_series(), "resources": {"gpu": 100}}),
        "series[0].resources.gpu",
        f"{ABOVE} 64",
    ),
    (
        "checkpoint-resources",
        _series({**_trained_series(), "checkpoints": [{"step": 150, "resources": {"gpu": 1}}]}),
        "series[0].checkpoints[0].resources",
        "unknown key",
    ),
    (
        "default-mem-over",
        _set("model_resources", {"mem_mb": 10**9}),
        "model_resources.mem_mb",
        ABOVE,
    ),
    (
        "default-gpu-negative",
        _set("model_resources", {"gpu": -2}),
        "model_resources.gpu",
        "-2 is less than the minimum of 0",
    ),
    (
        "default-unknown",
        _set("model_resources", {"partition": "gpu"}),
        "model_resources.partition",
        "unknown key",
    ),
    # ---- duplicates ----------------------------------------------------------------------
    (
        "series-id-twice",
        _series(_trained_series(steps=(150,)), _trained_series(steps=(300,))),
        "series[1].id",
        "duplicate series id 'ser' (also series[0])",
    ),
    (
        "series-id-twice-same-steps",
        _series(_trained_series(), _trained_series()),
        "series[1].id",
        "duplicate series id 'ser'",
    ),
    (
        "checkpoint-id-is-a-model-id",
        lambda c, t: (
            c["models"].append({"id": "ser-step150", "source": "builtin:olmoe_tiny"}),
            c.update(series=[_trained_series()]),
        ),
        "series[0].id",
        "duplicate model id 'ser-step150' (also models[2].id)",
    ),
    (
        "task-id-third",
        lambda c, t: c["tasks"].append({"id": "arithmetic", "source": "builtin:arithmetic"}),
        "tasks[2].id",
        "duplicate id 'arithmetic' (also tasks[0])",
    ),
    (
        "thresholds-equal-at-10-digits",
        _set("thresholds", [0.001, 0.0010000000001]),
        "thresholds[1]",
        "too close to thresholds[0] (0.001): the tables (10 significant digits, 0.001 and 0.001)",
    ),
    (
        "thresholds-equal-later",
        _set("thresholds", [0.002, 0.001, 0.00100000000004]),
        "thresholds[2]",
        "is too close to thresholds[1]",
    ),
    (
        "thresholds-close-for-the-charts",
        _set("thresholds", [0.001, 0.0010000001]),
        "thresholds[1]",
        "(10 significant digits, 0.0010000001 and 0.001) or the charts (within 1e-8 + 1e-5",
    ),
    (
        "rho-close-for-robustness",
        _set("analyses.rho", [0.1, 0.5, 0.500001]),
        "analyses.rho[2]",
        "is too close to analyses.rho[1] (0.5)",
    ),
    (
        "rho-close-to-zero",
        _set("analyses.rho", [1e-9, 0.5]),
        "analyses.rho[0]",
        "too close to rho = 0, which is always reported",
    ),
    ("rho-twice", _set("analyses.rho", [0.1, 0.1]), "analyses.rho", "non-unique"),
    (
        "rho-equal-at-10-digits",
        _set("analyses.rho", [0.5, 0.50000000001]),
        "analyses.rho[1]",
        "is too close to analyses.rho[0] (0.5)",
    ),
    # ---- input paths Snakemake reads otherwise ------------------------------------------
    (
        "jsonl-tilde",
        _set("tasks.1", {"id": "mine", "source": "jsonl:~/file.jsonl"}),
        "tasks[1].source",
        "starts with '~'",
    ),
    ("jsonl-wildcard", _jsonl_task("{task}.jsonl"), "tasks[1].source", "contains '{' or '}'"),
    (
        "jsonl-brace",
        _jsonl_task("a}b/mine.jsonl"),
        "tasks[1].source",
        "Snakemake reads as a wildcard",
    ),
    (
        "jsonl-blank",
        _set("tasks.1", {"id": "mine", "source": "jsonl:  "}),
        "tasks[1].source",
        "empty path",
    ),
    ("hf-path-tilde", _hf_task("~/data/arc"), "tasks[1].path", "starts with '~'"),
    ("hf-path-brace", _hf_task(_file("{x}/arc.jsonl")), "tasks[1].path", "contains '{'"),
    ("hf-path-blank", _hf_task(" "), "tasks[1].path", "empty path"),
    ("responses-brace", _responses("{model}.jsonl"), "models[0].responses.arithmetic", "wildcard"),
    ("local-empty", _set("models.0.source", "local:"), "models[0].source", "empty path"),
    # ---- the results directory: every workflow path starts with it ----------------------
    ("results-empty", _set("results", ""), "results", "empty path"),
    ("results-blank", _set("results", "  "), "results", "empty path"),
    ("results-wildcard", _set("results", "out/{model}"), "results", "contains '{' or '}'"),
    ("results-brace", _set("results", "out}"), "results", "Snakemake reads as a wildcard"),
    ("results-tilde", _set("results", "~/moemui"), "results", "starts with '~'"),
    ("results-dot", _set("results", "./"), "results", "is the working directory"),
    ("results-file", _set("results", _file("out.txt")), "results", "out.txt is a file"),
    # ---- digits and YAML values ---------------------------------------------------------
    (
        "trained-superscript-step",
        _set("models.0.source", "trained:olmoe_v1@²"),
        "models[0].source",
        "saves no checkpoint at step '²'",
    ),
    (
        "trained-arabic-indic-step",
        _set("models.0.source", "trained:olmoe_v1@٢٠٠"),
        "models[0].source",
        "saves no checkpoint at step '٢٠٠'",
    ),
    (
        "template-kwarg-int-key",
        _set("models.0.chat_template_kwargs", {"a": 1, 2: "b"}),
        "models[0].chat_template_kwargs[2]",
        "the key 2 is a YAML int, not a string",
    ),
    (
        "jsonl-n-over-rows",
        lambda c, tmp: c["tasks"].__setitem__(
            1, {"id": "mine", "source": f"jsonl:{_file('t.jsonl')(tmp)}", "n": 2}
        ),
        "tasks[1].n",
        "has only 1 samples",
    ),
    (
        "template-kwarg-date",
        _set("models.1.chat_template_kwargs", {"today": datetime.date(2024, 1, 1)}),
        "models[1].chat_template_kwargs.today",
        "is a YAML date",
    ),
    # ---- shards: each needs a sample; the jobs would split nothing ------------------
    (
        "shards-over-builtin-n",
        _set("tasks.0.shards", 5),
        "tasks[0].shards",
        "5 shards but the task has 4 samples (each shard needs one)",
    ),
    (
        "shards-over-jsonl-rows",
        _set(
            "tasks.1",
            lambda tmp: {"id": "mine", "source": f"jsonl:{_file('one.jsonl')(tmp)}", "shards": 2},
        ),
        "tasks[1].shards",
        "2 shards but the task has 1 samples",
    ),
    ("shards-zero", _set("tasks.0.shards", 0), "tasks[0].shards", "less than the minimum of 1"),
    ("shards-float", _set("tasks.0.shards", 2.0), "tasks[0].shards", INT_HINT),
    ("shards-over-limit", _set("tasks.0.shards", limits.MAX_SHARDS + 1), "tasks[0].shards", ABOVE),
    # ---- response budgets that fill a model's whole context (generation would fail) ---
    (
        "budget-fills-builtin-context",
        _set("generation.max_new_tokens", 512),
        "generation.max_new_tokens",
        "512 new tokens leave no room for the prompt of task 'arithmetic' in the context "
        "of model 'olmoe-tiny' (512 positions); use at most 511",
    ),
    (
        "task-budget-fills-context",
        _set("tasks.1.max_new_tokens", 600),
        "tasks[1].max_new_tokens",
        "of task 'boolean' in the context of model 'olmoe-tiny' (512 positions)",
    ),
    (
        "model-budget-fills-context",
        _set("models.1.max_new_tokens", 4096),
        "models[1].max_new_tokens",
        "in the context of model 'qwen2moe-tiny' (512 positions)",
    ),
    (
        "series-budget-fills-trained-context",
        _series({**_trained_series(), "max_new_tokens": 128}),
        "series[0].max_new_tokens",
        "in the context of model 'ser-step150' (128 positions); use at most 127",
    ),
    (
        "budget-fills-local-checkpoint-context",
        _set(
            "models.0.source",
            lambda tmp: str(Path(_file("ckpt/config.json", CONTEXT_4)(tmp)).parent),
        ),
        "generation.max_new_tokens",
        "4 new tokens leave no room for the prompt of task 'arithmetic' in the context of "
        "model 'olmoe-tiny' (4 positions)",
    ),
    (
        "ablation-budget-fills-context",
        _set(
            "analyses.ablation",
            {"cells": [{"model": "olmoe-tiny", "task": "arithmetic"}], "max_new_tokens": 512},
        ),
        "analyses.ablation.max_new_tokens",
        "in the context of model 'olmoe-tiny' (cells[0], 512 positions)",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "key", "phrase"),
    [pytest.param(m, k, p, id=case) for case, m, k, p in FAULTS],
)
def test_fault_is_rejected_naming_the_key(tiny_config, tmp_path, mutate, key, phrase):
    assert_rejected(tiny_config(), tmp_path, mutate, key, phrase)


def test_enough_distinct_faults():
    assert len(FAULTS) >= 40
    assert len({case for case, *_ in FAULTS}) == len(FAULTS)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("thresholds: [.nan]", "config key 'thresholds[0]': nan is not a finite number"),
        ("capture: {max_threshold: .NaN}", "config key 'capture.max_threshold': nan is not"),
        ("generation: {batch_size: 1.0e+20}", "config key 'generation.batch_size': 1e+20 is not"),
        ("analyses: {rho: [.inf]}", "config key 'analyses.rho[0]': inf is not a finite number"),
        ("models: [{id: d, source: builtin:olmoe_tiny, release: 2024-01-01}]", "models[0].release"),
    ],
)
def test_yaml_spellings(tiny_config, text, message):
    """The faults as YAML writes them (``.nan``, ``1.0e+20``, an unquoted date)."""
    config = tiny_config(**yaml.safe_load(text))
    with pytest.raises(MoemuiError) as info:
        validate_config(config)
    assert message in str(info.value)


def test_values_at_the_limits_are_accepted(tiny_config):
    config = tiny_config()
    config["tasks"][0]["n"] = limits.MAX_SAMPLES
    config["tasks"][0]["seed"] = limits.MAX_SEED
    config["generation"] = {"batch_size": limits.MAX_BATCH, "max_new_tokens": limits.MAX_NEW_TOKENS}
    config["thresholds"] = [0.001, 0.00101]  # 1e-5 apart: more than np.isclose's 2e-8
    config["analyses"] = {"rho": [0.0, 0.5], "diversity": {"draws": limits.MAX_DRAWS}}
    top = {
        "gpu": limits.MAX_GPUS,
        "gpu_model": "a100_80gb.mig",
        "mem_mb": limits.MAX_MEM_MB,
        "runtime": limits.MAX_RUNTIME_MINUTES,
        "cpus_per_task": limits.MAX_CPUS,
    }
    config["models"] = [{"id": "hub", "source": "example-org/not-in-the-cache", "resources": top}]
    config["model_resources"] = {**top, "gpu": 0}
    validate_config(config)  # the context of a Hub model not downloaded is not known
    config = tiny_config()
    config["models"][0]["source"] = "trained:olmoe_v1@200"
    config["generation"]["max_new_tokens"] = 127  # the trained recipes' context is 128
    validate_config(config)


def test_every_schema_integer_has_a_limit():
    """Every ``integer`` of the schema has a ``maximum``, one of :mod:`moemui.limits`."""
    known = {getattr(limits, name) for name in dir(limits) if name.startswith("MAX_")}
    found = []

    def walk(node, where):
        if isinstance(node, dict):
            if node.get("type") == "integer":
                assert node.get("maximum") in known, where
                found.append(where)
            for key, sub in node.items():
                walk(sub, f"{where}.{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                walk(sub, f"{where}[{i}]")

    walk(load_schema(), "schema")
    assert len(found) == 23


@pytest.mark.parametrize(
    "argv",
    [
        ["generate", "--batch-size", "64.0"],
        ["generate", "--max-new-tokens", "8.0"],
        ["generate", "--batch-size", str(limits.MAX_BATCH + 1)],
        ["capture", "--max-threshold", "nan"],
        ["keys", "--thresholds", "0.001", "inf"],
        ["ablate", "--seeds", "²"],
        ["diversity", "--draws", "0"],
        ["experts", "--rho", "1.0"],
    ],
    ids=lambda a: " ".join(a),
)
def test_cli_arguments_share_the_bounds(argv, capsys):
    parser = build_parser()
    with pytest.raises(SystemExit) as info:
        parser.parse_args(argv)
    assert info.value.code == 2
    assert f"argument {argv[1]}" in capsys.readouterr().err


# --------------------------------------------------------------------------------------
# Local benchmark datasets: read by the workflow's main process, as make_task would
# --------------------------------------------------------------------------------------

ARC = Path(__file__).parent / "fixtures" / "benchmarks" / "arc"  # 3 test rows, 2 train


@pytest.mark.parametrize(
    ("task", "key", "phrase"),
    [
        ({"n": 4}, "tasks[1].n", "4 but {path} gives only 3 samples of arc_challenge"),
        (
            {"params": {"k_shot": 3, "fewshot_split": "train"}},
            "tasks[1].params.k_shot",
            "k_shot=3 but split 'train' has 2 rows",
        ),
        (
            {"path": "BROKEN"},
            "tasks[1].path",
            "row 0 (arc_challenge/q1) does not fit the allenai/ai2_arc schema",
        ),
    ],
    ids=["n-beyond-rows", "k-shot-beyond-split", "row-off-schema"],
)
def test_local_benchmark_read_before_any_job(tiny_config, tmp_path, task, key, phrase):
    broken = tmp_path / "arc" / "ARC-Challenge" / "test.jsonl"
    broken.parent.mkdir(parents=True)
    broken.write_text('{"id": "q1", "question": "?"}\n', encoding="utf-8")
    path = str(tmp_path / "arc") if task.get("path") == "BROKEN" else str(ARC)
    entry = {"id": "arc", "source": "hf:arc_challenge", **task, "path": path}
    config = tiny_config()
    config["tasks"][1] = entry
    validate_config(copy.deepcopy(config))  # a job's process does not read the data
    with pytest.raises(MoemuiError) as info:
        validate_config(config, read_data=True)
    message = str(info.value)
    assert message.startswith(f"config key '{key}': "), message
    assert phrase.format(path=path) in message, message


def test_local_benchmark_that_fits_is_accepted(tiny_config):
    config = tiny_config()
    config["tasks"][1] = {"id": "arc", "source": "hf:arc_challenge", "n": 3, "path": str(ARC)}
    config["tasks"][1]["params"] = {"k_shot": 2, "fewshot_split": "train"}
    validate_config(config, read_data=True)


# --------------------------------------------------------------------------------------
# Through the workflow: a config mistake deletes nothing
# --------------------------------------------------------------------------------------

#: A finished run's outputs, as far as they are made by one model and one task.
TARGETS = ["results/tables/mui.csv", "results/tables/performance.csv"]


def _outputs(workdir: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under results/: (mtime_ns, bytes, sha256)."""
    return {
        str(p.relative_to(workdir)): (
            p.stat().st_mtime_ns,
            p.stat().st_size,
            hashlib.sha256(p.read_bytes()).hexdigest(),
        )
        for p in sorted((workdir / "results").rglob("*"))
        if p.is_file()
    }


@pytest.mark.workflow
def test_bad_config_leaves_a_finished_run_untouched(write_config, run_snakemake, tmp_path):
    good = {
        "models": [{"id": "olmoe-tiny", "source": "builtin:olmoe_tiny"}],
        "tasks": [{"id": "arithmetic", "source": "builtin:arithmetic", "n": 3}],
        "generation": {"max_new_tokens": 3, "batch_size": 3},
        "capture": {"batch_size": 3},
    }
    write_config(tmp_path, good)
    done = run_snakemake(tmp_path, *TARGETS, timeout=600)
    assert done.returncode == 0, done.stdout[-4000:]
    before = _outputs(tmp_path)
    for made in (
        "results/tasks/arithmetic.jsonl",
        "results/responses/olmoe-tiny/arithmetic.jsonl",
        "results/activations.zarr/olmoe-tiny/arithmetic/zarr.json",
        "results/tables/mui.csv",
    ):
        assert made in before, sorted(before)

    def task(**change):
        return {**good, "tasks": [{**good["tasks"][0], **change}]}

    arc = {"id": "arc", "source": "hf:arc_challenge", "path": str(ARC)}  # 3 samples

    bad = [
        (task(n=64.0), "config key 'tasks[0].n': 64.0 is not of type 'integer'"),
        ({**good, "generation": {"max_new_tokens": 8.0}}, "'generation.max_new_tokens'"),
        ({**good, "thresholds": [float("nan")]}, "config key 'thresholds[0]': nan"),
        ({**good, "capture": {"max_threshold": float("nan")}}, "'capture.max_threshold'"),
        (task(n=1_000_000_000_000), "'tasks[0].n': 1000000000000 is greater than"),
        (
            {
                **good,
                "series": [
                    {"id": "s", "source": "trained:olmoe_smoke", "checkpoints": [{"step": 10}]},
                    {"id": "s", "source": "trained:olmoe_smoke", "checkpoints": [{"step": 20}]},
                ],
            },
            "config key 'series[1].id': duplicate series id 's'",
        ),
        (
            {**good, "generation": {"max_new_tokens": 512}},
            "config key 'generation.max_new_tokens': 512 new tokens leave no room",
        ),
        (
            {**good, "tasks": [*good["tasks"], {**arc, "n": 4}]},
            "config key 'tasks[1].n': 4 but",
        ),
    ]
    for config, message in bad:
        write_config(tmp_path, config)
        proc = run_snakemake(tmp_path, *TARGETS, timeout=300)
        assert proc.returncode != 0, proc.stdout[-4000:]
        assert "invalid config" in proc.stdout and message in proc.stdout, proc.stdout[-4000:]
        assert "Job stats" not in proc.stdout
        assert _outputs(tmp_path) == before, message
