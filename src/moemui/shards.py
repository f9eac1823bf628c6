"""Cells split into shards: contiguous ranges of a task's samples, each generated and
captured by its own job, then gathered into the one responses file and the one store
group an unsharded run writes.

A task with ``shards: N`` has N shards named ``1-of-N`` .. ``N-of-N``. Shard ``i`` holds
samples ``start .. stop - 1`` of the task file (:func:`shard_range`: the first
``total % N`` shards hold one sample more). A shard's responses are a responses file of
its samples; its capture is a complete store group of its samples (in a store of its
own, ``{results}/shards/{i}-of-{N}/activations.zarr``) whose ``shard`` attribute records
the range. The gather steps check every part (ids, ranges, attributes, every chunk and
digest as they read it) and write the whole through the same writers as an unsharded
run, so that with ``capture.batch_invariant`` the gathered files are bit-identical to
it.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np
import zarr

from moemui.errors import MoemuiError

log = logging.getLogger(__name__)

#: A shard as a path component: ``{index}-of-{count}``, 1-based.
SHARD_NAME = re.compile(r"(\d+)-of-(\d+)")
SHARD_ATTR = "shard"


def shard_name(index: int, count: int) -> str:
    """``"2-of-4"``: the path component of shard ``index`` (1-based) of ``count``."""
    return f"{index}-of-{count}"


def parse_shard(text: str) -> tuple[int, int]:
    """``(index, count)`` of ``"I/N"`` or ``"I-of-N"``, 1 <= I <= N.

    Examples
    --------
    >>> parse_shard("2/4"), parse_shard("3-of-3")
    ((2, 4), (3, 3))
    """
    m = re.fullmatch(r"(\d+)(?:/|-of-)(\d+)", text.strip())
    if not m:
        raise MoemuiError(f"shard {text!r}: expected I/N or I-of-N, e.g. 2/4")
    index, count = int(m[1]), int(m[2])
    if not 1 <= index <= count:
        raise MoemuiError(f"shard {text!r}: the index must be between 1 and {count}")
    return index, count


def shard_range(total: int, index: int, count: int, what: str = "the task") -> tuple[int, int]:
    """``(start, stop)`` of shard ``index`` (1-based) of ``count`` over ``total`` samples:
    contiguous ranges in order, sizes differing by at most one (the first ``total %
    count`` shards one larger), every shard non-empty.

    Examples
    --------
    >>> [shard_range(10, i, 4) for i in (1, 2, 3, 4)]
    [(0, 3), (3, 6), (6, 8), (8, 10)]
    """
    if count > total:
        raise MoemuiError(
            f"{what} has {total} samples, fewer than its {count} shards (lower 'shards')"
        )
    base, extra = divmod(total, count)
    start = (index - 1) * base + min(index - 1, extra)
    return start, start + base + (1 if index - 1 < extra else 0)


def _sort_parts(parts: list[str | os.PathLike], kind: str) -> list[tuple[int, int, Path]]:
    """Parts as ``(index, count, path)`` in shard order, each index once, every one of
    ``count`` present; the shard is read from the path's ``I-of-N`` component."""
    found = []
    for part in parts:
        path = Path(part)
        m = next((m for c in path.parts if (m := SHARD_NAME.fullmatch(c))), None)
        if m is None:
            raise MoemuiError(f"{path}: no I-of-N component in the path of this {kind} shard")
        found.append((int(m[1]), int(m[2]), path))
    found.sort(key=lambda x: x[0])
    counts = {count for _, count, _ in found}
    if len(counts) != 1:
        raise MoemuiError(f"{kind} shards of different counts: {sorted(counts)}")
    count = counts.pop()
    if [i for i, _, _ in found] != list(range(1, count + 1)):
        raise MoemuiError(
            f"{kind} shards {[i for i, _, _ in found]} of {count}: expected each of 1..{count} once"
        )
    return found


def gather_responses(
    tasks: str | os.PathLike, parts: list[str | os.PathLike], out: str | os.PathLike
) -> int:
    """Write the responses of every shard of a cell, in task order, to ``out`` (one
    atomic write); return the number of records. Each part must hold exactly its
    shard's samples of the task file, in order."""
    from moemui.io import read_records, write_records
    from moemui.tasks import read_samples

    ids = [s["id"] for s in read_samples(tasks)]
    records: list[dict] = []
    for index, count, path in _sort_parts(parts, "responses"):
        start, stop = shard_range(len(ids), index, count, f"task file {tasks}")
        got = read_records(path)
        want = ids[start:stop]
        if [r["id"] for r in got] != want:
            raise MoemuiError(
                f"{path}: its sample ids are not samples {start}..{stop - 1} of {tasks} "
                f"(shard {shard_name(index, count)}); generate this shard again"
            )
        records.extend(got)
    write_records(out, records)
    log.info("gathered %d responses from %d shards -> %s", len(records), len(parts), out)
    return len(records)


