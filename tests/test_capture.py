"""Capture correctness per family: rebuild each MoE block from the captured g and h,
and the model's outputs are unchanged by the capture."""

from __future__ import annotations

import pytest
import torch

from moemui.adapters import adapter_for
from moemui.batching import right_pad
from moemui.capture import ContributionCapture, scored_positions
from moemui.errors import MoemuiError
from moemui.recipes import RECIPES, init_model, recipe_config

PROMPTS = [[5, 6, 7, 8, 9], [10, 11, 12], [13, 14, 15, 16]]
RESPONSES = [[20, 21, 22], [23, 24, 25, 26, 27], []]


@pytest.fixture(scope="module", params=sorted(RECIPES))
def model(request):
    return init_model(recipe_config(request.param), seed=1)


def _padded(prompts, responses):
    return right_pad([p + r for p, r in zip(prompts, responses, strict=True)], 0)


def _rebuild(layer, records):
    """A block's output from the captured routing, h and the weights alone."""
    out = None
    for rec in records:
        if rec["kind"] == "routed":
            down = layer.experts.down_proj  # [E, H, N]
            y = torch.einsum("pn,phn->ph", rec["h"], down[rec["expert"]])
            contrib = torch.zeros(int(rec["token"].max()) + 1, y.shape[-1])
            routed = torch.zeros_like(contrib).index_add_(0, rec["token"], rec["g"][:, None] * y)
            contrib = routed
        else:
            h = rec["h"].reshape(-1, rec["h"].shape[-1])
            contrib = h @ layer.shared.down_proj.weight.T
            if rec["g"] is not None:
                contrib = rec["g"].reshape(-1, 1) * contrib
        if out is None:
            out = contrib
        else:
            n = max(out.shape[0], contrib.shape[0])
            out = torch.nn.functional.pad(out, (0, 0, 0, n - out.shape[0]))
            out = out + torch.nn.functional.pad(contrib, (0, 0, 0, n - contrib.shape[0]))
    return out


def test_block_rebuild_and_unchanged_outputs(model):
    adapter = adapter_for(model)
    layers = adapter.moe_layers(model)
    ids, mask = _padded(PROMPTS, RESPONSES)
    block_out, final = {}, {}
    hooks = [
        model.model.layers[layer.index]
        .get_submodule(adapter.block_attr)
        .register_forward_hook(
            lambda mod, inp, out, i=layer.index: block_out.__setitem__(
                i, out.reshape(-1, out.shape[-1]).detach().clone()
            )
        )
        for layer in layers
    ]
    hooks.append(
        model.model.norm.register_forward_hook(
            lambda mod, inp, out: final.__setitem__("h", out.detach().clone())
        )
    )
    try:
        with torch.no_grad():
            plain_logits = model(input_ids=ids, attention_mask=mask).logits
        plain_final, plain_blocks = final["h"], dict(block_out)
        with ContributionCapture(
            model,
            adapter,
            ("gate", "glu", "act"),
            k_top=8,
            keep_activations=True,
            batch_invariant=False,  # one padded forward, like the plain one above
        ) as cap:
            cap.score_batch(PROMPTS, RESPONSES, "next")
            records = list(cap.records)
    finally:
        for h in hooks:
            h.remove()
    # the capture pass computes the same hidden states, bit for bit
    assert torch.equal(final["h"], plain_final)
    for layer in layers:
        assert torch.equal(block_out[layer.index], plain_blocks[layer.index])
    # and logits computed from them are the model's logits
    with torch.no_grad():
        assert torch.equal(model.lm_head(final["h"]), plain_logits)
    # every MoE block's output rebuilt from captured g, h and the weights
    for slot, layer in enumerate(layers):
        rebuilt = _rebuild(layer, [r for r in records if r["slot"] == slot])
        real = block_out[layer.index]
        err = (rebuilt[: real.shape[0]] - real).abs().max().item()
        assert err <= 1e-5, f"layer {layer.index}: max abs error {err}"
    # the patches are gone afterwards
    for layer in layers:
        assert "forward" not in vars(layer.experts)


def test_capture_restores_modules_on_error(model):
    adapter = adapter_for(model)
    with (
        pytest.raises(RuntimeError, match="boom"),
        ContributionCapture(model, adapter, ("glu",), k_top=4),
    ):
        raise RuntimeError("boom")
    assert all("forward" not in vars(layer.experts) for layer in adapter.moe_layers(model))


