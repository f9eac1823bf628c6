"""Batched greedy generation: the responses whose internals the capture scores.

A response ends where the model ends it: at the first of the model's end tokens
(:func:`end_token_ids`), at the first of the task's stop strings (checked inside the
generation loop, per sequence), or after ``max_new_tokens`` tokens; the record says which
(``stop_reason``). For models that reason before they answer (``reasoning``: ``think``
or ``harmony``), the final answer is found in the response (:func:`answer_start`), and
only it is scored and searched for stop strings.

Modules: :mod:`~moemui.generate.prompts` (what the model is given),
:mod:`~moemui.generate.endings` (where a response ends, and what of it is the final
answer), :mod:`~moemui.generate.records` (a finished response's scored record) and
:mod:`~moemui.generate.greedy` (:func:`generate_responses`: the batched generation).
Their public names are importable from here.
"""

from __future__ import annotations

from moemui.generate.endings import (
    HARMONY_FINAL,
    REASONING,
    STOP_REASONS,
    THINK_CLOSE,
    THINK_OPEN,
    StopStrings,
    answer_start,
    end_token_ids,
    finish_response,
    first_stop,
)
from moemui.generate.greedy import SEGMENT, generate_responses
from moemui.generate.prompts import fit_context, prompt_ids, render_prompt
from moemui.generate.records import scored_record

__all__ = [
    "HARMONY_FINAL",
    "REASONING",
    "SEGMENT",
    "STOP_REASONS",
    "THINK_CLOSE",
    "THINK_OPEN",
    "StopStrings",
    "answer_start",
    "end_token_ids",
    "finish_response",
    "first_stop",
    "fit_context",
    "generate_responses",
    "prompt_ids",
    "render_prompt",
    "scored_record",
]
