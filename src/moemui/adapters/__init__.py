"""Family adapters behind a registry keyed by the Hugging Face architecture name.

The MoE families are discovered from transformers itself
(:func:`moemui.adapters.discovery.moe_architectures`): every causal-LM class whose
modeling module defines fused experts or an MoE block. A discovered family with the
common anatomy (a fused experts module called with the routing decision, shared MLPs
found by name) is served by :class:`GenericMoeAdapter` without being listed here;
``REGISTRY`` names the families with their own adapter (the original five, kept as
they were, the quirks of anatomy of :mod:`moemui.adapters.families`, and the families
with a forward of their own, a module each), and ``UNSUPPORTED`` the families that
cannot be captured, with the reason. :mod:`moemui.adapters.base` states the contract
between the capture and the adapters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from moemui.adapters.base import FusedExpertsAdapter, Geometry, MoeLayer
from moemui.adapters.dbrx import DbrxAdapter
from moemui.adapters.deepseek import DeepseekV2Adapter, DeepseekV3Adapter
from moemui.adapters.doge import DogeAdapter
from moemui.adapters.families import (
    BlockScaledAdapter,
    Cohere2MoeAdapter,
    ErgoAdapter,
    GraniteMoeAdapter,
    LoopedLayersAdapter,
    ZayaAdapter,
)
from moemui.adapters.generic import GenericMoeAdapter, is_fused_experts
from moemui.adapters.inkling import InklingAdapter
from moemui.adapters.jetmoe import JetMoeAdapter
from moemui.adapters.llama4 import Llama4Adapter
from moemui.adapters.longcat_flash import LongcatFlashAdapter
from moemui.adapters.loop import LoopExpertsAdapter
from moemui.adapters.olmoe import OlmoeAdapter
from moemui.adapters.qwen_moe import Qwen2MoeAdapter, Qwen3MoeAdapter
from moemui.errors import MoemuiError

if TYPE_CHECKING:
    from collections.abc import Callable

    from torch import nn

_ADAPTERS: tuple[type[FusedExpertsAdapter], ...] = (
    Qwen2MoeAdapter,
    Qwen3MoeAdapter,
    OlmoeAdapter,
    DeepseekV2Adapter,
    DeepseekV3Adapter,
)

#: Architecture -> a callable returning the adapter (a class, or a partial of one).
REGISTRY: dict[str, Callable[[], FusedExpertsAdapter]] = {
    arch: cls for cls in _ADAPTERS for arch in cls.architectures
}
for _arch, _family, _cls in (
    ("BeamForCausalLM", "beam", BlockScaledAdapter),
    ("LagunaForCausalLM", "laguna", BlockScaledAdapter),
    ("MiniMaxM3VLForCausalLM", "minimax_m3_vl_text", BlockScaledAdapter),
    ("Cohere2MoeForCausalLM", "cohere2_moe", Cohere2MoeAdapter),
    ("GraniteMoeForCausalLM", "granitemoe", GraniteMoeAdapter),
    ("GraniteMoeSWAForCausalLM", "granitemoe_swa", GraniteMoeAdapter),
    ("GraniteMoeSharedForCausalLM", "granitemoeshared", GraniteMoeAdapter),
    ("GraniteMoeHybridForCausalLM", "granitemoehybrid", GraniteMoeAdapter),
    ("ZayaForCausalLM", "zaya", ZayaAdapter),
    ("LongcatFlashForCausalLM", "longcat_flash", LongcatFlashAdapter),
    ("DbrxForCausalLM", "dbrx", DbrxAdapter),
    ("Llama4ForCausalLM", "llama4_text", Llama4Adapter),
    ("JetMoeForCausalLM", "jetmoe", JetMoeAdapter),
    ("InklingForCausalLM", "inkling_text", InklingAdapter),
    ("DogeForCausalLM", "doge", DogeAdapter),
    ("ErgoForCausalLM", "ergo", ErgoAdapter),
    ("Inkling2LoopForCausalLM", "inkling2_loop_text", LoopedLayersAdapter),
):
    REGISTRY[_arch] = lambda c=_cls, f=_family: c(f)

#: Discovered MoE architectures that cannot be captured, and why. Loading or
#: capturing one fails with this reason.
UNSUPPORTED: dict[str, str] = {}


def adapter_for(model: nn.Module, name: str = "model") -> FusedExpertsAdapter:
    """The adapter for ``model``'s architecture.

    A registered architecture gets its own adapter; any other model holding fused
    experts modules gets :class:`GenericMoeAdapter`, named by its config's model type.

    Raises
    ------
    MoemuiError
        Naming the model and its architecture when it has no sparse MoE layer the
        capture knows, or when its family is listed as unsupported (with the reason).
    """
    arch = type(model).__name__
    if arch in UNSUPPORTED:
        raise MoemuiError(f"{name}: architecture {arch} is not supported: {UNSUPPORTED[arch]}")
    if arch in REGISTRY:
        adapter = REGISTRY[arch]()
        if isinstance(adapter, LoopExpertsAdapter) and any(
            is_fused_experts(module) for module in model.modules()
        ):  # a newer transformers made the family's experts fused
            return adapter.fused_layout(adapter.family)
        return adapter
    if any(is_fused_experts(module) for module in model.modules()):
        config = getattr(model, "config", None)
        family = getattr(config, "model_type", "") or arch
        return GenericMoeAdapter(family)
    known = ", ".join(sorted(REGISTRY))
    raise MoemuiError(
        f"{name}: architecture {arch} has no MoE adapter (no sparse MoE layer known); "
        f"the families with an own adapter: {known}; any other needs fused experts modules"
    )


__all__ = [
    "REGISTRY",
    "UNSUPPORTED",
    "FusedExpertsAdapter",
    "GenericMoeAdapter",
    "Geometry",
    "MoeLayer",
    "adapter_for",
]
