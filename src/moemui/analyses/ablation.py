"""Ablation: do the key neurons matter more than as many random neurons?

Zeroing neuron ``j`` of routed expert ``e`` removes exactly its term
``g * h_j * d_j`` from the MoE block's output: it is zeroing column
``down_proj[e, :, j]`` of the fused experts module. For a shared expert ``s`` (the
``s``-th slice of ``N`` neurons of the shared MLP), it is zeroing column
``s * N + j`` of the shared MLP's ``down_proj`` weight. :func:`zeroed_neurons` does this
inside a context that restores the weights.

The control draws, for each expert holding key neurons, as many random neurons of
the same expert (from its non-key neurons when it has enough, else from all of its
neurons), once per seed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd

from moemui.errors import MoemuiError

log = logging.getLogger(__name__)

ABLATION_COLUMNS = [
    "model",
    "task",
    "variant",
    "threshold",
    "condition",
    "seed",
    "n_neurons",
    "n_experts",
    "n_samples",
    "accuracy",
    "baseline_accuracy",
    "accuracy_drop",
]

#: A neuron: (decoder layer index, expert index in store order, neuron index).
Neuron = tuple[int, int, int]


def neurons_from_flat(flat: np.ndarray, layers: Iterable[int], n_exp: int, n_neu: int):
    """Flat ``(layer position, expert, neuron)`` indices -> ``[(layer, expert, neuron)]``
    with the decoder layer index of each position."""
    layers = list(layers)
    pos, rest = np.divmod(np.asarray(flat, dtype=np.int64), n_exp * n_neu)
    expert, neuron = np.divmod(rest, n_neu)
    return [(layers[p], int(e), int(j)) for p, e, j in zip(pos, expert, neuron, strict=True)]


def random_control(key: list[Neuron], n_neu: int, rng: np.random.Generator) -> list[Neuron]:
    """As many neurons per expert as ``key`` holds there, drawn at random from the
    same expert's non-key neurons (from all of its neurons when too few are non-key)."""
    by_expert: dict[tuple[int, int], set[int]] = {}
    for layer, expert, neuron in key:
        by_expert.setdefault((layer, expert), set()).add(neuron)
    out: list[Neuron] = []
    for (layer, expert), chosen in sorted(by_expert.items()):
        pool = np.setdiff1d(np.arange(n_neu), sorted(chosen))
        if pool.size < len(chosen):
            pool = np.arange(n_neu)
        picks = rng.choice(pool, len(chosen), replace=False)
        out.extend((layer, expert, int(j)) for j in sorted(picks))
    return out


_SHARED_DOWN = ("down_proj", "output_linear", "w2", "fc2")


def _shared_down(shared):
    """The shared MLP's down projection (a Linear whose input is h)."""
    for name in _SHARED_DOWN:
        down = getattr(shared, name, None)
        if down is not None and hasattr(down, "weight"):
            return down
    raise MoemuiError(f"no down projection ({', '.join(_SHARED_DOWN)}) in the shared MLP")


def down_column(moe_layer, expert: int, neuron: int):
    """A view of the vector neuron ``neuron`` of expert ``expert`` writes: column
    ``down_proj[e, :, j]`` of the fused experts (row ``[e, j, :]`` when transposed), or
    column ``s * N + j`` of the shared MLP's down projection for shared expert ``s``."""
    experts = moe_layer.experts
    down = experts.down_proj
    transposed = bool(getattr(experts, "is_transposed", False))
    n_routed, n_neu = down.shape[0], down.shape[1] if transposed else down.shape[2]
    if not 0 <= neuron < n_neu:
        raise MoemuiError(f"layer {moe_layer.index}: no neuron {neuron} (N = {n_neu})")
    if expert < n_routed:
        return down[expert, neuron, :] if transposed else down[expert, :, neuron]
    if moe_layer.shared is None:
        raise MoemuiError(f"layer {moe_layer.index} has no expert {expert}")
    weight = _shared_down(moe_layer.shared).weight
    col = (expert - n_routed) * n_neu + neuron
    if col >= weight.shape[1]:
        raise MoemuiError(f"layer {moe_layer.index} has no expert {expert}")
    return weight[:, col]


@contextmanager
def zeroed_neurons(model, adapter, neurons: Iterable[Neuron]) -> Iterator[int]:
    """Zero the down-projection columns of ``neurons`` inside the block; restore them
    on exit, whatever happens. Yields the number of neurons zeroed."""
    import torch

    layers = {layer.index: layer for layer in adapter.moe_layers(model)}
    saved = []
    try:
        with torch.no_grad():
            for layer, expert, neuron in neurons:
                if layer not in layers:
                    raise MoemuiError(f"layer {layer} is not a MoE layer of the model")
                column = down_column(layers[layer], expert, neuron)
                saved.append((column, column.clone()))
                column.zero_()
        yield len(saved)
    finally:
        with torch.no_grad():
            for column, values in reversed(saved):
                column.copy_(values)


def ablation_table(
    accuracy_of,
    key: list[Neuron],
    n_neu: int,
    seeds: Iterable[int],
    meta: dict,
) -> pd.DataFrame:
    """Run the baseline, the key-neuron ablation and one random control per seed.

    ``accuracy_of(neurons) -> (accuracy, n_samples)`` scores the model with
    ``neurons`` zeroed (none: the baseline). ``meta`` gives model, task, variant and
    threshold. Returns :data:`ABLATION_COLUMNS` rows.
    """
    runs: list[tuple[str, int | None, list[Neuron]]] = [("baseline", None, []), ("key", None, key)]
    for seed in seeds:
        runs.append(("random", int(seed), random_control(key, n_neu, np.random.default_rng(seed))))
    rows = []
    baseline = None
    for condition, seed, neurons in runs:
        accuracy, n = accuracy_of(neurons)
        if baseline is None:
            baseline = accuracy
        log.info("%s (seed %s, %d neurons): accuracy %.3f", condition, seed, len(neurons), accuracy)
        rows.append(
            {
                **meta,
                "condition": condition,
                "seed": seed,
                "n_neurons": len(neurons),
                "n_experts": len({(layer, e) for layer, e, _ in neurons}),
                "n_samples": n,
                "accuracy": accuracy,
                "baseline_accuracy": baseline,
                "accuracy_drop": baseline - accuracy,
            }
        )
    table = pd.DataFrame(rows, columns=ABLATION_COLUMNS)
    table["seed"] = table["seed"].astype("Int64")
    return table
