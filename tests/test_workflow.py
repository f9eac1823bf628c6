"""End-to-end tests of the workflow through the real ``snakemake`` CLI, and of the
``moemui`` model commands on models they must reject.

The tiny workflow runs once per session (about two minutes on 2 cores); the tests marked
``workflow`` inspect that run or copies of it. Everything runs in temporary directories:
nothing is written into the repository.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import REPO_ROOT
from docsnippets import doc_pages, page_blocks, python_source

from moemui.config import validate_config
from moemui.io import read_records
from moemui.tasks import read_samples

MODELS = ["olmoe-tiny", "qwen2moe-tiny"]
TASKS = ["arithmetic", "boolean"]
THRESHOLDS = [0.0008, 0.001, 0.002]
MUI_COLUMNS = [
    "model",
    "task",
    "variant",
    "threshold",
    "mui",
    "key_neurons",
    "total_neurons",
    "n_samples",
]
#: The documentation pages, whose python blocks run on the finished run.
DOC_PAGES = [p.relative_to(REPO_ROOT).as_posix() for p in doc_pages()]
MODEL_RULES = {"build_model", "make_task", "generate_responses", "capture_scores"}
#: The cheap whole-experiment analysis and chart jobs of the tiny config (one each): any
#: change of results re-runs those whose tables it touches.
ANALYSIS_JOBS = {
    "tabulate_experts": 1,
    "tabulate_robustness": 1,
    "tabulate_mui_performance": 1,
    "tabulate_diversity": 1,
    "bundle_vega": 1,
    "draw_mui_performance": 1,
    "draw_key_experts": 1,
    "draw_top_experts": 1,
    "draw_top_key_experts": 1,
    "draw_threshold_robustness": 1,
    "draw_diversity": 1,
}


def split_analysis_jobs(counts: dict[str, int]) -> dict[str, int]:
    """``counts`` without the analysis and chart jobs, after checking those are among
    the tiny config's (once each)."""
    analysis = {rule: n for rule, n in counts.items() if rule in ANALYSIS_JOBS}
    assert analysis.items() <= ANALYSIS_JOBS.items(), analysis
    return {rule: n for rule, n in counts.items() if rule not in ANALYSIS_JOBS}


def chart_jobs(output: str) -> dict[str, str]:
    """``{jobid: chart}`` of the jobs of the one chart rule (draw_chart) in snakemake's
    output, from each job's block (its ``jobid`` and ``wildcards: chart=...``)."""
    charts = {}
    for block in re.finditer(r"^(?:local)?rule draw_chart:\n((?:[ \t]+.*\n)+)", output, flags=re.M):
        jobid = re.search(r"jobid: (\d+)", block[1])
        chart = re.search(r"wildcards: chart=(\w+)", block[1])
        assert jobid and chart, block[0]
        charts[jobid[1]] = chart[1]
    return charts


def job_counts(output: str) -> dict[str, int]:
    """The first ``Job stats:`` table of snakemake's output as ``{rule: count}``, the
    chart jobs (one rule, draw_chart) counted per chart as ``draw_<chart>``.

    Empty when snakemake scheduled nothing (it prints no table then).
    """
    lines = [line.strip() for line in output.splitlines()]
    if "Job stats:" not in lines:
        return {}
    start = lines.index("Job stats:")
    assert lines[start + 1].split() == ["job", "count"], lines[start : start + 3]
    counts: dict[str, int] = {}
    for line in lines[start + 3 :]:
        match = re.fullmatch(r"(\w+)\s+(\d+)", line)
        if not match or match[1] == "total":
            break
        counts[match[1]] = int(match[2])
    if "draw_chart" in counts:
        charts = list(chart_jobs(output).values())
        assert len(charts) == counts.pop("draw_chart"), charts
        for chart in charts:
            counts[f"draw_{chart}"] = counts.get(f"draw_{chart}", 0) + 1
    return counts


def finished_rules(output: str) -> list[str]:
    """The rules of the jobs a real (not dry) run finished, in order (a chart job as
    ``draw_<chart>``)."""
    charts = chart_jobs(output)
    return [
        f"draw_{charts[jobid]}" if rule == "draw_chart" else rule
        for jobid, rule in re.findall(r"Finished jobid: (\d+) \(Rule: (\w+)\)", output)
    ]


