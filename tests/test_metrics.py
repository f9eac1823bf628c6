"""MUI from the store: thresholds, k, theta, ties, unions; checked on hand-made arrays."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from moemui.errors import MoemuiError
from moemui.metrics import MUI_COLUMNS, k_for, key_neuron_mask, mui_table, thetas

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
