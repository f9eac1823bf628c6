"""Generation that ends where the model ends: end tokens, stop strings in the loop,
reasoning (think tags, GPT-OSS's harmony channels), chat-template variables and responses
imported from elsewhere. Token ids are asserted, not only text."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_families import FAMILIES, tiny_model
from transformers import GenerationConfig

from moemui.errors import MoemuiError
from moemui.generate import (
    answer_start,
    end_token_ids,
    finish_response,
    generate_responses,
    render_prompt,
    scored_record,
)
from moemui.recipes import init_model, recipe_config
from moemui.tokenizer import build_tokenizer

# Qwen3-style: a turn ends with <|im_end|>; enable_thinking=false pre-fills an empty think
QWEN3_TEMPLATE = (
    "{%- for m in messages %}"
    "{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{ '<think>\\n\\n</think>\\n\\n' }}{%- endif %}{%- endif %}"
)
# harmony-style (GPT-OSS): a system message with the reasoning effort, channels per message
HARMONY_TEMPLATE = (
    "{{ '<|start|>system<|message|>Reasoning: ' + (reasoning_effort or 'medium') + '<|end|>' }}"
    "{%- for m in messages %}"
    "{{ '<|start|>' + m['role'] + '<|message|>' + m['content'] + '<|end|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|start|>assistant' }}{%- endif %}"
)
HARMONY_SPECIALS = ["<|start|>", "<|channel|>", "<|message|>", "<|end|>", "<|return|>"]


def qwen3_tokenizer():
    tok = build_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.add_tokens(["<think>", "</think>"])  # Qwen3's think tags are not special tokens
    tok.chat_template = QWEN3_TEMPLATE
    return tok


def harmony_tokenizer():
    tok = build_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": HARMONY_SPECIALS})
    tok.chat_template = HARMONY_TEMPLATE
    return tok


def ids_of(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def printable_model(tok, allowed_extra=(), seed: int = 0):
    """A tiny OLMoE for ``tok`` that only ever writes printable ASCII (and the tokens in
    ``allowed_extra``): the other rows of its output matrix are zero, so their logits are
    0 while the largest of ~95 random logits is positive. Its texts re-tokenise to the
    same ids."""
    model = init_model(recipe_config("olmoe_tiny"), seed)
    model.resize_token_embeddings(len(tok))
    allowed = torch.zeros(len(tok), dtype=torch.bool)
    allowed[[3 + b for b in range(32, 127)]] = True
    allowed[list(allowed_extra)] = True
    with torch.no_grad():
        model.lm_head.weight[~allowed] = 0.0
    model.generation_config = GenerationConfig(
        eos_token_id=[], pad_token_id=tok.pad_token_id, do_sample=False
    )
    model.config.max_position_embeddings = 512
    return model.eval()


def samples_of(prompts, stop=None, kind="number", chat=False):
    out = []
    for i, prompt in enumerate(prompts):
        meta = {"kind": kind, "chat_template": chat}
        if stop:
            meta["stop"] = stop
        out.append({"id": f"s{i}", "prompt": prompt, "reference": "42", "meta": meta})
    return out


PROMPTS = ["12+7=", "Say something long about 3 and 4: ", "x"]


@pytest.fixture(scope="module")
def qwen3():
    torch.set_num_threads(1)
    tok = qwen3_tokenizer()
    return printable_model(tok), tok


def _reference_rows(model, tok, samples, budget):
    """Rows generated with no end token and no stop string: to the budget."""
    model.generation_config.eos_token_id = []
    saved, tok.eos_token = tok.eos_token, None
    try:
        records = generate_responses(model, tok, samples, 4, budget)
    finally:
        tok.eos_token = saved
    assert all(r["stop_reason"] == "length" for r in records)
    assert all(len(r["response_ids"]) == budget for r in records)
    return [r["response_ids"] for r in records]


def test_end_token_ids_are_the_models_list_then_the_tokenizers():
    tok = qwen3_tokenizer()
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    model = type("M", (), {"generation_config": GenerationConfig(eos_token_id=[im_end, 7])})()
    assert end_token_ids(model, tok) == [im_end, 7, tok.eos_token_id]
    model.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id)
    assert end_token_ids(model, tok) == [tok.eos_token_id]


def test_generation_stops_at_the_second_declared_end_token_per_sequence(qwen3):
    model, tok = qwen3
    samples = samples_of(PROMPTS)
    ref = _reference_rows(model, tok, samples, 12)
    k = next(i for i in range(2, 12) if ref[0][i] not in ref[0][:i])
    second = ref[0][k]
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.eos_token_id = [im_end, second]  # neither is the tokenizer's eos
    try:
        records = generate_responses(model, tok, samples, 4, 12)
    finally:
        model.generation_config.eos_token_id = []
    assert records[0]["response_ids"] == ref[0][: k + 1]
    assert records[0]["stop_reason"] == "end"
    for row, record in zip(ref, records, strict=True):  # each sequence stops on its own
        expected = row[: row.index(second) + 1] if second in row else row
        assert record["response_ids"] == expected
        assert record["stop_reason"] == ("end" if second in row else "length")
        assert record["n_response_tokens"] == len(expected)


def _count_forwards(model):
    calls = []
    handle = model.register_forward_hook(lambda *_: calls.append(1))
    return calls, handle


def test_a_stop_string_ends_generation_at_the_token_that_completes_it(qwen3):
    model, tok = qwen3
    budget = 16
    (row,) = _reference_rows(model, tok, samples_of(PROMPTS[:1]), budget)
    stop = tok.decode(row[4:6])
    cut = next(j for j in range(1, budget + 1) if stop in tok.decode(row[:j]))
    calls, handle = _count_forwards(model)
    try:
        (record,) = generate_responses(model, tok, samples_of(PROMPTS[:1], [stop]), 4, budget)
    finally:
        handle.remove()
    assert record["response_ids"] == row[:cut]
    assert record["stop_reason"] == "stop"
    text = tok.decode(row[:cut])
    assert record["response"] == record["final"] == text[: text.index(stop)]
    # in the loop: one forward per generated token (and one for the prompt, which is run
    # on its own where sequences can join a running batch), none after the stop string
    assert cut <= len(calls) <= cut + 1 < budget


def test_stop_strings_keep_the_other_sequences_of_a_batch_going(qwen3):
    model, tok = qwen3
    budget = 10
    ref = _reference_rows(model, tok, samples_of(PROMPTS[:2]), budget)
    stop = tok.decode(ref[0][2:4])
    assert stop not in tok.decode(ref[1])
    records = generate_responses(model, tok, samples_of(PROMPTS[:2], [stop]), 4, budget)
    assert records[0]["stop_reason"] == "stop" and len(records[0]["response_ids"]) <= 4
    assert records[1]["response_ids"] == ref[1] and records[1]["stop_reason"] == "length"


def test_enable_thinking_reaches_the_template(qwen3, tmp_path):
    from moemui.steps.responses import generate_task
    from moemui.tasks import write_samples

    model, tok = qwen3
    sample = samples_of(["What is 6*7?"], chat=True)[0]
    thinking_text, thinking = render_prompt(tok, sample)
    text, ids = render_prompt(tok, sample, {"enable_thinking": False})
    assert text == thinking_text + "<think>\n\n</think>\n\n"
    empty_think = ids_of(tok, "<think>\n\n</think>\n\n")
    assert ids == thinking + empty_think
    assert empty_think[0] == tok.convert_tokens_to_ids("<think>")

    model.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    write_samples(tmp_path / "task.jsonl", [sample])
    out = tmp_path / "responses.jsonl"
    generate_task(
        "qwen3-tiny",
        str(tmp_path / "model"),
        tmp_path / "task.jsonl",
        out,
        max_new_tokens=4,
        template_kwargs={"enable_thinking": False},
    )
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["prompt_ids"] == ids
    assert record["prompt_ids"][-len(empty_think) :] == empty_think


# ---- reasoning: where the final answer is ---------------------------------------------


def test_harmony_responses_are_scored_on_their_final_channel():
    tok = harmony_tokenizer()
    ret = tok.convert_tokens_to_ids("<|return|>")
    analysis = "<|channel|>analysis<|message|>Maybe 7? No: 6*7 is 42, not 41.<|end|>"
    final = "<|start|>assistant<|channel|>final<|message|>The answer is 42."
    ids = ids_of(tok, analysis + final) + [ret] + ids_of(tok, "trailing")
    done = finish_response(tok, ids, [ret, tok.eos_token_id], reasoning="harmony")
    assert done["stop_reason"] == "end"
    assert done["response_ids"] == ids_of(tok, analysis + final) + [ret]
    start = done["answer_start"]
    assert done["response_ids"][start:] == ids_of(tok, "The answer is 42.") + [ret]
    assert done["response_ids"][start - 1] == tok.convert_tokens_to_ids("<|message|>")
    assert done["final"] == "The answer is 42."
    sample = samples_of(["What is 6*7?"])[0]
    record = scored_record(sample, "prompt", [5], 0, done)
    assert (record["answer"], record["correct"]) == ("42", True)
    whole = finish_response(tok, ids, [ret], reasoning="none")  # the analysis's last number
    assert scored_record(sample, "prompt", [5], 0, whole)["correct"] is False

    unanswered = ids_of(tok, analysis)  # ran out of budget in the analysis channel
    none = finish_response(tok, unanswered, [ret], reasoning="harmony")
    assert (none["final"], none["answer_start"], none["stop_reason"]) == (
        "",
        len(unanswered),
        "length",
    )


def test_think_tags_and_stop_strings_in_the_final_answer_only():
    tok = qwen3_tokenizer()
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    ids = ids_of(tok, "<think>write [DONE] at the end</think>\n\ndef f(): pass\n[DONE]\nx")
    done = finish_response(tok, ids + [im_end], [im_end], ["[DONE]"], reasoning="think")
    assert done["stop_reason"] == "stop"  # not at the [DONE] inside the think block
    assert done["response_ids"] == ids_of(
        tok, "<think>write [DONE] at the end</think>\n\ndef f(): pass\n[DONE]"
    )
    assert done["final"] == "\n\ndef f(): pass\n"
    start = done["answer_start"]
    assert tok.decode(done["response_ids"][:start]) == "<think>write [DONE] at the end</think>"
    assert answer_start(tok, ids_of(tok, "<think>never closed"), "think") is None
    assert answer_start(tok, ids_of(tok, "no tags at all"), "think") == 0  # thinking off
    with pytest.raises(MoemuiError, match="unknown reasoning 'cot'"):
        answer_start(tok, ids, "cot")


def test_capture_scores_only_the_final_answer_when_asked(tmp_path):
    from moemui.steps.capture import capture_task, scored_split
    from moemui.store import open_group
    from moemui.tasks import write_samples

    tok = qwen3_tokenizer()
    model = printable_model(tok)
    model.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    reasoning = ids_of(tok, "<think>6*7 is 42</think>")
    answer = ids_of(tok, "42")
    record = {
        "id": "s0",
        "prompt_ids": ids_of(tok, "What is 6*7? "),
        "response_ids": reasoning + answer,
        "answer_start": len(reasoning),
        "correct": True,
    }
    assert scored_split(record, "answer") == (record["prompt_ids"] + reasoning, answer)
    assert scored_split(record, "all") == (record["prompt_ids"], reasoning + answer)
    moved = dict(record, prompt_ids=record["prompt_ids"] + reasoning, response_ids=answer)
    moved["answer_start"] = 0
    write_samples(tmp_path / "task.jsonl", samples_of(["What is 6*7? "]))
    groups = {}
    for name, rec, tokens in (("answer", record, "answer"), ("moved", moved, "all")):
        (tmp_path / f"{name}.jsonl").write_text(json.dumps(rec) + "\n")
        groups[name] = capture_task(
            "m",
            str(tmp_path / "model"),
            "t",
            tmp_path / "task.jsonl",
            tmp_path / f"{name}.jsonl",
            tmp_path / f"{name}.zarr" / "m" / "t",
            tokens=tokens,
        )
    a = open_group(tmp_path / "answer.zarr", "m", "t")
    b = open_group(tmp_path / "moved.zarr", "m", "t")
    assert a.attrs["tokens"] == "answer"
    assert int(a["n_tokens"].values[0]) == len(answer)  # positions predicting the answer
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values)


# ---- responses made elsewhere -----------------------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A saved tiny model whose responses end at its eos token or at the budget."""
    torch.set_num_threads(1)
    tok = build_tokenizer()
    model = printable_model(tok, allowed_extra=[tok.eos_token_id], seed=3)
    with torch.no_grad():  # make the eos token likely enough to end some responses
        model.lm_head.weight[tok.eos_token_id] *= 3.0
    model.generation_config.eos_token_id = tok.eos_token_id
    root = tmp_path_factory.mktemp("imports")
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    return root


