"""Responses made elsewhere (vLLM, lm-evaluation-harness), imported as the responses file
that generation writes, so that capture and scoring run on them as usual.

Formats (the config's ``models[].responses``, ``<format>:<path>`` per task):

``jsonl``
    One JSON object per line: ``id`` (a sample id of the task) and ``response`` (the
    generated text), optionally with vLLM's ``finish_reason`` and ``stop_reason``, or
    ``end``. Every sample of the task has exactly one line.
``lm-eval``
    lm-evaluation-harness's ``--log_samples`` file of the task: ``doc_id`` (the sample's
    position in the task file: the task must list the same documents in the same order,
    i.e. the same split without ``n``) and ``resps`` (the raw generation,
    ``resps[0][0]``).

The prompt is built as for generation (chat template and its variables included). The
response text is tokenised on its own, without special tokens, as the model's tokenizer
does; a model that generated a non-canonical tokenisation of the same text is read with
the canonical one. The end of the response follows the record: an end token (``end``
true, or vLLM's ``finish_reason: "stop"`` with ``stop_reason`` null, or an integer
``stop_reason``: that token) is appended, as generation keeps the end token it stopped
at; a string ``stop_reason`` (a stop string vLLM cut off) is appended to the text before
tokenising, so that the tokens end with the one completing it, as in generation. Then the
task's stop strings and the model's ``reasoning`` apply as for generated responses
(:func:`moemui.generate.finish_response`). ``stop_reason`` is ``end``, ``stop``,
``length`` (vLLM's ``finish_reason: "length"``) or ``unknown`` (the source does not say).

Lines are split on ``"\\n"`` only (:func:`moemui.io.split_json_lines`), so U+2028,
U+0085 and the like stay inside their text. A lone surrogate in a response or stop
string (``"\\ud800"`` in the file) is replaced by U+FFFD before tokenising, with a
warning giving the count, as for prompts (:func:`moemui.generate.render_prompt`): a
tokenizer cannot take it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from types import SimpleNamespace

from moemui.defaults import default
from moemui.errors import MoemuiError
from moemui.io import replace_surrogates, split_json_lines

# torch and transformers load only in import_responses: the workflow reads
# import_paths when it parses the Snakefile.

log = logging.getLogger(__name__)

FORMATS: tuple[str, ...] = ("jsonl", "lm-eval")


def parse_import(spec: str) -> tuple[str, Path]:
    """``<format>:<path>`` -> (format, path)."""
    fmt, sep, path = spec.partition(":")
    if not sep or fmt not in FORMATS or not path:
        raise MoemuiError(
            f"responses {spec!r}: expected <format>:<path> with format one of {', '.join(FORMATS)}"
        )
    return fmt, Path(path).expanduser()


def _lines(path: Path):
    """(line number, parsed object) of a JSON-lines file; blank lines skipped."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise MoemuiError(f"responses file {path}: {err.strerror}") from None
    for lineno, line in enumerate(split_json_lines(data), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as err:
            raise MoemuiError(f"{path}, line {lineno}: not JSON ({err})") from None
        if not isinstance(obj, dict):
            raise MoemuiError(f"{path}, line {lineno}: expected a JSON object")
        yield lineno, obj


def read_imported(spec: str, samples: list[dict]) -> dict[str, dict]:
    """Every sample's imported response: sample id -> ``{"text", "end", "stop", "length"}``
    (``end``: True or the end token's id; ``stop``: the stop string cut off; ``length``:
    the source says the budget ended it).

    Raises
    ------
    MoemuiError
        A line that is not a JSON object of the format, naming file and line; a sample
        id (or doc_id) the task does not have, or one given twice; a sample without a
        response.
    """
    fmt, path = parse_import(spec)
    ids = [s["id"] for s in samples]
    known = set(ids)
    out: dict[str, dict] = {}
    where: dict[str, int] = {}
    for lineno, obj in _lines(path):
        at = f"{path}, line {lineno}"
        if fmt == "jsonl":
            sid, text = obj.get("id"), obj.get("response")
            if not isinstance(sid, str) or not isinstance(text, str):
                raise MoemuiError(f'{at}: expected "id" and "response" strings')
            if sid not in known:
                raise MoemuiError(f"{at}: sample id {sid!r} is not in the task")
            finish, reason = obj.get("finish_reason"), obj.get("stop_reason")
            end = obj.get("end")
            if end is None and finish == "stop" and not isinstance(reason, str):
                end = True if reason is None else int(reason)
            entry = {
                "text": text,
                "end": end or None,
                "stop": reason if isinstance(reason, str) else None,
                "length": finish == "length",
            }
        else:
            doc, resps = obj.get("doc_id"), obj.get("resps")
            if not isinstance(doc, int) or isinstance(doc, bool):
                raise MoemuiError(f'{at}: expected an integer "doc_id"')
            if not 0 <= doc < len(ids):
                raise MoemuiError(f"{at}: doc_id {doc} is outside the task's {len(ids)} samples")
            try:
                text = resps[0][0]
            except (TypeError, IndexError, KeyError):
                text = None
            if not isinstance(text, str):
                raise MoemuiError(f'{at}: expected "resps" as [[text]]')
            sid = ids[doc]
            entry = {"text": text, "end": None, "stop": None, "length": False}
        if sid in out:
            raise MoemuiError(f"{at}: a second response for sample {sid!r} (line {where[sid]})")
        out[sid], where[sid] = entry, lineno
    missing = [i for i in ids if i not in out]
    if missing:
        raise MoemuiError(
            f"{path}: no response for {len(missing)} of the task's {len(ids)} samples "
            f"(first: {missing[0]!r})"
        )
    return out


def import_responses(
    source: str,
    model_id: str,
    samples: list[dict],
    spec: str,
    revision: str | None = None,
    trust_remote_code: bool = False,
    reasoning: str | None = None,
    template_kwargs: dict | None = None,
) -> list[dict]:
    """The responses-file records of imported responses (the module docstring says
    how), in the samples' order; only the tokenizer and configs are loaded.
    ``reasoning``: None is the config's default (``models.reasoning``)."""
    from moemui.generate import end_token_ids, finish_response, render_prompt, scored_record
    from moemui.sources import load_tokenizer

    reasoning = default("models.reasoning") if reasoning is None else reasoning
    imported = read_imported(spec, samples)
    tokenizer, generation, config = load_tokenizer(source, model_id, revision, trust_remote_code)
    ends = end_token_ids(SimpleNamespace(generation_config=generation), tokenizer)
    limit = getattr(config, "max_position_embeddings", None)
    records = []
    replaced = 0
    for sample in samples:
        got = imported[sample["id"]]
        text_in, p = render_prompt(tokenizer, sample, template_kwargs)
        stop = list(sample["meta"].get("stop") or [])
        text, n = replace_surrogates(got["text"])
        replaced += n
        if got["stop"]:
            cut_at, n = replace_surrogates(got["stop"])
            replaced += n
            text += cut_at
            stop.append(cut_at)
        ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        if got["end"] is not None:
            if got["end"] is True and not ends:
                raise MoemuiError(
                    f"model {model_id!r}: sample {sample['id']!r} ended at an end token, but "
                    "the model declares none"
                )
            ids.append(ends[0] if got["end"] is True else int(got["end"]))
        cut = max(0, len(p) + len(ids) - limit) if limit else 0
        if cut >= len(p) > 0:
            raise MoemuiError(
                f"model {model_id!r}: sample {sample['id']!r}: the imported response "
                f"({len(ids)} tokens) leaves no room for the prompt in the context of {limit}"
            )
        if cut:
            log.warning("sample %r: prompt truncated from the left by %d tokens", sample["id"], cut)
        stops_at = set(ends) | ({ids[-1]} if got["end"] is not None else set())
        done = finish_response(tokenizer, ids, stops_at, stop or None, reasoning)
        if done["stop_reason"] == "length" and not got["length"]:
            done["stop_reason"] = "unknown"
        records.append(scored_record(sample, text_in, p[cut:], cut, done))
    if replaced:
        log.warning(
            "%s: %d lone surrogate(s) in the responses replaced by U+FFFD for the tokenizer",
            spec,
            replaced,
        )
    log.info("imported %d responses from %s", len(records), spec)
    return records


def import_paths(spec: str) -> list[str]:
    """The file an import reads, as a workflow input (``~`` expanded)."""
    return [os.fspath(parse_import(spec)[1])]
