"""config/paper.yaml: the paper's models and benchmarks, valid and ready to run.

The file is merged into config/config.yaml by Snakemake (the Snakefile's configfile), as
a user running it from the repository root gets; the dry run needs no network.
"""

from __future__ import annotations

import shutil

import pytest
import yaml
from conftest import REPO_ROOT

from moemui.config import all_models, load_schema, model_resources, validate_config

PAPER = REPO_ROOT / "config" / "paper.yaml"
MODELS = {
    "olmoe-1b-7b": "allenai/OLMoE-1B-7B-0924",
    "olmoe-1b-7b-instruct": "allenai/OLMoE-1B-7B-0924-Instruct",
    "qwen1-5-moe-a2-7b": "Qwen/Qwen1.5-MoE-A2.7B",
    "qwen3-30b-a3b": "Qwen/Qwen3-30B-A3B",
    "deepseek-v2-lite": "deepseek-ai/DeepSeek-V2-Lite",
    "gpt-oss-20b": "openai/gpt-oss-20b",
    "mixtral-8x7b-instruct": "mistralai/Mixtral-8x7B-Instruct-v0.1",
}
BENCHMARKS = {"hf:arc_challenge", "hf:gsm8k", "hf:mbpp", "hf:bbh", "hf:mmlu"}
#: Weights in bfloat16, GB (GPT-OSS-20B with its MXFP4 experts dequantized).
WEIGHTS_GB = {
    "olmoe-1b-7b": 14,
    "olmoe-1b-7b-instruct": 14,
    "qwen1-5-moe-a2-7b": 29,
    "qwen3-30b-a3b": 61,
    "deepseek-v2-lite": 31,
    "gpt-oss-20b": 42,
    "mixtral-8x7b-instruct": 93,
}
GPU_GB = 80  # the GPUs the resources are sized for


def test_paper_config_validates():
    config = validate_config(yaml.safe_load(PAPER.read_text()), load_schema())
    assert {m["id"]: m["source"] for m in all_models(config)} == MODELS
    assert {m["dtype"] for m in config["models"]} == {"bfloat16"}
    assert {t["source"] for t in config["tasks"]} == BENCHMARKS
    assert config["thresholds"] == [0.0008, 0.001, 0.002]
    assert not any(m["trust_remote_code"] for m in config["models"])


def test_paper_config_has_a_results_directory_of_its_own():
    """Run after the default config, the paper's never writes into its results/."""
    config = validate_config(yaml.safe_load(PAPER.read_text()), load_schema())
    assert config["results"] == "results-paper"
    default = validate_config(
        yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text()), load_schema()
    )
    assert config["results"] != default["results"] == "results"


def test_paper_models_ask_for_what_their_weights_need():
    """Each model's jobs carry their own resources: as many 80 GB GPUs as its weights
    need (two for Mixtral only, spread over them by device_map), and host memory above
    its weights, which load there first."""
    config = validate_config(yaml.safe_load(PAPER.read_text()), load_schema())
    assert set(WEIGHTS_GB) == set(MODELS)
    gpus = {}
    for model in all_models(config):
        own = model["resources"]
        assert {"gpu", "mem_mb", "runtime"} <= set(own), model["id"]
        assert model_resources(config, model) == own  # nothing left to the defaults
        weights = WEIGHTS_GB[model["id"]]
        gpus[model["id"]] = own["gpu"]
        assert own["gpu"] == -(-weights // GPU_GB), model["id"]  # the fewest that hold it
        assert (own["gpu"] > 1) == (model["device_map"] == "auto"), model["id"]
        assert own["mem_mb"] >= 2 * weights * 1000, model["id"]
    assert {m for m, n in gpus.items() if n != 1} == {"mixtral-8x7b-instruct"}
    assert gpus["mixtral-8x7b-instruct"] == 2


@pytest.mark.workflow
def test_paper_config_dry_runs_merged_into_the_default(tmp_path, run_snakemake):
    (tmp_path / "config").mkdir()
    shutil.copy(REPO_ROOT / "config" / "config.yaml", tmp_path / "config" / "config.yaml")
    shutil.copy(PAPER, tmp_path / "config.yaml")  # the runner passes workdir/config.yaml
    dry = run_snakemake(tmp_path, "-n", "-p", timeout=300)
    assert dry.returncode == 0, dry.stdout[-4000:]
    from test_workflow import job_counts

    # each model's generation settings reach its generate commands
    commands = [" ".join(c.split()) for c in dry.stdout.split("moemui --threads")]
    commands = [c for c in commands if " generate " in c[:20]]
    assert len(commands) == len(MODELS) * len(BENCHMARKS)
    gpt = [c for c in commands if "--model-id gpt-oss-20b " in c]
    assert len(gpt) == len(BENCHMARKS)
    assert all("--max-new-tokens 2048 --reasoning harmony" in c for c in gpt)
    assert all("""'{"reasoning_effort": "low"}'""" in c for c in gpt)
    qwen3 = [c for c in commands if "--model-id qwen3-30b-a3b " in c]
    assert all("""'{"enable_thinking": false}' """ in c and "--reasoning think" in c for c in qwen3)
    base = [c for c in commands if "--model-id olmoe-1b-7b " in c]
    assert all("--reasoning none --chat-template-kwargs '{}'" in c for c in base)
    # into the paper's own results directory, never the default's results/
    assert all(" --out results-paper/responses/" in c for c in commands)
    assert " results/" not in dry.stdout and "'results/" not in dry.stdout

    # each model's resources reach its model jobs: two GPUs for Mixtral's only
    from test_slurm import dry_run_resources

    gpus: dict[str, set[str]] = {}
    for (_, model), resources in dry_run_resources(dry.stdout).items():
        gpus.setdefault(model, set()).add(resources["gpu"])
    assert gpus == {m: {"2" if m == "mixtral-8x7b-instruct" else "1"} for m in MODELS}

    counts = job_counts(dry.stdout)
    cells = len(MODELS) * len(BENCHMARKS)
    assert counts["make_task"] == len(BENCHMARKS)
    assert counts["generate_responses"] == counts["capture_scores"] == cells
    assert counts["derive_keys"] == counts["compute_mui"] == cells
    assert not {"train_model", "build_model", "ablate_neurons"} & set(counts)
