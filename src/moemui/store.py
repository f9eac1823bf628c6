"""The activations store: one Zarr v3 store, one group per model and task (SPEC §7).

A capture streams batches into a group written at a temporary path beside its final
place (a dot-named sibling, which readers ignore); only when every sample is written
does it mark the group complete and move it into place with one rename. Readers
check the mark, so a partial group is never read as complete.
"""

from __future__ import annotations

import glob
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
from moemui.io import naming_os_errors

if TYPE_CHECKING:
    from moemui.adapters import Geometry
    from moemui.capture import BatchScores

log = logging.getLogger(__name__)

COMPLETE_ATTR = "complete"
SAMPLE_CHUNK = 16
#: What a group keeps of ``score_<variant>``: ``key`` (the default) the neurons that can
#: be key at some threshold <= max_threshold; ``all`` every neuron's score.
KEEP = ("key", "all")
KEEP_RULE = (
    "score_<variant> keeps, per (sample, layer), the neurons whose max over t of s is "
    "> 0 and >= the K-th largest triple score (pairtop_<variant>[..., K-1], every "
    "positive neuron when the sample has fewer than K triples); every other value reads "
    "as NaN. A key neuron at any threshold <= max_threshold has s >= theta >= that floor "
    "and s > 0, so every key-neuron set, and every table built from them, is the same as "
    "from the full array."
)
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


