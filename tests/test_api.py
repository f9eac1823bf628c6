"""The public API (moemui.api, importable from moemui), against independent computations.

The store groups are written by :class:`moemui.store.StoreWriter` for a geometry whose
first decoder layer is dense (MoE layers 1 and 2 of 3), so that a layer's position among
the MoE layers and its decoder-layer index differ. The key neurons are computed here by
brute force from the full score arrays, as docs/method.md §3 states the rule.
"""

from __future__ import annotations

import math
import types
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr

import moemui
from moemui.adapters import Geometry
from moemui.analyses.keys import GroupKeys
from moemui.analyses.performance import mui_performance
from moemui.errors import MoemuiError
from moemui.metrics import mui_table
from moemui.steps.tables import write_csv
from moemui.store import CorruptGroupError, StoreWriter, index_store
from moemui.trajectory import trajectory_table

GEO = Geometry(
    family="fam",
    architecture="FamForCausalLM",
    moe_layers=[1, 2],
    dense_layers=[0],
    routed_experts=3,
    shared_experts=1,
    neurons_per_expert=5,
    top_k=2,
)
N_LAYER = 4 * 5  # neurons per MoE layer
K_TOP = 6
VARIANTS = ("gate", "glu")
THRESHOLDS = [0.05, 0.1, 0.25, 0.3]  # k = 1, 2, 5, 6


def _scores(n: int, seed: int) -> tuple[dict, dict]:
    """Per variant: ``score`` [n, 2, 4, 5], the max over 3 tokens of the triple scores,
    and ``pairtop`` [n, 2, K], the K largest triple scores, descending."""
    rng = np.random.default_rng(seed)
    score, pairtop = {}, {}
    for v in VARIANTS:
        triples = rng.normal(size=(n, 2, 3, 4, 5)).astype(np.float32)
        triples[0, 1] = -np.abs(triples[0, 1])  # no positive triple: no key neuron
        triples[1, 0] = -np.abs(triples[1, 0])
        triples[1, 0, 0, 2, 3] = 0.7  # one positive triple: fewer than k
        triples[1, 0, 1, 0, 0] = 0.4
        score[v] = triples.max(axis=2)
        flat = triples.reshape(n, 2, -1)
        pairtop[v] = -np.sort(-flat, axis=-1)[..., :K_TOP]
    return score, pairtop


def _write_group(root, model, task, ids, seed):
    """Write group ``{model}/{task}`` of ``ids``; return its full (unretained) scores."""
    score, pairtop = _scores(len(ids), seed)
    attrs = {"model": model, "task": task, "family": "fam"}
    writer = StoreWriter(root / model / task, GEO, ids, VARIANTS, K_TOP, attrs, keep="key")
    rng = np.random.default_rng(seed + 100)
    n = len(ids)
    for start in range(0, n, 7):  # batches of 7
        sl = slice(start, min(start + 7, n))
        batch = types.SimpleNamespace(
            score={v: score[v][sl] for v in VARIANTS},
            pairtop={v: pairtop[v][sl] for v in VARIANTS},
            route_tokens=rng.integers(0, 9, size=(sl.stop - start, 2, 4)).astype(np.int32),
            route_weight=rng.random(size=(sl.stop - start, 2, 4)).astype(np.float32),
            n_tokens=np.full(sl.stop - start, 3, dtype=np.int32),
        )
        writer.write(start, batch, np.arange(start, sl.stop) % 3 == 0)
    writer.publish()
    return score, pairtop


def _brute_keys(score, pairtop, ids, tau):
    """The key neurons as docs/method.md §3 defines them, by loops: at each MoE layer, theta is
    the k-th largest positive triple score (the smallest positive one when fewer are
    positive); a neuron is key when its score is >= theta and > 0."""
    k = max(1, math.floor(tau * N_LAYER + 1e-9))
    keys = set()
    for b, sample in enumerate(ids):
        for pos, layer in enumerate(GEO.moe_layers):
            positive = [float(x) for x in pairtop[b, pos] if x > 0]  # descending
            if not positive:
                continue
            theta = positive[k - 1] if len(positive) >= k else positive[-1]
            for e in range(4):
                for j in range(5):
                    s = float(score[b, pos, e, j])
                    if s >= theta and s > 0:
                        keys.add((sample, layer, e, j))
    return keys


IDS = [f"s{i:02d}" for i in range(20)]  # more than one 16-sample chunk


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("api") / "activations.zarr"
    full = _write_group(root, "m", "t", IDS, 0)
    _write_group(root, "m", "u", IDS[:3], 1)
    index_store(root, {"m": ["t", "u"]})
    for node in ("", "m", "m/t", "m/u"):  # as Snakemake leaves a directory it made
        (root / node / ".snakemake_timestamp").touch()
    return root, full


