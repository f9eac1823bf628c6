"""User task files: a ``jsonl:<path>`` task source.

:func:`load_jsonl` reads a file a person wrote (one JSON object per line, through the
JSON-lines reader of :mod:`moemui.io`) into samples that keep the contract of
:mod:`moemui.tasks.samples`; its rules are documented there and on :func:`load_jsonl`.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any

from moemui.errors import MoemuiError
from moemui.io import read_json_lines
from moemui.tasks.samples import (
    KIND_BOOLEAN,
    KIND_CHOICE,
    KIND_EXACT,
    KIND_NUMBER,
    KINDS,
    LETTERS,
    check_count,
    check_seed,
    id_problem,
)
from moemui.tasks.scoring import parse_fraction

logger = logging.getLogger(__name__)

__all__ = ["load_jsonl"]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_LOAD_KEYS = ("id", "prompt", "reference", "choices", "kind", "meta")


def _sample_from_user_row(path: Path, lineno: int, obj: dict) -> dict:
    where = f"{path}, line {lineno}"
    for key in ("id", "prompt", "reference"):
        if key not in obj:
            raise MoemuiError(f"{where}: missing key {key!r}")

    raw_id = obj["id"]
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        raise MoemuiError(f"{where}: key 'id' must be a string or integer, got {raw_id!r}")
    sample_id = str(raw_id)
    if not sample_id.strip():
        raise MoemuiError(f"{where}: key 'id' must not be empty")
    problem = id_problem(sample_id)
    if problem:
        raise MoemuiError(f"{where}: key 'id' {sample_id!r} {problem}")
    where = f"{where} (id {sample_id!r})"

    prompt = obj["prompt"]
    if not isinstance(prompt, str) or not prompt:
        raise MoemuiError(f"{where}: key 'prompt' must be a non-empty string, got {prompt!r}")

    raw_ref = obj["reference"]
    if isinstance(raw_ref, str):
        reference = raw_ref
    elif _is_number(raw_ref):
        reference = str(raw_ref)
    else:
        raise MoemuiError(f"{where}: key 'reference' must be a string or number, got {raw_ref!r}")

    user_meta = obj.get("meta", {})
    if not isinstance(user_meta, dict):
        raise MoemuiError(f"{where}: key 'meta' must be an object, got {user_meta!r}")

    # Top-level keys win; meta.kind / meta.choices are accepted too (materialised files).
    choices = obj.get("choices", user_meta.get("choices"))
    if "choices" in obj and "choices" in user_meta and user_meta["choices"] != obj["choices"]:
        raise MoemuiError(f"{where}: key 'choices' differs from meta.choices")
    kind = obj.get("kind", user_meta.get("kind"))
    if "kind" in obj and "kind" in user_meta and user_meta["kind"] != obj["kind"]:
        raise MoemuiError(f"{where}: key 'kind' differs from meta.kind")

    if choices is not None:
        if (
            not isinstance(choices, list)
            or not all(isinstance(c, str) for c in choices)
            or not 2 <= len(choices) <= len(LETTERS)
        ):
            raise MoemuiError(
                f"{where}: key 'choices' must be a list of 2..{len(LETTERS)} strings, "
                f"got {choices!r}"
            )
        if len(set(choices)) != len(choices):
            raise MoemuiError(f"{where}: key 'choices' has duplicate options: {choices!r}")
    if kind is None:
        kind = KIND_CHOICE if choices is not None else KIND_EXACT
    if kind not in KINDS:
        raise MoemuiError(f"{where}: key 'kind' must be one of {list(KINDS)}, got {kind!r}")
    if kind == KIND_CHOICE and choices is None:
        raise MoemuiError(f"{where}: kind 'choice' needs key 'choices'")
    if kind != KIND_CHOICE and choices is not None:
        raise MoemuiError(f"{where}: key 'choices' given but kind is {kind!r}")

    if kind == KIND_CHOICE:
        assert choices is not None
        letters = LETTERS[: len(choices)]
        if reference in letters:
            pass  # a letter wins over a choice text that happens to be a letter
        elif reference in choices:
            reference = letters[choices.index(reference)]
        else:
            raise MoemuiError(
                f"{where}: key 'reference' {reference!r} is neither a letter "
                f"{letters[0]}..{letters[-1]} nor one of the choices {choices!r}"
            )
    elif kind == KIND_NUMBER:
        if parse_fraction(reference) is None:
            raise MoemuiError(f"{where}: key 'reference' {reference!r} is not a number")
    elif kind == KIND_BOOLEAN:
        if reference.strip().lower() not in ("true", "false"):
            raise MoemuiError(f"{where}: key 'reference' {reference!r} is not True/False")
        reference = "True" if reference.strip().lower() == "true" else "False"

    meta = dict(user_meta)
    for key, value in obj.items():  # unknown top-level keys are kept for analysis
        if key not in _LOAD_KEYS:
            meta.setdefault(key, value)
    meta["kind"] = kind
    if choices is not None:
        meta["choices"] = list(choices)
    return {"id": sample_id, "prompt": prompt, "reference": reference, "meta": meta}


def load_jsonl(
    path: str | os.PathLike, n: int | None = None, seed: int | None = None
) -> list[dict]:
    """Load a user task file.

    Each non-blank line is a JSON object with

    - ``id`` (required): string or integer, converted to ``str``; unique in the file;
      without lone surrogates or NUL (:func:`id_problem`);
    - ``prompt`` (required): non-empty string;
    - ``reference`` (required): string or number, converted to ``str``;
    - ``choices`` (optional): list of 2..26 distinct strings; makes the kind ``"choice"``.
      The reference must then be a letter ``A``.. within range, or one of the choices'
      texts (converted to its letter; a letter wins if both apply);
    - ``kind`` (optional): a scoring kind; default ``"choice"`` with choices, else
      ``"exact"``. A ``"number"`` reference must parse as a number; a ``"boolean"``
      reference must be true/false (any case), normalised to ``"True"``/``"False"``;
    - ``meta`` (optional): object merged into the sample's meta. ``meta.kind`` and
      ``meta.choices`` are used when the top-level keys are absent, so a materialised task
      file loads too.

    Other top-level keys are copied into meta. A UTF-8 byte order mark is ignored.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    n : int, optional
        Number of samples to keep; all when ``None``.
    seed : int, optional
        With ``n``: keep a random subset of size ``n`` drawn with ``random.Random(seed)``,
        in file order. Without: keep the first ``n``. Ignored when ``n`` is ``None``.

    Returns
    -------
    list of dict
        Samples in file order.

    Raises
    ------
    MoemuiError
        Naming the file and the 1-based line number: missing file, invalid UTF-8 (each
        line is decoded strictly), invalid JSON, a line that is not an object, a missing
        key, a wrong type, a duplicate id (both lines named), an invalid reference;
        naming the file: an empty file, ``n`` larger than the number of samples.
    """
    path = Path(path)
    samples: list[dict] = []
    first_line: dict[str, int] = {}
    for lineno, obj in read_json_lines(path, task_file=True):
        sample = _sample_from_user_row(path, lineno, obj)
        if sample["id"] in first_line:
            raise MoemuiError(
                f"{path}, line {lineno}: duplicate id {sample['id']!r} "
                f"(first on line {first_line[sample['id']]})"
            )
        first_line[sample["id"]] = lineno
        samples.append(sample)

    total = len(samples)
    if n is not None:
        n = check_count(n, f"task file {path}")
        if n > total:
            raise MoemuiError(f"task file {path}: n={n} but the file has only {total} samples")
        if seed is None:
            samples = samples[:n]
        else:
            seed = check_seed(seed, f"task file {path}")
            keep = sorted(random.Random(seed).sample(range(total), n))
            samples = [samples[i] for i in keep]
    logger.info("task file %s: %d of %d samples", path, len(samples), total)
    return samples
