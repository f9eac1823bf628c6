"""The contract between the capture and the family adapters.

An adapter describes a family; it installs nothing, patches nothing and keeps no
state of a run. :class:`moemui.capture.ContributionCapture` owns every hook, its
removal, and every value kept while the model runs (:mod:`moemui.capture_hooks`).

What an adapter provides (class attributes where the anatomy allows, methods of
:class:`FusedExpertsAdapter` overridden where it does not):

- **where the MoE blocks are**: :meth:`~FusedExpertsAdapter.moe_layers` gives one
  :class:`MoeLayer` per sparse decoder layer (its experts module, MoE block, shared
  MLP and its sigmoid gate, and the block-level scales that are part of g);
  ``block_attr``, ``experts_attr``, ``shared_attr``, ``shared_gate_attr`` name them for
  the common case, :class:`~moemui.adapters.generic.GenericMoeAdapter` finds them by
  structure;
- **the experts' weights**: :meth:`~FusedExpertsAdapter.down_weights` (each neuron's
  write vector) and :meth:`~FusedExpertsAdapter.down_transposed`, the geometry
  (:meth:`~FusedExpertsAdapter.geometry`) and the unembedding;
- **the shared MLPs**: :meth:`~FusedExpertsAdapter.shared_parts`, a :class:`SharedMlp`
  naming the modules whose activation output and down-projection input are h;
- **how the routed experts compute h**: nothing, where the experts are a fused experts
  module (``fused_experts = True``, the default): the capture reads the routing
  decision the module is called with and the h its implementation computes. A family
  whose experts (or shared experts) are not read that way writes a forward of its own
  (one module per family, e.g. :mod:`moemui.adapters.dbrx`):
  :meth:`~FusedExpertsAdapter.reads` lists the values it needs (:class:`Read`: a
  module's call arguments or its output), and :meth:`~FusedExpertsAdapter.record`
  computes h from them and reports it through the :class:`Recorder` it is given.

What the capture does: it installs the hooks (the fused experts hooks, the shared MLP
hooks, one hook per :class:`Read`), passes every value through unchanged so the model
computes its outputs with its own code, keeps the values read during one call of a
layer and hands them to ``record`` once the last :class:`Read` of the layer has
arrived (only while scores or records are wanted), and removes every hook and
instance attribute on exit, whatever happens inside.

What a family forward must call: :meth:`Recorder.routed` with the routed (token,
expert) pairs, sorted by expert, their weights g and their h, and/or
:meth:`Recorder.shared` with the shared experts' h of every position; nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from moemui.errors import MoemuiError

if TYPE_CHECKING:
    from collections.abc import Callable

    import torch
    from torch import nn

#: Names a shared MLP goes by, in the MoE block or (GraniteMoeShared) the decoder layer.
SHARED_NAMES = ("shared_expert", "shared_experts", "shared_mlp")
#: Names of a shared MLP's down projection (its input is h) and activation module.
DOWN_NAMES = ("down_proj", "output_linear", "w2", "fc2")
ACT_NAMES = ("act_fn", "activation_fn", "activation", "act")
#: Config keys holding the number of routed experts picked per token, in search order.
TOP_K_KEYS = (
    "num_experts_per_tok",
    "num_experts_per_token",
    "moe_topk",
    "top_k_experts",
    "moe_top_k",
)


@dataclass(frozen=True)
class Read:
    """A value a family forward needs, read by the capture while the model runs.

    ``what = "args"``: the values ``module``'s forward is called with, in its
    signature's order (a list), read before it runs; ``"output"``: what it returns.
    """

    module: nn.Module
    what: Literal["args", "output"] = "args"


class Recorder(Protocol):
    """What a family forward reports to: one MoE layer of the running capture.

    ``variants`` are the h the capture scores (``gate``, ``glu``, ``act``).
    """

    variants: tuple[str, ...]

    def routed(
        self,
        token: torch.Tensor,
        expert: torch.Tensor,
        weight: torch.Tensor,
        h: torch.Tensor,
        act: torch.Tensor | None,
    ) -> None:
        """Routed pairs: pair i is flat position ``token[i]`` (batch order) routed to
        expert ``expert[i]`` (sorted) with weight g = ``weight[i]``; ``h`` ``[P, N]``
        is its ``glu`` h (the down projection's input), ``act`` its ``gate`` h (None
        where only ``glu`` is scored). Picks of identity experts (index >= E) are
        dropped by the capture."""

    def shared(
        self,
        h: torch.Tensor,
        act: torch.Tensor,
        g: torch.Tensor | float | None,
        down: torch.Tensor,
    ) -> None:
        """Shared experts of every position: ``h``, ``act`` ``[..., m*N]`` (positions
        flat in batch order); ``g`` None (1), a number, ``[T, 1]``, or ``[T, m]`` where
        each of the m experts has its own weight; ``down`` the down projection
        ``[H, m*N]``."""


@dataclass(frozen=True)
class SharedMlp:
    """A shared MLP seen through its down projection (input h) and activation module.

    ``act`` is the activation applied to the gate projection (GLU) or to the only
    projection (non-GLU); its output is the ``gate`` variant's h. Where the MLP has no
    activation module (MiniMax-M3's clamped GLU, written inline), ``act`` is its fused
    gate/up projection and ``act_from`` turns that projection's output into the gate
    activation, elementwise. ``norm`` is an RMSNorm (``weight [H]``, ``eps``) of the
    down projection's output where the MLP ends with one (Ergo's shared expert): as
    for :attr:`MoeLayer.expert_norm`, h is scaled by its 1/rms and the write vectors
    by its weight.
    """

    module: nn.Module
    down: nn.Module
    act: nn.Module
    act_from: Callable[[torch.Tensor], torch.Tensor] | None = None
    norm: nn.Module | None = None

    @property
    def width(self) -> int:
        """The intermediate width, ``m * N``."""
        return int(self.down.weight.shape[1])

    def write_vectors(self) -> torch.Tensor:
        """Each neuron's write vector: the down projection ``[H, m*N]``, times the
        weight of the norm after it where there is one."""
        if self.norm is None:
            return self.down.weight
        return self.down.weight * self.norm.weight[:, None]


@dataclass(frozen=True)
class MoeLayer:
    """One decoder layer's sparse MoE block, as the capture sees it.

    Attributes
    ----------
    index
        The decoder layer index.
    experts
        The fused routed-experts module (``gate_up_proj [E, 2N, H]`` or, non-gated,
        ``up_proj [E, N, H]``; ``down_proj [E, H, N]``; transposed where flagged).
    shared
        The shared MLP (``gate_proj``, ``up_proj``, ``down_proj`` linears) or None.
    shared_gate
        A ``Linear(H, 1)`` whose sigmoid scales the shared MLP's output, or None (scale 1).
    block
        The module holding experts and router (the MoE block), or None where the
        experts sit on the decoder layer itself (Gemma4).
    routed_scale, shared_scale
        Factors the block applies after the experts and after the shared MLP (a
        block-level routed scaling factor, an average of routed and shared outputs);
        they are part of g.
    skip_zero_weight
        A pick with weight exactly 0 is a skip (Zaya), not a routed expert.
    outside_scale
        The part of ``routed_scale`` and ``shared_scale`` applied outside ``block``
        (GraniteMoE's ``residual_multiplier``, applied by the decoder layer).
    post_norm
        A norm the block applies to the sum of its routed and shared outputs (AXK1's
        ``post_mlp_layernorm``), or None. Scores are for the sum before it, as they
        are before the decoder-level post-feedforward norms of other families.
    expert_norm
        An RMSNorm with a weight per expert (``weight [E, H]``, ``eps``) that the
        experts module applies to each routed pair's output before weighting it by g
        (Ergo's ``post_expert_norm``), called with those outputs in flat pair order
        (row ``t * k + j``), or None. A neuron's contribution is its share of the
        normed output, h_j / rms * (d_j * w_e): the capture scales each pair's h by the
        norm's 1/rms of that pair's output, and projects ``u * w_e`` (the target's
        unembedding row times the expert's norm weight) on the plain write vectors.
    """

    index: int
    experts: nn.Module
    shared: nn.Module | None = None
    shared_gate: nn.Module | None = None
    block: nn.Module | None = None
    routed_scale: float = 1.0
    shared_scale: float = 1.0
    skip_zero_weight: bool = False
    outside_scale: float = 1.0
    post_norm: nn.Module | None = None
    expert_norm: nn.Module | None = None


@dataclass(frozen=True)
class Geometry:
    """The MoE geometry of a model, read from its modules and weight shapes."""

    family: str
    architecture: str
    moe_layers: list[int]
    dense_layers: list[int]
    routed_experts: int
    shared_experts: int
    neurons_per_expert: int
    top_k: int
    shared_gate: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def experts_per_layer(self) -> int:
        """E_r + E_s."""
        return self.routed_experts + self.shared_experts

    @property
    def neurons_per_layer(self) -> int:
        """n_layer = N * (E_s + E_r)."""
        return self.neurons_per_expert * self.experts_per_layer

    @property
    def total_neurons(self) -> int:
        """The MUI denominator N * L * (E_s + E_r)."""
        return self.neurons_per_layer * len(self.moe_layers)

    def as_dict(self) -> dict:
        """A JSON-ready dict (the keys ``moemui inspect --json`` prints)."""
        return {
            "family": self.family,
            "architecture": self.architecture,
            "moe_layers": list(self.moe_layers),
            "dense_layers": list(self.dense_layers),
            "routed_experts": self.routed_experts,
            "shared_experts": self.shared_experts,
            "neurons_per_expert": self.neurons_per_expert,
            "top_k": self.top_k,
            "shared_gate": self.shared_gate,
            "neurons_per_layer": self.neurons_per_layer,
            "total_neurons": self.total_neurons,
            **self.extra,
        }


def shared_mlp(module: nn.Module, name: str, where: str) -> SharedMlp:
    """``module`` as a :class:`SharedMlp`; fail naming the module when it has no known parts."""
    down = next((getattr(module, n) for n in DOWN_NAMES if hasattr(module, n)), None)
    act = next((getattr(module, n) for n in ACT_NAMES if hasattr(module, n)), None)
    import torch
    from torch import nn

    fused = getattr(module, "gate_up_proj", None)
    alpha, limit = getattr(module, "swiglu_alpha", None), getattr(module, "swiglu_limit", None)
    if act is None and isinstance(fused, nn.Linear) and alpha is not None:

        def clamped_glu_gate(gate_up: torch.Tensor) -> torch.Tensor:
            gate = gate_up.chunk(2, dim=-1)[0].clamp(max=limit)
            return gate * torch.sigmoid(gate * alpha)

        return SharedMlp(module, down, fused, clamped_glu_gate)
    if not isinstance(down, nn.Linear) or not isinstance(act, nn.Module):
        raise MoemuiError(
            f"{name}: {where} shared expert {type(module).__name__} has no down projection "
            f"({'/'.join(DOWN_NAMES)}) and activation module ({'/'.join(ACT_NAMES)})"
        )
    return SharedMlp(module, down, act)


def config_top_k(config) -> int | None:
    """The number of routed experts picked per token, from the model config."""
    for key in TOP_K_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int):
            return value
    ffn = getattr(config, "ffn_config", None)  # DBRX
    return getattr(ffn, "moe_top_k", None)


def routing_info(config) -> dict:
    """How a family scores and normalises its routing, as its config states it.

    Keys that the config does not state are left out (the family's router code
    decides them); the capture reads g from the experts' inputs either way.
    """
    info = {}
    for key, out in (
        ("scoring_func", "scoring"),
        ("expert_selection_fn", "scoring"),
        ("topk_method", "topk_method"),
        ("norm_topk_prob", "normalise_topk"),
        ("moe_renormalize", "normalise_topk"),
        ("moe_normalize_expert_weights", "normalise_topk"),
        ("routed_scaling_factor", "routed_scaling_factor"),
        ("route_scale", "routed_scaling_factor"),
        ("router_scaling_factor", "routed_scaling_factor"),
        ("moe_routed_scaling_factor", "routed_scaling_factor"),
        ("n_group", "expert_groups"),
        ("num_expert_group", "expert_groups"),
        ("topk_group", "topk_groups"),
    ):
        value = getattr(config, key, None)
        if value is not None and out not in info:
            info[out] = value
    return info


def router_scoring(block) -> str | None:
    """``softmax`` or ``sigmoid``: the scoring function the block's router (``gate`` or
    ``router``) applies, read from its forward's source; None when it cannot tell."""
    import inspect

    router = getattr(block, "router", None) or getattr(block, "gate", None)
    if router is None or not hasattr(type(router), "forward"):
        return None
    try:
        source = inspect.getsource(type(router).forward)
    except (OSError, TypeError):
        return None
    found = [f for f in ("softmax", "sigmoid") if f in source]
    return found[0] if len(found) == 1 else None


class FusedExpertsAdapter:
    """Families whose decoder layers hold ``mlp.experts``, a fused experts module.

    Subclasses set the class attributes; most need nothing else. ``block_attr`` is the
    decoder-layer attribute holding the MoE block (a dense layer holds a plain MLP
    there), ``experts_attr`` the block's attribute holding the experts module,
    ``shared_attr`` and ``shared_gate_attr`` name the block's shared MLP and its
    sigmoid gate. See the module docstring for the whole contract.
    """

    family: str = ""
    architectures: tuple[str, ...] = ()
    block_attr: str = "mlp"
    experts_attr: str = "experts"
    shared_attr: str | None = None
    shared_gate_attr: str | None = None

    def decoder_layers(self, model: nn.Module) -> nn.ModuleList:
        """The decoder layers, in order."""
        return model.model.layers

    def moe_layers(self, model: nn.Module) -> list[MoeLayer]:
        """Every decoder layer holding a sparse MoE block, in order."""
        found = []
        for index, layer in enumerate(self.decoder_layers(model)):
            block = getattr(layer, self.block_attr, None)
            experts = getattr(block, self.experts_attr, None)
            if experts is None:
                continue
            shared = getattr(block, self.shared_attr) if self.shared_attr else None
            gate = getattr(block, self.shared_gate_attr) if self.shared_gate_attr else None
            found.append(MoeLayer(index, experts, shared, gate, block))
        return found

    def unembedding(self, model: nn.Module) -> torch.Tensor:
        """The unembedding matrix ``[vocab, H]`` (lm_head weight)."""
        return model.get_output_embeddings().weight

    #: Whether the routed experts are GLUs (None: the experts module's ``has_gate``).
    glu: bool | None = None
    #: Whether the capture reads the routed experts at their fused experts module
    #: (routing from its inputs, h from its implementation). False: :meth:`record`
    #: reports them.
    fused_experts: bool = True

    def reads(self, layer: MoeLayer) -> dict[str, Read]:
        """The values :meth:`record` needs from one call of the layer, by name, in the
        order the model produces them (the last one completes the call). Empty by
        default: the capture's own hooks read the fused experts and shared MLP."""
        return {}

    def record(self, layer: MoeLayer, values: dict[str, Any], recorder: Recorder) -> None:
        """The family's forward: compute h from ``values`` (what :meth:`reads` named,
        as read in one call of the layer) and report it to ``recorder``."""
        raise NotImplementedError(f"the {self.family} adapter reads no values")

    def down_transposed(self, experts: nn.Module) -> bool:
        """Whether ``down_weights(experts)`` is ``[E, N, H]`` (used as ``h @ W``)."""
        return bool(getattr(experts, "is_transposed", False))

    def down_weights(self, experts: nn.Module) -> torch.Tensor:
        """The routed down projections ``[E, H, N]`` (``[E, N, H]`` where transposed)."""
        return experts.down_proj

    def shared_parts(self, layer: MoeLayer, name: str = "model") -> SharedMlp | None:
        """The layer's shared MLP as a :class:`SharedMlp`, or None."""
        if layer.shared is None:
            return None
        return shared_mlp(layer.shared, name, f"layer {layer.index}")

    def shared_width(self, layer: MoeLayer, name: str = "model") -> int:
        """The total width m * N of the layer's shared experts (0 without)."""
        shared = self.shared_parts(layer, name)
        return 0 if shared is None else shared.width

    def check_experts(self, layer: MoeLayer, name: str) -> None:
        """Fail clearly on an experts module the capture cannot read."""
        experts = layer.experts
        if not hasattr(experts, "is_transposed"):
            raise MoemuiError(
                f"{name}: layer {layer.index} experts {type(experts).__name__} are not a "
                f"fused experts module (@use_experts_implementation); the {self.family} "
                "adapter needs its own capture"
            )
        if getattr(experts, "has_post_expert_norm", False):
            raise MoemuiError(
                f"{name}: layer {layer.index} experts normalise each expert's output "
                "(post-expert norm): a neuron's contribution is not linear in h"
            )

    def expert_shape(self, experts: nn.Module) -> tuple[int, int]:
        """(E_r, N) of a fused experts module, from its down projection."""
        n_routed = experts.down_proj.shape[0]
        transposed = getattr(experts, "is_transposed", False)
        n_neurons = experts.down_proj.shape[1 if transposed else 2]
        return int(n_routed), int(n_neurons)

    def geometry(self, model: nn.Module, name: str = "model") -> Geometry:
        """Read the MoE geometry from the modules; fail clearly on what is not supported."""
        layers = self.moe_layers(model)
        if not layers:
            raise MoemuiError(f"{name}: no sparse MoE layer found in this {self.family} model")
        n_layers = len(self.decoder_layers(model))
        shapes = set()
        for layer in layers:
            self.check_experts(layer, name)
            n_routed, n_neurons = self.expert_shape(layer.experts)
            width = self.shared_width(layer, name)
            if width % n_neurons:
                raise MoemuiError(
                    f"{name}: layer {layer.index} shared expert width {width} is not "
                    f"a multiple of the expert width {n_neurons}"
                )
            n_shared = width // n_neurons
            shapes.add((n_routed, n_shared, n_neurons))
        if len(shapes) != 1:
            raise MoemuiError(f"{name}: MoE layers differ in geometry {sorted(shapes)}")
        (n_routed, n_shared, n_neurons) = shapes.pop()
        moe_idx = [layer.index for layer in layers]
        experts = layers[0].experts
        # None: not stated in the config (the family's router code decides)
        extra = {
            "glu": bool(getattr(experts, "has_gate", True)) if self.glu is None else self.glu,
            "scoring": router_scoring(layers[0].block),
            "normalise_topk": None,
            **routing_info(model.config.get_text_config()),
        }
        if layers[0].post_norm is not None:
            extra["post_norm"] = type(layers[0].post_norm).__name__
        if layers[0].expert_norm is not None:
            extra["expert_norm"] = type(layers[0].expert_norm).__name__
        scales = {(la.routed_scale, la.shared_scale) for la in layers}
        if scales != {(1.0, 1.0)}:
            extra["block_scale"] = dict(zip(("routed", "shared"), sorted(scales)[0], strict=True))
        return Geometry(
            family=self.family,
            architecture=type(model).__name__,
            moe_layers=moe_idx,
            dense_layers=[i for i in range(n_layers) if i not in moe_idx],
            routed_experts=n_routed,
            shared_experts=n_shared,
            neurons_per_expert=n_neurons,
            top_k=int(config_top_k(model.config.get_text_config())),
            shared_gate="sigmoid" if layers[0].shared_gate is not None else None,
            extra=extra,
        )


def recompute_pairs(
    x_g: torch.Tensor,
    expert_g: torch.Tensor,
    gate_up: Callable[[int, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    act_fn: Callable[[torch.Tensor], torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """h = act(gate) * up and act(gate) of routed pairs, computed again from the weights
    (for family forwards whose experts module does not keep h).

    ``x_g``: ``[P, H]`` the pairs' inputs, sorted by expert (``expert_g``);
    ``gate_up(e, x)``: expert ``e``'s gate and up projections of rows ``x``.
    """
    if expert_g.numel() == 0:
        return x_g.new_zeros(0, 0), x_g.new_zeros(0, 0)
    import torch

    hs, acts, start = [], [], 0
    experts, counts = torch.unique_consecutive(expert_g, return_counts=True)
    for e, n in zip(experts.tolist(), counts.tolist(), strict=True):
        gate, up = gate_up(e, x_g[start : start + n])
        act = act_fn(gate)
        hs.append(act * up)
        acts.append(act)
        start += n
    return torch.cat(hs), torch.cat(acts)
