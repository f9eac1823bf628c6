"""Shards of a cell: contiguous ranges of samples generated and captured apart, then
gathered into the responses file and the store group an unsharded run writes, byte for
byte (``capture.batch_invariant``), and refused when a part is wrong or damaged.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr

from moemui.errors import MoemuiError
from moemui.recipes import build_model
from moemui.shards import (
    gather_responses,
    gather_store,
    parse_shard,
    shard_name,
    shard_range,
)
from moemui.steps.capture import capture_task
from moemui.steps.responses import generate_task
from moemui.steps.tasks import materialise_task
from moemui.store import CorruptGroupError, verify_group

N_SAMPLES = 5  # 3 shards of 2, 2 and 1 samples: uneven, and one shard of one sample
SHARDS = 3


def tree(path: Path) -> dict[str, str]:
    """Every file under ``path`` (relative name -> SHA-256 of its bytes)."""
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize(
    ("total", "count", "sizes"),
    [(5, 3, [2, 2, 1]), (10, 4, [3, 3, 2, 2]), (4, 4, [1, 1, 1, 1]), (7, 1, [7])],
)
def test_shard_ranges_are_contiguous_and_even(total, count, sizes):
    ranges = [shard_range(total, i, count) for i in range(1, count + 1)]
    assert [stop - start for start, stop in ranges] == sizes
    assert ranges[0][0] == 0 and ranges[-1][1] == total
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))


def test_more_shards_than_samples_is_an_error():
    with pytest.raises(MoemuiError, match="task 't' has 3 samples, fewer than its 4 shards"):
        shard_range(3, 1, 4, "task 't'")


@pytest.mark.parametrize("text", ["0/3", "4/3", "2", "a/b", "2-of-"])
def test_bad_shard_names(text):
    with pytest.raises(MoemuiError, match="shard"):
        parse_shard(text)


CAPTURE = {"device": "cpu", "batch_size": 2, "attrs": {"config_hash": "x"}}


@pytest.fixture(scope="module")
def cell(tmp_path_factory):
    """A tiny model and task; the unsharded responses and group; every shard's."""
    root = tmp_path_factory.mktemp("shards")
    model = str(build_model("olmoe_tiny", 0, root / "model"))
    tasks = root / "t.jsonl"
    materialise_task({"id": "t", "source": "builtin:arithmetic", "n": N_SAMPLES}, tasks)
    whole = root / "whole"
    generate_task("m", model, tasks, whole / "responses.jsonl", device="cpu", max_new_tokens=5)
    capture_task(
        "m", model, "t", tasks, whole / "responses.jsonl", whole / "store.zarr/m/t", **CAPTURE
    )
    parts = {"responses": [], "store": []}
    for i in range(1, SHARDS + 1):
        shard = root / "shards" / shard_name(i, SHARDS)
        out = shard / "responses" / "m" / "t.jsonl"
        generate_task(
            "m",
            model,
            tasks,
            out,
            device="cpu",
            max_new_tokens=5,
            batch_size=1 + i,  # a batch size of its own: the tokens do not depend on it
            shard=(i, SHARDS),
        )
        parts["responses"].append(out)
        group = shard / "activations.zarr" / "m" / "t"
        capture_task(
            "m", model, "t", tasks, whole / "responses.jsonl", group, **CAPTURE, shard=(i, SHARDS)
        )
        parts["store"].append(group)
    return {"root": root, "tasks": tasks, "whole": whole, "parts": parts}


def test_shard_groups_hold_their_range(cell):
    sizes = []
    for i, group in enumerate(cell["parts"]["store"], start=1):
        g = zarr.open_group(group, mode="r")
        start, stop = shard_range(N_SAMPLES, i, SHARDS)
        assert g.attrs["shard"] == {"index": i, "count": SHARDS, "start": start, "stop": stop}
        sizes.append(g["sample"].shape[0])
        assert verify_group(group.parent.parent, "m", "t") == []
    assert sizes == [2, 2, 1]


