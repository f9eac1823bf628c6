"""Published datasets as tasks: ARC, GSM8K, MMLU, BBH, MBPP, MATH and HumanEval.

A config task with ``source: hf:<name>`` (a key of :data:`PUBLISHED_DATASETS`) is
materialised by :func:`make_published`:
the rows are read with the ``datasets`` library from the Hub (or its local cache), or
from ``path``, a local file or directory in the dataset's own published schema
(Parquet, JSONL or JSON), so nothing is downloaded when a local copy is given. Each
row becomes a sample whose ``prompt`` is the exact plain text the model is given
(zero-shot by default, ``k_shot`` solved examples before it optionally),
whose ``reference`` is the gold answer and whose ``meta.kind`` selects the scoring
rule (:mod:`moemui.tasks.scoring`).

The chat template is not applied here, because materialising a task loads no
tokenizer: ``meta.chat_template`` (the ``chat_template`` parameter, default true)
tells the generation step to wrap the prompt as one user message with the model's
chat template when its tokenizer has one (:func:`moemui.generate.render_prompt`);
the responses file records the final prompt text the model saw.

``datasets`` is imported only when a dataset is read from the Hub.

Local layout (``path``)
    A file is the evaluation split. For MMLU and MATH it may hold several subjects
    (their ``subject`` / ``type`` column selects the chosen ones); for BBH one file is
    one subtask (choose exactly one). A directory is searched, for each subset (the Hub
    config: ``ARC-Challenge``, ``main``, a subject or subtask, ...) and split, for
    ``<subset>/<split>.<ext>``, ``<subset>/<split>-*.<ext>`` (the Hub's own layout),
    ``<subset>.<ext>`` (evaluation split only), ``<split>.<ext>`` and
    ``<split>-*.<ext>``, with ``<ext>`` one of ``parquet``, ``jsonl``, ``json``.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moemui.defaults import default
from moemui.errors import MoemuiError
from moemui.tasks.samples import (
    KIND_CHOICE,
    KIND_CODE,
    KIND_FINAL_NUMBER,
    KIND_FINAL_TEXT,
    KIND_MATH,
    LETTERS,
)
from moemui.tasks.scoring import last_boxed

log = logging.getLogger(__name__)

__all__ = ["PUBLISHED_DATASETS", "BBH_SUBTASKS", "MATH_SUBJECTS", "MMLU_SUBJECTS", "make_published"]

MMLU_SUBJECTS: tuple[str, ...] = (
    "abstract_algebra", "anatomy", "astronomy", "business_ethics", "clinical_knowledge",
    "college_biology", "college_chemistry", "college_computer_science", "college_mathematics",
    "college_medicine", "college_physics", "computer_security", "conceptual_physics",
    "econometrics", "electrical_engineering", "elementary_mathematics", "formal_logic",
    "global_facts", "high_school_biology", "high_school_chemistry",
    "high_school_computer_science", "high_school_european_history", "high_school_geography",
    "high_school_government_and_politics", "high_school_macroeconomics",
    "high_school_mathematics", "high_school_microeconomics", "high_school_physics",
    "high_school_psychology", "high_school_statistics", "high_school_us_history",
    "high_school_world_history", "human_aging", "human_sexuality", "international_law",
    "jurisprudence", "logical_fallacies", "machine_learning", "management", "marketing",
    "medical_genetics", "miscellaneous", "moral_disputes", "moral_scenarios", "nutrition",
    "philosophy", "prehistory", "professional_accounting", "professional_law",
    "professional_medicine", "professional_psychology", "public_relations",
    "security_studies", "sociology", "us_foreign_policy", "virology", "world_religions",
)  # fmt: skip

BBH_SUBTASKS: tuple[str, ...] = (
    "boolean_expressions", "causal_judgement", "date_understanding", "disambiguation_qa",
    "dyck_languages", "formal_fallacies", "geometric_shapes", "hyperbaton",
    "logical_deduction_five_objects", "logical_deduction_seven_objects",
    "logical_deduction_three_objects", "movie_recommendation", "multistep_arithmetic_two",
    "navigate", "object_counting", "penguins_in_a_table", "reasoning_about_colored_objects",
    "ruin_names", "salient_translation_error_detection", "snarks", "sports_understanding",
    "temporal_sequences", "tracking_shuffled_objects_five_objects",
    "tracking_shuffled_objects_seven_objects", "tracking_shuffled_objects_three_objects",
    "web_of_lies", "word_sorting",
)  # fmt: skip

#: MATH subject (Hub config) -> the dataset's ``type`` value.
MATH_SUBJECTS: dict[str, str] = {
    "algebra": "Algebra",
    "counting_and_probability": "Counting & Probability",
    "geometry": "Geometry",
    "intermediate_algebra": "Intermediate Algebra",
    "number_theory": "Number Theory",
    "prealgebra": "Prealgebra",
    "precalculus": "Precalculus",
}

_EXTS = ("parquet", "jsonl", "json")
_SELECT = ("first", "random")

#: ``format(row, subset, shots) -> (prompt, reference, meta)``; ``shots`` are rows.
FormatFn = Callable[[dict, str, list[dict]], tuple[str, str, dict]]


@dataclass(frozen=True)
class PublishedDataset:
    """One published dataset (the evaluation set of a benchmark).

    Parameters
    ----------
    name : str
        The name after ``hf:``.
    hub_id : str
        The dataset on the Hugging Face Hub.
    subsets : tuple of str
        Hub configs the dataset is made of (subjects, subtasks), or one config.
    subset_param : str or None
        The parameter that chooses among ``subsets`` (``subjects``, ``subtasks``), if any.
    subset_column : str or None
        Column that names the subset in a local file holding several.
    split, fewshot_split : str
        Default evaluation split, and the split k-shot examples come from (the first k
        rows); when they are equal the examples are left out of the evaluated rows.
    kind : str
        Scoring kind of every sample.
    format : FormatFn
        Row -> prompt, reference, meta.
    id_column : str or None
        Column holding a row id; else the row's index in its split.
    extra : Mapping
        Dataset-specific parameters with defaults.
    """

    name: str
    hub_id: str
    subsets: tuple[str, ...]
    subset_param: str | None
    subset_column: str | None
    split: str
    fewshot_split: str | None
    kind: str
    format: FormatFn
    id_column: str | None = None
    extra: Mapping[str, Any] = None  # type: ignore[assignment]

    def defaults(self) -> dict[str, Any]:
        """Every parameter :meth:`resolve` accepts, with its default."""
        out: dict[str, Any] = {
            "split": self.split,
            "k_shot": 0,
            "chat_template": True,
            "select": "first",
        }
        if self.fewshot_split is not None:
            out["fewshot_split"] = self.fewshot_split
        if self.subset_param:
            out[self.subset_param] = "all"
        out.update(self.extra or {})
        return out

    def resolve(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Merge ``params`` over the dataset's defaults and validate them.

        Raises
        ------
        MoemuiError
            Naming the parameter: unknown key, wrong type, an unknown subject/subtask/level,
            ``k_shot`` for a dataset without examples.
        """
        defaults = self.defaults()
        params = dict(params or {})
        for key in params:
            if key not in defaults:
                raise MoemuiError(
                    f"benchmark {self.name!r}: unknown parameter {key!r} "
                    f"(known: {', '.join(sorted(defaults))})"
                )
        p = {**defaults, **params}
        where = f"benchmark {self.name!r}: parameter"
        for key in ("split", "fewshot_split"):
            if key in p and (not isinstance(p[key], str) or not p[key]):
                raise MoemuiError(f"{where} {key!r} must be a split name, got {p[key]!r}")
        k = p["k_shot"]
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise MoemuiError(f"{where} 'k_shot' must be a non-negative integer, got {k!r}")
        if k and self.fewshot_split is None:
            raise MoemuiError(f"{where} 'k_shot': {self.name} has no examples to show (use 0)")
        if not isinstance(p["chat_template"], bool):
            raise MoemuiError(f"{where} 'chat_template' must be true or false")
        if p["select"] not in _SELECT:
            raise MoemuiError(
                f"{where} 'select' must be one of {list(_SELECT)}, got {p['select']!r}"
            )
        if self.subset_param:
            p[self.subset_param] = _choose(
                p[self.subset_param], self.subsets, f"{where} {self.subset_param!r}"
            )
        if p.get("levels", "all") != "all":  # "all" keeps every row, "Level ?" ones too
            levels = p["levels"]
            if (
                not isinstance(levels, list)
                or not levels
                or any(isinstance(lv, bool) or lv not in range(1, 6) for lv in levels)
            ):
                raise MoemuiError(
                    f"{where} 'levels' must be 'all' or a list from 1..5, got {levels!r}"
                )
            p["levels"] = sorted(set(levels))
        if "timeout" in p:
            t = p["timeout"]
            if isinstance(t, bool) or not isinstance(t, int | float) or not 0 < t <= 600:
                raise MoemuiError(f"{where} 'timeout' must be seconds in (0, 600], got {t!r}")
        return p


