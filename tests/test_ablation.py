"""Ablation: zeroing a neuron removes exactly its term from the MoE block's output, the
weights come back afterwards, and the random control matches the key neurons' experts."""

from __future__ import annotations

import numpy as np
import pytest

from moemui.analyses.ablation import (
    ablation_table,
    down_column,
    neurons_from_flat,
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
    calls = []

    def accuracy_of(neurons):
        calls.append(list(neurons))
        if not neurons:
            return 0.75, 8
        return (0.25 if neurons == key else 0.625), 8

    meta = {"model": "m", "task": "t", "variant": "glu", "threshold": 0.001}
    table = ablation_table(accuracy_of, key, 8, [0, 1], meta)
    assert table["condition"].tolist() == ["baseline", "key", "random", "random"]
    assert table["seed"].tolist()[2:] == [0, 1]
    assert table["seed"].isna().tolist()[:2] == [True, True]
    assert table["accuracy_drop"].tolist() == [0.0, 0.5, 0.125, 0.125]
    assert (table["baseline_accuracy"] == 0.75).all()
    assert table["n_neurons"].tolist() == [0, 3, 3, 3]
    assert table["n_experts"].tolist() == [0, 2, 2, 2]
    assert calls[0] == [] and calls[1] == key
