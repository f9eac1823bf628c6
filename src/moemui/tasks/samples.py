"""The sample contract: what a sample holds, its checks, and its task files.

A *sample* is a dict with the keys

``id``
    ``str``, unique within its task.
``prompt``
    ``str``, the exact text given to the model.
``reference``
    ``str``, the gold answer.
``meta``
    ``dict`` with at least ``{"kind": <scoring kind>}`` (one of :data:`KINDS`);
    ``"choices"`` (list of option texts) for multiple choice; generator parameters useful
    for analysis.

Samples are materialised one JSON object per line in ``results/tasks/{task}.jsonl`` with
:func:`write_samples` and read back with :func:`read_samples`, both through the one
JSON-lines writer and reader of :mod:`moemui.io`.

Any Unicode a JSON string can hold reads back as written (:mod:`moemui.io`): U+2028,
U+0085, escaped control characters, NUL, and lone surrogates (``"\\ud800"``, written back
as that escape). Two places cannot hold some of them, and are refused when the task is
materialised, naming the file and line or the task: a sample id must not hold a lone
surrogate (the store's ``sample`` coordinate is UTF-8) nor NUL (NumPy strings, which the
key files hold ids in, drop trailing NULs) (:func:`id_problem`); a stop string must not
hold a lone surrogate (generated text never holds one, so it could never match), nor the
test program of a ``code`` sample (its source is UTF-8). Prompts,
references and choices keep them; the tokenizer gets U+FFFD instead
(:func:`moemui.generate.render_prompt`).
"""

from __future__ import annotations

import logging
import os
import string
from pathlib import Path
from typing import Any

from moemui.errors import MoemuiError
from moemui.io import describe_surrogate, read_json_lines, write_records

logger = logging.getLogger(__name__)

__all__ = [
    "KINDS",
    "KIND_BOOLEAN",
    "KIND_CHOICE",
    "KIND_CODE",
    "KIND_EXACT",
    "KIND_FINAL_NUMBER",
    "KIND_FINAL_TEXT",
    "KIND_MATH",
    "KIND_NUMBER",
    "LETTERS",
    "check_count",
    "check_sample",
    "check_seed",
    "id_problem",
    "read_samples",
    "stop_problem",
    "write_samples",
]

KIND_NUMBER = "number"
KIND_CHOICE = "choice"
KIND_BOOLEAN = "boolean"
KIND_EXACT = "exact"
KIND_FINAL_NUMBER = "final_number"
KIND_MATH = "math"
KIND_FINAL_TEXT = "final_text"
KIND_CODE = "code"
#: The scoring kinds, in a fixed order. The last four are the published datasets' (GSM8K,
#: MATH, BBH, MBPP/HumanEval); see :mod:`moemui.tasks.scoring` and
#: :mod:`moemui.tasks.published`.
KINDS: tuple[str, ...] = (
    KIND_NUMBER,
    KIND_CHOICE,
    KIND_BOOLEAN,
    KIND_EXACT,
    KIND_FINAL_NUMBER,
    KIND_MATH,
    KIND_FINAL_TEXT,
    KIND_CODE,
)

#: Option letters for multiple choice; a task may have at most this many choices.
LETTERS = string.ascii_uppercase


def check_count(n: Any, what: str) -> int:
    """``n`` when it is a positive integer (a number of samples), else an error naming
    ``what``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise MoemuiError(f"{what}: n must be a positive integer, got {n!r}")
    return n


def check_seed(seed: Any, what: str) -> int:
    """``seed`` when it is an integer, else an error naming ``what``."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise MoemuiError(f"{what}: seed must be an integer, got {seed!r}")
    return seed


def id_problem(sample_id: str) -> str | None:
    """Why ``sample_id`` cannot be a sample id, else None: it holds a lone surrogate
    (the store's ``sample`` coordinate is UTF-8, which cannot hold one) or NUL (NumPy
    strings, which hold the ids in key files, drop trailing NULs). Every other character
    is allowed."""
    where = describe_surrogate(sample_id)
    if where:
        return f"holds a lone surrogate ({where}), which the store cannot hold as UTF-8"
    if "\x00" in sample_id:
        return "holds NUL (U+0000), which the key files' NumPy strings cannot keep"
    return None


