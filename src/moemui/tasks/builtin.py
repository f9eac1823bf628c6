"""Built-in task generators: arithmetic, multiple choice and boolean expressions.

:func:`make_builtin` draws ``n`` samples (:mod:`moemui.tasks.samples`) from a generator of
:data:`BUILTIN_TASKS` (a ``builtin:<name>`` task source). All randomness goes through
``random.Random(seed)`` instances with integer-only draws (``randrange``, ``sample``,
``shuffle``), never the global RNG, so the same arguments give the same samples on any
machine.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from moemui.errors import MoemuiError
from moemui.tasks.samples import (
    KIND_BOOLEAN,
    KIND_CHOICE,
    KIND_NUMBER,
    LETTERS,
    check_count,
    check_seed,
)

logger = logging.getLogger(__name__)

__all__ = ["BUILTIN_TASKS", "BuiltinTask", "make_builtin"]

#: How many draws a generator makes for one sample before it gives up on a new prompt.
_MAX_TRIES = 1000

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
    n = check_count(n, f"builtin task {name!r}")
    seed = check_seed(seed, f"builtin task {name!r}")
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