def _generate(root, out, imported=None, n=12):
    from moemui.steps.responses import generate_task
    from moemui.tasks import make_task, write_samples

    samples = make_task({"id": "a", "source": "builtin:arithmetic", "n": n, "seed": 0})
    write_samples(root / "task.jsonl", samples)
    generate_task(
        "tiny",
        str(root / "model"),
        root / "task.jsonl",
        out,
        batch_size=4,
        max_new_tokens=10,
        imported=imported,
    )
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_imported_responses_give_the_same_records_and_store(saved):
    from moemui.steps.capture import capture_task
    from moemui.store import open_group

    generated = _generate(saved, saved / "generated.jsonl")
    reasons = {r["stop_reason"] for r in generated}
    assert reasons == {"end", "length"}, reasons  # both kinds of ending are imported
    vllm = saved / "vllm.jsonl"
    vllm.write_text(
        "".join(
            json.dumps(
                {
                    "id": r["id"],
                    "response": r["response"],
                    "finish_reason": "stop" if r["stop_reason"] == "end" else "length",
                    "stop_reason": None,
                }
            )
            + "\n"
            for r in generated
        )
    )
    imported = _generate(saved, saved / "imported.jsonl", imported=f"jsonl:{vllm}")
    keys = ["id", "prompt", "prompt_ids", "response_ids", "response", "answer", "correct"]
    keys += ["stop_reason", "answer_start", "n_response_tokens"]
    for g, i in zip(generated, imported, strict=True):
        assert {k: g[k] for k in keys} == {k: i[k] for k in keys}
    stores = []
    for name in ("generated", "imported"):
        capture_task(
            "tiny",
            str(saved / "model"),
            "a",
            saved / "task.jsonl",
            saved / f"{name}.jsonl",
            saved / f"{name}.zarr" / "tiny" / "a",
        )
        stores.append(open_group(saved / f"{name}.zarr", "tiny", "a"))
    for name in stores[0].data_vars:
        np.testing.assert_array_equal(stores[0][name].values, stores[1][name].values)

    lm_eval = saved / "samples_a.jsonl"  # lm-eval: doc_id, resps; no end information
    lm_eval.write_text(
        "".join(
            json.dumps({"doc_id": d, "resps": [[r["response"]]], "filtered_resps": ["x"]}) + "\n"
            for d, r in reversed(list(enumerate(generated)))
        )
    )
    from_lm_eval = _generate(saved, saved / "lm_eval.jsonl", imported=f"lm-eval:{lm_eval}")
    eos = build_tokenizer().eos_token_id
    for g, i in zip(generated, from_lm_eval, strict=True):
        ended = g["stop_reason"] == "end"
        assert i["response_ids"] == (g["response_ids"][:-1] if ended else g["response_ids"])
        assert eos not in i["response_ids"] and i["stop_reason"] == "unknown"


