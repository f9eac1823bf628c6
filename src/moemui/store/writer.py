"""Writing a store group: :class:`StoreWriter` streams a capture's batches into a
partial group outside the store's tree and publishes it with one rename;
:func:`index_store` writes the metadata above the groups.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import zarr

from moemui.defaults import default
from moemui.errors import MoemuiError
from moemui.io import atomic_write_text, naming_os_errors
from moemui.store.digest import DIGEST_ATTR, MOD, Digest, digest_of
from moemui.store.layout import (
    COMPLETE_ATTR,
    COMPRESSORS,
    KEEP,
    KEEP_RULE,
    ArraySpec,
    Layout,
    retain,
)
from moemui.store.lock import GroupLock
from moemui.store.read import check_group

if TYPE_CHECKING:
    from moemui.adapters import Geometry
    from moemui.capture import BatchScores

log = logging.getLogger(__name__)

#: Write every chunk, even one equal to the fill value, so that a chunk file missing
#: from a complete group always means damage (readers check).
_EVERY_CHUNK = {"write_empty_chunks": True}


def consolidate(path: str | os.PathLike) -> None:
    """Consolidate a group's metadata (readers open it without listing the tree).

    Zarr warns that consolidated metadata is not part of the v3 specification; xarray
    reads it, and readers that do not still find every node's own ``zarr.json``.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        zarr.consolidate_metadata(path, zarr_format=3)


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
    keep
        ``key``: keep only the scores of neurons that can be key at a threshold <=
        max_threshold (:func:`~moemui.store.layout.retain`); ``all``: every score.
        Default: the config's ``capture.keep``.

    The arrays and their metadata are those of the group's
    :class:`~moemui.store.layout.Layout`.

    The writer takes the group's :class:`GroupLock` first (a live lock of another
    writer: :class:`MoemuiError` naming it) and writes to the lock's partial group
    outside the store; :meth:`publish` records each array's digest, marks the group
    complete and renames it into place, unless the lock was taken over meanwhile.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        geometry: Geometry,
        sample_ids: list[str],
        variants: tuple[str, ...],
        k_top: int,
        attrs: dict,
        keep: str | None = None,
    ):
        keep = default("capture.keep") if keep is None else keep
        if keep not in KEEP:
            raise MoemuiError(f"unknown keep {keep!r}; expected one of {', '.join(KEEP)}")
        self.keep = keep
        self.path = Path(path)
        self.n_samples = len(sample_ids)
        self.variants = tuple(variants)
        root, model, task = self.path.parent.parent, self.path.parent.name, self.path.name
        # leftovers of earlier versions' writers, inside the tree
        name = glob.escape(task)
        for stale in [
            *self.path.parent.glob(f".{name}.partial-*"),
            *self.path.parent.glob(f".{name}.old-*"),
        ]:
            log.warning("removing the partial group %s left by an interrupted run", stale)
            shutil.rmtree(stale, ignore_errors=True)
        self.lock = GroupLock(root, model, task)
        self.tmp = self.lock.partial
        self.group = None
        self.layout: Layout | None = None
        with naming_os_errors(self.path):
            self.lock.acquire()
        try:
            with naming_os_errors(self.path):
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._create(geometry, sample_ids, k_top, attrs)
        except BaseException:
            self.abort()
            raise

    def _create(self, geometry: Geometry, sample_ids: list[str], k_top: int, attrs: dict):
        """Create the partial group: attributes, coordinates, empty arrays."""
        self.group = zarr.open_group(self.tmp, mode="w", zarr_format=3)
        self.group.attrs.update(
            {
                **attrs,
                "variants": list(self.variants),
                "geometry": geometry.as_dict(),
                "k_top": int(k_top),
                "keep": self.keep,
                **({"keep_rule": KEEP_RULE} if self.keep == "key" else {}),
                COMPLETE_ATTR: False,
            }
        )
        self._written = np.zeros(self.n_samples, dtype=bool)
        self._arrays: dict[str, zarr.Array] = {}
        #: per array of dims (sample, ...): each sample's share of the digest
        self._digests: dict[str, list[int]] = {}
        self.layout = Layout.of(geometry, self.n_samples, self.variants, k_top, self.keep)
        values = self.layout.coordinate_values(sample_ids)
        for spec in self.layout.coordinates():
            self._coord(spec, values[spec.name])
        for spec in self.layout.data_arrays():
            self._array(spec)

    def _create_array(self, spec: ArraySpec) -> zarr.Array:
        fill = {} if spec.fill is None else {"fill_value": spec.fill}
        return self.group.create_array(
            spec.name,
            shape=spec.shape,
            chunks=spec.chunks,
            dtype=spec.dtype,
            dimension_names=spec.dims,
            **fill,
            attributes=spec.attrs,
            compressors=COMPRESSORS,
            config=_EVERY_CHUNK,
        )

    def _coord(self, spec: ArraySpec, values: np.ndarray) -> None:
        arr = self._create_array(spec)
        arr[...] = values
        arr.attrs[DIGEST_ATTR] = digest_of(spec.dims, values)

    def _array(self, spec: ArraySpec) -> None:
        # keep the handle: write_empty_chunks is a runtime setting, not stored metadata
        self._arrays[spec.name] = self._create_array(spec)
        self._digests[spec.name] = [0] * spec.shape[0]

    def write(
        self,
        start: int,
        batch: BatchScores,
        correct: np.ndarray,
        truncated: np.ndarray | None = None,
    ) -> None:
        """Write a batch's scores for samples ``start .. start + len(batch) - 1``, with
        whether each was answered correctly and how many prompt tokens it lost to the
        model's context (default none)."""
        with naming_os_errors(self.path):  # a full disk names the group
            stop = start + len(batch.n_tokens)
            n = stop - start
            values = {}
            for v in self.variants:
                score = batch.score[v]
                if self.keep == "key":
                    score = retain(score, batch.pairtop[v])
                values[f"score_{v}"] = score
                values[f"pairtop_{v}"] = batch.pairtop[v]
            values["route_tokens"] = batch.route_tokens
            values["route_weight"] = batch.route_weight
            values["n_tokens"] = batch.n_tokens
            values["correct"] = correct
            values["n_prompt_truncated"] = np.zeros(n, np.int32) if truncated is None else truncated
            for name, value in values.items():
                arr = self._arrays[name]
                value = np.ascontiguousarray(value, dtype=arr.dtype)
                arr[start:stop] = value
                digest, shares = Digest(arr.metadata.dimension_names), self._digests[name]
                for i in range(n):  # a sample written again replaces its share
                    shares[start + i] = digest.block((start + i, 0), value[i : i + 1])
            self._written[start:stop] = True

    @property
    def arrays(self) -> dict[str, zarr.Array]:
        """The group's arrays whose first dimension is the sample, by name."""
        return dict(self._arrays)

    def write_block(
        self, name: str, start: int, values: np.ndarray, layer: int | None = None
    ) -> None:
        """Write final values (already retained) of one array: samples ``start ..
        start + len(values) - 1``, all layers or, with ``layer``, that one (``values``
        then has a layer axis of length 1). The gather of shards writes through this;
        each (sample, layer) must be written once."""
        with naming_os_errors(self.path):
            arr = self._arrays[name]
            values = np.ascontiguousarray(values, dtype=arr.dtype)
            stop = start + len(values)
            if layer is None:
                arr[start:stop] = values
            else:
                arr[start:stop, layer : layer + 1] = values
            digest, shares = Digest(arr.metadata.dimension_names), self._digests[name]
            for i in range(len(values)):
                at = (start + i,) if arr.ndim == 1 else (start + i, layer or 0)
                shares[start + i] += digest.block(at, values[i : i + 1])
            self._written[start:stop] = True

    def publish(self) -> Path:
        """Mark the group complete and move it into place; return its final path."""
        with naming_os_errors(self.path):
            return self._publish()

    def _publish(self) -> Path:
        missing = np.flatnonzero(~self._written)
        if missing.size:
            raise MoemuiError(
                f"{self.path}: {missing.size} samples were never written; not publishing"
            )
        for name, shares in self._digests.items():
            self._arrays[name].attrs[DIGEST_ATTR] = f"{sum(shares) % MOD:032x}"
        self.group.attrs[COMPLETE_ATTR] = True
        consolidate(self.tmp)
        if not self.lock.held():
            raise MoemuiError(
                f"{self.path}: this capture's lock {self.lock.path} was taken over by "
                "another writer; not publishing"
            )
        old = self.tmp.with_name(f"{self.tmp.name}.old")
        if self.path.exists():  # move the previous group out of the way in one rename
            os.replace(self.path, old)
        os.replace(self.tmp, self.path)
        shutil.rmtree(old, ignore_errors=True)
        self.lock.release()
        log.info("published %s (%d samples)", self.path, self.n_samples)
        return self.path

    def abort(self) -> None:
        """Remove the partial group and release the lock (when still this writer's)."""
        shutil.rmtree(self.tmp, ignore_errors=True)  # its name is this writer's alone
        self.lock.release()


def index_store(root: str | os.PathLike, models: dict[str, list[str]]) -> None:
    """Write the root and model groups' metadata so ``xr.open_datatree`` sees every group.

    ``models`` maps each model to its tasks; every listed group must pass
    :func:`check_group` (it only reads them). No consolidated metadata is kept above the
    groups, so a group removed later is never described by a stale listing; each group
    keeps its own.
    """
    root = Path(root)
    for model, tasks in models.items():
        for task in tasks:
            check_group(root, model, task)
    for path in (root, *(root / m for m in models)):
        zarr.open_group(path, mode="a", zarr_format=3)
        meta = json.loads((path / "zarr.json").read_text())
        if meta.pop("consolidated_metadata", None) is not None:  # written by 0.4.0
            atomic_write_text(path / "zarr.json", json.dumps(meta, indent=2))
