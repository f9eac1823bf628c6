"""DeepSeek-V2 and V3: shared experts in one MLP of width n_shared * N, dense first layers.

The router's weights (softmax or sigmoid, group limits, renormalisation, the routed
scaling factor) reach the experts module as its inputs, so nothing else is needed.
"""

from __future__ import annotations

from moemui.adapters.base import FusedExpertsAdapter


class DeepseekV2Adapter(FusedExpertsAdapter):
    family = "deepseek_v2"
    architectures = ("DeepseekV2ForCausalLM",)
    shared_attr = "shared_experts"


class DeepseekV3Adapter(FusedExpertsAdapter):
    family = "deepseek_v3"
    architectures = ("DeepseekV3ForCausalLM",)
    shared_attr = "shared_experts"
