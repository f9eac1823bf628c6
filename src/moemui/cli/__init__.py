"""The ``moemui`` command line: one subcommand per workflow step.

Known failures (bad config, model, task or file) print one ``ERROR: ...`` line and
exit with status 2; anything else is a bug and shows its traceback.

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
import sys

from moemui import __version__
from moemui.cli import analyses, capture, charts, data, metrics, tools
from moemui.errors import MoemuiError

#: The command groups, in the order of the help.
GROUPS = (data, capture, metrics, analyses, charts, tools)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="moemui", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"moemui {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
        return 2
    except OSError as err:  # disk full, read-only or unwritable results, ...
        where = err.filename or "?"
        print(f"ERROR: {where}: {err.strerror or err}; nothing was published", file=sys.stderr)
        return 2
    return 0
