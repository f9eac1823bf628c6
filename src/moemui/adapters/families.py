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


class Llama4Adapter(GenericMoeAdapter):
    """Llama-4 text: the routing score multiplies the expert INPUT.

    Every expert runs on every token (``[E * T, H]``, unselected tokens scaled to 0),
    so h = f(score * x) and the effective output weight is 1: g = 1 for the
    selected (token, expert) pairs, whose score is > 0. The router's scores are read
    by a hook on ``feed_forward.router``; the experts' forward is mirrored (two
    ``bmm``), keeping h.
    """

    def __init__(self, family: str = "llama4_text"):
        super().__init__(family)
        self.router_scores: dict[int, torch.Tensor] = {}

    def check_experts(self, layer, name):
        return None

    def expert_shape(self, experts):
        n_routed, n_neurons, _ = experts.down_proj.shape  # [E, N, H]
        return int(n_routed), int(n_neurons)

    def down_transposed(self, experts):
        return True

    def install(self, layer, capture, slot):
        def keep(module, args, out):
            self.router_scores[slot] = out[0]

        return [layer.block.router.register_forward_hook(keep)]

    def experts_forward(self, layer):
        return _llama4_experts_forward


def _llama4_experts_forward(self, capture, slot, hidden_states):
    """``Llama4TextExperts.forward``, keeping h for the selected pairs."""
    import torch

    hidden_states = hidden_states.view(self.gate_up_proj.shape[0], -1, self.hidden_size)
    gate_up = torch.bmm(hidden_states, self.gate_up_proj)
    gate, up = gate_up.chunk(2, dim=-1)
    act = self.act_fn(gate)
    h = up * act
    next_states = torch.bmm(h, self.down_proj).view(-1, self.hidden_size)
    scores = capture.adapter.router_scores.pop(slot)  # [T, E], 0 where not selected
    expert, token = torch.nonzero(scores.transpose(0, 1) > 0, as_tuple=True)  # expert-sorted
    ones = torch.ones(token.shape, dtype=h.dtype, device=h.device)
    capture._score_routed(self, slot, token, expert, ones, h[expert, token], act[expert, token])
    return next_states


class JetMoeAdapter(GenericMoeAdapter):
    """JetMoE: experts are two ``JetMoeParallelExperts`` (``input_linear`` ``[E, 2N, H]``,
    ``output_linear`` ``[E, H, N]``) inside ``mlp``, plus a block bias.

    Nothing is patched: hooks read the router's decision (tokens sorted by expert,
    their gates), the activation's output and ``output_linear``'s input (h). The
    attention experts (mixture of attention heads) are not MLP neurons and are not
    counted.
    """

    patches_experts = False

    def __init__(self, family: str = "jetmoe"):
        super().__init__(family)
        self.routing: dict[int, tuple] = {}
        self.acts: dict[int, torch.Tensor] = {}

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

    def install(self, layer, capture, slot):
        import torch

        block = layer.block

        def keep_routing(module, args, out):
            _, batch_index, batch_gates, expert_size, _ = out
            self.routing[slot] = (batch_index, batch_gates, expert_size)

        def keep_act(module, args, out):
            self.acts[slot] = out

        def score(module, args):
            h, sizes = args
            token, gates, _ = self.routing.pop(slot)
            expert = torch.repeat_interleave(
                torch.arange(len(sizes), device=h.device),
                torch.as_tensor(sizes, device=h.device),
            )
            capture._score_routed(module, slot, token, expert, gates, h, self.acts.pop(slot))

        return [
            block.router.register_forward_hook(keep_routing),
            block.activation.register_forward_hook(keep_act),
            block.output_linear.register_forward_pre_hook(score),
        ]


class _Restore:
    """A handle that gives a patched module its class's forward back."""

    def __init__(self, module):
        self.module = module

    def remove(self):
        self.module.__dict__.pop("forward", None)


class InklingAdapter(GenericMoeAdapter):
    """Inkling: the shared experts are m separate experts (``[m, N, H]`` weights), each
    weighted by the router's own "gamma" for it, applied to h before the down
    projection. Each is one shared expert of g = its gamma; the module's forward is
    mirrored (three ``bmm``), keeping h."""

    def shared_parts(self, layer, name="model"):
        return None

    def shared_width(self, layer, name="model"):
        m, _, n = layer.shared.down_proj.shape  # [m, H, N]
        return int(m * n)

    def install(self, layer, capture, slot):
        import types

        shared = layer.shared

        def forward(module, hidden_states, gammas):
            return _inkling_shared_forward(module, capture, slot, hidden_states, gammas)

        shared.forward = types.MethodType(forward, shared)
        return [_Restore(shared)]


