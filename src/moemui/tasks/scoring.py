"""Answer extraction and scoring: what answer a response gives, and whether it is right.

A sample's ``meta.kind`` (:data:`~moemui.tasks.samples.KINDS`) chooses the rule;
:func:`extract_answer` and :func:`score` dispatch on it. The built-in and user kinds:

``number``, ``choice``, ``boolean``, ``exact``
    The first line of the response (``exact``: all of it); rules on
    :func:`extract_answer`.

The published datasets' kinds (:mod:`moemui.tasks.published`):

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
    :func:`extract_code`; the program (:func:`code_program`) is run against the
    dataset's tests by :func:`moemui.tasks.sandbox.run_python`, in a separate process
    (:func:`score_code`).
"""

from __future__ import annotations

import logging
import re
import string
from fractions import Fraction

from moemui.errors import MoemuiError
from moemui.tasks.code import code_program, extract_code, humaneval_program, score_code
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
)

logger = logging.getLogger(__name__)

__all__ = [
    "code_program",
    "extract_answer",
    "extract_code",
    "extract_final_number",
    "extract_final_text",
    "extract_math",
    "humaneval_program",
    "last_boxed",
    "normalise_math",
    "parse_fraction",
    "parse_number",
    "same_final_text",
    "same_math",
    "score",
    "score_code",
]

# ---- numbers, text and options, shared by the kinds ---------------------------------------
#
# Two number parsers and two text normalisations stay apart because they differ on some
# inputs: parse_fraction reads anything fractions.Fraction reads ("1/2", "1e3", "+5":
# user references of the number kind), parse_number only decimals, with "$" and
# thousands commas ("$1,234": GSM8K, MATH); _collapse_space only collapses whitespace
# (exact and choice texts, where "*" and a final "." are content), _normalise_final_text
# also drops "**" and one final period (BBH answers).


def parse_fraction(text: str) -> Fraction | None:
    """``text`` (stripped) as :class:`fractions.Fraction` reads it, exactly; ``None`` when
    it is no number. The ``number`` kind's rule (:func:`score`; user references).

    >>> parse_fraction(" 068 "), parse_fraction("1/2"), parse_fraction("1,000")
    (Fraction(68, 1), Fraction(1, 2), None)
    """
    try:
        return Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        return None


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


def _collapse_space(text: str) -> str:
    """Whitespace runs as one space, none at the ends."""
    return " ".join(text.split())


def _normalise_final_text(text: str) -> str:
    """:func:`_collapse_space`, then ``*`` and one final period (not ``..``) dropped."""
    text = _collapse_space(text).strip("*").strip()
    if text.endswith(".") and not text.endswith(".."):
        text = text[:-1].rstrip()
    return text


#: An option letter in parentheses: "(B)".
_OPTION_RE = re.compile(r"\(([A-Z])\)")


# ---- number, choice, boolean, exact ------------------------------------------------------

_NUMBER_RE = re.compile(r"-?(?:\d+(?:\.\d+)?|\.\d+)")
# "(B)" anywhere-followed (_OPTION_RE), or "B" followed by end of line, ")", ".", ":" or
# whitespace.
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
    texts = [_collapse_space(c) for c in choices] if choices else []
    # a whole line that is an option's text (spaces normalised, the data's trailing or
    # non-breaking ones too) is that option, even when it starts like a letter answer
    # ("B. F. Skinner", "A DNA sequence ..."); a bare letter stays a letter. So is the
    # whole response when the option's text runs over several lines. Options of the
    # same text are one answer (the first of them; see _same_option).
    whole = _collapse_space(line)
    for text in (whole, _collapse_space(response or "")):
        if text and not _BARE_LETTER_RE.fullmatch(text) and text in texts:
            return LETTERS[texts.index(text)]
    letter: str | None = None
    m = _OPTION_RE.match(line)
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
    return _collapse_space(choices[index[answer]]) == _collapse_space(choices[index[reference]])


# ---- final_number (GSM8K) ----------------------------------------------------------------

