"""How the capture reads h while the model runs its own code.

Nothing here replaces a module's forward: the model computes its outputs with
transformers' own code, whatever the kernels, so the capture cannot change them. Two
ways to read a routed expert's h, chosen per family:

- **Fused experts** (``@use_experts_implementation``, the ``grouped_mm`` or
  ``batched_mm`` implementation): a forward pre-hook keeps the routing decision the
  experts module is called with, and ``_apply_gate`` (or, for non-gated experts, the
  activation module) is wrapped on the instance to pass through, unchanged, the h the
  implementation computes. Its rows are the (token, expert) pairs in the
  implementation's order: sorted by expert (``torch.sort``, the same call on the same
  input) for ``grouped_mm``, flat pair order for ``batched_mm``. Nothing is recomputed.
- **Other experts modules** (per-expert loops, ``bmm`` over all experts): a pre-hook
  reads the module's inputs and :func:`recompute_pairs` computes h of the selected pairs
  again from the expert weights, for scoring only. The model's output is its own; the
  recomputed h agrees with the model's to float rounding (the block rebuild checks it).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

import torch

from moemui.errors import MoemuiError

if TYPE_CHECKING:
    from collections.abc import Callable

    from torch import nn

#: Experts implementations whose rows the fused hooks know how to map to pairs.
HOOKED_IMPLEMENTATIONS = ("grouped_mm", "batched_mm")


class AttributeRestore:
    """A removable handle that drops an attribute set on a module instance (the class's
    own attribute shows through again)."""

    def __init__(self, module: nn.Module, name: str):
        self.module, self.name = module, name

    def remove(self) -> None:
        self.module.__dict__.pop(self.name, None)


def argument_reader(module: nn.Module) -> Callable[[tuple, dict], list]:
    """A function ``(args, kwargs) -> values`` giving the values a module's forward is
    called with, in its signature's order (the signature is read once, here, not on
    every call)."""
    signature = inspect.signature(module.forward)

    def read(args: tuple, kwargs: dict) -> list:
        if not kwargs:
            return list(args)
        return list(signature.bind(*args, **kwargs).arguments.values())

    return read


def gate_activation(experts: nn.Module, proj_out: torch.Tensor) -> torch.Tensor:
    """The ``gate`` variant's h from a fused experts module's gate/up projection output.

    ``act_fn(gate)`` for GLU experts; the family's own gate half where it has one
    (GPT-OSS and MiniMax-M3: ``g * sigmoid(alpha * g)`` with g clamped at the limit);
    ``act_fn(x W_1)`` for non-gated experts, where it equals the ``glu`` h.
    """
    if not experts.has_gate:
        return experts.act_fn(proj_out)
    if experts.is_concatenated:
        gate = proj_out[..., : proj_out.shape[-1] // 2]
    else:
        gate = proj_out[..., ::2]
    alpha = getattr(experts, "alpha", getattr(experts, "swiglu_alpha", None))
    limit = getattr(experts, "limit", getattr(experts, "swiglu_limit", None))
    if alpha is not None and not hasattr(experts, "act_fn"):
        gate = gate.clamp(max=limit)
        return gate * torch.sigmoid(gate * alpha)
    if limit is not None:
        gate = gate.clamp(max=limit)
    act_fn = getattr(experts, "act_fn", torch.nn.functional.silu)  # HY-V4 calls F.silu
    try:
        return act_fn(gate)
    except TypeError:  # a two-argument GLU (Inkling2's softcapped SwiGLU): up = 1
        return act_fn(gate, torch.ones_like(gate))


def hook_fused_experts(capture, experts: nn.Module, slot: int, layer_index: int) -> list:
    """Hooks that hand a fused experts module's pairs and h to ``capture.score_routed``.

    Returns the removable handles. Fails, naming the layer, on an implementation whose
    rows cannot be mapped to (token, expert) pairs.
    """
    impl = getattr(getattr(experts, "config", None), "_experts_implementation", None)
    if impl not in HOOKED_IMPLEMENTATIONS:
        raise MoemuiError(
            f"{capture.name}: capture needs the grouped_mm experts implementation (or "
            f"batched_mm); layer {layer_index} uses {impl!r}"
        )
    pending: list = []
    arguments = argument_reader(experts)

    def keep_routing(module, args, kwargs):
        _, index, weights = arguments(args, kwargs)[:3]
        pending.append((index.shape[-1], index.reshape(-1), weights.reshape(-1)))

    def take(proj_out: torch.Tensor, h: torch.Tensor) -> None:
        if not pending:
            raise MoemuiError(
                f"{capture.name}: layer {layer_index} experts computed h outside a call "
                "with the routing decision"
            )
        top_k, expert_ids, weights = pending.pop()
        if not capture.collecting:
            return
        if h.shape[0] != expert_ids.numel():
            raise MoemuiError(
                f"{capture.name}: layer {layer_index} experts computed {h.shape[0]} rows "
                f"for {expert_ids.numel()} routed pairs"
            )
        if experts.config._experts_implementation == "grouped_mm":
            expert_g, perm = torch.sort(expert_ids)  # the implementation's own call
        else:  # batched_mm: rows in flat pair order
            expert_g, perm = torch.sort(expert_ids, stable=True)
            proj_out, h = proj_out[perm], h[perm]
        act = h
        if experts.has_gate and ("gate" in capture.variants or "act" in capture.variants):
            act = gate_activation(experts, proj_out)
        capture.score_routed(experts, slot, perm // top_k, expert_g, weights[perm], h, act)

    handles = [experts.register_forward_pre_hook(keep_routing, with_kwargs=True)]
    # gated: the method that turns the gate/up projection into h; non-gated: the activation
    name = "_apply_gate" if experts.has_gate else "act_fn"
    compute_h = getattr(experts, name)
    if isinstance(compute_h, torch.nn.Module):
        handles.append(compute_h.register_forward_hook(lambda m, a, out: take(a[0], out)))
        return handles

    def passing_through(proj_out):
        h = compute_h(proj_out)
        take(proj_out, h)
        return h

    setattr(experts, name, passing_through)  # on the instance; the class's stays as it is
    handles.append(AttributeRestore(experts, name))
    return handles


def recompute_pairs(
    x_g: torch.Tensor,
    expert_g: torch.Tensor,
    gate_up: Callable[[int, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    act_fn: Callable[[torch.Tensor], torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """h = act(gate) * up and act(gate) of routed pairs, computed again from the weights.

    ``x_g``: ``[P, H]`` the pairs' inputs, sorted by expert (``expert_g``);
    ``gate_up(e, x)``: expert ``e``'s gate and up projections of rows ``x``.
    """
    if expert_g.numel() == 0:
        return x_g.new_zeros(0, 0), x_g.new_zeros(0, 0)
    hs, acts, start = [], [], 0
    experts, counts = torch.unique_consecutive(expert_g, return_counts=True)
    for e, n in zip(experts.tolist(), counts.tolist(), strict=True):
        gate, up = gate_up(e, x_g[start : start + n])
        act = act_fn(gate)
        hs.append(act * up)
        acts.append(act)
        start += n
    return torch.cat(hs), torch.cat(acts)
