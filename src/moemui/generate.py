"""Batched greedy generation: the responses whose internals the capture scores.

A response ends where the model ends it: at the first of the model's end tokens
(:func:`end_token_ids`), at the first of the task's stop strings (checked inside the
generation loop, per sequence), or after ``max_new_tokens`` tokens; the record says which
(``stop_reason``). For models that reason before they answer (``reasoning``: ``think``
or ``harmony``), the final answer is found in the response (:func:`answer_start`), and
only it is scored and searched for stop strings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from moemui.batching import left_pad
from moemui.errors import MoemuiError
from moemui.io import replace_surrogates
from moemui.progress import progress
from moemui.tasks import extract_answer, score

log = logging.getLogger(__name__)

STOP_REASONS: tuple[str, ...] = ("end", "stop", "length")
REASONING: tuple[str, ...] = ("none", "think", "harmony")
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
HARMONY_FINAL = "<|channel|>final<|message|>"


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    """The prompt's token ids, with the tokenizer's own special tokens (if it adds any)."""
    return list(tokenizer(prompt)["input_ids"])


def render_prompt(
    tokenizer, sample: dict, template_kwargs: dict | None = None
) -> tuple[str, list[int]]:
    """The text and token ids the model is given for a sample.

    A sample whose ``meta.chat_template`` is true (benchmark tasks, by default) is wrapped
    as one user message with the tokenizer's chat template, generation prompt added, when
    the tokenizer has one; ``template_kwargs`` (the config's ``chat_template_kwargs``, such
    as ``enable_thinking: false`` for Qwen3 or ``reasoning_effort: low`` for GPT-OSS)
    reach the template as its variables. The template's text is tokenized without adding
    special tokens again. Otherwise (built-in and file tasks, or a tokenizer without
    template) the prompt is used as it is, with :func:`prompt_ids`.

    A lone surrogate in the prompt (``"\\ud800"`` in a task file) is replaced by U+FFFD,
    with a warning naming the sample and the count: a tokenizer cannot take it (it has no
    UTF-8 form). The text returned, recorded as the prompt, is the one with U+FFFD.
    """
    prompt, replaced = replace_surrogates(sample["prompt"])
    if replaced:
        log.warning(
            "sample %r: %d lone surrogate(s) in the prompt replaced by U+FFFD for the tokenizer",
            sample["id"],
            replaced,
        )
    if sample["meta"].get("chat_template") and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}],
            tokenize=False,
            add_generation_prompt=True,
            **(template_kwargs or {}),
        )
        return text, list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return prompt, prompt_ids(tokenizer, prompt)


def end_token_ids(model, tokenizer) -> list[int]:
    """Every token that ends a response: the model's ``generation_config.eos_token_id``
    (an id or a list: chat models end a turn with a token that is not the tokenizer's
    eos), then the tokenizer's eos, each once, in that order."""
    declared = []
    config = getattr(model, "generation_config", None)
    for value in (getattr(config, "eos_token_id", None), tokenizer.eos_token_id):
        if value is None:
            continue
        declared.extend(value if isinstance(value, (list, tuple)) else [value])
    return list(dict.fromkeys(int(t) for t in declared))


def _shortest_prefix(tokenizer, ids: list[int], start: int, found: Callable[[str], bool]) -> int:
    """The least ``j > start`` with ``found(decode(ids[start:j]))`` (special tokens
    skipped), else ``-1``. Binary search: text only grows as tokens are added."""
    if not found(tokenizer.decode(ids[start:], skip_special_tokens=True)):
        return -1
    lo, hi = start + 1, len(ids)
    while lo < hi:
        mid = (lo + hi) // 2
        if found(tokenizer.decode(ids[start:mid], skip_special_tokens=True)):
            hi = mid
        else:
            lo = mid + 1
    return lo


