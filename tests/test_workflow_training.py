"""The workflow on a trained checkpoint series: training once, trajectory, incremental."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from test_workflow import finished_rules, job_counts

from moemui.trajectory import TRAJECTORY_COLUMNS

SMOKE = {"id": "smoke", "source": "trained:olmoe_smoke", "family": "olmoe", "release": 1}
TASK = {"id": "boolean", "source": "builtin:boolean_expressions", "n": 4}


@pytest.fixture(scope="module")
def series_run(tmp_path_factory, tiny_config, write_config, run_snakemake):
    workdir = tmp_path_factory.mktemp("series")
    config = tiny_config(models=[], tasks=[TASK], series=[{**SMOKE, "checkpoints": [{"step": 10}]}])
    write_config(workdir, config)
    proc = run_snakemake(workdir)
    assert proc.returncode == 0, proc.stdout[-6000:]
    return workdir, proc.stdout


@pytest.mark.workflow
def test_series_trains_once_and_writes_the_trajectory(series_run):
    workdir, output = series_run
    assert finished_rules(output).count("train_model") == 1
    assert (workdir / "results/training/olmoe_smoke/step-00010/model.safetensors").exists()
    assert (workdir / "results/training/olmoe_smoke/training_log.csv").exists()
    table = pd.read_csv(workdir / "results/tables/trajectory.csv", keep_default_na=False)
    assert list(table.columns) == TRAJECTORY_COLUMNS
    assert set(table["model"]) == {"smoke-step10"}
    assert len(table) == 2 * 3  # variants x thresholds
    assert (table["phase"] == "").all()  # a single checkpoint has no previous one


@pytest.mark.workflow
def test_adding_a_checkpoint_runs_only_its_jobs(
    series_run, tiny_config, write_config, run_snakemake
):
    workdir, _ = series_run
    copy = workdir.parent / "series-more"
    shutil.copytree(workdir, copy, symlinks=True, copy_function=shutil.copy2)
    config = tiny_config(
        models=[], tasks=[TASK], series=[{**SMOKE, "checkpoints": [{"step": 10}, {"step": 20}]}]
    )
    write_config(copy, config)
    dry = run_snakemake(copy, "-n", timeout=300)
    assert dry.returncode == 0, dry.stdout[-4000:]
    counts = job_counts(dry.stdout)
    # the whole-experiment analysis and chart jobs re-run too (once each)
    analyses = {
        rule
        for rule in counts
        if rule.startswith("draw_")
        or rule == "bundle_vega"
        or rule in {"tabulate_experts", "tabulate_robustness", "tabulate_diversity"}
        or rule == "tabulate_mui_performance"
    }
    assert all(counts.pop(rule) == 1 for rule in analyses)
    assert counts == {
        "generate_responses": 1,
        "capture_scores": 1,
        "derive_keys": 1,
        "compute_mui": 1,
        "aggregate_mui": 1,
        "tabulate_performance": 1,
        "index_store": 1,
        "tabulate_trajectory": 1,
        "all": 1,
    }
    run = run_snakemake(copy)
    assert run.returncode == 0, run.stdout[-4000:]
    table = pd.read_csv(copy / "results/tables/trajectory.csv", keep_default_na=False)
    assert table.groupby("model")["step"].first().to_dict() == {
        "smoke-step10": 10,
        "smoke-step20": 20,
    }
    later = table[table["step"] == 20]
    assert set(later["phase"]) <= {"accumulating", "evolving", "declining", "stable"}
    assert len(later) == 6
