"""A damaged or inconsistent store group is detected by every reader and named, with
the commands that capture it again; only ``check-store --set-aside`` moves it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import zarr

from moemui.adapters import Geometry
from moemui.capture import BatchScores
from moemui.cli import main
from moemui.store import (
    CorruptGroupError,
    StoreWriter,
    group_problems,
    open_group,
    set_aside_dir,
    verify_group,
)

GEO = Geometry("fam", "FamForCausalLM", [1, 3], [0, 2], 3, 1, 5, 2)
K = 4


def _publish(root, model="m", task="t", n=20, correct=None):
    rng = np.random.default_rng(0)
    batch = BatchScores(
        score={"gate": rng.random((n, 2, 4, 5), dtype=np.float32)},
        pairtop={"gate": rng.random((n, 2, K), dtype=np.float32)},
        route_tokens=np.ones((n, 2, 4), dtype=np.int32),
        route_weight=np.ones((n, 2, 4), dtype=np.float32),
        n_tokens=np.full(n, 3, dtype=np.int32),
    )
    ids = [f"s{i}" for i in range(n)]
    writer = StoreWriter(
        root / model / task, GEO, ids, ("gate",), K, {"model": model, "task": task}
    )
    writer.write(0, batch, np.zeros(n, bool) if correct is None else correct)
    return writer.publish()


def _edit_json(path, edit):
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


def test_a_sound_group_has_no_problems_even_with_all_false_chunks(tmp_path):
    # every chunk is written, also one equal to the fill value (correct = all False)
    _publish(tmp_path)
    assert group_problems(tmp_path, "m", "t") == []
    assert open_group(tmp_path, "m", "t").sizes["sample"] == 20


def _missing_chunk(group):
    chunks = sorted((group / "score_gate" / "c").rglob("*"))
    next(p for p in chunks if p.is_file()).unlink()


def _wrong_shape(group):
    _edit_json(group / "route_weight" / "zarr.json", lambda m: m.update(shape=[20, 2, 5]))


def _wrong_model_attr(group):
    _edit_json(group / "zarr.json", lambda m: m["attributes"].update(model="other"))


def _wrong_geometry(group):
    def edit(meta):
        meta["attributes"]["geometry"]["neurons_per_expert"] = 6

    _edit_json(group / "zarr.json", edit)


def _missing_array(group):
    shutil.rmtree(group / "n_tokens")


def _truncated_metadata(group):
    text = (group / "zarr.json").read_text()
    (group / "zarr.json").write_text(text[: len(text) // 2])


def _missing_attr(group):
    _edit_json(group / "zarr.json", lambda m: m["attributes"].pop("k_top"))


def _layer_coordinate(group):
    _edit_json(
        group / "zarr.json",
        lambda m: m["attributes"]["geometry"].update(moe_layers=[1, 2]),
    )


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_missing_chunk, "array 'score_gate' misses 1 of its 4 chunks"),
        (_wrong_shape, "array 'route_weight' has shape (20, 2, 5), expected (20, 2, 4)"),
        (_wrong_model_attr, "attribute 'model' is 'other', expected 'm'"),
        (_wrong_geometry, "array 'score_gate' has shape (20, 2, 4, 5), expected (20, 2, 4, 6)"),
        (_missing_array, "array 'n_tokens' missing"),
        (_truncated_metadata, "unreadable group metadata"),
        (_missing_attr, "attribute 'k_top' missing"),
        (_layer_coordinate, "layer coordinate [1, 3] != geometry [1, 2]"),
    ],
    ids=lambda x: getattr(x, "__name__", "msg").strip("_"),
)
def test_damage_is_detected_and_named(tmp_path, damage, message):
    group = _publish(tmp_path)
    damage(group)  # the group's consolidated metadata, now stale, must not hide it
    assert any(message in p for p in group_problems(tmp_path, "m", "t")), group_problems(
        tmp_path, "m", "t"
    )
    with pytest.raises(CorruptGroupError) as err:
        open_group(tmp_path, "m", "t")
    assert str(tmp_path) in str(err.value) and "group m/t cannot be used" in str(err.value)
    assert message in str(err.value) and "moemui check-store --set-aside" in str(err.value)


def _tree(root):
    """Every path under the store and beside it, to show that nothing moved."""
    return sorted(p.relative_to(root.parent) for p in root.parent.rglob("*"))


def test_readers_only_check_and_name_the_recapture_commands(tmp_path):
    root = tmp_path / "s.zarr"
    group = _publish(root)
    _missing_chunk(group)
    before = _tree(root)
    for _ in range(2):  # a second reader finds the same group, not a race over moving it
        with pytest.raises(CorruptGroupError) as err:
            open_group(root, "m", "t")
        assert str(err.value) == (
            f"{root}: group m/t cannot be used: array 'score_gate' misses 1 of its 4 chunks; "
            f"to capture it again run: moemui check-store --set-aside {root} && snakemake"
        )
    assert _tree(root) == before


@pytest.mark.parametrize("command", ["keys", "mui"])
@pytest.mark.parametrize("where", ["root", "model"])
def test_a_path_that_is_not_a_group_is_an_error_and_nothing_moves(tmp_path, capsys, command, where):
    root = tmp_path / "activations.zarr"
    _publish(root)
    before = _tree(root)
    path = root if where == "root" else root / "m"
    argv = [command, "--group", str(path), "--thresholds", "0.01", "--out", str(tmp_path / "o")]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"ERROR: {path}: not a store group"), err
    assert _tree(root) == before


def test_check_store_command_lists_and_sets_aside(tmp_path, capsys):
    root = tmp_path / "s.zarr"
    _publish(root, task="good")
    _wrong_shape(_publish(root, task="bad"))
    assert main(["check-store", str(root)]) == 1
    out, err = capsys.readouterr()
    assert "ok       m/good" in out
    assert "CORRUPT  m/bad: array 'route_weight' has shape" in out
    assert f"ERROR: {root}: 1 of 2 groups cannot be used" in err
    assert main(["check-store", str(root), "--set-aside"]) == 1
    out = capsys.readouterr().out
    (first,) = (set_aside_dir(root) / "m").iterdir()
    assert f"moved to {first}" in out and (first / "zarr.json").is_file()
    assert first.name.startswith("bad.") and not (root / "m" / "bad").exists()
    assert main(["check-store", str(root)]) == 0
    assert capsys.readouterr().out.strip() == "ok       m/good"
    # a second set-aside of the same group keeps the first copy
    _wrong_shape(_publish(root, task="bad"))
    assert main(["check-store", str(root), "--set-aside"]) == 1
    copies = sorted((set_aside_dir(root) / "m").iterdir())
    assert len(copies) == 2 and first in copies and all((c / "zarr.json").is_file() for c in copies)


def _truncated_chunk(group):
    chunk = group / "score_gate" / "c" / "1" / "1" / "0" / "0"
    data = chunk.read_bytes()
    chunk.write_bytes(data[: len(data) // 2])


def _flipped_byte(group):
    chunk = group / "score_gate" / "c" / "1" / "1" / "0" / "0"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x40
    chunk.write_bytes(bytes(data))


def _rewritten_values(group):  # through zarr: the chunk's CRC is recomputed
    zarr.open_array(group / "score_gate", mode="a")[0] = np.nan


def _rewritten_correct(group):  # a small array the readers read whole
    zarr.open_array(group / "correct", mode="a")[3] = True


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_truncated_chunk, "chunk score_gate/c/1/1/0/0 cannot be read"),
        (_flipped_byte, "chunk score_gate/c/1/1/0/0 cannot be read"),
        (_rewritten_values, "array 'score_gate' does not match its digest (values changed)"),
        (_rewritten_correct, "array 'correct' does not match its digest (values changed)"),
    ],
    ids=lambda x: getattr(x, "__name__", "msg").strip("_"),
)
def test_corruption_is_detected_by_check_store_and_by_readers(tmp_path, capsys, damage, message):
    root = tmp_path / "s.zarr"
    group = _publish(root)
    assert verify_group(root, "m", "t") == []
    damage(group)
    before = _tree(root)
    assert any(message in p for p in verify_group(root, "m", "t")), verify_group(root, "m", "t")
    assert main(["check-store", str(root)]) == 1
    assert f"CORRUPT  m/t: {message}" in capsys.readouterr().out
    hint = f"to capture it again run: moemui check-store --set-aside {root} && snakemake"
    for command in ("keys", "mui"):
        out = str(tmp_path / f"{command}.out")
        argv = [command, "--group", str(group), "--thresholds", "0.01", "--out", out]
        assert main(argv) == 1
        lines = capsys.readouterr().err.strip().splitlines()
        error = next(line for line in lines if line.startswith("ERROR:"))
        assert error.startswith(f"ERROR: {root}: group m/t cannot be used: ") and error.endswith(
            hint
        ), error
        assert message in error, error
        assert "Traceback" not in "\n".join(lines)
    assert _tree(root) == before  # readers moved nothing


def test_a_group_written_without_checksums_is_refused(tmp_path):
    root = tmp_path / "s.zarr"
    group = _publish(root)
    _edit_json(group / "n_tokens" / "zarr.json", lambda m: m["attributes"].pop("digest"))
    _edit_json(
        group / "zarr.json", lambda m: m["attributes"].update(package_versions={"moemui": "0.4.0"})
    )
    assert group_problems(root, "m", "t") == [
        "written without checksums by moemui 0.4.0; capture it again"
    ]


def test_partial_marker_is_checked_before_anything_else(tmp_path):
    group = _publish(tmp_path)
    zarr.open_group(group, mode="a").attrs["complete"] = False
    assert group_problems(tmp_path, "m", "t") == [
        "not marked complete (an interrupted or failed capture)"
    ]
