"""The charts, one entry each: what tables a chart reads, whether it shows the focus
method, its label in the report, and the function that draws it.

The workflow reads this registry to write one generic chart rule
(``workflow/rules/charts.smk``), so it imports no plotting library: a chart's builder
is named here and imported when the chart is drawn (:func:`make_chart`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from moemui.errors import MoemuiError

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Chart:
    """One chart of the findings.

    Attributes
    ----------
    tables
        The names of the tables it reads (``results/tables/<name>.csv``), in the order
        its builder takes them.
    builder
        ``module:function`` of its ``pd.DataFrame -> alt.Chart`` builder.
    label
        Its label in the report (``labels={"chart": label}``); its caption is its block
        of ``workflow/report/chart.rst``.
    variant, threshold
        Whether it draws one analysis method, the focus ``variant`` and ``threshold``
        (``analyses.variant`` / ``analyses.threshold``), passed after the tables.
    """

    tables: tuple[str, ...]
    builder: str
    label: str
    variant: bool = True
    threshold: bool = True

    def build(self) -> Callable:
        """The builder function (its module imports altair)."""
        module, _, name = self.builder.partition(":")
        return getattr(importlib.import_module(module), name)


#: chart name -> its entry, in the order the findings are told
CHARTS: dict[str, Chart] = {
    "mui_performance": Chart(
        ("mui_performance", "mui_performance_fits"),
        "moemui.charts.performance:mui_performance_chart",
        "MUI vs performance",
    ),
    "trajectory": Chart(
        ("trajectory",),
        "moemui.charts.performance:trajectory_chart",
        "training trajectories",
    ),
    "key_experts": Chart(
        ("key_experts",),
        "moemui.charts.experts:key_experts_chart",
        "key-expert proportions",
    ),
    "top_experts": Chart(
        ("top_experts",),
        "moemui.charts.experts:top_experts_chart",
        "top-10 experts by activation rate",
        variant=False,
        threshold=False,
    ),
    "top_key_experts": Chart(
        ("top_key_experts",),
        "moemui.charts.experts:top_key_experts_chart",
        "top-10 experts by key rate",
    ),
    "threshold_robustness": Chart(
        ("mui", "robustness"),
        "moemui.charts.robustness:threshold_robustness_chart",
        "threshold robustness",
        threshold=False,
    ),
    "diversity": Chart(
        ("diversity",),
        "moemui.charts.diversity:diversity_chart",
        "data diversity",
    ),
    "ablation": Chart(
        ("ablation",),
        "moemui.charts.ablation:ablation_chart",
        "ablation",
        variant=False,
        threshold=False,
    ),
}


def chart_of(name: str) -> Chart:
    """The registry entry of chart ``name``; an unknown name is an error listing them."""
    try:
        return CHARTS[name]
    except KeyError:
        raise MoemuiError(f"unknown chart {name!r}; known: {', '.join(CHARTS)}") from None


def make_chart(
    name: str,
    tables: list[pd.DataFrame],
    variant: str | None = None,
    threshold: float | None = None,
):
    """Build chart ``name`` from its tables (in the order of its :data:`CHARTS` entry),
    at the focus ``variant`` and ``threshold`` where it shows them."""
    chart = chart_of(name)
    if len(tables) != len(chart.tables):
        raise MoemuiError(f"chart {name!r} takes the tables {', '.join(chart.tables)}")
    args: list = list(tables)
    if chart.variant:
        args.append(variant)
    if chart.threshold:
        args.append(threshold)
    return chart.build()(*args)
