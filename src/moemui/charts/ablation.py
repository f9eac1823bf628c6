"""The ablation chart: accuracy drop with key neurons against random neurons zeroed."""

from __future__ import annotations

import altair as alt
import pandas as pd

from moemui.charts.common import pct


def ablation_chart(table: pd.DataFrame) -> alt.FacetChart:
    """Accuracy drop with the key neurons zeroed and with as many random neurons of the
    same experts zeroed, per cell (column) and threshold (row): bar, the key drop or the
    mean over the random draws; line, the key drop +- its standard error over samples;
    dots, each random draw."""
    data = table[table["condition"] != "baseline"].copy()
    data["cell"] = [f"{m} / {t}" for m, t in zip(data["model"], data["task"], strict=True)]
    data["key_neurons_at"] = [
        f"{v}, threshold {pct(float(t))}"
        for v, t in zip(data["variant"], data["threshold"], strict=True)
    ]
    rows = list(
        dict.fromkeys(data.sort_values(["variant", "threshold"], kind="stable")["key_neurons_at"])
    )
    data["seed"] = data["seed"].astype("string").fillna("")
    data["drop_low"] = data["accuracy_drop"] - data["drop_se"]
    data["drop_high"] = data["accuracy_drop"] + data["drop_se"]
    color = alt.Color(
        "condition:N",
        scale=alt.Scale(domain=["key", "random"], range=["#d1495b", "#8d99ae"]),
        title="neurons zeroed",
    )
    base = alt.Chart().encode(
        x=alt.X("condition:N", title=None, sort=["key", "random"], axis=alt.Axis(labelAngle=0))
    )
    bars = base.mark_bar().encode(
        y=alt.Y("mean(accuracy_drop):Q", title="accuracy drop", axis=alt.Axis(format="%")),
        color=color,
        tooltip=[
            "condition:N",
            alt.Tooltip("mean(accuracy_drop):Q", format=".1%", title="mean drop"),
            alt.Tooltip("stdev(accuracy_drop):Q", format=".1%", title="sd over draws"),
            alt.Tooltip("count():Q", title="runs"),
            alt.Tooltip("mean(n_neurons):Q", title="neurons"),
        ],
    )
    se = (
        base.transform_filter(alt.datum.condition == "key")
        .mark_rule(color="black", strokeWidth=1.5)
        .encode(y=alt.Y("drop_low:Q", axis=alt.Axis(format="%")), y2="drop_high:Q")
    )
    dots = (
        base.transform_filter(alt.datum.condition == "random")
        .mark_point(color="black", filled=True, size=25)
        .encode(
            y=alt.Y("accuracy_drop:Q", axis=alt.Axis(format="%")),
            tooltip=[
                "condition:N",
                "seed:N",
                "n_neurons:Q",
                "n_experts:Q",
                alt.Tooltip("baseline_accuracy:Q", format=".1%"),
                alt.Tooltip("accuracy:Q", format=".1%"),
                alt.Tooltip("accuracy_drop:Q", format=".1%"),
                alt.Tooltip("drop_se:Q", format=".1%", title="standard error"),
            ],
        )
    )
    return (
        alt.layer(bars, se, dots, data=data)
        .properties(width=170, height=160)
        .facet(
            column=alt.Column("cell:N", title=None, header=alt.Header(labelLimit=170)),
            row=alt.Row("key_neurons_at:N", title="key neurons at", sort=rows),
        )
        .resolve_scale(y="independent")
        .properties(
            title=alt.Title(
                "Ablation: accuracy drop with key neurons vs random neurons zeroed",
                subtitle=[
                    "random: as many neurons of the same experts, one draw per seed (dots)",
                    "key: the drop +- its standard error over the samples (line)",
                ],
            )
        )
    )


# --------------------------------------------------------------------------------------
