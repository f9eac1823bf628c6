"""Answer extraction and comparison for the benchmark scoring kinds.

:mod:`moemui.tasks` dispatches on a sample's ``meta.kind``; the kinds of the public
benchmarks live here:

``final_number`` (GSM8K)
    :func:`extract_final_number`, compared as exact fractions.
``math`` (MATH)
    :func:`extract_math` (the last ``\\boxed{...}``, else a stated final answer),
    compared after :func:`normalise_math` (Hendrycks et al.'s normalisation), or as
    numbers when both sides are numbers.
``final_text`` (BBH)
    :func:`extract_final_text`, compared by :func:`same_final_text`: exact match of the
    normalised answer, never a substring.
``code`` (MBPP, HumanEval)
    :func:`extract_code`; the program is run against the benchmark's tests by
    :func:`moemui.sandbox.run_python`, in a separate process.

Examples
--------
>>> extract_final_number("She pays 3 * $4 = $12.\\n#### 12")
'12'
>>> extract_math("so the area is \\\\boxed{\\\\frac{1}{2}}.")
'\\\\frac{1}{2}'
>>> normalise_math("\\\\dfrac12") == normalise_math("0.5")
True
>>> extract_final_text("Let's see. So the answer is (B).")
'(B)'
"""

from __future__ import annotations

import re
from fractions import Fraction

__all__ = [
    "extract_code",
    "extract_final_number",
    "extract_final_text",
    "extract_math",
    "last_boxed",
    "normalise_math",
    "parse_number",
    "same_final_text",
    "same_math",
]

_NUM_RE = re.compile(r"-?\$?(?:\d[\d,]*(?:\.\d+)?|\.\d+)")
_ANSWER_IS_RE = re.compile(r"answer is\s*:?", re.IGNORECASE)


def parse_number(text: str) -> Fraction | None:
    """A number written with optional ``$``, thousands commas, sign and decimals, exactly.

    >>> parse_number("$1,234.50")
    Fraction(2469, 2)
    >>> parse_number("12 apples") is None
    True
    >>> parse_number("0,4") is None  # a list of two numbers, not 4
    True
    """
    text = text.strip().replace("$", "")
    if "," in text and not re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", text):
        return None  # not thousands: a list ("0,4", "-5,1,4") is no number
    text = text.replace(",", "")
    if not re.fullmatch(r"-?(?:\d+(?:\.\d+)?|\.\d+)", text):
        return None
    return Fraction(text)


def _clean_number(token: str) -> str:
    return token.replace("$", "").replace(",", "")


def extract_final_number(response: str) -> str | None:
    """The final number of a worked answer (GSM8K).

    The first number after the last ``####``; else the first number after the last
    "answer is"; else the last number anywhere. ``$`` and thousands commas are dropped
    (``"$1,234"`` -> ``"1234"``); a sentence's final period is not a decimal point.
    ``None`` when there is no number.
    """
    for marker in ("####", None):
        if marker is None:
            matches = list(_ANSWER_IS_RE.finditer(response))
            if not matches:
                break
            tail = response[matches[-1].end() :]
        else:
            if marker not in response:
                continue
            tail = response.rsplit(marker, 1)[1]
        m = _NUM_RE.search(tail)
        if m:
            return _clean_number(m.group(0))
    found = _NUM_RE.findall(response)
    return _clean_number(found[-1]) if found else None


