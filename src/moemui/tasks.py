"""Tasks: sets of samples a model answers by greedy generation, each with an exact scorer.

A *sample* is a dict with the keys

``id``
    ``str``, unique within its task.
``prompt``
    ``str``, the exact text given to the model.
``reference``
    ``str``, the gold answer.
``meta``
    ``dict`` with at least ``{"kind": <scoring kind>}``; ``"choices"`` (list of option texts)
    for multiple choice; generator parameters useful for analysis.

Samples are materialised one JSON object per line in ``results/tasks/{task}.jsonl`` with
:func:`write_jsonl` and read back with :func:`read_jsonl`.

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

Tasks come from built-in generators (:data:`BUILTIN_TASKS`, :func:`make_builtin`), from a
user JSONL file (:func:`load_jsonl`) or from a public benchmark
(:func:`moemui.benchmarks.make_benchmark`); :func:`make_task` dispatches on a config task
entry. :func:`extract_answer` and :func:`score` implement the scoring kinds ``"number"``,
``"choice"``, ``"boolean"`` and ``"exact"``, and the benchmarks' ``"final_number"``,
``"math"``, ``"final_text"`` and ``"code"`` (:mod:`moemui.answers`; code runs in
:mod:`moemui.sandbox`); their rules are documented on :func:`extract_answer`.

All randomness goes through ``random.Random(seed)`` instances with integer-only draws
(``randrange``, ``sample``, ``shuffle``), never the global RNG, so the same arguments give
the same samples on any machine.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from moemui import answers
from moemui.errors import MoemuiError
from moemui.io import atomic_write_text, describe_surrogate, json_line

logger = logging.getLogger(__name__)

__all__ = [
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
    "BuiltinTask",
    "extract_answer",
    "load_jsonl",
    "make_builtin",
    "code_program",
    "make_task",
    "read_jsonl",
    "score",
    "score_code",
    "write_jsonl",
]

KIND_NUMBER = "number"
KIND_CHOICE = "choice"
KIND_BOOLEAN = "boolean"
KIND_EXACT = "exact"
KIND_FINAL_NUMBER = "final_number"
KIND_MATH = "math"
KIND_FINAL_TEXT = "final_text"
KIND_CODE = "code"
#: The scoring kinds, in a fixed order. The last four are the benchmarks' (GSM8K, MATH,
#: BBH, MBPP/HumanEval); see :mod:`moemui.answers` and :mod:`moemui.benchmarks`.
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

#: How many draws a generator makes for one sample before it gives up on a new prompt.
_MAX_TRIES = 1000

# --------------------------------------------------------------------------------------
# Built-in generators
# --------------------------------------------------------------------------------------

#: ``draw(rng, params, is_new) -> (prompt, reference, meta)``; ``is_new(prompt)`` tells
#: whether a prompt is not yet in the task. ``meta`` excludes ``kind`` (added by the caller).
DrawFn = Callable[[random.Random, dict[str, Any], Callable[[str], bool]], tuple[str, str, dict]]


@dataclass(frozen=True)
class BuiltinTask:
    """A built-in task generator.

    Parameters
    ----------
    name : str
        Registry name, also the prefix of the sample ids.
    kind : str
        Scoring kind of every sample.
    description : str
        One line for listings.
    defaults : Mapping[str, Any]
        Every accepted parameter with its default; other keys are rejected.
    check : Callable[[dict], dict]
        Validates the merged parameters and returns them normalised; raises
        :class:`~moemui.errors.MoemuiError` naming the key.
    draw : DrawFn
        Draws one sample, retrying (up to a limit) until ``is_new(prompt)`` holds.
    """

    name: str
    kind: str
    description: str
    defaults: Mapping[str, Any] = field(repr=False)
    check: Callable[[dict[str, Any]], dict[str, Any]] = field(repr=False)
    draw: DrawFn = field(repr=False)

    def resolve(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Merge ``params`` over the defaults and validate.

        Parameters
        ----------
        params : Mapping or None
            User parameters.

        Returns
        -------
        dict
            The full, validated parameter set.

        Raises
        ------
        MoemuiError
            When ``params`` is not a mapping, has a key this generator does not know, or a
            value is invalid.
        """
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            raise MoemuiError(
                f"builtin task {self.name!r}: params must be a mapping, got {type(params).__name__}"
            )
        for key in params:
            if key not in self.defaults:
                known = ", ".join(sorted(self.defaults))
                raise MoemuiError(
                    f"builtin task {self.name!r}: unknown parameter {key!r} (known: {known})"
                )
        merged = {**self.defaults, **params}
        return self.check(merged)


