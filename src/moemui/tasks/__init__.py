"""Tasks: sets of samples a model answers by greedy generation, each with an exact scorer.

One module per concern; callers import the names below from ``moemui.tasks``, and no
module of the package imports this one:

:mod:`~moemui.tasks.samples`
    The sample contract (``id``, ``prompt``, ``reference``, ``meta.kind``), its checks,
    and the task files (:func:`write_samples`, :func:`read_samples`).
:mod:`~moemui.tasks.sources`
    What a config task's ``source`` is (:func:`parse_task_source`, :data:`TASK_SCHEMES`)
    and its samples (:func:`make_task`), made by
:mod:`~moemui.tasks.builtin`
    the built-in generators (``builtin:<name>``, :data:`BUILTIN_TASKS`),
:mod:`~moemui.tasks.files`
    user task files (``jsonl:<path>``, :func:`load_jsonl`), or
:mod:`~moemui.tasks.published`
    published datasets (``hf:<name>``, :data:`PUBLISHED_DATASETS`).
:mod:`~moemui.tasks.scoring`
    Answer extraction and scoring (:func:`extract_answer`, :func:`score`), for every
    scoring kind (:data:`KINDS`); code answers run in
:mod:`~moemui.tasks.sandbox`
    a separate, limited process.
"""

from moemui.tasks.builtin import BUILTIN_TASKS, BuiltinTask, make_builtin
from moemui.tasks.files import load_jsonl
from moemui.tasks.published import (
    BBH_SUBTASKS,
    MATH_SUBJECTS,
    MMLU_SUBJECTS,
    PUBLISHED_DATASETS,
    PublishedDataset,
    make_published,
)
from moemui.tasks.samples import (
    KIND_BOOLEAN,
    KIND_CHOICE,
    KIND_CODE,
    KIND_EXACT,
    KIND_FINAL_NUMBER,
    KIND_FINAL_TEXT,
    KIND_MATH,
    KIND_NUMBER,
    KINDS,
    LETTERS,
    check_sample,
    id_problem,
    read_samples,
    stop_problem,
    write_samples,
)
from moemui.tasks.sandbox import SandboxResult, run_python
from moemui.tasks.scoring import code_program, extract_answer, score, score_code
from moemui.tasks.sources import (
    TASK_SCHEMES,
    TaskScheme,
    TaskSource,
    make_task,
    parse_task_source,
)

__all__ = [
    "BBH_SUBTASKS",
    "BUILTIN_TASKS",
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
    "MATH_SUBJECTS",
    "MMLU_SUBJECTS",
    "PUBLISHED_DATASETS",
    "TASK_SCHEMES",
    "BuiltinTask",
    "PublishedDataset",
    "SandboxResult",
    "TaskScheme",
    "TaskSource",
    "check_sample",
    "code_program",
    "extract_answer",
    "id_problem",
    "load_jsonl",
    "make_builtin",
    "make_published",
    "make_task",
    "parse_task_source",
    "read_samples",
    "run_python",
    "score",
    "score_code",
    "stop_problem",
    "write_samples",
]
