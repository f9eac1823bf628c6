"""Model sources: parsing, and the Hub helpers' errors when offline."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, python_without_heavy

from moemui.errors import MoemuiError
from moemui.recipes import RECIPES, TRAINED_RECIPES
from moemui.sources import ModelSource, parse_source, recipe_context, recipe_model_config


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("builtin:olmoe_tiny", ModelSource("builtin", "olmoe_tiny")),
        ("trained:olmoe_v2@150", ModelSource("trained", "olmoe_v2@150")),
        ("local:ckpt/step1", ModelSource("local", "ckpt/step1")),
        ("./ckpt", ModelSource("local", "./ckpt")),
        ("/abs/ckpt", ModelSource("local", "/abs/ckpt")),
        ("~/ckpt", ModelSource("local", "~/ckpt")),
        ("allenai/OLMoE-1B-7B-0924", ModelSource("hub", "allenai/OLMoE-1B-7B-0924")),
    ],
)
def test_parse_source(text, expected):
    assert parse_source(text) == expected


@pytest.mark.parametrize("text", ["", "olmoe", "a/b/c", "http://x/y"])
def test_unknown_source_is_named(text):
    with pytest.raises(MoemuiError, match="model 'm'"):
        parse_source(text, "m")


def test_relative_directory_that_exists_is_local(tmp_path, monkeypatch):
    """A relative path without ./ is a local directory when it is there (from the working
    directory); the same string is a Hub id, or no source at all, when it is not."""
    monkeypatch.chdir(tmp_path)
    nested, hub_like = "results/training/olmoe_v2/step-00600", "mm/olmoe"
    assert parse_source(hub_like) == ModelSource("hub", hub_like)
    with pytest.raises(MoemuiError, match="unknown model source 'results/training/"):
        parse_source(nested, "m")
    (tmp_path / nested).mkdir(parents=True)
    (tmp_path / hub_like).mkdir(parents=True)
    assert parse_source(nested) == ModelSource("local", nested)
    assert parse_source(hub_like) == ModelSource("local", hub_like)
    (tmp_path / "olmoe").write_text("a file, not a directory")
    with pytest.raises(MoemuiError, match="unknown model source 'olmoe'"):
        parse_source("olmoe", "m")


@pytest.mark.parametrize(
    "text",
    [f"builtin:{name}" for name in RECIPES]
    + [f"trained:{name}" for name in TRAINED_RECIPES]
    + ["trained:olmoe_v2@150"],
)
def test_recipe_context_is_the_recipe_configs(text):
    """The context the config's checks read without transformers is the one of the config
    the recipe makes (``max_position_embeddings``)."""
    source = parse_source(text)
    assert recipe_context(source) == recipe_model_config(source).max_position_embeddings


def test_recipe_context_of_other_sources_and_unknown_recipes():
    assert recipe_context(ModelSource("local", "./ckpt")) is None
    assert recipe_context(ModelSource("hub", "allenai/OLMoE-1B-7B-0924")) is None
    with pytest.raises(MoemuiError, match="unknown builtin recipe 'nope'"):
        recipe_context(ModelSource("builtin", "nope"))
    with pytest.raises(MoemuiError, match="nope"):
        recipe_context(ModelSource("trained", "nope"))


def test_the_config_checks_do_not_import_model_libraries():
    """Validating the default config (recipes, a trained series) runs with torch,
    transformers and the other heavy packages unimportable: every workflow parse runs the
    checks, each Slurm job's too."""
    code = (
        "import yaml\n"
        "from moemui.config import validate_config\n"
        "validate_config(yaml.safe_load(open('config/config.yaml', encoding='utf-8')))\n"
    )
    proc = python_without_heavy(code, REPO_ROOT)
    assert proc.returncode == 0, proc.stderr


def test_revisions_offline_names_the_repository(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "moemui.cli", "revisions", "allenai/OLMoE-1B-7B-0924"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith(
        "ERROR: cannot list the revisions of allenai/OLMoE-1B-7B-0924: "
    ), proc.stderr


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Save tiny models of some families (config and weights, no tokenizer)."""
    from test_families import tiny_model

    def save(model_type: str):
        path = tmp_path_factory.mktemp(model_type)
        tiny_model(model_type).save_pretrained(path)
        return path

    return save


def _inspect(argv, capsys):
    from moemui.cli import main

    code = main(["inspect", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("model_type", "expected"),
    [
        # shared MLP on the decoder layer: 32 wide = 2 virtual experts of 16
        ("granitemoeshared", {"routed_experts": 6, "shared_experts": 2, "top_k": 2}),
        # routing score on the experts' input; one shared expert of the expert width
        ("llama4_text", {"routed_experts": 6, "shared_experts": 1, "top_k": 1}),
        # Qwen2-MoE: gated shared expert (32 = 2 x 16), sigmoid gate
        ("qwen2_moe", {"shared_experts": 2, "shared_gate": "sigmoid", "normalise_topk": False}),
    ],
)
def test_inspect_saved_directory_without_tokenizer(saved, capsys, model_type, expected):
    import json

    path = saved(model_type)
    assert not (path / "tokenizer.json").exists()
    code, out, err = _inspect([str(path), "--json"], capsys)
    assert code == 0, err
    info = json.loads(out)
    for key in ("moe_layers", "dense_layers", "routed_experts", "shared_experts"):
        assert key in info
    assert info["neurons_per_expert"] == 16
    assert "scoring" in info and "normalise_topk" in info
    for key, value in expected.items():
        assert info[key] == value, (key, info)
    assert info["total_neurons"] == 16 * len(info["moe_layers"]) * (
        info["routed_experts"] + info["shared_experts"]
    )
    code, out, _ = _inspect([str(path)], capsys)
    assert code == 0 and "routed_experts: 6" in out


def test_unsupported_family_fails_with_its_reason(saved, capsys, monkeypatch):
    """A family listed in UNSUPPORTED fails at inspect, load and capture with its reason."""
    from moemui.adapters import UNSUPPORTED, adapter_for
    from moemui.sources import load_model

    reason = "its experts cannot be captured (a reason given for the test)"
    monkeypatch.setitem(UNSUPPORTED, "OlmoeForCausalLM", reason)
    path = saved("olmoe")
    code, _, err = _inspect([str(path)], capsys)
    assert code == 1
    assert err.strip().splitlines()[-1] == (
        f"ERROR: model {str(path)!r}: architecture OlmoeForCausalLM is not supported: {reason}"
    )
    with pytest.raises(MoemuiError, match="OlmoeForCausalLM is not supported: its experts"):
        load_model(str(path), "m", tokenizer=False, device="cpu")
    from test_families import tiny_model

    with pytest.raises(MoemuiError, match="OlmoeForCausalLM is not supported: its experts"):
        adapter_for(tiny_model("olmoe"))
