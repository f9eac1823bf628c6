"""A damaged or inconsistent store group is detected by the reader, named, and set aside."""

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
    open_or_set_aside,
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
    assert message in str(err.value)


def test_open_or_set_aside_moves_the_damaged_group_out_of_the_tree(tmp_path):
    group = _publish(tmp_path)
    _missing_chunk(group)
    with pytest.raises(CorruptGroupError, match=r"Moved it to .*\.t\.corrupt; run the workflow"):
        open_or_set_aside(tmp_path, "m", "t")
    assert not group.exists() and (tmp_path / "m" / ".t.corrupt" / "zarr.json").exists()
    # a fresh capture publishes in its place; a second set-aside replaces the first
    _publish(tmp_path)
    assert open_or_set_aside(tmp_path, "m", "t").sizes["sample"] == 20


def test_check_store_command_lists_and_sets_aside(tmp_path, capsys):
    _publish(tmp_path, task="good")
    _wrong_shape(_publish(tmp_path, task="bad"))
    assert main(["check-store", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert "ok       m/good" in out
    assert "CORRUPT  m/bad: array 'route_weight' has shape" in out
    assert f"ERROR: {tmp_path}: 1 of 2 groups cannot be used" in err
    assert main(["check-store", str(tmp_path), "--set-aside"]) == 2
    assert (tmp_path / "m" / ".bad.corrupt").is_dir() and not (tmp_path / "m" / "bad").exists()
    capsys.readouterr()
    assert main(["check-store", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == "ok       m/good"


def test_partial_marker_is_checked_before_anything_else(tmp_path):
    group = _publish(tmp_path)
    zarr.open_group(group, mode="a").attrs["complete"] = False
    assert group_problems(tmp_path, "m", "t") == [
        "not marked complete (an interrupted or failed capture)"
    ]
