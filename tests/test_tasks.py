"""Tests for moemui.tasks: built-in generators, task files, task sources, extraction and
scoring."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from moemui.errors import MoemuiError
from moemui.io import read_records
from moemui.tasks import (
    BUILTIN_TASKS,
    KINDS,
    TASK_SCHEMES,
    extract_answer,
    load_jsonl,
    make_builtin,
    make_task,
    parse_task_source,
    read_samples,
    score,
    write_samples,
)
from moemui.tasks.builtin import _eval_boolean

PRINTABLE_ASCII = re.compile(r"^[\x20-\x7e]+$")


# --------------------------------------------------------------------------------------
# Built-in generators: shared properties
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(BUILTIN_TASKS))
def test_builtin_deterministic_and_seed_sensitive(name):
    a = make_builtin(name, 50, seed=7)
    b = make_builtin(name, 50, seed=7)
    c = make_builtin(name, 50, seed=8)
    assert a == b
    assert [s["prompt"] for s in a] != [s["prompt"] for s in c]


@pytest.mark.parametrize("name", sorted(BUILTIN_TASKS))
def test_builtin_shape(name):
    samples = make_builtin(name, 120, seed=0)
    assert len(samples) == 120
    assert [s["id"] for s in samples] == [f"{name}-{i:05d}" for i in range(120)]
    assert len({s["prompt"] for s in samples}) == 120  # unique prompts
    for s in samples:
        assert set(s) == {"id", "prompt", "reference", "meta"}
        assert s["meta"]["kind"] in KINDS
        assert s["meta"]["kind"] == BUILTIN_TASKS[name].kind
        assert PRINTABLE_ASCII.match(s["prompt"])
        assert isinstance(s["reference"], str) and s["reference"]
        # The reference, given as the response, scores correct.
        assert score(s, s["reference"])
        assert score(s, " " + s["reference"] + "\nmore text")


def test_builtin_samples_are_json_serialisable(tmp_path):
    for name in BUILTIN_TASKS:
        samples = make_builtin(name, 10, seed=1)
        assert json.loads(json.dumps(samples)) == samples


def test_builtin_prefix_stable_across_n():
    # A larger n extends the list without changing its prefix.
    small = make_builtin("arithmetic", 20, seed=3)
    big = make_builtin("arithmetic", 40, seed=3)
    assert big[:20] == small


def test_unknown_builtin_lists_known_names():
    with pytest.raises(MoemuiError) as exc:
        make_builtin("algebra", 5, seed=0)
    msg = str(exc.value)
    assert "'algebra'" in msg
    for name in BUILTIN_TASKS:
        assert name in msg


@pytest.mark.parametrize(
    ("name", "params", "needle"),
    [
        ("arithmetic", {"digitz": 2}, "'digitz'"),
        ("arithmetic", {"digits": 0}, "'digits'"),
        ("arithmetic", {"digits": "2"}, "'digits'"),
        ("arithmetic", {"ops": ["*"]}, "'*'"),
        ("arithmetic", {"ops": []}, "'ops'"),
        ("multiple_choice", {"n_choices": 7}, "'n_choices'"),
        ("multiple_choice", {"question": "middle"}, "'middle'"),
        ("boolean_expressions", {"depth": -1}, "'depth'"),
        ("boolean_expressions", {"n_operands": [4, 3]}, "'n_operands'"),
        ("boolean_expressions", {"operands": 3}, "'operands'"),
    ],
)
def test_bad_params(name, params, needle):
    with pytest.raises(MoemuiError, match=re.escape(needle)):
        make_builtin(name, 5, seed=0, params=params)


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_bad_n(n):
    with pytest.raises(MoemuiError, match="n must be"):
        make_builtin("arithmetic", n, seed=0)


def test_exhausted_space_allows_duplicates():
    # 1-digit addition has 100 distinct prompts.
    samples = make_builtin("arithmetic", 150, seed=0, params={"digits": 1})
    prompts = [s["prompt"] for s in samples]
    assert len(set(prompts)) == 100
    assert len(prompts) == 150
    assert all(score(s, s["reference"]) for s in samples)


# --------------------------------------------------------------------------------------
# arithmetic
# --------------------------------------------------------------------------------------

ARITH_RE = re.compile(r"^(\d+)([+-])(\d+)=$")


@pytest.mark.parametrize(
    "params",
    [None, {"digits": 3}, {"ops": ["+", "-"]}, {"digits": 1, "ops": ["-"]}],
)
def test_arithmetic_references(params):
    samples = make_builtin("arithmetic", 200, seed=5, params=params)
    digits = (params or {}).get("digits", 2)
    ops_seen = set()
    for s in samples:
        m = ARITH_RE.match(s["prompt"])
        assert m, s["prompt"]
        a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
        expected = a + b if op == "+" else a - b
        assert s["reference"] == str(expected)
        assert expected >= 0
        assert s["meta"]["a"] == a and s["meta"]["b"] == b and s["meta"]["op"] == op
        assert a < 10**digits and b < 10**digits
        ops_seen.add(op)
    assert ops_seen == set((params or {}).get("ops", ["+"]))


def test_arithmetic_exact_prompt_format():
    s = make_builtin("arithmetic", 1, seed=0)[0]
    assert s["prompt"] == f"{s['meta']['a']}+{s['meta']['b']}="
    assert " " not in s["prompt"]


# --------------------------------------------------------------------------------------
# multiple_choice
# --------------------------------------------------------------------------------------

MC_RE = re.compile(r"^Which is (largest|smallest)\? (.*) Answer:$")


@pytest.mark.parametrize(
    "params",
    [None, {"n_choices": 2}, {"n_choices": 6, "question": "smallest"}, {"question": "mixed"}],
)
def test_multiple_choice_references(params):
    samples = make_builtin("multiple_choice", 200, seed=2, params=params)
    k = (params or {}).get("n_choices", 4)
    questions = Counter()
    for s in samples:
        m = MC_RE.match(s["prompt"])
        assert m, s["prompt"]
        question, body = m.groups()
        questions[question] += 1
        opts = re.findall(r"([A-Z])\) (\d+)", body)
        assert [letter for letter, _ in opts] == list("ABCDEF"[:k])
        values = [int(v) for _, v in opts]
        assert len(set(values)) == k
        assert all(10 <= v <= 99 for v in values)
        assert s["meta"]["choices"] == [v for _, v in opts]
        target = max(values) if question == "largest" else min(values)
        assert s["reference"] == "ABCDEF"[values.index(target)]
        assert s["meta"]["question"] == question
    if (params or {}).get("question") == "mixed":
        assert questions["largest"] > 50 and questions["smallest"] > 50


def test_multiple_choice_example_format():
    s = make_builtin("multiple_choice", 1, seed=0)[0]
    letters = "ABCD"
    body = " ".join(f"{letters[i]}) {c}" for i, c in enumerate(s["meta"]["choices"]))
    assert s["prompt"] == f"Which is largest? {body} Answer:"


def test_multiple_choice_letter_balance():
    samples = make_builtin("multiple_choice", 400, seed=0)
    counts = Counter(s["reference"] for s in samples)
    assert set(counts) == set("ABCD")
    # Expected 100 each; binomial sd ~8.7.
    assert all(60 <= c <= 140 for c in counts.values()), counts


# --------------------------------------------------------------------------------------
# boolean_expressions
# --------------------------------------------------------------------------------------

BOOL_TOKENS = {"not", "and", "or", "(", ")", "True", "False"}


@pytest.mark.parametrize(
    "params", [None, {"depth": 0}, {"depth": 3, "n_operands": [2, 6]}, {"n_operands": 1}]
)
def test_boolean_references_match_python(params):
    samples = make_builtin("boolean_expressions", 200, seed=4, params=params)
    for s in samples:
        prompt = s["prompt"]
        assert prompt.endswith(" =")
        expr = prompt[:-2]
        tokens = expr.split(" ")
        assert set(tokens) <= BOOL_TOKENS, prompt  # single spaces, known tokens only
        assert "" not in tokens
        # Test-only cross-check: the test controls this input.
        assert s["reference"] == str(eval(expr, {"__builtins__": {}}, {}))
        if params and params.get("depth") == 0:
            assert "(" not in tokens


def test_boolean_balance():
    samples = make_builtin("boolean_expressions", 400, seed=0)
    counts = Counter(s["reference"] for s in samples)
    assert 150 <= counts["True"] <= 250, counts
    assert counts["True"] + counts["False"] == 400


@pytest.mark.parametrize(
    "expr",
    [
        "True",
        "not True",
        "not ( True and False ) or False",
        "True or False and False",
        "not False and False",
        "not not True",
        "( ( False or True ) and not ( True ) )",
        "False or not True and True or False",
    ],
)
def test_eval_boolean_matches_python(expr):
    assert _eval_boolean(expr) is eval(expr, {"__builtins__": {}}, {})


@pytest.mark.parametrize("expr", ["", "True and", "( True", "True )", "maybe", "True True"])
def test_eval_boolean_rejects_garbage(expr):
    with pytest.raises(ValueError):
        _eval_boolean(expr)


# --------------------------------------------------------------------------------------
# extraction and scoring
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("68", "68"),
        (" 68 and more", "68"),
        ("68\n", "68"),
        ("068", "068"),
        ("-3", "-3"),
        ("2.5", "2.5"),
        ("68.", "68"),
        ("the answer is 68", "68"),
        ("\n\n 12\n34", "12"),
        ("no digits\n42", None),
        ("", None),
        ("   ", None),
        ("abc", None),
    ],
)
def test_extract_number(response, expected):
    assert extract_answer("number", response) == expected


CHOICES4 = ["31", "87", "45", "12"]


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("B", "B"),
        (" B", "B"),
        ("B\n", "B"),
        ("B)", "B"),
        ("B) 87", "B"),
        ("(C)", "C"),
        ("(C) because", "C"),
        ("D.", "D"),
        ("A:", "A"),
        ("A 31", "A"),
        ("A Dog", "A"),
        ("A\nthe rest", "A"),
        ("A good question", None),  # article, not an answer
        ("A dog", None),
        ("I think B", None),
        ("c", None),  # letters are uppercase only
        ("(c)", None),
        ("E", None),  # out of range for 4 choices
        ("(F)", None),
        ("AB", None),
        ("87", "B"),  # fallback: a choice's text as the first token
        ("87 is largest", "B"),
        ("12.", "D"),
        ("99", None),
        ("", None),
        ("Answer: B", None),
    ],
)
def test_extract_choice(response, expected):
    assert extract_answer("choice", response, CHOICES4) == expected


def test_extract_choice_without_choices_accepts_any_letter():
    assert extract_answer("choice", "Z)") == "Z"
    assert extract_answer("choice", "87") is None


def test_extract_choice_multiword_text():
    choices = ["Paris, France", "Rome"]
    assert extract_answer("choice", " Paris,  France\n", choices) == "A"
    assert extract_answer("choice", "Rome.", choices) == "B"


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("True", "True"),
        (" false", "False"),
        ("TRUE.", "True"),
        ("False, because", "False"),
        ("True\nFalse", "True"),
        ("yes", None),
        ("no", None),
        ("Truely", None),
        ("it is True", None),
        ("", None),
    ],
)
def test_extract_boolean(response, expected):
    assert extract_answer("boolean", response) == expected


@pytest.mark.parametrize(
    ("response", "expected"),
    [("  Hello   world \n", "Hello world"), ("a\tb\nc", "a b c"), ("", None), (" \n ", None)],
)
def test_extract_exact(response, expected):
    assert extract_answer("exact", response) == expected


def test_extract_unknown_kind():
    with pytest.raises(MoemuiError, match="'fuzzy'"):
        extract_answer("fuzzy", "x")


def _sample(kind, reference, **meta):
    return {"id": "s1", "prompt": "p", "reference": reference, "meta": {"kind": kind, **meta}}


@pytest.mark.parametrize(
    ("sample", "response", "expected"),
    [
        (_sample("number", "68"), "68", True),
        (_sample("number", "68"), "068", True),
        (_sample("number", "68"), "68.0", True),
        (_sample("number", "68.0"), " 68 apples", True),
        (_sample("number", "68"), "69", False),
        (_sample("number", "68"), "6 8", False),
        (_sample("number", "-3"), "-3", True),
        (_sample("number", "-3"), "3", False),
        (_sample("number", "0.3"), "0.30", True),
        (_sample("number", "68"), "", False),
        (_sample("choice", "B", choices=CHOICES4), "B) 87", True),
        (_sample("choice", "B", choices=CHOICES4), "87", True),
        (_sample("choice", "B", choices=CHOICES4), "C", False),
        (_sample("choice", "A", choices=CHOICES4), "A good question", False),
        (_sample("boolean", "True"), "true", True),
        (_sample("boolean", "True"), "False", False),
        (_sample("boolean", "False"), "yes", False),
        (_sample("exact", "Hello  world"), " Hello world\n", True),
        (_sample("exact", "Hello world"), "hello world", False),
    ],
)
def test_score(sample, response, expected):
    assert score(sample, response) is expected


def test_score_bad_sample():
    with pytest.raises(MoemuiError, match="'s1'"):
        score({"id": "s1", "reference": "1", "meta": {}}, "1")
    with pytest.raises(MoemuiError, match="'s1'"):
        score(_sample("number", "many"), "1")


# --------------------------------------------------------------------------------------
# JSONL loading
# --------------------------------------------------------------------------------------


def _write_lines(path, lines):
    path.write_text("\n".join(json.dumps(x) if not isinstance(x, str) else x for x in lines))
    return path


def test_load_jsonl_basic(tmp_path):
    path = _write_lines(
        tmp_path / "t.jsonl",
        [
            {"id": 1, "prompt": "2+2=", "reference": 4, "kind": "number"},
            "",
            {"id": "q2", "prompt": "Capital?", "reference": "Paris", "meta": {"src": "x"}},
            {"id": "q3", "prompt": "Pick", "reference": "Rome", "choices": ["Paris", "Rome"]},
            {"id": "q4", "prompt": "Pick", "reference": "A", "choices": ["Paris", "Rome"]},
            {"id": "q5", "prompt": "T?", "reference": "true", "kind": "boolean", "level": 3},
            "   ",
        ],
    )
    samples = load_jsonl(path)
    assert [s["id"] for s in samples] == ["1", "q2", "q3", "q4", "q5"]
    assert samples[0]["reference"] == "4"
    assert samples[0]["meta"] == {"kind": "number"}
    assert samples[1]["meta"] == {"kind": "exact", "src": "x"}
    assert samples[2]["reference"] == "B"
    assert samples[2]["meta"] == {"kind": "choice", "choices": ["Paris", "Rome"]}
    assert samples[3]["reference"] == "A"
    assert samples[4]["reference"] == "True"
    assert samples[4]["meta"] == {"kind": "boolean", "level": 3}
    assert score(samples[2], "B)")
    assert score(samples[2], "Rome")


def _good(i):
    return {"id": f"s{i}", "prompt": f"p{i}", "reference": str(i)}


def test_load_jsonl_missing_file(tmp_path):
    path = tmp_path / "nope.jsonl"
    with pytest.raises(MoemuiError, match="not found") as exc:
        load_jsonl(path)
    assert str(path) in str(exc.value)


def test_load_jsonl_bad_json_line_3(tmp_path):
    path = _write_lines(tmp_path / "t.jsonl", [_good(1), _good(2), '{"id": "x", prompt'])
    with pytest.raises(MoemuiError) as exc:
        load_jsonl(path)
    msg = str(exc.value)
    assert str(path) in msg and "line 3" in msg and "invalid JSON" in msg


def test_load_jsonl_non_utf8_line_2(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes(
        json.dumps(_good(1)).encode() + b'\n{"id": "s2", "prompt": "\xff\xfe", "reference": "1"}\n'
    )
    with pytest.raises(MoemuiError) as exc:
        load_jsonl(path)
    msg = str(exc.value)
    assert str(path) in msg and "line 2" in msg and "UTF-8" in msg


def test_load_jsonl_utf8_and_bom(tmp_path):
    path = tmp_path / "t.jsonl"
    row = {"id": "é", "prompt": "Grüße ✓", "reference": "ok"}
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(row, ensure_ascii=False).encode() + b"\r\n")
    (sample,) = load_jsonl(path)
    assert sample["id"] == "é" and sample["prompt"] == "Grüße ✓"


def test_load_jsonl_duplicate_id(tmp_path):
    path = _write_lines(tmp_path / "t.jsonl", [_good(1), _good(2), _good(1)])
    with pytest.raises(MoemuiError) as exc:
        load_jsonl(path)
    msg = str(exc.value)
    assert "duplicate id 's1'" in msg and "line 3" in msg and "line 1" in msg


def test_load_jsonl_int_and_str_id_collide(tmp_path):
    path = _write_lines(
        tmp_path / "t.jsonl",
        [{"id": 7, "prompt": "a", "reference": "1"}, {"id": "7", "prompt": "b", "reference": "2"}],
    )
    with pytest.raises(MoemuiError, match="duplicate id '7'"):
        load_jsonl(path)


def test_load_jsonl_missing_prompt(tmp_path):
    path = _write_lines(tmp_path / "t.jsonl", [_good(1), {"id": "s2", "reference": "1"}])
    with pytest.raises(MoemuiError) as exc:
        load_jsonl(path)
    msg = str(exc.value)
    assert str(path) in msg and "line 2" in msg and "'prompt'" in msg


def test_load_jsonl_empty_file(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text("\n  \n")
    with pytest.raises(MoemuiError, match="empty") as exc:
        load_jsonl(path)
    assert str(path) in str(exc.value)


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        ({"id": "a", "prompt": "", "reference": "1"}, "'prompt'"),
        ({"id": "a", "prompt": 5, "reference": "1"}, "'prompt'"),
        ({"id": True, "prompt": "p", "reference": "1"}, "'id'"),
        ({"id": "a", "prompt": "p", "reference": None}, "'reference'"),
        ({"id": "a", "prompt": "p", "reference": "1", "meta": []}, "'meta'"),
        ({"id": "a", "prompt": "p", "reference": "1", "kind": "fuzzy"}, "'kind'"),
        ({"id": "a", "prompt": "p", "reference": "x", "kind": "number"}, "not a number"),
        ({"id": "a", "prompt": "p", "reference": "yes", "kind": "boolean"}, "True/False"),
        ({"id": "a", "prompt": "p", "reference": "C", "choices": ["x", "y"]}, "'reference'"),
        ({"id": "a", "prompt": "p", "reference": "A", "choices": "xy"}, "'choices'"),
        ({"id": "a", "prompt": "p", "reference": "A", "choices": ["x", "x"]}, "duplicate"),
        ({"id": "a", "prompt": "p", "reference": "A", "kind": "choice"}, "'choices'"),
        (
            {"id": "a", "prompt": "p", "reference": "A", "choices": ["x", "y"], "kind": "exact"},
            "'choices'",
        ),
        ([1, 2], "JSON object"),
    ],
)
def test_load_jsonl_bad_rows(tmp_path, row, needle):
    path = _write_lines(tmp_path / "t.jsonl", [_good(1), row])
    with pytest.raises(MoemuiError) as exc:
        load_jsonl(path)
    msg = str(exc.value)
    assert needle in msg and "line 2" in msg and str(path) in msg


def test_load_jsonl_nan_rejected(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"id": "a", "prompt": "p", "reference": NaN}\n')
    with pytest.raises(MoemuiError, match="line 1"):
        load_jsonl(path)


def test_load_jsonl_n_and_seed(tmp_path):
    path = _write_lines(tmp_path / "t.jsonl", [_good(i) for i in range(20)])
    assert [s["id"] for s in load_jsonl(path, n=3)] == ["s0", "s1", "s2"]
    sub = load_jsonl(path, n=8, seed=1)
    ids = [s["id"] for s in sub]
    assert len(ids) == 8 and len(set(ids)) == 8
    positions = [int(i[1:]) for i in ids]
    assert positions == sorted(positions)  # file order kept
    assert positions != list(range(8))  # a real random subset, not the head
    assert load_jsonl(path, n=8, seed=1) == sub
    assert load_jsonl(path, n=8, seed=2) != sub
    assert len(load_jsonl(path, n=20, seed=1)) == 20
    assert len(load_jsonl(path)) == 20


def test_load_jsonl_n_too_large(tmp_path):
    path = _write_lines(tmp_path / "t.jsonl", [_good(i) for i in range(5)])
    for seed in (None, 0):
        with pytest.raises(MoemuiError) as exc:
            load_jsonl(path, n=6, seed=seed)
        assert str(path) in str(exc.value) and "6" in str(exc.value)


# --------------------------------------------------------------------------------------
# make_task, write/read round trip
# --------------------------------------------------------------------------------------


def test_make_task_builtin():
    spec = {"id": "arith", "source": "builtin:arithmetic", "n": 16, "seed": 3}
    spec["params"] = {"digits": 3}
    assert make_task(spec) == make_builtin("arithmetic", 16, 3, {"digits": 3})
    assert make_task({"id": "b", "source": "builtin:boolean_expressions", "n": 4}) == (
        make_builtin("boolean_expressions", 4, 0)
    )


def test_make_task_jsonl(tmp_path):
    path = _write_lines(tmp_path / "t.jsonl", [_good(i) for i in range(10)])
    spec = {"id": "mine", "source": f"jsonl:{path}", "n": 4, "seed": 0}
    assert make_task(spec) == load_jsonl(path, 4, 0)


@pytest.mark.parametrize(
    ("spec", "needles"),
    [
        ({"id": "t1", "source": "web:gsm8k", "n": 4}, ["'t1'", "'web:gsm8k'"]),
        ({"id": "t1", "source": "hf:nosuch", "n": 4}, ["'t1'", "unknown benchmark 'nosuch'"]),
        ({"id": "t6", "source": "builtin:arithmetic", "n": 2, "stop": "x"}, ["'t6'", "'stop'"]),
        ({"id": "t1", "source": "arithmetic", "n": 4}, ["'t1'", "'arithmetic'"]),
        ({"id": "t2", "source": "builtin:algebra", "n": 4}, ["'t2'", "'algebra'"]),
        ({"id": "t3", "source": "builtin:arithmetic"}, ["'t3'", "'n'"]),
        ({"id": "t4", "source": "jsonl:/no/such/file.jsonl"}, ["'t4'", "/no/such/file.jsonl"]),
        ({"id": "t5", "source": "builtin:arithmetic", "n": 2, "params": {"x": 1}}, ["'x'"]),
        ({"source": "builtin:arithmetic", "n": 2}, ["'id'"]),
    ],
)
def test_make_task_errors(spec, needles):
    with pytest.raises(MoemuiError) as exc:
        make_task(spec)
    for needle in needles:
        assert needle in str(exc.value)


def test_write_read_roundtrip(tmp_path):
    samples = [s for name in BUILTIN_TASKS for s in make_builtin(name, 5, seed=0)]
    samples.append({"id": "u1", "prompt": "Grüße ✓", "reference": "é", "meta": {"kind": "exact"}})
    path = tmp_path / "results" / "tasks" / "mixed.jsonl"
    write_samples(path, samples)
    assert read_samples(path) == samples
    text = path.read_text(encoding="utf-8")
    assert "Grüße ✓" in text  # ensure_ascii=False
    assert text.count("\n") == len(samples) and text.endswith("\n")
    assert [p.name for p in path.parent.iterdir()] == ["mixed.jsonl"]  # no temp file left
    # Stable: writing again gives the same bytes.
    before = path.read_bytes()
    write_samples(path, read_samples(path))
    assert path.read_bytes() == before
    # A materialised file is also loadable as a user task file.
    assert load_jsonl(path) == samples


def test_write_samples_rejects_bad_samples(tmp_path):
    path = tmp_path / "t.jsonl"
    good = make_builtin("arithmetic", 2, seed=0)
    with pytest.raises(MoemuiError, match="duplicate id"):
        write_samples(path, [good[0], good[0]])
    with pytest.raises(MoemuiError, match="'prompt'"):
        write_samples(path, [{"id": "a", "reference": "1", "meta": {"kind": "exact"}}])
    assert not path.exists()


def test_read_samples_errors(tmp_path):
    path = _write_lines(tmp_path / "t.jsonl", [{"id": "a", "prompt": "p", "reference": "1"}])
    with pytest.raises(MoemuiError, match="line 1.*'meta'"):
        read_samples(path)
    with pytest.raises(MoemuiError, match="not found"):
        read_samples(tmp_path / "missing.jsonl")


def test_one_reader_keeps_both_wordings(tmp_path):
    """moemui.io reads task files and records alike; each keeps the messages it had."""
    bad_utf8 = tmp_path / "u.jsonl"
    bad_utf8.write_bytes(b'{"id": "a"}\n{"id": "caf\xe9"}\n')
    with pytest.raises(MoemuiError, match=r"u.jsonl, line 2: not valid UTF-8 \(invalid"):
        read_records(bad_utf8)
    with pytest.raises(MoemuiError, match=r"u.jsonl, line 2: invalid UTF-8 \(invalid .* at byte"):
        read_samples(bad_utf8)
    bad_json = _write_lines(tmp_path / "j.jsonl", ["{oops"])
    with pytest.raises(MoemuiError, match=r"j.jsonl, line 1: invalid JSON \(Expecting"):
        read_records(bad_json)
    with pytest.raises(MoemuiError, match=r"j.jsonl, line 1: invalid JSON: Expecting .*column 2"):
        read_samples(bad_json)
    with pytest.raises(MoemuiError, match=r"missing.jsonl: file not found"):
        read_records(tmp_path / "missing.jsonl")
    with pytest.raises(MoemuiError, match=r"task file not found: .*missing.jsonl"):
        read_samples(tmp_path / "missing.jsonl")
    # a record may be any JSON value and hold NaN; a task file's lines are objects
    mixed = tmp_path / "m.jsonl"
    mixed.write_text('[1]\n\n{"x": NaN}\n')
    assert str(read_records(mixed)) == "[[1], {'x': nan}]"
    with pytest.raises(MoemuiError, match="line 1: expected a JSON object, got list"):
        read_samples(mixed)


# --------------------------------------------------------------------------------------
# Task sources
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "parsed"),
    [
        ("builtin:arithmetic", ("builtin", "arithmetic")),
        ("jsonl:data/a:b.jsonl", ("jsonl", "data/a:b.jsonl")),
        ("hf:gsm8k", ("hf", "gsm8k")),
        ("jsonl:", ("jsonl", "")),
    ],
)
def test_parse_task_source(source, parsed):
    assert parse_task_source(source, "t") == parsed
    assert parse_task_source(source).scheme in TASK_SCHEMES


@pytest.mark.parametrize("source", ["arithmetic", "file:x.jsonl", "builtin", ":x", "HF:gsm8k"])
def test_parse_task_source_refuses_unknown_schemes(source):
    with pytest.raises(MoemuiError, match=rf"task 't': unknown source '{source}' \(expected"):
        parse_task_source(source, "t")


def test_the_schema_lists_the_task_schemes():
    """The config schema's source pattern names exactly the schemes of TASK_SCHEMES."""
    from moemui.config import load_schema

    pattern = load_schema()["properties"]["tasks"]["items"]["properties"]["source"]["pattern"]
    assert pattern == f"^({'|'.join(TASK_SCHEMES)}):.+"


def test_no_module_of_the_package_imports_the_package():
    """Callers import from moemui.tasks; its modules import each other, never it."""
    import ast
    from pathlib import Path

    import moemui.tasks

    for path in Path(moemui.tasks.__file__).parent.glob("*.py"):
        if path.name == "__init__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                assert node.module != "moemui.tasks", f"{path.name} imports moemui.tasks"
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
                assert "moemui.tasks" not in names, f"{path.name} imports moemui.tasks"