def test_bad_imports_name_the_file_and_line(saved):
    from moemui.imports import read_imported
    from moemui.tasks import make_task

    samples = make_task({"id": "a", "source": "builtin:arithmetic", "n": 2, "seed": 0})
    bad = saved / "bad.jsonl"
    cases = [
        ('{"id": "nope", "response": "1"}\n', r"bad.jsonl, line 1: sample id 'nope' is not"),
        ("{}\n", r'line 1: expected "id" and "response" strings'),
        ("[1]\n", "line 1: expected a JSON object"),
        ("\n{oops\n", "line 2: not JSON"),
        (json.dumps({"id": samples[0]["id"], "response": "1"}) + "\n", "no response for 1 of"),
    ]
    twice = json.dumps({"id": samples[0]["id"], "response": "1"}) + "\n"
    cases.append((twice * 2, "line 2: a second response for sample"))
    for text, message in cases:
        bad.write_text(text)
        with pytest.raises(MoemuiError, match=message):
            read_imported(f"jsonl:{bad}", samples)
    bad.write_text('{"doc_id": 5, "resps": [["1"]]}\n')
    with pytest.raises(MoemuiError, match="line 1: doc_id 5 is outside the task's 2 samples"):
        read_imported(f"lm-eval:{bad}", samples)
    with pytest.raises(MoemuiError, match="expected <format>:<path>"):
        read_imported(f"vllm:{bad}", samples)


