"""A missing or incomplete store group is captured again by the next ``snakemake`` run,
whatever the state of the tables (one model, one task of 3 samples; one finished run
shared by every case)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import zarr

from moemui.cli import main
from moemui.store import group_problems, set_aside_dir, verify_group

pytestmark = pytest.mark.workflow

MODEL, TASK = "olmoe-tiny", "arithmetic"


@pytest.fixture(scope="module")
def finished(tmp_path_factory, tiny_config, write_config, run_snakemake) -> Path:
    """A workdir after a complete run of the tiny workflow."""
    workdir = tmp_path_factory.mktemp("finished")
    config = tiny_config(
        models=[{"id": MODEL, "source": f"builtin:{MODEL.replace('-', '_')}"}],
        tasks=[{"id": TASK, "source": "builtin:arithmetic", "n": 3}],
        generation={"max_new_tokens": 3, "batch_size": 3},
    )
    write_config(workdir, config)
    done = run_snakemake(workdir)
    assert done.returncode == 0, done.stdout[-4000:]
    return workdir


@pytest.fixture
def workdir(finished, tmp_path) -> Path:
    """A copy of the finished run (Snakemake's metadata too)."""
    copy = tmp_path / "run"
    shutil.copytree(finished, copy, symlinks=True)
    return copy


def _store(workdir: Path) -> Path:
    return workdir / "results" / "activations.zarr"


def _rerun_recaptures(workdir: Path, run_snakemake, *args: str) -> None:
    mui = workdir / "results" / "tables" / "mui.csv"
    before = mui.stat().st_mtime_ns
    done = run_snakemake(workdir, *args)
    assert done.returncode == 0, done.stdout[-4000:]
    assert "capture_scores" in done.stdout and "Nothing to be done" not in done.stdout
    assert verify_group(_store(workdir), MODEL, TASK) == []
    assert mui.stat().st_mtime_ns > before  # the tables are made again from it
    again = run_snakemake(workdir, "--dry-run")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout, again.stdout[-3000:]


def test_a_deleted_group_is_captured_again(workdir, run_snakemake):
    shutil.rmtree(_store(workdir) / MODEL / TASK)
    _rerun_recaptures(workdir, run_snakemake)


def test_a_group_set_aside_is_captured_again(workdir, run_snakemake, capsys):
    group = _store(workdir) / MODEL / TASK
    zarr.open_array(group / "n_tokens", mode="a")[0] = 99  # values changed: digest mismatch
    assert main(["check-store", str(_store(workdir)), "--set-aside"]) == 1
    assert "does not match its digest" in capsys.readouterr().out
    assert not group.exists() and list((set_aside_dir(_store(workdir)) / MODEL).iterdir())
    _rerun_recaptures(workdir, run_snakemake)


def test_a_group_not_marked_complete_is_captured_again(workdir, run_snakemake):
    meta = _store(workdir) / MODEL / TASK / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["attributes"]["complete"] = False
    meta.write_text(json.dumps(doc))
    _rerun_recaptures(workdir, run_snakemake)


def test_a_killed_forced_recapture_is_finished_by_rerun_incomplete(workdir, run_snakemake):
    """SIGKILL snakemake (its whole process group) during a forced capture: Snakemake
    removed the group before the job started; --unlock and --rerun-incomplete re-make
    it, although every table is up to date."""
    from conftest import spawn_workflow

    log = workdir / "results" / "logs" / "capture_scores" / MODEL / f"{TASK}.log"
    log.unlink()
    proc = spawn_workflow(workdir, "--forcerun", "capture_scores", cores=1)
    start = time.monotonic()
    while not (log.exists() and log.stat().st_size > 0):
        assert proc.poll() is None, "snakemake ended before the capture started"
        assert time.monotonic() - start < 300, "the capture did not start"
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (_store(workdir) / MODEL / TASK / "zarr.json").exists()

    assert run_snakemake(workdir, "--unlock").returncode == 0
    _rerun_recaptures(workdir, run_snakemake, "--rerun-incomplete")
    assert group_problems(_store(workdir), MODEL, TASK) == []