def retain(score: np.ndarray, pairtop: np.ndarray) -> np.ndarray:
    """``score`` ``[sample, layer, expert, neuron]`` with NaN wherever a neuron cannot be
    key at any threshold <= max_threshold (:data:`KEEP_RULE`); ``pairtop``
    ``[sample, layer, K]`` holds the K largest triple scores, descending, NaN-padded.

    Examples
    --------
    >>> score = np.array([[[[3.0, 1.0, 0.5, -1.0]]]], dtype=np.float32)
    >>> retain(score, np.array([[[3.0, 1.0]]], dtype=np.float32))
    array([[[[ 3.,  1., nan, nan]]]], dtype=float32)
    >>> retain(score, np.array([[[3.0, np.nan]]], dtype=np.float32))  # fewer than K triples
    array([[[[3. , 1. , 0.5, nan]]]], dtype=float32)
    """
    floor = pairtop[..., -1]
    floor = np.where(np.isnan(floor), -np.inf, floor)[..., None, None]
    keep = (score >= floor) & (score > 0)
    return np.where(keep, score, np.float32(np.nan)).astype(np.float32, copy=False)


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
    keep
        ``key`` (default): keep only the scores of neurons that can be key at a
        threshold <= max_threshold (:func:`retain`); ``all``: every score.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        geometry: Geometry,
        sample_ids: list[str],
        variants: tuple[str, ...],
        k_top: int,
        attrs: dict,
        keep: str = "key",
    ):
        if keep not in KEEP:
            raise MoemuiError(f"unknown keep {keep!r}; expected one of {', '.join(KEEP)}")
        self.keep = keep
        self.path = Path(path)
        self.n_samples = len(sample_ids)
        self.variants = tuple(variants)
        name = glob.escape(self.path.name)
        stale_paths = [
            *self.path.parent.glob(f".{name}.partial-*"),
            *self.path.parent.glob(f".{name}.old-*"),
        ]
        for stale in stale_paths:
            log.warning("removing the partial group %s left by an interrupted run", stale)
            shutil.rmtree(stale, ignore_errors=True)
        self.tmp = _partial_path(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with naming_os_errors(self.path):
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
                {
                    **kind_attr,
                    "long_name": f"max over t of the contribution score ({v})",
                    "kept": (
                        "neurons that can be key at a threshold <= max_threshold; NaN: "
                        f"not kept (below the floor pairtop_{v}[..., K-1], or <= 0)"
                        if self.keep == "key"
                        else "every neuron"
                    ),
                },
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
        self._array(
            "n_prompt_truncated",
            (self.n_samples,),
            (chunk,),
            np.int32,
            ("sample",),
            {"long_name": "prompt tokens dropped from the left to fit the model's context"},
            fill=0,
        )

    def _coord(self, name, values, dtype=None, dims=None) -> None:
        arr = self.group.create_array(
            name,
            shape=values.shape,
            dtype=dtype or values.dtype,
            chunks=values.shape or (1,),
            dimension_names=dims or (name,),
            config=_EVERY_CHUNK,
        )
        arr[...] = values

    def _array(self, name, shape, chunks, dtype, dims, attrs, fill=np.nan) -> None:
        # keep the handle: write_empty_chunks is a runtime setting, not stored metadata
        self._arrays[name] = self.group.create_array(
            name,
            shape=shape,
            chunks=chunks,
            dtype=dtype,
            dimension_names=dims,
            fill_value=fill,
            attributes=attrs,
            config=_EVERY_CHUNK,
        )

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
            region = slice(start, stop)
            arrays = self._arrays
            for v in self.variants:
                score = batch.score[v]
                if self.keep == "key":
                    score = retain(score, batch.pairtop[v])
                arrays[f"score_{v}"][region] = score
                arrays[f"pairtop_{v}"][region] = batch.pairtop[v]
            arrays["route_tokens"][region] = batch.route_tokens
            arrays["route_weight"][region] = batch.route_weight
            arrays["n_tokens"][region] = batch.n_tokens
            arrays["correct"][region] = np.asarray(correct, dtype=bool)
            n = stop - start
            arrays["n_prompt_truncated"][region] = (
                np.zeros(n, np.int32) if truncated is None else np.asarray(truncated, np.int32)
            )
            self._written[region] = True

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
        self.group.attrs[COMPLETE_ATTR] = True
        consolidate(self.tmp)
        old = self.path.with_name(f".{self.path.name}.old-{os.getpid()}")
        if self.path.exists():  # move the previous group out of the way in one rename
            os.replace(self.path, old)
        os.replace(self.tmp, self.path)
        shutil.rmtree(old, ignore_errors=True)
        log.info("published %s (%d samples)", self.path, self.n_samples)
        return self.path

    def abort(self) -> None:
        """Remove the partial group."""
        shutil.rmtree(self.tmp, ignore_errors=True)


class CorruptGroupError(MoemuiError):
    """A store group that exists but cannot be trusted (damaged or inconsistent)."""


def group_problems(root: str | os.PathLike, model: str, task: str) -> list[str]:
    """What is wrong with the ``{model}/{task}`` group of the store at ``root``.

    Checks the completeness mark, the attributes (model, task, variants, geometry,
    ``k_top``, ``keep``: the retained layout or the full one), that every array of the
    contract is present with the shape the group's geometry implies, that the layer and
    expert coordinates match the geometry, and that no chunk is missing. An empty list
    means the group can be read.
    """
    path = Path(root) / model / task
    try:
        group = zarr.open_group(path, mode="r", zarr_format=3, use_consolidated=False)
        attrs = dict(group.attrs)
    except Exception as err:  # noqa: BLE001 - any failure to read is the finding
        return [f"unreadable group metadata ({type(err).__name__}: {err})"]
    if attrs.get(COMPLETE_ATTR) is not True:
        return ["not marked complete (an interrupted or failed capture)"]
    problems = []
    for key in ("model", "task", "variants", "geometry", "k_top"):
        if key not in attrs:
            problems.append(f"attribute {key!r} missing")
    if problems:
        return problems
    for key, want in (("model", model), ("task", task)):
        if attrs[key] != want:
            problems.append(f"attribute {key!r} is {attrs[key]!r}, expected {want!r}")
    if attrs.get("keep", "all") not in KEEP:
        problems.append(f"attribute 'keep' is {attrs['keep']!r}, expected one of {list(KEEP)}")
    geo = attrs["geometry"]
    try:
        layers = [int(i) for i in geo["moe_layers"]]
        n_exp = int(geo["routed_experts"]) + int(geo["shared_experts"])
        n_routed, n_neu, k_top = (
            int(geo["routed_experts"]),
            int(geo["neurons_per_expert"]),
            int(attrs["k_top"]),
        )
    except (KeyError, TypeError, ValueError) as err:
        return [*problems, f"attribute 'geometry' is malformed ({err})"]
    arrays = {name: arr for name, arr in group.arrays()}
    if "sample" not in arrays:
        return [*problems, "array 'sample' missing"]
    n_s, n_l = arrays["sample"].shape[0], len(layers)
    expected = {
        "sample": (n_s,),
        "layer": (n_l,),
        "expert": (n_exp,),
        "expert_kind": (n_exp,),
        "neuron": (n_neu,),
        "route_tokens": (n_s, n_l, n_exp),
        "route_weight": (n_s, n_l, n_exp),
        "n_tokens": (n_s,),
        "correct": (n_s,),
        "n_prompt_truncated": (n_s,),
    }
    for v in attrs["variants"]:
        expected[f"score_{v}"] = (n_s, n_l, n_exp, n_neu)
        expected[f"pairtop_{v}"] = (n_s, n_l, k_top)
    for name, shape in expected.items():
        arr = arrays.get(name)
        if arr is None:
            problems.append(f"array {name!r} missing")
        elif tuple(arr.shape) != shape:
            problems.append(
                f"array {name!r} has shape {tuple(arr.shape)}, expected {shape} from the "
                f"group's geometry ({n_l} MoE layers, {n_exp} experts of {n_neu} neurons, "
                f"K = {k_top})"
            )
        elif arr.nchunks_initialized != arr.nchunks:
            problems.append(
                f"array {name!r} misses {arr.nchunks - arr.nchunks_initialized} of its "
                f"{arr.nchunks} chunks"
            )
    if problems:
        return problems
    if arrays["layer"][...].tolist() != layers:
        problems.append(f"layer coordinate {arrays['layer'][...].tolist()} != geometry {layers}")
    kinds = ["routed"] * n_routed + ["shared"] * (n_exp - n_routed)
    if [str(k) for k in arrays["expert_kind"][...]] != kinds:
        problems.append("expert_kind coordinate does not match the geometry's experts")
    return problems


def check_group(root: str | os.PathLike, model: str, task: str) -> None:
    """Check the ``{model}/{task}`` group of the store at ``root`` (:func:`group_problems`).

    Raises
    ------
    MoemuiError
        Naming the store and group when the group is missing.
    CorruptGroupError
        Naming the store, the group and every problem found when it exists but is
        incomplete, damaged or inconsistent.
    """
    if not (Path(root) / model / task / "zarr.json").exists():
        raise MoemuiError(f"{root}: no group {model}/{task} in the activations store")
    problems = group_problems(root, model, task)
    if problems:
        raise CorruptGroupError(
            f"{root}: group {model}/{task} cannot be used: {'; '.join(problems)}"
        )


def _open(root: str | os.PathLike, model: str, task: str) -> xr.Dataset:
    return xr.open_zarr(root, group=f"{model}/{task}", consolidated=False, chunks=None)


def open_group(root: str | os.PathLike, model: str, task: str) -> xr.Dataset:
    """Open the ``{model}/{task}`` group of the store at ``root`` once
    :func:`check_group` finds nothing wrong with it."""
    check_group(root, model, task)
    return _open(root, model, task)


def set_aside(root: str | os.PathLike, model: str, task: str) -> Path:
    """Move a group that cannot be used out of the store's tree, to a dot-named sibling
    (``.{task}.corrupt``, replacing an older one) that readers ignore; return it.

    The workflow then sees the group as missing and captures it again.
    """
    path = Path(root) / model / task
    aside = path.with_name(f".{task}.corrupt")
    if aside.exists():
        shutil.rmtree(aside)
    os.replace(path, aside)
    return aside


def check_or_set_aside(root: str | os.PathLike, model: str, task: str) -> None:
    """:func:`check_group`; a group that cannot be used is first :func:`set_aside`, so
    that the next run of the workflow captures it again instead of reading it."""
    try:
        check_group(root, model, task)
    except CorruptGroupError as err:
        aside = set_aside(root, model, task)
        log.error("%s", err)
        raise CorruptGroupError(
            f"{err}. Moved it to {aside}; run the workflow again to capture it afresh"
        ) from None


def open_or_set_aside(root: str | os.PathLike, model: str, task: str) -> xr.Dataset:
    """:func:`open_group`, setting a group that cannot be used aside
    (:func:`check_or_set_aside`)."""
    check_or_set_aside(root, model, task)
    return _open(root, model, task)


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
            check_or_set_aside(root, model, task)
    consolidate(root)
