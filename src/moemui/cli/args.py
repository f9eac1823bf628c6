"""The argument types, shared flags and help layout of the ``moemui`` commands.

The bounds are the config's (:mod:`moemui.limits`); a flag's default that is a config
setting is the schema's (:func:`moemui.defaults.default`). Every option's help ends
with its default (:class:`HelpFormatter`), and every command's ``--help`` starts with
what it does (:class:`Commands`).
"""

from __future__ import annotations

import argparse
import json
import re
import textwrap

from moemui.defaults import default
from moemui.errors import MoemuiError
from moemui.limits import MAX_BATCH, MAX_NEW_TOKENS, MAX_SAMPLES, MAX_SEED, MAX_SHARDS


def shown_default(action: argparse.Action) -> str | None:
    """An option's default as it would be typed on the command line, or None where there
    is none to show: a required option, a positional, an on/off flag (``store_true``),
    a None default (whose meaning the help states).

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> shown_default(p.add_argument("--seeds", type=int, nargs="+", default=[0, 1]))
    '0 1'
    >>> shown_default(p.add_argument("--variants", nargs="+", default=[["gate", "glu"]]))
    'gate,glu'
    >>> shown_default(p.add_argument("--kwargs", default={"a": 1}))
    '{"a": 1}'
    >>> shown_default(p.add_argument("--json", action="store_true")) is None
    True
    """
    value = action.default
    if action.required or not action.option_strings or value is None or value is argparse.SUPPRESS:
        return None
    if isinstance(action, argparse.BooleanOptionalAction):
        return action.option_strings[0] if value else f"--no-{action.option_strings[0][2:]}"
    if action.nargs == 0:  # store_true, store_false, store_const, count, help, version
        return None
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        items = [",".join(map(str, v)) if isinstance(v, list | tuple) else str(v) for v in value]
        return " ".join(items) if items else "none"
    return str(value)


class HelpFormatter(argparse.HelpFormatter):
    """argparse's layout, every option's help ending with ``(default: ...)``
    (:func:`shown_default`) unless it already says its default; lines are not broken at
    hyphens."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        # never inside a flag or a name: "--no-batch-invariant", "lm-eval:PATH"
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if isinstance(action, argparse.BooleanOptionalAction):  # its own, "True" (3.11)
            text = text.removesuffix(" (default: %(default)s)")
        shown = shown_default(action)
        if shown is None or "%(default)" in text or "(default" in text:
            return text
        return f"{text} (default: {shown.replace('%', '%%')})"


class Commands:
    """The subcommands of ``moemui`` (an ``add_subparsers`` result): each command's
    ``--help`` opens with its one-line help and lists its options' defaults."""

    def __init__(self, subparsers):
        self._subparsers = subparsers

    def add_parser(self, name: str, *, help: str, **kwargs) -> argparse.ArgumentParser:
        kwargs.setdefault("description", help)
        kwargs.setdefault("formatter_class", HelpFormatter)
        return self._subparsers.add_parser(name, help=help, **kwargs)


def int_in(lo: int, hi: int):
    """An argparse type: a whole number of ASCII digits in ``lo..hi`` (the config's
    bounds, :mod:`moemui.limits`); "64.0", "1e3" and "²" are usage errors."""

    def parse(text: str) -> int:
        if not re.fullmatch(r"[+-]?[0-9]+", text.strip()):
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
        value = int(text)
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is outside {lo}..{hi}")
        return value

    parse.__name__ = "integer"
    return parse


def fraction(lo_open: bool = True):
    """An argparse type: a finite number in (0, 1) (a threshold), or [0, 1) (a rho)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not (0 < value < 1 if lo_open else 0 <= value < 1):
            raise argparse.ArgumentTypeError(f"{text} is outside {'(0' if lo_open else '[0'}, 1)")
        return value

    parse.__name__ = "fraction"
    return parse


THRESHOLD = fraction()
RHO = fraction(lo_open=False)
BATCH = int_in(1, MAX_BATCH)
NEW_TOKENS = int_in(1, MAX_NEW_TOKENS)
SAMPLES = int_in(1, MAX_SAMPLES)
SEED = int_in(0, MAX_SEED)


def shard(text: str) -> tuple[int, int]:
    """An argparse type: a shard ``I/N`` (or ``I-of-N``), 1 <= I <= N <= MAX_SHARDS."""
    from moemui.shards import parse_shard

    try:
        index, count = parse_shard(text)
    except MoemuiError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if count > MAX_SHARDS:
        raise argparse.ArgumentTypeError(f"{count} shards: at most {MAX_SHARDS}")
    return index, count


def csv_list(text: str) -> list[str]:
    """An argparse type: a comma-separated list (empty items dropped)."""
    return [part for part in text.split(",") if part]


def json_object(text: str) -> dict:
    """A flag's JSON object (argparse reports anything else as a usage error)."""
    try:
        value = json.loads(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not JSON ({err}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"not a JSON object: {text!r}")
    return value


def add_shard_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--shard",
        type=shard,
        default=None,
        metavar="I/N",
        help="only shard I of N: a contiguous range of the task's samples (default: all)",
    )


def add_task_file_arg(p: argparse.ArgumentParser, text: str | None = None) -> None:
    """``--task-file``, the task's JSONL file (required); ``--tasks``, its old name, is
    still read but not shown."""
    either = p.add_mutually_exclusive_group(required=True)
    either.add_argument("--task-file", dest="task_file", help=text)
    either.add_argument("--tasks", dest="task_file", help=argparse.SUPPRESS)


#: What a model source may be (:func:`moemui.sources.parse_source` decides).
SOURCE_HELP = (
    "builtin:<recipe>, trained:<recipe>[@<step>], a model directory (local:<path>, a path "
    "starting with / ./ ../ ~, or a relative path to a directory that exists) or a Hub id "
    "<org>/<name>"
)
REVISION_HELP = (
    f"Hub revision: branch, tag or commit (default: {default('models.revision')}); "
    "ignored for other sources"
)


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-id", required=True, help="the model's id (slug) in the config")
    p.add_argument("--source", required=True, help=SOURCE_HELP)
    p.add_argument("--revision", default=None, help=REVISION_HELP)
    p.add_argument(
        "--dtype",
        default=default("models.dtype"),
        choices=["float32", "bfloat16", "float16"],
        help="the weights' dtype (the scores are float32 whatever it is)",
    )
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, ...")
    p.add_argument(
        "--device-map",
        default=default("models.device_map"),
        help="spread the model over the visible GPUs (auto, balanced, sequential, ...) "
        "(default: the whole model on --device)",
    )
    p.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="let transformers run the model repository's own code",
    )


def add_generation_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--reasoning",
        choices=["none", "think", "harmony"],
        default=default("models.reasoning"),
        help="where the final answer is: the whole response (none), after </think> "
        "(think), GPT-OSS's final channel (harmony)",
    )
    p.add_argument(
        "--chat-template-kwargs",
        type=json_object,
        default=default("models.chat_template_kwargs"),
        help="variables for the chat template, as JSON (e.g. '{\"enable_thinking\": false}')",
    )


def loading(args: argparse.Namespace) -> dict:
    """The model-loading options of :func:`add_model_args`, as keyword arguments."""
    return {
        "revision": args.revision,
        "dtype": args.dtype,
        "device": args.device,
        "trust_remote_code": args.trust_remote_code,
        "device_map": args.device_map,
    }
