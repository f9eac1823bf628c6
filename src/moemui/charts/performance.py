"""Charts of MUI against performance (docs/method.md §6.1) and of the training trajectories
(docs/method.md §6.2)."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from moemui.charts.common import PHASE_COLORS, focus_rows, subtitle

# --------------------------------------------------------------------------------------
# docs/method.md §6.1: MUI vs performance
# --------------------------------------------------------------------------------------


def fit_curves(fits: pd.DataFrame, points: int = 40) -> pd.DataFrame:
    """Points of each defined fit ``accuracy = a + b ln(MUI)`` over its MUI range
    (log-spaced): family, task, mui, accuracy, r2, n_points."""
    columns = ["family", "task", "mui", "accuracy", "r2", "n_points"]
    rows = []
    for fit in fits.itertuples(index=False):
        if not np.isfinite(fit.slope) or not (fit.mui_min > 0):
            continue
        for x in np.geomspace(fit.mui_min, fit.mui_max, points):
            rows.append(
                {
                    "family": fit.family,
                    "task": fit.task,
                    "mui": float(x),
                    "accuracy": float(fit.intercept + fit.slope * np.log(x)),
                    "r2": fit.r2,
                    "n_points": fit.n_points,
                }
            )
    return pd.DataFrame(rows, columns=columns)


def integer_labels(values: pd.Series) -> pd.Series:
    """Whole numbers as text ("600"; a CSV column with a gap reads as floats, 600.0);
    missing -> ""."""
    numbers = pd.to_numeric(values, errors="coerce").round().astype("Int64")
    return numbers.astype("string").fillna("")


def mui_performance_data(
    table: pd.DataFrame, fits: pd.DataFrame, variant: str, threshold: float
) -> pd.DataFrame:
    """The focus points (``layer`` = "point") and the per-task fit curves (``layer`` =
    "fit") in one frame, as a faceted chart needs one data source. A point's
    ``release`` and ``step`` are text ("600"; "" when it has none); ``step_order`` is
    its step as a number, which orders a series' checkpoints."""
    points = focus_rows(table, variant, threshold, "mui_performance").copy()
    points["step_order"] = pd.to_numeric(points["step"], errors="coerce")
    points["release"] = integer_labels(points["release"])
    points["step"] = integer_labels(points["step"])
    points["series"] = points["series"].astype("string").fillna("")
    fits = focus_rows(fits, variant, threshold, "mui_performance_fits")
    curves = fit_curves(fits[fits["task"].isin(set(points["task"]))])
    return pd.concat([points.assign(layer="point"), curves.assign(layer="fit")], ignore_index=True)


def mui_performance_chart(
    table: pd.DataFrame, fits: pd.DataFrame, variant: str, threshold: float
) -> alt.FacetChart:
    """Accuracy against MUI (log axis) per model, one panel per task, coloured by family,
    with each family's fitted log curve on that task; the checkpoints of a training
    series are joined in step order and labelled with their step. Click a family in the
    legend to focus it: the other families fade; a click on another family adds it, a
    click on a focused family removes it, and with none focused all are shown."""
    data = mui_performance_data(table, fits, variant, threshold)
    # The selection belongs to the first layer (the fit curves): Vega-Lite merges the
    # layers' colour legends and keeps the first layer's legend encoding, and only a
    # layer holding a legend-bound selection names its legend entries so that a click
    # on them reaches the selection. Defined on a later layer, the legend looks the
    # same but a click on it changes nothing. toggle: every click adds or removes a
    # family (not only a shift-click), so a second click on it undoes the first.
    family = alt.selection_point(fields=["family"], bind="legend", toggle="true")
    color = alt.Color("family:N", title="family (click to focus)")
    opacity = alt.condition(family, alt.value(0.9), alt.value(0.1))
    x = alt.X(
        "mui:Q",
        scale=alt.Scale(type="log", nice=False),
        axis=alt.Axis(format=".2%", tickCount=4, labelOverlap="greedy"),
        title="MUI (log scale)",
    )
    y = alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"))
    mui_tip = alt.Tooltip("mui:Q", format=".4%", title="MUI")
    accuracy_tip = alt.Tooltip("accuracy:Q", format=".1%")
    base = alt.Chart(data)
    fit = (
        base.transform_filter("datum.layer == 'fit'")
        .mark_line(strokeDash=[5, 3], clip=True)
        .encode(
            x=x,
            y=y,
            color=color,
            opacity=opacity,
            tooltip=[
                alt.Tooltip("family:N"),
                alt.Tooltip("task:N"),
                alt.Tooltip("r2:Q", format=".3f", title="fit R²"),
                alt.Tooltip("n_points:Q", title="points"),
                mui_tip,
                accuracy_tip,
            ],
        )
        .add_params(family)
    )
    checkpoints = base.transform_filter("datum.layer == 'point' && datum.step != ''")
    series = (
        checkpoints.transform_filter("datum.series != ''")
        .mark_line(strokeWidth=1.2)
        .encode(
            x=x,
            y=y,
            color=color,
            opacity=opacity,
            detail="series:N",
            order=alt.Order("step_order:Q"),
            tooltip=[alt.Tooltip("series:N"), alt.Tooltip("family:N")],
        )
    )
    points = (
        base.transform_filter("datum.layer == 'point'")
        .mark_point(filled=True, size=70)
        .encode(
            x=x,
            y=y,
            color=color,
            shape=alt.Shape("release:N", title="release"),
            opacity=opacity,
            tooltip=[
                alt.Tooltip("model:N"),
                alt.Tooltip("task:N"),
                alt.Tooltip("family:N"),
                alt.Tooltip("release:N"),
                alt.Tooltip("series:N"),
                alt.Tooltip("step:N"),
                mui_tip,
                accuracy_tip,
            ],
        )
    )
    steps = checkpoints.mark_text(align="left", baseline="bottom", dx=4, dy=-3, fontSize=8).encode(
        x=x, y=y, text="step:N", color=color, opacity=opacity
    )
    return (
        alt.layer(fit, series, points, steps)
        .properties(width=250, height=230)
        .facet(column=alt.Column("task:N", title=None))
        .resolve_scale(x="independent")
        .properties(
            title=alt.Title(
                "MUI vs performance by family",
                subtitle=[
                    subtitle(variant, threshold)
                    + "; dashed: accuracy = a + b ln(MUI) per family and task",
                    "solid: a training series' checkpoints in step order, each labelled "
                    "with its step",
                    "click a family in the legend to focus it, again to show all",
                ],
            )
        )
    )