@pytest.mark.workflow
def test_the_workflow_imports_responses_and_passes_the_generation_settings(
    tmp_path, tiny_config, write_config, run_snakemake
):
    from moemui.tasks import make_task

    task = {"id": "arithmetic", "source": "builtin:arithmetic", "n": 4}
    samples = make_task(dict(task, seed=0))
    made = tmp_path / "made-elsewhere.jsonl"
    made.write_text("".join(json.dumps({"id": s["id"], "response": "19"}) + "\n" for s in samples))
    config = tiny_config(tasks=[task])
    config["models"] = [
        {
            "id": "olmoe-tiny",
            "source": "builtin:olmoe_tiny",
            "reasoning": "think",
            "chat_template_kwargs": {"enable_thinking": False},
            "responses": {"arithmetic": f"jsonl:{made}"},
        },
        {"id": "qwen2moe-tiny", "source": "builtin:qwen2_moe_tiny"},
    ]
    config["tasks"][0]["chat_template_kwargs"] = {"reasoning_effort": "low"}
    write_config(tmp_path, config)
    target = "results/responses/olmoe-tiny/arithmetic.jsonl"
    run = run_snakemake(tmp_path, target, "-p", timeout=600)
    assert run.returncode == 0, run.stdout[-4000:]
    assert f"--import jsonl:{made}" in run.stdout
    assert "--reasoning think" in run.stdout
    kwargs = '{"enable_thinking": false, "reasoning_effort": "low"}'
    assert f"--chat-template-kwargs '{kwargs}'" in run.stdout
    records = [json.loads(line) for line in (tmp_path / target).read_text().splitlines()]
    tok = build_tokenizer()
    assert [r["id"] for r in records] == [s["id"] for s in samples]
    assert all(r["response_ids"] == ids_of(tok, "19") for r in records)
    assert all(r["stop_reason"] == "unknown" for r in records)
    assert not (tmp_path / "results/responses/qwen2moe-tiny").exists()
    made.write_text(made.read_text().replace('"19"', '"20"'))  # the file is an input
    dry = run_snakemake(tmp_path, target, "-n", timeout=300)
    assert dry.returncode == 0 and "generate_responses" in dry.stdout, dry.stdout[-3000:]


