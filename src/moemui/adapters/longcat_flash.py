"""LongCat-Flash, in both layouts transformers has had:

- up to 5.23 (:class:`LongcatFlashAdapter`): a per-expert loop over ``gate_up_proj
  [E + Z, 2N, H]`` / ``down_proj [E, H, N]``, called with identity "zero expert" picks
  (index >= E) that hold no neuron;
- from 5.25 (``fused_layout``, Zaya's adapter): fused experts; the block adds the
  identity output itself and hands the experts each identity pick as a real expert's
  index with weight 0, so a pick of weight exactly 0 routes no neuron.

:func:`moemui.adapters.adapter_for` picks by the model's experts module.
"""

from __future__ import annotations

from moemui.adapters.families import ZayaAdapter
from moemui.adapters.loop import LoopExpertsAdapter


class LongcatFlashAdapter(LoopExpertsAdapter):
    #: fused (5.25): a weight-0 pick is a skip, Zaya's rule
    fused_layout = ZayaAdapter

    def num_routed(self, experts):
        return int(experts.num_routed_experts)

    def gate_up_down(self, experts, e):
        n = experts.intermediate_size
        gate_up = experts.gate_up_proj[e]
        return gate_up[:n], gate_up[n:], experts.down_proj[e]
