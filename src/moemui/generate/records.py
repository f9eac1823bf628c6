"""The record of a finished response: its texts, the answer extracted from its final
answer and whether it is correct (:func:`moemui.tasks.score`)."""

from __future__ import annotations

from moemui.tasks import extract_answer, score


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
