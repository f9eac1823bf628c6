"""Inkling: the shared experts are m separate experts (``[m, N, H]`` weights), each
weighted by the router's own "gamma" for it, applied to h before the down projection.

Each is one shared expert of g = its gamma: the forward reads the shared module's
inputs and computes h again (three ``bmm``) for scoring. The routed experts are a
fused experts module, read by the capture.
"""

from __future__ import annotations

from moemui.adapters.base import Read
from moemui.adapters.generic import GenericMoeAdapter


class InklingAdapter(GenericMoeAdapter):
    def shared_parts(self, layer, name="model"):
        return None

    def shared_width(self, layer, name="model"):
        m, _, n = layer.shared.down_proj.shape  # [m, H, N]
        return int(m * n)

    def reads(self, layer):
        return {"args": Read(layer.shared)}

    def record(self, layer, values, recorder):
        import torch

        module = layer.shared
        hidden_states, gammas = values["args"][:2]
        m = module.n_shared_experts
        x = hidden_states.reshape(1, -1, hidden_states.shape[-1]).expand(m, -1, -1)
        gammas = gammas.reshape(-1, m, 1).transpose(0, 1)
        act = module.act_fn(torch.bmm(x, module.gate_proj.transpose(1, 2)))
        h = act * torch.bmm(x, module.up_proj.transpose(1, 2))
        _, t, n = h.shape
        recorder.shared(
            h.transpose(0, 1).reshape(t, m * n),
            act.transpose(0, 1).reshape(t, m * n),
            gammas[..., 0].transpose(0, 1),  # [T, m]
            module.down_proj.permute(1, 0, 2).reshape(module.down_proj.shape[1], m * n),
        )
