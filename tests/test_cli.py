"""The ``moemui`` command line as a user meets it: every option's help and default,
model sources given as relative paths, exit statuses, logs without spurious warnings or
carriage returns, and progress lines with a rate and an ETA."""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import xarray as xr
from zarr.errors import ZarrUserWarning

from moemui import progress as progress_module
from moemui.adapters import Geometry
from moemui.capture import BatchScores
from moemui.cli import build_parser, main, quiet_library_bars
from moemui.defaults import default
from moemui.progress import progress
from moemui.sources import parse_source
from moemui.store import (
    StoreWriter,
    check_group,
    index_store,
    open_group,
    timestamp_ignored,
    verify_group,
)

MOEMUI = [sys.executable, "-m", "moemui.cli"]


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _help(command: str, capsys, monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", "100")  # argparse wraps at the terminal's width
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    return capsys.readouterr().out


def _entries(text: str) -> dict[str, str]:
    """The argument entries of a help text: invocation -> its help (the text after the
    invocation and on the lines indented under it)."""
    entries: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        if re.match(r"^  \S", line):  # an entry: "  --flag METAVAR   help..."
            invocation, _, rest = line.strip().partition("  ")
            current = invocation
            entries[current] = rest.strip()
        elif current and re.match(r"^ {4,}\S", line):
            entries[current] = f"{entries[current]} {line.strip()}".strip()
        else:
            current = None
    return entries


def _entry(action: argparse.Action, entries: dict[str, str]) -> str:
    """The help entry of ``action``: ``--flag METAVAR``, ``-h, --help``, ``groups``."""
    if not action.option_strings:
        return entries[action.metavar or action.dest]
    for invocation, text in entries.items():
        if invocation.split(",")[0].split()[0] in action.option_strings:
            return text
    raise AssertionError(f"no help entry for {action.option_strings}: {sorted(entries)}")


@pytest.mark.parametrize("command", sorted(_commands()))
def test_every_option_has_help_and_shows_its_default(command, capsys, monkeypatch):
    parser = _commands()[command]
    text = _help(command, capsys, monkeypatch)
    assert parser.description and parser.description in " ".join(text.split())
    entries = _entries(text)
    required = {  # one of a required pair (--task-file, or --tasks, its former name)
        a for g in parser._mutually_exclusive_groups if g.required for a in g._group_actions
    }
    for action in parser._actions:
        if action.help == argparse.SUPPRESS:
            continue  # a former name, still read (--tasks)
        help_text = _entry(action, entries)
        assert re.search(r"[a-z]{3}", help_text), (command, action.dest, help_text)
        takes_value = action.nargs != 0 or isinstance(action, argparse.BooleanOptionalAction)
        if not (action.option_strings and takes_value) or action.required or action in required:
            continue  # required, positional or an on/off flag: no default to show
        assert "default" in help_text, (command, action.dest, help_text)
        value = action.default
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            assert f"(default: {value})" in help_text, (command, action.dest, help_text)
        elif isinstance(value, list) and value and not isinstance(value[0], list):
            shown = " ".join(map(str, value))
            assert f"(default: {shown})" in help_text, (command, action.dest, help_text)


def test_defaults_in_the_help_are_the_schema_defaults(capsys, monkeypatch):
    capture = _entries(_help("capture", capsys, monkeypatch))
    assert capture["--batch-size BATCH_SIZE"].endswith(
        f"(default: {default('capture.batch_size')})"
    )
    assert capture["--variants VARIANTS [VARIANTS ...]"].endswith(
        f"(default: {','.join(default('capture.variants'))})"
    )
    ablate = _entries(_help("ablate", capsys, monkeypatch))
    seeds = " ".join(map(str, default("analyses.ablation.seeds")))
    assert ablate["--seeds SEEDS [SEEDS ...]"].endswith(f"(default: {seeds})")
    assert f"(default: {default('models.revision')})" in ablate["--revision REVISION"]


def test_top_level_help_lists_every_command():
    done = subprocess.run([*MOEMUI, "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for command in _commands():
        assert re.search(rf"^    {re.escape(command)}\b", done.stdout, re.M), command


# --------------------------------------------------------------------------------------
# model sources: a relative directory that exists is local
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def olmoe_dir(tmp_path_factory):
    """A tiny OLMoE saved with ``save_pretrained`` (config and weights)."""
    from test_families import tiny_model

    path = tmp_path_factory.mktemp("olmoe") / "model"
    tiny_model("olmoe").save_pretrained(path)
    return path


def test_inspect_takes_a_relative_directory_as_local(olmoe_dir, tmp_path, monkeypatch, capsys):
    relative = "results/training/olmoe_v2/step-00600"
    monkeypatch.chdir(tmp_path)
    assert main(["inspect", relative]) == 1  # not there yet: neither a directory nor a Hub id
    assert "unknown model source 'results/training/" in capsys.readouterr().err
    shutil.copytree(olmoe_dir, tmp_path / relative)
    assert parse_source(relative).kind == "local"
    assert parse_source("mm/olmoe").kind == "hub"  # no directory mm/olmoe here
    assert main(["inspect", relative, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    config = json.loads((olmoe_dir / "config.json").read_text())
    assert info["routed_experts"] == config["num_experts"]
    assert info["top_k"] == config["num_experts_per_tok"]
    assert len(info["moe_layers"]) == config["num_hidden_layers"]


def test_an_org_name_without_such_directory_is_a_hub_id(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert main(["inspect", "mm/olmoe"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    # read as a Hub id (a config to fetch), not as a missing local directory
    assert err.startswith("ERROR: model 'mm/olmoe': cannot read the config of mm/olmoe: "), err
    assert "does not exist" not in err


# --------------------------------------------------------------------------------------
# exit statuses: 1 for a failure while working, 2 for a usage error
# --------------------------------------------------------------------------------------


def test_runtime_errors_exit_1(tmp_path, monkeypatch, capsys):
    missing = tmp_path / "missing.zarr"
    assert main(["check-store", str(missing)]) == 1
    assert capsys.readouterr().err.strip() == f"ERROR: {missing}: no activations store there"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty-model").mkdir()  # a directory without config.json
    assert main(["inspect", "empty-model"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ERROR: model 'empty-model': cannot read the config of empty-model")
    assert "Traceback" not in err


def test_usage_errors_exit_2(capsys):
    for argv in (["check-store", "x", "--bogus"], ["keys", "--thresholds", "2"], ["nope"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2, argv
        assert "usage: moemui" in capsys.readouterr().err


def test_exit_statuses_of_the_command(tmp_path):
    usage = subprocess.run([*MOEMUI, "check-store", "x", "--bogus"], capture_output=True, text=True)
    assert usage.returncode == 2 and "unrecognized arguments: --bogus" in usage.stderr
    runtime = subprocess.run(
        [*MOEMUI, "check-store", str(tmp_path / "none.zarr")], capture_output=True, text=True
    )
    assert runtime.returncode == 1
    assert runtime.stderr == f"ERROR: {tmp_path / 'none.zarr'}: no activations store there\n"


# --------------------------------------------------------------------------------------
# logs: no ZarrUserWarning for Snakemake's timestamp file, no carriage-return bars
# --------------------------------------------------------------------------------------

GEO = Geometry("fam", "FamForCausalLM", [1, 3], [0, 2], 3, 1, 5, 2)


@pytest.fixture
def stamped_store(tmp_path):
    """A store with one group m/t whose directory holds ``.snakemake_timestamp``, as
    a Snakemake ``directory()`` output does."""
    n, k = 6, 4
    rng = np.random.default_rng(0)
    batch = BatchScores(
        score={"gate": rng.random((n, 2, 4, 5), dtype=np.float32)},
        pairtop={"gate": np.sort(rng.random((n, 2, k), dtype=np.float32))[..., ::-1]},
        route_tokens=np.ones((n, 2, 4), dtype=np.int32),
        route_weight=np.ones((n, 2, 4), dtype=np.float32),
        n_tokens=np.full(n, 3, dtype=np.int32),
    )
    root = tmp_path / "act.zarr"
    ids = [f"s{i}" for i in range(n)]
    writer = StoreWriter(root / "m" / "t", GEO, ids, ("gate",), k, {"model": "m", "task": "t"})
    writer.write(0, batch, np.ones(n, bool))
    writer.publish()
    index_store(root, {"m": ["t"]})
    (root / "m" / "t" / ".snakemake_timestamp").write_text("")
    return root


def test_zarr_warns_about_the_timestamp_file_outside_the_package(stamped_store):
    """The warning the package keeps out of the logs is real: zarr gives it."""
    with pytest.warns(ZarrUserWarning, match=r"\.snakemake_timestamp"):
        xr.open_zarr(stamped_store, group="m/t", consolidated=False)


def test_only_the_timestamp_warning_is_silenced(stamped_store):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with timestamp_ignored():
            xr.open_zarr(stamped_store, group="m/t", consolidated=False)
            with pytest.raises(ZarrUserWarning, match="Object at zarr.txt"):
                warnings.warn("Object at zarr.txt is not recognized", ZarrUserWarning, 1)
            with pytest.raises(UserWarning, match=".snakemake_timestamp"):
                warnings.warn("Object at .snakemake_timestamp is not recognized", UserWarning, 1)


def test_store_reads_emit_no_zarr_warning(stamped_store, tmp_path, capsys):
    root = stamped_store
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_group(root, "m", "t")
        assert open_group(root, "m", "t").sizes["sample"] == 6
        assert verify_group(root, "m", "t") == []
        assert main(["check-store", str(root)]) == 0
        group = str(root / "m" / "t")
        keys = tmp_path / "k.npz"
        assert main(["keys", "--group", group, "--thresholds", "0.01", "--out", str(keys)]) == 0
        mui = tmp_path / "mui.csv"
        assert main(["mui", "--group", group, "--thresholds", "0.01", "--out", str(mui)]) == 0
        assert main(["index-store", group]) == 0
    assert "Warning" not in capsys.readouterr().err


def test_without_a_terminal_the_libraries_draw_no_bar(monkeypatch):
    from transformers.utils import logging as hf_logging

    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS")
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    from huggingface_hub.utils import are_progress_bars_disabled, enable_progress_bars

    try:
        quiet_library_bars()
        assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
        assert not hf_logging.is_progress_bar_enabled()
        assert are_progress_bars_disabled()
    finally:  # the bars of the other tests of this process
        hf_logging.enable_progress_bar()
        enable_progress_bars()


def test_loading_a_model_writes_no_carriage_return(olmoe_dir):
    """The "Loading weights" bar of transformers is in a piped stderr unless the CLI turns
    it off, as every moemui command does."""
    load = (
        "from moemui.sources import load_model; "
        f"load_model({str(olmoe_dir)!r}, 'm', tokenizer=False, device='cpu')"
    )
    quiet = "from moemui.cli import quiet_library_bars; quiet_library_bars(); "
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"}
    stderr = {}
    for name, code in (("bar", load), ("quiet", quiet + load)):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env)
        assert done.returncode == 0, done.stderr.decode()
        stderr[name] = done.stderr.decode()  # bytes: text mode would turn \r into \n
    assert "Loading weights" in stderr["bar"] and "\r" in stderr["bar"]
    assert "Loading weights" not in stderr["quiet"] and "\r" not in stderr["quiet"]


# --------------------------------------------------------------------------------------
# progress lines: a rate and an ETA, never a carriage return
# --------------------------------------------------------------------------------------


class _Clock:
    """``time.monotonic`` advancing ``step`` seconds a call."""

    def __init__(self, step: float):
        self.now, self.step = -step, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@pytest.fixture
def log_stream():
    """What ``moemui.progress`` logs, formatted as the CLI's log lines."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("moemui.progress")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_progress_lines_have_rate_and_eta(monkeypatch, log_stream):
    # 0.5 s per item (one clock call per item), a line every second: after items 2 and 4
    monkeypatch.setattr(progress_module.time, "monotonic", _Clock(0.5))
    not_a_terminal = io.StringIO()
    items = list(progress(range(4), "generate m", "batch", every=1.0, stream=not_a_terminal))
    assert items == [0, 1, 2, 3]
    assert not_a_terminal.getvalue() == ""  # no bar: lines go to the log
    text = log_stream.getvalue()
    assert "\r" not in text
    # the last line's time runs to the end of the loop: one clock call more
    assert text.splitlines() == [
        "INFO moemui.progress: generate m: 0/4 batch",
        "INFO moemui.progress: generate m: 2/4 batch (50%), 2.0 batch/s, ETA 1.0 s",
        "INFO moemui.progress: generate m: 4/4 batch (100%), 2.0 batch/s, ETA 0.0 s",
        "INFO moemui.progress: generate m: 4/4 batch done in 2.5 s (1.6 batch/s)",
    ]


def test_progress_without_a_total_has_a_rate(monkeypatch, log_stream):
    monkeypatch.setattr(progress_module.time, "monotonic", _Clock(4.0))
    list(progress(iter("abc"), "gather g", "block", every=1.0, stream=io.StringIO()))
    lines = log_stream.getvalue().splitlines()
    assert lines[0] == "INFO moemui.progress: gather g: 0/? block"
    assert (
        lines[1] == "INFO moemui.progress: gather g: 1 block, 0.25 block/s (total unknown, no ETA)"
    )
    assert lines[-1] == "INFO moemui.progress: gather g: 3/3 block done in 16 s (0.19 block/s)"


def test_progress_on_a_terminal_is_a_bar_on_it(log_stream):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    assert list(progress(range(3), "capture m/t", "batch", stream=terminal)) == [0, 1, 2]
    assert "capture m/t" in terminal.getvalue() and "3/3" in terminal.getvalue()
    assert log_stream.getvalue() == ""
