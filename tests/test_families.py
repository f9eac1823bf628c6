"""Every MoE causal-LM family of the installed transformers, built tiny from its config.

The families come from the library (:func:`moemui.adapters.discovery.moe_architectures`),
so a new transformers release that adds one makes this test fail until the family is
supported or listed in ``UNSUPPORTED`` with its reason. Each supported family is built
with random weights (std 1/sqrt(fan_in)), run with and without the capture (logits
must be equal, bit for bit, also under matmul kernels that round differently: the
capture replaces no computation of the model's), and every MoE block's routed and shared
outputs are rebuilt from the captured g, h and the weights (max abs error <= 1e-5 in
float32).
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from moemui.adapters import UNSUPPORTED, adapter_for
from moemui.adapters.discovery import moe_architectures
from moemui.batching import right_pad
from moemui.capture import ContributionCapture
from moemui.errors import MoemuiError

FAMILIES = moe_architectures()
PROMPTS = [[5, 6, 7, 8, 9], [10, 11, 12], [13, 14, 15, 16]]
RESPONSES = [[20, 21, 22], [23, 24, 25, 26, 27], []]
PROMPTS_TOKENS = 3 * 8  # batch x padded width

#: Config keys shrunk to tiny sizes, by pattern (first match wins).
SMALL = [
    (r"vocab_size$", 128),
    (r"^hidden_size$", 32),
    (r"hidden_size_per_layer_input$", 8),
    (r"^(num_hidden_layers|num_layers|n_layers)$", 3),
    (r"shared.*(intermediate|ffn).*size", 32),
    (r"(moe|expert).*(intermediate|ffn).*size", 16),
    (r"(intermediate|ffn_hidden)_size", 16),
    (r"^(num_attention_heads|n_heads|swa_num_attention_heads)$", 4),
    (r"key_value_heads$", 4),
    (r"head_dim$", 8),
    (r"^(num_experts|num_local_experts|n_routed_experts|moe_num_experts)$", 6),
    (r"^(num_experts_per_tok|num_experts_per_token|moe_topk|top_k_experts|moe_top_k|moe_k)$", 2),
    (r"(kv|q|o)_lora_rank$", 16),
    (r"index_n_heads$", 2),
    (r"index_topk", 8),
    (r"^(n_group|num_expert_group)$", 2),
    (r"^topk_group$", 1),
    (r"^(first_k_dense_replace|num_dense_layers)$", 1),
    (r"max_position_embeddings", 128),
    (r"linear_num_(key|value)_heads|linear_num_heads|mamba_num_heads|mamba_n_heads", 4),
    (r"router_hidden_size", 16),
    (r"mamba_dt_rank", 4),
    (r"mamba_d_state|ssm_state_size|state_size", 8),
    (r"n_groups$", 1),
]

#: Per-family config settings the generic shrinking cannot guess.
EXTRA: dict[str, dict] = {
    "dbrx": {"attn_config": {"kv_n_heads": 4, "rope_theta": 10000.0, "clip_qkv": 8.0}},
    "longcat_flash": {
        "qk_nope_head_dim": 8,
        "qk_rope_head_dim": 8,
        "v_head_dim": 8,
        "qk_head_dim": 16,
        "zero_expert_num": 2,  # identity experts, index >= E
    },
    "beam": {"num_hidden_layers": 4},
    "cohere2_moe": {"num_shared_experts": 1},  # averaged with the routed output
    "granitemoe": {"residual_multiplier": 0.5},
    "granitemoeshared": {
        "residual_multiplier": 0.5,
        "shared_intermediate_size": 32,
    },  # the first three layers are dense
    "deepseek_v2": {"topk_method": "greedy", "num_experts_per_tok": 2},
    "dots1": {"n_routed_experts": 6, "n_shared_experts": 1, "num_experts_per_tok": 2},
    "mimo_v2_flash": {"num_key_value_heads": 2},  # sliding layers double the kv heads
    "hunyuan_v1_moe": {"head_dim": 8, "num_experts": 6, "moe_topk": 2},
    "lfm2_moe": {"layer_types": ["conv", "full_attention", "full_attention"]},
    "doge": {"is_moe": True, "num_experts": 16, "num_experts_per_tok": 4},
    # NVFP4-rounded keys need a head_dim multiple of 16; index heads <= queries per key head
    "kolibri1_1": {"head_dim": 16, "index_num_heads": 1},
    "gemma4_text": {
        "enable_moe_block": True,
        "num_experts": 6,
        "top_k_experts": 2,
        "moe_intermediate_size": 16,
    },
}


def _overrides(values: dict) -> dict:
    out = {}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int):
            continue
        for pattern, small in SMALL:
            if re.search(pattern, key):
                if value > small or key.endswith("layers"):
                    out[key] = small
                break
    for key in ("pad_token_id", "bos_token_id", "eos_token_id"):
        if isinstance(values.get(key), int):
            out[key] = min(values[key], 2) if values[key] < 128 else 0
    return out


def tiny_model(model_type: str, seed: int = 0, **extra) -> torch.nn.Module:
    """The family's default config shrunk to a tiny model, weights std 1/sqrt(fan_in);
    ``extra`` config settings on top of the family's own."""
    defaults = AutoConfig.for_model(model_type).to_dict()
    settings = _overrides(defaults)
    for sub in ("text_config", "ffn_config", "attn_config"):
        if isinstance(defaults.get(sub), dict):
            settings[sub] = {**defaults[sub], **_overrides(defaults[sub])}
    for key, value in {**EXTRA.get(model_type, {}), **extra}.items():
        settings[key] = {**settings[key], **value} if isinstance(value, dict) else value
    config = AutoConfig.for_model(model_type, **settings)
    torch.manual_seed(seed)
    try:
        model = AutoModelForCausalLM.from_config(config, experts_implementation="grouped_mm")
    except ValueError as err:  # experts that are not fused (DBRX, LongCat)
        assert "does not support setting experts implementation" in str(err)
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **settings))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if param.ndim < 2:
                continue
            std = 1.0 if "embed" in name else 1.0 / math.sqrt(param.shape[-1])
            param.copy_(torch.randn(param.shape, generator=generator) * std)
    return model.eval()