# ---- prompt formats ------------------------------------------------------------------------


def _mc_block(question: str, choices: list[str]) -> str:
    options = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices))
    return f"{question.strip()}\n{options}\nAnswer:"


def _arc_choices(row: dict) -> tuple[list[str], str]:
    texts = list(row["choices"]["text"])
    labels = [str(label) for label in row["choices"]["label"]]
    key = str(row["answerKey"])
    if key not in labels:
        raise MoemuiError(f"answerKey {key!r} is not one of the labels {labels}")
    return texts, LETTERS[labels.index(key)]


def _format_arc(row: dict, subset: str, shots: list[dict]) -> tuple[str, str, dict]:
    head = "The following are multiple choice questions (with answers) about science.\n\n"
    parts = []
    for shot in shots:
        texts, letter = _arc_choices(shot)
        parts.append(f"{_mc_block(shot['question'], texts)} {letter}\n\n")
    texts, letter = _arc_choices(row)
    prompt = head + "".join(parts) + _mc_block(row["question"], texts)
    return prompt, letter, {"choices": texts}


def _format_mmlu(row: dict, subset: str, shots: list[dict]) -> tuple[str, str, dict]:
    subject = row.get("subject") or subset
    head = (
        "The following are multiple choice questions (with answers) about "
        f"{subject.replace('_', ' ')}.\n\n"
    )
    parts = [
        f"{_mc_block(s['question'], list(s['choices']))} {LETTERS[int(s['answer'])]}\n\n"
        for s in shots
    ]
    choices = list(row["choices"])
    prompt = head + "".join(parts) + _mc_block(row["question"], choices)
    return prompt, LETTERS[int(row["answer"])], {"choices": choices, "subject": subject}


