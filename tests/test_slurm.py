"""The Slurm profile (profiles/slurm), run for real: a private single-node Slurm cluster
(Debian's Slurm 22.05, brought up by tests/slurm/slurm_up.sh in a temporary directory) runs
a one-model, one-task workflow submitted by snakemake-executor-plugin-slurm, and the test
checks Slurm's own job records against the profile.

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

REPO_ROOT = Path(__file__).resolve().parents[1]
PROFILE = REPO_ROOT / "profiles" / "slurm"
CPU_ONLY_PROFILE = PROFILE / "cpu-only"
SCRIPTS = Path(__file__).resolve().parent / "slurm"
GPU_KEYS = {"gpu", "gpu_model", "gres", "cpus_per_gpu", "tasks_per_gpu"}

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
    """profiles/slurm/cpu-only restates profiles/slurm's set-resources minus the GPU keys."""
    profile = load_profile(PROFILE)
    overlay = load_profile(CPU_ONLY_PROFILE)
    assert set(overlay) == {"set-resources"}
    assert overlay["set-resources"] == {
        rule: {key: value for key, value in resources.items() if key not in GPU_KEYS}
        for rule, resources in profile["set-resources"].items()
    }
    assert {rule for rule, res in profile["set-resources"].items() if GPU_KEYS & set(res)} == {
        "generate_responses",
        "capture_scores",
        "ablate_neurons",
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
        node = re.search(r"^NodeName=\S+ .*CPUs=(\d+) RealMemory=(\d+)", conf, flags=re.M)
        assert node, conf
        yield Cluster(directory, directory / "slurm.conf", int(node[1]), int(node[2]))
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


def slurm_jobs(cluster: Cluster) -> list[SlurmJob]:
    """Every job slurmctld still knows (MinJobAge=300 keeps finished ones listed)."""
    out = cluster.command("squeue", "--states=all", "--noheader", "--format=%i|%j|%k|%T|%C|%m|%l")
    jobs = []
    for line in out.splitlines():
        job_id, name, comment, state, cpus, memory, limit = line.strip().split("|")
        jobs.append(SlurmJob(job_id, name, comment, state, int(cpus), memory, limit))
    return jobs


def slurm_time(minutes: int) -> str:
    """A runtime in minutes as squeue prints a time limit (MM:SS, H:MM:SS, D-HH:MM:SS)."""
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}-{hours:02d}:{mins:02d}:00"
    return f"{hours}:{mins:02d}:00" if hours else f"{mins}:00"


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
    # The profile as a CPU-only cluster uses it, plus what fits this one small node: --cores
    # caps the model rules' threads (their --cpus-per-task) at the node's CPUs, --resources
    # mem_mb caps each job's --mem at its memory; and the first status check 1 s, not 10 s,
    # after a submission or a finished job (the plugin adds 10 s per check that finds none).
    # `--workflow-profile none`: otherwise profiles/default (workstation settings) is loaded
    # too and its set-threads and cores override the Slurm profile's.
    cores = min(2, cluster.cpus)
    proc = run_snakemake(
        tmp_path,
        "--profile",
        str(PROFILE),
        "--profile",
        str(CPU_ONLY_PROFILE),
        "--workflow-profile",
        "none",
        "--resources",
        f"mem_mb={cluster.real_memory_mb}",
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--seconds-between-status-checks",
        "1",
        cores=cores,
        timeout=400,
        extra_env=cluster.env,
    )
    log_dir = cluster.directory / "log"
    assert proc.returncode == 0, (
        proc.stdout[-8000:]
        + "\n--- slurmctld.log ---\n"
        + (log_dir / "slurmctld.log").read_text(encoding="utf-8")[-3000:]
    )
    assert "Using profiles " in proc.stdout and "workflow specific profile" not in proc.stdout

    # Snakemake's side: every job but the target rule went to Slurm, with this Slurm job id.
    run_id = re.search(r"SLURM run ID: (\S+)", proc.stdout)
    assert run_id, proc.stdout[-4000:]
    blocks = re.findall(r"^rule (\w+):\n(?:    .*\n)*?    jobid: (\d+)$", proc.stdout, re.M)
    job_rules = {jobid: rule for rule, jobid in blocks}
    submitted = dict(
        re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", proc.stdout)
    )
    finished = re.findall(r"Finished jobid: (\d+) \(Rule: (\w+)\)", proc.stdout)
    assert {rule for _, rule in finished} >= set(EXPECTED_COMMENTS) | {"all"}
    assert sorted(submitted) == sorted(jobid for jobid, rule in finished if rule != "all")

    # Slurm's side: one COMPLETED job per submitted workflow job, named with this run's id
    # and commented with its rule (and wildcards).
    jobs = {job.job_id: job for job in slurm_jobs(cluster) if job.name == run_id[1]}
    assert sorted(jobs) == sorted(submitted.values()), (submitted, jobs)
    assert {job.state for job in jobs.values()} == {"COMPLETED"}, jobs
    for jobid, slurm_id in submitted.items():
        comment = jobs[slurm_id].comment
        assert re.fullmatch(rf"rule_{job_rules[jobid]}(_wildcards_.+)?", comment), comment
    by_comment = {job.comment: job for job in jobs.values()}
    assert set(EXPECTED_COMMENTS.values()) <= set(by_comment), by_comment

    # The profile's resources reached sbatch: runtime as the time limit, cpus_per_task
    # (threads for the model rules), mem_mb (capped at the node's memory).
    set_resources = load_profile(CPU_ONLY_PROFILE)["set-resources"]
    set_threads = load_profile(PROFILE)["set-threads"]
    for rule, comment in EXPECTED_COMMENTS.items():
        job = by_comment[comment]
        resources = set_resources[rule]
        assert job.time_limit == slurm_time(resources["runtime"]), (rule, job)
        expected_cpus = resources.get("cpus_per_task") or min(set_threads[rule], cores)
        assert job.cpus == expected_cpus, (rule, job)
        assert job.memory == f"{min(resources['mem_mb'], cluster.real_memory_mb)}M", (rule, job)

    # slurmctld's log: each of these jobs was submitted as a batch job and exited 0.
    ctld_log = (log_dir / "slurmctld.log").read_text(encoding="utf-8")
    for job in jobs.values():
        assert f"_slurm_rpc_submit_batch_job: JobId={job.job_id} " in ctld_log, job
        assert f"_job_complete: JobId={job.job_id} WEXITSTATUS 0" in ctld_log, job

    # The workflow's outputs.
    results = tmp_path / "results"
    mui = pd.read_csv(results / "tables" / "mui.csv")
    assert len(mui) == 2 * len(config["thresholds"])  # variants gate, glu x thresholds
    assert set(mui.model) == {MODEL} and set(mui.task) == {TASK}
    assert (mui.n_samples == 3).all()
    performance = pd.read_csv(results / "tables" / "performance.csv")
    assert performance.n_samples.tolist() == [3]
    assert (results / "activations.zarr" / "zarr.json").is_file()
