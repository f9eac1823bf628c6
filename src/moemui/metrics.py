"""MUI and key neurons, recomputed from the activations store alone (SPEC §3).

For a threshold ``tau`` and MoE layer size ``n_layer = N * (E_s + E_r)``, each
layer keeps ``k = max(1, floor(tau * n_layer))`` triples: ``theta`` is the k-th
largest positive triple score of the sample at that layer (the smallest positive one
when fewer than k are positive), read from ``pairtop``; the sample's key neurons
are the (expert, neuron) whose ``score`` (max over t) is >= theta and > 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from fractions import Fraction

import numpy as np
import pandas as pd
import xarray as xr

from moemui.errors import MoemuiError

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


def k_for(tau: float, n_layer: int) -> int:
    """``max(1, floor(tau * n_layer))``, with tau read exactly from its decimal form.

    Examples
    --------
    >>> k_for(0.001, 4096), k_for(0.0008, 4096), k_for(0.002, 4096)
    (4, 3, 8)
    >>> k_for(0.0006, 5000)  # 0.0006 * 5000 is 2.9999999999999996 in binary floats
    3
    """
    if not 0 < tau < 1:
        raise MoemuiError(f"threshold {tau} is outside (0, 1)")
    return max(1, math.floor(Fraction(repr(float(tau))) * n_layer))


def thetas(pairtop: np.ndarray, k: int) -> np.ndarray:
    """Per (sample, layer): the k-th largest positive triple score, else the smallest
    positive one among the first k, else +inf (no key neuron).

    ``pairtop`` is ``[..., K]`` in descending order, NaN-padded.
    """
    if k > pairtop.shape[-1]:
        raise MoemuiError(
            f"k = {k} exceeds the {pairtop.shape[-1]} triple scores kept per layer; "
            "raise capture.max_threshold and re-capture"
        )
    head = pairtop[..., :k]
    positive = np.where(head > 0, head, np.inf)  # NaN > 0 is False
    return positive.min(axis=-1)


def key_neuron_mask(score: np.ndarray, pairtop: np.ndarray, k: int) -> np.ndarray:
    """Boolean ``[sample, layer, expert, neuron]``: the samples' key neurons at ``k``."""
    theta = thetas(pairtop, k)[..., None, None]
    return (score >= theta) & (score > 0)


def mui_table(
    ds: xr.Dataset,
    thresholds: Iterable[float],
    model: str,
    task: str,
    sample_chunk: int = 64,
    correct_only: bool = False,
) -> pd.DataFrame:
    """MUI of one store group for every variant and threshold, one row each.

    Streams samples in chunks, so memory does not grow with the number of samples.
    Columns: :data:`MUI_COLUMNS`, then with ``correct_only`` :data:`MUI_CORRECT_COLUMNS`:
    the same union over the correctly answered samples only (the group's ``correct``
    array), in the same pass. ``mui_correct`` is NaN when no sample is correct.

    Raises
    ------
    MoemuiError
        No ``score_*`` array; ``correct_only`` on a group without a ``correct`` array.
    """
    thresholds = sorted(set(float(t) for t in thresholds))
    variants = sorted(
        name.removeprefix("score_") for name in ds.data_vars if name.startswith("score_")
    )
    if not variants:
        raise MoemuiError(f"{model}/{task}: the store group holds no score_* array")
    n_samples = ds.sizes["sample"]
    correct = None
    if correct_only:
        if "correct" not in ds:
            raise MoemuiError(f"{model}/{task}: the store group holds no correct array")
        correct = ds["correct"].values.astype(bool)
    n_layers, n_exp, n_neu = ds.sizes["layer"], ds.sizes["expert"], ds.sizes["neuron"]
    n_layer = n_exp * n_neu
    total = n_layer * n_layers
    rows = []
    for variant in variants:
        score_var, top_var = ds[f"score_{variant}"], ds[f"pairtop_{variant}"]
        ks = {tau: k_for(tau, n_layer) for tau in thresholds}
        union = {tau: np.zeros((n_layers, n_exp, n_neu), dtype=bool) for tau in thresholds}
        union_ok = {tau: np.zeros((n_layers, n_exp, n_neu), dtype=bool) for tau in thresholds}
        for start in range(0, n_samples, sample_chunk):
            sl = slice(start, start + sample_chunk)
            score = score_var[sl].values
            top = top_var[sl].values
            for tau, k in ks.items():
                mask = key_neuron_mask(score, top, k)
                union[tau] |= mask.any(axis=0)
                if correct is not None:
                    union_ok[tau] |= mask[correct[sl]].any(axis=0)
        for tau in thresholds:
            key = int(union[tau].sum())
            extra = {}
            if correct is not None:
                n_ok, key_ok = int(correct.sum()), int(union_ok[tau].sum())
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
                    "n_samples": n_samples,
                    **extra,
                }
            )
    return pd.DataFrame(rows, columns=MUI_COLUMNS + (MUI_CORRECT_COLUMNS if correct_only else []))
