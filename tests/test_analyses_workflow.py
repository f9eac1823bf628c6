"""The analysis and chart rules end to end: the tiny workflow with an ablation cell, its
tables and charts, the report, and re-runs when only analysis settings change.

Runs the real ``snakemake`` CLI in temporary directories (about two minutes on 2 cores).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_workflow import chart_jobs

from moemui.analyses.ablation import ABLATION_SUMMARY_COLUMNS
from moemui.analyses.experts import (
    EXPERT_COLUMNS,
    KEY_EXPERT_COLUMNS,
    TOP_EXPERT_COLUMNS,
    TOP_KEY_EXPERT_COLUMNS,
)
from moemui.analyses.robustness import ROBUSTNESS_COLUMNS

MODEL_RULES = {"build_model", "make_task", "generate_responses", "capture_scores"}
ANALYSIS_RULES = {
    "tabulate_experts",
    "tabulate_robustness",
    "tabulate_mui_performance",
    "tabulate_diversity",
    "ablate_neurons",
    "aggregate_ablation",
}
CHARTS = [
    "mui_performance",
    "key_experts",
    "top_experts",
    "top_key_experts",
    "threshold_robustness",
    "diversity",
    "ablation",
]
ANALYSES = {
    "variant": "glu",
    "threshold": 0.001,
    "rho": [0.25],
    "top_experts": 5,
    "diversity": {"sizes": [1, 2, 4], "draws": 3, "seed": 1},
    "ablation": {
        "cells": [{"model": "olmoe-tiny", "task": "boolean"}],
        "seeds": [0, 1],
        "n_samples": 3,
        "max_new_tokens": 3,
    },
}


def job_counts(output: str) -> dict[str, int]:
    lines = [line.strip() for line in output.splitlines()]
    if "Job stats:" not in lines:
        return {}
    counts: dict[str, int] = {}
    for line in lines[lines.index("Job stats:") + 3 :]:
        match = re.fullmatch(r"(\w+)\s+(\d+)", line)
        if not match or match[1] == "total":
            break
        counts[match[1]] = int(match[2])
    if "draw_chart" in counts:  # the one chart rule's jobs, counted per chart
        charts = list(chart_jobs(output).values())
        assert len(charts) == counts.pop("draw_chart"), charts
        for chart in charts:
            counts[f"draw_{chart}"] = counts.get(f"draw_{chart}", 0) + 1
    return counts


@pytest.fixture(scope="module")
def analyses_run(tmp_path_factory, tiny_config, write_config, run_snakemake):
    workdir = tmp_path_factory.mktemp("analyses")
    config = tiny_config(analyses=copy.deepcopy(ANALYSES))
    config["models"][0].update(family="olmoe", release=1)
    write_config(workdir, config)
    proc = run_snakemake(workdir, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"the tiny workflow failed:\n{proc.stdout[-6000:]}", pytrace=False)
    return workdir, proc.stdout, config


def _copy(run, tmp_path_factory, name) -> Path:
    workdir = tmp_path_factory.mktemp(name) / "run"
    shutil.copytree(run[0], workdir, symlinks=True, copy_function=shutil.copy2)
    return workdir


@pytest.mark.workflow
def test_the_analysis_jobs_run(analyses_run):
    _, output, _ = analyses_run
    counts = job_counts(output)
    assert {rule: counts.get(rule) for rule in ANALYSIS_RULES} == {
        "tabulate_experts": 1,
        "tabulate_robustness": 1,
        "tabulate_mui_performance": 1,
        "tabulate_diversity": 1,
        "ablate_neurons": 1,
        "aggregate_ablation": 1,
    }
    assert counts["bundle_vega"] == 1
    assert {f"draw_{c}" for c in CHARTS} <= set(counts)
    assert "draw_trajectory" not in counts  # no checkpoint series in this config


@pytest.mark.workflow
def test_the_analysis_tables(analyses_run):
    tables = analyses_run[0] / "results" / "tables"
    experts = pd.read_csv(tables / "experts.csv")
    assert list(experts.columns) == EXPERT_COLUMNS
    # 4 cells x 2 variants x 3 thresholds x 2 MoE layers x 16 experts
    assert len(experts) == 4 * 2 * 3 * 2 * 16
    assert experts["key_rate"].between(0, 1).all()
    keys = pd.read_csv(tables / "key_experts.csv")
    assert list(keys.columns) == KEY_EXPERT_COLUMNS
    assert sorted(set(keys["rho"])) == [0.0, 0.25]
    shared = keys[keys["model"] == "qwen2moe-tiny"]
    assert (shared["shared_experts"] == 4).all()  # 2 virtual shared experts x 2 layers
    assert (keys.loc[keys["model"] == "olmoe-tiny", "shared_key_share"] == 0).all()
    # the key-neuron count is MUI's numerator
    mui = pd.read_csv(tables / "mui.csv")
    both = keys[keys["rho"] == 0].merge(mui, on=["model", "task", "variant", "threshold"])
    assert len(both) == len(mui)
    assert (both["key_neurons_x"] == both["key_neurons_y"]).all()
    top = pd.read_csv(tables / "top_experts.csv")
    assert list(top.columns) == TOP_EXPERT_COLUMNS
    assert (top.groupby(["model", "task"]).size() == 5).all()
    qwen_top = top[(top["model"] == "qwen2moe-tiny") & (top["rank"] <= 4)]
    assert (qwen_top["expert_kind"] == "shared").all()
    # the paper's view: by key rate, per variant and threshold, from the per-expert rows
    top_key = pd.read_csv(tables / "top_key_experts.csv")
    assert list(top_key.columns) == TOP_KEY_EXPERT_COLUMNS
    cell = ["model", "task", "variant", "threshold"]
    assert (top_key.groupby(cell).size() <= 5).all() and len(top_key.groupby(cell)) == 24
    assert (top_key["key_samples"] > 0).all()
    for key, ranked in top_key.groupby(cell):
        rows = experts[(experts[cell] == pd.Series(key, index=cell)).all(axis=1)]
        best = rows[rows["key_samples"] > 0].sort_values(
            ["key_rate", "expert_mui", "layer", "expert"],
            ascending=[False, False, True, True],
        )
        assert ranked["layer"].tolist() == best["layer"].head(5).tolist(), key
        assert ranked["expert"].tolist() == best["expert"].head(5).tolist(), key
        assert ranked["rank"].tolist() == list(range(1, len(ranked) + 1))
    # expert-level MUI: the key neurons' share of the expert's neurons (the store's N)
    store = analyses_run[0] / "results" / "activations.zarr"
    width = {m: json.loads((store / m / "arithmetic" / "neuron" / "zarr.json").read_text())
             ["shape"][0] for m in set(experts["model"])}  # fmt: skip
    np.testing.assert_allclose(
        experts["expert_mui"], experts["key_neurons"] / experts["model"].map(width)
    )
    robustness = pd.read_csv(tables / "robustness.csv", keep_default_na=False, na_values=[""])
    assert list(robustness.columns) == ROBUSTNESS_COLUMNS
    across = robustness[robustness["analysis"] == "mui_across_cells"]
    assert len(across) == 2 * 3 * 2  # variants x threshold pairs x (pearson, spearman)
    assert (across["n_cells"] == 4).all()
    fits = pd.read_csv(tables / "mui_performance_fits.csv")
    assert set(fits["family"]) == {"olmoe", "qwen2moe-tiny"}  # no family: the model id
    assert fits["slope"].isna().all()  # one model per family: undefined
    assert fits["reason"].str.contains("fewer than 3").all()
    diversity = pd.read_csv(tables / "diversity.csv")
    assert set(diversity["task"]) == {"arithmetic", "boolean", "(mix)"}
    assert set(diversity["n_samples"]) == {1, 2, 4}
    ablation = pd.read_csv(tables / "ablation.csv")
    # thresholds unset: the focus threshold and capture.max_threshold (1%), one baseline
    assert ablation["threshold"].tolist() == [0.001] * 4 + [0.01] * 4
    assert ablation["condition"].tolist() == ["baseline", "key", "random", "random"] * 2
    assert (ablation["n_samples"] == 3).all()
    assert ablation["n_neurons"].iloc[1] == ablation["n_neurons"].iloc[2] > 0
    assert ablation["n_neurons"].iloc[5] > ablation["n_neurons"].iloc[1]  # more at 1%
    assert ablation["baseline_accuracy"].nunique() == 1
    summary = pd.read_csv(tables / "ablation_summary.csv")
    assert list(summary.columns) == ABLATION_SUMMARY_COLUMNS
    assert summary["threshold"].tolist() == [0.001, 0.01]
    assert (summary["random_draws"] == 2).all()
    keyed = ablation[ablation["condition"] == "key"]
    np.testing.assert_allclose(summary["key_drop"], keyed["accuracy_drop"])
    for tau, row in summary.set_index("threshold").iterrows():
        drops = ablation.loc[
            (ablation["threshold"] == tau) & (ablation["condition"] == "random"), "accuracy_drop"
        ]
        assert row["random_drop_mean"] == pytest.approx(drops.mean())
        at_least = int((drops >= row["key_drop"] - 1e-12).sum())
        assert row["p_value"] == pytest.approx((1 + at_least) / 3)


@pytest.mark.workflow
@pytest.mark.parametrize("chart", CHARTS)
def test_each_chart_has_its_files_and_its_table(analyses_run, chart):
    charts = analyses_run[0] / "results" / "charts"
    for fmt in ("html", "svg", "png", "vl.json"):
        assert (charts / f"{chart}.{fmt}").stat().st_size > 0, fmt
    spec = json.loads((charts / f"{chart}.vl.json").read_text())
    (data,) = spec["datasets"].values()
    data = pd.DataFrame(data)
    tables = analyses_run[0] / "results" / "tables"
    if chart == "key_experts":
        table = pd.read_csv(tables / "key_experts.csv")
        focus = table[(table["variant"] == "glu") & np.isclose(table["threshold"], 0.001)]
        np.testing.assert_allclose(
            data["key_expert_proportion"], focus["key_expert_proportion"].to_numpy()
        )
    if chart == "diversity":
        table = pd.read_csv(tables / "diversity.csv")
        focus = table[(table["variant"] == "glu") & np.isclose(table["threshold"], 0.001)]
        np.testing.assert_allclose(data["mui_mean"], focus["mui_mean"].to_numpy())
    if chart == "ablation":
        table = pd.read_csv(tables / "ablation.csv")
        drops = table.loc[table["condition"] != "baseline", "accuracy_drop"]
        np.testing.assert_allclose(data["accuracy_drop"], drops.to_numpy())
    html = (charts / f"{chart}.html").read_text()
    assert "vegaEmbed" in html and "cdn.jsdelivr" not in html.split("<body>")[1]


@pytest.mark.workflow
def test_nothing_left_to_do_and_report(analyses_run, run_snakemake):
    workdir = analyses_run[0]
    dry = run_snakemake(workdir, "-n", timeout=300)
    assert dry.returncode == 0 and job_counts(dry.stdout) == {}, dry.stdout[-3000:]
    report = workdir / "report.html"
    proc = run_snakemake(workdir, "--report", str(report), timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    text = report.read_text(encoding="utf-8", errors="replace")
    assert "key_experts.csv" in text and "ablation.html" in text
    # the core tables are in the report too, under their labels
    assert "MUI (per model, task, variant, threshold)" in text
    assert "performance (accuracy per model and task)" in text
    # the captions name the tables under the config's results directory
    assert "results/tables/key_experts.csv" in text and "snakemake.config" not in text
    # the focus threshold (0.001 in the config) reads as a percentage, as in the charts
    assert "threshold 0.1%" in text and "threshold ``0.001``" not in text


@pytest.mark.workflow
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"diversity": {"sizes": [1, 3], "draws": 2, "seed": 1}},
            {"tabulate_diversity", "draw_diversity"},
        ),
        ({"rho": [0.5]}, {"tabulate_experts", "tabulate_robustness"}),
        (
            {"top_experts": 3},
            {"tabulate_experts", "tabulate_robustness", "draw_top_key_experts"},
        ),
        (
            {"ablation": {**ANALYSES["ablation"], "seeds": [3]}},
            {"ablate_neurons", "aggregate_ablation", "draw_ablation"},
        ),
        (
            {"variant": "gate"},
            {f"draw_{c}" for c in CHARTS if c not in {"top_experts", "ablation"}}
            | {"ablate_neurons", "aggregate_ablation", "draw_ablation"},
        ),
    ],
)
def test_changing_analysis_settings_runs_no_model_job(
    analyses_run, tmp_path_factory, write_config, run_snakemake, change, expected
):
    workdir = _copy(analyses_run, tmp_path_factory, "reanalyse")
    config = copy.deepcopy(analyses_run[2])
    config["analyses"].update(copy.deepcopy(change))
    write_config(workdir, config)
    dry = run_snakemake(workdir, "-n", timeout=300)
    assert dry.returncode == 0, dry.stdout[-4000:]
    counts = job_counts(dry.stdout)
    assert not MODEL_RULES & set(counts), counts
    assert expected <= set(counts), counts
    downstream = {
        "draw_key_experts",
        "draw_threshold_robustness",
        "draw_top_experts",
        "draw_top_key_experts",
    }
    assert set(counts) - {"all"} <= expected | downstream, counts
    if "variant" in change:
        assert "draw_top_experts" not in counts  # it shows no focus method