def _ids():
    return right_pad([p + r for p, r in zip(PROMPTS, RESPONSES, strict=True)], 0)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny matmuls: one thread is faster (and kinder to a shared machine) than several."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _first(value):
    return value[0] if isinstance(value, tuple) else value


def _detach(value):
    return value.detach() if torch.is_tensor(value) else value


def rebuild_errors(model, adapter, records, seen) -> dict[int, float]:
    """Per MoE layer: max abs error of routed and shared outputs rebuilt from the capture."""
    errors = {}
    n_tokens = PROMPTS_TOKENS
    for slot, layer in enumerate(adapter.moe_layers(model)):
        down = adapter.down_weights(layer.experts)
        transposed = adapter.down_transposed(layer.experts)
        n_routed = down.shape[0]
        rebuilt = None
        for rec in (r for r in records if r["slot"] == slot and r["kind"] == "routed"):
            d = down[rec["expert"]]
            y = torch.einsum("pn,pnh->ph" if transposed else "pn,phn->ph", rec["h"], d)
            if layer.expert_norm is not None:  # each expert's norm weight (Ergo)
                y = y * layer.expert_norm.weight[rec["expert"]]
            if getattr(layer.experts, "has_bias", False):
                y = y + layer.experts.down_proj_bias[rec["expert"]]
            if rebuilt is None:
                rebuilt = torch.zeros(n_tokens, y.shape[-1])
            rebuilt.index_add_(0, rec["token"], rec["g"][:, None] * y)
        args, out = seen[("routed", slot)]["args"], seen[("routed", slot)]["out"]
        identity = None  # the identity experts' output, where the block adds it
        if len(args) == 3:  # fused experts(x, top_k_index, top_k_weights): their own output
            x, index, weights = args
            real = out.reshape(-1, x.shape[-1]) * layer.routed_scale
            # identity ("zero") experts pass x through, weighted, and hold no neuron
            flat_x = x.reshape(-1, x.shape[-1])
            for k in range(index.shape[-1]):
                zero = index.reshape(-1, index.shape[-1])[:, k] >= n_routed
                w = weights.reshape(-1, index.shape[-1])[:, k]
                rebuilt[zero] += (w[zero, None] * flat_x[zero]) * layer.routed_scale
            if ("router", slot) in seen and not bool((index >= n_routed).any()):
                # LongCat from transformers 5.25: the experts see identity picks as weight
                # 0; the block adds x times the identity picks' router weights itself
                w, picked = seen[("router", slot)]
                block_x = seen[("block_in", slot)].reshape(-1, x.shape[-1])
                identity = (w * (picked >= n_routed)).sum(-1, keepdim=True) * block_x
        elif len(args) == 1 and layer.experts is not layer.block:  # Llama-4: all experts, all
            # (input-scaled) tokens
            real = out.view(n_routed, n_tokens, -1).sum(0)
        else:  # JetMoE (per-pair outputs), Doge (the block itself): the block check covers it
            real = rebuilt
        err = (rebuilt - real).abs().max().item()
        total = rebuilt.clone() if identity is None else rebuilt + identity
        shared_records = [r for r in records if r["slot"] == slot and r["kind"] == "shared"]
        assert len(shared_records) == (layer.shared is not None)
        for rec in shared_records:
            h = rec["h"].reshape(-1, rec["h"].shape[-1])
            g = rec["g"]
            if torch.is_tensor(g) and g.reshape(h.shape[0], -1).shape[1] > 1:  # g per expert
                g = g.reshape(h.shape[0], -1)
                y = (h * g.repeat_interleave(h.shape[1] // g.shape[1], dim=1)) @ rec["down"].T
            else:
                y = h @ rec["down"].T
                shared = adapter.shared_parts(layer)
                if shared.down.bias is not None:
                    y = y + shared.down.bias
                if layer.shared is not layer.block:  # its own output, before gate and scale
                    out = seen[("shared", slot)]["out"]
                    err = max(err, (y - out.reshape(-1, out.shape[-1])).abs().max().item())
                if g is not None:
                    y = y * (g.reshape(-1, 1) if torch.is_tensor(g) else g)
            total += y
        # the block's own output is the sum of those parts (nothing missed, scales right)
        in_block = layer.shared is None or (
            layer.block is not None and any(m is layer.shared for m in layer.block.modules())
        )
        assert ("block", slot) in seen or len(args) == 3, "no check of the routed output"
        if ("block", slot) in seen and in_block:
            out = seen[("block", slot)]["out"]
            block = out.reshape(-1, out.shape[-1]) * layer.outside_scale
            bias = getattr(layer.block, "bias", None)  # JetMoE adds a bias to the block's sum
            if isinstance(bias, torch.nn.Parameter) and bias.shape == total.shape[-1:]:
                total = total + bias
            err = max(err, (total - block).abs().max().item())
        errors[layer.index] = err
    return errors


def check_family(model_type: str) -> dict[int, float]:
    return check_family_model(tiny_model(model_type))


def check_family_model(model, adapter=None) -> dict[int, float]:
    """Run ``model`` with and without capture; per MoE layer, the max rebuild error."""
    model_type = model.config.model_type
    adapter = adapter or adapter_for(model)
    layers = adapter.moe_layers(model)
    assert layers, f"{model_type}: no MoE layer found"
    ids, mask = _ids()
    before = {name: set(vars(module)) for name, module in model.named_modules()}
    seen: dict = {}
    hooks = []
    for slot, layer in enumerate(layers):
        hooks.append(
            layer.experts.register_forward_hook(
                lambda m, a, o, s=slot: seen.__setitem__(
                    ("routed", s),
                    {"args": [_detach(t) for t in a], "out": _detach(_first(o)).clone()},
                )
            )
        )
        if layer.post_norm is not None:  # the block's sum is the norm's input
            hooks.append(
                layer.post_norm.register_forward_hook(
                    lambda m, a, o, s=slot: seen.__setitem__(
                        ("block", s), {"out": a[0].detach().clone()}
                    )
                )
            )
        elif layer.block is not None:
            hooks.append(
                layer.block.register_forward_hook(
                    lambda m, a, o, s=slot: seen.__setitem__(
                        ("block", s),
                        {"out": (o[0] if isinstance(o, tuple) else o).detach().clone()},
                    )
                )
            )
        if getattr(layer.block, "zero_expert_num", 0):  # LongCat's identity experts
            hooks += [
                layer.block.register_forward_pre_hook(
                    lambda m, a, s=slot: seen.__setitem__(("block_in", s), a[0].detach())
                ),
                layer.block.router.register_forward_hook(
                    lambda m, a, o, s=slot: seen.__setitem__(("router", s), (o[1], o[2]))
                ),
            ]
        if layer.shared is not None:
            hooks.append(
                layer.shared.register_forward_hook(
                    lambda m, a, o, s=slot: seen.__setitem__(
                        ("shared", s), {"out": _first(o).detach().clone()}
                    )
                )
            )
    try:
        with torch.no_grad():
            plain = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
            with ContributionCapture(
                model, adapter, ("gate", "glu", "act"), k_top=8, keep_activations=True
            ) as cap:
                captured = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
                records, seen_batched = list(cap.records), dict(seen)
                cap.records.clear()
                # one forward per sequence: the hooks above see those, not the batch
                out = cap.score_batch(PROMPTS, RESPONSES, "next")
    finally:
        for h in hooks:
            h.remove()
    assert torch.equal(captured, plain), f"{model_type}: the capture changed the logits"
    # nothing of the capture is left on the model: no hook, no attribute set on a module
    for name, module in model.named_modules():
        assert not module._forward_hooks and not module._forward_pre_hooks, name
        assert set(vars(module)) == before[name], name
    geo = adapter.geometry(model)
    assert out.score["glu"].shape == (3, len(layers), geo.experts_per_layer, geo.neurons_per_expert)
    assert all(bool((abs(s) < float("inf")).all()) for s in out.score.values())
    assert out.n_tokens.tolist() == [3, 5, 0]
    return rebuild_errors(model, adapter, records, seen_batched)


@pytest.mark.parametrize("arch", sorted(FAMILIES))
def test_family_rebuilds_and_keeps_logits(arch):
    model_type = FAMILIES[arch]
    if arch in UNSUPPORTED:
        with pytest.raises(MoemuiError, match=re.escape(UNSUPPORTED[arch])):
            adapter_for(tiny_model(model_type))
        return
    errors = check_family(model_type)
    worst = max(errors.values())
    assert worst <= 1e-5, f"{arch}: max abs rebuild error {worst:.3g} per layer {errors}"


@pytest.fixture
def other_kernels(monkeypatch):
    """Matmuls that round differently from this machine's float32 kernels, as another
    CPU's or a GPU's do: every linear, matmul, bmm and grouped matmul transformers calls
    is computed in float64 and rounded back. The model must still give the same logits
    with and without the capture, because under capture it runs its own code."""
    import torch.nn.functional as F
    import transformers.integrations.moe as moe

    def in_float64(fn):
        def run(*args, **kwargs):
            dtypes = [a.dtype for a in args if torch.is_tensor(a)]
            args = [a.double() if torch.is_tensor(a) and a.is_floating_point() else a for a in args]
            kwargs = {
                k: v.double() if torch.is_tensor(v) and v.is_floating_point() else v
                for k, v in kwargs.items()
            }
            return fn(*args, **kwargs).to(dtypes[0])

        return run

    def grouped_linear(input, weight, offs, bias=None, is_transposed=False):
        parts, start = [], 0
        for e, end in enumerate(offs.tolist()):
            w = weight[e].double()
            parts.append(input[start:end].double() @ (w if is_transposed else w.T))
            start = end
        out = torch.cat(parts)
        return (out if bias is None else out + bias.double()).to(input.dtype)

    for owner, name in ((F, "linear"), (torch, "matmul"), (torch, "bmm")):
        monkeypatch.setattr(owner, name, in_float64(getattr(owner, name)))
    monkeypatch.setattr(moe, "_grouped_linear", grouped_linear)


@pytest.mark.parametrize("arch", sorted(set(FAMILIES) - set(UNSUPPORTED)))
def test_capture_keeps_logits_under_other_kernels(arch, other_kernels):
    """The capture replaces no computation of the model's: with kernels that round
    differently (a capture that ran its own copy of an experts forward would not see
    them), the logits under capture are still bit-identical to the model's own."""
    errors = check_family(FAMILIES[arch])
    assert max(errors.values()) <= 1e-5, errors


@pytest.mark.parametrize("arch", sorted(set(FAMILIES) - set(UNSUPPORTED)))
def test_inspect_reads_geometry_from_a_config_alone(arch, tmp_path):
    """What ``moemui inspect DIR`` reads: a directory with only config.json, built on the
    meta device, gives the same geometry as the model itself."""
    from moemui.sources import model_skeleton

    model = tiny_model(FAMILIES[arch])
    model.config.architectures = [arch]  # as save_pretrained writes it
    model.config.save_pretrained(tmp_path)
    skeleton = model_skeleton(str(tmp_path), "m")
    assert next(skeleton.parameters()).device.type == "meta"
    info = adapter_for(skeleton).geometry(skeleton).as_dict()
    assert info == adapter_for(model).geometry(model).as_dict()
    for key in ("moe_layers", "dense_layers", "routed_experts", "shared_experts", "top_k"):
        assert info[key] is not None


def test_discovery_finds_the_issue_families():
    expected = {
        "MixtralForCausalLM",
        "Qwen2MoeForCausalLM",
        "Qwen3MoeForCausalLM",
        "Qwen3NextForCausalLM",
        "OlmoeForCausalLM",
        "FlexOlmoForCausalLM",
        "DeepseekV2ForCausalLM",
        "DeepseekV3ForCausalLM",
        "Glm4MoeForCausalLM",
        "GptOssForCausalLM",
        "GraniteMoeForCausalLM",
        "GraniteMoeSharedForCausalLM",
        "PhimoeForCausalLM",
        "JetMoeForCausalLM",
        "DbrxForCausalLM",
        "Llama4ForCausalLM",
        "JambaForCausalLM",
        "MiniMaxForCausalLM",
        "Ernie4_5_MoeForCausalLM",
        "HunYuanMoEV1ForCausalLM",
        "Dots1ForCausalLM",
        "KimiLinearForCausalLM",
        "LongcatFlashForCausalLM",
        "Gemma4ForCausalLM",
    }
    assert expected <= set(FAMILIES), sorted(expected - set(FAMILIES))
    assert "LlamaForCausalLM" not in FAMILIES  # dense


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("model_type", ["qwen2_moe", "gpt_oss", "jetmoe", "llama4_text", "dbrx"])
def test_half_precision_scores_are_finite_and_close_to_float32(model_type, dtype):
    """Scores of a bf16/fp16 model, accumulated in float32, match the float32 model's."""
    model = tiny_model(model_type)
    adapter = adapter_for(model)
    scores = {}
    for precision in (torch.float32, dtype):
        model.to(precision)
        with ContributionCapture(model, adapter, ("gate", "glu", "act"), k_top=8) as cap:
            scores[precision] = cap.score_batch(PROMPTS, RESPONSES, "same_position").score
    for variant, full in scores[torch.float32].items():
        half = scores[dtype][variant]
        assert half.dtype == full.dtype == "float32"
        assert bool((abs(half) < float("inf")).all()), variant
        scale = float(abs(full).max())
        worst = float(abs(half - full).max())
        assert worst <= 0.1 * scale, f"{variant}: max abs difference {worst:.3g}, scale {scale:.3g}"


def _routed_picks(model, adapter, skip_zero_weight: bool) -> list[int]:
    """Per MoE layer, the picks of a real (routed, not identity/skip) expert at the
    positions ``score_batch`` scores (target ``next``), read from the experts' inputs."""
    ids, mask = _ids()
    seen = {}
    layers = adapter.moe_layers(model)
    hooks = [
        la.experts.register_forward_hook(
            lambda m, a, o, s=slot: seen.__setitem__(s, (a[1].detach(), a[2].detach()))
        )
        for slot, la in enumerate(layers)
    ]
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask, use_cache=False)
    for h in hooks:
        h.remove()
    width = ids.shape[1]
    scored = torch.zeros(ids.shape, dtype=torch.bool)
    for b, (p, r) in enumerate(zip(PROMPTS, RESPONSES, strict=True)):
        scored[b, len(p) - 1 : len(p) + len(r) - 1] = bool(r)
    counts = []
    n_routed = adapter.geometry(model).routed_experts
    for slot in range(len(layers)):
        index, weight = (t.reshape(3 * width, -1) for t in seen[slot])
        real = index < n_routed
        if skip_zero_weight:
            real &= weight != 0
        counts.append(int(real[scored.reshape(-1)].sum()))
    return counts


def test_zaya_skip_picks_route_no_neuron():
    model = tiny_model("zaya")
    adapter = adapter_for(model)
    router = adapter.moe_layers(model)[1].block.gate
    with torch.no_grad():
        router.balancing_biases[-1] = 0.2  # the skip class wins for some tokens
    picks = _routed_picks(model, adapter, skip_zero_weight=True)
    total = 8 * model.config.num_experts_per_tok  # 8 scored positions
    assert picks[1] < total  # some picks are skips
    with ContributionCapture(model, adapter, ("glu",), k_top=8) as cap:
        out = cap.score_batch(PROMPTS, RESPONSES, "next")
    assert out.route_tokens.sum(axis=(0, 2)).tolist() == picks
    errors = check_family_model(model)
    assert max(errors.values()) <= 1e-5, errors


def test_longcat_identity_experts_route_no_neuron():
    model = tiny_model("longcat_flash")
    adapter = adapter_for(model)
    # up to transformers 5.23 the experts see identity picks as index >= E; from 5.25
    # as a real expert's index with weight 0 (the block adds the identity output)
    picks = _routed_picks(model, adapter, skip_zero_weight=True)
    assert min(picks) < 8 * model.config.num_experts_per_tok  # identity experts were picked
    with ContributionCapture(model, adapter, ("glu",), k_top=8) as cap:
        out = cap.score_batch(PROMPTS, RESPONSES, "next")
    assert out.route_tokens.sum(axis=(0, 2)).tolist() == picks
    assert out.route_tokens.shape[-1] == adapter.geometry(model).routed_experts


class _ExpertNorm(torch.nn.Module):
    """An RMSNorm with a weight per expert, called as Ergo's ``post_expert_norm`` is."""

    def __init__(self, n_experts: int, hidden: int, generator: torch.Generator):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.rand(n_experts, hidden, generator=generator) + 0.5)
        self.eps = 1e-6

    def forward(self, out, expert_ids):
        normed = torch.nn.functional.rms_norm(out.float(), (out.shape[-1],), eps=self.eps)
        return (normed * self.weight[expert_ids]).to(out.dtype)


