"""Every file the tool writes reads back, whatever Unicode its strings hold.

Table-driven over the characters that broke or could break a writer/reader pair:
line separators ``str.splitlines`` splits at (U+2028, U+2029, U+0085, ``\\x0b``,
``\\x0c``, ``\\x1c``, a lone ``\\r``), NUL, and a lone surrogate (``"\\ud800"`` in the
source JSON: a ``str`` with no UTF-8 form).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from moemui.cli import main
from moemui.errors import MoemuiError
from moemui.io import json_line, read_records, write_records
from moemui.steps.tables import write_csv
from moemui.tasks import load_jsonl, make_task, read_samples, write_samples

CHARS = {
    "u2028": "\u2028",
    "u2029": "\u2029",
    "u0085": "\x85",
    "nul": "\x00",
    "vt": "\x0b",
    "ff": "\x0c",
    "fs": "\x1c",
    "cr": "\r",
    "surrogate": "\ud800",
}
#: Characters a sample id may not hold (:func:`moemui.tasks.samples.id_problem`).
NOT_IN_IDS = {"nul", "surrogate"}
PARAMS = [pytest.param(c, id=name) for name, c in CHARS.items()]


def _fffd(text: str) -> str:
    """``text`` as the tokenizer gets it: lone surrogates as U+FFFD."""
    return text.replace("\ud800", "\ufffd")


def _valid_utf8_lines(path: Path, n: int) -> None:
    data = path.read_bytes()
    data.decode("utf-8")  # strict: no surrogate was written raw
    assert data.count(b"\n") == n


@pytest.mark.parametrize("c", PARAMS)
def test_records_round_trip(tmp_path, c):
    records = [
        {"id": f"a{c}", "text": f"{c}x{c}y{c}", "nested": {f"k{c}": [c, f"{c}{c}"]}},
        {"id": "b", "text": c},
    ]
    path = tmp_path / "r.jsonl"
    write_records(path, records)
    _valid_utf8_lines(path, 2)
    assert read_records(path) == records


def test_a_surrogate_is_written_as_its_json_escape():
    assert json_line({"t": "a\ud800\u2028"}) == '{"t": "a\\ud800\u2028"}\n'


def _sample(i: int, c: str, name: str) -> dict:
    """A user task row with ``c`` everywhere the format allows it."""
    sid = f"s{i}-{name}" if name in NOT_IN_IDS else f"s{i}{c}{name}"
    if i % 2:
        return {"id": sid, "prompt": f"Q{c}: 1+{i}=", "reference": f"{i + 1}{c}"}
    return {
        "id": sid,
        "prompt": f"Pick{c} one:",
        "choices": [f"x{c}", f"y{c}{c}", c],
        "reference": f"y{c}{c}",
        "meta": {"note": c},
    }


@pytest.mark.parametrize("c", PARAMS)
def test_task_file_round_trip(tmp_path, c):
    name = next(k for k, v in CHARS.items() if v == c)
    rows = [_sample(i, c, name) for i in range(2)]
    source = tmp_path / "src.jsonl"
    source.write_text("".join(json_line(r) for r in rows), encoding="utf-8")
    stop = [f"#{c}"] if name != "surrogate" else ["#"]
    samples = make_task({"id": "t", "source": f"jsonl:{source}", "stop": stop})
    assert [s["prompt"] for s in samples] == [r["prompt"] for r in rows]
    assert samples[0]["meta"]["choices"] == rows[0]["choices"]
    out = tmp_path / "t.jsonl"
    write_samples(out, samples)
    _valid_utf8_lines(out, 2)
    assert read_samples(out) == samples
    assert load_jsonl(out) == samples  # a materialised file loads as a user file too


@pytest.mark.parametrize("name", sorted(NOT_IN_IDS))
def test_an_id_the_store_cannot_hold_is_refused_naming_file_and_line(tmp_path, capsys, name):
    source = tmp_path / "src.jsonl"
    good = {"id": "a", "prompt": "p", "reference": "r"}
    source.write_text(
        json_line(good) + json_line({**good, "id": f"b{CHARS[name]}"}), encoding="utf-8"
    )
    out = tmp_path / "t.jsonl"
    spec = json.dumps({"id": "t", "source": f"jsonl:{source}"})
    assert main(["make-task", "--spec", spec, "--out", str(out)]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"{source}, line 2" in error and "key 'id'" in error
    assert ("lone surrogate" if name == "surrogate" else "NUL") in error
    assert not out.exists()


def test_a_stop_string_with_a_lone_surrogate_is_refused(tmp_path):
    with pytest.raises(MoemuiError, match="task 't': 'stop' string 1 holds a lone surrogate"):
        make_task({"id": "t", "source": "builtin:arithmetic", "n": 1, "stop": ["a", "\ud800"]})
    sample = make_task({"id": "t", "source": "builtin:arithmetic", "n": 1})[0]
    sample["meta"]["stop"] = ["\ud800"]
    with pytest.raises(MoemuiError, match="meta.stop string 0 holds a lone surrogate"):
        write_samples(tmp_path / "t.jsonl", [sample])


def test_a_code_test_program_with_a_lone_surrogate_is_refused(tmp_path):
    meta = {"kind": "code", "style": "program", "tests": "assert f() == '\ud800'"}
    sample = {"id": "c", "prompt": "p", "reference": "", "meta": meta}
    with pytest.raises(MoemuiError, match="meta.tests holds a lone surrogate"):
        write_samples(tmp_path / "t.jsonl", [sample])
    meta["tests"] = "assert f() == '\\ud800'"  # the escape, as Python source holds it
    write_samples(tmp_path / "t.jsonl", [sample])
    assert read_samples(tmp_path / "t.jsonl") == [sample]


@pytest.mark.parametrize("c", [p for p in PARAMS if p.id != "surrogate"])
def test_csv_tables_round_trip(tmp_path, c):
    table = pd.DataFrame(
        {"model": [f"m{c}", c, "plain"], "n": [1, 2, 3], "accuracy": [0.5, float("nan"), 1.0]}
    )
    path = tmp_path / "t.csv"
    write_csv(table, path)
    back = pd.read_csv(path)
    assert list(back["model"]) == list(table["model"])
    assert list(back["n"]) == [1, 2, 3]
    assert back["accuracy"].isna().tolist() == [False, True, False]


def test_a_csv_cell_with_a_lone_surrogate_fails_naming_the_file(tmp_path):
    path = tmp_path / "t.csv"
    with pytest.raises(MoemuiError, match=rf"{path}, line 2: cannot write the lone surrogate"):
        write_csv(pd.DataFrame({"model": pd.Series(["a\ud800"], dtype=object)}), path)
    assert not path.exists()


def test_run_config_yaml_round_trips(tmp_path):
    from moemui.config import write_run_config

    config = {"tasks": [{"id": "t", "stop": list(CHARS.values()), "note": "".join(CHARS.values())}]}
    path = tmp_path / "run_config.yaml"
    write_run_config(config, path)
    path.read_bytes().decode("utf-8")
    assert yaml.safe_load(path.read_text(encoding="utf-8")) == config


def test_local_benchmark_jsonl_keeps_line_separators(tmp_path):
    from moemui.tasks.published import _read_file

    rows = [{"q": f"a{c}b", "n": i} for i, c in enumerate(CHARS.values())]
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json_line(r) for r in rows), encoding="utf-8")
    assert _read_file(path) == rows


# ---- the steps, each reading back the previous one's file ----------------------------------


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> list[str]:
    """The model arguments of a built tiny model on the CPU."""
    from moemui.recipes import build_model

    out = build_model("olmoe_tiny", 0, tmp_path_factory.mktemp("unicode") / "model")
    return ["--model-id", "olmoe-tiny", "--source", str(out), "--device", "cpu"]


def _all_chars_task(tmp_path: Path) -> tuple[Path, list[dict]]:
    """A user task file with a sample per character (written raw where UTF-8 can hold
    it), and its rows."""
    rows = [_sample(i, c, name) for i, (name, c) in enumerate(CHARS.items())]
    source = tmp_path / "src.jsonl"
    source.write_text("".join(json_line(r) for r in rows), encoding="utf-8")
    return source, rows


def test_steps_read_back_every_character(tmp_path, caplog, model):
    caplog.set_level(logging.WARNING)
    source, rows = _all_chars_task(tmp_path)
    task = tmp_path / "tasks" / "u.jsonl"
    stop = [f"#{c}" for name, c in CHARS.items() if name != "surrogate"]
    spec = json.dumps({"id": "u", "source": f"jsonl:{source}", "stop": stop})
    assert main(["make-task", "--spec", spec, "--out", str(task)]) == 0
    samples = read_samples(task)
    ids = [r["id"] for r in rows]
    assert [s["id"] for s in samples] == ids
    assert [s["prompt"] for s in samples] == [r["prompt"] for r in rows]

    responses = tmp_path / "responses" / "olmoe-tiny" / "u.jsonl"
    argv = ["generate", *model, "--tasks", str(task), "--out", str(responses)]
    assert main([*argv, "--max-new-tokens", "3", "--batch-size", "4"]) == 0
    records = read_records(responses)
    assert [r["id"] for r in records] == ids
    assert [r["prompt"] for r in records] == [_fffd(r["prompt"]) for r in rows]
    assert "1 lone surrogate(s) in the prompt replaced by U+FFFD" in caplog.text

    group = tmp_path / "store.zarr" / "olmoe-tiny" / "u"
    argv = ["capture", *model, "--task-id", "u", "--tasks", str(task)]
    assert main([*argv, "--responses", str(responses), "--out", str(group)]) == 0
    import zarr

    assert [str(s) for s in zarr.open_group(group, mode="r")["sample"][...]] == ids

    keys = tmp_path / "keys" / "u.npz"
    argv = ["keys", "--group", str(group), "--thresholds", "0.01", "--out", str(keys)]
    assert main(argv) == 0
    with np.load(keys, allow_pickle=False) as z:
        assert [str(s) for s in z["samples"]] == ids
    mui = tmp_path / "mui.csv"
    assert main(["mui", "--group", str(keys), "--thresholds", "0.01", "--out", str(mui)]) == 0
    assert pd.read_csv(mui)["n_samples"].tolist() == [len(rows)] * 2  # gate, glu

    table = tmp_path / "performance.csv"
    assert main(["performance", str(responses), "--out", str(table)]) == 0
    perf = pd.read_csv(table)
    assert perf[["model", "task", "n_samples"]].values.tolist() == [["olmoe-tiny", "u", len(rows)]]


def test_imported_responses_read_back_every_character(tmp_path, caplog, model):
    caplog.set_level(logging.WARNING)
    source, rows = _all_chars_task(tmp_path)
    task = tmp_path / "u.jsonl"
    spec = json.dumps({"id": "u", "source": f"jsonl:{source}"})
    assert main(["make-task", "--spec", spec, "--out", str(task)]) == 0
    texts = [f"ans{c}wer {c}" for c in CHARS.values()]
    jsonl = tmp_path / "vllm.jsonl"
    jsonl.write_text(
        "".join(
            json_line(
                {"id": r["id"], "response": t, "finish_reason": "stop", "stop_reason": f"{c}END"}
            )
            for r, t, c in zip(rows, texts, CHARS.values(), strict=True)
        ),
        encoding="utf-8",
    )
    lm_eval = tmp_path / "lm-eval.jsonl"
    lm_eval.write_text(
        "".join(json_line({"doc_id": i, "resps": [[t]]}) for i, t in enumerate(texts)),
        encoding="utf-8",
    )
    for spec in (f"jsonl:{jsonl}", f"lm-eval:{lm_eval}"):
        out = tmp_path / "responses" / spec.partition(":")[0] / "u.jsonl"
        argv = ["generate", *model, "--tasks", str(task), "--out", str(out)]
        assert main([*argv, "--import", spec]) == 0
        records = read_records(out)
        assert [r["id"] for r in records] == [r["id"] for r in rows]
        assert [r["response"] for r in records] == [_fffd(t) for t in texts]
        if spec.startswith("jsonl"):  # cut off at the stop string vLLM names
            assert {r["stop_reason"] for r in records} == {"stop"}
        n = 3 if spec.startswith("jsonl") else 2
        assert f"{spec}: {n} lone surrogate(s) in the responses replaced by U+FFFD" in caplog.text
