"""Key neurons derived once per group (:class:`GroupKeys`): the same sets as the dense
key-neuron mask of docs/method.md §3 at every threshold, a file that round-trips, and tables built
from that file alone, without the store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from moemui.adapters import Geometry
from moemui.analyses.keys import GroupKeys, key_sets
from moemui.capture import BatchScores
from moemui.errors import MoemuiError
from moemui.metrics import k_for, key_neuron_mask
from moemui.steps import analyses, metrics
from moemui.steps.metrics import mui_cell
from moemui.store import StoreWriter, retain

THRESHOLDS = [0.0005, 0.001, 0.002, 0.004, 0.01]
N_SAMPLES, N_LAYERS, N_EXP, N_NEU = 37, 3, 5, 120  # n_layer 600: k = 1, 1, 2, 4, 6


def _scores(seed=0, k_top=6):
    """Random scores with ties, non-positive values, samples with few or no triples."""
    rng = np.random.default_rng(seed)
    score = rng.normal(size=(N_SAMPLES, N_LAYERS, N_EXP, N_NEU)).astype(np.float32)
    score = np.round(score, 1)  # ties
    score[3] = -np.abs(score[3])  # nothing positive
    score[5] = 0.0  # no response token
    top = -np.sort(-score.reshape(N_SAMPLES, N_LAYERS, -1), axis=-1)[..., :k_top]
    top[7, :, 2:] = np.nan  # fewer triples than K
    top[5] = np.nan
    return score, top


def _dataset(score, top, variant="glu"):
    return xr.Dataset(
        {
            f"score_{variant}": (("sample", "layer", "expert", "neuron"), score),
            f"pairtop_{variant}": (("sample", "layer", "rank"), top),
            "correct": (("sample",), np.arange(N_SAMPLES) % 3 == 0),
            "n_tokens": (("sample",), np.full(N_SAMPLES, 4)),
            "route_tokens": (("sample", "layer", "expert"), np.ones(score.shape[:3], int)),
        },
        coords={"sample": [f"s{i}" for i in range(N_SAMPLES)], "layer": [2, 4, 6]},
        attrs={"model": "m", "task": "t"},
    )


@pytest.mark.parametrize("chunk", [1, 4, 16, 100])
@pytest.mark.parametrize("retained", [False, True])
def test_sets_are_the_dense_masks_at_every_threshold(chunk, retained):
    score, top = _scores()
    if retained:
        score = retain(score, top)
    keys = GroupKeys.from_group(_dataset(score, top), THRESHOLDS, sample_chunk=chunk)
    assert keys.thresholds == tuple(THRESHOLDS) and keys.variants == ["glu"]
    for tau in THRESHOLDS:
        mask = key_neuron_mask(score, top, k_for(tau, N_EXP * N_NEU))
        want = [np.flatnonzero(m) for m in mask.reshape(N_SAMPLES, -1)]
        got = keys.sets("glu", tau)
        assert len(got) == N_SAMPLES
        assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True)), tau
    assert keys.sets("glu", 0.01)[5].size == 0  # no response token, no key neuron


def test_saved_keys_round_trip_and_refuse_what_they_do_not_hold(tmp_path):
    score, top = _scores(1)
    keys = GroupKeys.from_group(_dataset(score, top), THRESHOLDS)
    keys.save(tmp_path / "k.npz")
    back = GroupKeys.load(tmp_path / "k.npz")
    assert (back.model, back.task, back.thresholds) == ("m", "t", tuple(THRESHOLDS))
    for name in ("samples", "correct", "n_tokens", "layers", "expert_kind", "route_tokens"):
        np.testing.assert_array_equal(getattr(back, name), getattr(keys, name))
    for a, b in zip(back.keys["glu"], keys.keys["glu"], strict=True):
        np.testing.assert_array_equal(a, b)
    assert [s.tolist() for s in back.head(4).sets("glu", 0.002)] == [
        s.tolist() for s in keys.sets("glu", 0.002)[:4]
    ]
    with pytest.raises(
        MoemuiError, match=r"m/t: key neurons were derived at thresholds .* not 0.003"
    ):
        back.sets("glu", 0.003)
    with pytest.raises(MoemuiError, match=r"m/t: no key neurons of variant 'gate'"):
        back.sets("gate", 0.001)
    (tmp_path / "bad.npz").write_bytes(b"not a file of keys")
    with pytest.raises(MoemuiError, match=r"bad.npz: not a key-neuron file"):
        GroupKeys.load(tmp_path / "bad.npz")
    with pytest.raises(MoemuiError, match=r"missing.npz: file not found"):
        GroupKeys.load(tmp_path / "missing.npz")


def _store_group(root, seed=2):
    geo = Geometry("fam", "FamForCausalLM", [2, 4, 6], [], N_EXP, 0, N_NEU, 2)
    score, top = _scores(seed)
    writer = StoreWriter(
        root / "m" / "t", geo, [f"s{i}" for i in range(N_SAMPLES)], ("glu",), 6,
        {"model": "m", "task": "t"},
    )  # fmt: skip
    route = np.full((N_SAMPLES, N_LAYERS, N_EXP), 2, dtype=np.int32)
    batch = BatchScores(
        {"glu": score}, {"glu": top}, route, route.astype(np.float32), np.full(N_SAMPLES, 4)
    )
    writer.write(0, batch, np.arange(N_SAMPLES) % 3 == 0)
    writer.publish()
    return root / "m" / "t"


def test_every_table_of_a_group_comes_from_one_read(tmp_path, monkeypatch):
    """The workflow's path: derive_keys reads the store once; MUI, experts and diversity
    are then built from the key file alone, the store gone, and equal what the same
    functions compute from the store group directly. (The ablation of a cell reads its
    group itself: it zeroes key neurons at thresholds up to max_threshold.)"""
    group = _store_group(tmp_path / "act.zarr")
    reads = []
    from_group = GroupKeys.from_group.__func__

    def counted(cls, *args, **kwargs):
        reads.append(args[1])
        return from_group(cls, *args, **kwargs)

    monkeypatch.setattr(GroupKeys, "from_group", classmethod(counted))
    metrics.derive_keys(group, THRESHOLDS, tmp_path / "keys.npz")
    assert len(reads) == 1
    direct = tmp_path / "direct"
    mui_cell(group, THRESHOLDS, direct / "mui.csv", correct_only=True)
    analyses.tabulate_experts(
        [group], THRESHOLDS, [0.5], 4, *(direct / f for f in ("e.csv", "k.csv", "t.csv", "tk.csv"))
    )
    analyses.tabulate_diversity([group], THRESHOLDS, [3, 9], 2, 0, direct / "d.csv")
    reads.clear()
    (tmp_path / "act.zarr").rename(tmp_path / "gone")
    keys = tmp_path / "keys.npz"
    out = tmp_path / "from_keys"
    mui_cell(keys, THRESHOLDS, out / "mui.csv", correct_only=True)
    analyses.tabulate_experts(
        [keys], THRESHOLDS, [0.5], 4, *(out / f for f in ("e.csv", "k.csv", "t.csv", "tk.csv"))
    )
    analyses.tabulate_diversity([keys], THRESHOLDS, [3, 9], 2, 0, out / "d.csv")
    assert reads == []  # no store read at all
    for name in ("mui.csv", "e.csv", "k.csv", "t.csv", "tk.csv", "d.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(out / name), pd.read_csv(direct / name))
    sets = key_sets(GroupKeys.load(keys), "glu", [0.002])[0.002]
    assert sum(s.size for s in sets) > 0
