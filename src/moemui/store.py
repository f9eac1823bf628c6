"""The activations store: one Zarr v3 store, one group per model and task (SPEC §7).

A capture streams batches into a group written at a temporary path beside its final
place (a dot-named sibling, which readers ignore); only when every sample is written
does it mark the group complete and move it into place with one rename. Readers
check the mark, so a partial group is never read as complete.
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr
import zarr

from moemui.errors import MoemuiError

if TYPE_CHECKING:
    from moemui.adapters import Geometry
    from moemui.capture import BatchScores

log = logging.getLogger(__name__)

COMPLETE_ATTR = "complete"
SAMPLE_CHUNK = 16


def consolidate(path: str | os.PathLike) -> None:
    """Consolidate a group's metadata (readers open it without listing the tree).

    Zarr warns that consolidated metadata is not part of the v3 specification; xarray
    reads it, and readers that do not still find every node's own ``zarr.json``.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        zarr.consolidate_metadata(path, zarr_format=3)


def _partial_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial-{os.getpid()}")


class StoreWriter:
    """Write one ``{model}/{task}`` group of the activations store, batch by batch.

    Parameters
    ----------
    path
        The group's final directory, e.g. ``results/activations.zarr/m/t``.
    geometry
        The model's MoE geometry (layers, experts, neurons).
    sample_ids
        Every sample id, in store order.
    variants
        The captured score variants.
    k_top
        K, the number of top triple scores kept per sample and layer.
    attrs
        Group attributes (model, source, revision, family, task, ...).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        geometry: Geometry,
        sample_ids: list[str],
        variants: tuple[str, ...],
        k_top: int,
        attrs: dict,
    ):
        self.path = Path(path)
        self.n_samples = len(sample_ids)
        self.variants = tuple(variants)
        for stale in self.path.parent.glob(f".{self.path.name}.partial-*"):
            log.warning("removing the partial group %s left by an interrupted run", stale)
            shutil.rmtree(stale, ignore_errors=True)
        self.tmp = _partial_path(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.group = zarr.open_group(self.tmp, mode="w", zarr_format=3)
        self.group.attrs.update({**attrs, COMPLETE_ATTR: False})
        self._written = np.zeros(self.n_samples, dtype=bool)

        n_layers, n_exp = len(geometry.moe_layers), geometry.experts_per_layer
        n_neu = geometry.neurons_per_expert
        kinds = ["routed"] * geometry.routed_experts + ["shared"] * geometry.shared_experts
        self._coord("sample", np.array(sample_ids, dtype=object), str)
        self._coord("layer", np.array(geometry.moe_layers, dtype=np.int64))
        self._coord("expert", np.arange(n_exp, dtype=np.int64))
        self._coord("expert_kind", np.array(kinds, dtype=object), str, dims=("expert",))
        self._coord("neuron", np.arange(n_neu, dtype=np.int64))
        chunk = min(SAMPLE_CHUNK, max(1, self.n_samples))
        kind_attr = {"coordinates": "expert_kind"}
        for v in self.variants:
            self._array(
                f"score_{v}",
                (self.n_samples, n_layers, n_exp, n_neu),
                (chunk, 1, n_exp, n_neu),
                np.float32,
                ("sample", "layer", "expert", "neuron"),
                {**kind_attr, "long_name": f"max over t of the contribution score ({v})"},
            )
            self._array(
                f"pairtop_{v}",
                (self.n_samples, n_layers, k_top),
                (chunk, n_layers, k_top),
                np.float32,
                ("sample", "layer", "rank"),
                {"long_name": f"largest triple scores ({v}), descending; NaN past the triples"},
            )
        self._array(
            "route_tokens",
            (self.n_samples, n_layers, n_exp),
            (chunk, n_layers, n_exp),
            np.int32,
            ("sample", "layer", "expert"),
            {**kind_attr, "long_name": "scored positions routed to the expert"},
            fill=-1,
        )
        self._array(
            "route_weight",
            (self.n_samples, n_layers, n_exp),
            (chunk, n_layers, n_exp),
            np.float32,
            ("sample", "layer", "expert"),
            {**kind_attr, "long_name": "sum of g over those positions"},
        )
        self._array("n_tokens", (self.n_samples,), (chunk,), np.int32, ("sample",), {}, fill=-1)
        self._array("correct", (self.n_samples,), (chunk,), bool, ("sample",), {}, fill=False)

    def _coord(self, name, values, dtype=None, dims=None) -> None:
        arr = self.group.create_array(
            name,
            shape=values.shape,
            dtype=dtype or values.dtype,
            chunks=values.shape or (1,),
            dimension_names=dims or (name,),
        )
        arr[...] = values

    def _array(self, name, shape, chunks, dtype, dims, attrs, fill=np.nan) -> None:
        self.group.create_array(
            name,
            shape=shape,
            chunks=chunks,
            dtype=dtype,
            dimension_names=dims,
            fill_value=fill,
            attributes=attrs,
        )

    def write(self, start: int, batch: BatchScores, correct: np.ndarray) -> None:
        """Write a batch's scores for samples ``start .. start + len(batch) - 1``."""
        stop = start + len(batch.n_tokens)
        region = slice(start, stop)
        for v in self.variants:
            self.group[f"score_{v}"][region] = batch.score[v]
            self.group[f"pairtop_{v}"][region] = batch.pairtop[v]
        self.group["route_tokens"][region] = batch.route_tokens
        self.group["route_weight"][region] = batch.route_weight
        self.group["n_tokens"][region] = batch.n_tokens
        self.group["correct"][region] = np.asarray(correct, dtype=bool)
        self._written[region] = True

    def publish(self) -> Path:
        """Mark the group complete and move it into place; return its final path."""
        missing = np.flatnonzero(~self._written)
        if missing.size:
            raise MoemuiError(
                f"{self.path}: {missing.size} samples were never written; not publishing"
            )
        self.group.attrs[COMPLETE_ATTR] = True
        consolidate(self.tmp)
        if self.path.exists():
            shutil.rmtree(self.path)
        os.replace(self.tmp, self.path)
        log.info("published %s (%d samples)", self.path, self.n_samples)
        return self.path

    def abort(self) -> None:
        """Remove the partial group."""
        shutil.rmtree(self.tmp, ignore_errors=True)


def open_group(root: str | os.PathLike, model: str, task: str) -> xr.Dataset:
    """Open the complete ``{model}/{task}`` group of the store at ``root``.

    Raises
    ------
    MoemuiError
        Naming the store and group when the group is missing or not complete.
    """
    path = Path(root) / model / task
    if not (path / "zarr.json").exists():
        raise MoemuiError(f"{root}: no group {model}/{task} in the activations store")
    ds = xr.open_zarr(root, group=f"{model}/{task}", consolidated=False, chunks=None)
    if ds.attrs.get(COMPLETE_ATTR) is not True:
        raise MoemuiError(
            f"{root}: group {model}/{task} is not marked complete; re-run its capture"
        )
    return ds


def index_store(root: str | os.PathLike, models: dict[str, list[str]]) -> None:
    """Write the root and model groups' metadata so ``xr.open_datatree`` sees every group.

    ``models`` maps each model to its tasks; every listed group must be complete.
    The root group's consolidated metadata lists the whole tree.
    """
    root = Path(root)
    zarr.open_group(root, mode="a", zarr_format=3)
    for model, tasks in models.items():
        zarr.open_group(root / model, mode="a", zarr_format=3)
        for task in tasks:
            open_group(root, model, task)
    consolidate(root)
