"""The workflow's steps as plain functions: each rule calls exactly one of them."""

from __future__ import annotations

import csv
import logging
import os
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd

from moemui import __version__
from moemui.errors import MoemuiError
from moemui.io import atomic_write_text, read_records, write_records
from moemui.metrics import k_for, mui_table
from moemui.progress import progress
from moemui.store import StoreWriter, index_store
from moemui.tasks import make_task, read_samples, write_samples

# torch and transformers load only in the steps that run a model (generate, capture),
# so the table steps and Snakemake's parsing stay fast.

log = logging.getLogger(__name__)

PERFORMANCE_COLUMNS = ["model", "task", "n_samples", "n_correct", "accuracy"]


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


def materialise_task(spec: dict, out: str | os.PathLike) -> int:
    """Write the samples of config task ``spec`` to ``out``; return their number."""
    samples = make_task(spec)
    write_samples(out, samples)
    log.info("task %s: %d samples -> %s", spec.get("id"), len(samples), out)
    return len(samples)


def generate_task(
    model_id: str,
    source: str,
    tasks: str | os.PathLike,
    out: str | os.PathLike,
    revision: str | None = None,
    dtype: str = "float32",
    device: str = "auto",
    batch_size: int = 16,
    max_new_tokens: int = 16,
    trust_remote_code: bool = False,
    device_map: str | None = None,
    reasoning: str = "none",
    template_kwargs: dict | None = None,
    imported: str | None = None,
    shard: tuple[int, int] | None = None,
) -> float:
    """Greedy responses of model ``model_id`` to a task file; return the accuracy.

    ``imported`` (``jsonl:<path>`` or ``lm-eval:<path>``): read the responses made
    elsewhere instead of generating (:mod:`moemui.imports`); only the tokenizer loads.
    ``shard`` ``(index, count)``: only that shard's samples (:func:`moemui.shards.shard_range`)."""
    samples = read_samples(tasks)
    if imported:
        from moemui.imports import import_responses

        records = import_responses(
            source,
            model_id,
            samples,
            imported,
            revision,
            trust_remote_code,
            reasoning,
            template_kwargs,
        )  # an import file covers the whole task: read it all, keep the shard's
        records = _shard_of(records, shard, f"task file {tasks}")
    else:
        import torch

        from moemui.generate import generate_responses
        from moemui.sources import load_model

        samples = _shard_of(samples, shard, f"task file {tasks}")
        torch.manual_seed(0)
        model, tokenizer = load_model(
            source, model_id, revision, dtype, device, True, trust_remote_code, device_map
        )
        records = generate_responses(
            model,
            tokenizer,
            samples,
            batch_size,
            max_new_tokens,
            model_id,
            reasoning=reasoning,
            template_kwargs=template_kwargs,
        )
    write_records(out, records)
    accuracy = float(np.mean([r["correct"] for r in records])) if records else float("nan")
    reasons = pd.Series([r["stop_reason"] for r in records]).value_counts().to_dict()
    log.info(
        "%s on %s: accuracy %.3f over %d samples; stopped by %s",
        model_id,
        tasks,
        accuracy,
        len(records),
        ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) or "-",
    )
    return accuracy


SCORED_TOKENS: tuple[str, ...] = ("all", "answer")


def _shard_of(items: list, shard: tuple[int, int] | None, what: str) -> list:
    """The items of shard ``(index, count)``, all of them without one."""
    if shard is None:
        return items
    from moemui.shards import shard_range

    start, stop = shard_range(len(items), *shard, what)
    return items[start:stop]


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
    dtype: str = "float32",
    device: str = "auto",
    variants: tuple[str, ...] = ("gate", "glu"),
    target: str = "next",
    max_threshold: float = 0.01,
    batch_size: int = 8,
    batch_invariant: bool = True,
    attrs: dict | None = None,
    trust_remote_code: bool = False,
    device_map: str | None = None,
    keep: str = "key",
    tokens: str = "all",
    shard: tuple[int, int] | None = None,
) -> Path:
    """Score every response of a model on a task and publish its store group at ``out``.

    ``shard`` ``(index, count)``: only that shard's samples, in a group whose ``shard``
    attribute records the range (:mod:`moemui.shards`; the gather drops it).

    ``keep``: ``key`` stores only the scores that can be key at a threshold <=
    ``max_threshold`` (:func:`moemui.store.retain`), ``all`` every score.
    ``tokens``: ``all`` scores every response token; ``answer`` only the final answer's
    (from the record's ``answer_start``), the tokens before it being read as context,
    like the prompt."""
    from moemui.adapters import adapter_for
    from moemui.capture import TARGETS, ContributionCapture
    from moemui.sources import load_model

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


def mui_cell(
    group: str | os.PathLike,
    thresholds: list[float],
    out: str | os.PathLike,
    correct_only: bool = False,
) -> pd.DataFrame:
    """MUI of one (model, task) group at every threshold, written as CSV; with
    ``correct_only``, also over the correctly answered samples only (extra columns).

    ``group`` is the store group directory or its key-neuron file (``.npz``)."""
    from moemui.analyses.steps import read_keys

    keys = read_keys(group, thresholds)
    table = mui_table(keys, thresholds, keys.model, keys.task, correct_only=correct_only)
    write_csv(table, out)
    return table


def performance(cells: list[tuple[str, str, str]], out: str | os.PathLike) -> pd.DataFrame:
    """Accuracy per (model, task) from responses files ``(model, task, path)``."""
    rows = []
    for model, task, path in cells:
        correct = [bool(r["correct"]) for r in read_records(path)]
        rows.append(
            {
                "model": model,
                "task": task,
                "n_samples": len(correct),
                "n_correct": int(sum(correct)),
                "accuracy": float(np.mean(correct)) if correct else float("nan"),
            }
        )
    table = pd.DataFrame(rows, columns=PERFORMANCE_COLUMNS)
    write_csv(table, out)
    return table


def concat_tables(paths: list[str | os.PathLike], out: str | os.PathLike) -> pd.DataFrame:
    """Concatenate CSV tables with the same columns, in the given order."""
    if not paths:
        raise MoemuiError(f"{out}: no input tables to concatenate")
    table = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    write_csv(table, out)
    return table


def write_csv(table: pd.DataFrame, out: str | os.PathLike) -> None:
    """Write a tidy table atomically, floats with full precision, ``\\n`` line ends.

    Every text reads back with :func:`pandas.read_csv` as written: a field holding a
    newline, quote or comma is quoted, and so is every non-numeric field of a table with
    a lone ``\\r`` in a text (the CSV writer quotes only fields holding a character of
    its line terminator, and the reader ends a line at ``\\r`` too). A lone surrogate
    cannot be written (no UTF-8 form): the error names the file (the tables hold config
    ids and numbers, so none should reach them)."""
    texts = table.select_dtypes(exclude="number")
    has_cr = any(
        isinstance(v, str) and "\r" in v for column in texts.columns for v in texts[column]
    )
    quoting = csv.QUOTE_NONNUMERIC if has_cr else csv.QUOTE_MINIMAL
    atomic_write_text(
        out,
        table.to_csv(index=False, float_format="%.10g", lineterminator="\n", quoting=quoting),
    )


def index(store: str | os.PathLike, groups: list[str]) -> None:
    """Write the root and model group metadata of the store; ``groups`` are ``model/task``."""
    models: dict[str, list[str]] = {}
    for group in groups:
        model, _, task = group.partition("/")
        models.setdefault(model, []).append(task)
    index_store(store, models)