def _gsm8k_final(answer: str) -> str:
    if "####" not in answer:
        raise MoemuiError(f"answer has no '####' final number: {answer[-80:]!r}")
    return answer.rsplit("####", 1)[1].strip().replace(",", "")


def _format_gsm8k(row: dict, subset: str, shots: list[dict]) -> tuple[str, str, dict]:
    head = (
        "Solve the math word problem. Reason step by step, then give the final number "
        'after "####".\n\n'
    )
    parts = [f"Question: {s['question'].strip()}\nAnswer: {s['answer'].strip()}\n\n" for s in shots]
    prompt = head + "".join(parts) + f"Question: {row['question'].strip()}\nAnswer:"
    return prompt, _gsm8k_final(row["answer"]), {}


def _math_reference(row: dict) -> str:
    if row.get("answer") not in (None, ""):
        return str(row["answer"])
    boxed = last_boxed(row["solution"])
    if boxed is None:
        raise MoemuiError("solution has no \\boxed{} answer")
    return boxed


def _format_math(row: dict, subset: str, shots: list[dict]) -> tuple[str, str, dict]:
    head = "Solve the problem. Put the final answer in \\boxed{}.\n\n"
    parts = [
        f"Problem:\n{s['problem'].strip()}\n\nSolution: {s['solution'].strip()}\n\n" for s in shots
    ]
    prompt = head + "".join(parts) + f"Problem:\n{row['problem'].strip()}\n\nSolution:"
    meta = {"level": row.get("level"), "type": row.get("type")}
    return prompt, _math_reference(row), meta


