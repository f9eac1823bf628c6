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
