"""Shards through the workflow: two families on two tasks split into shards give the
unsharded run's store, responses and tables byte for byte, and a shard's job killed
mid-capture is the one job of its kind that the documented recovery runs again.
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
from conftest import spawn_workflow
from test_workflow import finished_rules, job_counts


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
# Two families, two tasks of 40 samples, unsharded and sharded
# --------------------------------------------------------------------------------------

#: The tiny config's two families (routed only; with a shared expert) on 40 samples per
#: task: a shard of 13 or 14 samples straddles the store's 16-sample chunks, and the
#: capture batch of 3 does not divide a shard.
SPLIT = {
    "tasks": [
        {"id": "arithmetic", "source": "builtin:arithmetic", "n": 40},
        {"id": "boolean", "source": "builtin:boolean_expressions", "n": 40},
    ],
    "generation": {"max_new_tokens": 4, "batch_size": 8},
    "capture": {"batch_size": 3},
}


@pytest.fixture(scope="module")
def split_runs(tmp_path_factory, tiny_config, write_config, run_snakemake):
    """The config run as is, then again with arithmetic in 3 shards (40 samples: 14, 13
    and 13) and boolean in 5 (8 each), reusing the first run's models and task files
    (neither is sharded)."""
    plain = tmp_path_factory.mktemp("plain")
    config = tiny_config(**SPLIT)
    write_config(plain, config)
    first = run_snakemake(plain, timeout=1800)
    assert first.returncode == 0, first.stdout[-6000:]

    sharded = tmp_path_factory.mktemp("sharded")
    config = tiny_config(**SPLIT)
    shards = {"arithmetic": 3, "boolean": 5}
    for task in config["tasks"]:
        task["shards"] = shards[task["id"]]
    write_config(sharded, config)
    shutil.copytree(plain / ".snakemake", sharded / ".snakemake", symlinks=True)
    for kept in ("models", "tasks"):
        shutil.copytree(plain / "results" / kept, sharded / "results" / kept, symlinks=True)
    second = run_snakemake(sharded, timeout=1800)
    assert second.returncode == 0, second.stdout[-6000:]
    return plain, sharded, first.stdout, second.stdout, config


@pytest.mark.workflow
def test_sharded_run_has_a_job_per_shard(split_runs):
    _, _, _, output, config = split_runs
    counts = job_counts(output)
    models = len(config["models"])
    n_shards = sum(task["shards"] for task in config["tasks"])
    assert counts["generate_shard"] == counts["capture_shard"] == models * n_shards
    assert counts["gather_responses"] == counts["gather_store"] == models * 2
    assert "generate_responses" not in counts and "capture_scores" not in counts
    assert "build_model" not in counts and "make_task" not in counts


@pytest.mark.workflow
def test_sharded_run_is_bit_identical(split_runs):
    plain, sharded, *_ = split_runs
    want, got = compared(plain / "results"), compared(sharded / "results")
    assert len(want) > 100
    assert sorted(got) == sorted(want)
    differ = [name for name in want if got[name] != want[name]]
    assert differ == []


@pytest.mark.workflow
def test_gathered_shards_are_removed(split_runs):
    _, sharded, *_ = split_runs
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


def _workers(session: int, pattern: str) -> list[int]:
    """The Python processes of session ``session`` (the workflow's, started in a session
    of its own, so never another test's) whose command line matches ``pattern``.

    Only the process that runs moemui itself (its command line starts with the
    interpreter of moemui's script), not the shell Snakemake starts it from: a shell
    killed before it has forked the worker would leave an orphan that finishes the job's
    output after Snakemake has given up on it, and the next run would take that output
    as made.
    """
    found = subprocess.run(
        ["pgrep", "-s", str(session), "-f", f"^[^ ]*/python[0-9.]* {pattern}"],
        capture_output=True,
        text=True,
    )
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
                pattern = f"[^ ]*/moemui .*capture .*--shard {missing[0]}/3 --out results/shards/"
                pids = _workers(proc.pid, pattern)
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
