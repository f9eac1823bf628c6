"""Charts of the findings: pure ``pd.DataFrame -> alt.Chart`` functions, one per chart,
and :func:`save_chart`, which writes each as interactive HTML (Vega inlined, so it
opens offline), static SVG and PNG (vl-convert, no browser) and its Vega-Lite JSON.

Every chart draws one analysis method, the "focus" ``variant`` and ``threshold``
(``analyses.variant`` / ``analyses.threshold`` in the config), except the robustness
chart, which compares thresholds.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Callable
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd

from moemui.errors import MoemuiError
from moemui.io import atomic_write_text

PHASE_COLORS = {
    "accumulating": "#4c9f70",
    "evolving": "#4a7fc1",
    "declining": "#d1495b",
    "stable": "#bbbbbb",
}
KIND_COLORS = {"routed": "#4a7fc1", "shared": "#e08a2c"}
FORMATS = ("html", "svg", "png", "vl.json")


def _pct(tau: float) -> str:
    return f"{tau * 100:g}%"


def _focus(table: pd.DataFrame, variant: str, threshold: float, what: str) -> pd.DataFrame:
    part = table[(table["variant"] == variant) & np.isclose(table["threshold"], threshold)]
    if part.empty:
        raise MoemuiError(
            f"{what}: no rows for variant {variant!r} at threshold {threshold} "
            "(analyses.variant / analyses.threshold must be a captured variant and a "
            "configured threshold)"
        )
    return part.reset_index(drop=True)


def _subtitle(variant: str, threshold: float) -> str:
    return f"variant {variant}, threshold {_pct(threshold)}"


# --------------------------------------------------------------------------------------
# SPEC §6.1: MUI vs performance
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


def mui_performance_data(
    table: pd.DataFrame, fits: pd.DataFrame, variant: str, threshold: float
) -> pd.DataFrame:
    """The focus points (``layer`` = "point") and the per-task fit curves (``layer`` =
    "fit") in one frame, as a faceted chart needs one data source."""
    points = _focus(table, variant, threshold, "mui_performance").copy()
    points["release"] = points["release"].astype("string").fillna("")
    points["step"] = points["step"].astype("string").fillna("")
    fits = _focus(fits, variant, threshold, "mui_performance_fits")
    curves = fit_curves(fits[fits["task"].isin(set(points["task"]))])
    return pd.concat([points.assign(layer="point"), curves.assign(layer="fit")], ignore_index=True)


def mui_performance_chart(
    table: pd.DataFrame, fits: pd.DataFrame, variant: str, threshold: float
) -> alt.FacetChart:
    """Accuracy against MUI (log axis) per model, one panel per task, coloured by family,
    with each family's fitted log curve on that task. Click a family in the legend to
    focus it."""
    data = mui_performance_data(table, fits, variant, threshold)
    family = alt.selection_point(fields=["family"], bind="legend")
    color = alt.Color("family:N", title="family (click)")
    opacity = alt.condition(family, alt.value(0.9), alt.value(0.1))
    x = alt.X(
        "mui:Q",
        scale=alt.Scale(type="log", nice=False),
        axis=alt.Axis(format=".2%", tickCount=4, labelOverlap="greedy"),
        title="MUI (log scale)",
    )
    y = alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1]), title="accuracy")
    base = alt.Chart(data)
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
                alt.Tooltip("step:N"),
                alt.Tooltip("mui:Q", format=".4%"),
                alt.Tooltip("accuracy:Q", format=".1%"),
            ],
        )
        .add_params(family)
    )
    lines = (
        base.transform_filter("datum.layer == 'fit'")
        .mark_line(strokeDash=[5, 3])
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
            ],
        )
    )
    return (
        alt.layer(lines, points)
        .properties(width=250, height=230)
        .facet(column=alt.Column("task:N", title=None))
        .resolve_scale(x="independent")
        .properties(
            title=alt.Title(
                "MUI vs performance by family",
                subtitle=[
                    _subtitle(variant, threshold)
                    + "; dashed: accuracy = a + b ln(MUI) per family and task",
                    "click a family in the legend to focus it",
                ],
            )
        )
    )


# --------------------------------------------------------------------------------------
# SPEC §6.2: training trajectories
# --------------------------------------------------------------------------------------


def trajectory_long(table: pd.DataFrame, variant: str, threshold: float) -> pd.DataFrame:
    """The focus rows of the trajectory table, one row per measure (MUI, accuracy), with
    the previous checkpoint's step (``step_prev``) for the phase shading."""
    data = _focus(table, variant, threshold, "trajectory").sort_values(
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
                subtitle=_subtitle(variant, threshold)
                + "; shading: phase from the previous checkpoint",
            )
        )
    )


