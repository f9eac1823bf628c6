"""Charts of the experts (docs/method.md §4, §6.3): key-expert proportions and the top experts by
activation rate and by key rate."""

from __future__ import annotations

import altair as alt
import pandas as pd

from moemui.charts.common import (
    EXPERT_TOOLTIP,
    KIND_COLOR,
    expert_labels,
    focus_rows,
    pct,
    per_model_and_task,
    subtitle,
)

# --------------------------------------------------------------------------------------
# docs/method.md §6.3: collaboration
# --------------------------------------------------------------------------------------


def key_experts_chart(table: pd.DataFrame, variant: str, threshold: float) -> alt.FacetChart:
    """KeyExpertProportion per model and task, one bar per rho."""
    data = focus_rows(table, variant, threshold, "key_experts").copy()
    data["rho_label"] = [f"rho = {pct(r)}" for r in data["rho"]]
    models = list(dict.fromkeys(data["model"]))
    # in rho's order: as text, "rho = 10%" would sort before "rho = 5%"
    rhos = list(dict.fromkeys(data.sort_values("rho", kind="stable")["rho_label"]))
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("model:N", sort=models, title=None, axis=alt.Axis(labelAngle=-40)),
            xOffset=alt.XOffset("rho_label:N", sort=rhos),
            y=alt.Y(
                "key_expert_proportion:Q",
                title="key-expert proportion",
                scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%"),
            ),
            color=alt.Color("rho_label:N", title="key_rate >", sort=rhos),
            tooltip=[
                "model:N",
                "task:N",
                alt.Tooltip("rho:Q", format="%"),
                "key_experts:Q",
                "total_experts:Q",
                alt.Tooltip("key_expert_proportion:Q", format=".1%"),
                alt.Tooltip("shared_key_share:Q", format=".1%", title="shared share"),
                alt.Tooltip("gini:Q", format=".3f"),
            ],
        )
        .properties(width=max(160, 26 * len(models)), height=200)
        .facet(column=alt.Column("task:N", title=None))
        .properties(
            title=alt.Title(
                "Key-expert proportion (experts key for more than a share rho of the samples)",
                subtitle=subtitle(variant, threshold),
            )
        )
    )


def top_experts_chart(table: pd.DataFrame) -> alt.FacetChart:
    """The top experts by activation rate per model and task, coloured by kind."""
    data = table.copy()
    data["expert_label"] = expert_labels(data)
    bars = (
        alt.Chart(data)
        .mark_bar()
        .encode(
            y=alt.Y("expert_label:N", title=None, sort=alt.EncodingSortField("rank")),
            x=alt.X(
                "activation_rate:Q",
                title="activation rate",
                scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%", tickCount=3),
            ),
            color=KIND_COLOR,
            tooltip=[
                *EXPERT_TOOLTIP,
                "routed_tokens:Q",
                alt.Tooltip("activation_rate:Q", format=".1%"),
            ],
        )
    )
    title = alt.Title(
        "Top experts by activation rate (share of response tokens routed to them)",
        subtitle="layer L, expert E; rank 1 on top; shared experts see every token",
    )
    return per_model_and_task(bars, data, 150, title)


def top_key_experts_chart(table: pd.DataFrame, variant: str, threshold: float) -> alt.FacetChart:
    """The top experts by key rate per model and task, as the paper ranks them: bars of
    key rate coloured by kind, each labelled with its expert-level MUI."""
    data = focus_rows(table, variant, threshold, "top_key_experts").copy()
    data["expert_label"] = expert_labels(data)
    data["mui_label"] = [f"MUI {m * 100:.1f}%" for m in data["expert_mui"]]
    base = alt.Chart().encode(
        # op "min": the two layers' domains are unioned, which keeps only such sorts
        y=alt.Y("expert_label:N", title=None, sort=alt.EncodingSortField("rank", op="min")),
        x=alt.X(
            "key_rate:Q",
            title="key rate",
            scale=alt.Scale(domain=[0, 1.45]),
            axis=alt.Axis(format="%", values=[0, 0.5, 1]),
        ),
        tooltip=[
            *EXPERT_TOOLTIP,
            "key_samples:Q",
            "n_samples:Q",
            alt.Tooltip("key_rate:Q", format=".1%", title="key rate"),
            "key_neurons:Q",
            alt.Tooltip("expert_mui:Q", format=".2%", title="expert MUI"),
            alt.Tooltip("activation_rate:Q", format=".1%", title="activation rate"),
        ],
    )
    bars = base.mark_bar().encode(color=KIND_COLOR)
    labels = base.mark_text(align="left", dx=3, fontSize=9).encode(text="mui_label:N")
    title = alt.Title(
        "Top experts by key rate, with the expert-level MUI (the paper's view)",
        subtitle=[
            subtitle(variant, threshold),
            "key rate: share of the task's samples the expert is key for; layer L, "
            "expert E; rank 1 on top",
            "expert MUI: share of the expert's neurons in the task's key set",
        ],
    )
    return per_model_and_task(alt.layer(bars, labels, data=data), data, 170, title)