def test_batch_outputs_shapes_and_routing(model):
    adapter = adapter_for(model)
    geo = adapter.geometry(model)
    with ContributionCapture(model, adapter, ("gate", "glu"), k_top=8) as cap:
        out = cap.score_batch(PROMPTS, RESPONSES, "next")
    n_layers, n_exp, n_neu = len(geo.moe_layers), geo.experts_per_layer, geo.neurons_per_expert
    assert out.score["glu"].shape == (3, n_layers, n_exp, n_neu)
    assert out.pairtop["gate"].shape == (3, n_layers, 8)
    assert out.n_tokens.tolist() == [3, 5, 0]
    # each scored position is routed to top_k routed experts and every shared expert
    per_pos = geo.top_k + geo.shared_experts
    assert out.route_tokens.sum(-1).tolist() == [
        [3 * per_pos] * n_layers,
        [5 * per_pos] * n_layers,
        [0] * n_layers,
    ]
    # a sample with no response token has no score and no triple
    assert (out.score["glu"][2] == 0).all()
    assert torch.isnan(torch.from_numpy(out.pairtop["glu"][2])).all()
    # pairtop is sorted in descending order
    top = torch.from_numpy(out.pairtop["glu"][:2])
    assert (top[..., :-1] >= top[..., 1:]).all()


def test_scored_positions():
    pos, tgt = scored_positions(4, 7, "next")
    assert pos.tolist() == [3, 4, 5] and tgt.tolist() == [4, 5, 6]
    pos, tgt = scored_positions(4, 7, "same_position")
    assert pos.tolist() == [4, 5, 6] and tgt.tolist() == [4, 5, 6]
    assert scored_positions(4, 4, "next")[0].size == 0
    with pytest.raises(MoemuiError, match="unknown target 'prev'"):
        scored_positions(4, 7, "prev")


def test_unknown_variant_is_named():
    model = init_model(recipe_config("olmoe_tiny"), seed=0)
    with pytest.raises(MoemuiError, match="unknown variants \\['relu'\\]"):
        ContributionCapture(model, adapter_for(model), ("glu", "relu"))


def test_non_finite_score_names_sample_and_layer():
    model = init_model(recipe_config("olmoe_tiny"), seed=0)
    adapter = adapter_for(model)
    layer = adapter.moe_layers(model)[1]
    with torch.no_grad():
        layer.experts.down_proj[:, :, 0] = float("nan")  # every expert's neuron 0 writes NaN
    with (
        ContributionCapture(model, adapter, ("glu",), k_top=4, name="model 'bad'") as cap,
        pytest.raises(MoemuiError) as err,
    ):
        cap.score_batch([[5, 6], [7, 8]], [[], [9, 10]], ids=["s-empty", "s-two"])
    assert str(err.value) == (
        "model 'bad': non-finite contribution score (glu) in sample 's-two' at layer 1"
    )


@pytest.mark.parametrize("k_top", [1, 5, 40, 96])
def test_partial_tops_keep_every_sample_and_layers_k_largest_triples(k_top):
    """The per-call top-K runs only on rows that reach a sample's K-th largest neuron
    maximum; the K largest triples per (sample, layer) must still come out exact, over
    several calls per layer (routed, then shared), calls mixing samples, ties, and
    samples with fewer triples than K."""
    from moemui.capture import _BatchState

    class Geo:
        routed_experts, shared_experts, experts_per_layer, neurons_per_expert = 3, 1, 4, 6
        moe_layers = [0, 1]

    gen = torch.Generator().manual_seed(k_top)
    batch = 3
    state = _BatchState(Geo, ("glu",), batch, k_top, "cpu")
    seen = {(slot, b): [] for slot in range(2) for b in range(batch)}
    for call in range(6):
        slot = call % 2
        n_pairs = int(torch.randint(1, 12, (1,), generator=gen))
        samples = torch.randint(0, batch - 1, (n_pairs,), generator=gen)  # sample 2: none
        experts = torch.randint(0, 4, (n_pairs,), generator=gen)
        s = torch.randn(n_pairs, 6, generator=gen).round(decimals=1)  # ties
        state.add(slot, samples * 4 + experts, samples, {"glu": s})
        for i, b in enumerate(samples.tolist()):
            seen[slot, b].append(s[i])
    for (slot, b), rows in seen.items():
        parts = state.partial_top["glu"][slot][b]
        if not rows:
            assert parts == []
            continue
        got = torch.topk(torch.cat(parts), min(k_top, sum(p.numel() for p in parts))).values
        every = torch.cat(rows)
        want = torch.topk(every, min(k_top, every.numel())).values
        assert torch.equal(got, want), (slot, b)
