"""Errors the package raises for bad input; the CLI turns them into one ``ERROR:`` line."""

from __future__ import annotations


class MoemuiError(Exception):
    """A known failure caused by the user's input (config, model, task, file).

    The message names the offending thing. The CLI prints it as ``ERROR: <message>``
    and exits with status 1 (2 is for usage errors, argparse's).
    """
