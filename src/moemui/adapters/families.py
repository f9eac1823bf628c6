"""Family quirks on top of :class:`GenericMoeAdapter`: only what structure cannot tell.

- a block-level routed scaling factor applied after the experts (Beam, Laguna,
  MiniMax-M3): part of g;
- Cohere2-MoE averages routed and shared outputs (x 0.5 each) when configured so;
- GraniteMoE families scale the MoE output (and the shared MLP's) by
  ``residual_multiplier`` before adding it to the residual stream: part of g;
- Zaya encodes a skip pick as (expert 0, weight 0): no neuron of expert 0 is routed;
- LongCat-Flash's identity "zero experts" (index >= E) and its per-expert loop;
- DBRX's experts, ``mlp.w1``/``v1``/``w2`` each ``[E*N, H]``, run by a per-expert loop.

No adapter replaces a forward: each installs hooks (:mod:`moemui.adapters.hooks`), so
the model computes its outputs with its own code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from moemui.adapters.base import MoeLayer
from moemui.adapters.generic import GenericMoeAdapter
from moemui.adapters.hooks import argument_reader, recompute_pairs

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
    """Experts modules run by a per-expert loop (not decorated): a pre-hook reads the
    routing decision and h of the selected pairs is computed again for scoring."""

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

    def install(self, layer, capture, slot):
        import torch
        import torch.nn.functional as F

        experts = layer.experts
        n_routed = self.num_routed(experts)
        arguments = argument_reader(experts)

        def gate_up(e, x):
            w_gate, w_up, _ = self.gate_up_down(experts, e)
            return F.linear(x, w_gate), F.linear(x, w_up)

        def score(module, args, kwargs):
            if not capture.collecting:
                return
            x, index, weights = arguments(args, kwargs)[:3]
            x = x.reshape(-1, x.shape[-1])
            flat = index.reshape(-1)
            pairs = torch.nonzero(flat < n_routed).squeeze(1)  # identity experts: no neuron
            expert_g, order = torch.sort(flat[pairs], stable=True)
            pairs = pairs[order]
            token_g = pairs // index.shape[-1]
            h, act = recompute_pairs(x[token_g], expert_g, gate_up, self.activation(module))
            capture.score_routed(
                module, slot, token_g, expert_g, weights.reshape(-1)[pairs], h, act
            )

        return [experts.register_forward_pre_hook(score, with_kwargs=True)]


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

    def activation(self, experts):
        return experts.mlp.activation_fn

    def unembedding(self, model: nn.Module) -> torch.Tensor:
        return model.lm_head.weight


class Llama4Adapter(GenericMoeAdapter):
    """Llama-4 text: the routing score multiplies the expert INPUT.

    Every expert runs on every token (``[E * T, H]``, unselected tokens scaled to 0),
    so h = f(score * x) and the effective output weight is 1: g = 1 for the
    selected (token, expert) pairs, whose score is > 0. The router's scores are read
    by a hook on ``feed_forward.router``, the experts' scaled inputs by a pre-hook on
    the experts, and h of the selected pairs is computed again for scoring.
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
        import torch

        experts = layer.experts

        def keep(module, args, out):
            self.router_scores[slot] = out[0]

        def gate_up(e, x):
            return (x @ experts.gate_up_proj[e]).chunk(2, dim=-1)

        def score(module, args):
            scores = self.router_scores.pop(slot)  # [T, E], 0 where not selected
            if not capture.collecting:
                return
            hidden = args[0].view(module.gate_up_proj.shape[0], -1, module.hidden_size)
            expert, token = torch.nonzero(scores.transpose(0, 1) > 0, as_tuple=True)
            h, act = recompute_pairs(hidden[expert, token], expert, gate_up, module.act_fn)
            ones = torch.ones(token.shape, dtype=hidden.dtype, device=hidden.device)
            capture.score_routed(module, slot, token, expert, ones, h, act)

        return [
            layer.block.router.register_forward_hook(keep),
            experts.register_forward_pre_hook(score),
        ]


