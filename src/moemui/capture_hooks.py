"""The capture's hooks: how it reads routing and h while the model runs its own code.

Nothing here replaces a module's computation: the model computes its outputs with
transformers' own code, whatever the kernels, so the capture cannot change them. Every
hook passes its values through unchanged; every handle returned here is removed by the
capture on exit, and every value kept between hooks lives in the closures made when
the capture is entered (nothing is kept on the adapters or the model). Per MoE layer:

- **Fused experts** (``@use_experts_implementation``, the ``grouped_mm`` or
  ``batched_mm`` implementation), where the adapter says ``fused_experts``: a forward
  pre-hook keeps the routing decision the experts module is called with, and
  ``_apply_gate`` (or, for non-gated experts, the activation module) is wrapped on the
  instance to pass through, unchanged, the h the implementation computes. Its rows are
  the (token, expert) pairs in the implementation's order: sorted by expert
  (``torch.sort``, the same call on the same input) for ``grouped_mm``, flat pair order
  for ``batched_mm``. Nothing is recomputed.
- **A family forward** (the adapter's ``reads`` and ``record``): one hook per
  :class:`~moemui.adapters.base.Read` keeps the value; once the layer's last one has
  arrived, ``record`` computes h from them and reports it (:class:`LayerRecorder`).
- **Shared MLPs** (the adapter's ``shared_parts``): hooks on the MLP's input, its
  activation's output (the ``gate`` h) and its down projection's input (the ``glu``
  h).
- **Norms after an expert** (a layer's ``expert_norm``, a shared MLP's ``norm``): a hook
  reads the norm's input (each pair's or position's expert output) and scales that
  row's h by the norm's 1/rms, so h times the (norm-weighted) write vectors sums to
  the normed output.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import torch

from moemui.errors import MoemuiError

if TYPE_CHECKING:
    from collections.abc import Callable

    from torch import nn

    from moemui.adapters.base import FusedExpertsAdapter, MoeLayer, SharedMlp
    from moemui.capture import ContributionCapture


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


def rms_inverse(norm: nn.Module, out: torch.Tensor) -> torch.Tensor:
    """1/rms of each row of ``out`` (``[..., H]``) as the RMSNorm ``norm`` computes it
    (in float32, with its ``eps``): ``[..., 1]``."""
    return torch.rsqrt(out.float().pow(2).mean(-1, keepdim=True) + norm.eps)


class LayerRecorder:
    """One MoE layer of a running capture, as family forwards and the hooks see it:
    the :class:`~moemui.adapters.base.Recorder` handed to ``adapter.record``."""

    def __init__(self, capture: ContributionCapture, slot: int, layer: MoeLayer):
        self.capture, self.slot, self.layer = capture, slot, layer

    @property
    def variants(self) -> tuple[str, ...]:
        return self.capture.variants

    @property
    def name(self) -> str:
        """The model's name, for error messages."""
        return self.capture.name

    @property
    def collecting(self) -> bool:
        """Whether values are wanted now (:attr:`ContributionCapture.collecting`)."""
        return self.capture.collecting

    def routed(self, token, expert, weight, h, act) -> None:
        """See :meth:`moemui.adapters.base.Recorder.routed`."""
        self.capture.score_routed(self.slot, token, expert, weight, h, act)

    def shared(self, h, act, g, down) -> None:
        """See :meth:`moemui.adapters.base.Recorder.shared`."""
        self.capture.score_shared_experts(self.slot, h, act, g, down)

    def shared_mlp(self, shared: SharedMlp, x, h, act) -> None:
        """A shared MLP of width m*N: g is its sigmoid gate (or 1) times its scale."""
        gate, scale = self.layer.shared_gate, self.layer.shared_scale
        g = None
        if gate is not None:
            g = torch.sigmoid(gate(x.reshape(-1, x.shape[-1])))  # [T, 1]
        if scale != 1.0:
            g = scale if g is None else g * scale
        self.shared(h, act, g, shared.write_vectors())


def hook_layer(adapter: FusedExpertsAdapter, recorder: LayerRecorder) -> list:
    """Every hook of one MoE layer (removable handles): the fused experts' (where the
    adapter says so), the family forward's reads, then the shared MLP's."""
    layer = recorder.layer
    handles = []
    if adapter.fused_experts:
        handles += hook_fused_experts(recorder, layer.experts, layer.index, layer.expert_norm)
    handles += hook_reads(adapter, recorder)
    shared = adapter.shared_parts(layer, recorder.name)
    if shared is not None:
        handles += hook_shared(recorder, shared)
    return handles


