"""Family adapters behind a registry keyed by the Hugging Face architecture name.

Adding a family is one small module: subclass :class:`FusedExpertsAdapter`, set its
``family``, ``architectures`` and (if any) shared-expert attributes, and list the
class in ``_ADAPTERS`` below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from moemui.adapters.base import FusedExpertsAdapter, Geometry, MoeLayer
from moemui.adapters.deepseek import DeepseekV2Adapter, DeepseekV3Adapter
from moemui.adapters.olmoe import OlmoeAdapter
from moemui.adapters.qwen_moe import Qwen2MoeAdapter, Qwen3MoeAdapter
from moemui.errors import MoemuiError

if TYPE_CHECKING:
    from torch import nn

_ADAPTERS: tuple[type[FusedExpertsAdapter], ...] = (
    Qwen2MoeAdapter,
    Qwen3MoeAdapter,
    OlmoeAdapter,
    DeepseekV2Adapter,
    DeepseekV3Adapter,
)

REGISTRY: dict[str, type[FusedExpertsAdapter]] = {
    arch: cls for cls in _ADAPTERS for arch in cls.architectures
}


def adapter_for(model: nn.Module, name: str = "model") -> FusedExpertsAdapter:
    """The adapter for ``model``'s architecture.

    Raises
    ------
    MoemuiError
        Naming the model and its architecture when no adapter is registered for it.
    """
    arch = type(model).__name__
    try:
        return REGISTRY[arch]()
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise MoemuiError(
            f"{name}: architecture {arch} has no MoE adapter (no sparse MoE layer known); "
            f"supported architectures: {known}"
        ) from None


__all__ = ["REGISTRY", "FusedExpertsAdapter", "Geometry", "MoeLayer", "adapter_for"]
