"""Per-sample key neurons as sparse index sets (SPEC §3), shared by the analyses.

A sample's key neurons are few (about ``k_l`` per layer), so each sample keeps the
sorted flat indices of its key neurons into the ``(layer, expert, neuron)`` grid
rather than a dense mask: unions over any subset of samples stay cheap for models
of any size.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import xarray as xr

from moemui.errors import MoemuiError
from moemui.metrics import k_for, key_neuron_mask


def variants_of(ds: xr.Dataset) -> list[str]:
    """The score variants a store group holds, sorted."""
    return sorted(n.removeprefix("score_") for n in ds.data_vars if n.startswith("score_"))


def key_sets(
    ds: xr.Dataset,
    variant: str,
    thresholds: Iterable[float],
    sample_chunk: int = 64,
) -> dict[float, list[np.ndarray]]:
    """Per threshold, per sample: the flat indices of the sample's key neurons.

    Indices run over ``(layer, expert, neuron)`` in C order, so ``index // N`` is the
    flat ``(layer, expert)`` index and ``index // (E * N)`` the layer position.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> score = np.zeros((1, 1, 2, 3), dtype=np.float32); score[0, 0, 1, 2] = 4.0
    >>> top = np.array([[[4.0, np.nan]]], dtype=np.float32)
    >>> ds = xr.Dataset({"score_glu": (("sample", "layer", "expert", "neuron"), score),
    ...                  "pairtop_glu": (("sample", "layer", "rank"), top)})
    >>> key_sets(ds, "glu", [0.1])[0.1]
    [array([5])]
    """
    if f"score_{variant}" not in ds or f"pairtop_{variant}" not in ds:
        raise MoemuiError(f"the store group holds no variant {variant!r} (has {variants_of(ds)})")
    thresholds = sorted({float(t) for t in thresholds})
    n_layer = ds.sizes["expert"] * ds.sizes["neuron"]
    ks = {tau: k_for(tau, n_layer) for tau in thresholds}
    out: dict[float, list[np.ndarray]] = {tau: [] for tau in thresholds}
    score_var, top_var = ds[f"score_{variant}"], ds[f"pairtop_{variant}"]
    for start in range(0, ds.sizes["sample"], sample_chunk):
        sl = slice(start, start + sample_chunk)
        score, top = score_var[sl].values, top_var[sl].values
        for tau, k in ks.items():
            mask = key_neuron_mask(score, top, k).reshape(score.shape[0], -1)
            out[tau].extend(np.flatnonzero(row) for row in mask)
    return out


def union_size(sets: list[np.ndarray], pick: Iterable[int] | None = None) -> int:
    """Number of distinct key neurons over the samples ``pick`` (all by default)."""
    chosen = sets if pick is None else [sets[i] for i in pick]
    if not chosen:
        return 0
    return int(np.unique(np.concatenate(chosen)).size)
