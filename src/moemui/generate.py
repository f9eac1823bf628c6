"""Batched greedy generation: the responses whose internals the capture scores."""

from __future__ import annotations

import logging

import torch

from moemui.errors import MoemuiError
from moemui.progress import progress
from moemui.tasks import extract_answer, score

log = logging.getLogger(__name__)


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    """The prompt's token ids, with the tokenizer's own special tokens (if it adds any)."""
    return list(tokenizer(prompt)["input_ids"])


def render_prompt(tokenizer, sample: dict) -> tuple[str, list[int]]:
    """The text and token ids the model is given for a sample.

    A sample whose ``meta.chat_template`` is true (benchmark tasks, by default) is wrapped
    as one user message with the tokenizer's chat template, generation prompt added, when
    the tokenizer has one; the template's text is tokenized without adding special
    tokens again. Otherwise (built-in and file tasks, or a tokenizer without template)
    the prompt is used as it is, with :func:`prompt_ids`.
    """
    prompt = sample["prompt"]
    if sample["meta"].get("chat_template") and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        return text, list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return prompt, prompt_ids(tokenizer, prompt)


def cut_at_stop(tokenizer, ids: list[int], stop: list[str]) -> tuple[list[int], str]:
    """A response's tokens and text up to its first stop string.

    The text ends before the stop string; the tokens end with the token that completes
    it (the shortest prefix whose decoded text contains it), so the capture scores the
    positions that produced the stop string and nothing after. Without a stop string in
    the text, everything is kept.
    """
    text = tokenizer.decode(ids, skip_special_tokens=True)
    hits = [text.find(s) for s in stop if s and s in text]
    if not hits:
        return ids, text
    cut = min(hits)
    for j in range(1, len(ids) + 1):
        part = tokenizer.decode(ids[:j], skip_special_tokens=True)
        if any(s and s in part for s in stop):
            return ids[:j], text[:cut]
    return ids, text[:cut]  # pragma: no cover - the full decode contained it


@torch.no_grad()
def generate_responses(
    model,
    tokenizer,
    samples: list[dict],
    batch_size: int = 16,
    max_new_tokens: int = 16,
    name: str = "model",
) -> list[dict]:
    """Greedy responses to every sample's prompt, scored against its reference.

    Prompts (:func:`render_prompt`) are left-padded in batches. A prompt too long for the
    model's context (``max_position_embeddings``) with ``max_new_tokens`` after it loses
    its first tokens, with a warning in the log; the number dropped is recorded.
    A response ends at the first end-of-sequence token (kept: the position predicting
    it is part of the response), after ``max_new_tokens`` tokens, or at the first of the sample's
    ``meta.stop`` strings (the task's ``stop`` setting; :func:`cut_at_stop`). Scoring
    (:func:`moemui.tasks.score`) runs code answers in a separate sandboxed process, never
    in this one.

    Returns
    -------
    One record per sample: ``id``, ``prompt`` (the exact text the model was given, chat
    template included), ``prompt_ids``, ``response_ids``, ``response`` (decoded text,
    special tokens skipped), ``answer`` (extracted), ``correct``, ``n_response_tokens``,
    ``n_prompt_truncated`` (prompt tokens dropped from the left to fit the context;
    ``prompt_ids`` are those the model saw).
    """
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    if pad is None:
        raise MoemuiError(f"model {name!r}: the tokenizer has neither a pad nor an eos token")
    limit = getattr(model.config, "max_position_embeddings", None)
    device = next(model.parameters()).device
    records = []
    batches = range(0, len(samples), batch_size)
    for start in progress(batches, desc=f"generate {name}", unit="batch"):
        chunk = samples[start : start + batch_size]
        rendered = [render_prompt(tokenizer, s) for s in chunk]
        ids, dropped = [], []
        for sample, (_, p) in zip(chunk, rendered, strict=True):
            if not p:
                raise MoemuiError(f"model {name!r}: sample {sample['id']!r} has an empty prompt")
            cut = max(0, len(p) + max_new_tokens - limit) if limit else 0
            if cut and cut >= len(p):
                raise MoemuiError(
                    f"model {name!r}: sample {sample['id']!r}: {max_new_tokens} new tokens "
                    f"leave no room for the prompt in the context of {limit}"
                )
            if cut:
                log.warning(
                    "model %r: sample %r: prompt truncated from the left by %d of its %d "
                    "tokens to fit %d new tokens in the context of %d",
                    name,
                    sample["id"],
                    cut,
                    len(p),
                    max_new_tokens,
                    limit,
                )
            ids.append(p[cut:])
            dropped.append(cut)
        width = max(len(p) for p in ids)
        input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
        attention = torch.zeros((len(ids), width), dtype=torch.long)
        for b, p in enumerate(ids):
            input_ids[b, width - len(p) :] = torch.tensor(p)
            attention[b, width - len(p) :] = 1
        out = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=pad,
            eos_token_id=eos,
        )
        rows = out[:, width:].tolist()
        for sample, (text_in, _), p, cut, row in zip(
            chunk, rendered, ids, dropped, rows, strict=True
        ):
            response = row
            if eos is not None and eos in row:
                response = row[: row.index(eos) + 1]
            stop = sample["meta"].get("stop")
            if stop:
                response, text = cut_at_stop(tokenizer, response, stop)
            else:
                text = tokenizer.decode(response, skip_special_tokens=True)
            kind = sample["meta"]["kind"]
            records.append(
                {
                    "id": sample["id"],
                    "prompt": text_in,
                    "prompt_ids": p,
                    "response_ids": response,
                    "response": text,
                    "answer": extract_answer(kind, text, sample["meta"].get("choices")),
                    "correct": bool(score(sample, text)),
                    "n_response_tokens": len(response),
                    "n_prompt_truncated": cut,
                }
            )
    return records
