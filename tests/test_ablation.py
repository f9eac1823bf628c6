"""Ablation: zeroing a neuron removes exactly its term from the MoE block's output, the
weights come back afterwards, and the random control matches the key neurons' experts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from moemui.analyses.ablation import (
    ABLATION_SUMMARY_COLUMNS,
    ablation_summary,
    ablation_table,
    down_column,
    neurons_from_flat,
    paired_se,
    random_control,
    zeroed_neurons,
)
from moemui.errors import MoemuiError

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny_models():
    from moemui.adapters import adapter_for
    from moemui.recipes import init_model, recipe_config

    out = {}
    for recipe in ("olmoe_tiny", "qwen2_moe_tiny"):
        model = init_model(recipe_config(recipe), seed=0)
        out[recipe] = (model, adapter_for(model))
    return out


def _block_input(model, seed=0, tokens=12):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, tokens, model.config.hidden_size, generator=g)


def _routed_term(block, x, expert, neuron):
    """g * h_j * d_j of routed expert ``expert``, neuron ``neuron``, by hand."""
    flat = x.view(-1, x.shape[-1])
    _, weights, index = block.gate(flat)
    g = (weights * (index == expert)).sum(-1)  # 0 where the expert is not routed
    gate, up = torch.nn.functional.linear(flat, block.experts.gate_up_proj[expert]).chunk(2, -1)
    h = block.experts.act_fn(gate) * up
    d = block.experts.down_proj[expert, :, neuron]
    return (g * h[:, neuron])[:, None] * d[None, :], g


@torch.no_grad()
def test_zeroing_a_routed_neuron_removes_exactly_its_term(tiny_models):
    model, adapter = tiny_models["olmoe_tiny"]
    layer = adapter.moe_layers(model)[1]
    block = model.model.layers[layer.index].mlp
    x = _block_input(model)
    expert = int(block.gate(x.view(-1, x.shape[-1]))[2][0, 0])  # routed at token 0
    neuron = 17
    term, g = _routed_term(block, x, expert, neuron)
    assert (g > 0).any() and (g == 0).any()
    before = block(x).view(-1, x.shape[-1])
    with zeroed_neurons(model, adapter, [(layer.index, expert, neuron)]) as n:
        assert n == 1
        after = block(x).view(-1, x.shape[-1])
    assert term.abs().max() > 1e-4  # the neuron contributes something
    torch.testing.assert_close(before - after, term, atol=1e-6, rtol=1e-5)
    # tokens not routed to the expert are untouched, bit for bit
    assert torch.equal(before[g == 0], after[g == 0])
    torch.testing.assert_close(block(x).view(-1, x.shape[-1]), before, atol=0, rtol=0)


@torch.no_grad()
def test_zeroing_a_shared_neuron_removes_exactly_its_term(tiny_models):
    model, adapter = tiny_models["qwen2_moe_tiny"]
    layer = adapter.moe_layers(model)[0]
    block = model.model.layers[layer.index].mlp
    n_routed, _, n_neu = block.experts.down_proj.shape
    x = _block_input(model, seed=1)
    flat = x.view(-1, x.shape[-1])
    shared = block.shared_expert
    h = shared.act_fn(shared.gate_proj(flat)) * shared.up_proj(flat)
    scale = torch.sigmoid(block.shared_expert_gate(flat))
    s, neuron = 1, 5  # the second virtual shared expert
    col = s * n_neu + neuron
    term = (scale[:, 0] * h[:, col])[:, None] * shared.down_proj.weight[:, col][None, :]
    before = block(x).view(-1, x.shape[-1])
    with zeroed_neurons(model, adapter, [(layer.index, n_routed + s, neuron)]):
        after = block(x).view(-1, x.shape[-1])
    torch.testing.assert_close(before - after, term, atol=1e-6, rtol=1e-5)
    assert term.abs().max() > 1e-4


@torch.no_grad()
def test_weights_are_restored_even_on_error(tiny_models):
    model, adapter = tiny_models["qwen2_moe_tiny"]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    layers = [layer.index for layer in adapter.moe_layers(model)]
    neurons = [(layers[0], 3, 7), (layers[1], 14, 0), (layers[1], 15, 255)]
    with pytest.raises(RuntimeError, match="boom"), zeroed_neurons(model, adapter, neurons):
        assert float(down_column(adapter.moe_layers(model)[0], 3, 7).abs().sum()) == 0
        raise RuntimeError("boom")
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_bad_neurons_are_named(tiny_models):
    model, adapter = tiny_models["olmoe_tiny"]
    for neuron, message in [
        ((7, 0, 0), "layer 7 is not a MoE layer"),
        ((0, 0, 256), "no neuron 256"),
        ((0, 16, 0), "has no expert 16"),
    ]:
        with pytest.raises(MoemuiError, match=message), zeroed_neurons(model, adapter, [neuron]):
            pass


def test_neurons_from_flat_maps_positions_to_decoder_layers():
    # 2 layer positions (decoder layers 1 and 2), 3 experts, 4 neurons
    flat = np.array([0, 5, 12 + 11])
    assert neurons_from_flat(flat, [1, 2], 3, 4) == [(1, 0, 0), (1, 1, 1), (2, 2, 3)]


def test_random_control_matches_experts_and_avoids_key_neurons():
    key = [(0, 1, 3), (0, 1, 4), (0, 1, 9), (2, 5, 0)]
    for seed in range(5):
        ctrl = random_control(key, 16, np.random.default_rng(seed))
        assert sorted((layer, e) for layer, e, _ in ctrl) == sorted(
            (layer, e) for layer, e, _ in key
        )
        assert not set(ctrl) & set(key)
        assert len(set(ctrl)) == len(ctrl)
    a = random_control(key, 16, np.random.default_rng(0))
    assert a == random_control(key, 16, np.random.default_rng(0))  # seeded
    # an expert with more key neurons than non-key ones draws from all of its neurons
    dense = [(0, 0, j) for j in range(3)]
    assert len(random_control(dense, 4, np.random.default_rng(0))) == 3


def test_ablation_table_reports_both_drops():
    key = [(0, 0, 1), (0, 0, 2), (1, 3, 0)]
    wide = key + [(1, 3, 5)]
    calls = []
    baseline = [True] * 6 + [False] * 2  # 0.75

    def correct_of(neurons):
        calls.append(list(neurons))
        if not neurons:
            return baseline
        if neurons == key:
            return [True, True] + [False] * 6  # 0.25
        if neurons == wide:
            return [False] * 8
        return [True] * 5 + [False] * 3  # 0.625

    meta = {"model": "m", "task": "t", "variant": "glu"}
    table = ablation_table(correct_of, {0.01: wide, 0.001: key}, 8, [0, 1], meta)
    # one baseline run, then per threshold (ascending): key, then a random draw per seed
    assert len(calls) == 1 + 2 * 3 and calls[0] == [] and calls[1] == key and calls[4] == wide
    assert table["threshold"].tolist() == [0.001] * 4 + [0.01] * 4
    assert table["condition"].tolist() == ["baseline", "key", "random", "random"] * 2
    assert table["seed"].tolist()[2:4] == [0, 1]
    assert table["seed"].isna().tolist()[:2] == [True, True]
    assert table["accuracy_drop"].tolist() == [0.0, 0.5, 0.125, 0.125, 0.0, 0.75, 0.125, 0.125]
    assert (table["baseline_accuracy"] == 0.75).all()
    assert table["n_neurons"].tolist() == [0, 3, 3, 3, 0, 4, 4, 4]
    assert table["n_experts"].tolist()[:4] == [0, 2, 2, 2]
    # paired standard error: the per-sample changes 0,0,1,1,1,1,0,0 (key at 0.1%)
    diff = np.array([0, 0, 1, 1, 1, 1, 0, 0], dtype=float)
    assert table["drop_se"].iloc[1] == pytest.approx(diff.std(ddof=1) / np.sqrt(8))
    assert table["drop_se"].iloc[0] == 0.0


def test_paired_se_matches_an_independent_computation():
    rng = np.random.default_rng(3)
    before, after = rng.random(50) < 0.7, rng.random(50) < 0.5
    d = before.astype(float) - after.astype(float)
    expected = np.sqrt(((d - d.mean()) ** 2).sum() / 49) / np.sqrt(50)
    assert paired_se(before, after) == pytest.approx(expected)
    assert np.isnan(paired_se([True], [False]))


def test_ablation_table_refuses_runs_of_other_lengths():
    def correct_of(neurons):
        return [True, False] if not neurons else [True]

    with pytest.raises(MoemuiError, match="key run scored 1 samples, the baseline 2"):
        ablation_table(correct_of, {0.001: [(0, 0, 1)]}, 8, [0], {"model": "m"})


def test_ablation_summary_sets_the_key_drop_against_the_draws():
    table = []
    for tau, key_drop, draws in ((0.001, 0.1, [0.0, 0.1, 0.2, 0.05]), (0.01, 0.5, [0.1, 0.2])):
        runs = [("baseline", None, 0.0, 0.0, 0), ("key", None, key_drop, 0.05, 30)]
        runs += [("random", seed, d, 0.04, 30) for seed, d in enumerate(draws)]
        for cond, seed, drop, se, n in runs:
            table.append(
                {
                    "model": "m",
                    "task": "t",
                    "variant": "glu",
                    "threshold": tau,
                    "condition": cond,
                    "seed": seed,
                    "n_neurons": n,
                    "n_experts": 3 if n else 0,
                    "n_samples": 40,
                    "accuracy": 0.8 - drop,
                    "baseline_accuracy": 0.8,
                    "accuracy_drop": drop,
                    "drop_se": se,
                }
            )
    summary = ablation_summary(pd.DataFrame(table))
    assert list(summary.columns) == ABLATION_SUMMARY_COLUMNS
    assert summary["threshold"].tolist() == [0.001, 0.01]
    low, high = summary.iloc[0], summary.iloc[1]
    assert low["key_drop"] == 0.1 and low["key_drop_se"] == 0.05 and low["n_neurons"] == 30
    assert low["random_draws"] == 4
    assert low["random_drop_mean"] == pytest.approx(np.mean([0.0, 0.1, 0.2, 0.05]))
    assert low["random_drop_std"] == pytest.approx(np.std([0.0, 0.1, 0.2, 0.05], ddof=1))
    assert (low["random_drop_min"], low["random_drop_max"]) == (0.0, 0.2)
    assert low["excess_drop"] == pytest.approx(0.1 - 0.0875)
    # draws costing at least the key drop: 0.1 and 0.2 -> p = (1 + 2) / (1 + 4)
    assert low["random_at_least_key"] == 2 and low["p_value"] == pytest.approx(3 / 5)
    assert high["random_at_least_key"] == 0 and high["p_value"] == pytest.approx(1 / 3)
    with pytest.raises(MoemuiError, match="lacks the columns drop_se"):
        ablation_summary(pd.DataFrame(table).drop(columns="drop_se"))