def answer_start(tokenizer, ids: list[int], reasoning: str = "none") -> int | None:
    """Where the final answer begins in a response's token ids; None if it never began.

    ``none``: the whole response is the answer (0). ``think``: the answer follows the
    first ``</think>``; a response that opens ``<think>`` and never closes it has no
    answer; a response with neither tag (thinking switched off in the template) is all
    answer. ``harmony`` (GPT-OSS): the answer is the final channel, after
    ``<|channel|>final<|message|>``; a response without one has no answer. Markers are
    found in the text decoded with special tokens kept; the index is the first token
    after the one that completes the marker.

    Examples
    --------
    >>> from moemui.tokenizer import build_tokenizer
    >>> tok = build_tokenizer()
    >>> ids = tok("<think>hmm</think>42", add_special_tokens=False)["input_ids"]
    >>> start = answer_start(tok, ids, "think")
    >>> tok.decode(ids[start:])
    '42'
    >>> answer_start(tok, tok("<think>hmm", add_special_tokens=False)["input_ids"], "think")
    """
    if reasoning == "none":
        return 0
    if reasoning not in REASONING:
        raise MoemuiError(
            f"unknown reasoning {reasoning!r}; expected one of {', '.join(REASONING)}"
        )
    marker = THINK_CLOSE if reasoning == "think" else HARMONY_FINAL
    raw = tokenizer.decode(ids, skip_special_tokens=False)
    if marker in raw:
        lo, hi = 1, len(ids)
        while lo < hi:
            mid = (lo + hi) // 2
            if marker in tokenizer.decode(ids[:mid], skip_special_tokens=False):
                hi = mid
            else:
                lo = mid + 1
        return lo
    if reasoning == "think" and THINK_OPEN not in raw:
        return 0
    return None


def _first_stop(text: str, stop: list[str]) -> int:
    """The position of the earliest stop string in ``text``, else -1."""
    hits = [text.find(s) for s in stop if s and s in text]
    return min(hits) if hits else -1


def finish_response(
    tokenizer,
    row: list[int],
    ends: list[int] | set[int],
    stop: list[str] | None = None,
    reasoning: str = "none",
) -> dict:
    """A generated row's kept tokens, texts and why it stopped.

    The row is cut after its first end token (kept: the position that predicts it is
    part of the response), then, within the final answer (:func:`answer_start`), after
    the token that completes its first stop string (the texts end before the stop
    string). Tokens after either are padding of a finished row.

    Returns
    -------
    ``response_ids``, ``response`` (the whole text, special tokens skipped), ``final``
    (the final answer's text; empty when the model never answered), ``answer_start``
    (index in ``response_ids`` of the answer's first token; their length when there is
    none) and ``stop_reason`` (``end``, ``stop`` or ``length``).
    """
    ends = set(ends)
    end_at = next((i for i, t in enumerate(row) if t in ends), None)
    ids = list(row[: end_at + 1]) if end_at is not None else list(row)
    reason = "end" if end_at is not None else "length"
    start = answer_start(tokenizer, ids, reasoning)
    final = None
    if stop and start is not None:
        cut = _shortest_prefix(tokenizer, ids, start, lambda t: _first_stop(t, stop) >= 0)
        if cut >= 0:
            ids, reason = ids[:cut], "stop"
            part = tokenizer.decode(ids[start:], skip_special_tokens=True)
            final = part[: _first_stop(part, stop)]
    if final is not None:
        head = tokenizer.decode(ids[:start], skip_special_tokens=True) if start else ""
        response = head + final
    else:
        response = tokenizer.decode(ids, skip_special_tokens=True)
        if start is None:
            final = ""
        elif start == 0:
            final = response
        else:
            final = tokenizer.decode(ids[start:], skip_special_tokens=True)
    return {
        "response_ids": ids,
        "response": response,
        "final": final,
        "answer_start": len(ids) if start is None else start,
        "stop_reason": reason,
    }


