"""Ablation: do the key neurons matter more than as many random neurons?

Zeroing neuron ``j`` of routed expert ``e`` removes exactly its term
``g * h_j * d_j`` from the MoE block's output: it is zeroing column
``down_proj[e, :, j]`` of the fused experts module. For a shared expert ``s`` (the
``s``-th slice of ``N`` neurons of the shared MLP), it is zeroing column
``s * N + j`` of the shared MLP's ``down_proj`` weight. :func:`zeroed_neurons` does this
inside a context that restores the weights. Where an expert's output is normalised
(Ergo), the norm then rescales what the other neurons write, as the model itself would.

The control draws, for each expert holding key neurons, as many random neurons of
the same expert (from its non-key neurons when it has enough, else from all of its
neurons), once per seed.

Judged against noise (:func:`ablation_summary`): each condition's drop carries its
paired standard error over the samples (``drop_se``: the standard deviation of the
per-sample change in correctness over sqrt(n)), and the key neurons' drop is set against
the spread of the random draws' drops (mean, standard deviation, range, and the share
of draws that cost at least as much, as a permutation p-value).
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
    "drop_se",
]
ABLATION_SUMMARY_COLUMNS = [
    "model",
    "task",
    "variant",
    "threshold",
    "n_samples",
    "n_neurons",
    "n_experts",
    "baseline_accuracy",
    "key_drop",
    "key_drop_se",
    "random_draws",
    "random_drop_mean",
    "random_drop_std",
    "random_drop_min",
    "random_drop_max",
    "excess_drop",
    "random_at_least_key",
    "p_value",
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


def paired_se(before: np.ndarray, after: np.ndarray) -> float:
    """Standard error of the accuracy drop ``mean(before) - mean(after)`` over the same
    samples (``before``, ``after``: per-sample correctness): the sample standard
    deviation of the per-sample differences over sqrt(n); NaN with fewer than 2 samples."""
    diff = np.asarray(before, dtype=float) - np.asarray(after, dtype=float)
    if diff.size < 2:
        return float("nan")
    return float(diff.std(ddof=1) / np.sqrt(diff.size))


def ablation_table(
    correct_of,
    keys: dict[float, list[Neuron]],
    n_neu: int,
    seeds: Iterable[int],
    meta: dict,
) -> pd.DataFrame:
    """Run the baseline once, then per threshold the key-neuron ablation and one random
    control per seed.

    ``correct_of(neurons) -> per-sample correctness`` scores the model with ``neurons``
    zeroed (none: the baseline). ``keys`` maps each threshold to its key neurons;
    ``meta`` gives model, task and variant. Returns :data:`ABLATION_COLUMNS` rows: per
    threshold, a baseline row (the one baseline run), the key row and the random rows.
    """
    seeds = [int(s) for s in seeds]
    baseline = np.asarray(correct_of([]), dtype=bool)
    base_acc = float(baseline.mean()) if baseline.size else float("nan")
    log.info("baseline: accuracy %.3f over %d samples", base_acc, baseline.size)
    rows = []
    for tau in sorted(keys):
        key = keys[tau]
        runs: list[tuple[str, int | None, list[Neuron]]] = [("key", None, key)]
        for seed in seeds:
            control = random_control(key, n_neu, np.random.default_rng(seed))
            runs.append(("random", seed, control))
        rows.append(_row(meta, tau, "baseline", None, [], baseline, baseline))
        for condition, seed, neurons in runs:
            correct = np.asarray(correct_of(neurons), dtype=bool)
            row = _row(meta, tau, condition, seed, neurons, correct, baseline)
            log.info(
                "threshold %g, %s (seed %s, %d neurons): accuracy %.3f (drop %.3f +- %.3f)",
                tau,
                condition,
                seed,
                len(neurons),
                row["accuracy"],
                row["accuracy_drop"],
                row["drop_se"],
            )
            rows.append(row)
    table = pd.DataFrame(rows, columns=ABLATION_COLUMNS)
    table["seed"] = table["seed"].astype("Int64")
    return table


def _row(meta, tau, condition, seed, neurons, correct, baseline) -> dict:
    if correct.shape != baseline.shape:
        raise MoemuiError(
            f"{condition} run scored {correct.size} samples, the baseline {baseline.size}"
        )
    accuracy = float(correct.mean()) if correct.size else float("nan")
    base_acc = float(baseline.mean()) if baseline.size else float("nan")
    return {
        **meta,
        "threshold": float(tau),
        "condition": condition,
        "seed": seed,
        "n_neurons": len(neurons),
        "n_experts": len({(layer, e) for layer, e, _ in neurons}),
        "n_samples": int(correct.size),
        "accuracy": accuracy,
        "baseline_accuracy": base_acc,
        "accuracy_drop": base_acc - accuracy,
        "drop_se": paired_se(baseline, correct),
    }


def ablation_summary(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, task, variant, threshold) of an ablation table: the key
    neurons' drop and its standard error against the random draws' drops
    (:data:`ABLATION_SUMMARY_COLUMNS`).

    ``excess_drop`` = key drop - mean random drop; ``random_at_least_key`` counts the
    draws that cost at least as much as the key neurons, and ``p_value`` =
    (1 + that count) / (1 + draws), the permutation p-value of "the key neurons cost
    no more than random neurons of the same experts" (1 without random draws).
    """
    missing = [c for c in ABLATION_COLUMNS if c not in table.columns]
    if missing:
        raise MoemuiError(f"the ablation table lacks the columns {', '.join(missing)}")
    rows = []
    cell = ["model", "task", "variant", "threshold"]
    for key, part in table.groupby(cell, sort=False):
        keyed = part[part["condition"] == "key"]
        if len(keyed) != 1:
            raise MoemuiError(f"ablation {'/'.join(map(str, key))}: {len(keyed)} key rows, not 1")
        k = keyed.iloc[0]
        drops = part.loc[part["condition"] == "random", "accuracy_drop"].to_numpy(float)
        at_least = int((drops >= k["accuracy_drop"] - 1e-12).sum())
        rows.append(
            {
                **dict(zip(cell, key, strict=True)),
                "n_samples": int(k["n_samples"]),
                "n_neurons": int(k["n_neurons"]),
                "n_experts": int(k["n_experts"]),
                "baseline_accuracy": float(k["baseline_accuracy"]),
                "key_drop": float(k["accuracy_drop"]),
                "key_drop_se": float(k["drop_se"]),
                "random_draws": int(drops.size),
                "random_drop_mean": float(drops.mean()) if drops.size else np.nan,
                "random_drop_std": float(drops.std(ddof=1)) if drops.size > 1 else np.nan,
                "random_drop_min": float(drops.min()) if drops.size else np.nan,
                "random_drop_max": float(drops.max()) if drops.size else np.nan,
                "excess_drop": float(k["accuracy_drop"] - drops.mean()) if drops.size else np.nan,
                "random_at_least_key": at_least,
                "p_value": (1 + at_least) / (1 + drops.size),
            }
        )
    return pd.DataFrame(rows, columns=ABLATION_SUMMARY_COLUMNS)
