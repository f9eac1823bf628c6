"""The Slurm profile (profiles/slurm), run for real: a private single-node Slurm cluster
(Debian's Slurm 22.05, brought up by tests/slurm/slurm_up.sh in a temporary directory, with
two GPUs that are not there) runs the workflow submitted by snakemake-executor-plugin-slurm,
and the tests check Slurm's own job records against the profile and the config: a
one-model, one-task run through the CPU-only overlay, and two models with resources of
their own (GPUs, memory, runtime) through the profile alone.

Needs root and Debian's slurmctld, slurmd, slurm-client and munge (.ci/run installs them);
the cluster test is skipped only when Slurm is not installed.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml
import zarr

from moemui.config import all_models, model_resources, validate_config
from moemui.store import verify_group

REPO_ROOT = Path(__file__).resolve().parents[1]
PROFILE = REPO_ROOT / "profiles" / "slurm"
CPU_ONLY_PROFILE = PROFILE / "cpu-only"
PAPER_PROFILE = PROFILE / "paper"
SCRIPTS = Path(__file__).resolve().parent / "slurm"
GPU_KEYS = {"gpu", "gpu_model", "gres", "cpus_per_gpu", "tasks_per_gpu"}
#: The rules that load a model: sized per model by the config (models[].resources over
#: model_resources), not by the profile.
#: The rules that run a model, sized per model; the shard rules run for sharded tasks.
UNSHARDED_MODEL_RULES = {"generate_responses", "capture_scores", "ablate_neurons"}
MODEL_RULES = UNSHARDED_MODEL_RULES | {"generate_shard", "capture_shard"}

MODEL = "olmoe-tiny"
TASK = "arithmetic"
#: The Slurm job each of these workflow jobs becomes, as the plugin's --comment:
#: rule_<rule>[_wildcards_<values>] (the job name is the run's uuid). The target rule `all`
#: runs locally, not through Slurm.
EXPECTED_COMMENTS = {
    "build_model": f"rule_build_model_wildcards_{MODEL}",
    "make_task": f"rule_make_task_wildcards_{TASK}",
    "generate_responses": f"rule_generate_responses_wildcards_{MODEL}_{TASK}",
    "capture_scores": f"rule_capture_scores_wildcards_{MODEL}_{TASK}",
    "derive_keys": f"rule_derive_keys_wildcards_{MODEL}_{TASK}",
    "compute_mui": f"rule_compute_mui_wildcards_{MODEL}_{TASK}",
    "index_store": "rule_index_store",
    "aggregate_mui": "rule_aggregate_mui",
    "tabulate_performance": "rule_tabulate_performance",
}


def load_profile(path: Path) -> dict:
    return yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8"))


def test_cpu_only_overlay_is_the_profile_without_gpus():
    """profiles/slurm/cpu-only restates profiles/slurm's set-resources and sets the model
    rules' GPUs to none, which overrides every model's own (the rest of their resources
    still comes from the config)."""
    profile = load_profile(PROFILE)
    overlay = load_profile(CPU_ONLY_PROFILE)
    assert set(overlay) == {"set-resources"}
    no_gpu = {"gpu": 0, "gpu_model": None}
    assert overlay["set-resources"] == {
        **profile["set-resources"],
        **{rule: no_gpu for rule in MODEL_RULES},
    }


def test_model_rules_are_sized_by_the_config_not_the_profiles():
    """No profile names a model rule under set-resources (that would override every
    model's own resources), none asks another rule for a GPU, and profiles/slurm/paper
    resizes the same rules as profiles/slurm."""
    profile = load_profile(PROFILE)
    paper = load_profile(PAPER_PROFILE)
    assert set(paper) == {"set-resources"}
    assert set(paper["set-resources"]) == set(profile["set-resources"])
    for name, resources in [
        ("profile", profile["set-resources"]),
        ("paper", paper["set-resources"]),
        ("default-resources", {"*": profile["default-resources"]}),
    ]:
        assert not MODEL_RULES & set(resources), name
        assert not [rule for rule, res in resources.items() if GPU_KEYS & set(res)], name
    assert set(profile["set-threads"]) == MODEL_RULES


def dry_run_resources(output: str) -> dict[tuple[str, str], dict[str, str]]:
    """{(rule, model): resources} of the model rules' jobs in a dry run's output (one
    task), as snakemake prints them (``resources: gpu=2, mem_mb=1200, ...``)."""
    found = {}
    for rule, body in re.findall(r"^rule (\w+):\n((?:    .*\n)*)", output, flags=re.M):
        model = re.search(r"^    wildcards: model=([\w-]+)", body, flags=re.M)
        resources = re.search(r"^    resources: (.*)$", body, flags=re.M)
        if rule in MODEL_RULES and model and resources:
            found[rule, model[1]] = dict(
                item.split("=", 1) for item in resources[1].split(", ") if "=" in item
            )
    return found


@pytest.mark.workflow
def test_the_profiles_size_every_model_rule_per_model(
    tmp_path, tiny_config, write_config, run_snakemake
):
    """Dry runs (no cluster needed): every model rule's jobs take their model's resources
    (a series' for its checkpoints) over model_resources, through profiles/slurm and on a
    workstation; the CPU-only overlay drops every GPU request, and only that."""
    own = {
        "a": {"gpu": 1, "mem_mb": 1500, "runtime": 20},
        "b": {"gpu": 2, "gpu_model": "h100", "mem_mb": 1200, "runtime": 30, "cpus_per_task": 3},
    }
    defaults = {"gpu": 1, "gpu_model": "a100", "mem_mb": 2000, "runtime": 45}
    series = {"gpu": 0, "mem_mb": 900}
    config = tiny_config(
        models=[
            {"id": "a", "source": "builtin:olmoe_tiny", "resources": own["a"]},
            {"id": "b", "source": "builtin:qwen2_moe_tiny", "resources": own["b"]},
            {"id": "c", "source": "builtin:olmoe_tiny"},
        ],
        series=[
            {
                "id": "s",
                "source": "trained:olmoe_smoke",
                "resources": series,
                "checkpoints": [{"step": 10}, {"step": 20}],
            }
        ],
        model_resources=defaults,
        tasks=[{"id": TASK, "source": "builtin:arithmetic", "n": 3}],
        generation={"max_new_tokens": 3, "batch_size": 4},
        analyses={"ablation": {"cells": [{"model": m, "task": TASK} for m in ("a", "b", "c")]}},
    )
    write_config(tmp_path, config)
    expected = {
        "a": {**defaults, **own["a"]},
        "b": {**defaults, **own["b"]},
        "c": defaults,
        "s-step10": {"gpu": 0, "mem_mb": 900, "runtime": 45},  # no GPU: no GPU type
        "s-step20": {"gpu": 0, "mem_mb": 900, "runtime": 45},
    }
    jobs = {(rule, model) for rule in UNSHARDED_MODEL_RULES for model in expected}
    jobs -= {("ablate_neurons", "s-step10"), ("ablate_neurons", "s-step20")}

    def requests(*args: str) -> dict[tuple[str, str], dict[str, object]]:
        dry = run_snakemake(tmp_path, "-n", *args, timeout=300)
        assert dry.returncode == 0, dry.stdout[-4000:]
        found = dry_run_resources(dry.stdout)
        assert set(found) == jobs, sorted(found)
        keys = ("gpu", "gpu_model", "mem_mb", "runtime", "cpus_per_task")
        return {
            job: {k: int(v) if v.isdigit() else v for k, v in res.items() if k in keys}
            for job, res in found.items()
        }

    slurm = ("--profile", str(PROFILE), "--workflow-profile", "none")
    assert requests(*slurm) == {(rule, model): expected[model] for rule, model in jobs}
    # A workstation run declares the same resources; the local executor only counts them
    # against --resources (which gives no gpu), so they never hold a job back.
    assert requests() == {(rule, model): expected[model] for rule, model in jobs}
    no_gpu = requests(*slurm, "--profile", str(CPU_ONLY_PROFILE))
    assert no_gpu == {
        (rule, model): {
            **{k: v for k, v in expected[model].items() if k != "gpu_model"},
            "gpu": 0,
        }
        for rule, model in jobs
    }


# --------------------------------------------------------------------------------------
# The cluster
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cluster:
    directory: Path
    conf: Path
    cpus: int
    real_memory_mb: int
    gpus: int
    gpu_type: str

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def command(self, *argv: str) -> str:
        proc = subprocess.run(
            list(argv),
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, f"{argv}: {proc.stderr}"
        return proc.stdout


def _script(name: str, directory: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPTS / name), str(directory)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory) -> Iterator[Cluster]:
    """A running single-node cluster for this module; stopped (by PID) afterwards."""
    if shutil.which("slurmctld") is None:
        pytest.skip(
            "Slurm is not installed (no slurmctld on PATH); as root: apt-get install -y "
            "--no-install-recommends slurmctld slurmd slurm-client munge"
        )
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.fail(
            "snakemake-executor-plugin-slurm is not installed in this environment",
            pytrace=False,
        )
    directory = tmp_path_factory.mktemp("slurm-cluster")
    try:
        up = _script("slurm_up.sh", directory)
        if up.returncode != 0:
            pytest.fail(
                f"slurm_up.sh failed ({up.returncode}):\n{up.stdout}{up.stderr}", pytrace=False
            )
        conf = (directory / "slurm.conf").read_text(encoding="utf-8")
        node = re.search(
            r"^NodeName=\S+ .*CPUs=(\d+) RealMemory=(\d+) Gres=gpu:(\w+):(\d+)", conf, flags=re.M
        )
        assert node, conf
        yield Cluster(
            directory, directory / "slurm.conf", int(node[1]), int(node[2]), int(node[4]), node[3]
        )
    finally:
        down = _script("slurm_down.sh", directory)
        assert down.returncode == 0, down.stdout + down.stderr


# --------------------------------------------------------------------------------------
# The workflow through the profile
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlurmJob:
    job_id: str
    name: str
    comment: str
    state: str
    cpus: int
    memory: str
    time_limit: str
    gpus: str  # the job's GPU request as squeue prints it (gres:gpu:2), N/A for none


#: squeue's fields (-O), each ended by "|" (no width: nothing is cut).
SQUEUE_FIELDS = ("JobID", "Name", "Comment", "State", "NumCPUs", "MinMemory", "TimeLimit")


def slurm_jobs(cluster: Cluster) -> list[SlurmJob]:
    """Every job slurmctld still knows (MinJobAge=300 keeps finished ones listed), with
    what it asked for: CPUs, memory, time limit, and GPUs (tres-per-job, where sbatch's
    --gpus goes)."""
    fields = ",".join(f"{field}:|" for field in (*SQUEUE_FIELDS, "tres-per-job"))
    out = cluster.command("squeue", "--states=all", "--noheader", "-O", fields)
    jobs = []
    for line in out.splitlines():
        values = [value.strip() for value in line.strip().removesuffix("|").split("|")]
        assert len(values) == len(SQUEUE_FIELDS) + 1, line
        job_id, name, comment, state, cpus, memory, limit, gpus = values
        jobs.append(SlurmJob(job_id, name, comment, state, int(cpus), memory, limit, gpus))
    return jobs


def slurm_time(minutes: int) -> str:
    """A runtime in minutes as squeue prints a time limit (MM:SS, H:MM:SS, D-HH:MM:SS)."""
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}-{hours:02d}:{mins:02d}:00"
    return f"{hours}:{mins:02d}:00" if hours else f"{mins}:00"


def slurm_gpus(resources: dict) -> str:
    """The tres-per-job squeue prints for a job with these resources (sbatch --gpus=N or
    --gpus=<gpu_model>:N; N/A without GPUs)."""
    if not resources.get("gpu"):
        return "N/A"
    typed = f"{resources['gpu_model']}:" if resources.get("gpu_model") else ""
    return f"gres:gpu:{typed}{resources['gpu']}"


@dataclass(frozen=True)
class SlurmRun:
    proc: subprocess.CompletedProcess
    #: workflow job id -> rule, and -> Slurm job id, from snakemake's output
    rules: dict[str, str]
    submitted: dict[str, str]
    #: this run's Slurm jobs, by Slurm job id and by comment (rule_<rule>_wildcards_...)
    jobs: dict[str, SlurmJob]
    by_comment: dict[str, SlurmJob]


def run_through_slurm(
    cluster: Cluster, workdir: Path, run_snakemake, profiles: list[Path], *targets: str
) -> SlurmRun:
    """Run the workflow in ``workdir`` through ``profiles`` on the cluster; check that
    every job but the target rule went to Slurm and completed there, as its rule."""
    # What fits this one small node: --cores caps the model rules' threads (their
    # --cpus-per-task) at the node's CPUs, --resources mem_mb caps each job's --mem at its
    # memory; and the first status check 1 s, not 10 s, after a submission or a finished
    # job (the plugin adds 10 s per check that finds none). `--workflow-profile none`:
    # otherwise profiles/default (workstation settings) is loaded too and its set-threads
    # and cores override the Slurm profile's.
    proc = run_snakemake(
        workdir,
        *(arg for profile in profiles for arg in ("--profile", str(profile))),
        "--workflow-profile",
        "none",
        "--resources",
        f"mem_mb={cluster.real_memory_mb}",
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--seconds-between-status-checks",
        "1",
        *targets,
        cores=min(2, cluster.cpus),
        # A guard against a hang, not a speed goal: each job is a fresh snakemake and
        # Python on a node whose 2 CPUs the other test worker shares (3 minutes alone
        # here, over 400 s once in CI).
        timeout=900,
        extra_env=cluster.env,
    )
    log_dir = cluster.directory / "log"
    assert proc.returncode == 0, (
        proc.stdout[-8000:]
        + "\n--- slurmctld.log ---\n"
        + (log_dir / "slurmctld.log").read_text(encoding="utf-8")[-3000:]
    )
    assert re.search(r"Using profiles? ", proc.stdout), proc.stdout[:2000]
    assert "workflow specific profile" not in proc.stdout

    # Snakemake's side: every job but the target rule went to Slurm, with this Slurm job id.
    run_id = re.search(r"SLURM run ID: (\S+)", proc.stdout)
    assert run_id, proc.stdout[-4000:]
    blocks = re.findall(r"^rule (\w+):\n(?:    .*\n)*?    jobid: (\d+)$", proc.stdout, re.M)
    rules = {jobid: rule for rule, jobid in blocks}
    submitted = dict(
        re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", proc.stdout)
    )
    finished = re.findall(r"Finished jobid: (\d+) \(Rule: (\w+)\)", proc.stdout)
    assert sorted(submitted) == sorted(jobid for jobid, rule in finished if rule != "all")

    # Slurm's side: one COMPLETED job per submitted workflow job, named with this run's id
    # and commented with its rule (and wildcards).
    jobs = {job.job_id: job for job in slurm_jobs(cluster) if job.name == run_id[1]}
    assert sorted(jobs) == sorted(submitted.values()), (submitted, jobs)
    assert {job.state for job in jobs.values()} == {"COMPLETED"}, jobs
    for jobid, slurm_id in submitted.items():
        comment = jobs[slurm_id].comment
        assert re.fullmatch(rf"rule_{rules[jobid]}(_wildcards_.+)?", comment), comment

    # slurmctld's log: each of these jobs was submitted as a batch job and exited 0.
    ctld_log = (log_dir / "slurmctld.log").read_text(encoding="utf-8")
    for job in jobs.values():
        assert f"_slurm_rpc_submit_batch_job: JobId={job.job_id} " in ctld_log, job
        assert f"_job_complete: JobId={job.job_id} WEXITSTATUS 0" in ctld_log, job
    by_comment = {job.comment: job for job in jobs.values()}
    assert len(by_comment) == len(jobs), jobs
    return SlurmRun(proc, rules, submitted, jobs, by_comment)


def expected_resources(rule: str, set_resources: dict, config: dict, model: str | None) -> dict:
    """What a job of ``rule`` asks for: a model rule its model's resources from the
    (validated) config, unless set-resources overrides them; any other rule its entry in
    set-resources."""
    resources = dict(set_resources.get(rule, {}))
    if rule in MODEL_RULES:
        spec = next(m for m in all_models(config) if m["id"] == model)
        resources = {**model_resources(config, spec), **resources}
    return {key: value for key, value in resources.items() if value is not None}


@pytest.mark.slurm
@pytest.mark.workflow
def test_workflow_runs_through_slurm(
    slurm_cluster, tmp_path, tiny_config, write_config, run_snakemake
):
    cluster = slurm_cluster
    config = tiny_config(
        models=[{"id": MODEL, "source": "builtin:olmoe_tiny"}],
        tasks=[{"id": TASK, "source": "builtin:arithmetic", "n": 3}],
        generation={"max_new_tokens": 3, "batch_size": 4},
    )
    write_config(tmp_path, config)
    # The profile as a CPU-only cluster uses it.
    run = run_through_slurm(cluster, tmp_path, run_snakemake, [PROFILE, CPU_ONLY_PROFILE])
    finished = re.findall(r"Finished jobid: (\d+) \(Rule: (\w+)\)", run.proc.stdout)
    assert {rule for _, rule in finished} >= set(EXPECTED_COMMENTS) | {"all"}
    assert set(EXPECTED_COMMENTS.values()) <= set(run.by_comment), run.by_comment

    # The resources reached sbatch: runtime as the time limit, cpus_per_task (threads for
    # the model rules), mem_mb (capped at the node's memory), and no GPU for any job. The
    # model rules' memory and runtime are the config's defaults (model_resources).
    set_resources = load_profile(CPU_ONLY_PROFILE)["set-resources"]
    set_threads = load_profile(PROFILE)["set-threads"]
    validate_config(config)
    cores = min(2, cluster.cpus)
    for rule, comment in EXPECTED_COMMENTS.items():
        job = run.by_comment[comment]
        resources = expected_resources(rule, set_resources, config, MODEL)
        assert job.time_limit == slurm_time(resources["runtime"]), (rule, job)
        expected_cpus = resources.get("cpus_per_task") or min(set_threads[rule], cores)
        assert job.cpus == expected_cpus, (rule, job)
        assert job.memory == f"{min(resources['mem_mb'], cluster.real_memory_mb)}M", (rule, job)
    assert {job.gpus for job in run.jobs.values()} == {"N/A"}, run.jobs
    model_jobs = [
        run.by_comment[EXPECTED_COMMENTS[rule]] for rule in MODEL_RULES & set(EXPECTED_COMMENTS)
    ]
    assert {(job.memory, job.time_limit) for job in model_jobs} == {
        (f"{min(32000, cluster.real_memory_mb)}M", slurm_time(240))
    }

    # The workflow's outputs.
    results = tmp_path / "results"
    mui = pd.read_csv(results / "tables" / "mui.csv")
    assert len(mui) == 2 * len(config["thresholds"])  # variants gate, glu x thresholds
    assert set(mui.model) == {MODEL} and set(mui.task) == {TASK}
    assert (mui.n_samples == 3).all()
    performance = pd.read_csv(results / "tables" / "performance.csv")
    assert performance.n_samples.tolist() == [3]
    assert (results / "activations.zarr" / "zarr.json").is_file()


#: Two models whose jobs ask for different resources, the second for all the node's GPUs
#: (and the GPU type the test cluster names, see slurm_up.sh) and fewer CPUs than threads.
MODEL_A = "olmoe-tiny"
MODEL_B = "qwen2moe-tiny"


@pytest.mark.slurm
@pytest.mark.workflow
def test_each_model_asks_slurm_for_its_own_resources(
    slurm_cluster, tmp_path, tiny_config, write_config, run_snakemake
):
    """models[].resources reach sbatch through the profile: each model's generation,
    capture and ablation jobs ask Slurm for that model's GPUs, memory and time limit, read
    back from Slurm; changing them later re-runs nothing."""
    cluster = slurm_cluster
    assert cluster.gpus == 2
    own = {
        MODEL_A: {"gpu": 1, "mem_mb": 1500, "runtime": 20},
        MODEL_B: {
            "gpu": 2,
            "gpu_model": cluster.gpu_type,
            "mem_mb": 1200,
            "runtime": 30,
            "cpus_per_task": 1,
        },
    }
    config = tiny_config(
        models=[
            {"id": MODEL_A, "source": "builtin:olmoe_tiny", "resources": own[MODEL_A]},
            {"id": MODEL_B, "source": "builtin:qwen2_moe_tiny", "resources": own[MODEL_B]},
        ],
        tasks=[{"id": TASK, "source": "builtin:arithmetic", "n": 3}],
        generation={"max_new_tokens": 3, "batch_size": 4},
    )
    write_config(tmp_path, config)
    # Only the model jobs and what they need: the two store groups. (Each further job on
    # the critical path costs about 30 s here; the ablation's model rule takes the same
    # resources, see test_the_profiles_size_every_model_rule_per_model.)
    targets = [f"results/activations.zarr/{model}/{TASK}" for model in (MODEL_A, MODEL_B)]
    run = run_through_slurm(cluster, tmp_path, run_snakemake, [PROFILE], *targets)
    assert sorted(run.rules[jobid] for jobid in run.submitted) == sorted(
        ["build_model", "build_model", "make_task"] + 2 * ["generate_responses", "capture_scores"]
    )

    # What each model job asked Slurm for: its model's own resources, whatever the rule.
    cores = min(2, cluster.cpus)
    threads = load_profile(PROFILE)["set-threads"]
    seen = {}
    for rule in sorted(MODEL_RULES):
        for model in (MODEL_A, MODEL_B):
            job = run.by_comment.get(f"rule_{rule}_wildcards_{model}_{TASK}")
            if job is None:
                continue
            resources = own[model]
            assert job.gpus == slurm_gpus(resources), (rule, model, job)
            assert job.memory == f"{resources['mem_mb']}M", (rule, model, job)
            assert job.time_limit == slurm_time(resources["runtime"]), (rule, model, job)
            cpus = resources.get("cpus_per_task") or min(threads[rule], cores)
            assert job.cpus == cpus, (rule, model, job)
            seen[rule, model] = (job.gpus, job.memory, job.time_limit, job.cpus)
            print(f"squeue: {job}")  # shown with pytest -rP
    gpus_b = f"gres:gpu:{cluster.gpu_type}:2"
    assert seen == {
        ("generate_responses", MODEL_A): ("gres:gpu:1", "1500M", "20:00", cores),
        ("capture_scores", MODEL_A): ("gres:gpu:1", "1500M", "20:00", cores),
        ("generate_responses", MODEL_B): (gpus_b, "1200M", "30:00", 1),
        ("capture_scores", MODEL_B): (gpus_b, "1200M", "30:00", 1),
    }
    # The other rules ask for no GPU, and for what the profile sets.
    set_resources = load_profile(PROFILE)["set-resources"]
    for job_id, rule in run.rules.items():
        if rule in MODEL_RULES or job_id not in run.submitted:
            continue
        job = run.jobs[run.submitted[job_id]]
        assert job.gpus == "N/A", (rule, job)
        assert job.time_limit == slurm_time(set_resources[rule]["runtime"]), (rule, job)
    for model in (MODEL_A, MODEL_B):
        group = tmp_path / "results" / "activations.zarr" / model / TASK
        assert (group / "zarr.json").is_file(), model

    # The resources are not part of what a job computes: other values re-run nothing.
    config["models"][0]["resources"] = {"gpu": 2, "mem_mb": 1000, "runtime": 10}
    del config["models"][1]["resources"]
    config["model_resources"] = {"gpu": 0, "mem_mb": 900}
    write_config(tmp_path, config)
    dry = run_snakemake(tmp_path, "-n", *targets, timeout=300)
    assert dry.returncode == 0, dry.stdout[-4000:]
    assert "Nothing to be done" in dry.stdout, dry.stdout[-4000:]


@pytest.mark.slurm
@pytest.mark.workflow
def test_a_sharded_cell_runs_as_separate_slurm_jobs(
    slurm_cluster, tmp_path, tiny_config, write_config, run_snakemake
):
    """A task in 2 shards (2 samples and 1): each shard's generation and capture is a
    Slurm job of its own with the model's resources, the gathers take the profile's, and
    the gathered group holds the 3 samples, its shards removed."""
    cluster = slurm_cluster
    own = {"gpu": 1, "mem_mb": 1500, "runtime": 20}
    config = tiny_config(
        models=[{"id": MODEL_A, "source": "builtin:olmoe_tiny", "resources": own}],
        tasks=[{"id": TASK, "source": "builtin:arithmetic", "n": 3, "shards": 2}],
        generation={"max_new_tokens": 3, "batch_size": 4},
    )
    write_config(tmp_path, config)
    target = f"results/activations.zarr/{MODEL_A}/{TASK}"
    run = run_through_slurm(cluster, tmp_path, run_snakemake, [PROFILE], target)
    assert sorted(run.rules[jobid] for jobid in run.submitted) == sorted(
        ["build_model", "make_task", "gather_responses", "gather_store"]
        + 2 * ["generate_shard", "capture_shard"]
    )
    cores = min(2, cluster.cpus)
    threads = load_profile(PROFILE)["set-threads"]
    set_resources = load_profile(PROFILE)["set-resources"]
    for rule in ("generate_shard", "capture_shard"):
        for shard in ("1-of-2", "2-of-2"):
            job = run.by_comment[f"rule_{rule}_wildcards_{shard}_{MODEL_A}_{TASK}"]
            assert job.gpus == slurm_gpus(own), (rule, shard, job)
            assert job.memory == f"{own['mem_mb']}M", (rule, shard, job)
            assert job.time_limit == slurm_time(own["runtime"]), (rule, shard, job)
            assert job.cpus == min(threads[rule], cores), (rule, shard, job)
            print(f"squeue: {job}")  # shown with pytest -rP
    for rule in ("gather_responses", "gather_store"):
        job = run.by_comment[f"rule_{rule}_wildcards_{MODEL_A}_{TASK}"]
        assert job.gpus == "N/A", (rule, job)
        assert job.time_limit == slurm_time(set_resources[rule]["runtime"]), (rule, job)
        assert job.memory == f"{min(set_resources[rule]['mem_mb'], cluster.real_memory_mb)}M"
    assert len({job.job_id for job in run.jobs.values()}) == len(run.submitted) == 8
    root = tmp_path / "results" / "activations.zarr"
    assert verify_group(root, MODEL_A, TASK) == []
    assert zarr.open_group(root / MODEL_A / TASK, mode="r")["sample"].shape == (3,)
    assert not [p for p in (tmp_path / "results" / "shards").rglob("*") if p.is_file()]
