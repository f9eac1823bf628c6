"""Doge's CDMoE: a dense GLU MLP (the shared expert, N = 1: one shared expert per
neuron) plus single-neuron retrieval experts picked by product keys.

Routed expert e is one neuron: h = act(<down_embed[e], x>) (no GLU: ``gate`` =
``glu``), d = ``up_embed[e]``, g = its routing weight. The forward reads the block's
input and the router logits it returns, and computes the picks (the same top-k of the
same logits as ``DogeCDMoE.forward``) and h again for scoring; the dense MLP is read by
the capture like any shared MLP.
"""

from __future__ import annotations

from moemui.adapters.base import MoeLayer, Read
from moemui.adapters.generic import GenericMoeAdapter


class DogeAdapter(GenericMoeAdapter):
    glu = False
    fused_experts = False

    def moe_layers(self, model):
        return [
            MoeLayer(index, layer.mlp, shared=layer.mlp, block=layer.mlp)
            for index, layer in enumerate(self.decoder_layers(model))
            if hasattr(getattr(layer, "mlp", None), "up_embed")
        ]

    def check_experts(self, layer, name):
        return None

    def expert_shape(self, experts):
        return int(experts.num_experts), 1

    def down_weights(self, experts):
        return experts.up_embed.weight.unsqueeze(-1)  # [E, H, 1]

    def reads(self, layer):
        return {"args": Read(layer.block), "output": Read(layer.block, "output")}

    def record(self, layer, values, recorder):
        import torch
        import torch.nn.functional as F

        block = layer.block
        hidden_states, router_logits = values["args"][0], values["output"][1]
        hidden_states = hidden_states.reshape(-1, hidden_states.shape[-1])
        (scores_x, scores_y), (indices_x, indices_y) = router_logits.topk(block.num_keys, dim=-1)
        all_scores = scores_x.unsqueeze(-1) + scores_y.unsqueeze(-2)
        all_indices = indices_x.unsqueeze(-1) * block.num_keys + indices_y.unsqueeze(-2)
        all_scores = all_scores.view(*all_scores.shape[:-2], -1)
        all_indices = all_indices.view(*all_indices.shape[:-2], -1)
        scores, position_indices = all_scores.topk(block.top_k, dim=-1)
        indices = all_indices.gather(-1, position_indices)
        routing_weights = F.softmax(scores, dim=-1)
        if block.norm_topk_prob:
            routing_weights /= routing_weights.sum(dim=-1, keepdim=True)
        down_embed = block.down_embed(indices)
        act = block.act_fn(torch.matmul(down_embed, hidden_states.unsqueeze(-1)).squeeze(-1))
        expert, order = torch.sort(indices.reshape(-1), stable=True)
        token = order // indices.shape[-1]
        h = act.reshape(-1, 1)[order]
        recorder.routed(token, expert, routing_weights.reshape(-1)[order], h, h)