# ---- MATH --------------------------------------------------------------------------------


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``, or ``\\boxed x``),
    braces matched; ``None`` when there is none or its braces do not close."""
    idx = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if idx < 0:
        return None
    rest = text[idx:]
    if rest.startswith("\\boxed ") and not rest.startswith("\\boxed {"):
        return rest[len("\\boxed ") :].split("$")[0].strip() or None
    start = rest.find("{")
    if start < 0:
        return None
    depth = 0
    for i in range(start, len(rest)):
        if rest[i] == "{":
            depth += 1
        elif rest[i] == "}":
            depth -= 1
            if depth == 0:
                return rest[start + 1 : i]
    return None


_FINAL_RE = re.compile(r"(?:final answer is|answer is)\s*:?\s*(.+)", re.IGNORECASE)


def extract_math(response: str) -> str | None:
    """The answer of a MATH solution: the last ``\\boxed{}``; else the text after the last
    "final answer is" / "answer is": its first ``$...$``, else up to the end of the
    sentence (``"The final answer is $4$. I hope it is correct."`` gives ``"4"``).
    ``None`` otherwise."""
    boxed = last_boxed(response)
    if boxed is not None:
        return boxed
    matches = list(_FINAL_RE.finditer(response))
    if not matches:
        return None
    text = matches[-1].group(1).split("\n")[0].strip()
    math = re.match(r"\$((?:\\\$|[^$])+)\$", text)  # an escaped dollar stays inside
    text = math.group(1) if math else re.split(r"\.\s", text)[0]
    text = text.strip().rstrip(".").strip()
    return text or None


def _fix_fracs(s: str) -> str:
    parts = s.split("\\frac")
    out = parts[0]
    for part in parts[1:]:
        out += "\\frac"
        if part.startswith("{") or len(part) < 2:
            out += part
            continue
        a, b, rest = part[0], part[1], part[2:]
        if b == "{":
            out += "{" + a + "}" + b + rest
        else:
            out += "{" + a + "}{" + b + "}" + rest
    return out


def _fix_a_slash_b(s: str) -> str:
    m = re.fullmatch(r"(-?\d+)/(\d+)", s)
    return f"\\frac{{{m[1]}}}{{{m[2]}}}" if m else s


def _fix_sqrt(s: str) -> str:
    return re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", s)


def normalise_math(answer: str) -> str:
    """Hendrycks et al.'s MATH answer normalisation (``is_equiv``'s ``strip_string``).

    Drops line breaks, ``\\!``, ``\\left``/``\\right``, degrees, dollars, percent signs,
    a trailing unit in ``\\text{ ...}``, spaces, a short ``x =`` prefix and (not in the
    original) a final period, which published solutions sometimes box (Intermediate
    Algebra 129: ``\\boxed{\\frac{7}{5} + \\frac{1}{5} i.}``); writes ``\\dfrac``/``\\tfrac``
    as ``\\frac``, ``\\frac12`` as ``\\frac{1}{2}``, ``\\sqrt2`` as ``\\sqrt{2}``, ``a/b`` as
    ``\\frac{a}{b}``, ``0.5`` as ``\\frac{1}{2}`` and ``.5`` as ``0.5``.

    >>> normalise_math("x = \\\\dfrac{3}{4}")
    '\\\\frac{3}{4}'
    >>> normalise_math("10\\\\%"), normalise_math("90^\\\\circ"), normalise_math("3/4")
    ('10', '90', '\\\\frac{3}{4}')
    """
    s = answer.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\left", "").replace("\\right", "")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "")
    s = s.replace("\\$", "").replace("$", "")
    if "\\text{ " in s:
        s = s.split("\\text{ ")[0]
    s = s.replace("\\%", "").replace("%", "")
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if s.startswith("."):
        s = "0" + s
    sides = s.split("=")
    if len(sides) == 2 and len(sides[0].strip()) <= 2:
        s = sides[1]
    s = _fix_sqrt(s).replace(" ", "")
    if s.endswith(".") and not s.endswith(".."):
        s = s[:-1]  # a sentence's period, inside the answer or not: never part of it
    s = _fix_fracs(s)
    if s == "0.5":
        s = "\\frac{1}{2}"
    return _fix_a_slash_b(s)


def same_math(answer: str, reference: str) -> bool:
    """Equal after :func:`normalise_math`, or equal as numbers (``"1,000"`` == ``"1000"``)."""
    a, b = normalise_math(answer), normalise_math(reference)
    if a == b:
        return True
    x, y = parse_number(a), parse_number(b)
    return x is not None and x == y


# ---- BBH ---------------------------------------------------------------------------------

_OPTION_RE = re.compile(r"\(([A-Z])\)")


def _normalise_text(text: str) -> str:
    text = " ".join(text.split())
    text = text.strip("*").strip()
    if text.endswith(".") and not text.endswith(".."):
        text = text[:-1].rstrip()
    return text


def extract_final_text(response: str) -> str | None:
    """The final answer of a BBH response: the text after the last "the answer is" up to
    the end of its line, else the first non-empty line; whitespace collapsed, ``**``
    and one final period dropped. ``None`` when empty."""
    matches = list(_ANSWER_IS_RE.finditer(response))
    if matches:
        text = response[matches[-1].end() :].split("\n")[0]
    else:
        lines = [line for line in response.split("\n") if line.strip()]
        text = lines[0] if lines else ""
    return _normalise_text(text) or None


def same_final_text(answer: str, reference: str) -> bool:
    """Exact match of normalised BBH answers, case-insensitively; never a substring.

    An option reference ``"(B)"`` also matches ``"B"``, ``"B)"`` or ``"(B) text"``;
    numbers compare as numbers (``"-28.0"`` == ``"-28"``).

    >>> same_final_text("(B) Jane", "(B)"), same_final_text("not True", "True")
    (True, False)
    """
    answer, reference = _normalise_text(answer), _normalise_text(reference)
    if re.fullmatch(r"\([A-Z]\)", reference):
        m = _OPTION_RE.match(answer) or re.fullmatch(r"([A-Z])\)?", answer)
        return bool(m) and f"({m.group(1)})" == reference
    if answer.casefold() == reference.casefold():
        return True
    x, y = parse_number(answer), parse_number(reference)
    return x is not None and x == y


# ---- code --------------------------------------------------------------------------------

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