def _normed_experts(model) -> torch.nn.Module:
    """``model`` (Qwen2-MoE) made Ergo-like: each routed pair's output is normed per
    expert before g (its own class's fused forward, one route per row, as Ergo's
    experts call it), and the shared expert's output by an RMSNorm of its own."""
    generator = torch.Generator().manual_seed(1)
    layer = next(la for la in model.model.layers if hasattr(la.mlp, "experts"))
    fused, shared = type(layer.mlp.experts), type(layer.mlp.shared_expert)

    class NormedExperts(fused):
        def forward(self, hidden_states, top_k_index, top_k_weights):
            k = top_k_index.shape[-1]
            rows = hidden_states.repeat_interleave(k, dim=0)
            flat = top_k_index.reshape(-1, 1)
            out = super().forward(rows, flat, torch.ones(flat.shape, dtype=rows.dtype))
            out = self.post_expert_norm(out, flat.flatten())
            return (out.view(*top_k_index.shape, -1) * top_k_weights.unsqueeze(-1)).sum(1)

    class NormedShared(shared):
        def forward(self, x):
            return self.norm(super().forward(x))

    hidden = model.config.hidden_size
    for la in model.model.layers:
        if not hasattr(la.mlp, "experts"):
            continue
        experts = la.mlp.experts
        experts.__class__ = NormedExperts
        experts.post_expert_norm = _ExpertNorm(experts.down_proj.shape[0], hidden, generator)
        la.mlp.shared_expert.__class__ = NormedShared
        norm = torch.nn.RMSNorm(hidden, eps=1e-6)
        with torch.no_grad():
            norm.weight.copy_(torch.rand(hidden, generator=generator) + 0.5)
        la.mlp.shared_expert.norm = norm
    return model