def _inkling_shared_forward(self, capture, slot, hidden_states, gammas):
    """``InklingSharedExperts.forward``, keeping h = act(gate) * up and the gammas."""
    import torch

    input_shape = hidden_states.shape
    hidden_states = hidden_states.reshape(1, -1, input_shape[-1]).expand(
        self.n_shared_experts, -1, -1
    )
    gammas = gammas.reshape(-1, self.n_shared_experts, 1).transpose(0, 1)
    gate = torch.bmm(hidden_states, self.gate_proj.transpose(1, 2))
    up = torch.bmm(hidden_states, self.up_proj.transpose(1, 2))
    act = self.act_fn(gate)
    h = act * up
    activated = h * gammas
    down = torch.bmm(activated, self.down_proj.transpose(1, 2))
    out = down.float().sum(dim=0).to(hidden_states.dtype)
    m, t, n = h.shape
    capture.score_shared_experts(
        slot,
        h.transpose(0, 1).reshape(t, m * n),
        act.transpose(0, 1).reshape(t, m * n),
        gammas[..., 0].transpose(0, 1),  # [T, m]
        self.down_proj.permute(1, 0, 2).reshape(self.down_proj.shape[1], m * n),
    )
    return out.view(input_shape)


class DogeAdapter(GenericMoeAdapter):
    """Doge's CDMoE: a dense GLU MLP (the shared expert, N = 1: one shared expert per
    neuron) plus single-neuron retrieval experts picked by product keys.

    Routed expert e is one neuron: h = act(<down_embed[e], x>) (no GLU: ``gate`` =
    ``glu``), d = ``up_embed[e]``, g = its routing weight. The block's forward is
    mirrored to keep h; the dense MLP is read by hooks like any shared MLP.
    """

    glu = False

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

    def experts_forward(self, layer):
        return _doge_forward


def _doge_forward(self, capture, slot, hidden_states, **kwargs):
    """``DogeCDMoE.forward``, keeping each retrieval expert's h."""
    import torch
    import torch.nn.functional as F

    bsz, seq_len, _ = hidden_states.shape
    router_logits = self.router_gate(hidden_states).view(2, bsz * seq_len, -1)
    (scores_x, scores_y), (indices_x, indices_y) = router_logits.topk(self.num_keys, dim=-1)
    all_scores = scores_x.unsqueeze(-1) + scores_y.unsqueeze(-2)
    all_indices = indices_x.unsqueeze(-1) * self.num_keys + indices_y.unsqueeze(-2)
    all_scores = all_scores.view(*all_scores.shape[:-2], -1)
    all_indices = all_indices.view(*all_indices.shape[:-2], -1)
    scores, position_indices = all_scores.topk(self.top_k, dim=-1)
    indices = all_indices.gather(-1, position_indices)
    routing_weights = F.softmax(scores, dim=-1)
    if self.norm_topk_prob:
        routing_weights /= routing_weights.sum(dim=-1, keepdim=True)
    down_embed = self.down_embed(indices)
    up_embed = self.up_embed(indices)
    experts_weights = torch.matmul(down_embed, hidden_states.view(bsz * seq_len, -1, 1)).view(
        bsz * seq_len, -1
    )
    act = self.act_fn(experts_weights)
    experts_weights = act * routing_weights
    experts_states = torch.matmul(experts_weights.view(bsz * seq_len, 1, -1), up_embed).view(
        bsz, seq_len, -1
    )
    hidden_states = self.down_proj(
        self.act_fn(self.gate_proj(hidden_states)) * self.up_proj(hidden_states)
    )
    hidden_states = hidden_states + experts_states
    flat = indices.reshape(-1)
    expert, order = torch.sort(flat, stable=True)
    token = order // indices.shape[-1]
    h = act.reshape(-1, 1)[order]
    capture._score_routed(self, slot, token, expert, routing_weights.reshape(-1)[order], h, h)
    return hidden_states, router_logits
