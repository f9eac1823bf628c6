"""Contribution scores of every expert neuron, captured in one teacher-forced pass.

For MoE layer l, expert e, neuron j and scored position t (docs/method.md §2)::

    s(l, e, j, t) = g(l, e, t) * h(l, e, j, t) * <d(l, e, j), u(y_t)>

The model runs its own code: for the duration of a :class:`ContributionCapture`
context, hooks installed where the family adapter says (:mod:`moemui.capture_hooks`;
the contract in :mod:`moemui.adapters.base`) read the routing decision each experts
module is called with and the ``h`` its implementation computes, passing every value
through unchanged, so the model's outputs are bit-identical to a run without capture
on any device and kernel. The projection ``<d, u>`` is one grouped matmul of the
target tokens' unembedding rows with each expert's down projection;
``W_down^T W_unembed`` is never materialised. Shared MLPs are read through hooks on
their activation and down projection (their h, as the model computes it) and split
into ``N``-wide virtual experts.

Each sequence runs through the model on its own by default, so a sample's scores do not
depend on the batch it is in (``batch_invariant``). Per batch the capture reduces the
triples on the fly to what the store keeps: the max over t of s per (sample, layer,
expert, neuron), the K largest triple scores per (sample, layer), and routing counts and
weights. Triples at positions where a routed expert is not selected have s = 0 (g = 0),
and count as such.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn
from transformers.integrations.moe import _grouped_linear

from moemui.adapters import FusedExpertsAdapter, Geometry
from moemui.batching import right_pad
from moemui.capture_hooks import LayerRecorder, hook_layer
from moemui.errors import MoemuiError

log = logging.getLogger(__name__)

Target = Literal["next", "same_position"]
VARIANTS: tuple[str, ...] = ("gate", "glu", "act")
TARGETS: tuple[str, ...] = ("next", "same_position")


def scored_positions(
    prompt_len: int, seq_len: int, target: Target
) -> tuple[np.ndarray, np.ndarray]:
    """Positions scored in a sequence of ``prompt_len`` + response tokens, and the offset
    of each position's target token.

    ``next``: positions ``prompt_len-1 .. seq_len-2``, each projected onto the token at
    ``t + 1`` (the token the position predicts). ``same_position``: response positions
    ``prompt_len .. seq_len-1``, each projected onto its own input token (the reference
    code's alignment). A sequence with no response token has no scored position.

    Examples
    --------
    >>> scored_positions(3, 5, "next")
    (array([2, 3]), array([3, 4]))
    >>> scored_positions(3, 5, "same_position")
    (array([3, 4]), array([3, 4]))
    """
    if target == "next":
        pos = np.arange(prompt_len - 1, seq_len - 1)
        return pos, pos + 1
    if target == "same_position":
        pos = np.arange(prompt_len, seq_len)
        return pos, pos
    raise MoemuiError(f"unknown target {target!r}; expected one of {', '.join(TARGETS)}")


@dataclass
class BatchScores:
    """What one batch contributes to the store (numpy, float32 scores).

    ``score[v]``: ``[B, L, E, N]`` max over t of s; ``pairtop[v]``: ``[B, L, K]`` the K
    largest triple scores in descending order (NaN where a sample has fewer than K
    triples); ``route_tokens``/``route_weight``: ``[B, L, E]``; ``n_tokens``: ``[B]``.
    """

    score: dict[str, np.ndarray]
    pairtop: dict[str, np.ndarray]
    route_tokens: np.ndarray
    route_weight: np.ndarray
    n_tokens: np.ndarray


class _BatchState:
    """Per-batch tensors the hooks read and the accumulators they fill."""

    def __init__(self, geometry: Geometry, variants, batch_size: int, k_top: int, device):
        self.n_routed = geometry.routed_experts
        self.n_experts = geometry.experts_per_layer
        self.n_neurons = geometry.neurons_per_expert
        self.k_top = k_top
        self.batch_size = batch_size
        n_layers = len(geometry.moe_layers)
        shape = (n_layers, batch_size * self.n_experts, self.n_neurons)
        self.score = {
            v: torch.full(shape, float("-inf"), dtype=torch.float32, device=device)
            for v in variants
        }
        self.partial_top = {
            v: [[[] for _ in range(batch_size)] for _ in range(n_layers)] for v in variants
        }
        self.route_tokens = torch.zeros(
            n_layers, batch_size * self.n_experts, dtype=torch.float64, device=device
        )
        self.route_weight = torch.zeros_like(self.route_tokens)
        self.u_index: torch.Tensor | None = None  # [B*S] row of u for each flat position, or -1
        self.u: torch.Tensor | None = None  # [T_s, H] float32 unembedding rows of the targets
        self.sample_of: torch.Tensor | None = None  # [T_s] sample of each scored position
        self.scored_flat: torch.Tensor | None = None  # [T_s] flat position of each scored row

    def add(self, slot: int, rows: torch.Tensor, samples: torch.Tensor, scores: dict):
        """Fold triple scores ``scores[v]`` ``[P, N]`` of rows ``sample * E + expert``.

        A sample's K largest triples so far are all >= the K-th largest of its per-neuron
        maxima (those maxima are K distinct triples), and that bound only grows, so only
        the rows of ``s`` that reach it can hold one of the sample's final K largest: the
        top-K runs on those rows alone (the same values, a fraction of the work).
        """
        n_exp, k = self.n_experts, self.k_top
        present = torch.unique(samples).tolist()
        for variant, s in scores.items():
            index = rows.unsqueeze(-1).expand_as(s)
            score = self.score[variant][slot]
            score.scatter_reduce_(0, index, s, "amax", include_self=True)
            row_max = s.amax(dim=1)
            tops = self.partial_top[variant][slot]
            for b in present:
                maxima = score[b * n_exp : (b + 1) * n_exp].reshape(-1)
                bound = torch.topk(maxima, min(k, maxima.numel())).values[-1]
                reach = row_max >= bound
                if len(present) > 1:
                    reach &= samples == b
                flat = s[reach].reshape(-1)
                tops[b].append(torch.topk(flat, min(k, flat.numel())).values)


class ContributionCapture:
    """Capture contribution scores while the model runs on prompt + response ids.

    Use as a context manager; the hooks are removed on exit, whatever happens inside.

    Parameters
    ----------
    model
        A causal LM; fused experts modules need the ``grouped_mm`` (or ``batched_mm``)
        experts implementation.
    adapter
        The family adapter (:func:`moemui.adapters.adapter_for`).
    variants
        Which ``h`` to score: ``gate`` (act of the gate projection), ``glu`` (the true
        input of the down projection), ``act`` (g * h without the projection).
    k_top
        K, the number of largest triple scores kept per sample and layer.
    name
        The model's name, for error messages.
    keep_activations
        Also keep, per MoE layer and forward, the captured routing (token, expert, g)
        and h of every pair and of the shared experts in ``self.records``, for checks
        that rebuild each block's output from them. Memory grows with the data: for
        tests and debugging only.
    batch_invariant
        Run each sequence of a batch through the model on its own (the default), so a
        sample's scores are bit-identical whatever the batch size and the other samples
        in its batch. ``False`` runs a batch as one padded forward: faster where the
        hardware gains from batching (GPUs), but the padded shapes change the order of
        torch's float sums, so scores then agree across batch sizes only to rounding
        (about 1e-7 relative).
    """

    def __init__(
        self,
        model: nn.Module,
        adapter: FusedExpertsAdapter,
        variants: tuple[str, ...] = ("gate", "glu"),
        k_top: int = 1,
        name: str = "model",
        keep_activations: bool = False,
        batch_invariant: bool = True,
    ):
        unknown = [v for v in variants if v not in VARIANTS]
        if unknown or not variants:
            raise MoemuiError(f"unknown variants {unknown}; expected some of {', '.join(VARIANTS)}")
        self.model = model
        self.adapter = adapter
        self.variants = tuple(variants)
        self.k_top = int(k_top)
        self.name = name
        self.batch_invariant = bool(batch_invariant)
        self.geometry = adapter.geometry(model, name)
        self.layers = adapter.moe_layers(model)
        self.unembed = adapter.unembedding(model)
        self._state: _BatchState | None = None
        self._hooks: list = []
        self._active = False
        self.records: list[dict] | None = [] if keep_activations else None

    @property
    def collecting(self) -> bool:
        """Whether the hooks' values are wanted now (inside :meth:`score_batch`, or kept
        as records); the model may also run under the context for other reasons."""
        return self._state is not None or self.records is not None

    # -- installing and removing the hooks ---------------------------------------------
    def __enter__(self) -> ContributionCapture:
        try:
            for slot, layer in enumerate(self.layers):
                if getattr(layer.experts, "_is_expert_parallel", False):
                    raise MoemuiError(f"{self.name}: expert-parallel experts are not supported")
                self._hooks += hook_layer(self.adapter, LayerRecorder(self, slot, layer))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        self._active = True
        return self

    def __exit__(self, *exc) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()
        self._state = None
        self._active = False

    # -- one batch ----------------------------------------------------------------------
    @torch.no_grad()
    def score_batch(
        self,
        prompts: list[list[int]],
        responses: list[list[int]],
        target: Target = "next",
        ids: list[str] | None = None,
    ) -> BatchScores:
        """Score ``prompt + response`` ids teacher-forced and reduce the scores.

        One forward per sequence (``batch_invariant``) or one padded forward for the
        batch. ``ids`` name the samples in error messages.
        """
        if not self._active:
            raise RuntimeError("score_batch must run inside the capture context")
        ids = ids or [str(b) for b in range(len(prompts))]
        if not self.batch_invariant:
            return self._forward(prompts, responses, target, ids)
        return _concat(
            [
                self._forward([p], [r], target, [i])
                for p, r, i in zip(prompts, responses, ids, strict=True)
            ]
        )

    def _forward(
        self, prompts: list[list[int]], responses: list[list[int]], target: Target, ids: list[str]
    ) -> BatchScores:
        """One teacher-forced pass over the (right-padded) sequences, reduced."""
        device = self.unembed.device
        seqs = [list(p) + list(r) for p, r in zip(prompts, responses, strict=True)]
        input_ids, attention = right_pad(seqs, 0)
        batch, width = input_ids.shape
        targets = torch.full((batch, width), -1, dtype=torch.long)
        for b, seq in enumerate(seqs):
            pos, tgt = scored_positions(len(prompts[b]), len(seq), target)
            targets[b, pos] = input_ids[b, tgt]
        n_tokens = (targets >= 0).sum(dim=1)

        state = _BatchState(self.geometry, self.variants, batch, self.k_top, device)
        flat_targets = targets.reshape(-1).to(device)
        scored = torch.nonzero(flat_targets >= 0).squeeze(1)
        state.u_index = torch.full_like(flat_targets, -1)
        state.u_index[scored] = torch.arange(scored.numel(), device=device)
        state.scored_flat = scored
        state.sample_of = scored // width
        state.u = self.unembed[flat_targets[scored]].float()
        self._state = state
        try:
            self.model(
                input_ids=input_ids.to(device),
                attention_mask=attention.to(device),
                use_cache=False,
                logits_to_keep=1,
            )
        finally:
            self._state = None
        return self._finish(state, n_tokens, ids)

    def _finish(self, state: _BatchState, n_tokens: torch.Tensor, ids: list[str]) -> BatchScores:
        n_layers, batch = len(self.layers), state.batch_size
        n_exp, n_neu = state.n_experts, state.n_neurons
        route_tokens = state.route_tokens.view(n_layers, batch, n_exp).cpu()
        route_weight = state.route_weight.view(n_layers, batch, n_exp).cpu()
        n_tok = n_tokens.view(1, batch, 1)
        # positions where an expert is not selected contribute s = 0 triples; a sample
        # with no scored position has no triple, and its scores are 0
        unrouted = (route_tokens < n_tok) | (n_tok == 0)  # [L, B, E]
        n_zero = ((n_tok[..., 0] * n_exp - route_tokens.sum(-1)) * n_neu).long()  # [L, B]
        n_zero = n_zero.clamp(max=self.k_top).tolist()
        score, pairtop = {}, {}
        for variant in self.variants:
            s = state.score[variant].view(n_layers, batch, n_exp, n_neu).cpu()
            s = torch.where(unrouted.unsqueeze(-1), s.clamp(min=0.0), s)
            bad = ~torch.isfinite(s)
            if bad.any():
                slot, b = (int(i) for i in torch.nonzero(bad)[0][:2])
                raise MoemuiError(
                    f"{self.name}: non-finite contribution score ({variant}) in sample "
                    f"{ids[b]!r} at layer {self.geometry.moe_layers[slot]}"
                )
            score[variant] = s.permute(1, 0, 2, 3).numpy()
            top = np.full((batch, n_layers, self.k_top), np.nan, dtype=np.float32)
            for slot in range(n_layers):
                for b in range(batch):
                    parts = [p.cpu() for p in state.partial_top[variant][slot][b]]
                    parts.append(torch.zeros(n_zero[slot][b]))  # the s = 0 triples
                    cand = torch.cat(parts)
                    k = min(self.k_top, cand.numel())
                    top[b, slot, :k] = torch.topk(cand, k).values.numpy()
            pairtop[variant] = top
        return BatchScores(
            score=score,
            pairtop=pairtop,
            route_tokens=route_tokens.permute(1, 0, 2).numpy().astype(np.int32),
            route_weight=route_weight.permute(1, 0, 2).numpy().astype(np.float32),
            n_tokens=n_tokens.numpy().astype(np.int32),
        )

    # -- scoring, called through each layer's recorder (moemui.capture_hooks) ----------
    def score_routed(self, slot, token_g, expert_g, weight_g, h, a) -> None:
        """Fold routed pairs of MoE layer ``slot`` into the batch: pair i is token
        ``token_g[i]`` (flat position) routed to expert ``expert_g[i]`` (sorted) with
        weight ``weight_g[i]``; ``h`` and ``a`` are its ``glu`` and ``gate`` h
        (``[P, N]``). Called by :meth:`moemui.capture_hooks.LayerRecorder.routed`."""
        layer = self.layers[slot]
        experts = layer.experts
        keep = expert_g < self.geometry.routed_experts  # identity/zero experts have no neuron
        if layer.skip_zero_weight:
            keep &= weight_g != 0
        if not bool(keep.all()):
            token_g, expert_g, weight_g = token_g[keep], expert_g[keep], weight_g[keep]
            h = h[keep]
            a = a[keep] if a is not None else None
        if layer.routed_scale != 1.0:
            weight_g = weight_g * layer.routed_scale
        if self.records is not None:
            self.records.append(
                {
                    "slot": slot,
                    "kind": "routed",
                    "token": token_g,
                    "expert": expert_g,
                    "g": weight_g,
                    "h": h,
                    "act": a,
                }
            )
        state = self._state
        if state is None:  # the model runs outside score_batch (e.g. generate)
            return
        dev = state.u.device  # a layer may sit on another GPU (device_map)
        if token_g.device != dev:
            token_g, expert_g, weight_g, h = (t.to(dev) for t in (token_g, expert_g, weight_g, h))
            a = a.to(dev) if a is not None else None
        rows_u = state.u_index[token_g]
        keep = rows_u >= 0
        if not bool(keep.any()):
            return
        rows_u, tok, exp = rows_u[keep], token_g[keep], expert_g[keep]
        g = weight_g[keep].float().unsqueeze(-1)
        counts = torch.bincount(exp, minlength=self.geometry.routed_experts)
        offsets = torch.cumsum(counts, dim=0, dtype=torch.int32)
        # [E, H, N]: column j of expert e is down[e, :, j] (transposed layouts: [E, N, H])
        down = self.adapter.down_weights(experts).float().to(dev)
        transposed = not self.adapter.down_transposed(experts)
        u = state.u[rows_u]
        if layer.expert_norm is not None:  # <d * w_e, u> = <d, u * w_e>: [P, H], not [E, N, H]
            u = u * layer.expert_norm.weight.float().to(dev)[exp]
        if self.geometry.neurons_per_expert % 4 == 0:
            proj = _grouped_linear(u, down, offsets, is_transposed=transposed)
        else:  # grouped_mm needs 16-byte strides; tiny experts (Doge's single neurons)
            spec = "ph,phn->pn" if transposed else "ph,pnh->pn"
            proj = torch.einsum(spec, u, down[exp])
        samples = tok // (state.u_index.numel() // state.batch_size)
        rows = samples * state.n_experts + exp
        scores = {}
        for variant in self.variants:
            if variant == "glu":
                scores[variant] = g * h[keep].float() * proj
            elif variant == "gate":
                scores[variant] = g * a[keep].float() * proj
            else:  # act
                scores[variant] = g * a[keep].float()
        state.add(slot, rows, samples, scores)
        state.route_tokens[slot].index_add_(0, rows, torch.ones_like(rows, dtype=torch.float64))
        state.route_weight[slot].index_add_(0, rows, g.squeeze(-1).double())

    def score_shared_experts(self, slot, h, a, g, down) -> None:
        """Fold the shared experts' scores of every position into the batch (called by
        :meth:`moemui.capture_hooks.LayerRecorder.shared`).

        ``h``, ``a``: ``[..., m*N]`` (the ``glu`` and ``gate`` h, positions flat in
        batch order); ``g``: None (1), a number, ``[T, 1]`` or, where each of the m
        virtual experts has its own weight (Inkling), ``[T, m]``; ``down``: the down
        projection ``[H, m*N]``.
        """
        if self.records is not None:
            self.records.append(
                {"slot": slot, "kind": "shared", "g": g, "h": h, "act": a, "down": down}
            )
        state = self._state
        if state is None:
            return
        n_flat = state.u_index.numel()
        dev = state.u.device  # a layer may sit on another GPU (device_map)
        h = h.reshape(-1, h.shape[-1]).to(dev)
        a = a.reshape(-1, a.shape[-1]).to(dev)
        if torch.is_tensor(g):
            g = g.to(dev)
        if h.shape[0] != n_flat:
            raise MoemuiError(
                f"{self.name}: shared expert saw {h.shape[0]} tokens, expected {n_flat}"
            )
        pos = state.scored_flat
        if pos.numel() == 0:
            return
        m, n = self.geometry.shared_experts, state.n_neurons
        if torch.is_tensor(g) and g.reshape(n_flat, -1).shape[1] > 1:  # a weight per expert
            g = g.reshape(n_flat, m)[pos].float()  # [T_s, m]
            g_full = g.repeat_interleave(n, dim=1)  # [T_s, m*N]
        else:  # one weight per position
            if torch.is_tensor(g):
                g_full = g.reshape(n_flat, 1)[pos].float()
            else:
                g_full = torch.full((pos.numel(), 1), 1.0 if g is None else float(g))
            g = g_full.to(pos.device).expand(-1, m)
            g_full = g[:, :1]
        proj = state.u @ down.float().to(dev)  # [T_s, m*N]
        scores = {}
        for variant in self.variants:
            if variant == "glu":
                s = g_full * h[pos].float() * proj
            elif variant == "gate":
                s = g_full * a[pos].float() * proj
            else:
                s = g_full * a[pos].float().expand_as(proj)
            scores[variant] = s.reshape(-1, n)  # [T_s * m, N], virtual experts contiguous
        samples = state.sample_of.repeat_interleave(m)
        virtual = torch.arange(m, device=pos.device).repeat(pos.numel())
        rows = samples * state.n_experts + state.n_routed + virtual
        state.add(slot, rows, samples, scores)
        state.route_tokens[slot].index_add_(0, rows, torch.ones_like(rows, dtype=torch.float64))
        state.route_weight[slot].index_add_(0, rows, g.reshape(-1).double())


def _concat(parts: list[BatchScores]) -> BatchScores:
    """The batch of several single-sample :class:`BatchScores`, in order."""
    first = parts[0]
    return BatchScores(
        score={v: np.concatenate([p.score[v] for p in parts]) for v in first.score},
        pairtop={v: np.concatenate([p.pairtop[v] for p in parts]) for v in first.pairtop},
        route_tokens=np.concatenate([p.route_tokens for p in parts]),
        route_weight=np.concatenate([p.route_weight for p in parts]),
        n_tokens=np.concatenate([p.n_tokens for p in parts]),
    )