# --------------------------------------------------------------------------------------
# docs/method.md §6.2: training trajectories
# --------------------------------------------------------------------------------------


def trajectory_long(table: pd.DataFrame, variant: str, threshold: float) -> pd.DataFrame:
    """The focus rows of the trajectory table, one row per measure (MUI, accuracy), with
    the previous checkpoint's step (``step_prev``) for the phase shading."""
    data = focus_rows(table, variant, threshold, "trajectory").sort_values(
        ["series", "task", "step"], kind="stable"
    )
    data = data.assign(
        step_prev=data.groupby(["series", "task"])["step"].shift(1),
        phase=data["phase"].fillna(""),
    )
    keep = ["series", "model", "task", "step", "step_prev", "phase", "mui", "accuracy"]
    long = data[keep].melt(
        id_vars=keep[:6], value_vars=["mui", "accuracy"], var_name="measure", value_name="value"
    )
    long["panel"] = (
        long["series"] + ": " + long["measure"].map({"mui": "MUI", "accuracy": "accuracy"})
    )
    return long


def trajectory_chart(table: pd.DataFrame, variant: str, threshold: float) -> alt.FacetChart:
    """MUI and accuracy against training step per series and task; the span between
    two checkpoints is shaded by its phase."""
    data = trajectory_long(table, variant, threshold)
    base = alt.Chart(data)
    shade = (
        base.transform_filter("datum.phase != ''")
        .mark_rect(opacity=0.25)
        .encode(
            x=alt.X("step_prev:Q", title="training step", scale=alt.Scale(zero=False)),
            x2="step:Q",
            color=alt.Color(
                "phase:N",
                scale=alt.Scale(domain=list(PHASE_COLORS), range=list(PHASE_COLORS.values())),
                title="phase (to this step)",
            ),
            tooltip=["series:N", "task:N", "phase:N", "step_prev:Q", "step:Q"],
        )
    )
    line = base.mark_line(point=True, color="#333333").encode(
        x=alt.X("step:Q", title="training step"),
        y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False), axis=alt.Axis(format="%")),
        tooltip=[
            "series:N",
            "model:N",
            "task:N",
            "step:Q",
            "measure:N",
            alt.Tooltip("value:Q", format=".3%"),
            "phase:N",
        ],
    )
    panels = list(
        dict.fromkeys(data.sort_values(["series", "measure"], ascending=[True, False])["panel"])
    )
    return (
        alt.layer(shade, line)
        .properties(width=200, height=110)
        .facet(
            row=alt.Row("panel:N", title=None, sort=panels),
            column=alt.Column("task:N", title=None),
        )
        .resolve_scale(y="independent")
        .properties(
            title=alt.Title(
                "Training trajectories: MUI and accuracy per checkpoint",
                subtitle=subtitle(variant, threshold)
                + "; shading: phase from the previous checkpoint",
            )
        )
    )
