"""Where a response ends: at the first of the model's end tokens
(:func:`end_token_ids`), at the first of the task's stop strings in the final answer
(:class:`StopStrings`, checked inside the generation loop, per sequence), or after
``max_new_tokens`` tokens (:func:`finish_response` says which). For models that reason
before they answer, the final answer is found in the response (:func:`answer_start`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from transformers import StoppingCriteria

from moemui.defaults import default
from moemui.errors import MoemuiError

STOP_REASONS: tuple[str, ...] = ("end", "stop", "length")
REASONING: tuple[str, ...] = ("none", "think", "harmony")
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
HARMONY_FINAL = "<|channel|>final<|message|>"


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


def answer_start(tokenizer, ids: list[int], reasoning: str | None = None) -> int | None:
    """Where the final answer begins in a response's token ids; None if it never began.

    ``reasoning`` (default: the config's ``models.reasoning``) ``none``: the whole
    response is the answer (0). ``think``: the answer follows the first ``</think>``; a
    response that opens ``<think>`` and never closes it has no answer; a response with
    neither tag (thinking switched off in the template) is all answer. ``harmony``
    (GPT-OSS): the answer is the final channel, after ``<|channel|>final<|message|>``; a
    response without one has no answer. Markers are found in the text decoded with
    special tokens kept; the index is the first token after the one that completes the
    marker.

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
    reasoning = default("models.reasoning") if reasoning is None else reasoning
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


def first_stop(text: str, stop: list[str]) -> int:
    """The position of the earliest stop string in ``text``, else -1."""
    hits = [text.find(s) for s in stop if s and s in text]
    return min(hits) if hits else -1


def finish_response(
    tokenizer,
    row: list[int],
    ends: list[int] | set[int],
    stop: list[str] | None = None,
    reasoning: str | None = None,
) -> dict:
    """A generated row's kept tokens, texts and why it stopped.

    The row is cut after its first end token (kept: the position that predicts it is
    part of the response), then, within the final answer (:func:`answer_start`), after
    the token that completes its first stop string (the texts end before the stop
    string). Tokens after either are padding of a finished row. ``reasoning``: as for
    :func:`answer_start` (default: the config's ``models.reasoning``).

    Returns
    -------
    ``response_ids``, ``response`` (the whole text, special tokens skipped), ``final``
    (the final answer's text; empty when the model never answered), ``answer_start``
    (index in ``response_ids`` of the answer's first token; their length when there is
    none) and ``stop_reason`` (``end``, ``stop`` or ``length``).
    """
    reasoning = default("models.reasoning") if reasoning is None else reasoning
    ends = set(ends)
    end_at = next((i for i, t in enumerate(row) if t in ends), None)
    ids = list(row[: end_at + 1]) if end_at is not None else list(row)
    reason = "end" if end_at is not None else "length"
    start = answer_start(tokenizer, ids, reasoning)
    final = None
    if stop and start is not None:
        cut = _shortest_prefix(tokenizer, ids, start, lambda t: first_stop(t, stop) >= 0)
        if cut >= 0:
            ids, reason = ids[:cut], "stop"
            part = tokenizer.decode(ids[start:], skip_special_tokens=True)
            final = part[: first_stop(part, stop)]
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
            self.done[b] = first_stop(text, self.stops[b]) >= 0
        return torch.tensor(self.stopped(), dtype=torch.bool, device=input_ids.device)