class JetMoeAdapter(GenericMoeAdapter):
    """JetMoE: experts are two ``JetMoeParallelExperts`` (``input_linear`` ``[E, 2N, H]``,
    ``output_linear`` ``[E, H, N]``) inside ``mlp``, plus a block bias.

    Nothing is patched: hooks read the router's decision (tokens sorted by expert,
    their gates), the activation's output and ``output_linear``'s input (h). The
    attention experts (mixture of attention heads) are not MLP neurons and are not
    counted.
    """

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
            capture.score_routed(module, slot, token, expert, gates, h, self.acts.pop(slot))

        return [
            block.router.register_forward_hook(keep_routing),
            block.activation.register_forward_hook(keep_act),
            block.output_linear.register_forward_pre_hook(score),
        ]


class InklingAdapter(GenericMoeAdapter):
    """Inkling: the shared experts are m separate experts (``[m, N, H]`` weights), each
    weighted by the router's own "gamma" for it, applied to h before the down
    projection. Each is one shared expert of g = its gamma; a pre-hook reads the
    module's inputs and h is computed again (three ``bmm``) for scoring."""

    def shared_parts(self, layer, name="model"):
        return None

    def shared_width(self, layer, name="model"):
        m, _, n = layer.shared.down_proj.shape  # [m, H, N]
        return int(m * n)

    def install(self, layer, capture, slot):
        import torch

        arguments = argument_reader(layer.shared)

        def score(module, args, kwargs):
            if not capture.collecting:
                return
            hidden_states, gammas = arguments(args, kwargs)[:2]
            m = module.n_shared_experts
            x = hidden_states.reshape(1, -1, hidden_states.shape[-1]).expand(m, -1, -1)
            gammas = gammas.reshape(-1, m, 1).transpose(0, 1)
            act = module.act_fn(torch.bmm(x, module.gate_proj.transpose(1, 2)))
            h = act * torch.bmm(x, module.up_proj.transpose(1, 2))
            _, t, n = h.shape
            capture.score_shared_experts(
                slot,
                h.transpose(0, 1).reshape(t, m * n),
                act.transpose(0, 1).reshape(t, m * n),
                gammas[..., 0].transpose(0, 1),  # [T, m]
                module.down_proj.permute(1, 0, 2).reshape(module.down_proj.shape[1], m * n),
            )

        return super().install(layer, capture, slot) + [
            layer.shared.register_forward_pre_hook(score, with_kwargs=True)
        ]


class DogeAdapter(GenericMoeAdapter):
    """Doge's CDMoE: a dense GLU MLP (the shared expert, N = 1: one shared expert per
    neuron) plus single-neuron retrieval experts picked by product keys.

    Routed expert e is one neuron: h = act(<down_embed[e], x>) (no GLU: ``gate`` =
    ``glu``), d = ``up_embed[e]``, g = its routing weight. A hook on the block reads its
    input and router logits and computes the picks and h again for scoring; the dense
    MLP is read by hooks like any shared MLP.
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

    def install(self, layer, capture, slot):
        arguments = argument_reader(layer.block)

        def score(module, args, kwargs, output):
            if not capture.collecting:
                return
            hidden_states = arguments(args, kwargs)[0]
            _score_doge(module, capture, slot, hidden_states, output[1])

        return [layer.block.register_forward_hook(score, with_kwargs=True)]


def _score_doge(self, capture, slot, hidden_states, router_logits):
    """Each retrieval expert's h, from the router logits ``DogeCDMoE.forward`` returned
    (its picks are the same top-k of the same logits), computed again for scoring."""
    import torch
    import torch.nn.functional as F

    hidden_states = hidden_states.reshape(-1, hidden_states.shape[-1])
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
    act = self.act_fn(torch.matmul(down_embed, hidden_states.unsqueeze(-1)).squeeze(-1))
    expert, order = torch.sort(indices.reshape(-1), stable=True)
    token = order // indices.shape[-1]
    h = act.reshape(-1, 1)[order]
    capture.score_routed(self, slot, token, expert, routing_weights.reshape(-1)[order], h, h)
