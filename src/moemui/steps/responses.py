"""The response steps: a model's greedy responses to a task (or responses made
elsewhere, imported), and the accuracy table of the responses."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from moemui.defaults import default
from moemui.errors import MoemuiError
from moemui.io import read_records, write_records
from moemui.steps.tables import write_csv
from moemui.tasks import read_samples

log = logging.getLogger(__name__)

PERFORMANCE_COLUMNS = ["model", "task", "n_samples", "n_correct", "accuracy"]


def shard_of(items: list, shard: tuple[int, int] | None, what: str) -> list:
    """The items of shard ``(index, count)``, all of them without one."""
    if shard is None:
        return items
    from moemui.shards import shard_range

    start, stop = shard_range(len(items), *shard, what)
    return items[start:stop]


def generate_task(
    model_id: str,
    source: str,
    tasks: str | os.PathLike,
    out: str | os.PathLike,
    revision: str | None = None,
    dtype: str | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    max_new_tokens: int | None = None,
    trust_remote_code: bool = False,
    device_map: str | None = None,
    reasoning: str | None = None,
    template_kwargs: dict | None = None,
    imported: str | None = None,
    shard: tuple[int, int] | None = None,
) -> float:
    """Greedy responses of model ``model_id`` to a task file; return the accuracy.

    ``dtype``, ``batch_size``, ``max_new_tokens``, ``reasoning``: None is the config's
    default (``models.dtype``, ``generation.batch_size``, ``generation.max_new_tokens``,
    ``models.reasoning``).
    ``imported`` (``jsonl:<path>`` or ``lm-eval:<path>``): read the responses made
    elsewhere instead of generating (:mod:`moemui.imports`); only the tokenizer loads.
    ``shard`` ``(index, count)``: only that shard's samples (:func:`moemui.shards.shard_range`)."""
    dtype = default("models.dtype") if dtype is None else dtype
    batch_size = default("generation.batch_size") if batch_size is None else batch_size
    if max_new_tokens is None:
        max_new_tokens = default("generation.max_new_tokens")
    reasoning = default("models.reasoning") if reasoning is None else reasoning
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
        records = shard_of(records, shard, f"task file {tasks}")
    else:
        import torch

        from moemui.generate import generate_responses
        from moemui.sources import load_model

        samples = shard_of(samples, shard, f"task file {tasks}")
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


def responses_cells(
    paths: list[str], models: list[str] | None, tasks: list[str] | None
) -> list[tuple[str, str, str]]:
    """``(model, task, path)`` of each responses file: the ids given (one each, in the
    files' order), else the file's place ``.../{model}/{task}.jsonl``."""
    if models is None and tasks is None:
        return [(Path(p).parent.name, Path(p).stem, p) for p in paths]
    if models is None or tasks is None or not len(models) == len(tasks) == len(paths):
        raise MoemuiError(
            f"{len(paths)} responses files need as many --model-ids and --task-ids "
            f"(got {len(models or [])} and {len(tasks or [])})"
        )
    return list(zip(models, tasks, paths, strict=True))


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