@pytest.mark.parametrize(
    ("reasoning", "text"),
    [
        ("none", "def f():\n    return 'é'\n[DONE]\nmore [DONE]"),
        ("think", "<think>say [DONE] at the end</think>\n\n42\n[DONE]\ntrailing"),
        ("think", "no think block: 42 [DONE] then more"),
        (
            "harmony",
            "<|channel|>analysis<|message|>[DONE]?<|end|><|start|>assistant"
            "<|channel|>final<|message|>42 [DONE] x",
        ),
        ("harmony", "<|channel|>analysis<|message|>[DONE] and no final channel"),
    ],
)
def test_the_loop_criterion_stops_where_the_response_is_cut(reasoning, text):
    """Fed the growing row one token at a time, as generate does, the criterion fires at
    the token finish_response cuts after (and never when the stop is in the reasoning)."""
    from moemui.generate import StopStrings

    tok = harmony_tokenizer() if reasoning == "harmony" else qwen3_tokenizer()
    prompt = ids_of(tok, "prompt ")
    row = ids_of(tok, text)
    criterion = StopStrings(tok, len(prompt), [["[DONE]"]], reasoning)
    fired = next(
        (t for t in range(1, len(row) + 1) if criterion(torch.tensor([prompt + row[:t]]))[0]),
        None,
    )
    done = finish_response(tok, row, [tok.eos_token_id], ["[DONE]"], reasoning)
    if done["stop_reason"] == "stop":
        assert fired == len(done["response_ids"])
        assert tok.decode(done["response_ids"]).endswith("[DONE]")
    else:
        assert fired is None and done["response_ids"] == row