def test_norms_after_the_experts_are_folded_into_h_and_the_write_vectors():
    """An RMSNorm after each routed expert (a weight per expert) and after the shared
    expert, as Ergo has (transformers >= 5.25, so built here on Qwen2-MoE's gated fused
    experts): the capture keeps the logits, and h scaled by each output's 1/rms times
    the norm-weighted write vectors rebuilds the normed outputs and the block's sum."""
    from moemui.adapters.families import ErgoAdapter

    model = _normed_experts(tiny_model("qwen2_moe"))
    adapter = ErgoAdapter("qwen2_moe")
    errors = check_family_model(model, adapter)
    assert max(errors.values()) <= 1e-5, errors
    # without the folding (the generic adapter) the same capture does not rebuild them
    generic = check_family_model(model, adapter_for(model))
    assert min(generic.values()) > 1e-2, generic
    assert adapter.geometry(model).as_dict()["expert_norm"] == "_ExpertNorm"
    # the first MoE layer sees the same inputs with and without the norms: each pair's
    # gate h is scaled by the same 1/rms as its glu h (and that factor is not 1)
    first = {}
    plain_model = tiny_model("qwen2_moe")
    ids, mask = _ids()
    for name, m, a in (
        ("plain", plain_model, adapter_for(plain_model)),
        ("normed", model, adapter),
    ):
        capture = ContributionCapture(m, a, ("gate", "glu"), k_top=8, keep_activations=True)
        with torch.no_grad(), capture as cap:
            m(input_ids=ids, attention_mask=mask, use_cache=False)
            first[name] = [r for r in cap.records if r["slot"] == 0]
    for kind in ("routed", "shared"):
        plain = next(r for r in first["plain"] if r["kind"] == kind)
        normed = next(r for r in first["normed"] if r["kind"] == kind)
        factor = normed["h"] / plain["h"]
        torch.testing.assert_close(normed["act"], plain["act"] * factor, rtol=1e-4, atol=1e-6)
        assert not torch.allclose(factor, torch.ones_like(factor)), kind
    # the stored routed scores: g * h * <d_j * w_e, u(target)>, max over the scored
    # positions, computed here from the records with the write vectors times w_e
    prompt, response = PROMPTS[1], RESPONSES[1]
    capture = ContributionCapture(model, adapter, ("glu",), k_top=8, keep_activations=True)
    with torch.no_grad(), capture as cap:
        out = cap.score_batch([prompt], [response], "next")
        rec = next(r for r in cap.records if r["slot"] == 0 and r["kind"] == "routed")
    layer = adapter.moe_layers(model)[0]
    seq = prompt + response
    scored = range(len(prompt) - 1, len(seq) - 1)
    u = adapter.unembedding(model)
    n_routed = layer.experts.down_proj.shape[0]
    want = torch.full((n_routed, out.score["glu"].shape[-1]), float("-inf"))
    routed = torch.zeros(n_routed)
    pairs = zip(rec["token"].tolist(), rec["expert"].tolist(), rec["g"], rec["h"], strict=True)
    for t, e, g, h in pairs:
        if t in scored:
            writes = layer.experts.down_proj[e] * layer.expert_norm.weight[e][:, None]  # [H, N]
            want[e] = torch.maximum(want[e], g * h * (u[seq[t + 1]] @ writes))
            routed[e] += 1
    # a position where the expert is not routed is a triple of score 0
    want[routed < len(scored)] = want[routed < len(scored)].clamp(min=0.0)
    got = torch.as_tensor(out.score["glu"][0, 0, :n_routed])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(
    "Inkling2LoopForCausalLM" not in FAMILIES, reason="Inkling2-Loop: transformers >= 5.25"
)
def test_looped_moe_layers_are_refused_by_name():
    """A MoE layer run several times per token (Inkling2-Loop's looped layers) cannot
    be held as one score per (layer, neuron, position): refused naming the layers."""
    model = tiny_model(
        "inkling2_loop_text",
        num_hidden_layers=4,
        n_layers_per_attn_res_block=2,
        loop_layer_index_start=2,
        loop_layer_index_end=4,
        loop_num_passes=2,
    )
    with pytest.raises(MoemuiError, match=r"decoder layers 2-3 run 2 times per token .* \[2, 3\]"):
        adapter_for(model).geometry(model)


