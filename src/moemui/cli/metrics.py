"""The metric commands: a group's key neurons and MUI, the accuracy table, the
concatenation of tables and the training trajectories."""

from __future__ import annotations

import argparse
import json

from moemui.cli.args import THRESHOLD


def cmd_keys(args: argparse.Namespace) -> None:
    from moemui.steps.metrics import derive_keys

    derive_keys(args.group, args.thresholds, args.out)


def cmd_mui(args: argparse.Namespace) -> None:
    from moemui.steps.metrics import mui_cell

    mui_cell(args.group, args.thresholds, args.out, correct_only=args.correct_only)


def cmd_performance(args: argparse.Namespace) -> None:
    from moemui.steps.responses import performance, responses_cells

    performance(responses_cells(args.responses, args.model_ids, args.task_ids), args.out)


def cmd_concat(args: argparse.Namespace) -> None:
    from moemui.steps.tables import concat_tables

    concat_tables(args.inputs, args.out)


def cmd_trajectory(args: argparse.Namespace) -> None:
    from moemui.steps.metrics import trajectory

    trajectory(args.mui, args.performance, json.loads(args.series), args.out)


_THRESHOLDS = "key-neuron thresholds, fractions in (0, 1)"


def register(sub) -> None:
    """Add the metric commands to the subparsers ``sub``."""
    p = sub.add_parser(
        "keys", help="read a store group once and write its key neurons at thresholds"
    )
    p.add_argument("--group", required=True, help="the group directory: STORE/{model}/{task}")
    p.add_argument("--thresholds", type=THRESHOLD, nargs="+", required=True, help=_THRESHOLDS)
    p.add_argument("--out", required=True, help="the key-neuron file to write (.npz)")
    p.set_defaults(func=cmd_keys)

    p = sub.add_parser("mui", help="MUI of one store group at thresholds")
    p.add_argument(
        "--group",
        required=True,
        help="the group directory STORE/{model}/{task} or its key-neuron file (.npz)",
    )
    p.add_argument("--thresholds", type=THRESHOLD, nargs="+", required=True, help=_THRESHOLDS)
    p.add_argument(
        "--correct-only",
        action="store_true",
        help="also MUI over the correctly answered samples (extra columns)",
    )
    p.add_argument("--out", required=True, help="the cell's MUI table to write (CSV)")
    p.set_defaults(func=cmd_mui)

    p = sub.add_parser("performance", help="accuracy per model and task")
    p.add_argument("responses", nargs="+", help="responses files .../{model}/{task}.jsonl")
    p.add_argument(
        "--model-ids",
        nargs="+",
        default=None,
        help="each file's model id (default: the name of its directory)",
    )
    p.add_argument(
        "--task-ids",
        nargs="+",
        default=None,
        help="each file's task id (default: its name without .jsonl)",
    )
    p.add_argument("--out", required=True, help="the accuracy table to write (CSV)")
    p.set_defaults(func=cmd_performance)

    p = sub.add_parser("concat", help="concatenate CSV tables")
    p.add_argument("inputs", nargs="+", help="CSV tables with the same columns")
    p.add_argument("--out", required=True, help="their rows, in order, as one table (CSV)")
    p.set_defaults(func=cmd_concat)

    p = sub.add_parser("trajectory", help="MUI and performance along checkpoint series")
    p.add_argument("--mui", required=True, help="the MUI table (moemui mui, concatenated)")
    p.add_argument("--performance", required=True, help="the accuracy table (moemui performance)")
    p.add_argument("--series", required=True, help="JSON: [{id, checkpoints: [{model, step}]}]")
    p.add_argument("--out", required=True, help="the trajectory table to write (CSV)")
    p.set_defaults(func=cmd_trajectory)
