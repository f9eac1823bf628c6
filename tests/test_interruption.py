"""Killed jobs: SIGKILL at many points of a capture and of a generation, then re-run.

Nothing partial is ever read as complete, what a killed run leaves behind is removed by
the next one, and the re-run's outputs equal those of an uninterrupted run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import xarray as xr

from moemui.recipes import build_model
from moemui.steps.responses import generate_task
from moemui.steps.tasks import materialise_task
from moemui.store import group_problems, open_group, partial_dir

N_SAMPLES = 64


@pytest.fixture(scope="module")
def cell(tmp_path_factory):
    """A tiny model, a task, its responses, and the store group of an uninterrupted capture."""
    root = tmp_path_factory.mktemp("interrupt")
    model = build_model("olmoe_tiny", 0, root / "model")
    tasks = root / "arith.jsonl"
    materialise_task({"id": "arith", "source": "builtin:arithmetic", "n": N_SAMPLES}, tasks)
    responses = root / "responses.jsonl"
    generate_task("m", str(model), tasks, responses, device="cpu", batch_size=8, max_new_tokens=6)
    return {"root": root, "model": model, "tasks": tasks, "responses": responses}


def _moemui(*argv: str) -> list[str]:
    code = "import sys; from moemui.cli import main; sys.exit(main(sys.argv[1:]))"
    return [sys.executable, "-c", code, "--threads", "1", *argv]


def _spawn(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 120) -> float:
    """Poll ``predicate`` every millisecond until it holds; return the time it took."""
    start = time.monotonic()
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the job ended early: {proc.stderr.read()[-2000:]}")
        if time.monotonic() - start > timeout:
            raise AssertionError("timed out")
        time.sleep(0.001)
    return time.monotonic() - start


def _capture_argv(cell, out: Path, batch_size: int = 4) -> list[str]:
    return _moemui(
        "capture",
        "--model-id",
        "m",
        "--source",
        str(cell["model"]),
        "--task-id",
        "arith",
        "--tasks",
        str(cell["tasks"]),
        "--responses",
        str(cell["responses"]),
        "--out",
        str(out),
        "--batch-size",
        str(batch_size),
        "--device",
        "cpu",
    )


def test_capture_killed_at_twelve_points_then_rerun_equals_an_uninterrupted_run(cell):
    store = cell["root"] / "killed.zarr"
    group = store / "m" / "arith"
    argv = _capture_argv(cell, group, batch_size=1)

    def partials():  # partial groups live outside the store, beside their lock
        return [p for p in partial_dir(store).glob("m/arith.*") if p.is_dir()]

    # how long the capture runs once its partial group exists (model loaded)
    proc = _spawn(argv)
    _wait_for(lambda: bool(partials()), proc)
    duration = _wait_for(lambda: (group / "zarr.json").exists(), proc)
    assert proc.wait() == 0
    assert duration > 0.2, f"the capture is too quick ({duration:.2f} s) to be interrupted"
    baseline = open_group(store, "m", "arith").load()  # the uninterrupted run's group
    shutil.rmtree(group)

    mid_capture = 0
    for point in [
        None,
        *[f * duration for f in (0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.97)],
    ]:
        proc = _spawn(argv)
        if point is None:  # while the model loads
            time.sleep(0.3)
        else:
            _wait_for(lambda: bool(partials()), proc)
            time.sleep(point)
        if proc.poll() is None:
            mid_capture += bool(partials()) and not group.exists()
            _kill(proc)
        if group.exists():  # killed after publishing, or a later run's group survived
            assert group_problems(store, "m", "arith") in (
                [],
                ["not marked complete (an interrupted or failed capture)"],
            )
            if not group_problems(store, "m", "arith"):
                xr.testing.assert_identical(open_group(store, "m", "arith").load(), baseline)
    assert mid_capture >= 10, f"only {mid_capture} kills landed inside the capture"
    assert partials(), "the killed runs should have left partial groups behind"

    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "left by an interrupted run" in done.stderr
    assert partials() == [] and sorted(p.name for p in group.parent.iterdir()) == ["arith"]
    assert list(partial_dir(store).glob("m/*")) == []  # the lock released too
    xr.testing.assert_identical(open_group(store, "m", "arith").load(), baseline)


def test_generation_killed_at_several_points_then_rerun_equals_an_uninterrupted_run(cell):
    out = cell["root"] / "regen" / "arith.jsonl"
    argv = _moemui(
        "generate",
        "--model-id",
        "m",
        "--source",
        str(cell["model"]),
        "--tasks",
        str(cell["tasks"]),
        "--out",
        str(out),
        "--batch-size",
        "8",
        "--max-new-tokens",
        "6",
        "--device",
        "cpu",
    )
    start = time.monotonic()
    first = subprocess.run(argv, capture_output=True, text=True, check=False)
    total = time.monotonic() - start
    assert first.returncode == 0, first.stderr[-3000:]
    expected = out.read_text()  # the uninterrupted run's responses
    assert len(expected.splitlines()) == N_SAMPLES
    out.unlink()
    for fraction in (0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.99):
        proc = _spawn(argv)
        time.sleep(fraction * total)
        if proc.poll() is None:
            _kill(proc)
        # never a partial responses file under the final name
        assert not out.exists() or out.read_text() == expected
        if out.exists():
            out.unlink()
    leftovers = [p for p in out.parent.iterdir() if p.name != "arith.jsonl"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert out.read_text() == expected
    assert [p.name for p in out.parent.iterdir()] == ["arith.jsonl"]
    if leftovers:
        assert "left by an interrupted run" in done.stderr


def test_stale_temporaries_of_killed_writers_are_removed(tmp_path):
    from moemui.io import atomic_write_text, staged_directory

    (tmp_path / ".out.txt.abc123.tmp").write_text("half")
    (tmp_path / ".model.xyz.staged").mkdir()
    (tmp_path / ".model.xyz.staged" / "w").write_text("half")
    keep = tmp_path / ".other.txt.abc.tmp"
    keep.write_text("not ours")
    atomic_write_text(tmp_path / "out.txt", "whole")
    with staged_directory(tmp_path / "model") as tmp:
        (Path(tmp) / "w").write_text("whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.txt.abc.tmp", "model", "out.txt"]


def _mount_tmpfs(path: Path, options: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small or read-only file system needs root")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"this machine cannot mount a tmpfs: {done.stderr.strip()}")


@pytest.fixture
def mount():
    """Callable ``(path, options)``: a tmpfs mounted at ``path``, unmounted afterwards."""
    mounted: list[Path] = []

    def do(path: Path, options: str) -> Path:
        _mount_tmpfs(path, options)
        mounted.append(path)
        return path

    yield do
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], check=False)


def _last_error(argv: list[str]) -> str:
    """The exit code 1 and the ERROR line of ``moemui ARGV``."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 1, done.stderr[-3000:]
    return done.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("options", "message"),
    [("size=256k", "No space left on device"), ("ro,size=1m", "Read-only file system")],
    ids=["disk-full", "read-only"],
)
def test_unwritable_store_fails_clearly_and_leaves_no_partial_group(
    cell, tmp_path, mount, options, message
):
    disk = mount(tmp_path / "disk", options)  # the store and its partial groups' place
    store = disk / "store"
    error = _last_error(_capture_argv(cell, store / "m" / "arith"))
    assert error.startswith(f"ERROR: {disk}/") and message in error
    assert not (store / "m" / "arith").exists()
    # neither a partial group nor the lock is left
    assert not [p for p in disk.rglob("*") if not p.is_dir() or p.name.startswith("arith")]


