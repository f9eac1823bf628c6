"""Scoring defects found on real published rows (tests/fixtures/real_rows/README.md),
each shown on its row, read through the benchmark's adapter as the workflow reads it."""

from __future__ import annotations

from pathlib import Path

import pytest

from moemui.tasks import make_task, score

REAL = Path(__file__).parent / "fixtures" / "real_rows"


def _samples(source: str, path: str, **params) -> dict[str, dict]:
    spec = {"id": "t", "source": source, "path": str(REAL / path), "params": params}
    return {s["id"]: s for s in make_task(spec)}


@pytest.fixture(scope="module")
def math():
    return _samples("hf:math", "math", subjects=["algebra", "intermediate_algebra"])


@pytest.fixture(scope="module")
def mmlu():
    return _samples("hf:mmlu", "mmlu/test.jsonl")


def _by_subject(samples: dict, subject: str) -> dict:
    (sample,) = [s for sid, s in samples.items() if f"/{subject}/" in sid]
    return sample


# ---- MATH: a list of numbers is no number ------------------------------------------------


@pytest.mark.parametrize(
    ("sid", "gold", "wrong", "right"),
    [
        # Intermediate Algebra 46: the integer roots
        (
            "math/intermediate_algebra/0",
            "-2,1",
            "The final answer is $1$.",
            "The final answer is $-2, 1$.",
        ),
        # Algebra 569: every x, least to greatest
        ("math/algebra/1", "-4, 4", "So $x = \\boxed{4}$.", "So $x = \\boxed{-4,4}$."),
    ],
)
def test_math_one_number_of_a_list_is_wrong(math, sid, gold, wrong, right):
    sample = math[sid]
    assert sample["reference"] == gold
    assert not score(sample, wrong)
    assert score(sample, right)
    # read as one number with its commas dropped, the list was -21 (-44)
    joined = gold.replace(",", "").replace(" ", "")
    assert not score(sample, f"The final answer is ${joined}$.")


def test_math_thousands_commas_still_read_as_numbers(math):
    sample = next(iter(math.values()))
    assert score({**sample, "reference": "1,000"}, "The final answer is $1000$.")


# ---- MATH: an escaped dollar inside $...$ ------------------------------------------------


def test_math_escaped_dollar_without_boxed(math):
    sample = math["math/algebra/0"]  # Algebra 21: its solution ends \boxed{\$40}
    assert sample["reference"] == "\\$40"
    assert score(sample, "The stamp will be worth 16 times as much. The final answer is $\\$40$.")
    assert not score(sample, "The final answer is $\\$41$.")


# ---- MATH: a period inside the box -------------------------------------------------------


def test_math_boxed_period_is_no_part_of_the_answer(math):
    """Intermediate Algebra 129 boxes its sentence's period:
    ``\\boxed{\\frac{7}{5} + \\frac{1}{5} i.}``."""
    sample = math["math/intermediate_algebra/1"]
    assert sample["reference"] == "\\frac{7}{5} + \\frac{1}{5} i."
    assert score(sample, "The final answer is $\\frac{7}{5} + \\frac{1}{5} i.$ I hope so.")
    assert score(sample, "So $z = \\boxed{\\frac{7}{5} + \\frac{1}{5} i}$.")
    assert not score(sample, "So $z = \\boxed{\\frac{7}{5} + \\frac{2}{5} i}$.")


# ---- MMLU: a response that is an option's text -------------------------------------------


@pytest.mark.parametrize(
    ("subject", "response", "letter"),
    [
        # the data's option text ends with a space
        ("computer_security", "Network, vulnerability, and port", "B"),
        ("elementary_mathematics", "$32.93", "C"),
        # non-breaking spaces inside the option text
        ("professional_medicine", "Chlamydia trachomatis and Neisseria gonorrhoeae", "B"),
        # option texts that start like a letter answer
        ("high_school_psychology", "B. F. Skinner", "C"),
        ("college_biology", "A DNA sequence that replicates via an RNA intermediate", "C"),
    ],
)
def test_mmlu_option_text_is_its_letter(mmlu, subject, response, letter):
    sample = _by_subject(mmlu, subject)
    assert sample["reference"] == letter
    assert score(sample, response)
    assert score(sample, f"The answer is ({letter}).")
    wrong = "ABCD"[("ABCD".index(letter) + 1) % 4]
    assert not score(sample, wrong)


def test_mmlu_a_bare_letter_stays_a_letter(mmlu):
    """college_chemistry's first option is the text "B": "B" still answers B (Al)."""
    sample = _by_subject(mmlu, "college_chemistry")
    assert sample["reference"] == "D"
    assert not score(sample, "B")
    assert score(sample, "D")
    assert score(sample, "Tl")


# ---- MBPP: the test setup runs after the code it uses -------------------------------------


def test_mbpp_367_reference_solution_passes():
    """Task 367's test_setup_code builds trees with the Node class its solution defines."""
    (sample,) = _samples("hf:mbpp", "mbpp").values()
    assert sample["id"] == "mbpp/367"
    reference = sample["reference"]
    assert "class Node" in reference and "Node(1)" in sample["meta"]["setup"]
    assert score(sample, f"```python\n{reference}\n```")
    assert not score(sample, "```python\ndef is_tree_balanced(root):\n    return True\n```")


# ---- MMLU: an option's text over several lines; options that repeat --------------------


def test_mmlu_option_text_over_several_lines(mmlu):
    """high_school_computer_science 28: each option is a three- to five-line program."""
    sample = _by_subject(mmlu, "high_school_computer_science")
    choices = sample["meta"]["choices"]
    assert sample["reference"] == "A" and all("\n" in c for c in choices)
    assert score(sample, choices[0])
    assert score(sample, choices[0].replace("\n ", "\n"))  # the model's own line breaks
    assert not score(sample, choices[2])
    # its first line alone is not the whole option
    assert not score(sample, choices[0].split("\n")[0])


@pytest.mark.parametrize(
    ("subject", "gold", "twin", "other"),
    [
        # sociology 197: C and D read the same
        ("sociology", "C", "D", "A"),
        # high_school_macroeconomics 183: A and D the same (non-breaking spaces), gold D
        ("high_school_macroeconomics", "D", "A", "C"),
    ],
)
def test_mmlu_repeated_option_is_the_gold_answer(mmlu, subject, gold, twin, other):
    sample = _by_subject(mmlu, subject)
    choices = sample["meta"]["choices"]
    assert sample["reference"] == gold
    text = choices["ABCD".index(gold)]
    assert choices["ABCD".index(twin)] == text
    for response in (gold, twin, f"The answer is ({twin}).", text, " ".join(text.split())):
        assert score(sample, response), response
    assert not score(sample, other)
    assert not score(sample, choices["ABCD".index(other)])
