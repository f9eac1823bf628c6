"""The ``moemui`` command line: one subcommand per workflow step.

Exit status: 0 when the command did its work; 1 for a known failure while working (bad
config, model, task or file: a :class:`~moemui.errors.MoemuiError`; a disk full or
read-only), printed as one ``ERROR: ...`` line; 2 for a usage error (an unknown flag, a
value out of bounds), printed by argparse with the usage. Anything else is a bug and
shows its traceback (status 1, Python's).

``moemui <command> --help`` shows what each option is and its default. Without a
terminal (a Snakemake job's log), transformers and huggingface_hub draw no progress bar
(their carriage returns would garble the log); :mod:`moemui.progress` writes whole lines.

One module per command group, each a ``register(subparsers)`` and thin ``cmd_*``
functions calling into the package (:mod:`moemui.steps` for the workflow's steps):
:mod:`~moemui.cli.data` (models, tasks, responses), :mod:`~moemui.cli.capture` (capture
and store), :mod:`~moemui.cli.metrics`, :mod:`~moemui.cli.analyses`,
:mod:`~moemui.cli.charts` and :mod:`~moemui.cli.tools`; :mod:`~moemui.cli.args` holds
the argument types and shared flags.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from moemui import __version__
from moemui.cli import analyses, capture, charts, data, metrics, tools
from moemui.cli.args import Commands, HelpFormatter
from moemui.errors import MoemuiError

#: The command groups, in the order of the help.
GROUPS = (data, capture, metrics, analyses, charts, tools)


#: Exit status of a known failure while working, and of a usage error (argparse's).
EXIT_FAILURE, EXIT_USAGE = 1, 2


def build_parser() -> argparse.ArgumentParser:
    """The ``moemui`` parser, with every command of :data:`GROUPS`."""
    parser = argparse.ArgumentParser(
        prog="moemui",
        description="The MoE Model Utilization Index (MUI): one command per workflow step.",
        formatter_class=HelpFormatter,
        epilog="moemui <command> --help: what a command does, its options and their defaults",
    )
    parser.add_argument("--version", action="version", version=f"moemui {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default: torch's own choice, the machine's cores)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    commands = Commands(sub)
    for group in GROUPS:
        group.register(commands)
    return parser


def quiet_library_bars() -> None:
    """Turn off the progress bars of transformers and huggingface_hub (the "Loading
    weights" bar) unless stderr is a terminal: in a log file their carriage returns
    pile up. ``HF_HUB_DISABLE_PROGRESS_BARS`` set by the user is kept."""
    if sys.stderr.isatty():
        return
    # both libraries read it when imported (transformers through huggingface_hub)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:  # imported already (main called in a process)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()


def main(argv: list[str] | None = None) -> int:
    """Run ``moemui ARGV``; the exit status (a usage error exits through argparse)."""
    args = build_parser().parse_args(argv)
    quiet_library_bars()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        args.func(args)
    except MoemuiError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except OSError as err:  # disk full, read-only or unwritable results, ...
        where = err.filename or "?"
        print(f"ERROR: {where}: {err.strerror or err}; nothing was published", file=sys.stderr)
        return EXIT_FAILURE
    return 0