def _rows(table: pd.DataFrame) -> set:
    return {
        (str(s), int(layer), int(e), int(j))
        for s, layer, e, j in table[["sample", "layer", "expert", "neuron"]].itertuples(index=False)
    }


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("tau", THRESHOLDS)
def test_key_neurons_equal_brute_force_in_decoder_layers(store, tau, variant):
    root, (score, pairtop) = store
    group = moemui.open_group(root, "m", "t")
    table = moemui.key_neurons(group, tau, variant)
    want = _brute_keys(score[variant], pairtop[variant], IDS, tau)
    assert _rows(table) == want
    assert len(table) == len(want)  # no row twice
    assert set(table["layer"]) == {1, 2}  # decoder layers; position 0 is layer 1
    assert list(table.columns) == ["sample", "layer", "expert", "neuron"]
    assert [str(t) for t in table.dtypes[1:]] == ["int64"] * 3
    assert list(table["sample"].cat.categories) == IDS
    order = table.assign(sample=table["sample"].cat.codes)
    assert order.equals(order.sort_values(["sample", "layer", "expert", "neuron"]))
    # the sample with no positive triple at layer 2 and the one with too few at layer 1
    assert not ((table["sample"] == "s00") & (table["layer"] == 2)).any()
    s01 = table[(table["sample"] == "s01") & (table["layer"] == 1)]
    assert sorted(zip(s01["expert"], s01["neuron"], strict=True)) == (
        [(2, 3)] if tau < 0.1 else [(0, 0), (2, 3)]
    )


def test_key_neurons_from_the_tree_and_from_derived_keys(store, tmp_path):
    root, _ = store
    group = moemui.open_group(root, "m", "t")
    want = moemui.key_neurons(group, 0.25, "glu")
    tree = moemui.open_store(root)
    pd.testing.assert_frame_equal(moemui.key_neurons(tree["m/t"], 0.25, "glu"), want)
    GroupKeys.from_group(group, THRESHOLDS).save(tmp_path / "t.npz")
    keys = GroupKeys.load(tmp_path / "t.npz")
    pd.testing.assert_frame_equal(moemui.key_neurons(keys, 0.25, "glu"), want)
    with pytest.raises(MoemuiError, match=r"m/t: key neurons were derived at thresholds "):
        moemui.key_neurons(keys, 0.2, "glu")
    with pytest.raises(MoemuiError, match=r"m/t: no key neurons of variant 'up' \(has "):
        moemui.mui(keys, 0.1, "up")  # not an empty table


def test_key_neurons_errors(store):
    root, _ = store
    group = moemui.open_group(root, "m", "t")
    with pytest.raises(MoemuiError, match=r"m/t: the store group holds no variant 'up' "):
        moemui.key_neurons(group, 0.1, "up")
    with pytest.raises(MoemuiError, match="k = 8 exceeds the 6 triple scores kept per layer"):
        moemui.key_neurons(group, 0.4, "glu")
    with pytest.raises(MoemuiError, match=r"threshold 1.5 is outside \(0, 1\)"):
        moemui.key_neurons(group, 1.5, "glu")


def test_mui_is_the_mui_table_and_the_union_of_the_key_sets(store):
    root, (score, pairtop) = store
    group = moemui.open_group(root, "m", "t")
    table = moemui.mui(group, THRESHOLDS)
    pd.testing.assert_frame_equal(table, mui_table(group, THRESHOLDS, "m", "t"))
    assert table[["variant", "threshold"]].values.tolist() == [
        [v, t] for v in VARIANTS for t in THRESHOLDS
    ]
    for row in table.itertuples():
        union = {
            key[1:]
            for key in _brute_keys(score[row.variant], pairtop[row.variant], IDS, row.threshold)
        }
        assert row.key_neurons == len(union)
        assert row.total_neurons == 2 * N_LAYER
        assert row.mui == len(union) / (2 * N_LAYER)
    one = moemui.mui(group, 0.1, "glu")
    pd.testing.assert_frame_equal(
        one, table[(table["variant"] == "glu") & (table["threshold"] == 0.1)].reset_index(drop=True)
    )
    keys = GroupKeys.from_group(group, THRESHOLDS)
    pd.testing.assert_frame_equal(moemui.mui(keys, 0.1, "glu"), one)


def test_mui_correct_only(store):
    root, (score, pairtop) = store
    group = moemui.open_group(root, "m", "t")
    table = moemui.mui(group, [0.1], "gate", correct_only=True)
    correct = [s for i, s in enumerate(IDS) if i % 3 == 0]
    keys = _brute_keys(score["gate"], pairtop["gate"], IDS, 0.1)
    union = {key[1:] for key in keys if key[0] in correct}
    assert table["key_neurons_correct"].tolist() == [len(union)]
    assert table["n_samples_correct"].tolist() == [len(correct)]


def test_open_store_lists_the_groups_without_a_warning(store):
    root, _ = store
    with pytest.warns(zarr.errors.ZarrUserWarning, match=".snakemake_timestamp"):
        xr.open_datatree(root, engine="zarr", consolidated=False)  # what open_store filters
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tree = moemui.open_store(root)
    assert set(tree.groups) == {"/", "/m", "/m/t", "/m/u"}
    xr.testing.assert_identical(tree["m/u"].to_dataset(), moemui.open_group(root, "m", "u"))
    with pytest.raises(MoemuiError, match=r"nowhere.zarr: not an activations store"):
        moemui.open_store(root.parent / "nowhere.zarr")


