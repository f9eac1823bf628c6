"""One results directory per config: the config key ``results`` moves every output, and a
run whose config files are not those that made its results directory fails before any
job (:func:`moemui.config.check_config_files`), writing nothing.

The unit tests drive the guard's two functions; the workflow test runs two config files
against one results directory, then each into its own.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from test_config_faults import _outputs

from moemui.config import CONFIG_FILES_RECORD, check_config_files, record_config_files
from moemui.errors import MoemuiError


def _touch(path: Path) -> Path:
    path.write_text("tasks: []\n", encoding="utf-8")
    return path


def test_without_a_record_any_config_runs_and_nothing_is_written(tmp_path):
    check_config_files(tmp_path / "results", [_touch(tmp_path / "a.yaml")])
    assert not (tmp_path / "results").exists()


def test_record_is_resolved_deduplicated_and_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a, b = _touch(tmp_path / "a.yaml"), _touch(tmp_path / "b.yaml")
    (tmp_path / "link.yaml").symlink_to(a)
    record_config_files("results", ["b.yaml", a, "./link.yaml", Path("sub/../a.yaml")])
    record = tmp_path / "results" / CONFIG_FILES_RECORD
    assert json.loads(record.read_text(encoding="utf-8")) == ["../b.yaml", "../a.yaml"]
    # the same config files again: passes, and the record is not rewritten
    stamp = record.stat().st_mtime_ns
    check_config_files("results", [a, "b.yaml"])  # order does not matter
    record_config_files("results", [b, a])
    assert record.stat().st_mtime_ns == stamp


def test_a_project_moved_with_its_results_keeps_its_record(tmp_path):
    """The record holds paths relative to the results directory: a project copied or
    moved whole (config files and results) runs as before."""
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    record_config_files(old / "results", [_touch(old / "a.yaml")])
    old.rename(new)
    check_config_files(new / "results", [new / "a.yaml"])
    with pytest.raises(MoemuiError, match="was made by other config files"):
        check_config_files(new / "results", [_touch(tmp_path / "a.yaml")])


def test_two_projects_sharing_an_absolute_results_directory_are_refused(tmp_path):
    """The same relative config path in two projects is two config files."""
    shared = tmp_path / "scratch" / "results"
    one, two = tmp_path / "one", tmp_path / "two"
    for project in (one, two):
        (project / "config").mkdir(parents=True)
        _touch(project / "config" / "config.yaml")
    record_config_files(shared, [one / "config" / "config.yaml"])
    with pytest.raises(MoemuiError) as info:
        check_config_files(shared, [two / "config" / "config.yaml"])
    assert f"{one / 'config' / 'config.yaml'}\n" in str(info.value)
    assert f"this run's config files: {two / 'config' / 'config.yaml'}\n" in str(info.value)


@pytest.mark.parametrize(
    "mine",
    [["c.yaml"], ["a.yaml"], ["a.yaml", "b.yaml", "c.yaml"], []],
    ids=["other", "fewer", "more", "none"],
)
def test_other_config_files_are_refused_naming_both_and_the_ways_out(tmp_path, mine):
    files = {name: _touch(tmp_path / name) for name in ("a.yaml", "b.yaml", "c.yaml")}
    results = tmp_path / "results"
    record_config_files(results, [files["a.yaml"], files["b.yaml"]])
    before = sorted(p.name for p in results.rglob("*"))
    with pytest.raises(MoemuiError) as info:
        check_config_files(results, [files[name] for name in mine])
    message = str(info.value)
    assert message.startswith(f"results directory '{results}' was made by other config files")
    assert f"recorded in {results / CONFIG_FILES_RECORD}): {files['a.yaml']}, " in message
    assert f"this run's config files: {', '.join(str(files[n]) for n in mine) or '(none)'}\n" in (
        message
    )
    assert "set `results: DIR` in its config file (or pass --config results=DIR)" in message
    assert f"delete {results / CONFIG_FILES_RECORD} and run again" in message
    assert sorted(p.name for p in results.rglob("*")) == before


@pytest.mark.parametrize("text", ["{not json", '{"a": 1}', "[1, 2]", "\udcff"])
def test_unreadable_record_is_refused(tmp_path, text):
    record = tmp_path / CONFIG_FILES_RECORD
    record.parent.mkdir(parents=True)
    record.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(MoemuiError, match=r"cannot read .*config-files\.json .* delete"):
        check_config_files(tmp_path, [_touch(tmp_path / "a.yaml")])


# ---- the workflow ------------------------------------------------------------------------

CONFIG_A = {
    "models": [{"id": "olmoe-tiny", "source": "builtin:olmoe_tiny"}],
    "tasks": [{"id": "arithmetic", "source": "builtin:arithmetic", "n": 3}],
    "generation": {"max_new_tokens": 3, "batch_size": 3},
    "capture": {"batch_size": 3},
}
#: The record of results/, as the refusal names it (relative to the working directory).
RECORD = f"results/{CONFIG_FILES_RECORD}"
BOOLEAN = {"id": "boolean", "source": "builtin:boolean_expressions", "n": 3}
CONFIG_B = {**CONFIG_A, "tasks": [BOOLEAN]}


def _targets(results: str) -> list[str]:
    return [f"{results}/tables/mui.csv", f"{results}/tables/performance.csv"]


def _tasks(table: Path) -> set[str]:
    with table.open(encoding="utf-8", newline="") as fh:
        return {row["task"] for row in csv.DictReader(fh)}


def _record(workdir: Path, results: str) -> list[str]:
    return json.loads((workdir / results / CONFIG_FILES_RECORD).read_text(encoding="utf-8"))


@pytest.mark.workflow
def test_two_config_files_never_share_a_results_directory(write_config, run_snakemake, tmp_path):
    a = write_config(tmp_path, CONFIG_A, "a.yaml")
    done = run_snakemake(tmp_path, *_targets("results"), configfile="a.yaml")
    assert done.returncode == 0, done.stdout[-4000:]
    assert _record(tmp_path, "results") == ["../a.yaml"]
    before = _outputs(tmp_path)
    assert "results/tables/mui.csv" in before, sorted(before)

    # another config file, the same results directory: refused before any job (a dry
    # run too), every file under results/ as it was
    b = write_config(tmp_path, CONFIG_B, "b.yaml")
    for dry in ([], ["-n"]):
        proc = run_snakemake(tmp_path, *dry, *_targets("results"), configfile="b.yaml")
        assert proc.returncode != 0, proc.stdout[-4000:]
        out = proc.stdout
        assert "results directory 'results' was made by other config files" in out, out
        assert f"{RECORD}): {a.resolve()}" in out, out
        assert f"this run's config files: {b.resolve()}" in out, out
        assert "set `results: DIR`" in out and "--config results=DIR" in out, out
        assert f"delete {RECORD}" in out, out
        assert "Job stats" not in out
        assert _outputs(tmp_path) == before
    assert not (tmp_path / "other").exists()

    # the same config file B with a results directory of its own runs there
    b = write_config(tmp_path, {**CONFIG_B, "results": "other"}, "b.yaml")
    own = run_snakemake(tmp_path, *_targets("other"), configfile="b.yaml")
    assert own.returncode == 0, own.stdout[-4000:]
    assert _record(tmp_path, "other") == ["../b.yaml"]
    assert _tasks(tmp_path / "other" / "tables" / "performance.csv") == {"boolean"}
    assert (tmp_path / "other" / "run_config.yaml").is_file()
    assert (tmp_path / "other" / "logs").is_dir()
    assert (tmp_path / "other" / "activations.zarr" / "olmoe-tiny" / "boolean").is_dir()
    assert _outputs(tmp_path) == before

    # A edited (a second task) runs again into results/, and inline --config values do
    # not count as another config file
    write_config(tmp_path, {**CONFIG_A, "tasks": [*CONFIG_A["tasks"], BOOLEAN]}, "a.yaml")
    again = run_snakemake(
        tmp_path, *_targets("results"), "--config", "results=results", configfile="a.yaml"
    )
    assert again.returncode == 0, again.stdout[-4000:]
    assert _tasks(tmp_path / "results" / "tables" / "performance.csv") == {
        "arithmetic",
        "boolean",
    }
    assert _record(tmp_path, "results") == ["../a.yaml"]
    assert _tasks(tmp_path / "other" / "tables" / "performance.csv") == {"boolean"}
