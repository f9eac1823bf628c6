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
    for output in (
        "results/models/olmoe-tiny",
        "results/responses/olmoe-tiny/boolean.jsonl",
        "results/activations.zarr/olmoe-tiny/boolean",
    ):
        path = second / output
        assert path.is_symlink(), output
        assert os.path.realpath(path).startswith(str(cache)), output
    # the second project ran none of the cached rules' commands: no job logs from them
    assert not (second / "results/logs/capture_scores").exists()
    assert not (second / "results/logs/generate_responses").exists()
    a = xr.open_zarr(first / "results/activations.zarr", group="olmoe-tiny/boolean")
    b = xr.open_zarr(second / "results/activations.zarr", group="olmoe-tiny/boolean")
    xr.testing.assert_identical(a.load(), b.load())
    assert (second / "results/tables/mui.csv").read_text() == (
        first / "results/tables/mui.csv"
    ).read_text()