def test_sequences_leave_and_join_the_batch_with_the_tokens_they_get_alone(qwen3):
    """Finished sequences leave the running batch (and the KV cache) between segments
    and queued ones join it; each gets the tokens and the ending it gets alone."""
    model, tok = qwen3
    prompts = PROMPTS + ["a b c d e f g h", "0123456789"]
    ref = _reference_rows(model, tok, samples_of(prompts), 14)
    second = ref[0][3] if ref[0][3] not in ref[0][:3] else ref[0][5]
    model.generation_config.eos_token_id = [second]
    samples = samples_of(prompts, [tok.decode(ref[1][6:8])])
    try:
        alone = generate_responses(model, tok, samples, 1, 14, segment=None)
        pooled = generate_responses(model, tok, samples, 2, 14, segment=3)
    finally:
        model.generation_config.eos_token_id = []
    assert [r["response_ids"] for r in pooled] == [r["response_ids"] for r in alone]
    assert [r["stop_reason"] for r in pooled] == [r["stop_reason"] for r in alone]
    assert {"end", "stop"} <= {r["stop_reason"] for r in alone}


FAMILY_PROMPTS = ["12+7=", "a much longer prompt here", "x", "hello there"]


@pytest.mark.parametrize("model_type", sorted(set(FAMILIES.values())))
def test_every_family_generates_the_same_rows_in_segments(model_type):
    """Sequences that leave and join a running batch (batches of 2, segments of 2) get
    the tokens each gets alone, for every family whose generation does not depend on
    the padding of its batch."""
    torch.set_num_threads(1)
    model = tiny_model(model_type)
    model.generation_config.eos_token_id = [40, 50, 60]  # byte ids the tiny models write
    tok = build_tokenizer()
    samples = samples_of(FAMILY_PROMPTS)

    def rows(batch_size, segment):
        records = generate_responses(
            model, tok, samples, batch_size, 9, model_type, segment=segment
        )
        return [r["response_ids"] for r in records]

    try:
        alone = rows(1, None)
    except ValueError as err:  # the shrunk config keeps only linear-attention layers
        assert "only contain LinearAttention layers" in str(err)
        pytest.skip("transformers cannot generate with a cache of linear-attention layers only")
    if rows(4, None) != alone:
        pytest.skip("this family's tokens depend on the padding of its batch, in one call too")
    assert rows(2, 2) == alone


@pytest.mark.parametrize(
    ("flag", "value", "phrase"),
    [
        ("--chat-template-kwargs", "{enable_thinking: false}", "not JSON"),
        ("--chat-template-kwargs", '["enable_thinking"]', "not a JSON object"),
    ],
)
def test_a_malformed_json_flag_is_a_usage_error_naming_it(tmp_path, capsys, flag, value, phrase):
    from moemui.cli import main

    argv = ["generate", "--model-id", "m", "--source", str(tmp_path), "--tasks", "t.jsonl"]
    with pytest.raises(SystemExit) as info:
        main([*argv, "--out", "o.jsonl", flag, value])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: {phrase}" in err
    assert "Traceback" not in err