def test_open_group_verify_finds_changed_values(tmp_path):
    root = tmp_path / "activations.zarr"
    _write_group(root, "m", "t", IDS[:4], 2)
    moemui.open_group(root, "m", "t", verify=True)
    zarr.open_array(root / "m" / "t" / "n_tokens", mode="r+")[0] = 99  # a valid chunk
    moemui.open_group(root, "m", "t")  # the metadata check does not read values
    with pytest.raises(
        CorruptGroupError,
        match=r"group m/t cannot be used: array 'n_tokens' does not match its digest",
    ):
        moemui.open_group(root, "m", "t", verify=True)


def test_the_api_is_importable_from_the_package():
    from moemui import key_neurons, load_tables, mui, open_group, open_store, read_table

    for f in (key_neurons, load_tables, mui, open_group, open_store, read_table):
        assert f.__module__ == "moemui.api" and "Examples" in f.__doc__
        assert f.__name__ in moemui.__all__ and f.__name__ in dir(moemui)
    with pytest.raises(AttributeError, match="module 'moemui' has no attribute 'nope'"):
        moemui.nope  # noqa: B018


# -- the tables ---------------------------------------------------------------------------
MODELS = {
    "a-v1": {"family": "fam", "release": 1},
    "NA": {"family": "1", "release": 1},  # ids that read as missing or a number
    "a-v2-step300": {"family": "fam", "release": 2, "series": "a-v2", "step": 300},
    "a-v2-step600": {"family": "fam", "release": 2, "series": "a-v2", "step": 600},
}


def _mui_and_performance():
    rows = [
        (m, t, v, tau, 0.001 * (i + 1) + tau, 100)
        for i, m in enumerate(MODELS)
        for t in ("arith", "bool")
        for v in ("glu",)
        for tau in (0.001, 0.01)
    ]
    mui = pd.DataFrame(rows, columns=["model", "task", "variant", "threshold", "mui", "n_samples"])
    perf = pd.DataFrame(
        [(m, t, 0.25 * (i % 4)) for i, m in enumerate(MODELS) for t in ("arith", "bool")],
        columns=["model", "task", "accuracy"],
    )
    return mui, perf


def test_read_table_gives_the_tables_back_as_built(tmp_path):
    mui, perf = _mui_and_performance()
    joined = mui_performance(mui, perf, MODELS)
    series = [
        {"id": "a-v2", "checkpoints": [{"model": f"a-v2-step{s}", "step": s} for s in (300, 600)]}
    ]
    trajectory = trajectory_table(mui, perf, series)
    tables = {"mui_performance": joined, "trajectory": trajectory, "performance": perf}
    for name, table in tables.items():
        write_csv(table, tmp_path / "tables" / f"{name}.csv")
    write_csv(mui.iloc[:2], tmp_path / "tables" / "mui" / "a-v1" / "arith.csv")  # a part
    # step is Int64 in every table, as where it may be empty (trajectory's never is)
    tables["trajectory"] = trajectory.astype({"step": "Int64"})
    for name, table in tables.items():
        pd.testing.assert_frame_equal(moemui.read_table(tmp_path, name), table)
    back = moemui.read_table(tmp_path, "mui_performance.csv")
    assert str(back["step"].dtype) == "Int64" and str(back["release"].dtype) == "Int64"
    assert back["step"].isna().tolist() == ["step" not in MODELS[m] for m in back["model"]]
    assert back["step"].isna().sum() == 8  # two models without a step, four rows each
    assert back["threshold"].dtype == np.float64
    assert set(back["model"]) == set(MODELS) and set(back["family"]) == {"fam", "1"}
    assert (back.loc[back["model"] == "a-v1", "series"] == "").all()
    loaded = moemui.load_tables(tmp_path)
    assert list(loaded) == ["mui_performance", "performance", "trajectory"]
    for name, table in loaded.items():
        pd.testing.assert_frame_equal(table, tables[name])
    pd.testing.assert_frame_equal(
        moemui.read_table(tmp_path, "mui/a-v1/arith"), mui.iloc[:2].reset_index(drop=True)
    )


def test_read_table_empty_fields_and_errors(tmp_path):
    table = pd.DataFrame(
        {
            "model": ["m", "m"],
            "seed": pd.array([None, 7], dtype="Int64"),
            "accuracy": [0.5, math.nan],
            "reason": ["", ""],
        }
    )
    write_csv(table, tmp_path / "tables" / "ablation.csv")
    back = moemui.read_table(tmp_path, "ablation")
    pd.testing.assert_frame_equal(back, table)
    assert back["reason"].tolist() == ["", ""]  # an empty text stays text
    with pytest.raises(MoemuiError, match=r"mui.csv: no such table \(the tables there: ablation\)"):
        moemui.read_table(tmp_path, "mui")
    with pytest.raises(MoemuiError, match=r"nowhere: no tables/ directory"):
        moemui.load_tables(tmp_path / "nowhere")
    (tmp_path / "tables" / "empty.csv").write_text("")
    with pytest.raises(MoemuiError, match=r"empty.csv: empty file, not a table"):
        moemui.load_tables(tmp_path)
