"""Published-dataset adapters (hf: tasks) end to end on tiny fixtures in each dataset's
published schema.

tests/fixtures/benchmarks/ holds a few rows per benchmark, written by this project in
the Hub datasets' own columns and layout (<config>/<split>.jsonl). Each test loads them
through a config task entry, checks the exact prompt text, the references, and scores
hand-written responses whose verdicts were checked by hand. Nothing is downloaded:
the Hub path is exercised with ``datasets.load_dataset`` replaced by a stub.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from moemui.config import validate_config
from moemui.errors import MoemuiError
from moemui.tasks import (
    BBH_SUBTASKS,
    MMLU_SUBJECTS,
    PUBLISHED_DATASETS,
    extract_answer,
    make_published,
    make_task,
    read_samples,
    score,
    write_samples,
)
from moemui.tasks.scoring import (
    extract_final_number,
    extract_final_text,
    extract_math,
    normalise_math,
    same_final_text,
    same_math,
)

FIXTURES = Path(__file__).parent / "fixtures" / "benchmarks"


def _task(source, path, tmp_path, **entry):
    """Materialise a config task entry, write and read it back as the workflow does."""
    spec = {"id": "t", "source": source, "path": str(FIXTURES / path), **entry}
    out = tmp_path / "t.jsonl"
    write_samples(out, make_task(spec))
    return read_samples(out)


def _verdicts(samples, responses):
    return [score(s, r) for s, r in zip(samples, responses, strict=True)]


def test_registry_lists_the_benchmarks():
    assert sorted(PUBLISHED_DATASETS) == [
        "arc_challenge",
        "arc_easy",
        "bbh",
        "gsm8k",
        "humaneval",
        "math",
        "mbpp",
        "mmlu",
    ]
    assert len(MMLU_SUBJECTS) == 57 and len(BBH_SUBTASKS) == 27


# ---- ARC -----------------------------------------------------------------------------------


def test_arc_challenge_zero_shot(tmp_path):
    samples = _task("hf:arc_challenge", "arc", tmp_path)
    assert [s["id"] for s in samples] == [
        "arc_challenge/Mercury_7001",
        "arc_challenge/Mercury_7002",
        "arc_challenge/NYSEDREGENTS_2015_4_8",
    ]
    assert samples[0]["prompt"] == (
        "The following are multiple choice questions (with answers) about science.\n\n"
        "Which gas do plants take in for photosynthesis?\n"
        "A. oxygen\nB. carbon dioxide\nC. nitrogen\nD. helium\nAnswer:"
    )
    # numeric labels 1..4 become letters; answerKey "2" is B
    assert [s["reference"] for s in samples] == ["B", "C", "B"]
    assert samples[2]["meta"]["choices"] == [
        "ruler",
        "balance",
        "thermometer",
        "graduated cylinder",
    ]
    meta = samples[1]["meta"]
    assert meta["kind"] == "choice" and meta["chat_template"] is True and meta["k_shot"] == 0
    responses = ["B", "The answer is (C).", "A balance"]  # a stray article "A" is no answer
    assert _verdicts(samples, responses) == [True, True, False]


def test_arc_k_shot_uses_the_train_split(tmp_path):
    samples = _task("hf:arc_challenge", "arc", tmp_path, params={"k_shot": 2})
    assert samples[0]["prompt"] == (
        "The following are multiple choice questions (with answers) about science.\n\n"
        "Which is a liquid at room temperature?\nA. iron\nB. water\nC. salt\nD. sand\n"
        "Answer: B\n\n"
        "What pulls objects toward Earth?\nA. gravity\nB. magnetism\nC. friction\nD. light\n"
        "Answer: A\n\n"
        "Which gas do plants take in for photosynthesis?\n"
        "A. oxygen\nB. carbon dioxide\nC. nitrogen\nD. helium\nAnswer:"
    )
    assert samples[0]["meta"]["k_shot"] == 2


def test_arc_easy(tmp_path):
    samples = _task("hf:arc_easy", "arc", tmp_path)
    assert [s["reference"] for s in samples] == ["B", "A"]
    assert _verdicts(samples, ["six", "A dog is not a season"]) == [True, False]


# ---- GSM8K ---------------------------------------------------------------------------------


def test_gsm8k(tmp_path):
    samples = _task("hf:gsm8k", "gsm8k", tmp_path)
    assert [s["reference"] for s in samples] == ["12", "2400", "7.5"]  # "#### 2,400"
    assert samples[0]["prompt"] == (
        'Solve the math word problem. Reason step by step, then give the final number after "####".'
        "\n\nQuestion: Tom has 3 boxes with 4 apples each. How many apples does he have?\nAnswer:"
    )
    responses = [
        "3 boxes of 4 is 12 apples.\n#### 12",
        "It sells 1,200 * 2 = 2,400 pens. The answer is $2,400.",
        "10 - 2.5 = 7.5 dollars, so 8 dollars are left",  # the final number counts: 8
    ]
    assert _verdicts(samples, responses) == [True, True, False]
    assert score(samples[2], "#### 7.50") and not score(samples[2], "#### 75")


def test_gsm8k_k_shot_and_random_subset(tmp_path):
    samples = _task(
        "hf:gsm8k", "gsm8k", tmp_path, n=2, seed=3, params={"k_shot": 1, "select": "random"}
    )
    assert len(samples) == 2
    assert all(s["prompt"].count("Question:") == 2 for s in samples)
    assert "Answer: 2 + 3 = <<2+3=5>>5\n#### 5\n\n" in samples[0]["prompt"]
    first = _task("hf:gsm8k", "gsm8k", tmp_path, n=2)
    assert [s["id"] for s in first] == ["gsm8k/0", "gsm8k/1"]
    again = _task(
        "hf:gsm8k", "gsm8k", tmp_path, n=2, seed=3, params={"k_shot": 1, "select": "random"}
    )
    assert again == samples


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("#### 12", "12"),
        ("5 + 7 = 12\n#### 12.", "12"),
        ("I think 3, then 4.\nThe answer is 7.", "7"),
        ("the answer is: -3 apples", "-3"),
        ("costs $1,234.50 in total", "1234.50"),
        ("first 3 then 12", "12"),
        ("#### 5 #### 6", "6"),
        ("no number here", None),
    ],
)
def test_final_number_extraction(response, expected):
    assert extract_final_number(response) == expected


# ---- MMLU ----------------------------------------------------------------------------------


def test_mmlu_subjects_from_one_file(tmp_path):
    samples = _task(
        "hf:mmlu", "mmlu", tmp_path, params={"subjects": ["abstract_algebra", "anatomy"]}
    )
    assert [s["id"] for s in samples] == [
        "mmlu/abstract_algebra/0",
        "mmlu/abstract_algebra/1",
        "mmlu/anatomy/0",
    ]
    assert [s["reference"] for s in samples] == ["D", "C", "B"]
    assert samples[2]["prompt"].startswith(
        "The following are multiple choice questions (with answers) about anatomy.\n\n"
    )
    assert _verdicts(samples, ["D", "(C) Q", "A humerus"]) == [True, True, False]


def test_mmlu_all_subjects_and_dev_shots(tmp_path):
    samples = _task("hf:mmlu", "mmlu", tmp_path, params={"k_shot": 1})
    assert len(samples) == 3  # every subject with rows in the file
    assert samples[2]["prompt"] == (
        "The following are multiple choice questions (with answers) about anatomy.\n\n"
        "Which organ pumps blood?\nA. lung\nB. liver\nC. heart\nD. kidney\nAnswer: C\n\n"
        "Which bone is in the upper arm?\nA. femur\nB. humerus\nC. tibia\nD. ulna\nAnswer:"
    )


# ---- BBH -----------------------------------------------------------------------------------


def test_bbh(tmp_path):
    subtasks = ["boolean_expressions", "date_understanding", "word_sorting"]
    samples = _task("hf:bbh", "bbh", tmp_path, params={"subtasks": subtasks})
    assert [s["reference"] for s in samples] == [
        "False",
        "True",
        "False",
        "(B)",
        "(A)",
        "apple fig pear",
    ]
    assert samples[0]["prompt"] == "Q: not ( True ) and ( True ) is\nA:"
    responses = [
        "False",
        "Let's think. not False is True, so the answer is True.",
        "not False",  # exact match, not substring
        "(B) 12/25/1937",
        "So the answer is B.",
        "apple fig pear.",
    ]
    assert _verdicts(samples, responses) == [True, True, False, True, False, True]


def test_bbh_k_shot_takes_examples_out_of_the_evaluated_rows(tmp_path):
    samples = _task(
        "hf:bbh", "bbh", tmp_path, params={"subtasks": ["boolean_expressions"], "k_shot": 1}
    )
    assert [s["id"] for s in samples] == ["bbh/boolean_expressions/1", "bbh/boolean_expressions/2"]
    assert samples[0]["prompt"] == (
        "Q: not ( True ) and ( True ) is\nA: False\n\nQ: True and not not ( not False ) is\nA:"
    )


def test_bbh_github_json_file(tmp_path):
    samples = _task(
        "hf:bbh", "bbh_github/web_of_lies.json", tmp_path, params={"subtasks": ["web_of_lies"]}
    )
    assert [s["reference"] for s in samples] == ["No", "No", "Yes"]
    with pytest.raises(MoemuiError, match="holds one subtask.*'subtasks'"):
        make_published("bbh", path=FIXTURES / "bbh_github/web_of_lies.json")


@pytest.mark.parametrize(
    ("answer", "reference", "same"),
    [
        ("(A)", "(A)", True),
        ("A", "(A)", True),
        ("A)", "(A)", True),
        ("(A) 05/01/2021", "(A)", True),
        ("(B)", "(A)", False),
        ("Answer A", "(A)", False),
        ("true", "True", True),
        ("not True", "True", False),
        ("True or False", "True", False),
        ("-28.0", "-28", True),
        ("] ) }", "] ) }", True),
        ("**valid**", "valid", True),
        ("invalid", "valid", False),
    ],
)
def test_bbh_answers(answer, reference, same):
    assert same_final_text(answer, reference) is same


def test_bbh_extraction():
    assert extract_final_text("Step 1.\nSo the answer is (C).\nDone") == "(C)"
    assert extract_final_text("\n  Yes.\nbecause") == "Yes"
    assert extract_final_text("   ") is None


# ---- MATH ----------------------------------------------------------------------------------


def test_math(tmp_path):
    samples = _task("hf:math", "math", tmp_path, params={"subjects": ["algebra", "number_theory"]})
    assert [s["reference"] for s in samples] == ["\\frac{3}{4}", "4", "5", "2"]
    assert samples[0]["prompt"] == (
        "Solve the problem. Put the final answer in \\boxed{}.\n\n"
        "Problem:\nWhat is $\\frac{1}{2} + \\frac{1}{4}$?\n\nSolution:"
    )
    assert samples[0]["meta"]["level"] == "Level 1"
    responses = [
        "Adding gives $\\boxed{\\dfrac{3}{4}}$.",
        "So x = 4. Final Answer: The final answer is $4$. I hope it is correct.",
        "The sum is $\\boxed{6}$.",
        "The remainder is \\boxed{2}.",
    ]
    assert _verdicts(samples, responses) == [True, True, False, True]


def test_math_levels_and_subject_filter(tmp_path):
    samples = _task("hf:math", "math", tmp_path, params={"subjects": ["algebra"], "levels": [1, 4]})
    assert [s["reference"] for s in samples] == ["\\frac{3}{4}", "5"]
    # MATH has a few "Level ?" rows: kept unless levels are chosen
    row = {"problem": "p", "level": "Level ?", "type": "Algebra", "solution": "\\boxed{1}"}
    (tmp_path / "test.jsonl").write_text(json.dumps(row) + "\n")
    assert len(make_published("math", params={"subjects": ["algebra"]}, path=tmp_path)) == 1
    with pytest.raises(MoemuiError, match="no rows"):
        make_published("math", params={"subjects": ["algebra"], "levels": [5]}, path=tmp_path)
    with pytest.raises(MoemuiError, match="'levels' must be 'all' or a list from 1..5"):
        make_published("math", params={"levels": [6]}, path=tmp_path)


@pytest.mark.parametrize(
    ("answer", "reference", "same"),
    [
        ("\\dfrac{3}{4}", "\\frac{3}{4}", True),
        ("\\frac34", "\\frac{3}{4}", True),
        ("3/4", "\\frac{3}{4}", True),
        ("0.5", "\\frac{1}{2}", True),
        ("x = 5", "5", True),
        ("90^\\circ", "90", True),
        ("10\\%", "10", True),
        ("\\$18.90", "18.90", True),
        ("1,000", "1000", True),
        ("\\left( 3, 4 \\right)", "(3,4)", True),
        ("\\sqrt2", "\\sqrt{2}", True),
        ("5 \\text{ cm}", "5", True),
        ("4", "5", False),
        ("\\frac{3}{4}", "\\frac{4}{3}", False),
        ("12", "1.2", False),
    ],
)
def test_math_equivalence(answer, reference, same):
    assert same_math(answer, reference) is same


def test_math_extraction():
    assert extract_math("so \\boxed{\\frac{1}{\\sqrt{2}}} and later \\boxed{7}") == "7"
    assert extract_math("nested \\boxed{\\{1, 2\\}}") == "\\{1, 2\\}"
    assert extract_math("\\boxed{unclosed") is None
    assert extract_math("\\boxed 5$ done") == "5"
    assert extract_math("no answer") is None
    assert normalise_math("x = \\dfrac{3}{4}") == "\\frac{3}{4}"


# ---- MBPP and HumanEval (run in the sandbox) ----------------------------------------------


def test_mbpp(tmp_path):
    samples = _task("hf:mbpp", "mbpp", tmp_path, stop=["[DONE]"])
    assert [s["id"] for s in samples] == ["mbpp/11", "mbpp/17"]
    assert samples[1]["prompt"] == (
        "You are an expert Python programmer, and here is your task: Write a function to find "
        "the perimeter of a square. Your code should pass these tests:\n\n"
        "assert square_perimeter(10)==40\nassert square_perimeter(5)==20\n"
        "assert square_perimeter(4)==16\n[BEGIN]\n"
    )
    assert samples[1]["meta"]["setup"] == "import math"
    assert samples[0]["meta"]["stop"] == ["[DONE]"]
    responses = [
        samples[0]["reference"] + "\n[DONE]\nignored text",
        "```python\ndef square_perimeter(a):\n    return a * a\n```",  # 4*4 == 16, not 10*10
    ]
    assert _verdicts(samples, responses) == [True, False]
    fixed = "```python\ndef square_perimeter(a):\n    return 4 * a\n```\nExplanation..."
    assert score(samples[1], fixed)
    assert extract_answer("code", fixed) == "def square_perimeter(a):\n    return 4 * a\n"


def test_mbpp_k_shot_uses_the_prompt_split(tmp_path):
    samples = _task("hf:mbpp", "mbpp", tmp_path, params={"k_shot": 1})
    prompt = samples[0]["prompt"]
    assert prompt.startswith("You are an expert Python programmer, and here is your task: Write")
    assert "return (res)\n[DONE]\n\nYou are an expert Python programmer" in prompt


def test_humaneval(tmp_path):
    samples = _task("hf:humaneval", "humaneval", tmp_path, params={"timeout": 3})
    assert [s["id"] for s in samples] == ["humaneval/HumanEval/0", "humaneval/HumanEval/2"]
    assert samples[1]["prompt"].startswith("\n\ndef truncate_number(number: float) -> float:")
    assert samples[0]["meta"]["entry_point"] == "has_close_elements"
    # the canonical completion passes; a chat-style full function passes
    full = (
        "Here you go:\n```python\ndef truncate_number(number: float) -> float:\n"
        "    return number - int(number)\n```"
    )
    assert _verdicts(samples, [samples[0]["reference"], full]) == [True, True]
    # a completion followed by top-level chatter is cut before it
    assert score(samples[1], "    return number % 1.0\n\nprint('demo')\nassert False\n")
    assert not score(samples[1], "    return round(number)\n")
    assert not score(samples[1], "    while True:\n        pass\n")  # timeout: fails


def test_code_runs_in_another_process(tmp_path, monkeypatch):
    """Scoring a code answer never executes it here: only through the sandbox."""
    samples = _task("hf:humaneval", "humaneval", tmp_path)
    calls = []

    import moemui.tasks.sandbox as sandbox

    real = sandbox.run_python

    def spy(program, **kwargs):
        calls.append(program)
        return real(program, **kwargs)

    monkeypatch.setattr(sandbox, "run_python", spy)
    marker = tmp_path / "ran"
    evil = f"    open({str(marker)!r}, 'w').write('x')\n    return 0.5\n"
    assert not score(samples[1], evil)  # writing outside is refused: the program fails
    assert not marker.exists() and len(calls) == 1
    assert calls[0].endswith("check(truncate_number)\n")


# ---- loading: Parquet, the Hub, errors ----------------------------------------------------


def test_parquet_export_gives_the_same_samples(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    rows = [json.loads(line) for line in (FIXTURES / "arc/ARC-Challenge/test.jsonl").open()]
    layout = tmp_path / "ai2_arc" / "ARC-Challenge"
    layout.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), layout / "test-00000-of-00001.parquet")
    from_parquet = make_published("arc_challenge", path=tmp_path / "ai2_arc")
    assert from_parquet == make_published("arc_challenge", path=FIXTURES / "arc")
    single = make_published("arc_challenge", path=layout / "test-00000-of-00001.parquet")
    assert single == from_parquet


def test_hub_loading_calls_datasets(monkeypatch):
    datasets = pytest.importorskip("datasets")
    calls = []

    def fake_load(hub_id, config, split):
        calls.append((hub_id, config, split))
        file = FIXTURES / "gsm8k" / config / f"{split}.jsonl"
        return datasets.Dataset.from_list([json.loads(line) for line in file.open()])

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    samples = make_published("gsm8k", n=2, params={"k_shot": 1})
    assert calls == [("openai/gsm8k", "main", "test"), ("openai/gsm8k", "main", "train")]
    assert samples == make_published("gsm8k", n=2, params={"k_shot": 1}, path=FIXTURES / "gsm8k")


def test_hub_failure_is_named(monkeypatch):
    datasets = pytest.importorskip("datasets")

    def offline(*args, **kwargs):
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(MoemuiError, match=r"task 'arc': .*allenai/ai2_arc.*offline"):
        make_task({"id": "arc", "source": "hf:arc_easy"})


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"shots": 1}, "unknown parameter 'shots'"),
        ({"k_shot": -1}, "'k_shot' must be a non-negative integer"),
        ({"chat_template": "yes"}, "'chat_template' must be true or false"),
        ({"select": "last"}, "'select' must be one of"),
        ({"subjects": ["astrology"]}, "unknown name 'astrology'"),
    ],
)
def test_bad_params_are_named(params, needle):
    with pytest.raises(MoemuiError, match=needle):
        make_published("mmlu", params=params, path=FIXTURES / "mmlu")


def test_load_errors_are_named(tmp_path):
    with pytest.raises(MoemuiError, match="humaneval has no examples"):
        make_published("humaneval", params={"k_shot": 1}, path=FIXTURES / "humaneval")
    with pytest.raises(MoemuiError, match="local dataset .*nowhere does not exist"):
        make_published("gsm8k", path=tmp_path / "nowhere")
    with pytest.raises(MoemuiError, match="'train' split .*needs a directory"):
        make_published("gsm8k", params={"k_shot": 1}, path=FIXTURES / "gsm8k/main/test.jsonl")
    with pytest.raises(MoemuiError, match="n=9 but only 3 samples"):
        make_published("gsm8k", n=9, path=FIXTURES / "gsm8k")
    bad = tmp_path / "main"
    bad.mkdir()
    (bad / "test.jsonl").write_text('{"question": "q", "answer": "no final number"}\n')
    with pytest.raises(MoemuiError, match=r"gsm8k/main: row 0 .*'####'"):
        make_published("gsm8k", path=tmp_path)


# ---- config --------------------------------------------------------------------------------


def _config(task):
    return {"models": [{"id": "m", "source": "builtin:olmoe_tiny"}], "tasks": [task]}


def test_config_accepts_a_benchmark_task():
    task = {
        "id": "arc",
        "source": "hf:arc_challenge",
        "path": str(FIXTURES / "arc"),
        "n": 2,
        "params": {"k_shot": 1, "chat_template": False},
        "stop": ["\n\n"],
        "max_new_tokens": 4,
    }
    assert validate_config(_config(task))["tasks"][0]["stop"] == ["\n\n"]


@pytest.mark.parametrize(
    ("task", "needles"),
    [
        ({"source": "hf:squad"}, ["config key 'tasks[0].source'", "unknown benchmark 'squad'"]),
        ({"source": "hf:bbh", "params": {"subtasks": ["x"]}}, ["'tasks[0].params'", "'x'"]),
        ({"source": "hf:gsm8k", "path": "/no/such/dir"}, ["'tasks[0].path'", "does not exist"]),
        ({"source": "builtin:arithmetic", "n": 2, "path": "x"}, ["'tasks[0].path': only hf:"]),
        ({"source": "hf:gsm8k", "stop": "####"}, ["'tasks[0].stop'"]),
    ],
)
def test_config_names_bad_benchmark_keys(task, needles):
    with pytest.raises(MoemuiError) as err:
        validate_config(_config({"id": "b", **task}))
    for needle in needles:
        assert needle in str(err.value)


# ---- generation: chat template, stop strings, scoring hook --------------------------------

CHAT = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


class _ScriptedModel:
    """Stands for a causal LM: ``generate`` appends to each prompt the response scripted
    for it (``responses``: prompt text -> response; batches may come in any order)."""

    def __init__(self, tokenizer, responses: dict[str, str]):
        import torch

        self.torch = torch
        self.tok = tokenizer
        self.responses = dict(responses)
        self.config = type("Config", (), {"max_position_embeddings": 4096})()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def parameters(self):
        yield self.weight

    def generate(self, input_ids, attention_mask, max_new_tokens, **kwargs):
        rows = []
        for row, mask in zip(input_ids.tolist(), attention_mask.tolist(), strict=True):
            text = self.tok.decode([t for t, m in zip(row, mask, strict=True) if m])
            (response,) = [r for p, r in self.responses.items() if p in text]
            ids = self.tok(response, add_special_tokens=False)["input_ids"]
            ids = (ids + [self.tok.eos_token_id] * max_new_tokens)[:max_new_tokens]
            rows.append(ids)
        return self.torch.cat([input_ids, self.torch.tensor(rows)], dim=1)


def test_render_prompt_applies_the_chat_template_when_asked():
    pytest.importorskip("transformers")
    from moemui.generate import render_prompt
    from moemui.tokenizer import build_tokenizer

    tok = build_tokenizer()
    sample = {"prompt": "Q?", "meta": {"kind": "choice", "chat_template": True}}
    assert render_prompt(tok, sample) == ("Q?", tok("Q?")["input_ids"])  # no template: plain
    tok.chat_template = CHAT
    text, ids = render_prompt(tok, sample)
    assert text == "<|user|>Q?\n<|assistant|>"
    assert tok.decode(ids) == text
    plain = {"prompt": "Q?", "meta": {"kind": "choice", "chat_template": False}}
    assert render_prompt(tok, plain)[0] == "Q?"
    builtin = {"prompt": "1+1=", "meta": {"kind": "number"}}  # built-in tasks: never
    assert render_prompt(tok, builtin)[0] == "1+1="


def test_finish_response_keeps_the_tokens_up_to_the_stop_string():
    pytest.importorskip("transformers")
    from moemui.generate import finish_response
    from moemui.tokenizer import build_tokenizer

    tok = build_tokenizer()
    ids = tok("def f():\n    return 1\n[DONE]\ntrailing", add_special_tokens=False)["input_ids"]
    done = finish_response(tok, ids, [tok.eos_token_id], ["[DONE]", "\n\n\n"])
    assert done["response"] == done["final"] == "def f():\n    return 1\n"
    kept = tok("def f():\n    return 1\n[DONE]", add_special_tokens=False)["input_ids"]
    assert done["response_ids"] == kept
    assert (done["stop_reason"], done["answer_start"]) == ("stop", 0)
    whole = finish_response(tok, ids, [tok.eos_token_id], ["nowhere"])
    assert (whole["response_ids"], whole["response"]) == (ids, tok.decode(ids))
    assert whole["stop_reason"] == "length"


def test_generation_records_the_prompt_cuts_at_stop_and_scores_code(tmp_path):
    pytest.importorskip("transformers")
    from moemui.generate import generate_responses
    from moemui.tokenizer import build_tokenizer

    tok = build_tokenizer()
    tok.chat_template = CHAT
    samples = _task("hf:mbpp", "mbpp", tmp_path, stop=["[DONE]"])
    responses = [
        samples[0]["reference"] + "\n[DONE]\nassert False\n",
        "def square_perimeter(a):\n  return 4*a\n[DONE]",
    ]
    model = _ScriptedModel(tok, {s["prompt"]: r for s, r in zip(samples, responses, strict=True)})
    max_new = max(len(tok(r)["input_ids"]) for r in responses) + 2
    records = generate_responses(model, tok, samples, batch_size=2, max_new_tokens=max_new)
    assert [r["correct"] for r in records] == [True, True]
    assert records[0]["prompt"] == f"<|user|>{samples[0]['prompt']}\n<|assistant|>"
    assert tok.decode(records[0]["prompt_ids"]) == records[0]["prompt"]
    assert records[1]["response"] == "def square_perimeter(a):\n  return 4*a\n"
    assert tok.decode(records[1]["response_ids"]).endswith("[DONE]")
    assert records[1]["n_response_tokens"] == len(records[1]["response_ids"])


def test_datasets_is_imported_only_for_the_hub():
    """Materialising from a local copy, and importing the package, do not load datasets."""
    code = (
        "import sys\n"
        "from moemui.tasks import make_task\n"
        "import moemui.config, moemui.tasks.published\n"
        f"make_task({{'id': 'g', 'source': 'hf:gsm8k', 'path': {str(FIXTURES / 'gsm8k')!r}}})\n"
        "assert 'datasets' not in sys.modules, 'datasets was imported'\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
