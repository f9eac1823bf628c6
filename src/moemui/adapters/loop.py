"""Experts modules run by a per-expert loop (not ``@use_experts_implementation``).

Their family modules (:mod:`moemui.adapters.longcat_flash`, :mod:`moemui.adapters.dbrx`)
say where each expert's gate, up and down weights are; the forward here reads the
experts module's inputs (hidden states, top-k index, top-k weights) and computes h of
the selected pairs again from those weights, for scoring only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from moemui.adapters.base import Read, recompute_pairs
from moemui.adapters.generic import GenericMoeAdapter

if TYPE_CHECKING:
    import torch


class LoopExpertsAdapter(GenericMoeAdapter):
    """Subclasses give :meth:`gate_up_down` and :meth:`num_routed` (and
    :meth:`activation` where it is not ``experts.act_fn``)."""

    fused_experts = False
    #: The adapter for the family where a transformers release has made its experts a
    #: fused experts module (:func:`moemui.adapters.adapter_for` takes it then).
    fused_layout: type[GenericMoeAdapter] = GenericMoeAdapter

    def check_experts(self, layer, name):
        return None

    def gate_up_down(self, experts, e: int):
        """(gate [N, H], up [N, H], down [H, N]) of routed expert ``e``."""
        raise NotImplementedError

    def num_routed(self, experts) -> int:
        raise NotImplementedError

    def activation(self, experts):
        """The experts' activation function."""
        return experts.act_fn

    def expert_shape(self, experts):
        _, _, down = self.gate_up_down(experts, 0)
        return self.num_routed(experts), int(down.shape[1])

    def down_weights(self, experts) -> torch.Tensor:
        import torch

        return torch.stack(
            [self.gate_up_down(experts, e)[2] for e in range(self.num_routed(experts))]
        )

    def reads(self, layer):
        return {"args": Read(layer.experts, "args")}

    def record(self, layer, values, recorder):
        import torch
        import torch.nn.functional as F

        experts = layer.experts

        def gate_up(e, x):
            w_gate, w_up, _ = self.gate_up_down(experts, e)
            return F.linear(x, w_gate), F.linear(x, w_up)

        x, index, weights = values["args"][:3]
        x = x.reshape(-1, x.shape[-1])
        flat = index.reshape(-1)
        n_routed = self.num_routed(experts)
        pairs = torch.nonzero(flat < n_routed).squeeze(1)  # identity experts: no neuron
        expert_g, order = torch.sort(flat[pairs], stable=True)
        pairs = pairs[order]
        token_g = pairs // index.shape[-1]
        h, act = recompute_pairs(x[token_g], expert_g, gate_up, self.activation(experts))
        recorder.routed(token_g, expert_g, weights.reshape(-1)[pairs], h, act)
