"""Shards through the workflow: the default config with a task split into shards gives
the unsharded run's store and tables byte for byte, and a shard's job killed mid-capture
is the one job of its kind that the documented recovery runs again.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import spawn_workflow
from test_workflow import finished_rules, job_counts

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "config" / "config.yaml"


def tree(path: Path) -> dict[str, str]:
    """Every file under ``path`` (relative name -> SHA-256 of its bytes)."""
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def compared(results: Path) -> dict[str, str]:
    """What must not depend on sharding: the store (every group, every chunk and
    metadata file), the responses, the key neurons' tables and every table."""
    out = {}
    for part in ("activations.zarr", "responses", "tables"):
        out.update({f"{part}/{k}": v for k, v in tree(results / part).items()})
    return out


# --------------------------------------------------------------------------------------
# The default config, unsharded and sharded
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_runs(tmp_path_factory, run_snakemake):
    """The default config run as is, then again with arithmetic in 3 shards (256 samples:
    86, 85 and 85) and boolean in 5 (52, 51, 51, 51, 51), reusing the first run's trained
    checkpoints and task files (training is the same either way; it is not sharded)."""
    plain = tmp_path_factory.mktemp("default")
    shutil.copy(DEFAULT, plain / "config.yaml")
    first = run_snakemake(plain, timeout=3600)
    assert first.returncode == 0, first.stdout[-6000:]

    sharded = tmp_path_factory.mktemp("default-sharded")
    config = yaml.safe_load(DEFAULT.read_text(encoding="utf-8"))
    shards = {"arithmetic": 3, "boolean": 5}
    for task in config["tasks"]:
        if task["id"] in shards:
            task["shards"] = shards[task["id"]]
    assert {t["id"] for t in config["tasks"]} >= set(shards)
    (sharded / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    shutil.copytree(plain / ".snakemake", sharded / ".snakemake", symlinks=True)
    for kept in ("training", "tasks"):
        shutil.copytree(plain / "results" / kept, sharded / "results" / kept, symlinks=True)
    second = run_snakemake(sharded, timeout=3600)
    assert second.returncode == 0, second.stdout[-6000:]
    return plain, sharded, first.stdout, second.stdout, config


@pytest.mark.workflow
def test_sharded_default_run_has_a_job_per_shard(default_runs):
    _, _, _, output, config = default_runs
    counts = job_counts(output)
    cells = {}
    models = len(config["models"]) + sum(len(s["checkpoints"]) for s in config["series"])
    for task in config["tasks"]:
        cells[task["id"]] = task.get("shards", 1)
    n_sharded = sum(n for n in cells.values() if n > 1)
    assert counts["generate_shard"] == counts["capture_shard"] == models * n_sharded
    assert counts["gather_responses"] == counts["gather_store"] == models * 2
    assert counts["generate_responses"] == counts["capture_scores"] == models * 1
    assert "train_model" not in counts and "make_task" not in counts


@pytest.mark.workflow
def test_sharded_default_run_is_bit_identical(default_runs):
    plain, sharded, *_ = default_runs
    want, got = compared(plain / "results"), compared(sharded / "results")
    assert len(want) > 500
    assert sorted(got) == sorted(want)
    differ = [name for name in want if got[name] != want[name]]
    assert differ == []


@pytest.mark.workflow
def test_gathered_shards_are_removed(default_runs):
    _, sharded, *_ = default_runs
    left = [p for p in (sharded / "results" / "shards").rglob("*") if p.is_file()]
    assert left == []


# --------------------------------------------------------------------------------------
# A shard's job killed: the recovery runs that shard again, and only it
# --------------------------------------------------------------------------------------

CELL = {
    "models": [{"id": "olmoe-tiny", "source": "builtin:olmoe_tiny"}],
    "tasks": [{"id": "arithmetic", "source": "builtin:arithmetic", "n": 5}],
    "generation": {"max_new_tokens": 3, "batch_size": 3},
    "capture": {"batch_size": 2},
}
TARGETS = ["results/tables/mui.csv", "results/tables/performance.csv"]


def _pids(pattern: str) -> list[int]:
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


@pytest.mark.workflow
def test_killed_shard_reruns_alone(tmp_path, tiny_config, write_config, run_snakemake):
    plain = tmp_path / "plain"
    plain.mkdir()
    write_config(plain, tiny_config(**CELL))
    done = run_snakemake(plain, *TARGETS, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:]

    work = tmp_path / "sharded"
    work.mkdir()
    config = tiny_config(**CELL)
    config["tasks"][0]["shards"] = 3  # 2, 2 and 1 samples
    write_config(work, config)
    shards = work / "results" / "shards"
    groups = [
        shards / f"{i}-of-3" / "activations.zarr" / "olmoe-tiny" / "arithmetic" for i in (1, 2, 3)
    ]
    # one job at a time: when the third capture shard starts, the other two are done
    proc = spawn_workflow(work, *TARGETS, cores=1)
    victim = None
    deadline = time.monotonic() + 900
    try:
        while victim is None and time.monotonic() < deadline and proc.poll() is None:
            missing = [i for i, g in enumerate(groups, start=1) if not g.is_dir()]
            if len(missing) == 1:
                pids = _pids(f"moemui .*capture .*--shard {missing[0]}/3 --out results/shards/")
                if pids:
                    victim = groups[missing[0] - 1]
                    for pid in pids:
                        os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        assert victim is not None, "the third capture shard was never seen running"
        assert proc.wait(timeout=300) != 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    kept = {g: tree(g) for g in groups if g != victim}
    assert len(kept) == 2 and all(kept.values())
    assert not victim.exists()

    unlock = run_snakemake(work, "--unlock", timeout=300)
    assert unlock.returncode == 0, unlock.stdout[-3000:]
    again = run_snakemake(work, *TARGETS, "--rerun-incomplete", timeout=900)
    assert again.returncode == 0, again.stdout[-4000:]
    rules = finished_rules(again.stdout)
    assert rules.count("capture_shard") == 1, rules
    assert "generate_shard" not in rules and "gather_responses" not in rules, rules
    shard = victim.parts[-4]
    assert re.search(
        rf"rule capture_shard:\n(?:    .*\n)*?    wildcards: .*shard={shard}", again.stdout
    ), again.stdout[-4000:]
    assert rules.count("gather_store") == 1

    # the recovered cell is the unsharded one, byte for byte; the shards are gone
    assert compared(work / "results") == compared(plain / "results")
    assert not [p for p in shards.rglob("*") if p.is_file()]
