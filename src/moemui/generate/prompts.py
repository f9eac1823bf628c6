"""The prompts a model is given: a sample's prompt, in the tokenizer's chat template
where the sample asks for one, cut from the left to fit the model's context."""

from __future__ import annotations

import logging

from moemui.errors import MoemuiError
from moemui.io import replace_surrogates

log = logging.getLogger(__name__)


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


def fit_context(name, sample, p, max_new_tokens, limit) -> int:
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