def _param_int(task: str, key: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MoemuiError(
            f"builtin task {task!r}: parameter {key!r} must be an integer, got {value!r}"
        )
    if not lo <= value <= hi:
        raise MoemuiError(
            f"builtin task {task!r}: parameter {key!r} must be in {lo}..{hi}, got {value}"
        )
    return value


# ---- arithmetic ----------------------------------------------------------------------

_ARITH_OPS = ("+", "-")


def _arith_check(p: dict[str, Any]) -> dict[str, Any]:
    digits = _param_int("arithmetic", "digits", p["digits"], 1, 18)
    ops = p["ops"]
    if isinstance(ops, str):
        ops = [ops]
    if not isinstance(ops, list | tuple) or not ops:
        raise MoemuiError(
            f"builtin task 'arithmetic': parameter 'ops' must be a non-empty list "
            f"from {list(_ARITH_OPS)}, got {ops!r}"
        )
    clean: list[str] = []
    for op in ops:
        if op not in _ARITH_OPS:
            raise MoemuiError(
                f"builtin task 'arithmetic': parameter 'ops' has unknown operator {op!r} "
                f"(known: {list(_ARITH_OPS)})"
            )
        if op not in clean:
            clean.append(op)
    return {"digits": digits, "ops": clean}


def _draw_operand(rng: random.Random, max_digits: int) -> int:
    # Length first (uniform over 1..max_digits), then the value, so short operands are
    # common enough to learn. One-digit operands include 0.
    length = rng.randrange(1, max_digits + 1)
    lo = 0 if length == 1 else 10 ** (length - 1)
    return rng.randrange(lo, 10**length)


def _arith_draw(
    rng: random.Random, p: dict[str, Any], is_new: Callable[[str], bool]
) -> tuple[str, str, dict]:
    for _ in range(_MAX_TRIES):
        a = _draw_operand(rng, p["digits"])
        b = _draw_operand(rng, p["digits"])
        op = p["ops"][rng.randrange(len(p["ops"]))]
        if op == "-" and a < b:
            a, b = b, a
        prompt = f"{a}{op}{b}="
        if is_new(prompt):
            break
    result = a + b if op == "+" else a - b
    return prompt, str(result), {"a": a, "b": b, "op": op, "digits": p["digits"]}


# ---- multiple choice -------------------------------------------------------------------

_MC_QUESTIONS = ("largest", "smallest")


def _mc_check(p: dict[str, Any]) -> dict[str, Any]:
    n_choices = _param_int("multiple_choice", "n_choices", p["n_choices"], 2, 6)
    question = p["question"]
    if question not in (*_MC_QUESTIONS, "mixed"):
        raise MoemuiError(
            f"builtin task 'multiple_choice': parameter 'question' must be one of "
            f"{[*_MC_QUESTIONS, 'mixed']}, got {question!r}"
        )
    return {"n_choices": n_choices, "question": question}


def _mc_draw(
    rng: random.Random, p: dict[str, Any], is_new: Callable[[str], bool]
) -> tuple[str, str, dict]:
    k = p["n_choices"]
    answer_index = rng.randrange(k)  # the correct position first: letters stay balanced
    for _ in range(_MAX_TRIES):
        question = p["question"]
        if question == "mixed":
            question = _MC_QUESTIONS[rng.randrange(2)]
        values = rng.sample(range(10, 100), k)
        target = max(values) if question == "largest" else min(values)
        others = [v for v in values if v != target]
        rng.shuffle(others)
        ordered = others[:answer_index] + [target] + others[answer_index:]
        options = " ".join(f"{LETTERS[i]}) {v}" for i, v in enumerate(ordered))
        prompt = f"Which is {question}? {options} Answer:"
        if is_new(prompt):
            break
    meta = {
        "choices": [str(v) for v in ordered],
        "question": question,
        "n_choices": k,
        "answer_index": answer_index,
    }
    return prompt, LETTERS[answer_index], meta


# ---- boolean expressions ----------------------------------------------------------------


def _bool_check(p: dict[str, Any]) -> dict[str, Any]:
    depth = _param_int("boolean_expressions", "depth", p["depth"], 0, 8)
    n_ops = p["n_operands"]
    if isinstance(n_ops, list | tuple):
        if len(n_ops) != 2:
            raise MoemuiError(
                "builtin task 'boolean_expressions': parameter 'n_operands' must be an "
                f"integer or a [min, max] pair, got {n_ops!r}"
            )
        lo = _param_int("boolean_expressions", "n_operands", n_ops[0], 1, 32)
        hi = _param_int("boolean_expressions", "n_operands", n_ops[1], 1, 32)
        if lo > hi:
            raise MoemuiError(
                "builtin task 'boolean_expressions': parameter 'n_operands' has "
                f"min > max: {n_ops!r}"
            )
    else:
        lo = hi = _param_int("boolean_expressions", "n_operands", n_ops, 1, 32)
    return {"depth": depth, "n_operands": [lo, hi]}


def _bool_tokens(rng: random.Random, n: int, depth: int) -> list[str]:
    """Tokens of a random expression with ``n`` literals and parentheses nested <= ``depth``."""
    if n == 1:
        lit = ["True", "False"][rng.randrange(2)]
        return ["not", lit] if rng.randrange(4) == 0 else [lit]
    left = rng.randrange(1, n)
    op = ["and", "or"][rng.randrange(2)]
    return [*_bool_term(rng, left, depth), op, *_bool_term(rng, n - left, depth)]


def _bool_term(rng: random.Random, n: int, depth: int) -> list[str]:
    """An operand of ``and``/``or``: a parenthesised sub-expression (maybe negated) or flat."""
    if n > 1 and depth > 0 and rng.randrange(2) == 0:
        inner = ["(", *_bool_tokens(rng, n, depth - 1), ")"]
        return ["not", *inner] if rng.randrange(3) == 0 else inner
    return _bool_tokens(rng, n, depth)


def _eval_boolean(expr: str) -> bool:
    """Evaluate a space-separated boolean expression with Python semantics.

    Grammar (precedence ``not`` > ``and`` > ``or``)::

        or_expr  := and_expr ("or" and_expr)*
        and_expr := not_expr ("and" not_expr)*
        not_expr := "not" not_expr | "True" | "False" | "(" or_expr ")"

    Parameters
    ----------
    expr : str
        Tokens separated by whitespace, e.g. ``"not ( True and False ) or False"``.

    Returns
    -------
    bool
        The value.

    Raises
    ------
    ValueError
        On a token or structure outside the grammar.
    """
    tokens = expr.split()
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise ValueError(f"unexpected end of expression: {expr!r}")
        tok = tokens[pos]
        pos += 1
        return tok

    def or_expr() -> bool:
        value = and_expr()
        while peek() == "or":
            take()
            rhs = and_expr()
            value = value or rhs
        return value

    def and_expr() -> bool:
        value = not_expr()
        while peek() == "and":
            take()
            rhs = not_expr()
            value = value and rhs
        return value

    def not_expr() -> bool:
        tok = take()
        if tok == "not":
            return not not_expr()
        if tok == "True":
            return True
        if tok == "False":
            return False
        if tok == "(":
            value = or_expr()
            if take() != ")":
                raise ValueError(f"expected ')' in {expr!r}")
            return value
        raise ValueError(f"unexpected token {tok!r} in {expr!r}")

    result = or_expr()
    if pos != len(tokens):
        raise ValueError(f"trailing tokens in {expr!r}")
    return result


def _bool_draw(
    rng: random.Random, p: dict[str, Any], is_new: Callable[[str], bool]
) -> tuple[str, str, dict]:
    target = rng.randrange(2) == 1  # the answer first: True/False stay balanced
    lo, hi = p["n_operands"]
    for _ in range(_MAX_TRIES):
        n = rng.randrange(lo, hi + 1)
        expr = " ".join(_bool_tokens(rng, n, p["depth"]))
        value = _eval_boolean(expr)
        prompt = f"{expr} ="
        if value == target and is_new(prompt):
            break
    meta = {"n_operands": n, "depth": p["depth"]}
    return prompt, str(value), meta


#: Registry of built-in generators by name.
BUILTIN_TASKS: dict[str, BuiltinTask] = {
    "arithmetic": BuiltinTask(
        name="arithmetic",
        kind=KIND_NUMBER,
        description='integer addition/subtraction, e.g. "23+45=" -> "68"',
        defaults={"digits": 2, "ops": ["+"]},
        check=_arith_check,
        draw=_arith_draw,
    ),
    "multiple_choice": BuiltinTask(
        name="multiple_choice",
        kind=KIND_CHOICE,
        description='"Which is largest? A) 31 B) 87 Answer:" -> "B"',
        defaults={"n_choices": 4, "question": "largest"},
        check=_mc_check,
        draw=_mc_draw,
    ),
    "boolean_expressions": BuiltinTask(
        name="boolean_expressions",
        kind=KIND_BOOLEAN,
        description='"not ( True and False ) or False =" -> "True"',
        defaults={"depth": 2, "n_operands": [3, 4]},
        check=_bool_check,
        draw=_bool_draw,
    ),
}


def _check_count(n: Any, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise MoemuiError(f"{what}: n must be a positive integer, got {n!r}")
    return n


def _check_seed(seed: Any, what: str) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise MoemuiError(f"{what}: seed must be an integer, got {seed!r}")
    return seed


def make_builtin(name: str, n: int, seed: int, params: dict | None = None) -> list[dict]:
    """Generate ``n`` deterministic samples from a built-in generator.

    Parameters
    ----------
    name : str
        A key of :data:`BUILTIN_TASKS`: ``"arithmetic"``, ``"multiple_choice"`` or
        ``"boolean_expressions"``.
    n : int
        Number of samples (positive).
    seed : int
        Seed of the ``random.Random`` instance that draws everything.
    params : dict, optional
        Generator parameters; missing keys take the generator's defaults.

        - ``arithmetic``: ``digits`` (1..18, default 2): maximum digits per operand; the
          length of each operand is drawn uniformly in ``1..digits``, then its value.
          ``ops`` (default ``["+"]``): a list from ``["+", "-"]``; subtraction swaps operands
          so the result is non-negative.
        - ``multiple_choice``: ``n_choices`` (2..6, default 4); ``question``
          (``"largest"``, ``"smallest"`` or ``"mixed"``, default ``"largest"``).
        - ``boolean_expressions``: ``depth`` (0..8, default 2): maximum nesting of
          parentheses; ``n_operands``: an integer or a ``[min, max]`` pair (default
          ``[3, 4]``) of literals per expression.

    Returns
    -------
    list of dict
        Samples with ids ``f"{name}-{i:05d}"``. The same ``(name, n, seed, params)`` gives an
        identical list on any machine. Prompts are unique within the list as long as the
        generator's space allows: each sample retries up to 1000 draws for an unseen
        prompt; after the first sample that finds none, duplicates are allowed (logged).
        ``multiple_choice`` draws the correct position and ``boolean_expressions`` the
        truth value before the rest, so letters and True/False are balanced.

    Raises
    ------
    MoemuiError
        Unknown ``name`` (the message lists the known ones), unknown parameter key, invalid
        parameter value, ``n`` not a positive integer, ``seed`` not an integer.
    """
    task = BUILTIN_TASKS.get(name)
    if task is None:
        known = ", ".join(sorted(BUILTIN_TASKS))
        raise MoemuiError(f"unknown builtin task {name!r} (known: {known})")
    n = _check_count(n, f"builtin task {name!r}")
    seed = _check_seed(seed, f"builtin task {name!r}")
    resolved = task.resolve(params)

    rng = random.Random(seed)
    seen: set[str] = set()
    dedupe = True

    def is_new(prompt: str) -> bool:
        return not dedupe or prompt not in seen

    samples: list[dict] = []
    for i in range(n):
        prompt, reference, meta = task.draw(rng, resolved, is_new)
        if dedupe and prompt in seen:
            dedupe = False
            logger.warning(
                "builtin task %r: prompt space exhausted after %d unique prompts "
                "(params %s); the remaining %d samples may repeat prompts",
                name,
                len(seen),
                resolved,
                n - i,
            )
        seen.add(prompt)
        samples.append(
            {
                "id": f"{name}-{i:05d}",
                "prompt": prompt,
                "reference": reference,
                "meta": {"kind": task.kind, **meta},
            }
        )
    logger.debug("builtin task %r: %d samples (seed %d, params %s)", name, n, seed, resolved)
    return samples


# --------------------------------------------------------------------------------------
# JSONL files
# --------------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name} is not allowed")


def _iter_json_lines(path: Path) -> list[tuple[int, dict]]:
    """Parse a JSONL file strictly into ``(line_number, object)`` pairs; blank lines skipped."""
    if not path.is_file():
        raise MoemuiError(f"task file not found: {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MoemuiError(f"cannot read task file {path}: {exc}") from exc
    if data.startswith(b"\xef\xbb\xbf"):  # UTF-8 byte order mark
        data = data[3:]
    rows: list[tuple[int, dict]] = []
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8", errors="strict")
        except UnicodeDecodeError as exc:
            raise MoemuiError(
                f"{path}, line {lineno}: invalid UTF-8 ({exc.reason} at byte {exc.start})"
            ) from exc
        if not line.strip():
            continue
        try:
            obj = json.loads(line, parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            raise MoemuiError(
                f"{path}, line {lineno}: invalid JSON: {exc.msg} (column {exc.colno})"
            ) from exc
        except ValueError as exc:
            raise MoemuiError(f"{path}, line {lineno}: invalid JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise MoemuiError(
                f"{path}, line {lineno}: expected a JSON object, got {type(obj).__name__}"
            )
        rows.append((lineno, obj))
    if not rows:
        raise MoemuiError(f"task file is empty: {path}")
    return rows


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


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _parse_number(text: str) -> Fraction | None:
    try:
        return Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        return None


def _normalise(text: str) -> str:
    return " ".join(text.split())


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
        if _parse_number(reference) is None:
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
    for lineno, obj in _iter_json_lines(path):
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
        n = _check_count(n, f"task file {path}")
        if n > total:
            raise MoemuiError(f"task file {path}: n={n} but the file has only {total} samples")
        if seed is None:
            samples = samples[:n]
        else:
            seed = _check_seed(seed, f"task file {path}")
            keep = sorted(random.Random(seed).sample(range(total), n))
            samples = [samples[i] for i in keep]
    logger.info("task file %s: %d of %d samples", path, len(samples), total)
    return samples


def make_task(spec: dict) -> list[dict]:
    """Build a task's samples from a config task entry.

    Parameters
    ----------
    spec : dict
        ``{"id": "arith", "source": "builtin:arithmetic", "n": 64, "seed": 0,
        "params": {...}}`` or ``{"id": "mine", "source": "jsonl:path/to/file.jsonl",
        "n": 64, "seed": 0}`` or ``{"id": "arc", "source": "hf:arc_challenge", "n": 100,
        "params": {...}, "path": "data/arc"}`` (:func:`moemui.benchmarks.make_benchmark`:
        ``n`` optional, ``path`` an optional local copy). For ``builtin:`` sources ``n``
        is required and ``seed`` defaults to 0. For ``jsonl:`` sources ``n`` and ``seed``
        are optional (see :func:`load_jsonl`), ``params`` is not allowed, and a relative
        path is relative to the current directory. ``stop`` (a list of strings, any
        source) is copied into every sample's ``meta.stop``: the generation step ends a
        response at the first of them. Other keys are ignored.

    Returns
    -------
    list of dict
        The samples.

    Raises
    ------
    MoemuiError
        A malformed entry, an unknown source scheme (naming the task id and the source), or
        any error of :func:`make_builtin` / :func:`load_jsonl`, prefixed with the task id.
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
    scheme, sep, rest = source.partition(":")
    try:
        if sep and scheme == "builtin":
            if "n" not in spec:
                raise MoemuiError("key 'n' is required for a builtin source")
            return make_builtin(rest, spec["n"], spec.get("seed", 0), spec.get("params"))
        if sep and scheme == "jsonl":
            if not rest:
                raise MoemuiError(f"source {source!r} has no path")
            if spec.get("params"):
                raise MoemuiError(f"key 'params' is not allowed for source {source!r}")
            return load_jsonl(rest, spec.get("n"), spec.get("seed"))
        if sep and scheme == "hf":
            from moemui.benchmarks import make_benchmark

            return make_benchmark(
                rest,
                spec.get("n"),
                spec.get("seed", 0),
                spec.get("params"),
                spec.get("path"),
                task_id,
            )
    except MoemuiError as exc:
        raise MoemuiError(f"task {task_id!r}: {exc}") from exc
    raise MoemuiError(
        f"task {task_id!r}: unknown source {source!r} "
        "(expected 'builtin:<name>', 'jsonl:<path>' or 'hf:<benchmark>')"
    )


def _check_sample(sample: Any, where: str) -> None:
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


def write_jsonl(samples: list[dict], path: str | os.PathLike) -> None:
    """Write samples atomically, one JSON object per line.

    The text goes to a temporary file in the target's directory (created if missing), is
    flushed and fsynced, and replaces ``path`` with :func:`os.replace`; readers never see a
    partial file. UTF-8, ``ensure_ascii=False`` but lone surrogates escaped
    (:func:`moemui.io.json_line`), keys sorted (stable output), ``\\n`` line ends.

    Parameters
    ----------
    samples : list of dict
        Samples with ``id``, ``prompt``, ``reference`` (strings) and ``meta`` (with a valid
        ``kind``); ids must be unique.
    path : str or os.PathLike
        Destination.

    Raises
    ------
    MoemuiError
        A malformed sample (naming its index) or a duplicate id.
    """
    path = Path(path)
    seen: set[str] = set()
    for i, sample in enumerate(samples):
        _check_sample(sample, f"{path}: sample {i}")
        if sample["id"] in seen:
            raise MoemuiError(f"{path}: sample {i}: duplicate id {sample['id']!r}")
        seen.add(sample["id"])
    atomic_write_text(path, "".join(json_line(s) for s in samples))
    logger.debug("wrote %d samples to %s", len(samples), path)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a materialised task file written by :func:`write_jsonl`.

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
    for lineno, obj in _iter_json_lines(path):
        _check_sample(obj, f"{path}, line {lineno}")
        if obj["id"] in seen:
            raise MoemuiError(
                f"{path}, line {lineno}: duplicate id {obj['id']!r} "
                f"(first on line {seen[obj['id']]})"
            )
        seen[obj["id"]] = lineno
        samples.append(obj)
    return samples


# --------------------------------------------------------------------------------------
# Answer extraction and scoring
# --------------------------------------------------------------------------------------

_NUMBER_RE = re.compile(r"-?(?:\d+(?:\.\d+)?|\.\d+)")
# "(B)" anywhere-followed, or "B" followed by end of line, ")", ".", ":" or whitespace.
_PAREN_LETTER_RE = re.compile(r"\(([A-Z])\)")
_LETTER_RE = re.compile(r"([A-Z])(?=$|[).:]|\s)")
_ARTICLE_RE = re.compile(r"[A-Z]\s+[a-z]")
# "the answer is (B)" / "The answer is: B." anywhere in the response, not "answer is A dog".
_ANSWER_IS_LETTER_RE = re.compile(r"answer is\s*:?\s*\(?([A-Z])\b\)?(?!\s+[a-z])", re.I)
_TRAILING_PUNCT = ".,;:!?"
# a letter answer and nothing else: "B", "(B)", "B.", "B)", "B:"
_BARE_LETTER_RE = re.compile(r"\(?[A-Z]\)?[.):]?")


def _first_line(response: str) -> str:
    stripped = response.strip()
    return stripped.split("\n", 1)[0].strip() if stripped else ""


def _extract_choice(
    line: str, choices: list[str] | None, response: str | None = None
) -> str | None:
    valid = LETTERS[: len(choices)] if choices is not None else LETTERS
    texts = [_normalise(c) for c in choices] if choices else []
    # a whole line that is an option's text (spaces normalised, the data's trailing or
    # non-breaking ones too) is that option, even when it starts like a letter answer
    # ("B. F. Skinner", "A DNA sequence ..."); a bare letter stays a letter. So is the
    # whole response when the option's text runs over several lines. Options of the
    # same text are one answer (the first of them; see _same_option).
    whole = _normalise(line)
    for text in (whole, _normalise(response or "")):
        if text and not _BARE_LETTER_RE.fullmatch(text) and text in texts:
            return LETTERS[texts.index(text)]
    letter: str | None = None
    m = _PAREN_LETTER_RE.match(line)
    if m:
        letter = m.group(1)
    else:
        m = _LETTER_RE.match(line)
        if m and not _ARTICLE_RE.match(line):
            letter = m.group(1)
    if letter is not None and letter in valid:
        return letter
    found = [
        m.group(1)
        for m in _ANSWER_IS_LETTER_RE.finditer(response or "")
        if m.group(1).isupper() and m.group(1) in valid
    ]
    if found:
        return found[-1]
    if not choices:
        return None
    token = line.split(maxsplit=1)[0] if line else ""
    for candidate in (whole, token, token.rstrip(_TRAILING_PUNCT)):
        if candidate and candidate in texts:
            return LETTERS[texts.index(candidate)]
    return None


def _same_option(answer: str, reference: str, choices: list[str] | None) -> bool:
    """Whether the letter ``answer`` picks the gold option ``reference``: the same letter,
    or another option whose text is the gold one's (spaces normalised). Published data
    repeats an option now and then (MMLU sociology 197: C and D read the same), and a
    response cannot tell such options apart; their content is the gold answer."""
    if answer == reference:
        return True
    if not choices:
        return False
    index = {letter: i for i, letter in enumerate(LETTERS[: len(choices)])}
    if answer not in index or reference not in index:
        return False
    return _normalise(choices[index[answer]]) == _normalise(choices[index[reference]])


def extract_answer(kind: str, response: str, choices: list[str] | None = None) -> str | None:
    """The answer a response gives, or ``None`` when it gives none.

    All kinds except ``"exact"`` look only at the *first line* of the stripped response.

    ``"number"``
        The first number anywhere in the first line: an optional ``-``, digits, an optional
        decimal part (``"68"``, ``"-3"``, ``"068"``, ``"2.5"``, ``".5"``). Returned as
        written (``"068"``); :func:`score` compares numerically. ``"the answer is 68"``
        gives ``"68"``; ``"68."`` gives ``"68"``; no digits gives ``None``.
    ``"choice"``
        With ``choices``, first: a first line (whitespace-normalised, as the choice texts
        are) equal to a choice's text gives its letter, unless the line is a bare letter
        (``"B"``, ``"(B)"``, ``"B."``): ``"B. F. Skinner"`` is that option; so does the
        whole response, normalised, for a text over several lines. Of choices with the
        same text, the first one's letter (:func:`score` counts them as one). Then an
        option letter, *uppercase only*, at the start of the first line: ``"(B)"``
        followed by anything, or ``"B"`` followed by the end of the line, ``")"``, ``"."``,
        ``":"`` or whitespace — except that a letter, whitespace and a lowercase letter is an
        article, not an answer (``"A dog"``, ``"I think"``). The letter must be within
        range (``A``.. for ``len(choices)``; any ``A``-``Z`` when ``choices`` is ``None``).
        Lowercase ``"c"`` is not a letter answer. Failing that, with ``choices``: the first
        line (whitespace-normalised), or its first whitespace token, or that token without
        trailing ``.,;:!?``, equal to a choice text gives that choice's letter
        (``"87"`` -> letter of ``"87"``). Failing that, anywhere in the response, the
        uppercase letter after the last "answer is" (``"... so the answer is (B)."``;
        not ``"the answer is A dog"``). Otherwise ``None``.
    ``"boolean"``
        The first whitespace token of the first line, without trailing punctuation,
        case-insensitively ``"true"`` or ``"false"``; returned as ``"True"``/``"False"``.
        ``"yes"``/``"no"`` are not answers.
    ``"exact"``
        The whole response with leading/trailing whitespace stripped and internal whitespace
        runs collapsed to one space; ``None`` when that is empty.
    ``"final_number"``, ``"math"``, ``"final_text"``, ``"code"``
        The whole response, by :func:`~moemui.answers.extract_final_number`,
        :func:`~moemui.answers.extract_math`, :func:`~moemui.answers.extract_final_text`
        and :func:`~moemui.answers.extract_code`.

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`.
    response : str
        The decoded text generated after the prompt.
    choices : list of str, optional
        Option texts, for ``"choice"``.

    Returns
    -------
    str or None
        The extracted answer.

    Raises
    ------
    MoemuiError
        An unknown ``kind``.
    """
    if kind not in KINDS:
        raise MoemuiError(f"unknown scoring kind {kind!r} (known: {list(KINDS)})")
    if kind == KIND_EXACT:
        return _normalise(response) or None
    whole = {
        KIND_FINAL_NUMBER: answers.extract_final_number,
        KIND_MATH: answers.extract_math,
        KIND_FINAL_TEXT: answers.extract_final_text,
        KIND_CODE: answers.extract_code,
    }
    if kind in whole:
        return whole[kind](response)
    line = _first_line(response)
    if kind == KIND_NUMBER:
        m = _NUMBER_RE.search(line)
        return m.group(0) if m else None
    if kind == KIND_CHOICE:
        return _extract_choice(line, choices, response)
    # boolean
    if not line:
        return None
    word = line.split(maxsplit=1)[0].rstrip(string.punctuation).lower()
    if word == "true":
        return "True"
    if word == "false":
        return "False"
    return None


def score(sample: dict, response: str) -> bool:
    """Whether a response answers a sample correctly.

    The answer is :func:`extract_answer` under ``sample["meta"]["kind"]`` (with
    ``meta["choices"]``); no answer scores ``False``. ``"number"`` compares exactly as
    fractions (``68 == 68.0 == 068``; no float rounding); ``"choice"`` compares letters
    (two choices with the same text are the same answer);
    ``"boolean"`` compares case-insensitively; ``"exact"`` compares whitespace-normalised
    text, case-sensitively; ``"final_number"`` compares exact fractions;
    ``"math"`` uses :func:`~moemui.answers.same_math`; ``"final_text"``
    :func:`~moemui.answers.same_final_text`; ``"code"`` runs the program against
    ``meta.tests`` in a separate sandboxed process (:func:`score_code`).

    Parameters
    ----------
    sample : dict
        A sample (``reference``, ``meta.kind``, ``meta.choices`` for choice).
    response : str
        The decoded text generated after the prompt.

    Returns
    -------
    bool
        ``True`` when correct.

    Raises
    ------
    MoemuiError
        A sample without ``reference`` or ``meta.kind``, an unknown kind, or a ``"number"``
        reference that is not a number; the message names the sample id.
    """
    sid = sample.get("id", "?") if isinstance(sample, dict) else "?"
    try:
        kind = sample["meta"]["kind"]
        reference = sample["reference"]
    except (KeyError, TypeError) as exc:
        raise MoemuiError(f"sample {sid!r}: missing reference or meta.kind") from exc
    if kind not in KINDS:
        raise MoemuiError(f"sample {sid!r}: unknown scoring kind {kind!r}")
    answer = extract_answer(kind, response, sample["meta"].get("choices"))
    if answer is None:
        return False
    reference = str(reference)
    if kind == KIND_NUMBER:
        ref = _parse_number(reference)
        if ref is None:
            raise MoemuiError(f"sample {sid!r}: reference {reference!r} is not a number")
        got = _parse_number(answer)
        return got is not None and got == ref
    if kind == KIND_CHOICE:
        return _same_option(answer, reference.strip(), sample["meta"].get("choices"))
    if kind == KIND_BOOLEAN:
        return answer.lower() == reference.strip().lower()
    if kind == KIND_FINAL_NUMBER:
        ref = answers.parse_number(reference)
        if ref is None:
            raise MoemuiError(f"sample {sid!r}: reference {reference!r} is not a number")
        return answers.parse_number(answer) == ref
    if kind == KIND_MATH:
        return answers.same_math(answer, reference)
    if kind == KIND_FINAL_TEXT:
        return answers.same_final_text(answer, reference)
    if kind == KIND_CODE:
        return score_code(sample, answer)
    return answer == _normalise(reference)


def code_program(sample: dict, code: str) -> str:
    """The program that tests ``code`` (the extracted code of a response) on a code sample.

    ``meta.style`` ``"program"`` (MBPP): ``meta.imports``, the code, ``meta.setup`` (which
    may use what the code defines), then ``meta.tests``.
    ``"completion"`` (HumanEval): :func:`~moemui.answers.humaneval_program` of
    ``meta.code_prompt`` and the code, then ``meta.tests`` and ``check(<entry_point>)``.
    """
    meta = sample["meta"]
    sid = sample.get("id", "?")
    try:
        style, tests = meta["style"], meta["tests"]
        if style == "completion":
            body = answers.humaneval_program(meta["code_prompt"], code, meta["entry_point"])
            return f"{body}\n\n{tests}\n\ncheck({meta['entry_point']})\n"
        if style == "program":
            return f"{meta.get('imports', '')}\n{code}\n\n{meta.get('setup', '')}\n\n{tests}\n"
    except KeyError as exc:
        raise MoemuiError(f"sample {sid!r}: code sample without meta.{exc.args[0]}") from None
    raise MoemuiError(f"sample {sid!r}: unknown code style {style!r}")


def score_code(sample: dict, code: str) -> bool:
    """pass@1 of one response: whether :func:`code_program` exits cleanly in the sandbox
    (:func:`moemui.sandbox.run_python`, ``meta.timeout`` seconds, default 10). The
    calling process never executes the code."""
    from moemui.sandbox import run_python

    result = run_python(code_program(sample, code), timeout=sample["meta"].get("timeout", 10.0))
    if not result.passed:
        logger.debug("sample %r: %s: %s", sample.get("id"), result.status, result.stderr[-500:])
    return result.passed
