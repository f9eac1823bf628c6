"""Bad data, each handled as documented (docs/store.md, "Reliability").

- a task file with an empty prompt, non-UTF-8 bytes or duplicate ids: make-task fails,
  naming the file and line;
- a prompt longer than the model's context: truncated from the left, with a warning in
  the log, and the number of dropped tokens recorded in the responses and the store;
- a response of zero tokens: scored with no position, so it has no key neuron;
- a non-finite score: the capture stops, naming model, task, sample and layer.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from moemui.cli import main
from moemui.io import read_records, write_records
from moemui.metrics import mui_table
from moemui.recipes import build_model
from moemui.steps.capture import capture_task
from moemui.steps.responses import generate_task
from moemui.steps.tasks import materialise_task
from moemui.store import open_group


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_model("olmoe_tiny", 0, tmp_path_factory.mktemp("bad-data") / "model")


def _line(obj) -> bytes:
    return (json.dumps(obj) + "\n").encode()


GOOD = {"id": "a", "prompt": "1+1=", "reference": "2"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            _line(GOOD) + _line({"id": "b", "prompt": "", "reference": "2"}),
            "line 2 (id 'b'): key 'prompt' must be a non-empty string",
        ),
        (
            _line(GOOD) + b'{"id": "b", "prompt": "caf\xe9", "reference": "x"}\n',
            "line 2: invalid UTF-8",
        ),
        (_line(GOOD) + _line(GOOD), "line 2: duplicate id 'a'"),
    ],
    ids=["empty-prompt", "non-utf8", "duplicate-id"],
)
def test_bad_task_files_fail_naming_file_and_line(tmp_path, capsys, content, message):
    path = tmp_path / "task.jsonl"
    path.write_bytes(content)
    spec = json.dumps({"id": "t", "source": f"jsonl:{path}"})
    assert main(["make-task", "--spec", spec, "--out", str(tmp_path / "out.jsonl")]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("ERROR: ") and str(path) in error and message in error
    assert not (tmp_path / "out.jsonl").exists()


def test_long_prompt_is_truncated_from_the_left_logged_and_recorded(model_dir, tmp_path, caplog):
    limit = json.loads((model_dir / "config.json").read_text())["max_position_embeddings"]
    long_prompt = "1+" * limit + "1="  # 2 * limit + 2 byte tokens
    task = tmp_path / "task.jsonl"
    task.write_text(
        json.dumps({"id": "long", "prompt": long_prompt, "reference": "x"})
        + "\n"
        + json.dumps({"id": "short", "prompt": "1+1=", "reference": "2"})
        + "\n"
    )
    tasks = tmp_path / "tasks.jsonl"
    materialise_task({"id": "t", "source": f"jsonl:{task}"}, tasks)
    responses = tmp_path / "responses.jsonl"
    with caplog.at_level(logging.WARNING):
        generate_task("m", str(model_dir), tasks, responses, device="cpu", max_new_tokens=5)
    records = {r["id"]: r for r in read_records(responses)}
    n_ids = len(long_prompt)  # the byte-level tokenizer: one token per character
    dropped = n_ids + 5 - limit
    assert records["long"]["n_prompt_truncated"] == dropped
    assert len(records["long"]["prompt_ids"]) == limit - 5
    assert records["short"]["n_prompt_truncated"] == 0
    assert any(
        "sample 'long': prompt truncated from the left by" in r.getMessage()
        and r.levelno == logging.WARNING
        for r in caplog.records
    )
    capture_task(
        "m", str(model_dir), "t", tasks, responses, tmp_path / "s.zarr" / "m" / "t", device="cpu"
    )
    ds = open_group(tmp_path / "s.zarr", "m", "t")
    assert ds["n_prompt_truncated"].values.tolist() == [dropped, 0]


def test_zero_token_response_has_no_key_neuron(model_dir, tmp_path):
    tasks = tmp_path / "tasks.jsonl"
    materialise_task({"id": "t", "source": "builtin:arithmetic", "n": 3}, tasks)
    responses = tmp_path / "responses.jsonl"
    generate_task("m", str(model_dir), tasks, responses, device="cpu", max_new_tokens=4)
    records = read_records(responses)
    records[1]["response_ids"] = []
    records[1]["n_response_tokens"] = 0
    write_records(responses, records)
    capture_task(
        "m", str(model_dir), "t", tasks, responses, tmp_path / "s.zarr" / "m" / "t", device="cpu"
    )
    ds = open_group(tmp_path / "s.zarr", "m", "t")
    assert ds["n_tokens"].values.tolist()[1] == 0
    for v in ("gate", "glu"):  # nothing positive: 0 in a full store, not kept (NaN) here
        assert not (np.nan_to_num(ds[f"score_{v}"].values[1]) > 0).any()
    per_sample = mui_table(ds.isel(sample=[1]), [0.001], "m", "t")
    assert per_sample["mui"].tolist() == [0.0, 0.0]


def test_non_finite_expert_output_stops_naming_model_task_sample_layer(model_dir, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    broken.mkdir()
    for item in model_dir.iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    weights_file = next(broken.glob("*.safetensors"))
    weights = load_file(weights_file)
    # every expert of decoder layer 1 writes inf (the file may hold fused or per-expert
    # tensors, depending on how transformers saves the family)
    names = [k for k in weights if ".layers.1.mlp.experts." in k and "down_proj" in k]
    assert names
    for name in names:
        weights[name] = torch.full_like(weights[name], float("inf"))
    save_file(weights, weights_file, metadata={"format": "pt"})
    tasks = tmp_path / "tasks.jsonl"
    materialise_task({"id": "arith", "source": "builtin:arithmetic", "n": 2}, tasks)
    responses = tmp_path / "responses.jsonl"
    generate_task("m", str(model_dir), tasks, responses, device="cpu", max_new_tokens=3)
    from moemui.errors import MoemuiError

    with pytest.raises(MoemuiError) as err:
        capture_task(
            "broken-model",
            str(broken),
            "arith",
            tasks,
            responses,
            tmp_path / "s.zarr" / "broken-model" / "arith",
            device="cpu",
        )
    message = str(err.value)
    assert "broken-model" in message and "non-finite" in message
    assert "sample 'arithmetic-00000'" in message and "layer 1" in message
    assert "task 'arith'" in message
    assert not (tmp_path / "s.zarr" / "broken-model" / "arith").exists()
    # neither the partial group nor the lock is left (both live outside the store)
    assert not list((tmp_path / ".s.zarr.partial" / "broken-model").iterdir())
