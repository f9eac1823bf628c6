"""Batched greedy generation (:func:`generate_responses`): prompts in batches of
similar length, each sequence leaving the batch (and its KV cache) as it ends, and, for
models with a plain attention cache, the next prompts joining the running batch.
"""

from __future__ import annotations

import logging

import torch
from transformers import StoppingCriteriaList

from moemui.batching import left_pad
from moemui.defaults import default
from moemui.errors import MoemuiError
from moemui.generate.endings import REASONING, StopStrings, end_token_ids, finish_response
from moemui.generate.prompts import fit_context, render_prompt
from moemui.generate.records import scored_record
from moemui.progress import progress

log = logging.getLogger(__name__)

SEGMENT = 8  # new tokens per generate call, between which finished sequences leave


def _plain_cache(cache) -> bool:
    """A DynamicCache of attention layers only: its rows can be selected."""
    from transformers.cache_utils import DynamicCache, DynamicLayer, DynamicSlidingWindowLayer

    plain = (DynamicLayer, DynamicSlidingWindowLayer)
    return type(cache) is DynamicCache and all(type(x) in plain for x in cache.layers)


def _cache_layers(model) -> list[type] | None:
    """The layer types of the DynamicCache transformers builds for the model's config
    (None: not a DynamicCache, or one the config cannot build)."""
    from transformers.cache_utils import DynamicCache

    try:
        cache = DynamicCache(config=model.config)
    except Exception:  # noqa: BLE001 - a config DynamicCache cannot read
        return None
    return [type(x) for x in cache.layers] if type(cache) is DynamicCache else None


def _compactable(model) -> bool:
    """Whether the model generates with a plain attention cache, whose rows finished
    sequences can leave."""
    from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

    layers = _cache_layers(model)
    plain = (DynamicLayer, DynamicSlidingWindowLayer)
    return layers is not None and all(t in plain for t in layers)


def _greedy(model, ids, mask, cache, n_new, pad, ends, criterion):
    """One greedy ``generate`` call of at most ``n_new`` tokens, continuing from
    ``cache`` (None: from the prompt), with the end tokens and stop-string criterion."""
    return model.generate(
        input_ids=ids,
        attention_mask=mask,
        past_key_values=cache,
        max_new_tokens=n_new,
        do_sample=False,
        pad_token_id=pad,
        eos_token_id=ends or None,
        stopping_criteria=StoppingCriteriaList([criterion]) if criterion else None,
        return_dict_in_generate=True,
    )


def _generate_batch(
    model, tokenizer, input_ids, attention, budget, pad, ends, stops, reasoning, segment
) -> list[list[int]]:
    """The generated ids of each row of a left-padded batch (rows that ended early are
    padded after their end), ``segment`` tokens per ``generate`` call (None: one call).

    Between calls, rows that ended (an end token, or a stop string for the criterion)
    leave the batch and the KV cache; the others continue from the cache."""
    width, first = input_ids.shape[1], (input_ids, attention)
    criterion = StopStrings(tokenizer, width, stops, reasoning) if any(stops) else None
    alive = list(range(input_ids.shape[0]))
    rows: list[list[int]] = [[] for _ in alive]
    cache, produced = None, 0
    end_ids = torch.tensor(ends or [-1], device=input_ids.device)
    while True:
        step = budget - produced if segment is None else min(segment, budget - produced)
        result = _greedy(model, input_ids, attention, cache, step, pad, ends, criterion)
        sequences = result if isinstance(result, torch.Tensor) else result.sequences
        new = sequences[:, input_ids.shape[1] :]
        for j, b in enumerate(alive):
            rows[b].extend(new[j].tolist())
        produced += new.shape[1]
        if produced >= budget or new.shape[1] < step:  # the budget, or every row ended
            return rows
        ended = torch.isin(new, end_ids).any(dim=1).tolist()
        if criterion is not None:
            ended = [e or x for e, x in zip(ended, criterion.stopped(), strict=True)]
        keep = [j for j, e in enumerate(ended) if not e]
        cache = getattr(result, "past_key_values", None)
        if not keep:
            return rows
        if not _plain_cache(cache):  # not what _compactable judged: again, in one call
            log.warning("the model's cache is not a plain attention cache: one call per batch")
            return _generate_batch(
                model, tokenizer, *first, budget, pad, ends, stops, reasoning, segment=None
            )
        index = torch.tensor(keep, device=input_ids.device)
        if len(keep) < len(alive):
            cache.batch_select_indices(index)
            if criterion is not None:
                criterion.select(keep)
        grown = torch.ones_like(new)
        input_ids = sequences[index]
        attention = torch.cat([attention, grown], dim=1)[index]
        alive = [alive[j] for j in keep]


def _refillable(model) -> bool:
    """Whether every layer of the model's cache is a full-attention DynamicLayer, whose
    rows can also be left-padded and joined: sequences can then join a running batch."""
    from transformers.cache_utils import DynamicLayer

    layers = _cache_layers(model)
    return layers is not None and all(t is DynamicLayer for t in layers)


