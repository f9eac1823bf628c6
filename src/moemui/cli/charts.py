"""The chart commands: draw a chart (:data:`moemui.charts.CHARTS`) into its files, and
write the Vega script the chart pages inline."""

from __future__ import annotations

import argparse

from moemui.cli.args import THRESHOLD


def cmd_chart(args: argparse.Namespace) -> None:
    from moemui.steps.charts import draw_chart

    paths = {"html": args.html, "svg": args.svg, "png": args.png, "vl.json": args.spec}
    draw_chart(args.name, args.tables, paths, args.variant, args.threshold, args.bundle)


def cmd_vega_bundle(args: argparse.Namespace) -> None:
    from moemui.steps.charts import write_vega_bundle

    write_vega_bundle(args.out)


def register(sub) -> None:
    """Add the chart commands to the subparsers ``sub``."""
    p = sub.add_parser("chart", help="draw a chart as HTML, SVG, PNG and Vega-Lite JSON")
    p.add_argument("name", help="the chart (see moemui.charts.CHARTS)")
    p.add_argument("tables", nargs="+", help="its tables, in order")
    p.add_argument("--variant", default="gate", help="the variant shown")
    p.add_argument("--threshold", type=THRESHOLD, default=0.001, help="the threshold shown")
    p.add_argument(
        "--bundle",
        default=None,
        help="the Vega script from `moemui vega-bundle` the page inlines (default: built now)",
    )
    p.add_argument(
        "--html", default=None, help="interactive page, Vega inlined (default: not written)"
    )
    p.add_argument("--svg", default=None, help="static SVG (default: not written)")
    p.add_argument("--png", default=None, help="static PNG (default: not written)")
    p.add_argument("--spec", default=None, help="the Vega-Lite JSON (default: not written)")
    p.set_defaults(func=cmd_chart)

    p = sub.add_parser("vega-bundle", help="write the Vega script the chart pages inline")
    p.add_argument("--out", required=True, help="the script to write (.js)")
    p.set_defaults(func=cmd_vega_bundle)