def _format_bbh(row: dict, subset: str, shots: list[dict]) -> tuple[str, str, dict]:
    parts = [f"Q: {s['input'].strip()}\nA: {s['target'].strip()}\n\n" for s in shots]
    prompt = "".join(parts) + f"Q: {row['input'].strip()}\nA:"
    return prompt, str(row["target"]).strip(), {"subtask": subset}


def _mbpp_block(row: dict) -> str:
    tests = "\n".join(row["test_list"])
    text = row.get("text") or row.get("prompt")
    return (
        f"You are an expert Python programmer, and here is your task: {text.strip()} "
        f"Your code should pass these tests:\n\n{tests}\n[BEGIN]\n"
    )


def _format_mbpp(row: dict, subset: str, shots: list[dict]) -> tuple[str, str, dict]:
    parts = [f"{_mbpp_block(s)}{s['code'].strip()}\n[DONE]\n\n" for s in shots]
    prompt = "".join(parts) + _mbpp_block(row)
    # the program: the "sanitized" config's imports, the code, then the row's
    # test_setup_code (it may use what the code defines: task 367 builds its trees with
    # the solution's Node class), then the asserts
    imports = "\n".join(row.get("test_imports") or [])
    meta = {
        "style": "program",
        "imports": imports,
        "setup": (row.get("test_setup_code") or "").strip(),
        "tests": "\n".join(row["test_list"]),
    }
    return prompt, row["code"], meta


def _format_humaneval(row: dict, subset: str, shots: list[dict]) -> tuple[str, str, dict]:
    meta = {
        "style": "completion",
        "code_prompt": row["prompt"],
        "tests": row["test"],
        "entry_point": row["entry_point"],
    }
    return row["prompt"], row["canonical_solution"], meta


_CODE_EXTRA = {"timeout": 10.0}

#: The published datasets by name (the part after ``hf:``).
PUBLISHED_DATASETS: dict[str, PublishedDataset] = {
    "arc_challenge": PublishedDataset(
        "arc_challenge", "allenai/ai2_arc", ("ARC-Challenge",), None, None,
        "test", "train", KIND_CHOICE, _format_arc, "id",
    ),
    "arc_easy": PublishedDataset(
        "arc_easy", "allenai/ai2_arc", ("ARC-Easy",), None, None,
        "test", "train", KIND_CHOICE, _format_arc, "id",
    ),
    "gsm8k": PublishedDataset(
        "gsm8k", "openai/gsm8k", ("main",), None, None,
        "test", "train", KIND_FINAL_NUMBER, _format_gsm8k,
    ),
    "mmlu": PublishedDataset(
        "mmlu", "cais/mmlu", MMLU_SUBJECTS, "subjects", "subject",
        "test", "dev", KIND_CHOICE, _format_mmlu,
    ),
    "bbh": PublishedDataset(
        "bbh", "lukaemon/bbh", BBH_SUBTASKS, "subtasks", None,
        "test", "test", KIND_FINAL_TEXT, _format_bbh,
    ),
    "mbpp": PublishedDataset(
        "mbpp", "google-research-datasets/mbpp", ("full",), None, None,
        "test", "prompt", KIND_CODE, _format_mbpp, "task_id", _CODE_EXTRA,
    ),
    "math": PublishedDataset(
        "math", "EleutherAI/hendrycks_math", tuple(MATH_SUBJECTS), "subjects", "type",
        "test", "train", KIND_MATH, _format_math, None, {"levels": "all"},
    ),
    "humaneval": PublishedDataset(
        "humaneval", "openai/openai_humaneval", ("openai_humaneval",), None, None,
        "test", None, KIND_CODE, _format_humaneval, "task_id", _CODE_EXTRA,
    ),
}  # fmt: skip


# ---- parameters --------------------------------------------------------------------------


def _choose(value: Any, known: tuple[str, ...], where: str) -> list[str]:
    if value == "all":
        return list(known)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise MoemuiError(f"{where} must be 'all' or a non-empty list of names, got {value!r}")
    for v in value:
        if v not in known:
            raise MoemuiError(f"{where}: unknown name {v!r} (known: {', '.join(known)})")
    return list(dict.fromkeys(value))


