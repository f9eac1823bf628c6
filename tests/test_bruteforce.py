"""An independent, brute-force check of the stored scores and of MUI.

A separate, simple code path materialises every (t, e, j) score the way the
reference code does (the full ``W_down^T W_unembed`` product per expert, indexed by
token, one token at a time) from the inputs the experts see in a plain forward pass,
and compares with what ``capture_task`` stored and what ``mui_table`` computes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from moemui.adapters import adapter_for
from moemui.io import write_records
from moemui.metrics import k_for, mui_table
from moemui.recipes import build_model
from moemui.steps.capture import capture_task
from moemui.store import open_group
from moemui.tasks import make_builtin, write_samples

THRESHOLDS = [0.0008, 0.001, 0.002, 0.005]
RNG = np.random.default_rng(7)


def _reference_scores(model, prompts, responses, target):
    """Every triple score [sample][layer] -> array [T, E, N] (float64), by brute force."""
    adapter = adapter_for(model)
    layers = adapter.moe_layers(model)
    unembed = model.lm_head.weight.detach().double()
    out = []
    for prompt, response in zip(prompts, responses, strict=True):
        seq = prompt + response
        seen = {}
        hooks = []
        for layer in layers:
            hooks.append(
                layer.experts.register_forward_hook(
                    lambda mod, args, res, i=layer.index, s=seen: s.__setitem__(
                        ("routed", i), [a.detach().clone() for a in args]
                    )
                )
            )
            if layer.shared is not None:
                hooks.append(
                    layer.shared.register_forward_hook(
                        lambda mod, args, res, i=layer.index, s=seen: s.__setitem__(
                            ("shared", i), args[0].detach().reshape(-1, args[0].shape[-1])
                        )
                    )
                )
        with torch.no_grad():
            model(input_ids=torch.tensor([seq]))
        for h in hooks:
            h.remove()
        if target == "next":
            positions = range(len(prompt) - 1, len(seq) - 1)
            targets = [seq[t + 1] for t in positions]
        else:
            positions = range(len(prompt), len(seq))
            targets = [seq[t] for t in positions]
        per_layer = {"gate": [], "glu": []}
        for layer in layers:
            per_layer_scores(layer, seen, positions, targets, unembed, per_layer)
        out.append(per_layer)
    return out


@torch.no_grad()
def per_layer_scores(layer, seen, positions, targets, unembed, per_layer):
    """Append one layer's [T, E, N] triple scores per variant, token by token."""
    x_all, index, weight = seen[("routed", layer.index)]
    experts = layer.experts
    n_routed, _, n_neu = experts.down_proj.shape
    n_shared = 0 if layer.shared is None else layer.shared.down_proj.weight.shape[1] // n_neu
    full = {v: np.zeros((len(targets), n_routed + n_shared, n_neu)) for v in per_layer}
    # the reference code's projection: W_down_e^T W_U, [N, vocab], per expert
    table = [(experts.down_proj[e].double().T @ unembed.T) for e in range(n_routed)]
    for row, (t, y) in enumerate(zip(positions, targets, strict=True)):
        x = x_all[t].double()
        for k in range(index.shape[1]):
            e = int(index[t, k])
            g = float(weight[t, k])
            gu = experts.gate_up_proj[e].double() @ x
            act = experts.act_fn(gu[:n_neu])
            glu = act * gu[n_neu:]
            full["gate"][row, e] = (g * act * table[e][:, y]).numpy()
            full["glu"][row, e] = (g * glu * table[e][:, y]).numpy()
        if layer.shared is not None:
            xs = seen[("shared", layer.index)][t].double()
            mlp = layer.shared
            act = mlp.act_fn(mlp.gate_proj.weight.double() @ xs)
            glu = act * (mlp.up_proj.weight.double() @ xs)
            proj = mlp.down_proj.weight.double().T @ unembed[y]
            g = 1.0
            if layer.shared_gate is not None:
                g = float(torch.sigmoid(layer.shared_gate.weight.double() @ xs))
            for i in range(n_shared):
                sl = slice(i * n_neu, (i + 1) * n_neu)
                full["gate"][row, n_routed + i] = (g * act[sl] * proj[sl]).numpy()
                full["glu"][row, n_routed + i] = (g * glu[sl] * proj[sl]).numpy()
    for v in per_layer:
        per_layer[v].append(full[v])


