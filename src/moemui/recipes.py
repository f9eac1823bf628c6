"""The tiny MoE recipes: the models the workflow makes itself, in one registry.

A recipe is a transformers config small enough for a laptop CPU, in two layers, both
made by :func:`tiny_config`, which holds what every recipe shares (the byte-level
tokenizer's vocabulary and special ids, :data:`HEADS` attention heads, untied
embeddings):

``builtin:<recipe>`` (:data:`RECIPES`)
    a config instantiated with a fixed seed: ``build_model`` rescales the weights so
    that activations are not all near zero (normal with std ``1/sqrt(fan_in)``), and
    writes model and byte-level tokenizer with ``save_pretrained``, so the result loads
    through the same ``from_pretrained`` path as a Hub checkpoint. Each has 4096
    neurons per MoE layer (16 experts of :data:`EXPERT_WIDTH`, shared ones included),
    so the thresholds 0.08%, 0.1% and 0.2% give k = 3, 4 and 8 per layer.
``trained:<recipe>`` (:data:`TRAINED_RECIPES`)
    a family's routing (:data:`FAMILIES`, by name) at a size, and a training schedule
    (:class:`TrainRecipe`); :func:`moemui.train.train` trains it from scratch.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from moemui.errors import MoemuiError
from moemui.io import staged_directory

if TYPE_CHECKING:  # torch and transformers load only when a model is built
    import torch
    from transformers import GenerationConfig, PretrainedConfig

log = logging.getLogger(__name__)

#: The byte-level tokenizer's ids (:func:`moemui.tokenizer.build_tokenizer`): pad, eos
#: and bos, then one token per byte.
PAD_ID, EOS_ID, BOS_ID = 0, 1, 2
VOCAB = len((PAD_ID, EOS_ID, BOS_ID)) + 256
#: The attention heads, and the neurons of one expert (routed or shared), of every recipe.
HEADS = 4
EXPERT_WIDTH = 256


def tiny_config(model_type: str, **settings) -> PretrainedConfig:
    """The transformers config of a tiny ``model_type`` model: ``settings`` over what
    every recipe shares."""
    from transformers import AutoConfig

    shared = {
        "vocab_size": VOCAB,
        "num_attention_heads": HEADS,
        "pad_token_id": PAD_ID,
        "eos_token_id": EOS_ID,
        "bos_token_id": BOS_ID,
        "tie_word_embeddings": False,
    }
    return AutoConfig.for_model(model_type, **{**shared, **settings})


def generation_config() -> GenerationConfig:
    """The generation config every recipe's model is saved with: greedy, the byte-level
    tokenizer's special ids."""
    from transformers import GenerationConfig

    return GenerationConfig(
        eos_token_id=EOS_ID, pad_token_id=PAD_ID, bos_token_id=BOS_ID, do_sample=False
    )


# Builtin recipes


#: The context (``max_position_embeddings``) of every builtin recipe.
BUILTIN_CONTEXT = 512
#: The builtin recipes' size.
_BUILTIN = {
    "hidden_size": 64,
    "num_key_value_heads": 2,
    "max_position_embeddings": BUILTIN_CONTEXT,
}


def _qwen2_moe_tiny() -> PretrainedConfig:
    # 14 routed experts of 256 + one shared MLP of 512 (2 virtual experts); layer 0 dense.
    return tiny_config(
        "qwen2_moe",
        **_BUILTIN,
        num_hidden_layers=3,
        intermediate_size=EXPERT_WIDTH,
        moe_intermediate_size=EXPERT_WIDTH,
        shared_expert_intermediate_size=2 * EXPERT_WIDTH,
        num_experts=14,
        num_experts_per_tok=2,
        norm_topk_prob=False,
        mlp_only_layers=[0],
    )


def _olmoe_tiny() -> PretrainedConfig:
    # 16 routed experts of 256, top-2, no shared expert.
    return tiny_config(
        "olmoe",
        **_BUILTIN,
        num_hidden_layers=2,
        intermediate_size=EXPERT_WIDTH,
        num_experts=16,
        num_experts_per_tok=2,
    )


def _qwen3_moe_tiny() -> PretrainedConfig:
    # 16 routed experts of 256, top-2, renormalised, no shared expert.
    return tiny_config(
        "qwen3_moe",
        **_BUILTIN,
        head_dim=16,
        num_hidden_layers=2,
        intermediate_size=EXPERT_WIDTH,
        moe_intermediate_size=EXPERT_WIDTH,
        num_experts=16,
        num_experts_per_tok=2,
        norm_topk_prob=True,
    )