_NUM_RE = re.compile(r"-?\$?(?:\d[\d,]*(?:\.\d+)?|\.\d+)")
_ANSWER_IS_RE = re.compile(r"answer is\s*:?", re.IGNORECASE)


def _clean_number(token: str) -> str:
    return token.replace("$", "").replace(",", "")


def extract_final_number(response: str) -> str | None:
    """The final number of a worked answer (GSM8K).

    The first number after the last ``####``; else the first number after the last
    "answer is"; else the last number anywhere. ``$`` and thousands commas are dropped
    (``"$1,234"`` -> ``"1234"``); a sentence's final period is not a decimal point.
    ``None`` when there is no number.

    >>> extract_final_number("She pays 3 * $4 = $12.\\n#### 12")
    '12'
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


# ---- math (MATH) -------------------------------------------------------------------------


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


# ---- final_text (BBH) --------------------------------------------------------------------


def extract_final_text(response: str) -> str | None:
    """The final answer of a BBH response: the text after the last "the answer is" up to
    the end of its line, else the first non-empty line; whitespace collapsed, ``**``
    and one final period dropped. ``None`` when empty.

    >>> extract_final_text("Let's see. So the answer is (B).")
    '(B)'
    """
    matches = list(_ANSWER_IS_RE.finditer(response))
    if matches:
        text = response[matches[-1].end() :].split("\n")[0]
    else:
        lines = [line for line in response.split("\n") if line.strip()]
        text = lines[0] if lines else ""
    return _normalise_final_text(text) or None


def same_final_text(answer: str, reference: str) -> bool:
    """Exact match of normalised BBH answers, case-insensitively; never a substring.

    An option reference ``"(B)"`` also matches ``"B"``, ``"B)"`` or ``"(B) text"``;
    numbers compare as numbers (``"-28.0"`` == ``"-28"``).

    >>> same_final_text("(B) Jane", "(B)"), same_final_text("not True", "True")
    (True, False)
    """
    answer, reference = _normalise_final_text(answer), _normalise_final_text(reference)
    if re.fullmatch(r"\([A-Z]\)", reference):
        m = _OPTION_RE.match(answer) or re.fullmatch(r"([A-Z])\)?", answer)
        return bool(m) and f"({m.group(1)})" == reference
    if answer.casefold() == reference.casefold():
        return True
    x, y = parse_number(answer), parse_number(reference)
    return x is not None and x == y


# ---- dispatch ---------------------------------------------------------------------------


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
        ``"yes"``/``"no"`` are not
    ``"exact"``
        The whole response with leading/trailing whitespace stripped and internal whitespace
        runs collapsed to one space; ``None`` when that is empty.
    ``"final_number"``, ``"math"``, ``"final_text"``, ``"code"``
        The whole response, by :func:`extract_final_number`,
        :func:`extract_math`, :func:`extract_final_text`
        and :func:`extract_code`.

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
        return _collapse_space(response) or None
    whole = {
        KIND_FINAL_NUMBER: extract_final_number,
        KIND_MATH: extract_math,
        KIND_FINAL_TEXT: extract_final_text,
        KIND_CODE: extract_code,
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
    ``"math"`` uses :func:`same_math`; ``"final_text"``
    :func:`same_final_text`; ``"code"`` runs the program against
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
        ref = parse_fraction(reference)
        if ref is None:
            raise MoemuiError(f"sample {sid!r}: reference {reference!r} is not a number")
        got = parse_fraction(answer)
        return got is not None and got == ref
    if kind == KIND_CHOICE:
        return _same_option(answer, reference.strip(), sample["meta"].get("choices"))
    if kind == KIND_BOOLEAN:
        return answer.lower() == reference.strip().lower()
    if kind == KIND_FINAL_NUMBER:
        ref = parse_number(reference)
        if ref is None:
            raise MoemuiError(f"sample {sid!r}: reference {reference!r} is not a number")
        return parse_number(answer) == ref
    if kind == KIND_MATH:
        return same_math(answer, reference)
    if kind == KIND_FINAL_TEXT:
        return same_final_text(answer, reference)
    if kind == KIND_CODE:
        return score_code(sample, answer)
    return answer == _collapse_space(reference)
