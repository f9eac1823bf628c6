"""What the charts share: colours, the focus rows of a table, subtitles, expert labels
and the per-model-and-task facets of the top-experts charts."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from moemui.errors import MoemuiError

PHASE_COLORS = {
    "accumulating": "#4c9f70",
    "evolving": "#4a7fc1",
    "declining": "#d1495b",
    "stable": "#bbbbbb",
}
KIND_COLORS = {"routed": "#4a7fc1", "shared": "#e08a2c"}


def pct(tau: float) -> str:
    """A threshold as a percentage (0.001 -> "0.1%")."""
    return f"{tau * 100:g}%"


def focus_rows(table: pd.DataFrame, variant: str, threshold: float, what: str) -> pd.DataFrame:
    """The rows of ``table`` at ``variant`` and ``threshold``; none is an error naming
    ``what``."""
    part = table[(table["variant"] == variant) & np.isclose(table["threshold"], threshold)]
    if part.empty:
        raise MoemuiError(
            f"{what}: no rows for variant {variant!r} at threshold {threshold} "
            "(analyses.variant / analyses.threshold must be a captured variant and a "
            "configured threshold)"
        )
    return part.reset_index(drop=True)


def subtitle(variant: str, threshold: float) -> str:
    """The subtitle line naming the focus method."""
    return f"variant {variant}, threshold {pct(threshold)}"


def expert_labels(table: pd.DataFrame) -> list[str]:
    """``L<layer> E<expert>`` per row."""
    return [f"L{lay} E{e}" for lay, e in zip(table["layer"], table["expert"], strict=True)]


#: What the tooltips of a top-experts chart name first.
EXPERT_TOOLTIP = ["model:N", "task:N", "rank:Q", "layer:Q", "expert:Q", "expert_kind:N"]

#: The expert kinds' colours, as a colour encoding.
KIND_COLOR = alt.Color(
    "expert_kind:N",
    scale=alt.Scale(domain=list(KIND_COLORS), range=list(KIND_COLORS.values())),
    title="kind",
)


def per_model_and_task(chart, data: pd.DataFrame, width: int, title: alt.Title):
    """``chart`` faceted in a row per model (config order) and a column per task, each
    panel with its own experts on the y axis."""
    return (
        chart.properties(width=width, height=110)
        .facet(
            row=alt.Row("model:N", title=None, sort=list(dict.fromkeys(data["model"]))),
            column=alt.Column("task:N", title=None),
        )
        .resolve_scale(y="independent")
        .properties(title=title)
    )
