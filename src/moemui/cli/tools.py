"""The tools that are no workflow step: a model source's MoE geometry, a Hub model's
revisions, and the plan of a config (samples, store bytes, weight memory)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from moemui.cli.args import REVISION_HELP, SOURCE_HELP


def cmd_inspect(args: argparse.Namespace) -> None:
    from moemui.adapters import adapter_for
    from moemui.sources import model_skeleton

    # from the config alone, on the meta device: no weights read, nothing run; what the
    # source is (builtin, trained, local or Hub) is moemui.sources.parse_source's call
    model = model_skeleton(args.source, args.source, args.revision)
    info = adapter_for(model, args.source).geometry(model, args.source).as_dict()
    if args.json:
        print(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        print(f"{key:>20}: {value}")


def cmd_revisions(args: argparse.Namespace) -> None:
    from moemui.sources import list_revisions

    for name in list_revisions(args.repo):
        print(name)


def cmd_plan(args: argparse.Namespace) -> None:
    from moemui.plan import format_plan, plan_rows, read_config

    config = read_config(args.configfile, Path(args.default) if args.default else None)
    results = Path(args.results or config["results"])
    print(format_plan(plan_rows(config, results), config["capture"]["keep"]))


def register(sub) -> None:
    """Add the tool commands to the subparsers ``sub``."""
    p = sub.add_parser("inspect", help="print the MoE geometry of a model source")
    p.add_argument("source", help=SOURCE_HELP)
    p.add_argument("--revision", default=None, help=REVISION_HELP)
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("revisions", help="list a Hub model's revisions (needs the network)")
    p.add_argument("repo", help="a Hub id <org>/<name>")
    p.set_defaults(func=cmd_revisions)

    p = sub.add_parser(
        "plan",
        help="print per (model, task) the samples, store bytes and weight memory of a config",
    )
    p.add_argument(
        "--configfile",
        nargs="+",
        default=[],
        help="config files merged on top of --default, as snakemake --configfile does "
        "(default: none)",
    )
    p.add_argument(
        "--default",
        default="config/config.yaml",
        help="the workflow's own config, read first when it exists (default: %(default)s)",
    )
    p.add_argument(
        "--results",
        default=None,
        help="the results directory whose materialised task files are counted "
        "(default: the config's `results`, results unless set)",
    )
    p.set_defaults(func=cmd_plan)
