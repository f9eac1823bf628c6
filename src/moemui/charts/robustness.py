"""The threshold-robustness chart (docs/method.md §5): MUI of every cell at two thresholds."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from moemui.charts.common import pct
from moemui.errors import MoemuiError

# --------------------------------------------------------------------------------------
# docs/method.md §5: robustness
# --------------------------------------------------------------------------------------


def threshold_pairs(mui: pd.DataFrame, robustness: pd.DataFrame, variant: str) -> pd.DataFrame:
    """MUI of every cell at two thresholds, per threshold pair of ``variant``, with the
    pair's Pearson and Spearman correlations in its label."""
    stats = robustness[
        (robustness["analysis"] == "mui_across_cells") & (robustness["variant_a"] == variant)
    ]
    part = mui[mui["variant"] == variant]
    frames = []
    for (ta, tb), rows in stats.groupby(["threshold_a", "threshold_b"], sort=True):
        value = {r.statistic: r for r in rows.itertuples(index=False)}
        r, rho = value["pearson"], value["spearman"]

        def show(stat):
            return f"{stat.value:.4f}" if np.isfinite(stat.value) else "undefined"

        label = f"{pct(ta)} vs {pct(tb)}: r = {show(r)}, rho = {show(rho)} ({r.n_cells} cells)"
        a = part[np.isclose(part["threshold"], ta)].set_index(["model", "task"])["mui"]
        b = part[np.isclose(part["threshold"], tb)].set_index(["model", "task"])["mui"]
        both = pd.concat([a.rename("mui_a"), b.rename("mui_b")], axis=1, join="inner")
        frames.append(
            both.reset_index().assign(
                pair=label,
                threshold_a=ta,
                threshold_b=tb,
                pearson=r.value,
                spearman=rho.value,
                n_cells=r.n_cells,
            )
        )
    columns = ["model", "task", "mui_a", "mui_b", "pair", "threshold_a", "threshold_b"]
    if not frames:
        return pd.DataFrame(columns=[*columns, "pearson", "spearman", "n_cells"])
    return pd.concat(frames, ignore_index=True)


def threshold_robustness_chart(
    mui: pd.DataFrame, robustness: pd.DataFrame, variant: str
) -> alt.FacetChart:
    """MUI at one threshold against MUI at another, one panel per pair of thresholds,
    with the pair's correlations across cells in the panel title."""
    data = threshold_pairs(mui, robustness, variant)
    if data.empty:
        raise MoemuiError(f"threshold_robustness: no threshold pair for variant {variant!r}")
    return (
        alt.Chart(data)
        .mark_point(filled=True, size=45, opacity=0.8)
        .encode(
            x=alt.X("mui_a:Q", title="MUI at the lower threshold", axis=alt.Axis(format="%")),
            y=alt.Y("mui_b:Q", title="MUI at the higher threshold", axis=alt.Axis(format="%")),
            color=alt.Color("task:N"),
            tooltip=[
                "model:N",
                "task:N",
                alt.Tooltip("mui_a:Q", format=".4%"),
                alt.Tooltip("mui_b:Q", format=".4%"),
            ],
        )
        .properties(width=230, height=200)
        .facet(column=alt.Column("pair:N", title=None, header=alt.Header(labelFontSize=11)))
        .resolve_scale(x="independent", y="independent")
        .properties(
            title=alt.Title(
                "Threshold robustness: MUI of every (model, task) cell at two thresholds",
                subtitle=f"variant {variant}; Pearson r and Spearman rho across cells",
            )
        )
    )
