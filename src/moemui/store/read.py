"""Reading a store group: readers only check.

Every reader opens a group through :func:`check_group` (or :func:`open_group`), which
fails with one line naming the group and the commands that capture it again
(:func:`recapture_hint`); :func:`verify_group` also reads every chunk and recomputes
every digest. :func:`set_aside` (``moemui check-store --set-aside``) is the one function
that moves a group, out of the tree to ``<root.parent>/<root.name>.set-aside/``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shlex
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import xarray as xr
import zarr
from zarr.errors import ZarrUserWarning

from moemui.errors import MoemuiError
from moemui.io import claim_dated_dir
from moemui.store.digest import DIGEST_ATTR, Digest
from moemui.store.layout import COMPLETE_ATTR, KEEP, Layout


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


class CorruptGroupError(MoemuiError):
    """A store group that exists but cannot be trusted (damaged or inconsistent)."""


@contextlib.contextmanager
def timestamp_ignored() -> Iterator[None]:
    """Silence the one warning zarr gives on listing a group directory that holds
    Snakemake's ``.snakemake_timestamp`` (every ``directory()`` output has it): "Object
    at .snakemake_timestamp is not recognized as a component of a Zarr hierarchy".
    Every other warning still shows."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"Object at \.snakemake_timestamp ", category=ZarrUserWarning
        )
        yield


def group_arrays(group: zarr.Group) -> dict[str, zarr.Array]:
    """A group's arrays (Snakemake's timestamp file in a group directory is not Zarr)."""
    with timestamp_ignored():
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
    try:
        layout = Layout.recorded(attrs["geometry"], attrs["k_top"])
    except (KeyError, TypeError, ValueError) as err:
        return [*problems, f"attribute 'geometry' is malformed ({err})"]
    arrays = group_arrays(group)
    if "sample" not in arrays:
        return [*problems, "array 'sample' missing"]
    layout = dataclasses.replace(
        layout, n_samples=arrays["sample"].shape[0], variants=tuple(attrs["variants"])
    )
    # the checker's order (and so its messages'): coordinates, the arrays of every
    # capture, then each variant's
    specs = (*layout.coordinates(), *layout.sample_arrays(), *layout.variant_arrays())
    expected = {spec.name: spec.shape for spec in specs}
    for name, shape in expected.items():
        arr = arrays.get(name)
        if arr is None:
            problems.append(f"array {name!r} missing")
        elif tuple(arr.shape) != shape:
            problems.append(
                f"array {name!r} has shape {tuple(arr.shape)}, expected {shape} from the "
                f"group's geometry ({layout.n_layers} MoE layers, {layout.n_experts} experts "
                f"of {layout.neurons_per_expert} neurons, K = {layout.k_top})"
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
        return [f"a coordinate cannot be read ({error_text(err)})"]
    layers = list(layout.moe_layers)
    if layer_values.tolist() != layers:
        problems.append(f"layer coordinate {layer_values.tolist()} != geometry {layers}")
    if [str(k) for k in kind_values] != layout.expert_kinds:
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
    arrays = group_arrays(group)
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
            problems.append(f"chunk {_chunk_key(name, index)} cannot be read ({error_text(err)})")
            continue
        digests[name].add(start, data)
    for name, digest in digests.items():
        if name not in failed and digest.hex() != arrays[name].attrs.get(DIGEST_ATTR):
            problems.append(f"array {name!r} does not match its digest (values changed)")
    return problems


def error_text(err: BaseException) -> str:
    """An exception as one line: its type, then its message."""
    return f"{type(err).__name__}: {err}".replace("\n", " ")


def open_group(root: str | os.PathLike, model: str, task: str) -> xr.Dataset:
    """Open the ``{model}/{task}`` group of the store at ``root`` once
    :func:`check_group` finds nothing wrong with it (it only reads; the arrays'
    values are verified by those who read them: :func:`verify_read`,
    :meth:`moemui.analyses.keys.GroupKeys.from_group`)."""
    check_group(root, model, task)
    try:
        with timestamp_ignored():
            return xr.open_zarr(root, group=f"{model}/{task}", consolidated=False, chunks=None)
    except Exception as err:  # noqa: BLE001 - e.g. a coordinate's chunk fails to decode
        raise unusable(root, model, task, f"cannot be read ({error_text(err)})") from None


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