# --------------------------------------------------------------------------------------
# SPEC §6.3: collaboration
# --------------------------------------------------------------------------------------


def key_experts_chart(table: pd.DataFrame, variant: str, threshold: float) -> alt.FacetChart:
    """KeyExpertProportion per model and task, one bar per rho."""
    data = _focus(table, variant, threshold, "key_experts").copy()
    data["rho_label"] = [f"rho = {r:g}" for r in data["rho"]]
    models = list(dict.fromkeys(data["model"]))
    return (
        alt.Chart(data)
        .mark_bar()
        .encode(
            x=alt.X("model:N", sort=models, title=None, axis=alt.Axis(labelAngle=-40)),
            xOffset=alt.XOffset("rho_label:N"),
            y=alt.Y(
                "key_expert_proportion:Q",
                title="key-expert proportion",
                scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(format="%"),
            ),
            color=alt.Color("rho_label:N", title="key_rate >", sort="ascending"),
            tooltip=[
                "model:N",
                "task:N",
                "rho:Q",
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
                "Key-expert proportion (experts key for more than a fraction rho of samples)",
                subtitle=_subtitle(variant, threshold),
            )
        )
    )


def _expert_labels(table: pd.DataFrame) -> list[str]:
    """``L<layer> E<expert>`` per row."""
    return [f"L{lay} E{e}" for lay, e in zip(table["layer"], table["expert"], strict=True)]


#: What the tooltips of a top-experts chart name first.
_EXPERT_TOOLTIP = ["model:N", "task:N", "rank:Q", "layer:Q", "expert:Q", "expert_kind:N"]

#: The expert kinds' colours, as a colour encoding.
KIND_COLOR = alt.Color(
    "expert_kind:N",
    scale=alt.Scale(domain=list(KIND_COLORS), range=list(KIND_COLORS.values())),
    title="kind",
)


def _per_model_and_task(chart, data: pd.DataFrame, width: int, title: alt.Title):
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


def top_experts_chart(table: pd.DataFrame) -> alt.FacetChart:
    """The top experts by activation rate per model and task, coloured by kind."""
    data = table.copy()
    data["expert_label"] = _expert_labels(data)
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
                *_EXPERT_TOOLTIP,
                "routed_tokens:Q",
                alt.Tooltip("activation_rate:Q", format=".1%"),
            ],
        )
    )
    title = alt.Title(
        "Top experts by activation rate (share of response tokens routed to them)",
        subtitle="layer L, expert E; rank 1 on top; shared experts see every token",
    )
    return _per_model_and_task(bars, data, 150, title)


def top_key_experts_chart(table: pd.DataFrame, variant: str, threshold: float) -> alt.FacetChart:
    """The top experts by key rate per model and task, as the paper ranks them: bars of
    key rate coloured by kind, each labelled with its expert-level MUI."""
    data = _focus(table, variant, threshold, "top_key_experts").copy()
    data["expert_label"] = _expert_labels(data)
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
            *_EXPERT_TOOLTIP,
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
            _subtitle(variant, threshold),
            "key rate: share of the task's samples the expert is key for; layer L, "
            "expert E; rank 1 on top",
            "expert MUI: share of the expert's neurons in the task's key set",
        ],
    )
    return _per_model_and_task(alt.layer(bars, labels, data=data), data, 170, title)