@dataclass(frozen=True)
class Run:
    workdir: Path
    output: str
    returncode: int
    config: dict  # as written, then validated (defaults filled)

    @property
    def results(self) -> Path:
        return self.workdir / "results"

    @property
    def store(self) -> Path:
        return self.results / "activations.zarr"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_config, write_config, run_snakemake) -> Run:
    """The tiny workflow, run once for the whole session."""
    workdir = tmp_path_factory.mktemp("workflow")
    config = tiny_config()
    write_config(workdir, config)
    proc = run_snakemake(workdir)
    return Run(workdir, proc.stdout, proc.returncode, validate_config(config))


@pytest.fixture(scope="session")
def finished_run(tiny_run) -> Run:
    """The session's run, which must have succeeded for the tests that inspect it."""
    if tiny_run.returncode != 0:
        pytest.fail(f"the tiny workflow failed:\n{tiny_run.output[-6000:]}", pytrace=False)
    return tiny_run


# --------------------------------------------------------------------------------------
# The full run
# --------------------------------------------------------------------------------------


@pytest.mark.workflow
def test_run_completes_with_the_expected_jobs(tiny_run):
    assert tiny_run.returncode == 0, tiny_run.output[-6000:]
    assert job_counts(tiny_run.output) == {
        "build_model": 2,
        "make_task": 2,
        "generate_responses": 4,
        "capture_scores": 4,
        "tabulate_performance": 1,
        "derive_keys": 4,
        "compute_mui": 4,
        "index_store": 1,
        "aggregate_mui": 1,
        **ANALYSIS_JOBS,
        "all": 1,
    }
    assert sorted(finished_rules(tiny_run.output)) == sorted(
        ["build_model"] * 2
        + ["make_task"] * 2
        + ["generate_responses"] * 4
        + ["capture_scores"] * 4
        + ["derive_keys"] * 4
        + ["compute_mui"] * 4
        + ["tabulate_performance", "index_store", "aggregate_mui", "all"]
        + list(ANALYSIS_JOBS)
    )
    # The Snakefile's `configfile: "config/config.yaml"` is relative to the working
    # directory: with --directory elsewhere and --configfile given, the repository's
    # config is neither required nor merged in.
    assert "is extended by additional config" not in tiny_run.output
    assert "config/config.yaml" not in tiny_run.output


@pytest.mark.workflow
def test_mui_table(finished_run):
    table = pd.read_csv(finished_run.results / "tables" / "mui.csv")
    assert list(table.columns) == MUI_COLUMNS
    assert len(table) == 2 * 2 * 2 * 3
    cells = set(zip(table.model, table.task, table.variant, table.threshold, strict=True))
    assert cells == {
        (m, t, v, tau) for m in MODELS for t in TASKS for v in ["gate", "glu"] for tau in THRESHOLDS
    }
    # 4096 neurons per MoE layer (16 experts of 256, shared ones included) x 2 MoE layers
    assert (table.total_neurons == 8192).all()
    assert (table.n_samples == 4).all()
    assert (table.key_neurons > 0).all()
    assert (table.key_neurons <= table.total_neurons).all()
    np.testing.assert_allclose(table.mui, table.key_neurons / table.total_neurons, rtol=1e-9)
    for (model, task, variant), group in table.groupby(["model", "task", "variant"]):
        keys = group.sort_values("threshold").key_neurons.to_numpy()
        assert (np.diff(keys) >= 0).all(), (model, task, variant, keys)


@pytest.mark.workflow
def test_mui_table_per_cell_tables_concatenate(finished_run):
    table = pd.read_csv(finished_run.results / "tables" / "mui.csv")
    parts = [
        pd.read_csv(finished_run.results / "tables" / "mui" / m / f"{t}.csv")
        for m in MODELS
        for t in TASKS
    ]
    pd.testing.assert_frame_equal(table, pd.concat(parts, ignore_index=True))


@pytest.mark.workflow
def test_run_config_records_the_merged_config(finished_run):
    import yaml

    from moemui import __version__
    from moemui.config import config_hash

    path = finished_run.results / "run_config.yaml"
    text = path.read_text()
    assert yaml.safe_load(text) == finished_run.config  # defaults filled in
    assert f"# moemui {__version__}; config hash {config_hash(finished_run.config)}" in text