# ---- reading rows ------------------------------------------------------------------------


def _read_file(path: Path) -> list[dict]:
    """Rows of a Parquet, JSONL or JSON (a list, or BBH's ``{"examples": [...]}``) file."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix == ".json":
        data = json.loads(text)
        if isinstance(data, dict) and isinstance(data.get("examples"), list):
            data = data["examples"]
        if not isinstance(data, list):
            raise MoemuiError(f"{path}: expected a list of rows or {{'examples': [...]}}")
        return data
    # Not moemui.io's reader: a published file may start with a byte order mark, hold NaN
    # and be empty (its subset then has no rows), and its errors have their own wording.
    rows = []
    # "\n" only: str.splitlines would also split at U+2028 or U+0085 inside a string.
    for lineno, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise MoemuiError(f"{path}, line {lineno}: invalid JSON: {exc.msg}") from None
    return rows


def _local_file(
    dataset: PublishedDataset, path: Path, subset: str, split: str, eval_split: str
) -> Path:
    if path.is_file():
        if split != eval_split:
            raise MoemuiError(
                f"{path} is a file, the {eval_split!r} split only; the {split!r} split "
                "(k-shot examples) needs a directory holding both"
            )
        return path
    if not path.is_dir():
        raise MoemuiError(f"local dataset {path} does not exist")
    patterns = [f"{subset}/{split}.{{ext}}", f"{subset}/{split}-*.{{ext}}"]
    if split == eval_split:
        patterns.append(f"{subset}.{{ext}}")
    patterns += [f"{split}.{{ext}}", f"{split}-*.{{ext}}"]
    tried = []
    for pattern in patterns:
        for ext in _EXTS:
            glob = pattern.format(ext=ext)
            tried.append(glob)
            found = sorted(path.glob(glob))
            if found:
                return found[0]
    raise MoemuiError(f"{path}: no file for subset {subset!r}, split {split!r} (tried {tried})")


def _load_rows(
    dataset: PublishedDataset, path: Path | None, subset: str, split: str, p: dict
) -> list[dict]:
    if path is None:
        try:
            import datasets
        except ImportError as exc:  # pragma: no cover - the data extra is missing
            raise MoemuiError(
                "reading a benchmark from the Hub needs the 'datasets' package "
                "(pip install 'moemui[data]'), or give a local 'path'"
            ) from exc
        try:
            data = datasets.load_dataset(dataset.hub_id, subset, split=split)
        except Exception as exc:
            raise MoemuiError(
                f"cannot load {dataset.hub_id} ({subset}, split {split!r}) from the Hub or "
                f"its cache: {type(exc).__name__}: {exc}"
            ) from None
        return [dict(row) for row in data]
    file = _local_file(dataset, path, subset, split, p["split"])
    rows = _read_file(file)
    column = dataset.subset_column
    if column and rows and column in rows[0]:
        wanted = MATH_SUBJECTS.get(subset, subset) if dataset.name == "math" else subset
        rows = [r for r in rows if r.get(column) in (wanted, subset)]
    elif dataset.subset_param and path.is_file() and len(p[dataset.subset_param]) > 1:
        raise MoemuiError(
            f"{file} holds one {dataset.subset_param[:-1]} (it has no subset column): choose "
            f"one in '{dataset.subset_param}', or give a directory with a file per subset"
        )
    return rows


# ---- samples -----------------------------------------------------------------------------


def make_published(
    name: str,
    n: int | None = None,
    seed: int | None = None,
    params: Mapping[str, Any] | None = None,
    path: str | Path | None = None,
    task_id: str | None = None,
) -> list[dict]:
    """The samples of a published dataset's task (``hf:<name>``).

    Parameters
    ----------
    name : str
        A key of :data:`PUBLISHED_DATASETS`.
    n : int, optional
        Keep ``n`` samples: the first ``n`` (``select: first``, the default) or a random
        subset drawn with ``random.Random(seed)`` kept in dataset order
        (``select: random``); all when ``None``.
    seed : int, optional
        Seed of the random subset; by default the config's (``tasks.seed``).
    params : Mapping, optional
        ``split``, ``fewshot_split``, ``k_shot`` (default 0), ``chat_template`` (default
        true), ``select``; ``subjects`` (MMLU, MATH) or ``subtasks`` (BBH): ``"all"`` or
        a list; ``levels`` (MATH: ``"all"`` or a list from 1..5); ``timeout`` (seconds per
        program, MBPP and HumanEval).
    path : str or Path, optional
        A local file or directory in the dataset's published schema (module doc).
    task_id : str, optional
        For messages.

    Returns
    -------
    list of dict
        Samples ``{id, prompt, reference, meta}``; ``meta`` holds ``kind``,
        ``benchmark``, ``subset``, ``k_shot`` and ``chat_template``, plus ``choices``
        (multiple choice) or the code tests.

    Raises
    ------
    MoemuiError
        Unknown dataset or parameter; a missing local file; a row the adapter cannot
        read (naming the subset and row); ``n`` larger than the rows available.
    """
    seed = default("tasks.seed") if seed is None else seed
    dataset = PUBLISHED_DATASETS.get(name)
    if dataset is None:
        raise MoemuiError(
            f"unknown benchmark {name!r} (known: {', '.join(sorted(PUBLISHED_DATASETS))})"
        )
    p = dataset.resolve(params)
    local = Path(path).expanduser() if path is not None else None
    subsets = p[dataset.subset_param] if dataset.subset_param else list(dataset.subsets)
    k = p["k_shot"]
    samples: list[dict] = []
    for subset in subsets:
        rows = _load_rows(dataset, local, subset, p["split"], p)
        rows = [dict(r, _index=i) for i, r in enumerate(rows)]
        if p.get("levels", "all") != "all":
            rows = [r for r in rows if _level(r) in p["levels"]]
        if not rows:
            log.warning("benchmark %s: no rows for %s", name, subset)
            continue
        shots: list[dict] = []
        if k:
            fewshot_split = p["fewshot_split"]
            if fewshot_split == p["split"]:
                shots, rows = rows[:k], rows[k:]
            else:
                shots = _load_rows(dataset, local, subset, fewshot_split, p)[:k]
            if len(shots) < k:
                raise MoemuiError(
                    f"{name}/{subset}: k_shot={k} but split {fewshot_split!r} has {len(shots)} rows"
                )
        for row in rows:
            native = row.get(dataset.id_column) if dataset.id_column else None
            native = row["_index"] if native is None else native
            parts = [name] + ([subset] if dataset.subset_param else []) + [str(native)]
            sid = "/".join(parts)
            try:
                prompt, reference, extra = dataset.format(row, subset, shots)
            except (KeyError, TypeError, ValueError, MoemuiError) as exc:
                raise MoemuiError(
                    f"{name}/{subset}: row {row['_index']} ({sid}) does not fit the "
                    f"{dataset.hub_id} schema: {type(exc).__name__}: {exc}"
                ) from None
            meta = {
                "kind": dataset.kind,
                "benchmark": name,
                "subset": subset,
                "k_shot": k,
                "chat_template": p["chat_template"],
                **extra,
            }
            if "timeout" in p:
                meta["timeout"] = float(p["timeout"])
            samples.append({"id": sid, "prompt": prompt, "reference": reference, "meta": meta})
    total = len(samples)
    if total == 0:
        raise MoemuiError(f"{name}: no rows (subsets {subsets}, split {p['split']!r})")
    if n is not None:
        if n > total:
            raise MoemuiError(f"{name}: n={n} but only {total} samples are available")
        if p["select"] == "first":
            samples = samples[:n]
        else:
            keep = sorted(random.Random(seed).sample(range(total), n))
            samples = [samples[i] for i in keep]
    log.info("benchmark %s (task %s): %d of %d samples", name, task_id, len(samples), total)
    return samples


def _level(row: dict) -> int | None:
    m = re.search(r"\d+", str(row.get("level", "")))
    return int(m.group(0)) if m else None
