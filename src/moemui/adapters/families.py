"""Family quirks of anatomy on top of :class:`GenericMoeAdapter`: only what structure
cannot tell, as data (no forward of their own).

- a block-level routed scaling factor applied after the experts (Beam, Laguna,
  MiniMax-M3): part of g;
- Cohere2-MoE averages routed and shared outputs (x 0.5 each) when configured so;
- GraniteMoE families scale the MoE output (and the shared MLP's) by
  ``residual_multiplier`` before adding it to the residual stream: part of g;
- Zaya encodes a skip pick as (expert 0, weight 0): no neuron of expert 0 is routed.
"""

from __future__ import annotations

from moemui.adapters.base import MoeLayer
from moemui.adapters.generic import GenericMoeAdapter


class BlockScaledAdapter(GenericMoeAdapter):
    """The block multiplies the routed experts' output by its ``routed_scaling_factor``."""

    def scales(self, block, shared):
        return float(block.routed_scaling_factor), 1.0


class Cohere2MoeAdapter(GenericMoeAdapter):
    def scales(self, block, shared):
        average = shared is not None and block.shared_expert_combination_strategy == "average"
        return (0.5, 0.5) if average else (1.0, 1.0)


class GraniteMoeAdapter(GenericMoeAdapter):
    """The decoder layer scales the MoE block's output by ``residual_multiplier``."""

    def moe_layers(self, model):
        multiplier = float(getattr(model.config, "residual_multiplier", 1.0))
        scaled = {
            "routed_scale": multiplier,
            "shared_scale": multiplier,
            "outside_scale": multiplier,
        }
        return [MoeLayer(**{**vars(layer), **scaled}) for layer in super().moe_layers(model)]


class ZayaAdapter(GenericMoeAdapter):
    skip_zero_weight = True