def stop_problem(stop: Any) -> str | None:
    """Why ``stop`` cannot be a list of stop strings, else None: not a list of non-empty
    strings, or one holds a lone surrogate (decoded text never holds one, so it could
    never match)."""
    if not isinstance(stop, list) or not all(isinstance(x, str) and x for x in stop):
        return "must be a list of non-empty strings"
    for i, x in enumerate(stop):
        where = describe_surrogate(x)
        if where:
            return (
                f"string {i} holds a lone surrogate ({where}); generated text never holds "
                "one, so it could never match"
            )
    return None


def check_sample(sample: Any, where: str) -> None:
    """Raise :class:`~moemui.errors.MoemuiError` prefixed with ``where`` unless
    ``sample`` keeps the contract (module docstring): the four keys with their types, a
    known kind, an id and stop strings the store and the generation can hold, and (code
    samples) a test program without lone surrogates."""
    if not isinstance(sample, dict):
        raise MoemuiError(f"{where}: sample must be an object, got {type(sample).__name__}")
    for key, typ in (("id", str), ("prompt", str), ("reference", str), ("meta", dict)):
        if key not in sample:
            raise MoemuiError(f"{where}: missing key {key!r}")
        if not isinstance(sample[key], typ):
            raise MoemuiError(f"{where}: key {key!r} must be {typ.__name__}")
    kind = sample["meta"].get("kind")
    if kind not in KINDS:
        raise MoemuiError(f"{where}: meta.kind must be one of {list(KINDS)}, got {kind!r}")
    problem = id_problem(sample["id"])
    if problem:
        raise MoemuiError(f"{where}: id {sample['id']!r} {problem}")
    if sample["meta"].get("stop") is not None:
        problem = stop_problem(sample["meta"]["stop"])
        if problem:
            raise MoemuiError(f"{where}: meta.stop {problem}")
    if kind == KIND_CODE:
        for key in ("imports", "setup", "tests", "code_prompt", "entry_point"):
            value = sample["meta"].get(key)
            found = describe_surrogate(value) if isinstance(value, str) else None
            if found:
                raise MoemuiError(
                    f"{where}: meta.{key} holds a lone surrogate ({found}), which a Python "
                    "program run in the sandbox cannot hold (its source is UTF-8)"
                )


def write_samples(path: str | os.PathLike, samples: list[dict]) -> None:
    """Check samples against the contract, then write them atomically, one JSON object
    per line (:func:`moemui.io.write_records`: UTF-8, ``ensure_ascii=False`` but lone
    surrogates escaped, keys sorted, ``\\n`` line ends; readers never see a partial file).

    Parameters
    ----------
    path : str or os.PathLike
        Destination.
    samples : list of dict
        Samples with ``id``, ``prompt``, ``reference`` (strings) and ``meta`` (with a valid
        ``kind``); ids must be unique.

    Raises
    ------
    MoemuiError
        A malformed sample (naming its index) or a duplicate id; nothing is written.
    """
    path = Path(path)
    seen: set[str] = set()
    for i, sample in enumerate(samples):
        check_sample(sample, f"{path}: sample {i}")
        if sample["id"] in seen:
            raise MoemuiError(f"{path}: sample {i}: duplicate id {sample['id']!r}")
        seen.add(sample["id"])
    write_records(path, samples)
    logger.debug("wrote %d samples to %s", len(samples), path)


def read_samples(path: str | os.PathLike) -> list[dict]:
    """Read a materialised task file written by :func:`write_samples`.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    list of dict
        The samples, unchanged, in file order.

    Raises
    ------
    MoemuiError
        Naming the file (and line): missing, empty, invalid UTF-8 or JSON, a sample without
        ``id``/``prompt``/``reference``/``meta.kind`` or with a wrong type, a duplicate id.
    """
    path = Path(path)
    samples: list[dict] = []
    seen: dict[str, int] = {}
    for lineno, obj in read_json_lines(path, task_file=True):
        check_sample(obj, f"{path}, line {lineno}")
        if obj["id"] in seen:
            raise MoemuiError(
                f"{path}, line {lineno}: duplicate id {obj['id']!r} "
                f"(first on line {seen[obj['id']]})"
            )
        seen[obj["id"]] = lineno
        samples.append(obj)
    return samples