@pytest.mark.parametrize("model_type", ["olmoe", "gpt_oss", "nemotron_h"])
def test_batched_mm_experts_give_the_grouped_mm_scores(model_type):
    """Under ``batched_mm`` the experts' rows come in flat pair order, not sorted by
    expert: the capture maps them back, keeps the logits and scores as under
    ``grouped_mm`` (gated, interleaved-biased and non-gated experts)."""
    model = tiny_model(model_type)
    adapter = adapter_for(model)
    scores = {}
    for impl in ("grouped_mm", "batched_mm"):
        model.set_experts_implementation(impl)
        ids, mask = _ids()
        with torch.no_grad():
            plain = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
            with ContributionCapture(model, adapter, ("gate", "glu"), k_top=8) as cap:
                captured = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
                scores[impl] = cap.score_batch(PROMPTS, RESPONSES, "next")
        assert torch.equal(captured, plain), impl
    for v in ("gate", "glu"):
        torch.testing.assert_close(
            scores["batched_mm"].score[v], scores["grouped_mm"].score[v], atol=1e-6, rtol=1e-5
        )
    assert (scores["batched_mm"].route_tokens == scores["grouped_mm"].route_tokens).all()


def test_other_experts_implementations_are_refused_by_name():
    model = tiny_model("olmoe")
    model.set_experts_implementation("eager")
    with pytest.raises(MoemuiError, match=r"tiny: capture needs the grouped_mm .* 'eager'"):
        ContributionCapture(model, adapter_for(model), name="tiny").__enter__()