def _left_pad(t: torch.Tensor, by: int, dim: int, value=0) -> torch.Tensor:
    if by == 0:
        return t
    shape = list(t.shape)
    shape[dim] = by
    return torch.cat([t.new_full(shape, value), t], dim=dim)


def _prefill(model, tokenizer, prompts, pad, ends, stops, reasoning, device, n_new=1):
    """New sequences, started by one ``generate`` call of ``n_new`` tokens (transformers'
    own prefill): their left-padded ids with the new tokens, mask, KV cache (every token
    but the last, as for a running row) and stop-string state."""
    ids, mask = left_pad(prompts, pad)
    width = ids.shape[1]
    criterion = StopStrings(tokenizer, width, stops, reasoning)
    result = _greedy(model, ids.to(device), mask.to(device), None, n_new, pad, ends, criterion)
    grown = result.sequences.shape[1] - width
    mask = torch.cat([mask.to(device), mask.new_ones((len(prompts), grown)).to(device)], dim=1)
    return (result.sequences, mask, result.past_key_values), criterion, width


def _join(running, joining, pad: int):
    """One batch from two (ids, mask, cache): rows left-padded to the longer width, the
    joining rows after the running ones. Returns the batch and each part's padding."""
    (ids_a, mask_a, cache_a), (ids_b, mask_b, cache_b) = running, joining
    width = max(ids_a.shape[1], ids_b.shape[1])
    pad_a, pad_b = width - ids_a.shape[1], width - ids_b.shape[1]
    ids = torch.cat([_left_pad(ids_a, pad_a, 1, pad), _left_pad(ids_b, pad_b, 1, pad)])
    mask = torch.cat([_left_pad(mask_a, pad_a, 1), _left_pad(mask_b, pad_b, 1)])
    for layer_a, layer_b in zip(cache_a.layers, cache_b.layers, strict=True):
        for name in ("keys", "values"):
            a, b = getattr(layer_a, name), getattr(layer_b, name)
            setattr(layer_a, name, torch.cat([_left_pad(a, pad_a, -2), _left_pad(b, pad_b, -2)]))
    return (ids, mask, cache_a), pad_a, pad_b


