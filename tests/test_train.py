"""Training tiny MoE models: determinism, learning, checkpoints that load like Hub ones."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from moemui.errors import MoemuiError
from moemui.generate import generate_responses
from moemui.recipes import TRAINED_RECIPES
from moemui.sources import parse_trained
from moemui.tasks import make_builtin
from moemui.train import checkpoint_dir, train

TINY = replace(
    TRAINED_RECIPES["olmoe_smoke"],
    arch={**TRAINED_RECIPES["olmoe_smoke"].arch, "hidden_size": 48},
    steps=80,
    save_steps=(1, 80),
    batch_size=32,
    lr=3e-3,
    warmup=10,
    mix=(("boolean_expressions", {"depth": 1, "n_operands": 2}, 1),),
)


def _accuracy(path, samples):
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    records = generate_responses(model, tokenizer, samples, batch_size=50, max_new_tokens=7)
    return sum(r["correct"] for r in records) / len(records)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("train") / "run"
    return train("tiny", out, TINY)


def test_training_improves_loss_and_accuracy(trained):
    log = (trained / "training_log.csv").read_text().splitlines()
    assert log[0] == "step,task,loss,aux_loss"
    losses = [float(line.split(",")[2]) for line in log[1:]]
    assert len(losses) == 80
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10
    held_out = make_builtin(
        "boolean_expressions", 100, seed=999, params={"depth": 1, "n_operands": 2}
    )
    first = _accuracy(checkpoint_dir(trained, 1), held_out)
    last = _accuracy(checkpoint_dir(trained, 80), held_out)
    assert first < 0.2 < 0.5 < last  # from gibberish to answers above chance (50%)


def test_training_is_deterministic(tmp_path):
    torch.set_num_threads(1)
    recipe = replace(TINY, steps=4, save_steps=(4,))
    a = train("a", tmp_path / "a", recipe)
    b = train("b", tmp_path / "b", recipe)
    wa = (checkpoint_dir(a, 4) / "model.safetensors").read_bytes()
    wb = (checkpoint_dir(b, 4) / "model.safetensors").read_bytes()
    assert wa == wb
    assert (a / "training_log.csv").read_text() == (b / "training_log.csv").read_text()


def test_checkpoints_are_written_at_the_saved_steps(trained):
    assert sorted(p.name for p in trained.glob("step-*")) == ["step-00001", "step-00080"]
    assert not list(trained.parent.glob(".run.*"))  # the temporary directory is gone


def test_trained_source_references():
    assert parse_trained("olmoe_v2") == ("olmoe_v2", TRAINED_RECIPES["olmoe_v2"].steps)
    assert parse_trained("olmoe_v2@150") == ("olmoe_v2", 150)
    with pytest.raises(MoemuiError, match="saves no checkpoint at step '151'"):
        parse_trained("olmoe_v2@151")
    with pytest.raises(MoemuiError, match="unknown trained recipe 'gpt5'"):
        parse_trained("gpt5")


def test_training_logs_rate_and_eta(tmp_path, caplog):
    torch.set_num_threads(1)
    recipe = replace(TINY, steps=3, save_steps=(3,))
    with caplog.at_level("INFO", logger="moemui.train"):
        train("eta", tmp_path / "eta", recipe)
    lines = [r.getMessage() for r in caplog.records if "3/3 step" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in caplog.records]
    # the last step: all done, a rate, nothing left to wait for, the batch's task and loss
    assert lines[0].startswith("train eta: 3/3 step (100%), ")
    assert " step/s, ETA 0.0 s; boolean_expressions loss " in lines[0]
    assert "\r" not in lines[0]
