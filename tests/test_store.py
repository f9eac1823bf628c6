"""The store contract (docs/store.md): round trip, atomic publish, completeness, index."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import xarray as xr
import zarr

from moemui.adapters import Geometry
from moemui.capture import BatchScores
from moemui.errors import MoemuiError
from moemui.store import StoreWriter, index_store, open_group

GEO = Geometry(
    family="fam",
    architecture="FamForCausalLM",
    moe_layers=[1, 3],
    dense_layers=[0, 2],
    routed_experts=3,
    shared_experts=1,
    neurons_per_expert=5,
    top_k=2,
)
ATTRS = {"model": "m", "task": "t", "family": "fam", "variants": ["gate", "glu"]}


def _batch(n, seed):
    rng = np.random.default_rng(seed)
    shape = (n, 2, 4, 5)
    return BatchScores(
        score={v: rng.normal(size=shape).astype(np.float32) for v in ("gate", "glu")},
        pairtop={v: rng.normal(size=(n, 2, 6)).astype(np.float32) for v in ("gate", "glu")},
        route_tokens=rng.integers(0, 9, size=(n, 2, 4)).astype(np.int32),
        route_weight=rng.random(size=(n, 2, 4)).astype(np.float32),
        n_tokens=rng.integers(0, 9, size=n).astype(np.int32),
    )


def _write(path, ids, batches, keep="key"):
    writer = StoreWriter(path, GEO, ids, ("gate", "glu"), 6, ATTRS, keep=keep)
    start = 0
    for batch in batches:
        writer.write(start, batch, np.arange(len(batch.n_tokens)) % 2 == 0)
        start += len(batch.n_tokens)
    return writer


@pytest.mark.parametrize("keep", ["key", "all"])
def test_round_trip(tmp_path, keep):
    ids = ["a", "b", "c", "d", "e"]
    batches = [_batch(2, 0), _batch(2, 1), _batch(1, 2)]
    root = tmp_path / "act.zarr"
    _write(root / "m" / "t", ids, batches, keep).publish()
    index_store(root, {"m": ["t"]})
    ds = open_group(root, "m", "t")
    assert dict(ds.sizes) == {"sample": 5, "layer": 2, "expert": 4, "neuron": 5, "rank": 6}
    assert ds["sample"].values.tolist() == ids
    assert ds["layer"].values.tolist() == [1, 3]
    assert ds["expert"].values.tolist() == [0, 1, 2, 3]
    assert ds["expert_kind"].values.tolist() == ["routed"] * 3 + ["shared"]
    assert ds["expert_kind"].dims == ("expert",)
    assert ds["neuron"].values.tolist() == list(range(5))
    assert ds["score_glu"].dims == ("sample", "layer", "expert", "neuron")
    assert ds["pairtop_gate"].dims == ("sample", "layer", "rank")
    assert ds["route_tokens"].dims == ("sample", "layer", "expert")
    for v in ("gate", "glu"):
        expected = np.concatenate([b.score[v] for b in batches])
        if keep == "key":  # positive and >= the sample and layer's K-th largest triple
            floor = np.concatenate([b.pairtop[v] for b in batches])[..., -1, None, None]
            expected = np.where((expected >= floor) & (expected > 0), expected, np.nan)
            assert np.isnan(expected).any() and not np.isnan(expected).all()
        np.testing.assert_array_equal(ds[f"score_{v}"].values, expected)
        assert ds[f"score_{v}"].dtype == np.float32
    assert ds.attrs["keep"] == keep
    np.testing.assert_array_equal(
        ds["n_tokens"].values, np.concatenate([b.n_tokens for b in batches])
    )
    assert ds["correct"].values.tolist() == [True, False, True, False, True]
    assert ds.attrs["model"] == "m" and ds.attrs["complete"] is True
    tree = xr.open_datatree(root, engine="zarr")
    assert "/m/t" in tree.groups
    xr.testing.assert_identical(tree["m/t"].to_dataset(), ds)


def test_partial_group_is_invisible_and_not_published_with_missing_samples(tmp_path):
    root = tmp_path / "act.zarr"
    writer = _write(root / "m" / "t", ["a", "b", "c"], [_batch(2, 0)])
    assert not (root / "m" / "t").exists()
    with pytest.raises(MoemuiError, match="1 samples were never written; not publishing"):
        writer.publish()
    writer.abort()
    assert list((root / "m").iterdir()) == []


def test_reader_rejects_missing_and_incomplete_groups(tmp_path):
    root = tmp_path / "act.zarr"
    with pytest.raises(MoemuiError, match="no group m/t in the activations store"):
        open_group(root, "m", "t")
    _write(root / "m" / "t", ["a"], [_batch(1, 0)]).publish()
    zarr.open_group(root / "m" / "t", mode="a").attrs["complete"] = False
    with pytest.raises(MoemuiError, match="group m/t cannot be used: not marked complete"):
        open_group(root, "m", "t")


def test_stale_partial_from_killed_run_is_removed(tmp_path):
    root = tmp_path / "act.zarr"
    stale = root / "m" / ".t.partial-99999"
    stale.mkdir(parents=True)
    (stale / "junk").write_text("x")
    _write(root / "m" / "t", ["a"], [_batch(1, 0)]).publish()
    assert not stale.exists()
    assert open_group(root, "m", "t").sizes["sample"] == 1


def test_check_store_knows_the_retained_layout(tmp_path):
    """``keep`` is part of the contract: a group claiming an unknown layout is named."""
    from moemui.store import group_problems

    root = tmp_path / "act.zarr"
    _write(root / "m" / "t", ["a", "b"], [_batch(2, 0)]).publish()
    assert group_problems(root, "m", "t") == []
    assert zarr.open_group(root / "m" / "t").attrs["keep"] == "key"
    zarr.open_group(root / "m" / "t").attrs["keep"] = "some"
    assert group_problems(root, "m", "t") == [
        "attribute 'keep' is 'some', expected one of ['key', 'all']"
    ]


def test_the_index_and_datatree_show_complete_groups_only(tmp_path):
    """Partial groups, locks and set-aside copies live outside the store's tree, and no
    consolidated metadata above a group describes a group that is later removed."""
    import shutil

    from moemui.store import partial_dir, set_aside

    root = tmp_path / "act.zarr"
    _write(root / "m" / "t", ["a"], [_batch(1, 0)]).publish()
    _write(root / "m" / "u", ["a"], [_batch(1, 0)]).publish()
    writing = _write(root / "m" / "v", ["a"], [_batch(1, 0)])  # not published yet
    index_store(root, {"m": ["t"]})
    set_aside(root, "m", "u")  # (its attribute task is "t": a group that cannot be used)
    assert writing.tmp.parent == partial_dir(root) / "m"
    assert sorted(p.name for p in root.rglob("*") if p.name.startswith(".")) == []
    tree = xr.open_datatree(root, engine="zarr", consolidated=False)
    assert sorted(tree.groups) == ["/", "/m", "/m/t"]
    # nothing above the groups lists them: a removed group cannot be read as fill values
    assert "consolidated_metadata" not in (root / "zarr.json").read_text()
    shutil.rmtree(root / "m" / "t")
    for consolidated in (None, False):
        with pytest.raises((KeyError, FileNotFoundError, zarr.errors.GroupNotFoundError)):
            xr.open_zarr(root, group="m/t", consolidated=consolidated)
    writing.abort()


def test_a_second_writer_fails_while_the_first_is_live(tmp_path):
    root = tmp_path / "act.zarr"
    first = _write(root / "m" / "t", ["a", "b"], [_batch(2, 0)])
    with pytest.raises(MoemuiError) as err:
        _write(root / "m" / "t", ["a", "b"], [_batch(2, 1)])
    message = str(err.value)
    assert "another capture is writing this group" in message
    assert f"pid {os.getpid()}" in message and str(first.lock.path) in message
    assert first.tmp.is_dir()  # the first's partial group is untouched
    first.publish()
    ds = open_group(root, "m", "t")
    assert ds.attrs["complete"] is True and ds.sizes["sample"] == 2
    assert not first.lock.path.exists()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_stale_lock_of_a_dead_writer_is_taken_over(tmp_path, caplog):
    from moemui.store import GroupLock

    root = tmp_path / "act.zarr"
    dead = GroupLock(root, "m", "t")
    dead.pid = _dead_pid()
    dead.partial = dead.partial.with_name(f"t.{dead.host}.{dead.pid}.{dead.token}")
    dead.acquire()
    dead._stop.set()  # its heartbeat stops with it
    dead.partial.mkdir()
    with caplog.at_level("WARNING"):
        _write(root / "m" / "t", ["a"], [_batch(1, 0)]).publish()
    assert "taking over the stale lock" in caplog.text
    assert not dead.partial.exists() and open_group(root, "m", "t").sizes["sample"] == 1


def test_a_lock_whose_heartbeat_stopped_is_stale(tmp_path, monkeypatch):
    import moemui.store as store

    root = tmp_path / "act.zarr"
    other = store.GroupLock(root, "m", "t")
    other.host = "elsewhere"  # a pid of another host cannot be checked
    other.acquire()
    other._stop.set()
    with pytest.raises(MoemuiError, match="host elsewhere"):
        _write(root / "m" / "t", ["a"], [_batch(1, 0)])
    old = time.time() - store.LOCK_TIMEOUT_S - 1
    os.utime(other.path, (old, old))
    _write(root / "m" / "t", ["a"], [_batch(1, 0)]).publish()
    assert open_group(root, "m", "t").sizes["sample"] == 1


def test_a_writer_whose_lock_was_taken_over_does_not_publish(tmp_path):
    root = tmp_path / "act.zarr"
    _write(root / "m" / "t", ["a"], [_batch(1, 0)]).publish()
    good = open_group(root, "m", "t").load()
    first = _write(root / "m" / "t", ["a", "b"], [_batch(2, 1)])
    # another writer judged the lock stale and took it over
    info = json.loads(first.lock.path.read_text())
    first.lock.path.write_text(json.dumps({**info, "token": "someone-else"}))
    with pytest.raises(MoemuiError, match="was taken over by another writer; not publishing"):
        first.publish()
    first.abort()
    xr.testing.assert_identical(open_group(root, "m", "t").load(), good)
    assert first.lock.path.exists()  # the new holder's lock stays