def hook_fused_experts(
    recorder: LayerRecorder,
    experts: nn.Module,
    layer_index: int,
    norm: nn.Module | None = None,
) -> list:
    """Hooks that hand a fused experts module's pairs and h to ``recorder.routed``.

    With ``norm`` (the layer's ``expert_norm``), the pairs wait for the norm's input,
    whose 1/rms per pair scales their h. Returns the removable handles. Fails, naming
    the layer, on an implementation whose rows cannot be mapped to (token, expert)
    pairs.
    """
    impl = getattr(getattr(experts, "config", None), "_experts_implementation", None)
    if impl not in HOOKED_IMPLEMENTATIONS:
        raise MoemuiError(
            f"{recorder.name}: capture needs the grouped_mm experts implementation (or "
            f"batched_mm); layer {layer_index} uses {impl!r}"
        )
    pending: list = []
    normed: list = []  # pairs waiting for the norm's input (None: not collecting)
    arguments = argument_reader(experts)

    def keep_routing(module, args, kwargs):
        _, index, weights = arguments(args, kwargs)[:3]
        pending.append((index.shape[-1], index.reshape(-1), weights.reshape(-1)))

    def take(proj_out: torch.Tensor, h: torch.Tensor) -> None:
        if not pending:
            raise MoemuiError(
                f"{recorder.name}: layer {layer_index} experts computed h outside a call "
                "with the routing decision"
            )
        top_k, expert_ids, weights = pending.pop()
        if not recorder.collecting:
            if norm is not None:
                normed.append(None)
            return
        if h.shape[0] != expert_ids.numel():
            raise MoemuiError(
                f"{recorder.name}: layer {layer_index} experts computed {h.shape[0]} rows "
                f"for {expert_ids.numel()} routed pairs"
            )
        if impl == "grouped_mm":
            expert_g, perm = torch.sort(expert_ids)  # the implementation's own call
        else:  # batched_mm: rows in flat pair order
            expert_g, perm = torch.sort(expert_ids, stable=True)
            proj_out, h = proj_out[perm], h[perm]
        act = h
        if experts.has_gate and ("gate" in recorder.variants or "act" in recorder.variants):
            act = gate_activation(experts, proj_out)
        if norm is None:
            recorder.routed(perm // top_k, expert_g, weights[perm], h, act)
        else:
            normed.append((perm, perm // top_k, expert_g, weights[perm], h, act))

    def scale_by_norm(module, args):
        if not normed:
            raise MoemuiError(
                f"{recorder.name}: layer {layer_index} normed expert outputs that the "
                "experts did not compute"
            )
        waiting = normed.pop()
        if waiting is None:
            return
        perm, token, expert_g, weight, h, act = waiting
        out = args[0]
        inverse = rms_inverse(module, out.reshape(-1, out.shape[-1]))[perm]
        scaled = h * inverse
        recorder.routed(token, expert_g, weight, scaled, scaled if act is h else act * inverse)

    handles = [experts.register_forward_pre_hook(keep_routing, with_kwargs=True)]
    if norm is not None:
        handles.append(norm.register_forward_pre_hook(scale_by_norm))
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


def hook_reads(adapter: FusedExpertsAdapter, recorder: LayerRecorder) -> list:
    """Hooks that keep the values ``adapter.reads`` names for one layer and, when the
    last has arrived, hand them to ``adapter.record`` (while values are wanted)."""
    layer = recorder.layer
    reads = adapter.reads(layer)
    if not reads:
        return []
    last = list(reads)[-1]
    values: dict[str, Any] = {}

    def arrived(key: str, value) -> None:
        values[key] = value
        if key != last:
            return
        got = dict(values)
        values.clear()
        missing = [k for k in reads if k not in got]
        if missing:
            raise MoemuiError(
                f"{recorder.name}: layer {layer.index} read {last!r} without "
                f"{', '.join(missing)} in the same call"
            )
        if recorder.collecting:
            adapter.record(layer, got, recorder)

    handles = []
    for key, read in reads.items():
        if read.what == "args":
            arguments = argument_reader(read.module)

            def keep_args(module, args, kwargs, key=key, arguments=arguments):
                arrived(key, arguments(args, kwargs))

            handles.append(read.module.register_forward_pre_hook(keep_args, with_kwargs=True))
        else:

            def keep_output(module, args, out, key=key):
                arrived(key, out)

            handles.append(read.module.register_forward_hook(keep_output))
    return handles


def hook_shared(recorder: LayerRecorder, shared: SharedMlp) -> list:
    """Hooks that read a shared MLP's h where the model computes it (nothing recomputed):
    its input x, its activation's output (the ``gate`` h) and its down projection's
    input (the ``glu`` h); with a norm after the MLP, the down projection's output too
    (its 1/rms per position scales h)."""
    seen: dict = {}

    def keep_input(mod, args):
        seen["x"] = args[0]

    def keep_act(mod, args, out):
        seen["act"] = out if shared.act_from is None else shared.act_from(out)

    def score(mod, args):
        x, act = seen.pop("x"), seen.pop("act")
        recorder.shared_mlp(shared, x, args[0], act)

    def score_normed(mod, args, out):
        x, act = seen.pop("x"), seen.pop("act")
        inverse = rms_inverse(shared.norm, out)
        recorder.shared_mlp(shared, x, args[0] * inverse, act * inverse)

    handles = [
        shared.module.register_forward_pre_hook(keep_input),
        shared.act.register_forward_hook(keep_act),
    ]
    if shared.norm is None:
        return [*handles, shared.down.register_forward_pre_hook(score)]
    return [*handles, shared.down.register_forward_hook(score_normed)]