def _brute_mui(reference, tau, variant):
    """MUI by sorting every triple of every sample and layer."""
    union = set()
    for per_layer in reference:
        for li, triples in enumerate(per_layer[variant]):
            n_layer = triples.shape[1] * triples.shape[2]
            k = k_for(tau, n_layer)
            flat = np.sort(triples.reshape(-1))[::-1]
            positive = flat[flat > 0]
            if positive.size == 0:
                continue
            theta = positive[min(k, positive.size) - 1]
            smax = triples.max(axis=0)
            for e, j in zip(*np.nonzero((smax >= theta) & (smax > 0)), strict=True):
                union.add((li, int(e), int(j)))
    return len(union)


@pytest.mark.parametrize(
    ("recipe", "target"),
    [
        ("qwen2_moe_tiny", "next"),
        ("olmoe_tiny", "next"),
        ("deepseek_v2_tiny", "next"),
        ("deepseek_v3_tiny", "same_position"),
    ],
)
def test_stored_scores_and_mui_match_brute_force(tmp_path, recipe, target):
    model_dir = build_model(recipe, 3, tmp_path / "model")
    samples = make_builtin("arithmetic", 5, seed=1)
    write_samples(tmp_path / "task.jsonl", samples)
    prompts = [[int(i) for i in RNG.integers(3, 259, size=RNG.integers(2, 7))] for _ in samples]
    lengths = [4, 1, 0, 6, 3]  # includes a sample with no response token
    responses = [[int(i) for i in RNG.integers(3, 259, size=n)] for n in lengths]
    write_records(
        tmp_path / "responses.jsonl",
        [
            {
                "id": s["id"],
                "prompt_ids": p,
                "response_ids": r,
                "response": "",
                "answer": None,
                "correct": bool(i % 2),
                "n_response_tokens": len(r),
            }
            for i, (s, p, r) in enumerate(zip(samples, prompts, responses, strict=True))
        ],
    )
    store = tmp_path / "act.zarr"
    capture_task(
        "m",
        str(model_dir),
        "t",
        tmp_path / "task.jsonl",
        tmp_path / "responses.jsonl",
        store / "m" / "t",
        variants=("gate", "glu"),
        target=target,
        max_threshold=0.005,
        batch_size=2,
        device="cpu",
        keep="all",  # every neuron's score, to compare with the brute force
    )
    ds = open_group(store, "m", "t")
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    reference = _reference_scores(model, prompts, responses, target)
    expected_tokens = lengths if target == "same_position" else lengths
    assert ds["n_tokens"].values.tolist() == expected_tokens
    assert ds["correct"].values.tolist() == [False, True, False, True, False]
    k_top = ds.sizes["rank"]
    assert k_top == k_for(0.005, 4096) == 20
    for variant in ("gate", "glu"):
        stored = ds[f"score_{variant}"].values
        tops = ds[f"pairtop_{variant}"].values
        for b, per_layer in enumerate(reference):
            for li, triples in enumerate(per_layer[variant]):
                scale = max(np.abs(triples).max(), 1e-30) if triples.size else 1.0
                expect = triples.max(axis=0) if triples.size else np.zeros(stored.shape[2:])
                np.testing.assert_allclose(stored[b, li], expect, rtol=1e-6, atol=1e-6 * scale)
                flat = np.sort(triples.reshape(-1))[::-1][:k_top]
                got = tops[b, li, : flat.size]
                np.testing.assert_allclose(got, flat, rtol=1e-6, atol=1e-6 * scale)
                assert np.isnan(tops[b, li, flat.size :]).all()
    table = mui_table(ds, THRESHOLDS, "m", "t")
    for row in table.itertuples():
        assert row.key_neurons == _brute_mui(reference, row.threshold, row.variant), row
        assert row.total_neurons == 8192 and row.n_samples == 5
        assert row.mui == row.key_neurons / 8192