# --------------------------------------------------------------------------------------
# SPEC §5: robustness
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

        label = f"{_pct(ta)} vs {_pct(tb)}: r = {show(r)}, rho = {show(rho)} ({r.n_cells} cells)"
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


# --------------------------------------------------------------------------------------
# SPEC §6.4: data diversity; ablation
# --------------------------------------------------------------------------------------


def diversity_chart(table: pd.DataFrame, variant: str, threshold: float) -> alt.FacetChart:
    """Mean MUI of random subsets against their size per task and for the mix of tasks,
    with the min-max band over the draws; one panel per model."""
    data = _focus(table, variant, threshold, "diversity")
    base = alt.Chart(data).encode(
        x=alt.X("n_samples:Q", scale=alt.Scale(type="log", base=2), title="samples"),
        color=alt.Color("task:N", title="task"),
    )
    band = base.mark_area(opacity=0.18).encode(y="mui_min:Q", y2="mui_max:Q")
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
                subtitle=_subtitle(variant, threshold)
                + "; (mix): equal shares of every task; band: min-max over draws",
            )
        )
    )


def ablation_chart(table: pd.DataFrame) -> alt.FacetChart:
    """Accuracy drop with the key neurons zeroed and with as many random neurons of the
    same experts zeroed, per cell (column) and threshold (row): bar, the key drop or the
    mean over the random draws; line, the key drop +- its standard error over samples;
    dots, each random draw."""
    data = table[table["condition"] != "baseline"].copy()
    data["cell"] = [f"{m} / {t}" for m, t in zip(data["model"], data["task"], strict=True)]
    data["key_neurons_at"] = [
        f"{v}, threshold {_pct(float(t))}"
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
        .encode(y="drop_low:Q", y2="drop_high:Q")
    )
    dots = (
        base.transform_filter(alt.datum.condition == "random")
        .mark_point(color="black", filled=True, size=25)
        .encode(
            y="accuracy_drop:Q",
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
# Files
# --------------------------------------------------------------------------------------

#: chart name -> (tables it reads, in order; whether it takes variant and threshold)
CHARTS: dict[str, tuple[tuple[str, ...], Callable, str]] = {
    "mui_performance": (("mui_performance", "mui_performance_fits"), mui_performance_chart, "vt"),
    "trajectory": (("trajectory",), trajectory_chart, "vt"),
    "key_experts": (("key_experts",), key_experts_chart, "vt"),
    "top_experts": (("top_experts",), top_experts_chart, ""),
    "top_key_experts": (("top_key_experts",), top_key_experts_chart, "vt"),
    "threshold_robustness": (("mui", "robustness"), threshold_robustness_chart, "v"),
    "diversity": (("diversity",), diversity_chart, "vt"),
    "ablation": (("ablation",), ablation_chart, ""),
}


def make_chart(name: str, tables: list[pd.DataFrame], variant: str, threshold: float):
    """Build chart ``name`` from its tables (in :data:`CHARTS` order)."""
    try:
        needs, build, focus = CHARTS[name]
    except KeyError:
        raise MoemuiError(f"unknown chart {name!r}; known: {', '.join(CHARTS)}") from None
    if len(tables) != len(needs):
        raise MoemuiError(f"chart {name!r} takes the tables {', '.join(needs)}")
    args: list = list(tables)
    if "v" in focus:
        args.append(variant)
    if "t" in focus:
        args.append(threshold)
    return build(*args)


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
vegaEmbed("#vega-chart", {spec}, {{"renderer": "svg"}}).catch(console.error);
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


def chart_paths(prefix: str | os.PathLike) -> dict[str, Path]:
    """``{format: prefix.format}`` for every format in :data:`FORMATS`."""
    prefix = Path(prefix)
    return {fmt: prefix.with_name(f"{prefix.name}.{fmt}") for fmt in FORMATS}


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
