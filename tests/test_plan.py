"""``moemui plan``: samples, K, store bytes and weight memory per (model, task), from
configs alone (builtin recipes, a local config.json, the Hugging Face cache)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from moemui.adapters import adapter_for
from moemui.errors import MoemuiError
from moemui.metrics import k_for
from moemui.plan import KEPT_BYTES, format_plan, plan_rows, read_config, store_bytes_per_sample
from moemui.recipes import init_model, recipe_config

CONFIG = {
    "models": [
        {"id": "olmoe-tiny", "source": "builtin:olmoe_tiny"},
        {"id": "local-ds", "source": "local:PLACEHOLDER", "dtype": "bfloat16"},
        {"id": "hub-model", "source": "nobody/not-cached-moe", "revision": "v1"},
    ],
    "tasks": [
        {"id": "arithmetic", "source": "builtin:arithmetic", "n": 7},
        {"id": "gsm8k", "source": "hf:gsm8k"},
        {"id": "mmlu-part", "source": "hf:mmlu", "n": 100},
    ],
    "capture": {"max_threshold": 0.01, "variants": ["gate", "glu", "act"]},
}


@pytest.fixture
def config_file(tmp_path):
    model = init_model(recipe_config("deepseek_v2_tiny"), 0)
    model.config.architectures = [type(model).__name__]  # as save_pretrained writes it
    model.config.save_pretrained(tmp_path / "ds")  # config.json only: no weights
    config = json.loads(json.dumps(CONFIG).replace("PLACEHOLDER", str(tmp_path / "ds")))
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path, model


def test_rows_against_an_independent_count(config_file, tmp_path):
    path, ds_model = config_file
    (tmp_path / "results" / "tasks").mkdir(parents=True)
    (tmp_path / "results" / "tasks" / "gsm8k.jsonl").write_text('{"id": 1}\n' * 5 + "\n")
    config = read_config([path], None)
    rows = {(r["model"], r["task"]): r for r in plan_rows(config, tmp_path / "results")}
    assert len(rows) == 9
    # samples: the config's n, a materialised task file, published rows capped by n
    assert rows["olmoe-tiny", "arithmetic"]["samples"] == 7
    assert rows["olmoe-tiny", "gsm8k"]["samples"] == 5
    assert rows["olmoe-tiny", "mmlu-part"]["samples"] == 100
    for model_id, model, dtype_bytes in (
        ("olmoe-tiny", init_model(recipe_config("olmoe_tiny"), 0), 4),
        ("local-ds", ds_model, 2),
    ):
        geo = adapter_for(model).geometry(model)
        n_exp, n_neu = geo.experts_per_layer, geo.neurons_per_expert
        k_top = k_for(0.01, n_exp * n_neu)
        per_layer = 3 * (KEPT_BYTES * k_top + 4 * k_top) + 8 * n_exp
        per_sample = len(geo.moe_layers) * per_layer + 16
        row = rows[model_id, "arithmetic"]
        assert row["k_top"] == k_top and row["problem"] is None
        assert row["store_bytes"] == 7 * per_sample
        assert row["weight_bytes"] == dtype_bytes * sum(p.numel() for p in model.parameters())
        full = store_bytes_per_sample(geo.as_dict(), k_top, 3, "all")
        assert full == len(geo.moe_layers) * (3 * (4 * n_exp * n_neu + 4 * k_top) + 8 * n_exp) + 16
    hub = rows["hub-model", "gsm8k"]
    assert hub["store_bytes"] is None and hub["weight_bytes"] is None
    assert hub["problem"] == (
        "model 'hub-model': config of nobody/not-cached-moe@v1 not in the Hugging Face cache"
    )
    text = format_plan(list(rows.values()), "key")
    assert "total store (keep: key):" in text and "(3 cells unknown)" in text
    assert "largest model: olmoe-tiny" in text or "largest model: local-ds" in text


def test_the_command_merges_config_files_like_snakemake(config_file, tmp_path):
    path, _ = config_file
    default = tmp_path / "default.yaml"
    default.write_text(yaml.safe_dump({"capture": {"keep": "all"}}), encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-m", "moemui.cli", "plan", "--configfile", str(path),
         "--default", str(default), "--results", str(tmp_path / "none")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "total store (keep: all):" in out.stdout  # the default's key kept, the rest merged
    assert "olmoe-tiny" in out.stdout and "1319" in out.stdout  # GSM8K's published test rows


def test_a_missing_config_file_is_named(tmp_path):
    with pytest.raises(MoemuiError, match=r"nope.yaml: config file not found"):
        read_config([tmp_path / "nope.yaml"], None)
