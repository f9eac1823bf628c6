"""The data-diversity chart (docs/method.md §6.4): MUI against the number of samples."""

from __future__ import annotations

import altair as alt
import pandas as pd

from moemui.charts.common import focus_rows, subtitle

# --------------------------------------------------------------------------------------
# docs/method.md §6.4: data diversity; ablation
# --------------------------------------------------------------------------------------


def diversity_chart(table: pd.DataFrame, variant: str, threshold: float) -> alt.FacetChart:
    """Mean MUI of random subsets against their size per task and for the mix of tasks,
    with the min-max band over the draws; one panel per model."""
    data = focus_rows(table, variant, threshold, "diversity")
    base = alt.Chart(data).encode(
        x=alt.X("n_samples:Q", scale=alt.Scale(type="log", base=2), title="samples"),
        color=alt.Color("task:N", title="task"),
    )
    band = base.mark_area(opacity=0.18).encode(
        y=alt.Y("mui_min:Q", axis=alt.Axis(format="%")), y2="mui_max:Q"
    )
    line = base.mark_line(point=True).encode(
        y=alt.Y("mui_mean:Q", title="MUI (mean of draws)", axis=alt.Axis(format="%")),
        tooltip=[
            "model:N",
            "task:N",
            "n_samples:Q",
            "draws:Q",
            alt.Tooltip("mui_mean:Q", format=".4%"),
            alt.Tooltip("mui_std:Q", format=".4%"),
            alt.Tooltip("mui_min:Q", format=".4%"),
            alt.Tooltip("mui_max:Q", format=".4%"),
        ],
    )
    models = list(dict.fromkeys(data["model"]))
    return (
        alt.layer(band, line)
        .properties(width=170, height=130)
        .facet(facet=alt.Facet("model:N", title=None, sort=models), columns=5)
        .properties(
            title=alt.Title(
                "Data diversity: MUI against the number of samples",
                subtitle=subtitle(variant, threshold)
                + "; (mix): equal shares of every task; band: min-max over draws",
            )
        )
    )
