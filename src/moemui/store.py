"""The activations store: one Zarr v3 store, one group per model and task (SPEC §7).

A capture holds the group's lock (:class:`GroupLock`) and streams batches into a
partial group outside the store's tree (``<root.parent>/.<root.name>.partial/``, on the
same filesystem); only when every sample is written does it record each array's
content digest, mark the group complete and move it into place with one rename.
Every chunk carries a CRC32C checksum. Readers only check (:func:`check_group`,
:func:`verify_group`) and fail with one line naming the group and the commands that
capture it again; ``moemui check-store --set-aside`` is the one tool that moves a
group, out of the tree to ``<root.parent>/<root.name>.set-aside/``.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import logging
import os
import secrets
import shlex
import shutil
import socket
import threading
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr
import zarr

from moemui.errors import MoemuiError
from moemui.io import atomic_write_text, claim_dated_dir, naming_os_errors

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
#: Every chunk is compressed, then carries a CRC32C of the compressed bytes: a flipped
#: or truncated chunk fails to decode instead of reading as other numbers.
COMPRESSORS = (zarr.codecs.ZstdCodec(level=0), zarr.codecs.Crc32cCodec())
#: Each array's attribute holding its content digest (:class:`Digest`), and its scheme.
DIGEST_ATTR = "digest"
DIGEST_SCHEME = "blake2b128-sum-v1"
#: A writer's lock is refreshed every HEARTBEAT_S seconds; one not refreshed for
#: LOCK_TIMEOUT_S (or held by a process of this host that is gone) is stale.
HEARTBEAT_S = 30.0
LOCK_TIMEOUT_S = 600.0
_MOD = 1 << 128


def partial_dir(root: str | os.PathLike) -> Path:
    """Where writers keep their partial groups and locks: beside the store, outside it."""
    root = Path(root)
    return root.parent / f".{root.name}.partial"


def set_aside_dir(root: str | os.PathLike) -> Path:
    """Where ``check-store --set-aside`` moves groups: beside the store, outside it."""
    root = Path(root)
    return root.parent / f"{root.name}.set-aside"


def recapture_hint(root: str | os.PathLike) -> str:
    """The commands that capture a damaged, incomplete or missing group again."""
    return (
        f"to capture it again run: moemui check-store --set-aside {shlex.quote(str(root))}"
        " && snakemake"
    )


def _piece_bytes(data: np.ndarray) -> bytes:
    if data.dtype.kind in "OUT":  # strings (coordinates): their JSON list
        return json.dumps([str(x) for x in data.ravel()]).encode()
    data = np.ascontiguousarray(data)
    if data.dtype.byteorder == ">":
        data = data.astype(data.dtype.newbyteorder("<"))
    return data.tobytes()


def _piece(index: tuple[int, ...], data: np.ndarray) -> int:
    head = np.asarray(index, dtype="<i8").tobytes()
    h = hashlib.blake2b(head + _piece_bytes(data), digest_size=16)
    return int.from_bytes(h.digest(), "little")


class Digest:
    """An array's content digest: the sum mod 2**128 of a BLAKE2b-128 hash of every
    piece (its index, then its stored bytes, C order), so it can be accumulated from
    blocks read or written in any order.

    Pieces: ``(sample, layer)`` rows of an array whose dims start with them, ``(sample,)``
    elements of a 1-D sample array, the whole array otherwise (coordinates).
    """

    def __init__(self, dims: tuple[str, ...]):
        self.dims = tuple(dims)
        self.value = 0

    def block(self, start: tuple[int, ...], data: np.ndarray) -> int:
        """The digest of the pieces in ``data``, a block starting at ``start``."""
        if self.dims[:2] == ("sample", "layer"):
            return (
                sum(
                    _piece((start[0] + i, start[1] + j), data[i, j])
                    for i in range(data.shape[0])
                    for j in range(data.shape[1])
                )
                % _MOD
            )
        if self.dims == ("sample",):
            return sum(_piece((start[0] + i,), data[i : i + 1]) for i in range(len(data))) % _MOD
        if any(start):
            raise ValueError("a coordinate is one piece; read it whole")
        return _piece((), data)

    def add(self, start: tuple[int, ...], data: np.ndarray) -> None:
        self.value = (self.value + self.block(start, data)) % _MOD

    def hex(self) -> str:
        return f"{self.value:032x}"


def digest_of(dims: tuple[str, ...], data: np.ndarray) -> str:
    """The digest of a whole array."""
    d = Digest(dims)
    d.add((0,) * data.ndim, data)
    return d.hex()


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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class GroupLock:
    """One writer per group: a lock file beside the group, outside the store's tree
    (``<partial_dir>/{model}/{task}.lock``), created with ``O_CREAT | O_EXCL`` and
    holding host, pid, a random token, the start time and the writer's partial group;
    a heartbeat thread touches it every :data:`HEARTBEAT_S` seconds.

    A lock is stale when its holder ran on this host and its pid is gone, or when its
    heartbeat is older than :data:`LOCK_TIMEOUT_S`; a stale lock, and its partial group,
    is taken over with a warning. A live one makes :meth:`acquire` fail naming it.
    """

    def __init__(self, root: str | os.PathLike, model: str, task: str):
        self.root, self.model, self.task = Path(root), model, task
        self.path = partial_dir(root) / model / f"{task}.lock"
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.token = secrets.token_hex(8)
        self.partial = self.path.with_name(f"{task}.{self.host}.{self.pid}.{self.token}")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def _stale(self, info: dict | None, age: float) -> bool:
        if info is None:  # being written, or left half-written by a killed writer
            return age > 60
        if info.get("host") == self.host and not _pid_alive(int(info.get("pid", -1))):
            return True
        return age > LOCK_TIMEOUT_S

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps(
            {
                "host": self.host,
                "pid": self.pid,
                "token": self.token,
                "since": datetime.now(UTC).isoformat(timespec="seconds"),
                "partial": str(self.partial),
            }
        )
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._take_over_or_fail()
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(body)
            self._thread = threading.Thread(target=self._beat, daemon=True)
            self._thread.start()
            return
        raise MoemuiError(f"{self.path}: could not take the group's lock; try again")

    def _take_over_or_fail(self) -> None:
        info = self._read()
        try:
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return
        group = f"{self.root}/{self.model}/{self.task}"
        if not self._stale(info, age):
            who = (
                f"host {info.get('host')}, pid {info.get('pid')}, since {info.get('since')}"
                if info
                else "a writer that is starting"
            )
            raise MoemuiError(
                f"{group}: another capture is writing this group ({who}; lock {self.path}); "
                "wait for it to end, or remove the lock if that capture is gone"
            )
        log.warning(
            "taking over the stale lock %s of %s (heartbeat %.0f s old)", self.path, info, age
        )
        partial = Path(info["partial"]) if info and info.get("partial") else None
        if partial is not None and partial.parent == self.path.parent:
            log.warning("removing the partial group %s left by an interrupted run", partial)
            shutil.rmtree(partial, ignore_errors=True)
        stale = self.path.with_name(f"{self.path.name}.stale-{self.token}")
        try:
            os.replace(self.path, stale)
            os.unlink(stale)
        except FileNotFoundError:
            pass

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            if self.held():
                with contextlib.suppress(OSError):
                    os.utime(self.path)

    def held(self) -> bool:
        """Whether the lock file still holds this writer's token."""
        info = self._read()
        return bool(info) and info.get("token") == self.token

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.held():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)


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
        keep: str = "key",
    ):
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
            compressors=COMPRESSORS,
            config=_EVERY_CHUNK,
        )
        arr[...] = values
        arr.attrs[DIGEST_ATTR] = digest_of(dims or (name,), values)

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
            compressors=COMPRESSORS,
            config=_EVERY_CHUNK,
        )
        self._digests[name] = [0] * shape[0]

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
            self._arrays[name].attrs[DIGEST_ATTR] = f"{sum(shares) % _MOD:032x}"
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


