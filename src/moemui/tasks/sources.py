"""Task sources: what a config task's ``source`` names, and its samples.

A source is ``<scheme>:<ref>`` with a scheme of :data:`TASK_SCHEMES`:

``builtin:<name>``
    A built-in generator (:mod:`moemui.tasks.builtin`).
``jsonl:<path>``
    A user task file (:mod:`moemui.tasks.files`).
``hf:<name>``
    A published dataset (:mod:`moemui.tasks.published`).

:func:`parse_task_source` is the one place that reads a source (the config checks and
the workflow's rules call it too); :func:`make_task` makes a config task entry's samples.

Examples
--------
>>> parse_task_source("builtin:arithmetic")
TaskSource(scheme='builtin', ref='arithmetic')
>>> parse_task_source("jsonl:data/my:task.jsonl").ref
'data/my:task.jsonl'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, NamedTuple, get_args

from moemui.defaults import default
from moemui.errors import MoemuiError
from moemui.tasks.builtin import make_builtin
from moemui.tasks.files import load_jsonl
from moemui.tasks.published import make_published
from moemui.tasks.samples import stop_problem

__all__ = ["TASK_SCHEMES", "TaskScheme", "TaskSource", "make_task", "parse_task_source"]

TaskScheme = Literal["builtin", "jsonl", "hf"]
#: The task source schemes (the config schema's ``tasks[].source`` pattern lists them).
TASK_SCHEMES: tuple[str, ...] = get_args(TaskScheme)


class TaskSource(NamedTuple):
    """A parsed task source: ``scheme`` (one of :data:`TASK_SCHEMES`) and ``ref``, the
    rest after the first ``:`` (a generator name, a path, a dataset name)."""

    scheme: TaskScheme
    ref: str


def parse_task_source(source: str, task: str = "task") -> TaskSource:
    """Split a config ``source`` into its scheme and reference.

    Parameters
    ----------
    source : str
        ``builtin:<name>``, ``jsonl:<path>`` or ``hf:<name>``.
    task : str
        The task's id, for the message.

    Raises
    ------
    MoemuiError
        No known scheme before the first ``:``, naming the task and the source.
    """
    scheme, sep, ref = source.partition(":")
    if not sep or scheme not in TASK_SCHEMES:
        raise MoemuiError(
            f"task {task!r}: unknown source {source!r} "
            "(expected 'builtin:<name>', 'jsonl:<path>' or 'hf:<benchmark>')"
        )
    return TaskSource(scheme, ref)  # type: ignore[arg-type]


def make_task(spec: dict) -> list[dict]:
    """Build a task's samples from a config task entry.

    Parameters
    ----------
    spec : dict
        ``{"id": "arith", "source": "builtin:arithmetic", "n": 64, "seed": 0,
        "params": {...}}`` or ``{"id": "mine", "source": "jsonl:path/to/file.jsonl",
        "n": 64, "seed": 0}`` or ``{"id": "arc", "source": "hf:arc_challenge", "n": 100,
        "params": {...}, "path": "data/arc"}``
        (:func:`~moemui.tasks.published.make_published`: ``n`` optional, ``path`` an
        optional local copy). For ``builtin:`` sources ``n`` is required and ``seed``
        defaults to the config's (``tasks.seed``, 0). For ``jsonl:`` sources ``n`` and
        ``seed`` are optional (see :func:`~moemui.tasks.files.load_jsonl`), ``params`` is
        not allowed, and a relative path is relative to the current directory. ``stop``
        (a list of strings, any source) is copied into every sample's ``meta.stop``: the
        generation step ends a response at the first of them. Other keys are ignored.

    Returns
    -------
    list of dict
        The samples.

    Raises
    ------
    MoemuiError
        A malformed entry, an unknown source scheme (naming the task id and the source), or
        any error of :func:`~moemui.tasks.builtin.make_builtin`,
        :func:`~moemui.tasks.files.load_jsonl` or
        :func:`~moemui.tasks.published.make_published`, prefixed with the task id.
    """
    if not isinstance(spec, Mapping):
        raise MoemuiError(f"task entry must be a mapping, got {type(spec).__name__}")
    task_id = spec.get("id")
    if not isinstance(task_id, str) or not task_id:
        raise MoemuiError(f"task entry needs a non-empty string 'id', got {task_id!r}")
    source = spec.get("source")
    if not isinstance(source, str) or not source:
        raise MoemuiError(f"task {task_id!r}: needs a non-empty string 'source', got {source!r}")
    stop = spec.get("stop")
    problem = stop_problem(stop) if stop is not None else None
    if problem:
        raise MoemuiError(f"task {task_id!r}: 'stop' {problem}")
    samples = _make_samples(spec, task_id, source)
    if stop:
        for sample in samples:
            sample["meta"]["stop"] = list(stop)
    return samples


def _make_samples(spec: Mapping, task_id: str, source: str) -> list[dict]:
    scheme, ref = parse_task_source(source, task_id)
    try:
        if scheme == "builtin":
            if "n" not in spec:
                raise MoemuiError("key 'n' is required for a builtin source")
            seed = spec.get("seed", default("tasks.seed"))
            return make_builtin(ref, spec["n"], seed, spec.get("params"))
        if scheme == "jsonl":
            if not ref:
                raise MoemuiError(f"source {source!r} has no path")
            if spec.get("params"):
                raise MoemuiError(f"key 'params' is not allowed for source {source!r}")
            return load_jsonl(ref, spec.get("n"), spec.get("seed"))
        return make_published(
            ref,
            spec.get("n"),
            spec.get("seed", default("tasks.seed")),
            spec.get("params"),
            spec.get("path"),
            task_id,
        )
    except MoemuiError as exc:
        raise MoemuiError(f"task {task_id!r}: {exc}") from exc
