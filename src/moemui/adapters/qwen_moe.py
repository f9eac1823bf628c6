"""Qwen2-MoE (one shared expert with a sigmoid gate) and Qwen3-MoE (routed only)."""

from __future__ import annotations

from moemui.adapters.base import FusedExpertsAdapter


class Qwen2MoeAdapter(FusedExpertsAdapter):
    family = "qwen2_moe"
    architectures = ("Qwen2MoeForCausalLM",)
    shared_attr = "shared_expert"
    shared_gate_attr = "shared_expert_gate"


class Qwen3MoeAdapter(FusedExpertsAdapter):
    family = "qwen3_moe"
    architectures = ("Qwen3MoeForCausalLM",)