def _pool_generate(
    model, tokenizer, prompts, budget, pad, ends, stops, reasoning, batch_size, segment, device
):
    """Greedy generation of every prompt with sequences joining a running batch.

    At most ``batch_size`` sequences run at once, ``segment`` tokens per ``generate``
    call (fewer when a sequence is that close to its budget). After each call the
    sequences that ended (an end token, a stop string, the budget) leave the batch and
    the KV cache. Once half the batch is free, the next prompts of the queue join it:
    they are run through the model together (:func:`_prefill`: a prompt's prefill reads
    most expert weights however few its rows, so prompts join in groups, not one by
    one), then their rows of the cache are left-padded to the batch's width and joined
    (:func:`_join`). An empty batch is filled and its first segment generated in one
    call. Yields ``(index, generated ids)`` as sequences end.
    """
    queue = list(range(len(prompts)))[::-1]
    active: list[int] = []
    generated: dict[int, list[int]] = {}
    batch, criterion = None, None
    end_set = set(ends)
    while queue or active:
        free = batch_size - len(active)
        if queue and (not active or free >= max(1, batch_size // 2)):
            joining = [queue.pop() for _ in range(min(free, len(queue)))]
            part, started, width = _prefill(
                model,
                tokenizer,
                [prompts[i] for i in joining],
                pad,
                ends,
                [stops[i] for i in joining],
                reasoning,
                device,
                n_new=1 if active else min(segment, budget),
            )
            if batch is None:
                batch, criterion, pad_a, pad_b = part, started, 0, 0
            else:
                batch, pad_a, pad_b = _join(batch, part, pad)
                criterion.shift([pad_a] * len(active))
                criterion.absorb(started, pad_b)
            fresh = {i: part[0][j, width:].tolist() for j, i in enumerate(joining)}
            generated.update(fresh)
            active += joining
        else:
            ids, mask, cache = batch
            step = min(segment, min(budget - len(generated[i]) for i in active))
            result = _greedy(model, ids, mask, cache, step, pad, ends, criterion)
            new = result.sequences[:, ids.shape[1] :]
            fresh = {i: new[j].tolist() for j, i in enumerate(active)}
            for i, tokens in fresh.items():
                generated[i] += tokens
            mask = torch.cat([mask, torch.ones_like(new)], dim=1)
            batch = (result.sequences, mask, result.past_key_values)
        # a row has ended at an end token among its new tokens, or at its budget
        ended = [
            len(generated[i]) >= budget or not end_set.isdisjoint(fresh.get(i, ())) for i in active
        ]
        ended = [e or x for e, x in zip(ended, criterion.stopped(), strict=True)]
        for j, i in enumerate(active):
            if ended[j]:
                yield i, generated.pop(i)
        keep = [j for j, e in enumerate(ended) if not e]
        if not keep:
            active, batch, criterion = [], None, None
            continue
        if len(keep) < len(active):
            ids, mask, cache = batch
            index = torch.tensor(keep, device=device)
            cache.batch_select_indices(index)
            criterion.select(keep)
            batch = (ids[index], mask[index], cache)
            active = [active[j] for j in keep]


class _Counted:
    """An iterator with a known length, for :func:`moemui.progress.progress`."""

    def __init__(self, items, n: int):
        self.items, self.n = items, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return iter(self.items)


def _pad_id(model, tokenizer, ends: list[int]) -> int:
    config = getattr(model, "generation_config", None)
    for value in (tokenizer.pad_token_id, getattr(config, "pad_token_id", None)):
        if isinstance(value, int):
            return value
    if ends:
        return ends[0]
    raise MoemuiError("the tokenizer has neither a pad nor an end token")


@torch.no_grad()
def generate_responses(
    model,
    tokenizer,
    samples: list[dict],
    batch_size: int | None = None,
    max_new_tokens: int | None = None,
    name: str = "model",
    reasoning: str | None = None,
    template_kwargs: dict | None = None,
    segment: int | None = SEGMENT,
) -> list[dict]:
    """Greedy responses to every sample's prompt, scored against its reference.

    Prompts (:func:`render_prompt`) are sorted by length and left-padded in batches, so
    a batch holds prompts of similar length; records come back in the samples' order.
    A prompt too long for the model's context (``max_position_embeddings``) with
    ``max_new_tokens`` after it loses its first tokens, with a warning in the log; the
    number dropped is recorded. Each sequence stops on its own at the first of the
    model's end tokens (:func:`end_token_ids`) or of its ``meta.stop`` strings (the
    task's ``stop`` setting), checked at every step; a batch ends when all its sequences
    have, or after ``max_new_tokens`` (:func:`finish_response`). A batch is generated
    ``segment`` new tokens at a time; between segments the finished sequences leave it
    (with their rows of the KV cache), so the model runs only the sequences still going
    (models whose cache is not a plain attention cache, and ``segment=None``: one call).
    The answer is extracted from, and scored on, the final answer (``reasoning``;
    :func:`answer_start`). Scoring (:func:`moemui.tasks.score`) runs code answers in a
    separate sandboxed process, never in this one. ``batch_size``, ``max_new_tokens`` and
    ``reasoning`` default to the config's ``generation.batch_size``,
    ``generation.max_new_tokens`` and ``models.reasoning``.

    Returns
    -------
    One record per sample: ``id``, ``prompt`` (the exact text the model was given, chat
    template included), ``prompt_ids``, ``response_ids``, ``response`` (decoded text,
    special tokens skipped), ``final`` (the final answer's text), ``answer`` (extracted),
    ``correct``, ``n_response_tokens``, ``answer_start``, ``stop_reason``,
    ``n_prompt_truncated`` (prompt tokens dropped from the left to fit the context;
    ``prompt_ids`` are those the model saw).
    """
    batch_size = default("generation.batch_size") if batch_size is None else batch_size
    if max_new_tokens is None:
        max_new_tokens = default("generation.max_new_tokens")
    reasoning = default("models.reasoning") if reasoning is None else reasoning
    if reasoning not in REASONING:
        raise MoemuiError(
            f"model {name!r}: unknown reasoning {reasoning!r}; expected one of "
            f"{', '.join(REASONING)}"
        )
    ends = end_token_ids(model, tokenizer)
    try:
        pad = _pad_id(model, tokenizer, ends)
    except MoemuiError as err:
        raise MoemuiError(f"model {name!r}: {err}") from None
    limit = getattr(model.config, "max_position_embeddings", None)
    device = next(model.parameters()).device
    rendered, kept, dropped = [], [], []
    for sample in samples:
        text_in, p = render_prompt(tokenizer, sample, template_kwargs)
        cut = fit_context(name, sample, p, max_new_tokens, limit)
        rendered.append(text_in)
        kept.append(p[cut:])
        dropped.append(cut)
    order = sorted(range(len(samples)), key=lambda i: len(kept[i]))
    records: list[dict | None] = [None] * len(samples)
    stops = [s["meta"].get("stop") or None for s in samples]

    def record(i: int, row: list[int]) -> None:
        done = finish_response(tokenizer, row, ends, stops[i], reasoning)
        records[i] = scored_record(samples[i], rendered[i], kept[i], dropped[i], done)

    if segment and _refillable(model):
        finished = _pool_generate(
            model,
            tokenizer,
            [kept[i] for i in order],
            max_new_tokens,
            pad,
            ends,
            [stops[i] for i in order],
            reasoning,
            batch_size,
            segment,
            device,
        )
        for j, row in progress(_Counted(finished, len(order)), f"generate {name}", "sample"):
            record(order[j], row)
        return records
    segmented = segment if segment and _compactable(model) else None
    batches = range(0, len(order), batch_size)
    for start in progress(batches, desc=f"generate {name}", unit="batch"):
        chunk = order[start : start + batch_size]
        input_ids, attention = left_pad([kept[i] for i in chunk], pad)
        rows = _generate_batch(
            model,
            tokenizer,
            input_ids.to(device),
            attention.to(device),
            max_new_tokens,
            pad,
            ends,
            [stops[i] for i in chunk],
            reasoning,
            segmented,
        )
        for i, row in zip(chunk, rows, strict=True):
            record(i, row)
    return records
