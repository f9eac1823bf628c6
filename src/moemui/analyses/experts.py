"""Experts (docs/method.md §4): key rates, key-expert proportions, activation rates, concentration.

- An expert ``(l, e)`` is key for a sample when it holds at least one of the sample's
  key neurons; ``key_rate`` is the fraction of the task's samples for which it is key.
- ``KeyExpertProportion(rho)`` = experts with ``key_rate > rho`` / ``L * (E_s + E_r)``.
- ``expert_mui`` (expert-level MUI) = the share of an expert's ``N`` neurons that are in
  the task's key set (the union of its samples' key neurons).
- ``activation_rate`` = response tokens routed to the expert / response tokens
  (shared experts: 1).
- Concentration: the share of the task's key neurons (union over samples) that lie in
  shared experts, and the Gini coefficient of key-neuron counts across all experts.
- Top experts, two views: by activation rate (:func:`top_experts`), and as the paper
  shows them, by key rate with the expert-level MUI (:func:`top_key_experts`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import xarray as xr

from moemui.analyses.keys import GroupKeys, as_keys
from moemui.analyses.stats import gini
from moemui.errors import MoemuiError

EXPERT_COLUMNS = [
    "model",
    "task",
    "variant",
    "threshold",
    "layer",
    "expert",
    "expert_kind",
    "key_samples",
    "key_rate",
    "key_neurons",
    "expert_mui",
    "activation_rate",
    "n_samples",
]
KEY_EXPERT_COLUMNS = [
    "model",
    "task",
    "variant",
    "threshold",
    "rho",
    "key_experts",
    "total_experts",
    "key_expert_proportion",
    "key_neurons",
    "shared_experts",
    "shared_key_neurons",
    "shared_key_share",
    "gini",
    "n_samples",
]
TOP_EXPERT_COLUMNS = [
    "model",
    "task",
    "rank",
    "layer",
    "expert",
    "expert_kind",
    "routed_tokens",
    "activation_rate",
]
#: The per-expert columns, with the rank after the cell's.
TOP_KEY_EXPERT_COLUMNS = [*EXPERT_COLUMNS[:4], "rank", *EXPERT_COLUMNS[4:]]


def activation_rates(source: xr.Dataset | GroupKeys) -> np.ndarray:
    """``[layer, expert]``: the fraction of the task's response tokens routed to each
    expert (shared experts see every token: 1). NaN when the task has no response token.
    """
    keys = as_keys(source, [])
    if keys.route_tokens is None or keys.n_tokens is None:
        raise MoemuiError(
            f"{keys.model}/{keys.task}: the store group holds no route_tokens and n_tokens"
        )
    total = int(keys.n_tokens.sum())
    if total == 0:
        return np.full(keys.route_tokens.shape, np.nan)
    return keys.route_tokens / total


def expert_tables(
    source: xr.Dataset | GroupKeys,
    thresholds: Iterable[float],
    rhos: Iterable[float],
    model: str,
    task: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-expert rows (:data:`EXPERT_COLUMNS`) and key-expert rows
    (:data:`KEY_EXPERT_COLUMNS`) of one store group (or its derived key neurons), for
    every variant and threshold.
    """
    thresholds = sorted({float(t) for t in thresholds})
    rhos = sorted({0.0, *(float(r) for r in rhos)})
    keys = as_keys(source, thresholds, model, task)
    n_samples, n_layers, n_exp = keys.n_samples, keys.n_layers, keys.n_experts
    n_neu, kinds = keys.n_neurons, keys.expert_kind
    shared = np.tile(kinds == "shared", n_layers)  # flat (layer, expert)
    layers = np.repeat(keys.layers, n_exp)
    experts = np.tile(np.arange(n_exp), n_layers)
    act = activation_rates(keys).ravel()
    expert_frames, key_rows = [], []
    for variant in keys.variants:
        for tau in thresholds:
            sample, index = keys.entries(variant, tau)
            # samples for which each expert holds a key neuron: distinct (sample, expert)
            pairs = np.unique(sample.astype(np.int64) * (n_layers * n_exp) + index // n_neu)
            key_samples = np.bincount(pairs % (n_layers * n_exp), minlength=n_layers * n_exp)
            neurons = np.bincount(np.unique(index) // n_neu, minlength=n_layers * n_exp)
            key_rate = key_samples / n_samples if n_samples else np.full(key_samples.shape, np.nan)
            expert_frames.append(
                pd.DataFrame(
                    {
                        "model": model,
                        "task": task,
                        "variant": variant,
                        "threshold": tau,
                        "layer": layers,
                        "expert": experts,
                        "expert_kind": np.tile(kinds, n_layers),
                        "key_samples": key_samples,
                        "key_rate": key_rate,
                        "key_neurons": neurons,
                        "expert_mui": neurons / n_neu,
                        "activation_rate": act,
                        "n_samples": n_samples,
                    }
                )
            )
            total_key = int(neurons.sum())
            shared_key = int(neurons[shared].sum())
            for rho in rhos:
                n_key = int((key_rate > rho).sum())
                key_rows.append(
                    {
                        "model": model,
                        "task": task,
                        "variant": variant,
                        "threshold": tau,
                        "rho": rho,
                        "key_experts": n_key,
                        "total_experts": n_layers * n_exp,
                        "key_expert_proportion": n_key / (n_layers * n_exp),
                        "key_neurons": total_key,
                        "shared_experts": int(shared.sum()),
                        "shared_key_neurons": shared_key,
                        "shared_key_share": shared_key / total_key if total_key else np.nan,
                        "gini": gini(neurons),
                        "n_samples": n_samples,
                    }
                )
    if not expert_frames:
        raise MoemuiError(f"{model}/{task}: the store group holds no score_* array")
    return (
        pd.concat(expert_frames, ignore_index=True)[EXPERT_COLUMNS],
        pd.DataFrame(key_rows, columns=KEY_EXPERT_COLUMNS),
    )


def top_experts(
    source: xr.Dataset | GroupKeys, model: str, task: str, top: int = 10
) -> pd.DataFrame:
    """The ``top`` experts of a group by activation rate (ties: lower layer, then
    lower expert index first), with their kind (:data:`TOP_EXPERT_COLUMNS`)."""
    keys = as_keys(source, [], model, task)
    n_exp = keys.n_experts
    table = pd.DataFrame(
        {
            "model": model,
            "task": task,
            "layer": np.repeat(keys.layers, n_exp),
            "expert": np.tile(np.arange(n_exp), keys.n_layers),
            "expert_kind": np.tile(keys.expert_kind, keys.n_layers),
            "routed_tokens": keys.route_tokens.ravel(),
            "activation_rate": activation_rates(keys).ravel(),
        }
    )
    table = table.sort_values(
        ["activation_rate", "layer", "expert"], ascending=[False, True, True], kind="stable"
    ).head(top)
    table.insert(2, "rank", np.arange(1, len(table) + 1))
    return table[TOP_EXPERT_COLUMNS].reset_index(drop=True)


def top_key_experts(experts: pd.DataFrame, top: int = 10) -> pd.DataFrame:
    """The ``top`` experts of each cell, variant and threshold by key rate, as the paper
    ranks them (:data:`TOP_KEY_EXPERT_COLUMNS`).

    ``experts`` is a per-expert table (:data:`EXPERT_COLUMNS`, :func:`expert_tables`).
    Ties in key rate go to the larger expert-level MUI, then the lower layer, then the
    lower expert index. Experts key for no sample are never listed, so a cell may have
    fewer than ``top`` rows.
    """
    missing = [c for c in EXPERT_COLUMNS if c not in experts.columns]
    if missing:
        raise MoemuiError(f"the per-expert table lacks the columns {', '.join(missing)}")
    order = ["key_rate", "expert_mui", "layer", "expert"]
    parts = []
    # cells in the per-expert table's order
    for _, rows in experts.groupby(["model", "task", "variant", "threshold"], sort=False):
        ranked = rows[rows["key_samples"] > 0].sort_values(
            order, ascending=[False, False, True, True], kind="stable"
        )
        parts.append(ranked.head(top).assign(rank=np.arange(1, min(top, len(ranked)) + 1)))
    if not parts:
        return pd.DataFrame(columns=TOP_KEY_EXPERT_COLUMNS)
    return pd.concat(parts, ignore_index=True)[TOP_KEY_EXPERT_COLUMNS]
