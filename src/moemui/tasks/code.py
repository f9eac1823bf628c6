"""The code kind (MBPP, HumanEval): the code of a response, the program that tests it,
and its pass@1 in the sandbox (:mod:`moemui.tasks.sandbox`, a separate process)."""

from __future__ import annotations

import logging
import re

import moemui.tasks.sandbox as sandbox
from moemui.errors import MoemuiError

logger = logging.getLogger(__name__)

_FENCE_RE = re.compile(r"```[ \t]*(?:[Pp]ython3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.S)


def extract_code(response: str) -> str | None:
    """The code of a response: the first fenced block (```python ... ```, closed or not),
    else the text before ``[DONE]`` (MBPP's end marker). ``None`` when blank."""
    m = _FENCE_RE.search(response)
    code = m.group(1) if m else response.split("[DONE]")[0]
    return code if code.strip() else None


#: Top-level lines that end a HumanEval completion (the usual stop sequences).
_COMPLETION_END_RE = re.compile(r"\n(?=(?:def |class |if __name__|print\(|assert |#))")


def humaneval_program(prompt: str, code: str, entry_point: str) -> str:
    """The program a HumanEval response stands for.

    A response that defines ``entry_point`` itself (typical of chat models answering
    with a fenced function) runs after the prompt's lines before its first ``def``
    (imports and helpers); otherwise it is the function's body: the prompt, then the
    completion cut at the first top-level ``def``/``class``/``if __name__``/
    ``print(``/``assert``/``#`` line.
    """
    if re.search(rf"^(?:async )?def {re.escape(entry_point)}\s*\(", code, re.M):
        header = prompt.split(f"def {entry_point}", 1)[0]
        return header + "\n" + code
    return prompt + _COMPLETION_END_RE.split(code, maxsplit=1)[0]


def code_program(sample: dict, code: str) -> str:
    """The program that tests ``code`` (the extracted code of a response) on a code sample.

    ``meta.style`` ``"program"`` (MBPP): ``meta.imports``, the code, ``meta.setup`` (which
    may use what the code defines), then ``meta.tests``.
    ``"completion"`` (HumanEval): :func:`humaneval_program` of
    ``meta.code_prompt`` and the code, then ``meta.tests`` and ``check(<entry_point>)``.
    """
    meta = sample["meta"]
    sid = sample.get("id", "?")
    try:
        style, tests = meta["style"], meta["tests"]
        if style == "completion":
            body = humaneval_program(meta["code_prompt"], code, meta["entry_point"])
            return f"{body}\n\n{tests}\n\ncheck({meta['entry_point']})\n"
        if style == "program":
            return f"{meta.get('imports', '')}\n{code}\n\n{meta.get('setup', '')}\n\n{tests}\n"
    except KeyError as exc:
        raise MoemuiError(f"sample {sid!r}: code sample without meta.{exc.args[0]}") from None
    raise MoemuiError(f"sample {sid!r}: unknown code style {style!r}")


def score_code(sample: dict, code: str) -> bool:
    """pass@1 of one response: whether :func:`code_program` exits cleanly in the sandbox
    (:func:`moemui.tasks.sandbox.run_python`, ``meta.timeout`` seconds, default 10). The
    calling process never executes the code."""
    result = sandbox.run_python(
        code_program(sample, code), timeout=sample["meta"].get("timeout", 10.0)
    )
    if not result.passed:
        logger.debug("sample %r: %s: %s", sample.get("id"), result.status, result.stderr[-500:])
    return result.passed
