"""Any family built on fused experts modules, found by module structure.

Most MoE families of transformers 5.x share one anatomy: a fused experts module
(decorated with ``@use_experts_implementation``) called with the routing decision
``(hidden_states, top_k_index, top_k_weights)``, inside a block that may also hold a
shared MLP (``shared_expert``, ``shared_experts``) and a sigmoid gate for it
(``shared_expert_gate``); GraniteMoeShared keeps its shared MLP on the decoder layer
(``shared_mlp``). :class:`GenericMoeAdapter` finds these by structure, so a family
with this anatomy needs no module of its own; quirks of anatomy are subclasses in
:mod:`moemui.adapters.families`, families with a forward of their own have a module
each (:mod:`moemui.adapters.dbrx`, ...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from moemui.adapters.base import SHARED_NAMES, FusedExpertsAdapter, MoeLayer
from moemui.errors import MoemuiError

if TYPE_CHECKING:
    from torch import nn


def is_fused_experts(module: nn.Module) -> bool:
    """A module decorated with transformers' ``use_experts_implementation``."""
    return hasattr(module, "is_transposed") and hasattr(module, "down_proj")


def find_decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder layers: the first ``ModuleList`` named ``layers`` or ``blocks``."""
    from torch import nn

    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and name.rsplit(".", 1)[-1] in ("layers", "blocks"):
            return module
    raise MoemuiError(f"{type(model).__name__}: no decoder layers (layers/blocks) found")


class GenericMoeAdapter(FusedExpertsAdapter):
    """Fused experts found by structure; family = the config's ``model_type``."""

    #: The name of the routed experts module (the last part of its path in a decoder
    #: layer); a module so named counts where :meth:`is_experts` accepts it.
    experts_attr = "experts"
    #: A pick with weight exactly 0 is a skip, not a routed expert (Zaya).
    skip_zero_weight = False

    def __init__(self, family: str = ""):
        self.family = family or self.family

    def decoder_layers(self, model: nn.Module) -> nn.ModuleList:
        return find_decoder_layers(model)

    def is_experts(self, module: nn.Module) -> bool:
        """Whether ``module`` (named like the experts attribute) holds the routed experts."""
        return hasattr(module, "down_proj")

    def _shared(self, block: nn.Module | None, decoder_layer: nn.Module):
        for owner in (block, decoder_layer):
            if owner is None:
                continue
            for attr in SHARED_NAMES:
                module = getattr(owner, attr, None)
                if module is not None:
                    return module, getattr(owner, "shared_expert_gate", None)
        return None, None

    def scales(self, block: nn.Module | None, shared: nn.Module | None) -> tuple[float, float]:
        """(routed, shared) factors the block applies after the experts; 1 by default."""
        return 1.0, 1.0

    def moe_layers(self, model: nn.Module) -> list[MoeLayer]:
        found = []
        for index, layer in enumerate(self.decoder_layers(model)):
            experts_at = [
                (path, mod)
                for path, mod in layer.named_modules()
                if path.rsplit(".", 1)[-1] == self.experts_attr and self.is_experts(mod)
            ]
            if not experts_at:
                continue
            if len(experts_at) > 1:
                paths = ", ".join(p for p, _ in experts_at)
                raise MoemuiError(
                    f"decoder layer {index} holds several experts modules ({paths}); "
                    f"the {self.family} adapter expects one"
                )
            path, experts = experts_at[0]
            block = layer.get_submodule(path.rsplit(".", 1)[0]) if "." in path else None
            latent = getattr(block, "fc2_latent_proj", None)  # NemotronH with moe_latent_size
            if latent is not None and type(latent).__name__ != "Identity":
                raise MoemuiError(
                    f"decoder layer {index}: the experts work in a latent space projected "
                    "back by fc2_latent_proj; a neuron's write vector is not its down "
                    "projection column (not supported)"
                )
            shared, gate = self._shared(block, layer)
            routed_scale, shared_scale = self.scales(block, shared)
            found.append(
                MoeLayer(
                    index,
                    experts,
                    shared,
                    gate,
                    block,
                    routed_scale=routed_scale,
                    shared_scale=shared_scale,
                    skip_zero_weight=self.skip_zero_weight,
                    post_norm=getattr(block, "post_mlp_layernorm", None),
                )
            )
        return found
