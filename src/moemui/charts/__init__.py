"""Charts of the findings: pure ``pd.DataFrame -> alt.Chart`` builders, one per chart,
in a module per finding; :mod:`~moemui.charts.registry` names them and what they read;
:mod:`~moemui.charts.render` writes a chart as interactive HTML, SVG, PNG and its
Vega-Lite JSON.

Every chart draws one analysis method, the "focus" ``variant`` and ``threshold``
(``analyses.variant`` / ``analyses.threshold`` in the config), except the robustness
chart, which compares thresholds, and the top-experts and ablation charts, which show
no focus method.

This package's top level imports no plotting library (the workflow reads the registry
when it parses the rules): the builders are imported from their modules, e.g.
``from moemui.charts.experts import key_experts_chart``.
"""

from __future__ import annotations

from moemui.charts.registry import CHARTS, Chart, chart_of, make_chart
from moemui.charts.render import FORMATS, chart_html, save_chart, vega_bundle

__all__ = [
    "CHARTS",
    "FORMATS",
    "Chart",
    "chart_html",
    "chart_of",
    "make_chart",
    "save_chart",
    "vega_bundle",
]
