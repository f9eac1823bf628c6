"""LongCat-Flash: a per-expert loop over ``gate_up_proj [E, 2N, H]``/``down_proj [E, H, N]``,
and identity "zero experts" (index >= E) that hold no neuron."""

from __future__ import annotations

from moemui.adapters.loop import LoopExpertsAdapter


class LongcatFlashAdapter(LoopExpertsAdapter):
    def num_routed(self, experts):
        return int(experts.num_routed_experts)

    def gate_up_down(self, experts, e):
        n = experts.intermediate_size
        gate_up = experts.gate_up_proj[e]
        return gate_up[:n], gate_up[n:], experts.down_proj[e]
