"""The key-neuron rule (docs/method.md §3): how many triples a layer keeps, their threshold,
the mask.

For a threshold ``tau`` and MoE layer size ``n_layer = N * (E_s + E_r)``, each
layer keeps ``k = max(1, floor(tau * n_layer))`` triples: ``theta`` is the k-th
largest positive triple score of the sample at that layer (the smallest positive one
when fewer than k are positive), read from ``pairtop``; the sample's key neurons
are the (expert, neuron) whose ``score`` (max over t) is >= theta and > 0.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from moemui.errors import MoemuiError

__all__ = ["k_for", "key_neuron_mask", "thetas"]


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
