"""Experts (SPEC §4): key rates, key-expert proportions, activation rates, concentration.

- An expert ``(l, e)`` is key for a sample when it holds at least one of the sample's
  key neurons; ``key_rate`` is the fraction of the task's samples for which it is key.
- ``KeyExpertProportion(rho)`` = experts with ``key_rate > rho`` / ``L * (E_s + E_r)``.
- ``activation_rate`` = response tokens routed to the expert / response tokens
  (shared experts: 1).
- Concentration: the share of the task's key neurons (union over samples) that lie in
  shared experts, and the Gini coefficient of key-neuron counts across all experts.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import xarray as xr

from moemui.analyses.keys import key_sets, variants_of
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


def _kinds(ds: xr.Dataset) -> np.ndarray:
    if "expert_kind" in ds.coords:
        return np.asarray([str(k) for k in ds["expert_kind"].values])
    return np.full(ds.sizes["expert"], "routed")


def activation_rates(ds: xr.Dataset) -> np.ndarray:
    """``[layer, expert]``: the fraction of the task's response tokens routed to each
    expert (shared experts see every token: 1). NaN when the task has no response token.
    """
    tokens = ds["route_tokens"].values.astype(np.int64).sum(axis=0)
    total = int(ds["n_tokens"].values.astype(np.int64).sum())
    if total == 0:
        return np.full(tokens.shape, np.nan)
    return tokens / total


def expert_tables(
    ds: xr.Dataset,
    thresholds: Iterable[float],
    rhos: Iterable[float],
    model: str,
    task: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-expert rows (:data:`EXPERT_COLUMNS`) and key-expert rows
    (:data:`KEY_EXPERT_COLUMNS`) of one store group, for every variant and threshold.
    """
    thresholds = sorted({float(t) for t in thresholds})
    rhos = sorted({0.0, *(float(r) for r in rhos)})
    n_samples = ds.sizes["sample"]
    n_layers, n_exp, n_neu = ds.sizes["layer"], ds.sizes["expert"], ds.sizes["neuron"]
    kinds = _kinds(ds)
    shared = np.tile(kinds == "shared", n_layers)  # flat (layer, expert)
    layers = np.repeat(np.asarray(ds["layer"].values, dtype=np.int64), n_exp)
    experts = np.tile(np.arange(n_exp), n_layers)
    act = activation_rates(ds).ravel()
    expert_frames, key_rows = [], []
    for variant in variants_of(ds):
        for tau, sets in key_sets(ds, variant, thresholds).items():
            key_samples = np.zeros(n_layers * n_exp, dtype=np.int64)
            for idx in sets:
                key_samples[np.unique(idx // n_neu)] += 1
            union = np.unique(np.concatenate(sets)) if sets else np.array([], dtype=np.int64)
            neurons = np.bincount(union // n_neu, minlength=n_layers * n_exp)
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


def top_experts(ds: xr.Dataset, model: str, task: str, top: int = 10) -> pd.DataFrame:
    """The ``top`` experts of a group by activation rate (ties: lower layer, then
    lower expert index first), with their kind (:data:`TOP_EXPERT_COLUMNS`)."""
    rates = activation_rates(ds)
    tokens = ds["route_tokens"].values.astype(np.int64).sum(axis=0)
    n_exp = ds.sizes["expert"]
    table = pd.DataFrame(
        {
            "model": model,
            "task": task,
            "layer": np.repeat(np.asarray(ds["layer"].values, dtype=np.int64), n_exp),
            "expert": np.tile(np.arange(n_exp), ds.sizes["layer"]),
            "expert_kind": np.tile(_kinds(ds), ds.sizes["layer"]),
            "routed_tokens": tokens.ravel(),
            "activation_rate": rates.ravel(),
        }
    )
    table = table.sort_values(
        ["activation_rate", "layer", "expert"], ascending=[False, True, True], kind="stable"
    ).head(top)
    table.insert(2, "rank", np.arange(1, len(table) + 1))
    return table[TOP_EXPERT_COLUMNS].reset_index(drop=True)