class _RecordedGeometry:
    """A group's ``geometry`` attribute as the writer reads a geometry (layers, experts,
    neurons; ``as_dict`` gives the attribute back, key for key), without the model
    adapters (and torch), which the tables environment of the gather does not have."""

    def __init__(self, recorded: dict):
        self._dict = dict(recorded)
        self.moe_layers = [int(i) for i in recorded["moe_layers"]]
        self.routed_experts = int(recorded["routed_experts"])
        self.shared_experts = int(recorded["shared_experts"])
        self.experts_per_layer = self.routed_experts + self.shared_experts
        self.neurons_per_expert = int(recorded["neurons_per_expert"])

    def as_dict(self) -> dict:
        return dict(self._dict)


class _Part:
    """One shard's store group, opened after :func:`moemui.store.check_group`, with a
    digest per array accumulated from what is read."""

    def __init__(self, path: Path, index: int, count: int):
        from moemui.store import check_group, group_arrays

        self.path, self.index, self.count = path, index, count
        self.root, self.model, self.task = path.parent.parent, path.parent.name, path.name
        check_group(self.root, self.model, self.task)
        self.group = zarr.open_group(path, mode="r", zarr_format=3, use_consolidated=False)
        self.arrays = group_arrays(self.group)
        self.attrs = dict(self.group.attrs)
        self.digests: dict = {}

    def read(self, name: str, rows: slice, layer: int | None = None) -> np.ndarray:
        from moemui.store import Digest, error_text, unusable

        arr = self.arrays[name]
        try:
            data = arr[rows] if layer is None else arr[rows, layer : layer + 1]
        except Exception as err:  # noqa: BLE001 - a chunk that fails to decode
            raise unusable(self.root, self.model, self.task, f"{name} {error_text(err)}") from None
        digest = self.digests.setdefault(name, Digest(tuple(arr.metadata.dimension_names)))
        digest.add((rows.start, 0 if layer is None else layer)[: data.ndim], data)
        return data

    def check_digests(self) -> None:
        from moemui.store import CorruptGroupError, check_digest, unusable

        for name, digest in self.digests.items():
            try:
                check_digest(name, digest, dict(self.arrays[name].attrs))
            except CorruptGroupError as err:
                raise unusable(self.root, self.model, self.task, str(err)) from None


def gather_store(
    tasks: str | os.PathLike,
    parts: list[str | os.PathLike],
    out: str | os.PathLike,
    progress=None,
) -> Path:
    """Assemble the store group of a cell from its shards' groups and publish it at
    ``out`` (``STORE/{model}/{task}``) as :class:`moemui.store.StoreWriter` publishes a
    capture: the same attributes (without ``shard``), coordinates, chunks and digests as
    an unsharded capture of the same samples.

    Every part must be a complete, sound group of its shard's samples (checked while
    read: chunks, digests, ranges, sample ids), with the same attributes; otherwise
    :class:`MoemuiError` names the part and how to make it again, and nothing is
    published.
    """
    from moemui.store import StoreWriter
    from moemui.tasks import read_samples

    ids = [s["id"] for s in read_samples(tasks)]
    opened = [_Part(path, i, n) for i, n, path in _sort_parts(parts, "store")]
    first = None
    spans = []
    for part in opened:
        attrs = dict(part.attrs)
        shard = attrs.pop(SHARD_ATTR, None)
        attrs.pop("complete", None)
        start, stop = shard_range(len(ids), part.index, part.count, f"task file {tasks}")
        want = {"index": part.index, "count": part.count, "start": start, "stop": stop}
        if shard != want:
            raise MoemuiError(
                f"{part.path}: its shard attribute is {shard}, expected {want}; capture this "
                "shard again"
            )
        sample = part.read("sample", slice(0, None))
        if [str(s) for s in sample] != ids[start:stop]:
            raise MoemuiError(
                f"{part.path}: its samples are not samples {start}..{stop - 1} of {tasks}; "
                "capture this shard again"
            )
        if first is None:
            first = attrs
        elif attrs != first:
            differ = sorted(k for k in set(attrs) | set(first) if attrs.get(k) != first.get(k))
            raise MoemuiError(
                f"{part.path}: attributes {', '.join(differ)} differ from shard 1's "
                f"({opened[0].path}); capture the shards with one config"
            )
        spans.append((start, stop))
    geometry = _RecordedGeometry(first["geometry"])
    writer = StoreWriter(
        out,
        geometry,
        ids,
        tuple(first["variants"]),
        int(first["k_top"]),
        first,
        keep=first.get("keep", "all"),
    )
    try:
        chunk = writer.layout.sample_chunk
        blocks = list(range(0, len(ids), chunk))
        for a in progress(blocks) if progress else blocks:
            b = min(a + chunk, len(ids))
            for name, arr in writer.arrays.items():
                layers = [None] if len(arr.shape) < 4 else list(range(arr.shape[1]))
                for layer in layers:
                    pieces = [
                        part.read(name, slice(max(a, s) - s, min(b, e) - s), layer)
                        for part, (s, e) in zip(opened, spans, strict=True)
                        if s < b and a < e
                    ]
                    writer.write_block(name, a, np.concatenate(pieces), layer)
        for part in opened:
            part.check_digests()
        return writer.publish()
    except BaseException:
        writer.abort()
        raise
