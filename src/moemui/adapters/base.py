"""The adapter contract: where a family keeps its MoE blocks, experts and shared experts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from moemui.errors import MoemuiError

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass(frozen=True)
class MoeLayer:
    """One decoder layer's sparse MoE block, as the capture sees it.

    Attributes
    ----------
    index
        The decoder layer index (``model.model.layers[index]``).
    experts
        The fused routed-experts module (``gate_up_proj [E, 2N, H]``, ``down_proj [E, H, N]``).
    shared
        The shared MLP (``gate_proj``, ``up_proj``, ``down_proj`` linears) or None.
    shared_gate
        A ``Linear(H, 1)`` whose sigmoid scales the shared MLP's output, or None (scale 1).
    """

    index: int
    experts: nn.Module
    shared: nn.Module | None = None
    shared_gate: nn.Module | None = None


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


class FusedExpertsAdapter:
    """Families whose decoder layers hold ``mlp.experts``, a fused experts module.

    Subclasses set the class attributes; most need nothing else. ``block_attr`` is the
    decoder-layer attribute holding the MoE block (a dense layer holds a plain MLP
    there), ``shared_attr`` and ``shared_gate_attr`` name the block's shared MLP and
    its sigmoid gate.
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
            found.append(MoeLayer(index, experts, shared, gate))
        return found

    def unembedding(self, model: nn.Module) -> torch.Tensor:
        """The unembedding matrix ``[vocab, H]`` (lm_head weight)."""
        return model.get_output_embeddings().weight

    def geometry(self, model: nn.Module, name: str = "model") -> Geometry:
        """Read the MoE geometry from the modules; fail clearly on what is not supported."""
        layers = self.moe_layers(model)
        if not layers:
            raise MoemuiError(f"{name}: no sparse MoE layer found in this {self.family} model")
        n_layers = len(self.decoder_layers(model))
        shapes = set()
        for layer in layers:
            experts = layer.experts
            if getattr(experts, "is_transposed", False) or not getattr(experts, "has_gate", True):
                raise MoemuiError(
                    f"{name}: layer {layer.index} experts layout (transposed or non-gated) "
                    f"is not supported by the {self.family} adapter"
                )
            n_routed, _, n_neurons = experts.down_proj.shape
            n_shared = 0
            if layer.shared is not None:
                width = layer.shared.down_proj.weight.shape[1]
                if width % n_neurons:
                    raise MoemuiError(
                        f"{name}: layer {layer.index} shared expert width {width} is not a "
                        f"multiple of the expert width {n_neurons}"
                    )
                n_shared = width // n_neurons
            shapes.add((n_routed, n_shared, n_neurons))
        if len(shapes) != 1:
            raise MoemuiError(f"{name}: MoE layers differ in geometry {sorted(shapes)}")
        (n_routed, n_shared, n_neurons) = shapes.pop()
        moe_idx = [layer.index for layer in layers]
        return Geometry(
            family=self.family,
            architecture=type(model).__name__,
            moe_layers=moe_idx,
            dense_layers=[i for i in range(n_layers) if i not in moe_idx],
            routed_experts=n_routed,
            shared_experts=n_shared,
            neurons_per_expert=n_neurons,
            top_k=int(model.config.num_experts_per_tok),
            shared_gate="sigmoid" if self.shared_gate_attr else None,
        )
