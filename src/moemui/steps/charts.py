"""The chart steps: draw a chart from its tables into its files, and write the Vega
script the chart pages inline."""

from __future__ import annotations

import os
from pathlib import Path

from moemui.charts import make_chart, save_chart, vega_bundle
from moemui.io import atomic_write_text
from moemui.steps.tables import read_typed


def draw_chart(
    name: str,
    tables: list[str | os.PathLike],
    paths: dict[str, str | os.PathLike | None],
    variant: str | None = None,
    threshold: float | None = None,
    bundle: str | os.PathLike | None = None,
) -> None:
    """Draw chart ``name`` (:data:`moemui.charts.CHARTS`) from its table files, at the
    focus ``variant`` and ``threshold`` where it shows them, into ``paths`` (format ->
    file; a None file is not written); ``bundle``: the script of
    :func:`write_vega_bundle` the HTML page inlines (built when None)."""
    chart = make_chart(name, [read_typed(path) for path in tables], variant, threshold)
    script = Path(bundle).read_text(encoding="utf-8") if bundle else None
    save_chart(chart, {fmt: path for fmt, path in paths.items() if path}, script)


def write_vega_bundle(out: str | os.PathLike) -> None:
    """Write Vega, Vega-Lite and Vega-Embed as one script (:func:`moemui.charts.vega_bundle`)."""
    atomic_write_text(out, vega_bundle())
