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

    Prompts are left-padded in batches. A response ends at the first end-of-sequence
    token (kept: the position predicting it is part of the response) or after
    ``max_new_tokens`` tokens.

    Returns
    -------
    One record per sample: ``id``, ``prompt_ids``, ``response_ids``, ``response``
    (decoded text, special tokens skipped), ``answer`` (extracted), ``correct``,
    ``n_response_tokens``.
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
        ids = [prompt_ids(tokenizer, s["prompt"]) for s in chunk]
        for sample, p in zip(chunk, ids, strict=True):
            if not p:
                raise MoemuiError(f"model {name!r}: sample {sample['id']!r} has an empty prompt")
            if limit and len(p) + max_new_tokens > limit:
                raise MoemuiError(
                    f"model {name!r}: sample {sample['id']!r}: {len(p)} prompt tokens + "
                    f"{max_new_tokens} new tokens exceed the context of {limit}"
                )
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
        for sample, p, row in zip(chunk, ids, out[:, width:].tolist(), strict=True):
            response = row
            if eos is not None and eos in row:
                response = row[: row.index(eos) + 1]
            text = tokenizer.decode(response, skip_special_tokens=True)
            kind = sample["meta"]["kind"]
            records.append(
                {
                    "id": sample["id"],
                    "prompt_ids": p,
                    "response_ids": response,
                    "response": text,
                    "answer": extract_answer(kind, text, sample["meta"].get("choices")),
                    "correct": bool(score(sample, text)),
                    "n_response_tokens": len(response),
                }
            )
    return records
