"""MUI of a store group at several thresholds (docs/method.md §3), from its key neurons.

For a threshold ``tau`` and MoE layer size ``n_layer = N * (E_s + E_r)``, each
layer keeps ``k = max(1, floor(tau * n_layer))`` triples: ``theta`` is the k-th
largest positive triple score of the sample at that layer (the smallest positive one
when fewer than k are positive), read from ``pairtop``; the sample's key neurons
are the (expert, neuron) whose ``score`` (max over t) is >= theta and > 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd

from moemui.analyses.keys import as_keys
from moemui.defaults import default
from moemui.errors import MoemuiError
from moemui.keyrule import k_for, key_neuron_mask, thetas

__all__ = [
    "MUI_COLUMNS",
    "MUI_CORRECT_COLUMNS",
    "k_for",
    "key_neuron_mask",
    "mui_table",
    "thetas",
]

MUI_COLUMNS = [
    "model",
    "task",
    "variant",
    "threshold",
    "mui",
    "key_neurons",
    "total_neurons",
    "n_samples",
]
#: The columns ``mui_table(..., correct_only=True)`` adds after :data:`MUI_COLUMNS`.
MUI_CORRECT_COLUMNS = ["mui_correct", "key_neurons_correct", "n_samples_correct"]


def mui_table(
    source,
    thresholds: Iterable[float],
    model: str,
    task: str,
    correct_only: bool | None = None,
    sample_chunk: int = 16,
) -> pd.DataFrame:
    """MUI of one store group for every variant and threshold, one row each.

    ``source`` is the store group (an ``xr.Dataset``, whose score arrays are read once,
    ``sample_chunk`` samples at a time) or its key neurons already derived
    (:class:`moemui.analyses.keys.GroupKeys`). Columns: :data:`MUI_COLUMNS`, then with
    ``correct_only`` :data:`MUI_CORRECT_COLUMNS`: the same union over the correctly
    answered samples only (the group's ``correct`` array). ``mui_correct`` is NaN when
    no sample is correct. ``correct_only`` defaults to the config's ``correct_only``.

    Raises
    ------
    MoemuiError
        No ``score_*`` array; ``correct_only`` on a group without a ``correct`` array.
    """
    correct_only = default("correct_only") if correct_only is None else correct_only
    thresholds = sorted(set(float(t) for t in thresholds))
    keys = as_keys(source, thresholds, model, task, sample_chunk)
    if correct_only and keys.correct is None:
        raise MoemuiError(f"{model}/{task}: the store group holds no correct array")
    total = keys.total_neurons
    correct = keys.correct
    rows = []
    for variant in keys.variants:
        for tau in thresholds:
            sample, index = keys.entries(variant, tau)
            key = int(np.unique(index).size)
            extra = {}
            if correct_only:
                n_ok = int(correct.sum())
                key_ok = int(np.unique(index[correct[sample]]).size)
                extra = {
                    "mui_correct": key_ok / total if n_ok else math.nan,
                    "key_neurons_correct": key_ok,
                    "n_samples_correct": n_ok,
                }
            rows.append(
                {
                    "model": model,
                    "task": task,
                    "variant": variant,
                    "threshold": tau,
                    "mui": key / total,
                    "key_neurons": key,
                    "total_neurons": total,
                    "n_samples": keys.n_samples,
                    **extra,
                }
            )
    return pd.DataFrame(rows, columns=MUI_COLUMNS + (MUI_CORRECT_COLUMNS if correct_only else []))