class CorruptGroupError(MoemuiError):
    """A store group that exists but cannot be trusted (damaged or inconsistent)."""


def _arrays(group: zarr.Group) -> dict[str, zarr.Array]:
    """A group's arrays (Snakemake's timestamp file in a group directory is not Zarr)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Object at .snakemake_timestamp")
        return dict(group.arrays())


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
    arrays = _arrays(group)
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
    unchecked = [
        name
        for name in expected
        if DIGEST_ATTR not in arrays[name].attrs
        or not any(isinstance(c, zarr.codecs.Crc32cCodec) for c in arrays[name].metadata.codecs)
    ]
    if unchecked:
        version = (attrs.get("package_versions") or {}).get("moemui", "unknown")
        return [f"written without checksums by moemui {version}; capture it again"]
    try:
        layer_values, kind_values = arrays["layer"][...], arrays["expert_kind"][...]
    except Exception as err:  # noqa: BLE001 - a coordinate chunk that fails to decode
        return [f"a coordinate cannot be read ({_why(err)})"]
    if layer_values.tolist() != layers:
        problems.append(f"layer coordinate {layer_values.tolist()} != geometry {layers}")
    kinds = ["routed"] * n_routed + ["shared"] * (n_exp - n_routed)
    if [str(k) for k in kind_values] != kinds:
        problems.append("expert_kind coordinate does not match the geometry's experts")
    return problems


def _is_group_node(path: Path) -> bool:
    try:
        return json.loads((path / "zarr.json").read_text()).get("node_type") == "group"
    except (OSError, ValueError, AttributeError):
        return False


def not_a_group(path: str | os.PathLike) -> str | None:
    """Why ``path`` is not a store group directory ``STORE/{model}/{task}`` (the store
    root, a model directory), or None."""
    path = Path(path)
    if path.suffix == ".zarr" or any(_is_group_node(c) for c in path.glob("*/")):
        return (
            f"{path}: not a store group (it holds groups: the store or a model); "
            "give a group directory STORE/{model}/{task}"
        )
    if path.parent.suffix == ".zarr":
        return f"{path}: not a store group (a model directory); give STORE/{{model}}/{{task}}"
    return None


def check_group(root: str | os.PathLike, model: str, task: str) -> None:
    """Check the ``{model}/{task}`` group of the store at ``root`` (:func:`group_problems`);
    it only reads.

    Raises
    ------
    MoemuiError
        Naming the store and group, and how to capture it, when the group is missing.
    CorruptGroupError
        Naming the store, the group, every problem found and the commands that capture
        it again (:func:`recapture_hint`) when it exists but is incomplete, damaged or
        inconsistent.
    """
    path = Path(root) / model / task
    if not path.exists():
        raise MoemuiError(
            f"{root}: no group {model}/{task} in the activations store; to capture it run: "
            "snakemake"
        )
    problems = group_problems(root, model, task)
    if problems:
        raise unusable(root, model, task, "; ".join(problems))


def unusable(root: str | os.PathLike, model: str, task: str, what: str) -> CorruptGroupError:
    """The one-line error of a group that cannot be used: what is wrong, and the
    commands that capture it again."""
    return CorruptGroupError(
        f"{root}: group {model}/{task} cannot be used: {what}; {recapture_hint(root)}"
    )


def _chunk_key(name: str, index: tuple[int, ...]) -> str:
    return f"{name}/c/" + "/".join(str(i) for i in index)


def verify_group(
    root: str | os.PathLike,
    model: str,
    task: str,
    progress: Callable | None = None,
) -> list[str]:
    """Everything :func:`group_problems` checks, then every chunk of every array read
    (its CRC32C checked on decode) and every array's content digest recomputed,
    streaming one chunk at a time. ``progress`` wraps the iterable of chunks (e.g.
    :func:`moemui.progress.progress`). An empty list means the group is sound."""
    problems = group_problems(root, model, task)
    if problems:
        return problems
    group = zarr.open_group(Path(root) / model / task, mode="r", use_consolidated=False)
    arrays = _arrays(group)
    work = [
        (name, index) for name in sorted(arrays) for index in np.ndindex(*arrays[name].cdata_shape)
    ]
    digests = {name: Digest(tuple(arr.metadata.dimension_names)) for name, arr in arrays.items()}
    failed: set[str] = set()
    for name, index in progress(work) if progress else work:
        if name in failed:
            continue
        arr = arrays[name]
        start = tuple(i * c for i, c in zip(index, arr.chunks, strict=True))
        region = tuple(
            slice(a, min(a + c, n)) for a, c, n in zip(start, arr.chunks, arr.shape, strict=True)
        )
        try:
            data = arr[region]
        except Exception as err:  # noqa: BLE001 - any decode failure is the finding
            failed.add(name)
            problems.append(f"chunk {_chunk_key(name, index)} cannot be read ({_why(err)})")
            continue
        digests[name].add(start, data)
    for name, digest in digests.items():
        if name not in failed and digest.hex() != arrays[name].attrs.get(DIGEST_ATTR):
            problems.append(f"array {name!r} does not match its digest (values changed)")
    return problems


def _why(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}".replace("\n", " ")


def open_group(root: str | os.PathLike, model: str, task: str) -> xr.Dataset:
    """Open the ``{model}/{task}`` group of the store at ``root`` once
    :func:`check_group` finds nothing wrong with it (it only reads; the arrays'
    values are verified by those who read them: :func:`verify_read`,
    :meth:`moemui.analyses.keys.GroupKeys.from_group`)."""
    check_group(root, model, task)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Object at .snakemake_timestamp")
            return xr.open_zarr(root, group=f"{model}/{task}", consolidated=False, chunks=None)
    except Exception as err:  # noqa: BLE001 - e.g. a coordinate's chunk fails to decode
        raise unusable(root, model, task, f"cannot be read ({_why(err)})") from None


def verify_read(name: str, dims: tuple[str, ...], attrs: dict, values: np.ndarray) -> None:
    """Check a whole array as read against its digest; raise :class:`CorruptGroupError`
    naming it on a mismatch (a group without digests is refused before, by
    :func:`group_problems`; an array without one, e.g. built in memory, passes)."""
    digest = Digest(tuple(dims))
    digest.add((0,) * values.ndim, values)
    check_digest(name, digest, attrs)


def check_digest(name: str, digest: Digest, attrs: dict) -> None:
    """Raise :class:`CorruptGroupError` naming array ``name`` when its ``attrs`` record a
    digest other than ``digest`` (accumulated from what was read)."""
    want = attrs.get(DIGEST_ATTR)
    if want is not None and digest.hex() != want:
        raise CorruptGroupError(f"array {name!r} does not match its digest (values changed)")


def set_aside(root: str | os.PathLike, model: str, task: str) -> Path:
    """Move a group that cannot be used out of the store's tree, to
    ``<root.parent>/<root.name>.set-aside/{model}/{task}.<UTC time>[.n]`` (every copy
    kept); return where. The workflow then sees the group as missing and captures it
    again. The one function that moves a group; readers only check."""
    path = Path(root) / model / task
    aside = claim_dated_dir(set_aside_dir(root) / model, task)
    os.replace(path, aside)  # a directory onto an empty one
    return aside


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
