"""Llama-4 text: the routing score multiplies the expert INPUT.

Every expert runs on every token (``[E * T, H]``, unselected tokens scaled to 0), so
h = f(score * x) and the effective output weight is 1: g = 1 for the selected (token,
expert) pairs, whose score is > 0. The forward reads the router's scores
(``feed_forward.router``'s output) and the experts' scaled inputs, and computes h of
the selected pairs again for scoring.
"""

from __future__ import annotations

from moemui.adapters.base import Read, recompute_pairs
from moemui.adapters.generic import GenericMoeAdapter


class Llama4Adapter(GenericMoeAdapter):
    family = "llama4_text"
    fused_experts = False

    def check_experts(self, layer, name):
        return None

    def expert_shape(self, experts):
        n_routed, n_neurons, _ = experts.down_proj.shape  # [E, N, H]
        return int(n_routed), int(n_neurons)

    def down_transposed(self, experts):
        return True

    def reads(self, layer):
        return {"router": Read(layer.block.router, "output"), "experts": Read(layer.experts)}

    def record(self, layer, values, recorder):
        import torch

        experts = layer.experts

        def gate_up(e, x):
            return (x @ experts.gate_up_proj[e]).chunk(2, dim=-1)

        scores = values["router"][0]  # [T, E], 0 where not selected
        hidden = values["experts"][0]
        hidden = hidden.view(experts.gate_up_proj.shape[0], -1, experts.hidden_size)
        expert, token = torch.nonzero(scores.transpose(0, 1) > 0, as_tuple=True)
        h, act = recompute_pairs(hidden[expert, token], expert, gate_up, experts.act_fn)
        ones = torch.ones(token.shape, dtype=hidden.dtype, device=hidden.device)
        recorder.routed(token, expert, ones, h, act)
