"""The analyses' statistics against hand-computed values and scipy, on small synthetic
stores whose key neurons are set by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from moemui.analyses.diversity import MIX, diversity_table, subsets
from moemui.analyses.experts import (
    EXPERT_COLUMNS,
    KEY_EXPERT_COLUMNS,
    TOP_KEY_EXPERT_COLUMNS,
    activation_rates,
    expert_tables,
    top_experts,
    top_key_experts,
)
from moemui.analyses.keys import key_sets
from moemui.analyses.performance import ALL_TASKS, family_fits, mui_performance
from moemui.analyses.robustness import (
    ROBUSTNESS_COLUMNS,
    cell_robustness,
    method_robustness,
    robustness_table,
    threshold_robustness,
)
from moemui.analyses.stats import cosine, gini, log_fit, pearson, ranks, spearman
from moemui.errors import MoemuiError

scipy_stats = pytest.importorskip("scipy.stats")
scipy_distance = pytest.importorskip("scipy.spatial.distance")

# --------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_pearson_spearman_cosine_match_scipy(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=12)
    b = a + rng.normal(scale=0.7, size=12)
    b[3] = b[4]  # ties
    a[5] = a[6]
    assert pearson(a, b).value == pytest.approx(scipy_stats.pearsonr(a, b).statistic, abs=1e-12)
    assert spearman(a, b).value == pytest.approx(scipy_stats.spearmanr(a, b).statistic, abs=1e-12)
    assert cosine(a, b).value == pytest.approx(1 - scipy_distance.cosine(a, b), abs=1e-12)
    assert pearson(a, b).n == spearman(a, b).n == cosine(a, b).n == 12


def test_ranks_average_ties_like_scipy():
    x = np.array([3.0, 1.0, 3.0, 2.0, 3.0, 1.0])
    np.testing.assert_array_equal(ranks(x), scipy_stats.rankdata(x))


def test_statistics_are_undefined_with_a_reason():
    for fn in (pearson, spearman):
        stat = fn([1.0, 2.0], [2.0, 1.0])
        assert np.isnan(stat.value) and stat.n == 2
        assert stat.reason == "2 cells, fewer than 3"
        const = fn([1.0, 2.0, 3.0], [5.0, 5.0, 5.0])
        assert np.isnan(const.value) and const.reason == "constant values"
    assert cosine([0, 0, 0], [1, 2, 3]).reason == "a zero vector"
    assert cosine([1, 2], [1, 2], min_n=3).reason == "2 cells, fewer than 3"
    # NaN pairs are dropped before counting
    stat = pearson([1, 2, np.nan, 4], [1, 2, 3, np.nan])
    assert stat.n == 2 and np.isnan(stat.value)


def test_gini_on_known_distributions():
    assert gini([3, 3, 3, 3]) == 0.0
    assert gini([0, 0, 0, 10]) == pytest.approx(0.75)  # (n - 1) / n: all in one
    assert gini([1, 2, 3, 4]) == pytest.approx(0.25)  # sum |xi - xj| / (2 n^2 mean) = 20/80
    assert gini([0, 1]) == pytest.approx(0.5)
    assert np.isnan(gini([0, 0, 0]))
    with pytest.raises(ValueError, match="non-negative"):
        gini([1, -1, 2])


def test_log_fit_recovers_a_log_law():
    mui = np.array([0.001, 0.002, 0.004, 0.008])
    acc = 2.0 + 0.25 * np.log(mui)
    fit = log_fit(mui, acc)
    assert fit.intercept == pytest.approx(2.0) and fit.slope == pytest.approx(0.25)
    assert fit.r2 == pytest.approx(1.0) and fit.rmse == pytest.approx(0, abs=1e-12)
    assert fit.n == 4
    noisy_acc = acc + np.array([0.01, -0.02, 0.015, -0.005])
    noisy = log_fit(mui, noisy_acc)
    ref = scipy_stats.linregress(np.log(mui), noisy_acc)
    assert noisy.slope == pytest.approx(ref.slope) and noisy.r2 == pytest.approx(ref.rvalue**2)
    few = log_fit([0.1, 0.2, 0.0], [1, 2, 3])  # MUI 0 has no log: 2 points left
    assert np.isnan(few.slope) and few.reason == "2 points, fewer than 3"


# --------------------------------------------------------------------------------------
# Experts on a hand-made store
# --------------------------------------------------------------------------------------

# 4 samples, 2 MoE layers (decoder layers 1 and 3), 3 experts (2 routed + 1 shared),
# 4 neurons: n_layer = 12. tau = 0.05 -> k = 1 (the top neuron); tau = 0.2 -> k = 2.
KEY = {  # (sample, layer position) -> [(expert, neuron, score)], in descending score
    (0, 0): [(0, 1, 5.0), (2, 3, 4.0)],
    (0, 1): [(1, 0, 2.0)],
    (1, 0): [(0, 1, 3.0), (0, 2, 1.0)],
    (1, 1): [(2, 0, 6.0), (2, 1, 6.0)],  # a tie at the top: both key at k = 1
    (2, 0): [(2, 3, 1.0)],
    (3, 1): [(1, 2, -1.0)],  # negative only: no key neuron
}


def hand_store(route_tokens=None) -> xr.Dataset:
    score = np.zeros((4, 2, 3, 4), dtype=np.float32)
    top = np.full((4, 2, 4), np.nan, dtype=np.float32)
    for (s, layer), entries in KEY.items():
        for e, j, v in entries:
            score[s, layer, e, j] = v
        top[s, layer, : len(entries)] = [v for _, _, v in entries]
    if route_tokens is None:
        route_tokens = np.zeros((4, 2, 3), dtype=np.int32)
        route_tokens[:, :, 0] = [[2, 1], [1, 1], [0, 2], [1, 0]]
        route_tokens[:, :, 1] = [[0, 1], [1, 1], [2, 0], [1, 2]]
        route_tokens[:, :, 2] = 2  # shared: every token
    return xr.Dataset(
        {
            "score_glu": (("sample", "layer", "expert", "neuron"), score),
            "pairtop_glu": (("sample", "layer", "rank"), top),
            "route_tokens": (("sample", "layer", "expert"), route_tokens),
            "n_tokens": (("sample",), np.full(4, 2, dtype=np.int32)),
        },
        coords={
            "sample": ["a", "b", "c", "d"],
            "layer": [1, 3],
            "expert": [0, 1, 2],
            "expert_kind": ("expert", ["routed", "routed", "shared"]),
            "neuron": np.arange(4),
        },
    )


def test_key_sets_follow_k_ties_and_sign():
    sets = key_sets(hand_store(), "glu", [0.05, 0.2])
    flat = lambda layer, e, j: layer * 12 + e * 4 + j  # noqa: E731
    assert [s.tolist() for s in sets[0.05]] == [
        [flat(0, 0, 1), flat(1, 1, 0)],
        [flat(0, 0, 1), flat(1, 2, 0), flat(1, 2, 1)],
        [flat(0, 2, 3)],
        [],
    ]
    assert sets[0.2][0].tolist() == [flat(0, 0, 1), flat(0, 2, 3), flat(1, 1, 0)]
    with pytest.raises(MoemuiError, match="no variant 'gate'"):
        key_sets(hand_store(), "gate", [0.05])


def test_key_rate_and_key_expert_proportion_by_hand():
    experts, keys = expert_tables(hand_store(), [0.05, 0.2], [0.3], "m", "t")
    assert list(experts.columns) == EXPERT_COLUMNS
    assert list(keys.columns) == KEY_EXPERT_COLUMNS
    at = experts[experts["threshold"] == 0.05].set_index(["layer", "expert"])
    # tau 0.05: sample a -> (1,0),(3,1); b -> (1,0),(3,2); c -> (1,2); d -> none
    expected_samples = {(1, 0): 2, (1, 1): 0, (1, 2): 1, (3, 0): 0, (3, 1): 1, (3, 2): 1}
    for key, n in expected_samples.items():
        assert at.loc[key, "key_samples"] == n, key
        assert at.loc[key, "key_rate"] == n / 4, key
    # key neurons (union over samples): (1,0): {1}; (1,2): {3}; (3,1): {0}; (3,2): {0, 1}
    assert at["key_neurons"].to_dict() == {
        (1, 0): 1,
        (1, 1): 0,
        (1, 2): 1,
        (3, 0): 0,
        (3, 1): 1,
        (3, 2): 2,
    }
    # expert-level MUI: the key neurons' share of the expert's 4 neurons
    assert at["expert_mui"].to_dict() == {k: v / 4 for k, v in at["key_neurons"].items()}
    assert at.loc[(1, 2), "expert_kind"] == "shared"
    k = keys[keys["threshold"] == 0.05].set_index("rho")
    assert sorted(k.index) == [0.0, 0.3]  # rho 0 always
    assert k.loc[0.0, "key_experts"] == 4 and k.loc[0.0, "total_experts"] == 6
    assert k.loc[0.0, "key_expert_proportion"] == pytest.approx(4 / 6)
    assert k.loc[0.3, "key_experts"] == 1  # only (1, 0) has key_rate 0.5 > 0.3
    assert k.loc[0.0, "key_neurons"] == 5
    assert k.loc[0.0, "shared_experts"] == 2  # one per layer
    assert k.loc[0.0, "shared_key_neurons"] == 3
    assert k.loc[0.0, "shared_key_share"] == pytest.approx(3 / 5)
    assert k.loc[0.0, "gini"] == pytest.approx(gini([1, 0, 1, 0, 1, 2]))
    # tau 0.2 (k = 2) adds neuron (1, 0, 2) of sample b and (1, 2, 3) of sample a
    k2 = keys[(keys["threshold"] == 0.2) & (keys["rho"] == 0)].iloc[0]
    assert k2["key_neurons"] == 6


def test_activation_rates_and_top_experts():
    ds = hand_store()
    rates = activation_rates(ds)  # 8 response tokens in all
    np.testing.assert_allclose(rates[:, 0], [4 / 8, 4 / 8])
    np.testing.assert_allclose(rates[:, 1], [4 / 8, 4 / 8])
    np.testing.assert_allclose(rates[:, 2], [1.0, 1.0])
    top = top_experts(ds, "m", "t", top=3)
    assert top["rank"].tolist() == [1, 2, 3]
    assert list(zip(top["layer"], top["expert"], top["expert_kind"], strict=True)) == [
        (1, 2, "shared"),
        (3, 2, "shared"),
        (1, 0, "routed"),  # ties broken by layer, then expert
    ]
    assert top["routed_tokens"].tolist() == [8, 8, 4]


def test_top_key_experts_rank_by_key_rate_then_expert_mui():
    experts, _ = expert_tables(hand_store(), [0.05, 0.2], [], "m", "t")
    top = top_key_experts(experts, top=3)
    assert list(top.columns) == TOP_KEY_EXPERT_COLUMNS
    at = top[top["threshold"] == 0.05]
    assert at["rank"].tolist() == [1, 2, 3]
    # tau 0.05: (1,0) is key for 2 of 4 samples; (1,2), (3,1) and (3,2) for 1 each, and
    # (3,2) holds 2 of its 4 neurons in the key set (MUI 0.5) against 1 of 4: it goes first
    assert list(zip(at["layer"], at["expert"], at["expert_kind"], strict=True)) == [
        (1, 0, "routed"),
        (3, 2, "shared"),
        (1, 2, "shared"),  # (1,2) and (3,1) tie at rate 1/4 and MUI 1/4: lower layer first
    ]
    assert at["key_rate"].tolist() == [0.5, 0.25, 0.25]
    assert at["expert_mui"].tolist() == [0.25, 0.5, 0.25]
    assert set(at["variant"]) == {"glu"} and set(at["n_samples"]) == {4}
    # each threshold ranked on its own; an expert key for no sample is never listed
    assert sorted(set(top["threshold"])) == [0.05, 0.2]
    everyone = top_key_experts(experts, top=100)
    assert len(everyone[everyone["threshold"] == 0.05]) == 4
    assert (everyone["key_samples"] > 0).all()


def test_top_key_experts_need_the_per_expert_columns():
    experts, _ = expert_tables(hand_store(), [0.05], [], "m", "t")
    with pytest.raises(MoemuiError, match="lacks the columns expert_mui"):
        top_key_experts(experts.drop(columns="expert_mui"))


# --------------------------------------------------------------------------------------
# Robustness
# --------------------------------------------------------------------------------------


def _mui_table(n_cells: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(n_cells):
        base = rng.uniform(0.001, 0.01)
        for tau, f in ((0.001, 1.0), (0.002, 1.7)):
            for variant in ("gate", "glu"):
                rows.append(
                    {
                        "model": f"m{c // 2}",
                        "task": f"t{c % 2}",
                        "variant": variant,
                        "threshold": tau,
                        "mui": base * f + rng.normal(scale=0.001),
                    }
                )
    return pd.DataFrame(rows)


def test_threshold_robustness_matches_scipy():
    mui = _mui_table(6)
    table = threshold_robustness(mui)
    assert list(table.columns) == ROBUSTNESS_COLUMNS
    assert len(table) == 2 * 2  # 2 variants x 1 pair x (pearson, spearman)
    for row in table.itertuples():
        part = mui[mui["variant"] == row.variant_a]
        a = part[part["threshold"] == row.threshold_a]["mui"].to_numpy()
        b = part[part["threshold"] == row.threshold_b]["mui"].to_numpy()
        fn = scipy_stats.pearsonr if row.statistic == "pearson" else scipy_stats.spearmanr
        assert row.value == pytest.approx(fn(a, b).statistic, abs=1e-12)
        assert row.n_cells == 6 and row.compares == "threshold" and row.reason == ""


def test_robustness_below_three_cells_is_undefined():
    table = threshold_robustness(_mui_table(2))
    assert table["value"].isna().all()
    assert (table["reason"] == "2 cells, fewer than 3").all()
    assert (table["n_cells"] == 2).all()


def test_method_robustness_is_cosine_over_cells():
    rng = np.random.default_rng(3)
    rows = []
    for c in range(5):
        for variant in ("gate", "glu"):
            for tau in (0.001, 0.002):
                for rho in (0.0, 0.5):
                    rows.append(
                        {
                            "model": f"m{c}",
                            "task": "t",
                            "variant": variant,
                            "threshold": tau,
                            "rho": rho,
                            "key_expert_proportion": rng.uniform(),
                        }
                    )
    keys = pd.DataFrame(rows)
    table = method_robustness(keys)
    assert len(table) == 6  # 4 methods: 6 pairs
    assert set(table["compares"]) == {"threshold", "variant", "variant and threshold"}
    zero = keys[keys["rho"] == 0]
    for row in table.itertuples():
        a = zero[(zero["variant"] == row.variant_a) & (zero["threshold"] == row.threshold_a)]
        b = zero[(zero["variant"] == row.variant_b) & (zero["threshold"] == row.threshold_b)]
        want = 1 - scipy_distance.cosine(a["key_expert_proportion"], b["key_expert_proportion"])
        assert row.value == pytest.approx(want, abs=1e-12)
        assert row.n_cells == 5
    two = method_robustness(keys[keys["model"].isin(["m0", "m1"])])
    assert two["value"].isna().all() and (two["reason"] == "2 cells, fewer than 3").all()


def test_cell_robustness_is_cosine_of_key_rates():
    experts, _ = expert_tables(hand_store(), [0.05, 0.2], [], "m", "t")
    table = cell_robustness(experts)
    assert len(table) == 1
    row = table.iloc[0]
    a = experts[experts["threshold"] == 0.05]["key_rate"].to_numpy()
    b = experts[experts["threshold"] == 0.2]["key_rate"].to_numpy()
    assert row["value"] == pytest.approx(1 - scipy_distance.cosine(a, b))
    assert row["n_values"] == 6 and row["n_cells"] == 1
    assert (row["model"], row["task"]) == ("m", "t")


def test_robustness_table_holds_the_three_analyses():
    experts, keys = expert_tables(hand_store(), [0.05, 0.2], [], "m", "t")
    mui = pd.DataFrame(
        {
            "model": "m",
            "task": "t",
            "variant": "glu",
            "threshold": [0.05, 0.2],
            "mui": [5 / 24, 6 / 24],
        }
    )
    table = robustness_table(mui, keys, experts)
    assert list(table.columns) == ROBUSTNESS_COLUMNS
    assert set(table["analysis"]) == {
        "mui_across_cells",
        "key_expert_proportion_across_cells",
        "key_rate_per_cell",
    }
    across = table[table["analysis"] != "key_rate_per_cell"]
    assert across["value"].isna().all() and (across["n_cells"] == 1).all()


# --------------------------------------------------------------------------------------
# MUI vs performance
# --------------------------------------------------------------------------------------


def test_mui_performance_joins_and_fits_per_family():
    models = {
        "a-v1": {"family": "a", "release": 1},
        "a-v2": {"family": "a", "release": 2},
        "a-v3": {"family": "a", "release": 3},
        "solo": {},
    }
    mui_values = {"a-v1": 0.004, "a-v2": 0.002, "a-v3": 0.001, "solo": 0.003}
    mui = pd.DataFrame(
        [
            {"model": m, "task": "t", "variant": "glu", "threshold": 0.001, "mui": v}
            | {"key_neurons": 1, "total_neurons": 10, "n_samples": 4}
            for m, v in mui_values.items()
        ]
    )
    acc = {m: 1.0 - 0.1 * np.log(v / 0.001) for m, v in mui_values.items()}
    perf = pd.DataFrame([{"model": m, "task": "t", "accuracy": a} for m, a in acc.items()])
    table = mui_performance(mui, perf, models)
    assert table["model"].tolist() == ["a-v1", "a-v2", "a-v3", "solo"]  # family, release
    assert table["family"].tolist() == ["a", "a", "a", "solo"]  # no family: its own id
    assert table["release"].tolist()[:3] == [1, 2, 3] and pd.isna(table["release"].iloc[3])
    fits = family_fits(table).set_index(["family", "task"])
    assert fits.loc[("a", "t"), "slope"] == pytest.approx(-0.1)
    assert fits.loc[("a", "t"), "r2"] == pytest.approx(1.0)
    assert fits.loc[("a", ALL_TASKS), "n_points"] == 3
    assert np.isnan(fits.loc[("solo", "t"), "slope"])
    assert fits.loc[("solo", "t"), "reason"] == "1 points, fewer than 3"
    with pytest.raises(MoemuiError, match="no performance row for a-v1/t"):
        mui_performance(mui, perf[perf["model"] != "a-v1"], models)
    with pytest.raises(MoemuiError, match=r"models \['solo'\] of the MUI table"):
        mui_performance(mui, perf, {k: v for k, v in models.items() if k != "solo"})


# --------------------------------------------------------------------------------------
# Data diversity
# --------------------------------------------------------------------------------------


def test_subsets_are_seeded_sized_and_mixed():
    plan = subsets({"x": 6, "y": 4}, [1, 4, 5, 8], draws=3, seed=7, model="m")
    again = subsets({"x": 6, "y": 4}, [1, 4, 5, 8], draws=3, seed=7, model="m")
    assert plan.keys() == again.keys()
    for key, picks in plan.items():
        for a, b in zip(picks, again[key], strict=True):
            assert a.keys() == b.keys() and all(np.array_equal(a[t], b[t]) for t in a)
    assert ("y", 5) not in plan and ("x", 5) in plan  # y has only 4 samples
    for (_task, n), picks in plan.items():
        assert len(picks) == 3
        for pick in picks:
            assert sum(len(p) for p in pick.values()) == n
            for t, pos in pick.items():
                assert len(set(pos.tolist())) == len(pos)  # without replacement
                assert pos.max() < {"x": 6, "y": 4}[t]
    # the mix: n // 2 of each task; 1 // 2 = 0 is skipped; 5 -> 2 + 2 = 4; 8 -> 4 + 4
    assert {n for task, n in plan if task == MIX} == {4, 8}
    assert all(set(p) == {"x", "y"} for p in plan[(MIX, 8)])
    other = subsets({"x": 6, "y": 4}, [4], draws=3, seed=8, model="m")
    assert any(
        not np.array_equal(a["x"], b["x"])
        for a, b in zip(other[("x", 4)], plan[("x", 4)], strict=True)
    )


def test_diversity_table_by_hand():
    # task x: 3 samples with key sets {0}, {0, 1}, {2}; task y: 2 samples {5}, {0}
    sets = {
        ("glu", 0.001): {
            "x": [np.array([0]), np.array([0, 1]), np.array([2])],
            "y": [np.array([5]), np.array([0])],
        }
    }
    table = diversity_table(sets, total_neurons=10, sizes=[1, 2, 3], draws=4, seed=0, model="m")
    full = table[(table["task"] == "x") & (table["n_samples"] == 3)].iloc[0]
    assert full["mui_mean"] == full["mui_min"] == full["mui_max"] == pytest.approx(3 / 10)
    assert full["mui_std"] == 0 and full["draws"] == 4
    one = table[(table["task"] == "x") & (table["n_samples"] == 1)].iloc[0]
    assert 0.1 <= one["mui_min"] <= one["mui_mean"] <= one["mui_max"] <= 0.2
    y2 = table[(table["task"] == "y") & (table["n_samples"] == 2)].iloc[0]
    assert y2["mui_mean"] == pytest.approx(2 / 10)
    assert not ((table["task"] == "y") & (table["n_samples"] == 3)).any()
    mix = table[table["task"] == MIX]
    assert mix["n_samples"].tolist() == [2]  # 2 // 2 = 1 of each; 3 // 2 = 1 again
    assert (table["total_neurons"] == 10).all()
