"""Built-in tiny MoE models: ``builtin:<recipe>`` model sources.

A recipe is a transformers config small enough for a laptop CPU. ``build_model``
instantiates it with a fixed seed, rescales the weights so that activations are not
all near zero (normal with std ``1/sqrt(fan_in)``), and writes model and byte-level
tokenizer with ``save_pretrained``, so the result loads through the same
``from_pretrained`` path as a Hub checkpoint.

Each recipe has 4096 neurons per MoE layer (16 experts of 256, shared ones included),
so the thresholds 0.08%, 0.1% and 0.2% give k = 3, 4 and 8 per layer.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from moemui.errors import MoemuiError
from moemui.io import staged_directory

if TYPE_CHECKING:  # torch and transformers load only when a model is built
    import torch
    from transformers import PretrainedConfig

log = logging.getLogger(__name__)

VOCAB = 259  # the byte-level tokenizer: 3 special tokens + 256 bytes
PAD_ID, EOS_ID, BOS_ID = 0, 1, 2
_COMMON = {
    "vocab_size": VOCAB,
    "hidden_size": 64,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
    "pad_token_id": PAD_ID,
    "eos_token_id": EOS_ID,
    "bos_token_id": BOS_ID,
    "tie_word_embeddings": False,
}


def _config(model_type: str, **kwargs) -> PretrainedConfig:
    from transformers import AutoConfig

    return AutoConfig.for_model(model_type, **kwargs)


def _qwen2_moe_tiny() -> PretrainedConfig:
    # 14 routed experts of 256 + one shared MLP of 512 (2 virtual experts); layer 0 dense.
    return _config(
        "qwen2_moe",
        **_COMMON,
        num_hidden_layers=3,
        intermediate_size=256,
        moe_intermediate_size=256,
        shared_expert_intermediate_size=512,
        num_experts=14,
        num_experts_per_tok=2,
        norm_topk_prob=False,
        mlp_only_layers=[0],
    )


def _olmoe_tiny() -> PretrainedConfig:
    # 16 routed experts of 256, top-2, no shared expert.
    return _config(
        "olmoe",
        **_COMMON,
        num_hidden_layers=2,
        intermediate_size=256,
        num_experts=16,
        num_experts_per_tok=2,
    )


def _qwen3_moe_tiny() -> PretrainedConfig:
    # 16 routed experts of 256, top-2, renormalised, no shared expert.
    return _config(
        "qwen3_moe",
        **_COMMON,
        head_dim=16,
        num_hidden_layers=2,
        intermediate_size=256,
        moe_intermediate_size=256,
        num_experts=16,
        num_experts_per_tok=2,
        norm_topk_prob=True,
    )


def _deepseek_v2_tiny() -> PretrainedConfig:
    # 14 routed experts of 256 + 2 shared (one MLP of 512); first layer dense;
    # softmax top-2, not renormalised, scaled by 1.5.
    cfg = dict(_COMMON, num_key_value_heads=4)
    return _config(
        "deepseek_v2",
        **cfg,
        num_hidden_layers=3,
        intermediate_size=256,
        moe_intermediate_size=256,
        n_routed_experts=14,
        n_shared_experts=2,
        num_experts_per_tok=2,
        first_k_dense_replace=1,
        routed_scaling_factor=1.5,
        topk_method="greedy",
        kv_lora_rank=32,
        q_lora_rank=None,
        qk_nope_head_dim=16,
        qk_rope_head_dim=8,
        v_head_dim=16,
    )


def _deepseek_v3_tiny() -> PretrainedConfig:
    # 15 routed experts of 256 in 3 groups (top-2 groups) + 1 shared; first layer dense;
    # sigmoid scores with bias correction, renormalised top-2, scaled by 2.5.
    cfg = dict(_COMMON, num_key_value_heads=4)
    return _config(
        "deepseek_v3",
        **cfg,
        num_hidden_layers=3,
        intermediate_size=256,
        moe_intermediate_size=256,
        n_routed_experts=15,
        n_shared_experts=1,
        num_experts_per_tok=2,
        n_group=3,
        topk_group=2,
        first_k_dense_replace=1,
        routed_scaling_factor=2.5,
        kv_lora_rank=32,
        q_lora_rank=None,
        qk_nope_head_dim=16,
        qk_rope_head_dim=8,
        v_head_dim=16,
    )


RECIPES: dict[str, Callable[[], PretrainedConfig]] = {
    "qwen2_moe_tiny": _qwen2_moe_tiny,
    "olmoe_tiny": _olmoe_tiny,
    "qwen3_moe_tiny": _qwen3_moe_tiny,
    "deepseek_v2_tiny": _deepseek_v2_tiny,
    "deepseek_v3_tiny": _deepseek_v3_tiny,
}


def recipe_config(recipe: str) -> PretrainedConfig:
    """The transformers config of a built-in recipe.

    Raises
    ------
    MoemuiError
        When the recipe is unknown; the message lists the known ones.
    """
    try:
        return RECIPES[recipe]()
    except KeyError:
        known = ", ".join(sorted(RECIPES))
        raise MoemuiError(f"unknown builtin recipe {recipe!r}; known recipes: {known}") from None


def init_model(config: PretrainedConfig, seed: int) -> torch.nn.Module:
    """Instantiate ``config`` with seeded weights rescaled to std ``1/sqrt(fan_in)``.

    Matrices (and fused expert tensors, whose last axis is the input) get
    N(0, 1/fan_in); embeddings get N(0, 1); norms keep their ones, biases their zeros.
    """
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, experts_implementation="grouped_mm")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if param.ndim < 2:
                continue
            std = 1.0 if "embed" in name else 1.0 / math.sqrt(param.shape[-1])
            param.copy_(torch.randn(param.shape, generator=generator) * std)
    return model.eval()


def build_model(recipe: str, seed: int, out: str | os.PathLike) -> Path:
    """Build recipe ``recipe`` with ``seed`` and save model and tokenizer to ``out``.

    The directory is written next to ``out`` and moved into place when complete.
    """
    from transformers import GenerationConfig

    from moemui.tokenizer import build_tokenizer

    out = Path(out)
    config = recipe_config(recipe)
    model = init_model(config, seed)
    tokenizer = build_tokenizer(model_max_length=config.max_position_embeddings)
    model.generation_config = GenerationConfig(
        eos_token_id=EOS_ID, pad_token_id=PAD_ID, bos_token_id=BOS_ID, do_sample=False
    )
    with staged_directory(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("built %s (seed %d, %.2f M parameters) in %s", recipe, seed, n_params / 1e6, out)
    return out
