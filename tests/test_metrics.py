"""MUI from the store: thresholds, k, theta, ties, unions; checked on hand-made arrays."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from moemui.errors import MoemuiError
from moemui.metrics import (
    MUI_COLUMNS,
    MUI_CORRECT_COLUMNS,
    k_for,
    key_neuron_mask,
    mui_table,
    thetas,
)

NAN = np.nan


def test_k_for_reads_tau_exactly():
    assert [k_for(t, 4096) for t in (0.0008, 0.001, 0.002)] == [3, 4, 8]
    assert k_for(0.0006, 5000) == 3  # 0.0006 * 5000 == 2.9999999999999996 in floats
    assert k_for(0.0001, 100) == 1  # at least one
    with pytest.raises(MoemuiError, match="threshold 1.5 is outside"):
        k_for(1.5, 100)


def test_theta_is_kth_largest_positive_or_smallest_positive():
    top = np.array(
        [
            [5.0, 4.0, 3.0, 2.0],  # k-th largest
            [5.0, 0.5, 0.0, -1.0],  # fewer than k positive -> smallest positive
            [0.0, -1.0, -2.0, NAN],  # none positive -> no key neuron
            [2.0, NAN, NAN, NAN],  # fewer triples than k
        ]
    )
    np.testing.assert_array_equal(thetas(top, 3), [3.0, 0.5, np.inf, 2.0])
    with pytest.raises(MoemuiError, match="k = 5 exceeds the 4 triple scores"):
        thetas(top, 5)


def test_key_neurons_include_ties_and_need_positive_scores():
    # one sample, one layer, 2 experts x 3 neurons
    score = np.array([[[[3.0, 1.0, 0.0], [1.0, 2.0, -1.0]]]])
    top = np.array([[[3.0, 2.0, 1.0, 1.0]]])
    mask = key_neuron_mask(score, top, 3)  # theta = 1.0: both neurons scoring 1.0 are key
    np.testing.assert_array_equal(mask[0, 0], [[True, True, False], [True, True, False]])
    assert key_neuron_mask(score, top, 1)[0, 0].sum() == 1


def _dataset(score, top, variant="glu"):
    n, n_layers, n_exp, n_neu = score.shape
    return xr.Dataset(
        {
            f"score_{variant}": (("sample", "layer", "expert", "neuron"), score),
            f"pairtop_{variant}": (("sample", "layer", "rank"), top),
        },
        coords={"sample": [f"s{i}" for i in range(n)], "layer": np.arange(n_layers)},
    )


def test_mui_is_the_union_over_samples_and_layers():
    # 2 samples, 2 layers, 2 experts x 500 neurons -> n_layer 1000: tau 0.002 -> k 2, 0.001 -> 1
    score = np.zeros((2, 2, 2, 500), dtype=np.float32)
    top = np.full((2, 2, 4), NAN, dtype=np.float32)
    score[0, 0, 0, 7], score[0, 0, 1, 9] = 5.0, 4.0
    top[0, 0, :2] = [5.0, 4.0]
    score[1, 0, 0, 7], score[1, 0, 0, 8] = 6.0, 1.0  # neuron (0, 7) again: counted once
    top[1, 0, :2] = [6.0, 1.0]
    score[1, 1, 1, 3] = 2.0
    top[1, 1, :3] = [2.0, 0.0, 0.0]
    table = mui_table(_dataset(score, top), [0.002, 0.001], "m", "t")
    assert list(table.columns) == MUI_COLUMNS
    by_tau = table.set_index("threshold")
    # tau 0.001 (k=1): {(0,0,7)} from both samples, (1,1,3) from sample 1 -> 2
    assert by_tau.loc[0.001, "key_neurons"] == 2
    # tau 0.002 (k=2): + (0,1,9) and (0,0,8) -> 4
    assert by_tau.loc[0.002, "key_neurons"] == 4
    assert by_tau.loc[0.002, "total_neurons"] == 2000
    assert by_tau.loc[0.002, "mui"] == 4 / 2000
    assert (table["n_samples"] == 2).all()
    assert table["threshold"].tolist() == [0.001, 0.002]  # sorted


def test_mui_streams_samples_in_chunks():
    rng = np.random.default_rng(0)
    score = rng.normal(size=(9, 2, 3, 400)).astype(np.float32)
    top = -np.sort(-score.reshape(9, 2, -1), axis=-1)[..., :10]  # as if every triple were a max
    whole = mui_table(_dataset(score, top), [0.001, 0.005], "m", "t", sample_chunk=100)
    chunked = mui_table(_dataset(score, top), [0.001, 0.005], "m", "t", sample_chunk=2)
    assert whole.equals(chunked)


def test_group_without_scores_is_named():
    ds = xr.Dataset({"n_tokens": (("sample",), [1])})
    with pytest.raises(MoemuiError, match="m/t: the store group holds no score_"):
        mui_table(ds, [0.001], "m", "t")


def _with_correct(ds, correct):
    return ds.assign(correct=(("sample",), np.array(correct, dtype=bool)))


def _union_example():
    # the arrays of test_mui_is_the_union_over_samples_and_layers
    score = np.zeros((2, 2, 2, 500), dtype=np.float32)
    top = np.full((2, 2, 4), NAN, dtype=np.float32)
    score[0, 0, 0, 7], score[0, 0, 1, 9] = 5.0, 4.0
    top[0, 0, :2] = [5.0, 4.0]
    score[1, 0, 0, 7], score[1, 0, 0, 8] = 6.0, 1.0
    top[1, 0, :2] = [6.0, 1.0]
    score[1, 1, 1, 3] = 2.0
    top[1, 1, :3] = [2.0, 0.0, 0.0]
    return _dataset(score, top)


@pytest.mark.parametrize(
    ("correct", "keys"),
    [
        # sample 0 alone: (0,0,7) at k=1; + (0,1,9) at k=2
        ([True, False], {0.001: 1, 0.002: 2}),
        # sample 1 alone: (0,0,7), (1,1,3) at k=1; + (0,0,8) at k=2
        ([False, True], {0.001: 2, 0.002: 3}),
        ([True, True], {0.001: 2, 0.002: 4}),
    ],
)
def test_correct_only_mui_is_the_union_over_correct_samples(correct, keys):
    ds = _with_correct(_union_example(), correct)
    table = mui_table(ds, [0.001, 0.002], "m", "t", correct_only=True)
    assert list(table.columns) == MUI_COLUMNS + MUI_CORRECT_COLUMNS
    by_tau = table.set_index("threshold")
    for tau, key in keys.items():
        assert by_tau.loc[tau, "key_neurons_correct"] == key
        assert by_tau.loc[tau, "mui_correct"] == key / 2000
        assert by_tau.loc[tau, "n_samples_correct"] == sum(correct)
    # the all-sample columns do not change, nor does the table without the option
    assert by_tau["key_neurons"].tolist() == [2, 4] and (by_tau["n_samples"] == 2).all()
    assert mui_table(ds, [0.001, 0.002], "m", "t").equals(table[MUI_COLUMNS])


def test_correct_only_mui_without_correct_samples_is_undefined():
    ds = _with_correct(_union_example(), [False, False])
    row = mui_table(ds, [0.001], "m", "t", correct_only=True).iloc[0]
    assert np.isnan(row["mui_correct"]) and row["key_neurons_correct"] == 0
    assert row["n_samples_correct"] == 0 and row["key_neurons"] == 2
    with pytest.raises(MoemuiError, match="m/t: the store group holds no correct array"):
        mui_table(_union_example(), [0.001], "m", "t", correct_only=True)


def test_correct_only_mui_equals_mui_of_the_correct_subset():
    rng = np.random.default_rng(1)
    score = rng.normal(size=(9, 2, 3, 400)).astype(np.float32)
    top = -np.sort(-score.reshape(9, 2, -1), axis=-1)[..., :10]
    correct = np.array([1, 0, 0, 1, 1, 0, 1, 0, 1], dtype=bool)
    ds = _with_correct(_dataset(score, top), correct)
    full = mui_table(ds, [0.001, 0.005], "m", "t", sample_chunk=2, correct_only=True)
    subset = mui_table(_dataset(score[correct], top[correct]), [0.001, 0.005], "m", "t")
    assert full["key_neurons_correct"].tolist() == subset["key_neurons"].tolist()
    assert full["mui_correct"].tolist() == subset["mui"].tolist()
    assert (full["key_neurons_correct"] < full["key_neurons"]).all()


def test_mui_cell_writes_the_correct_only_columns(tmp_path):
    """Through a real store group written by StoreWriter (correct = [True, False, True])."""
    import pandas as pd

    from moemui.adapters import Geometry
    from moemui.capture import BatchScores
    from moemui.steps.metrics import mui_cell
    from moemui.store import StoreWriter

    geo = Geometry("fam", "FamForCausalLM", [0], [], 2, 0, 4, 2)
    score = np.zeros((3, 1, 2, 4), dtype=np.float32)
    score[0, 0, 0, 0], score[1, 0, 1, 1], score[2, 0, 0, 2] = 3.0, 5.0, 4.0
    top = np.full((3, 1, 2), NAN, dtype=np.float32)
    top[0, 0, 0], top[1, 0, 0], top[2, 0, 0] = 3.0, 5.0, 4.0
    batch = BatchScores(
        score={"gate": score},
        pairtop={"gate": top},
        route_tokens=np.ones((3, 1, 2), dtype=np.int32),
        route_weight=np.ones((3, 1, 2), dtype=np.float32),
        n_tokens=np.full(3, 2, dtype=np.int32),
    )
    attrs = {"model": "m", "task": "t"}
    writer = StoreWriter(tmp_path / "s.zarr" / "m" / "t", geo, ["a", "b", "c"], ("gate",), 2, attrs)
    writer.write(0, batch, np.array([True, False, True]))
    writer.publish()
    out = tmp_path / "mui.csv"
    mui_cell(tmp_path / "s.zarr" / "m" / "t", [0.1], out, correct_only=True)
    row = pd.read_csv(out).iloc[0]
    # k = 1 per sample: a -> (0,0), b -> (1,1), c -> (0,2); correct ones: a and c
    assert (row["key_neurons"], row["key_neurons_correct"], row["n_samples_correct"]) == (3, 2, 2)
    assert row["mui_correct"] == 2 / 8
    mui_cell(tmp_path / "s.zarr" / "m" / "t", [0.1], out)  # the default: the columns as before
    assert list(pd.read_csv(out).columns) == MUI_COLUMNS
