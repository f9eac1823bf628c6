"""Family quirks on top of :class:`GenericMoeAdapter`: only what structure cannot tell.

- a block-level routed scaling factor applied after the experts (Beam, Laguna,
  MiniMax-M3): part of g;
- Cohere2-MoE averages routed and shared outputs (x 0.5 each) when configured so;
- GraniteMoE families scale the MoE output (and the shared MLP's) by
  ``residual_multiplier`` before adding it to the residual stream: part of g;
- Zaya encodes a skip pick as (expert 0, weight 0): no neuron of expert 0 is routed;
- LongCat-Flash's identity "zero experts" (index >= E) and its per-expert loop;
- DBRX's experts, ``mlp.w1``/``v1``/``w2`` each ``[E*N, H]``, run by a per-expert loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from moemui.adapters.base import MoeLayer
from moemui.adapters.generic import GenericMoeAdapter

if TYPE_CHECKING:
    import torch
    from torch import nn


class BlockScaledAdapter(GenericMoeAdapter):
    """The block multiplies the routed experts' output by its ``routed_scaling_factor``."""

    def scales(self, block, shared):
        return float(block.routed_scaling_factor), 1.0


class Cohere2MoeAdapter(GenericMoeAdapter):
    def scales(self, block, shared):
        average = shared is not None and block.shared_expert_combination_strategy == "average"
        return (0.5, 0.5) if average else (1.0, 1.0)


class GraniteMoeAdapter(GenericMoeAdapter):
    def __init__(self, family: str = "", multiplier: float = 1.0):
        super().__init__(family)
        self.multiplier = multiplier

    def scales(self, block, shared):
        return self.multiplier, self.multiplier

    def moe_layers(self, model):
        self.multiplier = float(getattr(model.config, "residual_multiplier", 1.0))
        return [
            MoeLayer(**{**vars(layer), "outside_scale": self.multiplier})
            for layer in super().moe_layers(model)
        ]


class ZayaAdapter(GenericMoeAdapter):
    def moe_layers(self, model):
        return [
            MoeLayer(**{**vars(layer), "skip_zero_weight": True})
            for layer in super().moe_layers(model)
        ]


class _LoopExpertsAdapter(GenericMoeAdapter):
    """Experts modules run by a per-expert loop (not decorated): the capture mirrors it."""

    def check_experts(self, layer, name):
        return None

    def gate_up_down(self, experts, e: int):
        """(gate [N, H], up [N, H], down [H, N]) of routed expert ``e``."""
        raise NotImplementedError

    def num_routed(self, experts) -> int:
        raise NotImplementedError

    def expert_shape(self, experts):
        _, _, down = self.gate_up_down(experts, 0)
        return self.num_routed(experts), int(down.shape[1])

    def down_weights(self, experts) -> torch.Tensor:
        import torch

        return torch.stack(
            [self.gate_up_down(experts, e)[2] for e in range(self.num_routed(experts))]
        )

    def experts_forward(self, layer):
        return _loop_experts_forward


def _loop_experts_forward(self, capture, slot, hidden_states, top_k_index, top_k_weights):
    """The per-expert loop of LongCat-Flash and DBRX, keeping h (identity experts pass x)."""
    import torch
    import torch.nn.functional as F

    adapter = capture.adapter
    shape = hidden_states.shape
    hidden_states = hidden_states.reshape(-1, shape[-1])
    n_routed = adapter.num_routed(self)
    n_total = int(getattr(self, "total_experts", getattr(self, "num_experts", n_routed)))
    final = torch.zeros_like(hidden_states)
    mask = F.one_hot(top_k_index, num_classes=n_total + 1).permute(2, 1, 0)
    hit = torch.greater(mask.sum(dim=(-1, -2)), 0).nonzero()
    tokens, experts, weights, hs, acts = [], [], [], [], []
    for e_t in hit:
        e = int(e_t[0])
        if e >= n_total:
            continue
        pick, token = torch.where(mask[e])
        x = hidden_states[token]
        weight = top_k_weights[token, pick, None]
        if e >= n_routed:  # an identity ("zero") expert: no neuron
            out = x
        else:
            w_gate, w_up, w_down = adapter.gate_up_down(self, e)
            act = self.act_fn(F.linear(x, w_gate)) if hasattr(self, "act_fn") else None
            if act is None:  # DBRX: its GLU module holds the activation
                act = self.mlp.activation_fn(x.matmul(w_gate.T))
                h = act * x.matmul(w_up.T)
                out = h.matmul(w_down.T)
            else:
                h = act * F.linear(x, w_up)
                out = F.linear(h, w_down)
            tokens.append(token)
            experts.append(torch.full_like(token, e))
            weights.append(weight[:, 0])
            hs.append(h)
            acts.append(act)
        final.index_add_(0, token, (out * weight).to(final.dtype))
    if tokens:
        capture._score_routed(
            self,
            slot,
            torch.cat(tokens),
            torch.cat(experts),
            torch.cat(weights),
            torch.cat(hs),
            torch.cat(acts),
        )
    return final.view(shape)


class LongcatFlashAdapter(_LoopExpertsAdapter):
    def num_routed(self, experts):
        return int(experts.num_routed_experts)

    def gate_up_down(self, experts, e):
        n = experts.intermediate_size
        gate_up = experts.gate_up_proj[e]
        return gate_up[:n], gate_up[n:], experts.down_proj[e]


class DbrxAdapter(_LoopExpertsAdapter):
    def is_experts(self, module):
        return hasattr(module, "mlp") and hasattr(module.mlp, "w2")

    def num_routed(self, experts):
        return int(experts.num_experts)

    def gate_up_down(self, experts, e):
        shape = (-1, experts.ffn_hidden_size, experts.hidden_size)
        mlp = experts.mlp
        w1, v1, w2 = (w.view(shape)[e] for w in (mlp.w1, mlp.v1, mlp.w2))
        return w1, v1, w2.T  # y = h @ w2[e]: column j of the down projection is w2[e][j]

    def unembedding(self, model: nn.Module) -> torch.Tensor:
        return model.lm_head.weight
