"""JetMoE: experts are two ``JetMoeParallelExperts`` (``input_linear`` ``[E, 2N, H]``,
``output_linear`` ``[E, H, N]``) inside ``mlp``, plus a block bias.

Nothing is computed again: the forward reads the router's decision (tokens sorted by
expert, their gates), the activation's output (the ``gate`` h) and
``output_linear``'s input (h). The attention experts (mixture of attention heads) are
not MLP neurons and are not counted.
"""

from __future__ import annotations

from moemui.adapters.base import MoeLayer, Read
from moemui.adapters.generic import GenericMoeAdapter


class JetMoeAdapter(GenericMoeAdapter):
    family = "jetmoe"
    fused_experts = False

    def moe_layers(self, model):
        return [
            MoeLayer(index, layer.mlp.output_linear, block=layer.mlp)
            for index, layer in enumerate(self.decoder_layers(model))
            if hasattr(getattr(layer, "mlp", None), "output_linear")
        ]

    def check_experts(self, layer, name):
        return None

    def expert_shape(self, experts):
        n_routed, _, n_neurons = experts.weight.shape
        return int(n_routed), int(n_neurons)

    def down_weights(self, experts):
        return experts.weight

    def reads(self, layer):
        block = layer.block
        return {
            "router": Read(block.router, "output"),
            "act": Read(block.activation, "output"),
            "down": Read(block.output_linear),
        }

    def record(self, layer, values, recorder):
        import torch

        _, token, gates, _, _ = values["router"]
        h, sizes = values["down"][:2]
        expert = torch.repeat_interleave(
            torch.arange(len(sizes), device=h.device),
            torch.as_tensor(sizes, device=h.device),
        )
        recorder.routed(token, expert, gates, h, values["act"])
