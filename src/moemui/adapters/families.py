"""Family quirks of anatomy on top of :class:`GenericMoeAdapter`: only what structure
cannot tell, as data (no forward of their own).

- a block-level routed scaling factor applied after the experts (Beam, Laguna,
  MiniMax-M3): part of g;
- Cohere2-MoE averages routed and shared outputs (x 0.5 each) when configured so;
- GraniteMoE families scale the MoE output (and the shared MLP's) by
  ``residual_multiplier`` before adding it to the residual stream: part of g;
- Zaya encodes a skip pick as (expert 0, weight 0): no neuron of expert 0 is routed;
- Ergo normalises each expert's output (routed: an RMSNorm with a weight per expert;
  shared: an RMSNorm of its own) before weighting and summing them;
- Inkling2-Loop runs a range of decoder layers several times per token: refused where
  a MoE layer is looped.
"""

from __future__ import annotations

import dataclasses

from moemui.adapters.base import MoeLayer
from moemui.adapters.generic import GenericMoeAdapter
from moemui.errors import MoemuiError


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


class ErgoAdapter(GenericMoeAdapter):
    """Ergo (transformers 5.25): each routed pair's expert output goes through
    ``experts.post_expert_norm`` (an RMSNorm with a weight per expert) before g, and the
    shared expert ends with an RMSNorm (``norm``). The output is still a sum over
    neurons, h_i * 1/rms * (d_i * w): the capture scales h by the pair's 1/rms and
    weights what each neuron writes by its expert's norm weight
    (:attr:`MoeLayer.expert_norm`, :attr:`SharedMlp.norm`)."""

    def moe_layers(self, model):
        return [
            dataclasses.replace(layer, expert_norm=layer.experts.post_expert_norm)
            for layer in super().moe_layers(model)
        ]

    def shared_parts(self, layer, name="model"):
        parts = super().shared_parts(layer, name)
        if parts is None:
            return None
        return dataclasses.replace(parts, norm=layer.shared.norm)


class LoopedLayersAdapter(GenericMoeAdapter):
    """Inkling2-Loop (transformers 5.25): decoder layers ``loop_layer_index_start`` to
    ``loop_layer_index_end - 1`` run ``loop_num_passes`` times per token. A looped MoE
    layer's neurons act once per pass, which the store's one score per (layer, neuron,
    position) cannot hold: such a model is refused, naming the layers; one whose MoE
    layers are not looped is captured as any other."""

    def moe_layers(self, model):
        layers = super().moe_layers(model)
        config = model.config.get_text_config()
        start = getattr(config, "loop_layer_index_start", 0)
        end = getattr(config, "loop_layer_index_end", 0)
        passes = getattr(config, "loop_num_passes", 1)
        looped = [layer.index for layer in layers if start <= layer.index < end]
        if passes > 1 and looped:
            raise MoemuiError(
                f"{type(model).__name__}: decoder layers {start}-{end - 1} run {passes} "
                f"times per token (loop_num_passes), MoE layers {looped} among them; a "
                "looped layer's neurons act once per pass, which the store cannot hold "
                "(not supported)"
            )
        return layers
