"""Chart files: :func:`save_chart` writes a chart as interactive HTML (Vega inlined, so
it opens offline), static SVG and PNG (vl-convert, no browser) and its Vega-Lite JSON.
The HTML page keeps its Vega view as ``window.vegaView`` once drawn (for the browser's
console, and tests/test_chart_browser.py)."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from moemui.errors import MoemuiError
from moemui.io import atomic_write_text

if TYPE_CHECKING:
    import altair as alt

#: The files a chart is written as.
FORMATS = ("html", "svg", "png", "vl.json")

HTML = """<!DOCTYPE html>
<html>
<head>
<meta charset="UTF-8">
<title>{title}</title>
<script type="text/javascript">{bundle}</script>
</head>
<body>
<div id="vega-chart"></div>
<script type="text/javascript">
vegaEmbed("#vega-chart", {spec}, {{"renderer": "svg"}})
  .then(function (result) {{ window.vegaView = result.view; }})
  .catch(console.error);
</script>
</body>
</html>
"""


def vega_bundle() -> str:
    """Vega, Vega-Lite and Vega-Embed as one script (globals ``vega``, ``vegaEmbed``)."""
    import vl_convert as vlc

    return vlc.javascript_bundle()


def chart_html(spec: dict, bundle: str, title: str = "moemui chart") -> str:
    """A self-contained HTML page drawing ``spec`` with the inlined ``bundle``."""
    text = json.dumps(spec, sort_keys=True).replace("</", "<\\/")
    return HTML.format(title=html.escape(title), bundle=bundle, spec=text)


def save_chart(
    chart: alt.TopLevelMixin,
    paths: dict[str, str | os.PathLike],
    bundle: str | None = None,
) -> None:
    """Write the chart to ``paths["html"]`` (Vega inlined: opens offline),
    ``paths["svg"]``, ``paths["png"]`` and ``paths["vl.json"]`` (any subset).
    ``bundle``: the script of :func:`vega_bundle` (built when None and HTML is asked)."""
    import vl_convert as vlc

    unknown = set(paths) - set(FORMATS)
    if unknown:
        raise MoemuiError(f"unknown chart formats {sorted(unknown)}; known: {', '.join(FORMATS)}")
    spec = chart.to_dict()
    if "vl.json" in paths:
        atomic_write_text(paths["vl.json"], json.dumps(spec, indent=1, sort_keys=True) + "\n")
    if "svg" in paths:
        atomic_write_text(paths["svg"], vlc.vegalite_to_svg(spec))
    if "html" in paths:
        title = spec.get("title", {})
        title = title.get("text", "") if isinstance(title, dict) else str(title or "")
        html_text = chart_html(spec, bundle or vega_bundle(), title or "moemui chart")
        atomic_write_text(paths["html"], html_text)
    if "png" in paths:
        png = Path(paths["png"])
        png.parent.mkdir(parents=True, exist_ok=True)
        tmp = png.with_name(f".{png.name}.tmp")
        tmp.write_bytes(vlc.vegalite_to_png(spec, scale=2))
        os.replace(tmp, png)