@pytest.mark.workflow
def test_correct_only_adds_columns_and_runs_no_model_job(
    finished_run, tmp_path_factory, write_config, run_snakemake
):
    from moemui.metrics import mui_table
    from moemui.store import open_group

    workdir = tmp_path_factory.mktemp("correct-only") / "run"
    shutil.copytree(finished_run.workdir, workdir, symlinks=True, copy_function=shutil.copy2)
    write_config(workdir, dict(finished_run.config, correct_only=True))
    proc = run_snakemake(workdir)
    assert proc.returncode == 0, proc.stdout[-6000:]
    done = set(finished_rules(proc.stdout))
    assert not MODEL_RULES & done and {"compute_mui", "aggregate_mui"} <= done
    table = pd.read_csv(workdir / "results" / "tables" / "mui.csv")
    assert list(table.columns[: len(MUI_COLUMNS)]) == MUI_COLUMNS
    assert {"mui_correct", "key_neurons_correct", "n_samples_correct"} <= set(table.columns)
    store = workdir / "results" / "activations.zarr"
    for (model, task), part in table.groupby(["model", "task"]):
        ds = open_group(store, model, task)
        right = ds.isel(sample=np.flatnonzero(ds["correct"].values))
        assert (part["n_samples_correct"] == right.sizes["sample"]).all()
        if right.sizes["sample"]:
            alone = mui_table(right, THRESHOLDS, model, task).set_index(["variant", "threshold"])
            got = part.set_index(["variant", "threshold"])
            assert np.array_equal(got["mui_correct"].loc[alone.index], alone["mui"])
        else:
            assert part["mui_correct"].isna().all()


@pytest.mark.workflow
def test_performance_table(finished_run):
    table = pd.read_csv(finished_run.results / "tables" / "performance.csv")
    assert list(table.columns) == ["model", "task", "n_samples", "n_correct", "accuracy"]
    assert list(zip(table.model, table.task, strict=True)) == [
        (m, t) for m in MODELS for t in TASKS
    ]
    assert (table.n_samples == 4).all()
    for row in table.itertuples():
        records = read_records(finished_run.results / "responses" / row.model / f"{row.task}.jsonl")
        assert row.n_correct == sum(bool(r["correct"]) for r in records)
        assert row.accuracy == pytest.approx(row.n_correct / row.n_samples)


@pytest.mark.workflow
def test_store_tree_lists_every_model_and_cell(finished_run):
    tree = xr.open_datatree(finished_run.store, engine="zarr")
    groups = set(tree.groups)
    assert {f"/{m}" for m in MODELS} <= groups
    assert {f"/{m}/{t}" for m in MODELS for t in TASKS} <= groups
    assert groups == {"/"} | {f"/{m}" for m in MODELS} | {
        f"/{m}/{t}" for m in MODELS for t in TASKS
    }


