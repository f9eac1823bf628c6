"""OLMoE: routed experts only, softmax top-k."""

from __future__ import annotations

from moemui.adapters.base import FusedExpertsAdapter


class OlmoeAdapter(FusedExpertsAdapter):
    family = "olmoe"
    architectures = ("OlmoeForCausalLM",)
