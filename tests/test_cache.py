"""Snakemake's between-workflow output cache: two projects share one model build,
generation and capture."""

from __future__ import annotations

import os

import pytest
import xarray as xr

CONFIG = {
    "models": [{"id": "olmoe-tiny", "source": "builtin:olmoe_tiny"}],
    "tasks": [{"id": "boolean", "source": "builtin:boolean_expressions", "n": 3}],
    "generation": {"max_new_tokens": 3},
}
CACHED_RULES = ["build_model", "generate_responses", "capture_scores"]


def _in(cache, path) -> bool:
    return os.path.realpath(path).startswith(str(cache.resolve()))


@pytest.mark.workflow
def test_second_project_reuses_the_cached_outputs(
    tmp_path, tiny_config, write_config, run_snakemake
):
    cache = tmp_path / "cache"
    cache.mkdir()
    env = {"SNAKEMAKE_OUTPUT_CACHE": str(cache)}
    runs = []
    for project in ("first", "second"):
        workdir = tmp_path / project
        workdir.mkdir()
        write_config(workdir, tiny_config(**CONFIG))
        proc = run_snakemake(workdir, "--cache", *CACHED_RULES, extra_env=env)
        assert proc.returncode == 0, proc.stdout[-4000:]
        runs.append((workdir, proc.stdout))
    (first, _), (second, out) = runs
    assert len(list(cache.iterdir())) == 3  # one entry per cached job
    # a cached file comes back as a link into the cache, a cached directory as a
    # directory of links into one cache entry
    responses = second / "results/responses/olmoe-tiny/boolean.jsonl"
    assert responses.is_symlink() and _in(cache, responses)
    for directory in ("results/models/olmoe-tiny", "results/activations.zarr/olmoe-tiny/boolean"):
        entries = [p for p in (second / directory).iterdir() if p.name != ".snakemake_timestamp"]
        assert entries and all(p.is_symlink() and _in(cache, p) for p in entries), directory
    # the second project ran none of the cached rules' commands: their logs stay empty
    for log in (
        "build_model/olmoe-tiny.log",
        "generate_responses/olmoe-tiny/boolean.log",
        "capture_scores/olmoe-tiny/boolean.log",
    ):
        assert (first / "results/logs" / log).stat().st_size > 0, log
        assert (second / "results/logs" / log).stat().st_size == 0, log
    a = xr.open_zarr(first / "results/activations.zarr", group="olmoe-tiny/boolean")
    b = xr.open_zarr(second / "results/activations.zarr", group="olmoe-tiny/boolean")
    xr.testing.assert_identical(a.load(), b.load())
    assert (second / "results/tables/mui.csv").read_text() == (
        first / "results/tables/mui.csv"
    ).read_text()


def _stored_twice(tmp_path, monkeypatch, guarded: bool):
    """Two projects computed one cached directory output and store it one after the
    other (what two concurrent runs do when both missed the cache): the cache entry and
    the two outputs."""
    import asyncio
    import shutil
    from pathlib import Path

    from snakemake.caching import local

    from moemui import cache as moemui_cache

    root = tmp_path / "cache"
    root.mkdir()
    monkeypatch.setenv("SNAKEMAKE_OUTPUT_CACHE", str(root))
    monkeypatch.setattr(local, "shutil", shutil)
    if guarded:
        assert moemui_cache.install()
    entry = root / "0123abcd"
    outputs = []
    for project in ("first", "second"):
        out = tmp_path / project / "results/activations.zarr/m/t"
        out.mkdir(parents=True)
        (out / "zarr.json").write_text('{"node_type": "group"}')
        (out / "score_glu").mkdir()
        (out / "score_glu" / "c").write_bytes(project.encode())
        store = local.OutputFileCache()

        async def files(job, out=out):
            return [(Path(out), entry)]

        store.get_outputfiles_and_cachefiles = files
        asyncio.run(store.store(job=None))
        outputs.append(out)
    return entry, outputs


def test_unguarded_snakemake_nests_the_second_writers_copy(tmp_path, monkeypatch):
    """The fault the guard fixes, as Snakemake 9 alone does it."""
    entry, _ = _stored_twice(tmp_path, monkeypatch, guarded=False)
    # the second copy sits inside the entry, and every later fetch links it in
    assert sorted(p.name for p in entry.iterdir()) == [entry.name, "score_glu", "zarr.json"]


def test_concurrent_writers_of_one_entry_leave_one_clean_entry(tmp_path, monkeypatch):
    entry, (first, second) = _stored_twice(tmp_path, monkeypatch, guarded=True)
    assert sorted(p.name for p in entry.iterdir()) == ["score_glu", "zarr.json"]
    assert (entry / "score_glu" / "c").read_bytes() == b"first"
    for out in (first, second):  # both projects link to the one entry
        assert out.is_symlink() and os.path.realpath(out) == str(entry.resolve())
    # nothing else is left in the cache directory (the discarded copy's temporary dir)
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]


@pytest.mark.workflow
def test_a_damaged_entry_is_set_aside_and_computed_afresh(
    tmp_path, tiny_config, write_config, run_snakemake
):
    """A damaged cached group fails its readers in every project that fetches it;
    ``moemui check-store --set-aside`` sets the project's group and the cache entry aside,
    and the next run captures afresh instead of fetching the same damage again."""
    import subprocess
    import sys
    from pathlib import Path

    cache = tmp_path / "cache"
    cache.mkdir()
    env = {"SNAKEMAKE_OUTPUT_CACHE": str(cache)}
    first, second = tmp_path / "first", tmp_path / "second"
    for workdir in (first, second):
        workdir.mkdir()
        write_config(workdir, tiny_config(**CONFIG))
    proc = run_snakemake(first, "--cache", *CACHED_RULES, extra_env=env)
    assert proc.returncode == 0, proc.stdout[-4000:]
    (entry,) = [p for p in cache.iterdir() if (p / "zarr.json").is_file()]
    chunk = next(p for p in sorted((entry / "score_glu" / "c").rglob("*")) if p.is_file())
    chunk.unlink()  # damage

    proc = run_snakemake(second, "--cache", *CACHED_RULES, extra_env=env)
    assert proc.returncode != 0  # the readers refuse the fetched, damaged group
    moemui = str(Path(sys.executable).parent / "moemui")
    check = subprocess.run(
        [moemui, "check-store", "--set-aside", "results/activations.zarr"],
        cwd=second,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    assert check.returncode == 1, check.stderr  # groups that cannot be used
    assert f"its output cache entry moved to {cache / '.set-aside' / entry.name}" in check.stdout
    assert not entry.exists()

    proc = run_snakemake(second, "--cache", *CACHED_RULES, extra_env=env)
    assert proc.returncode == 0, proc.stdout[-4000:]
    # captured afresh in the second project (its capture log is written), and stored
    log = second / "results/logs/capture_scores/olmoe-tiny/boolean.log"
    assert log.stat().st_size > 0
    assert (
        entry.is_dir() and (entry / "score_glu" / chunk.relative_to(entry / "score_glu")).is_file()
    )
    assert (second / "results/tables/mui.csv").read_text() == (
        first / "results/tables/mui.csv"
    ).read_text()