@pytest.mark.workflow
@pytest.mark.parametrize("page", DOC_PAGES)
def test_doc_python_blocks_run_on_the_store(finished_run, page, monkeypatch, capsys):
    """Every python block of README.md and docs/*.md, in page order in one namespace per
    page, run as written in the run's directory, warnings as errors; the model they name,
    olmoe-v1 of the default run, is olmoe-tiny in this run (the only edit). What the
    blocks leave in the namespace under the README's names is checked where present."""
    blocks = [b for b in page_blocks(REPO_ROOT / page) if b.lang == "python"]
    if page == "README.md":
        assert blocks, "README.md has no python block"
    monkeypatch.chdir(finished_run.workdir)
    namespace: dict = {"__name__": "__docs__"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for block in blocks:
            code = compile(python_source(block, {'"olmoe-v1"': '"olmoe-tiny"'}), page, "exec")
            try:
                exec(code, namespace)
            except Exception as err:
                raise AssertionError(f"python block {block.where} failed: {err!r}") from err
    printed = capsys.readouterr().out
    assert printed or not any("print(" in b.text for b in blocks)
    if "tree" in namespace:
        assert set(namespace["tree"].children) == set(MODELS)
    if "ds" in namespace:
        ds = namespace["ds"]
        assert ds.attrs["model"] in MODELS and ds.attrs["task"] in TASKS
        if "keys" in namespace:
            keys = namespace["keys"]
            assert list(keys.columns) == ["sample", "layer", "expert", "neuron"]
            assert set(keys["layer"]) <= set(ds["layer"].values.tolist())
    if "scores" in namespace:
        assert namespace["scores"].dims == ("sample", "layer", "expert", "neuron")
    if "tables" in namespace:
        assert {"performance", "mui"} <= set(namespace["tables"])


@pytest.mark.workflow
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("task", TASKS)
def test_store_group(finished_run, model, task):
    ds = xr.open_zarr(finished_run.store, group=f"{model}/{task}")
    assert set(ds.dims) == {"sample", "layer", "expert", "neuron", "rank"}
    assert set(ds.data_vars) == {
        "score_gate",
        "score_glu",
        "pairtop_gate",
        "pairtop_glu",
        "route_tokens",
        "route_weight",
        "n_tokens",
        "correct",
        "n_prompt_truncated",
    }
    assert not ds["n_prompt_truncated"].values.any()  # every prompt fits the context
    assert {"sample", "layer", "expert", "expert_kind", "neuron"} <= set(ds.coords)

    samples = read_samples(finished_run.results / "tasks" / f"{task}.jsonl")
    assert [str(s) for s in ds.sample.values] == [s["id"] for s in samples]
    assert ds.sizes["expert"] == 16
    assert ds.sizes["neuron"] == 256
    assert ds.sizes["rank"] == 40  # k(max_threshold 0.01) = floor(0.01 * 4096)
    assert list(ds.expert.values) == list(range(16))
    assert list(ds.neuron.values) == list(range(256))
    kinds = [str(k) for k in ds.expert_kind.values]
    if model == "qwen2moe-tiny":
        assert list(ds.layer.values) == [1, 2]  # layer 0 is dense
        assert kinds == ["routed"] * 14 + ["shared"] * 2
    else:
        assert list(ds.layer.values) == [0, 1]
        assert kinds == ["routed"] * 16

    source = {"olmoe-tiny": "builtin:olmoe_tiny", "qwen2moe-tiny": "builtin:qwen2_moe_tiny"}
    attrs = ds.attrs
    assert attrs["model"] == model
    assert attrs["source"] == source[model]
    assert attrs["family"] == {"olmoe-tiny": "olmoe", "qwen2moe-tiny": "qwen2_moe"}[model]
    assert attrs["task"] == task
    assert list(attrs["variants"]) == ["gate", "glu"]
    assert attrs["target"] == "next"
    assert attrs["dtype"] == "float32"
    assert {"moemui", "torch", "transformers", "zarr", "xarray", "numpy"} <= set(
        attrs["package_versions"]
    )
    assert re.fullmatch(r"[0-9a-f]{64}", attrs["config_hash"])
    assert attrs["complete"] is True


@pytest.mark.workflow
def test_store_config_hashes_differ_per_cell(finished_run):
    hashes = {
        xr.open_zarr(finished_run.store, group=f"{m}/{t}").attrs["config_hash"]
        for m in MODELS
        for t in TASKS
    }
    assert len(hashes) == 4


@pytest.mark.workflow
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("task", TASKS)
def test_store_matches_responses(finished_run, model, task):
    ds = xr.open_zarr(finished_run.store, group=f"{model}/{task}").load()
    records = read_records(finished_run.results / "responses" / model / f"{task}.jsonl")
    assert [r["id"] for r in records] == [str(s) for s in ds.sample.values]
    n_tokens = [r["n_response_tokens"] for r in records]
    assert ds.n_tokens.values.tolist() == n_tokens
    assert n_tokens == [len(r["response_ids"]) for r in records]
    assert all(n >= 1 for n in n_tokens)
    assert ds.correct.values.tolist() == [bool(r["correct"]) for r in records]

    # Every sample was written (capture batches of 3: the second one is partial); the
    # default retention keeps at least the top neuron of every sample and layer
    assert np.isfinite(ds["route_weight"].values).all()
    assert ds.attrs["keep"] == "key"
    for name in ("score_gate", "score_glu"):
        kept = np.isfinite(ds[name].values).sum(axis=(2, 3))
        assert (kept >= 1).all(), name
    routed = ds.route_tokens.where(ds.expert_kind == "routed").sum("expert")
    top_k = ds.attrs["geometry"]["top_k"]
    assert (routed == top_k * ds.n_tokens).all()  # each scored position goes to top_k experts
    shared = ds.route_tokens.where(ds.expert_kind == "shared", drop=True)
    assert (shared == ds.n_tokens).all()  # shared experts see every position (if any)
    for v in ("gate", "glu"):
        pairtop = ds[f"pairtop_{v}"].values
        head = pairtop[..., :8]  # k(0.002) = 8 triples are needed by the largest threshold
        assert np.isfinite(head).all(), v
        assert (np.diff(head, axis=-1) <= 0).all(), v  # descending


# --------------------------------------------------------------------------------------
# Re-runs
# --------------------------------------------------------------------------------------


@pytest.mark.workflow
def test_second_dry_run_has_nothing_to_do(finished_run, run_snakemake):
    proc = run_snakemake(finished_run.workdir, "-n", timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "Nothing to be done" in proc.stdout
    assert job_counts(proc.stdout) == {}


@pytest.mark.workflow
def test_changing_thresholds_reruns_only_the_tables(
    finished_run, tmp_path_factory, write_config, run_snakemake
):
    workdir = tmp_path_factory.mktemp("rethreshold") / "run"
    shutil.copytree(finished_run.workdir, workdir, symlinks=True, copy_function=shutil.copy2)
    config = dict(finished_run.config, thresholds=[0.001, 0.003])
    write_config(workdir, config)
    model_outputs = [
        *(workdir / "results" / "responses").rglob("*.jsonl"),
        *(workdir / "results" / "tasks").glob("*.jsonl"),
        *(workdir / "results" / "activations.zarr").glob("*/*/zarr.json"),
        *(workdir / "results" / "models").glob("*/config.json"),
    ]
    assert len(model_outputs) == 4 + 2 + 4 + 2
    mtimes = {p: p.stat().st_mtime_ns for p in model_outputs}

    dry = run_snakemake(workdir, "-n", timeout=300)
    assert dry.returncode == 0, dry.stdout[-4000:]
    counts = job_counts(dry.stdout)
    expected = {"derive_keys": 4, "compute_mui": 4, "aggregate_mui": 1, "all": 1}
    assert split_analysis_jobs(counts) == expected, dry.stdout[-4000:]
    assert not MODEL_RULES & set(counts)

    proc = run_snakemake(workdir)
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert set(finished_rules(proc.stdout)) - set(ANALYSIS_JOBS) == set(expected)
    assert {p: p.stat().st_mtime_ns for p in model_outputs} == mtimes

    table = pd.read_csv(workdir / "results" / "tables" / "mui.csv")
    assert list(table.columns) == MUI_COLUMNS
    assert sorted(set(table.threshold)) == [0.001, 0.003]
    assert len(table) == 2 * 2 * 2 * 2
    # the shared threshold gives the same numbers as before
    before = pd.read_csv(finished_run.results / "tables" / "mui.csv")
    keys = ["model", "task", "variant"]
    pd.testing.assert_frame_equal(
        table[table.threshold == 0.001].sort_values(keys).reset_index(drop=True),
        before[before.threshold == 0.001].sort_values(keys).reset_index(drop=True),
    )
    # the original run directory is untouched
    assert sorted(set(before.threshold)) == THRESHOLDS


def _dry_run_after(finished_run, tmp_path_factory, write_config, run_snakemake, name, **change):
    """Copy the finished run, change the config, and return the dry run's job counts."""
    workdir = tmp_path_factory.mktemp(name) / "run"
    shutil.copytree(finished_run.workdir, workdir, symlinks=True, copy_function=shutil.copy2)
    config = copy.deepcopy(finished_run.config)
    for key, value in change.items():
        config[key] = config[key] + value
    write_config(workdir, config)
    dry = run_snakemake(workdir, "-n", timeout=300)
    assert dry.returncode == 0, dry.stdout[-4000:]
    return dry.stdout


ADDED_JOBS = {
    "generate_responses": 2,
    "capture_scores": 2,
    "derive_keys": 2,
    "compute_mui": 2,
    "aggregate_mui": 1,
    "tabulate_performance": 1,
    "index_store": 1,
    "all": 1,
}


@pytest.mark.workflow
@pytest.mark.parametrize(
    ("section", "entry", "builder", "pattern"),
    [
        (
            "models",
            {"id": "deepseekv2-tiny", "source": "builtin:deepseek_v2_tiny"},
            "build_model",
            r"wildcards: model=([\w-]+)",
        ),
        (
            "tasks",
            {"id": "choice", "source": "builtin:multiple_choice", "n": 3},
            "make_task",
            r"task=([\w-]+)",
        ),
    ],
)
def test_adding_a_model_or_task_schedules_only_its_jobs(
    finished_run, tmp_path_factory, write_config, run_snakemake, section, entry, builder, pattern
):
    out = _dry_run_after(
        finished_run,
        tmp_path_factory,
        write_config,
        run_snakemake,
        f"add-{section}",
        **{section: [entry]},
    )
    assert split_analysis_jobs(job_counts(out)) == {builder: 1, **ADDED_JOBS}
    assert set(re.findall(pattern, out)) == {entry["id"]}


@pytest.mark.workflow
def test_a_new_package_version_reruns_what_it_touches(
    finished_run, tmp_path_factory, run_snakemake
):
    """Every rule passes the package version as a param: a release re-runs them."""
    workdir = tmp_path_factory.mktemp("release") / "run"
    shutil.copytree(finished_run.workdir, workdir, symlinks=True, copy_function=shutil.copy2)
    fake = tmp_path_factory.mktemp("site")  # metadata of a newer release, found first
    dist = fake / "moemui-99.0.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: moemui\nVersion: 99.0.0\n")
    env = {"PYTHONPATH": os.pathsep.join([str(fake), os.environ.get("PYTHONPATH", "")])}
    dry = run_snakemake(workdir, "-n", timeout=300, extra_env=env)
    assert dry.returncode == 0, dry.stdout[-4000:]
    counts = job_counts(dry.stdout)
    assert counts["capture_scores"] == 4 and counts["generate_responses"] == 4, counts
    assert counts["build_model"] == 2 and counts["compute_mui"] == 4, counts
    assert "params have changed since last execution" in dry.stdout.lower()


@pytest.mark.workflow
@pytest.mark.parametrize(
    ("key", "value", "flag"),
    [
        # the scores change (to rounding)
        ("batch_invariant", False, "--no-batch-invariant --keep"),
        # what the store holds changes
        ("keep", "all", "--keep all"),
        # which response tokens are scored
        ("tokens", "answer", "--tokens answer"),
    ],
)
def test_a_capture_setting_recaptures_without_regenerating(
    finished_run, tmp_path_factory, write_config, run_snakemake, key, value, flag
):
    """A capture setting re-runs every capture with its flag, and no generation."""
    workdir = tmp_path_factory.mktemp(key) / "run"
    shutil.copytree(finished_run.workdir, workdir, symlinks=True, copy_function=shutil.copy2)
    config = copy.deepcopy(finished_run.config)
    config.setdefault("capture", {})[key] = value
    write_config(workdir, config)
    dry = run_snakemake(workdir, "-n", "-p", timeout=300)
    assert dry.returncode == 0, dry.stdout[-4000:]
    counts = job_counts(dry.stdout)
    assert counts["capture_scores"] == 4 and "generate_responses" not in counts, counts
    commands = dry.stdout.count(" capture --model-id")  # once per job's shell command
    assert commands >= 4 and dry.stdout.count(flag) == commands
    assert "params have changed" in dry.stdout.lower()


@pytest.mark.workflow
def test_threshold_above_max_threshold_fails_before_any_job(
    tmp_path, tiny_config, write_config, run_snakemake
):
    write_config(tmp_path, tiny_config(thresholds=[0.001, 0.02]))
    proc = run_snakemake(tmp_path, timeout=300)
    assert proc.returncode != 0
    assert "invalid config" in proc.stdout
    assert "config key 'thresholds[1]': 0.02 exceeds capture.max_threshold 0.01" in proc.stdout
    assert job_counts(proc.stdout) == {}
    assert not (tmp_path / "results").exists()


# --------------------------------------------------------------------------------------
# Models the model commands must reject (fast: `moemui.cli.main`, no snakemake)
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cell_files(tmp_path_factory) -> dict[str, Path]:
    """A 2-sample task file and a matching responses file."""
    from moemui.io import write_records
    from moemui.tasks import make_builtin, write_samples

    root = tmp_path_factory.mktemp("cell")
    samples = make_builtin("arithmetic", 2, 0)
    write_samples(root / "tasks.jsonl", samples)
    records = [
        {
            "id": s["id"],
            "prompt_ids": [2, *s["prompt"].encode()],
            "response_ids": [ord("7"), 1],
            "response": "7",
            "answer": "7",
            "correct": s["reference"] == "7",
            "n_response_tokens": 2,
        }
        for s in samples
    ]
    write_records(root / "responses.jsonl", records)
    return {"root": root, "tasks": root / "tasks.jsonl", "responses": root / "responses.jsonl"}


@pytest.fixture(scope="module")
def dense_model_dir(tmp_path_factory) -> Path:
    """A saved tiny Llama: a causal LM without any MoE layer."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    from moemui.tokenizer import build_tokenizer

    path = tmp_path_factory.mktemp("dense-llama")
    config = LlamaConfig(
        vocab_size=259,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
    )
    AutoModelForCausalLM.from_config(config).save_pretrained(path)
    build_tokenizer().save_pretrained(path)
    return path


def _model_argv(command: str, model_id: str, source: str, cell: dict, out: Path) -> list[str]:
    argv = [command, "--model-id", model_id, "--source", source, "--device", "cpu"]
    argv += ["--tasks", str(cell["tasks"]), "--out", str(out)]
    if command == "capture":
        argv += ["--task-id", "arithmetic", "--responses", str(cell["responses"])]
    return argv


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("ERROR: ")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _out_path(tmp_path: Path, command: str, model_id: str) -> Path:
    if command == "capture":
        return tmp_path / "activations.zarr" / model_id / "arithmetic"
    return tmp_path / "responses" / model_id / "arithmetic.jsonl"


@pytest.mark.parametrize("command", ["generate", "capture"])
def test_dense_model_is_rejected(command, dense_model_dir, cell_files, tmp_path, capsys):
    from moemui.cli import main

    out = _out_path(tmp_path, command, "dense-llama")
    argv = _model_argv(command, "dense-llama", str(dense_model_dir), cell_files, out)
    assert main(argv) == 1
    line = _error_line(capsys)
    assert "model 'dense-llama'" in line
    assert "LlamaForCausalLM" in line
    assert re.search(r"no MoE (adapter|layer)", line), line
    assert not out.exists()
    assert not list(tmp_path.rglob(".*partial*"))  # no half-written store group left


@pytest.mark.parametrize("command", ["generate", "capture"])
def test_missing_local_model_is_rejected(command, cell_files, tmp_path, capsys):
    from moemui.cli import main

    missing = tmp_path / "no-such-model"
    out = _out_path(tmp_path, command, "ghost")
    assert main(_model_argv(command, "ghost", str(missing), cell_files, out)) == 1
    line = _error_line(capsys)
    assert line == f"ERROR: model 'ghost': local model directory {missing} does not exist"
    assert not out.exists()


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """Offline mode with an empty Hugging Face cache.

    ``huggingface_hub`` reads the environment once, at import; when an earlier test has
    imported it, its constants are patched too, so no request (and no retry) is made.
    """
    import huggingface_hub.constants as hf_constants

    home = tmp_path / "hf-home"
    home.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf_constants, "HF_HOME", str(home))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(home / "hub"))
    return home


@pytest.mark.parametrize("command", ["generate", "capture"])
def test_hub_model_offline_without_cache_is_rejected(
    command, offline_hub, cell_files, tmp_path, capsys
):
    from moemui.cli import main

    hub_id = "moemui-tests/no-such-moe"
    out = _out_path(tmp_path, command, "hub-moe")
    assert main(_model_argv(command, "hub-moe", hub_id, cell_files, out)) == 1
    line = _error_line(capsys)
    assert line.startswith(f"ERROR: model 'hub-moe': cannot load Hub model {hub_id} (revision ")
    assert not out.exists()
    assert not any(offline_hub.rglob("*.safetensors"))