def test_read_only_responses_fail_clearly(cell, tmp_path, mount):
    responses = mount(tmp_path / "ro" / "responses", "ro,size=1m")
    error = _last_error(
        _moemui(
            "generate",
            "--model-id",
            "m",
            "--source",
            str(cell["model"]),
            "--tasks",
            str(cell["tasks"]),
            "--out",
            str(responses / "arith.jsonl"),
            "--device",
            "cpu",
        )
    )
    assert error.startswith(f"ERROR: {responses}/") and "Read-only file system" in error


@pytest.mark.workflow
def test_killed_workflow_reports_its_lock_and_reruns_to_the_same_results(
    tmp_path, tiny_config, write_config, run_snakemake
):
    """SIGKILL the whole snakemake run while it captures: the next run reports the stale
    lock instead of trusting it; after --unlock, a re-run finishes what was left and gives
    the tables and store of an uninterrupted run."""
    from conftest import spawn_workflow

    config = tiny_config(models=[{"id": "olmoe-tiny", "source": "builtin:olmoe_tiny"}])
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    for workdir in (clean, killed):
        workdir.mkdir()
        write_config(workdir, config)
    assert run_snakemake(clean).returncode == 0

    proc = spawn_workflow(killed)
    store = killed / "results" / "activations.zarr"
    _wait_for(lambda: any(p.is_dir() for p in partial_dir(store).glob("*/*")), proc, timeout=300)
    _kill(proc)

    locked = run_snakemake(killed)
    assert locked.returncode != 0 and "Directory cannot be locked" in locked.stdout
    assert run_snakemake(killed, "--unlock").returncode == 0
    rerun = run_snakemake(killed, "--rerun-incomplete")
    assert rerun.returncode == 0, rerun.stdout[-4000:]

    for table in ("mui.csv", "performance.csv"):
        assert (killed / "results" / "tables" / table).read_bytes() == (
            clean / "results" / "tables" / table
        ).read_bytes()
    for task in ("arithmetic", "boolean"):
        xr.testing.assert_identical(
            open_group(store, "olmoe-tiny", task).load(),
            open_group(clean / "results" / "activations.zarr", "olmoe-tiny", task).load(),
        )
    assert not list(store.glob("*/.*"))
    assert not any(p.is_dir() for p in partial_dir(store).glob("*/*"))  # no partial left