def _deepseek_v2_tiny() -> PretrainedConfig:
    # 14 routed experts of 256 + 2 shared (one MLP of 512); first layer dense;
    # softmax top-2, not renormalised, scaled by 1.5.
    return tiny_config(
        "deepseek_v2",
        **{**_BUILTIN, "num_key_value_heads": HEADS},
        num_hidden_layers=3,
        intermediate_size=EXPERT_WIDTH,
        moe_intermediate_size=EXPERT_WIDTH,
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
    return tiny_config(
        "deepseek_v3",
        **{**_BUILTIN, "num_key_value_heads": HEADS},
        num_hidden_layers=3,
        intermediate_size=EXPERT_WIDTH,
        moe_intermediate_size=EXPERT_WIDTH,
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


def builtin_recipe(recipe: str) -> Callable[[], PretrainedConfig]:
    """What makes the config of builtin recipe ``recipe``.

    Raises
    ------
    MoemuiError
        When the recipe is unknown; the message lists the known ones.
    """
    try:
        return RECIPES[recipe]
    except KeyError:
        known = ", ".join(sorted(RECIPES))
        raise MoemuiError(f"unknown builtin recipe {recipe!r}; known recipes: {known}") from None


def recipe_config(recipe: str) -> PretrainedConfig:
    """The transformers config of a built-in recipe (unknown: as :func:`builtin_recipe`)."""
    return builtin_recipe(recipe)()


# Trained recipes


@dataclass(frozen=True)
class TrainRecipe:
    """Architecture and schedule of a trained tiny MoE.

    ``family`` names its routing in :data:`FAMILIES`; ``arch`` is that routing with the
    size (``hidden_size``, ``num_hidden_layers``), as the transformers config takes it.
    ``mix`` lists (task, params, weight): each optimizer step draws one batch of a
    single task, in a fixed round-robin order where a task of weight w appears w times.
    """

    family: str
    arch: dict
    steps: int
    save_steps: tuple[int, ...]
    batch_size: int = 64
    lr: float = 1e-3
    warmup: int = 50
    seed: int = 0
    mix: tuple[tuple[str, dict, int], ...] = (
        ("arithmetic", {"digits": 2}, 2),
        ("multiple_choice", {}, 1),
        ("boolean_expressions", {}, 1),
    )
    description: str = ""


#: The routing of each family the trained recipes use (its experts and top-k).
FAMILIES: dict[str, dict] = {
    # routed experts only
    "olmoe": {"model_type": "olmoe", "num_experts": 16, "num_experts_per_tok": 2},
    # a sigmoid-gated shared expert of two experts' width
    "qwen2_moe": {
        "model_type": "qwen2_moe",
        "num_experts": 14,
        "num_experts_per_tok": 2,
        "shared_expert_intermediate_size": 2 * EXPERT_WIDTH,
        "norm_topk_prob": False,
    },
    # DeepSeek-V3 routing (sigmoid scores, top-2 renormalised), two always-on shared
    # experts, QK-norm
    "glm4_moe": {
        "model_type": "glm4_moe",
        "n_routed_experts": 14,
        "n_shared_experts": 2,
        "num_experts_per_tok": 2,
        "norm_topk_prob": True,
        "first_k_dense_replace": 0,
        "use_qk_norm": True,
    },
}
#: What every trained recipe's config adds to its ``arch``: key-value heads as many as
#: the heads, dense MLPs as wide as an expert, the router's load-balancing loss.
_TRAINED = {
    "num_key_value_heads": HEADS,
    "intermediate_size": EXPERT_WIDTH,
    "moe_intermediate_size": EXPERT_WIDTH,
    "router_aux_loss_coef": 0.01,
}
#: The trained recipes' context (the prompts and answers of the built-in tasks fit).
TRAINED_CONTEXT = 128


def _arch(family: str, hidden_size: int, num_hidden_layers: int) -> dict:
    """A trained recipe's ``arch``: the routing of ``family`` at a size."""
    return {**FAMILIES[family], "hidden_size": hidden_size, "num_hidden_layers": num_hidden_layers}


TRAINED_RECIPES: dict[str, TrainRecipe] = {
    "olmoe_v1": TrainRecipe(
        family="olmoe",
        arch=_arch("olmoe", 96, 2),
        steps=400,
        save_steps=(200, 400),
        seed=11,
        description="OLMoE, 2 layers, hidden 96, 400 steps",
    ),
    "olmoe_v2": TrainRecipe(
        family="olmoe",
        arch=_arch("olmoe", 128, 3),
        steps=600,
        save_steps=(150, 300, 450, 600),
        seed=12,
        description="OLMoE, 3 layers, hidden 128, 600 steps",
    ),
    # GLM4-MoE-style (DeepSeek-V3 routing: sigmoid scores, top-2 renormalised) with two
    # always-on shared experts and QK-norm: the default's shared-expert family. The v2
    # architecture trained half as long makes v1.
    "glm4_moe_v1": TrainRecipe(
        family="glm4_moe",
        arch=_arch("glm4_moe", 128, 3),
        steps=300,
        save_steps=(150, 300),
        seed=21,
        description="GLM4-MoE (2 shared experts, QK-norm), 3 layers, hidden 128, 300 steps",
    ),
    "glm4_moe_v2": TrainRecipe(
        family="glm4_moe",
        arch=_arch("glm4_moe", 128, 3),
        steps=600,
        save_steps=(150, 300, 450, 600),
        seed=22,
        description="GLM4-MoE (2 shared experts, QK-norm), 3 layers, hidden 128, 600 steps",
    ),
    # The v2 architectures, data mix, lr and seeds trained longer (a schedule of their
    # own: warm-up, then cosine decay over all the steps), to see whether a longer
    # training leaves the `accumulating` phase (docs/default-run.md, "Longer training: phases").
    # olmoe_v2_long is the default's olmoe-v2 series: once its accuracy nears 90%, MUI
    # stops rising (arithmetic: evolving between steps 1500, 1800 and 2100). On this CPU
    # it trains in about 560-670 s (one thread), glm4_moe_v2_long in about 720-770 s,
    # too long beside it for the default's 20 minutes.
    "olmoe_v2_long": TrainRecipe(
        family="olmoe",
        arch=_arch("olmoe", 128, 3),
        steps=2400,
        save_steps=(300, 600, 900, 1200, 1500, 1800, 2100, 2400),
        seed=12,
        description="OLMoE, 3 layers, hidden 128, 2400 steps",
    ),
    "glm4_moe_v2_long": TrainRecipe(
        family="glm4_moe",
        arch=_arch("glm4_moe", 128, 3),
        steps=2000,
        save_steps=(250, 500, 750, 1000, 1250, 1500, 1750, 2000),
        seed=22,
        description="GLM4-MoE (2 shared experts, QK-norm), 3 layers, hidden 128, 2000 steps",
    ),
    # Qwen2-MoE (a sigmoid-gated shared expert, no QK-norm) learns multiple choice much
    # later (measured at 300 steps: 27%, chance 25%; at 600: 58%), hence GLM4-MoE above
    # in the default config.
    "qwen2_moe_v1": TrainRecipe(
        family="qwen2_moe",
        arch=_arch("qwen2_moe", 128, 3),
        steps=300,
        save_steps=(150, 300),
        seed=21,
        description="Qwen2-MoE (shared expert), 3 layers, hidden 128, 300 steps",
    ),
    "qwen2_moe_v2": TrainRecipe(
        family="qwen2_moe",
        arch=_arch("qwen2_moe", 128, 3),
        steps=600,
        save_steps=(150, 300, 450, 600),
        seed=22,
        description="Qwen2-MoE (shared expert), 3 layers, hidden 128, 600 steps",
    ),
    "olmoe_smoke": TrainRecipe(
        family="olmoe",
        arch=_arch("olmoe", 32, 1),
        steps=20,
        save_steps=(10, 20),
        batch_size=16,
        seed=1,
        description="OLMoE, 1 layer, hidden 32, 20 steps: a smoke test, learns nothing",
    ),
}


def trained_recipe(name: str) -> TrainRecipe:
    """The trained recipe ``name``.

    Raises
    ------
    MoemuiError
        When the recipe is unknown; the message lists the known ones.
    """
    try:
        return TRAINED_RECIPES[name]
    except KeyError:
        known = ", ".join(sorted(TRAINED_RECIPES))
        raise MoemuiError(f"unknown trained recipe {name!r}; known recipes: {known}") from None


def recipe_spec(name: str) -> str:
    """A recipe's full definition as canonical JSON (a workflow param: editing a recipe
    re-trains it, and only it)."""
    return json.dumps(asdict(trained_recipe(name)), sort_keys=True)


def trained_config(recipe: TrainRecipe, max_positions: int = TRAINED_CONTEXT) -> PretrainedConfig:
    """The transformers config of a trained recipe's architecture."""
    arch = dict(recipe.arch)
    return tiny_config(
        arch.pop("model_type"), **_TRAINED, max_position_embeddings=max_positions, **arch
    )


# Building a builtin recipe


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
    from moemui.tokenizer import build_tokenizer

    out = Path(out)
    config = recipe_config(recipe)
    model = init_model(config, seed)
    tokenizer = build_tokenizer(model_max_length=config.max_position_embeddings)
    model.generation_config = generation_config()
    with staged_directory(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("built %s (seed %d, %.2f M parameters) in %s", recipe, seed, n_params / 1e6, out)
    return out