def test_gathered_responses_are_the_unsharded_file(cell, tmp_path):
    out = tmp_path / "responses.jsonl"
    assert gather_responses(cell["tasks"], list(reversed(cell["parts"]["responses"])), out) == 5
    assert out.read_bytes() == (cell["whole"] / "responses.jsonl").read_bytes()


def test_gathered_group_is_the_unsharded_group_byte_for_byte(cell, tmp_path):
    out = tmp_path / "store.zarr" / "m" / "t"
    assert gather_store(cell["tasks"], cell["parts"]["store"], out) == out
    want = tree(cell["whole"] / "store.zarr" / "m" / "t")
    assert tree(out) == want
    assert "shard" not in zarr.open_group(out, mode="r").attrs
    assert verify_group(tmp_path / "store.zarr", "m", "t") == []
    # the shards are kept (the workflow removes them once gathered)
    assert all(p.is_dir() for p in cell["parts"]["store"])


def _copy_parts(cell, tmp_path: Path) -> list[Path]:
    copies = []
    for group in cell["parts"]["store"]:
        rel = group.relative_to(cell["root"] / "shards")
        shutil.copytree(group, tmp_path / "shards" / rel)
        copies.append(tmp_path / "shards" / rel)
    return copies


def test_a_missing_shard_is_named(cell, tmp_path):
    parts = cell["parts"]["store"][:2]
    with pytest.raises(MoemuiError, match=r"store shards \[1, 2\] of 3: expected each of 1..3"):
        gather_store(cell["tasks"], parts, tmp_path / "s.zarr" / "m" / "t")
    assert not (tmp_path / "s.zarr" / "m" / "t").exists()


def test_a_damaged_shard_is_named_and_nothing_published(cell, tmp_path):
    parts = _copy_parts(cell, tmp_path)
    arr = zarr.open_array(parts[1] / "route_weight", mode="r+")
    arr[0, 0, 0] = np.float32(123.0)  # values rewritten through zarr: the digest differs
    out = tmp_path / "s.zarr" / "m" / "t"
    with pytest.raises(CorruptGroupError) as info:
        gather_store(cell["tasks"], parts, out)
    message = str(info.value)
    assert "group m/t cannot be used: array 'route_weight' does not match" in message
    assert str(parts[1].parent.parent) in message
    assert "moemui check-store --set-aside" in message
    assert not out.exists()
    assert not any((tmp_path / ".s.zarr.partial").rglob("*.lock"))


def test_a_truncated_chunk_is_named(cell, tmp_path):
    parts = _copy_parts(cell, tmp_path)
    chunk = next(p for p in sorted((parts[0] / "score_glu" / "c").rglob("*")) if p.is_file())
    chunk.write_bytes(chunk.read_bytes()[:-7])
    with pytest.raises(CorruptGroupError) as info:
        gather_store(cell["tasks"], parts, tmp_path / "s.zarr" / "m" / "t")
    assert "group m/t cannot be used: score_glu " in str(info.value)
    assert str(parts[0].parent.parent) in str(info.value)


def test_responses_of_the_wrong_samples_are_refused(cell, tmp_path):
    parts = [tmp_path / shard_name(i, SHARDS) / "r.jsonl" for i in range(1, SHARDS + 1)]
    for src, dst in zip(cell["parts"]["responses"], parts, strict=True):
        dst.parent.mkdir()
        shutil.copy(src, dst)
    first, second = parts[0].read_text().splitlines(), parts[1].read_text().splitlines()
    parts[0].write_text("\n".join([first[0], second[0]]) + "\n")
    with pytest.raises(MoemuiError, match=r"1-of-3/r.jsonl: its sample ids are not samples 0..1"):
        gather_responses(cell["tasks"], parts, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_shards_of_different_configs_are_refused(cell, tmp_path):
    parts = _copy_parts(cell, tmp_path)
    meta = parts[2] / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["attributes"]["config_hash"] = "y"
    meta.write_text(json.dumps(doc))
    with pytest.raises(MoemuiError, match=r"attributes config_hash differ from shard 1's"):
        gather_store(cell["tasks"], parts, tmp_path / "s.zarr" / "m" / "t")