class StopStrings(StoppingCriteria):
    """A stopping criterion: a row is done once its final answer holds a stop string.

    Called by ``generate`` after every step with the whole ``[B, width + t]`` ids, row
    ``b``'s response starting at ``widths[b]`` (an int: the same for every row). A stop
    string completed by the newest token lies in the row's last few tokens, so only a
    tail of each row is decoded (the stop string's length in bytes plus a margin of
    :attr:`MARGIN` tokens); so is the reasoning marker, and where the final answer starts
    is computed once, when the marker first appears. A row found done is not decoded
    again; rows ended by an end token are padding from then on, and stay done.
    """

    MARGIN = 8

    ROW_STATE = ("widths", "stops", "done", "start", "window", "opened")

    def __init__(
        self, tokenizer, widths: int | list[int], stops: list[list[str] | None], reasoning: str
    ):
        self.tokenizer, self.reasoning = tokenizer, reasoning
        marker = THINK_CLOSE if reasoning == "think" else HARMONY_FINAL
        self.marker, self.marker_window = marker, len(marker.encode()) + self.MARGIN
        for name in self.ROW_STATE:
            setattr(self, name, [])
        if isinstance(widths, int):
            widths = [widths] * len(stops)
        self.extend(widths, stops)

    def extend(self, widths: list[int], stops: list[list[str] | None]) -> None:
        """Rows joining the batch (after the rows already there)."""
        self.widths += list(widths)
        self.stops += list(stops)
        self.done += [not s for s in stops]
        self.start += [0 if self.reasoning == "none" else None for _ in stops]
        self.window += [max(len(x.encode()) for x in s) + self.MARGIN if s else 0 for s in stops]
        self.opened += [False for _ in stops]

    def select(self, keep: list[int]) -> None:
        """Keep the state of rows ``keep`` only (the batch lost its other rows)."""
        for name in self.ROW_STATE:
            values = getattr(self, name)
            setattr(self, name, [values[j] for j in keep])

    def absorb(self, other: StopStrings, shift: int) -> None:
        """Take the rows of ``other`` after these, their columns shifted by ``shift``."""
        for name in self.ROW_STATE:
            values = getattr(other, name)
            if name == "widths":
                values = [w + shift for w in values]
            setattr(self, name, getattr(self, name) + list(values))

    def stopped(self) -> list[bool]:
        """Per row: a stop string ended it."""
        return [d and bool(s) for d, s in zip(self.done, self.stops, strict=True)]

    def shift(self, by: list[int]) -> None:
        """Row ``b`` gained ``by[b]`` padding columns on its left."""
        self.widths = [w + k for w, k in zip(self.widths, by, strict=True)]

    def _tail(self, row: list[int], n: int, skip: bool) -> str:
        return self.tokenizer.decode(row[max(0, len(row) - n) :], skip_special_tokens=skip)

    def _answer_start(self, b: int, row: list[int]) -> int | None:
        if self.start[b] is not None:
            return self.start[b]
        if self.marker in self._tail(row, self.marker_window, skip=False):
            self.start[b] = answer_start(self.tokenizer, row, self.reasoning)
            return self.start[b]
        if self.reasoning == "think":  # no answer yet; none at all if a think block opened
            if not self.opened[b]:
                self.opened[b] = THINK_OPEN in self._tail(row, self.marker_window, skip=False)
            return None if self.opened[b] else 0
        return None

    def __call__(self, input_ids: torch.Tensor, scores=None, **kwargs) -> torch.Tensor:
        ids = input_ids.tolist()
        for b, full in enumerate(ids):
            if self.done[b]:
                continue
            row = full[self.widths[b] :]
            start = self._answer_start(b, row)
            if start is None:
                continue
            text = self._tail(row[start:], self.window[b], skip=True)
            self.done[b] = _first_stop(text, self.stops[b]) >= 0
        return torch.tensor(self.stopped(), dtype=torch.bool, device=input_ids.device)


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


def _fit_context(name, sample, p, max_new_tokens, limit) -> int:
    """Prompt tokens to drop from the left so that the response fits the context."""
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
    return cut


def scored_record(sample: dict, text_in: str, p: list[int], cut: int, done: dict) -> dict:
    """The responses-file record of a sample from its finished response."""
    kind = sample["meta"]["kind"]
    final = done["final"]
    return {
        "id": sample["id"],
        "prompt": text_in,
        "prompt_ids": p,
        "response_ids": done["response_ids"],
        "response": done["response"],
        "final": final,
        "answer": extract_answer(kind, final, sample["meta"].get("choices")),
        "correct": bool(score(sample, final)),
        "n_response_tokens": len(done["response_ids"]),
        "answer_start": done["answer_start"],
        "stop_reason": done["stop_reason"],
        "n_prompt_truncated": cut,
    }


@torch.no_grad()
def generate_responses(
    model,
    tokenizer,
    samples: list[dict],
    batch_size: int = 16,
    max_new_tokens: int = 16,
    name: str = "model",
    reasoning: str = "none",
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
    separate sandboxed process, never in this one.

    Returns
    -------
    One record per sample: ``id``, ``prompt`` (the exact text the model was given, chat
    template included), ``prompt_ids``, ``response_ids``, ``response`` (decoded text,
    special tokens skipped), ``final`` (the final answer's text), ``answer`` (extracted),
    ``correct``, ``n_response_tokens``, ``answer_start``, ``stop_reason``,
    ``n_prompt_truncated`` (prompt tokens dropped from the left to fit the context;
    ``prompt_ids`` are those the model saw).
    """
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
        cut = _fit_context(name, sample, p, max_new_tokens, limit)
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
