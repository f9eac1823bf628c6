"""DBRX: experts ``mlp.w1``/``v1``/``w2``, each ``[E*N, H]``, run by a per-expert loop;
h = act(x w1[e]^T) * (x v1[e]^T), y = h @ w2[e]."""

from __future__ import annotations

from typing import TYPE_CHECKING

from moemui.adapters.loop import LoopExpertsAdapter

if TYPE_CHECKING:
    import torch
    from torch import nn


class DbrxAdapter(LoopExpertsAdapter):
    def is_experts(self, module):
        return hasattr(module, "mlp") and hasattr(module.mlp, "w2")

    def num_routed(self, experts):
        return int(experts.num_experts)

    def gate_up_down(self, experts, e):
        shape = (-1, experts.ffn_hidden_size, experts.hidden_size)
        mlp = experts.mlp
        w1, v1, w2 = (w.view(shape)[e] for w in (mlp.w1, mlp.v1, mlp.w2))
        return w1, v1, w2.T  # y = h @ w2[e]: column j of the down projection is w2[e][j]

    def activation(self, experts):
        return experts.mlp.activation_fn

    def unembedding(self, model: nn.Module) -> torch.Tensor:
        return model.lm_head.weight
