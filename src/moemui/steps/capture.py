"""The capture step: score every response of a model on a task and publish its store
group."""

from __future__ import annotations

import os
from importlib.metadata import version
from pathlib import Path

from moemui import __version__
from moemui.defaults import default
from moemui.errors import MoemuiError
from moemui.io import read_records
from moemui.metrics import k_for
from moemui.progress import progress
from moemui.store import StoreWriter
from moemui.tasks import read_samples


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape the numbers."""
    names = ["moemui", "torch", "transformers", "zarr", "xarray", "numpy"]
    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except Exception:  # pragma: no cover - a source checkout without metadata
            out[name] = __version__ if name == "moemui" else "unknown"
    return out


SCORED_TOKENS: tuple[str, ...] = ("all", "answer")


def scored_split(record: dict, tokens: str = "all") -> tuple[list[int], list[int]]:
    """(context, scored response) ids of a responses record: the prompt and the whole
    response (``all``), or the prompt with the response up to the final answer, and the
    answer (``answer``: from ``answer_start``; records without it are all answer)."""
    prompt, response = list(record["prompt_ids"]), list(record["response_ids"])
    if tokens == "all":
        return prompt, response
    start = int(record.get("answer_start", 0))
    return prompt + response[:start], response[start:]


def capture_task(
    model_id: str,
    source: str,
    task_id: str,
    tasks: str | os.PathLike,
    responses: str | os.PathLike,
    out: str | os.PathLike,
    revision: str | None = None,
    dtype: str | None = None,
    device: str = "auto",
    variants: tuple[str, ...] | None = None,
    target: str | None = None,
    max_threshold: float | None = None,
    batch_size: int | None = None,
    batch_invariant: bool | None = None,
    attrs: dict | None = None,
    trust_remote_code: bool = False,
    device_map: str | None = None,
    keep: str | None = None,
    tokens: str | None = None,
    shard: tuple[int, int] | None = None,
) -> Path:
    """Score every response of a model on a task and publish its store group at ``out``.

    ``shard`` ``(index, count)``: only that shard's samples, in a group whose ``shard``
    attribute records the range (:mod:`moemui.shards`; the gather drops it).

    ``keep``: ``key`` stores only the scores that can be key at a threshold <=
    ``max_threshold`` (:func:`moemui.store.retain`), ``all`` every score.
    ``tokens``: ``all`` scores every response token; ``answer`` only the final answer's
    (from the record's ``answer_start``), the tokens before it being read as context,
    like the prompt.

    ``dtype`` and the capture settings ``variants``, ``target``, ``max_threshold``,
    ``batch_size``, ``batch_invariant``, ``keep``, ``tokens``: None is the config's
    default (``models.dtype``, ``capture.*``)."""
    from moemui.adapters import adapter_for
    from moemui.capture import TARGETS, ContributionCapture
    from moemui.sources import load_model

    dtype = default("models.dtype") if dtype is None else dtype
    variants = tuple(default("capture.variants")) if variants is None else variants
    target = default("capture.target") if target is None else target
    if max_threshold is None:
        max_threshold = default("capture.max_threshold")
    batch_size = default("capture.batch_size") if batch_size is None else batch_size
    if batch_invariant is None:
        batch_invariant = default("capture.batch_invariant")
    keep = default("capture.keep") if keep is None else keep
    tokens = default("capture.tokens") if tokens is None else tokens
    if target not in TARGETS:
        raise MoemuiError(f"unknown target {target!r}; expected one of {', '.join(TARGETS)}")
    if tokens not in SCORED_TOKENS:
        raise MoemuiError(f"unknown tokens {tokens!r}; expected one of {', '.join(SCORED_TOKENS)}")
    samples = read_samples(tasks)
    records = read_records(responses)
    ids = [s["id"] for s in samples]
    if [r["id"] for r in records] != ids:
        raise MoemuiError(f"{responses}: sample ids differ from the task file {tasks}; re-generate")
    shard_attr = {}
    if shard is not None:
        from moemui.shards import SHARD_ATTR, shard_range

        start, stop = shard_range(len(ids), *shard, f"task file {tasks}")
        ids, records = ids[start:stop], records[start:stop]
        shard_attr = {
            SHARD_ATTR: {"index": shard[0], "count": shard[1], "start": start, "stop": stop}
        }
    model, _ = load_model(
        source, model_id, revision, dtype, device, False, trust_remote_code, device_map
    )
    name = f"model {model_id!r}"
    adapter = adapter_for(model, name)
    geometry = adapter.geometry(model, name)
    k_top = k_for(max_threshold, geometry.neurons_per_layer)
    with ContributionCapture(
        model, adapter, tuple(variants), k_top, name, batch_invariant=batch_invariant
    ) as cap:
        meta = {
            "model": model_id,
            "source": source,
            "revision": revision or "",
            "family": geometry.family,
            "architecture": geometry.architecture,
            "task": task_id,
            "variants": list(variants),
            "target": target,
            "dtype": dtype,
            "max_threshold": max_threshold,
            "k_top": k_top,
            "batch_invariant": bool(batch_invariant),
            "tokens": tokens,
            "geometry": geometry.as_dict(),
            "package_versions": package_versions(),
            **(attrs or {}),
            **shard_attr,
        }
        writer = StoreWriter(out, geometry, ids, tuple(variants), k_top, meta, keep=keep)
        try:
            for start in progress(
                range(0, len(records), batch_size),
                desc=f"capture {model_id}/{task_id}",
                unit="batch",
            ):
                chunk = records[start : start + batch_size]
                split = [scored_split(r, tokens) for r in chunk]
                try:
                    batch = cap.score_batch(
                        [context for context, _ in split],
                        [scored for _, scored in split],
                        target,
                        ids=[r["id"] for r in chunk],
                    )
                except MoemuiError as err:
                    raise MoemuiError(f"{err} (task {task_id!r})") from None
                writer.write(
                    start,
                    batch,
                    [r["correct"] for r in chunk],
                    [r.get("n_prompt_truncated", 0) for r in chunk],
                )
            return writer.publish()
        except BaseException:
            writer.abort()
            raise
