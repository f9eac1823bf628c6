"""Charts: each chart's data and encodings against its table, and the four files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from moemui.analyses.diversity import MIX
from moemui.charts import CHARTS, FORMATS, chart_html, make_chart, save_chart
from moemui.charts.ablation import ablation_chart
from moemui.charts.diversity import diversity_chart
from moemui.charts.experts import key_experts_chart, top_experts_chart, top_key_experts_chart
from moemui.charts.performance import fit_curves, mui_performance_chart, trajectory_chart
from moemui.charts.robustness import threshold_robustness_chart
from moemui.errors import MoemuiError

pytest.importorskip("altair")

MODELS = ["a-v1", "a-v2", "b-v1"]
TASKS = ["t1", "t2"]


def _spec(chart) -> dict:
    return chart.to_dict()


def _data(spec: dict) -> pd.DataFrame:
    """The chart's (single) inline dataset."""
    datasets = spec["datasets"]
    assert len(datasets) == 1, list(datasets)
    return pd.DataFrame(next(iter(datasets.values())))


def _layers(spec: dict) -> list[dict]:
    inner = spec.get("spec", spec)
    return inner.get("layer", [inner])


def _enc(layer: dict, channel: str) -> dict:
    return layer["encoding"][channel]


#: a training series of family c: three checkpoints of one release, steps as a CSV with
#: gaps reads them (floats)
CHECKPOINTS = {"c-v2-step150": 150.0, "c-v2-step300": 300.0, "c-v2-step600": 600.0}


def mui_perf_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A mui_performance table (families a and b; c, a series of three checkpoints) and
    its fits (a defined, b undefined, c none), as ``draw_chart`` reads them."""
    rows, fits = [], []
    for m in [*MODELS, *CHECKPOINTS]:
        for t in TASKS:
            for v in ("gate", "glu"):
                step = CHECKPOINTS.get(m, np.nan)
                i = MODELS.index(m) if m in MODELS else list(CHECKPOINTS).index(m)
                rows.append(
                    {
                        "model": m,
                        "family": m[0],
                        "release": float(m[3]),
                        "series": "c-v2" if m in CHECKPOINTS else np.nan,
                        "step": step,
                        "task": t,
                        "variant": v,
                        "threshold": 0.001,
                        "mui": 0.001 * (1 + i) * (1 + TASKS.index(t)),
                        "accuracy": 0.2 * (1 + i) if m in MODELS else 0.3 + 0.2 * i,
                        "n_samples": 8,
                    }
                )
    for fam, slope in (("a", 0.3), ("b", np.nan)):
        for t in [*TASKS, "(all)"]:
            fits.append(
                {
                    "family": fam,
                    "task": t,
                    "variant": "glu",
                    "threshold": 0.001,
                    "intercept": 2.0,
                    "slope": slope,
                    "r2": 0.9,
                    "rmse": 0.1,
                    "n_points": 2,
                    "mui_min": 0.001,
                    "mui_max": 0.004,
                    "reason": "" if fam == "a" else "1 points, fewer than 3",
                }
            )
    return pd.DataFrame(rows), pd.DataFrame(fits)


@pytest.fixture
def mui_perf() -> tuple[pd.DataFrame, pd.DataFrame]:
    return mui_perf_tables()


def test_mui_performance_chart(mui_perf):
    table, fits = mui_perf
    spec = _spec(mui_performance_chart(table, fits, "glu", 0.001))
    data = _data(spec)
    points = data[data["layer"] == "point"]
    focus = table[table["variant"] == "glu"]
    assert len(points) == len(focus)
    merged = points.merge(focus, on=["model", "task"], suffixes=("", "_t"))
    np.testing.assert_allclose(merged["mui"], merged["mui_t"])
    np.testing.assert_allclose(merged["accuracy"], merged["accuracy_t"])
    curves = data[data["layer"] == "fit"]
    assert set(curves["family"]) == {"a"}  # b's fit is undefined, c has none: no curve
    assert set(curves["task"]) == set(TASKS)  # the pooled fit is not drawn
    want = fit_curves(fits[(fits["family"] == "a") & fits["task"].isin(TASKS)])
    np.testing.assert_allclose(curves["accuracy"], want["accuracy"])
    np.testing.assert_allclose(curves["accuracy"], 2.0 + 0.3 * np.log(curves["mui"]))
    assert spec["facet"]["column"]["field"] == "task"
    fit, series, dots, steps = _layers(spec)
    assert dots["mark"]["type"] == "point" and fit["mark"]["type"] == "line"
    assert fit["mark"]["clip"] is True  # a curve leaving 0-100% is cut at the frame
    assert _enc(dots, "x")["field"] == "mui" and _enc(dots, "x")["scale"]["type"] == "log"
    assert _enc(dots, "y")["field"] == "accuracy"
    assert _enc(dots, "y")["axis"]["format"] == "%"
    assert _enc(dots, "color")["field"] == "family"
    tooltips = {t["field"] for t in _enc(dots, "tooltip")}
    assert {"model", "task", "family", "mui", "accuracy", "series", "step"} <= tooltips
    # click a family in the legend: a point selection bound to the legend drives the
    # opacity of every layer. It is defined on the first layer, whose legend encoding
    # Vega-Lite keeps when it merges the layers' legends (tests/test_chart_browser.py
    # clicks it in a browser).
    (param,) = spec["params"]  # Altair lifts it to the top, naming the first layer's view
    assert param["views"] == [fit["name"]]
    # every click adds or removes a family: a second click on it shows all again
    assert param["select"] == {"type": "point", "fields": ["family"], "toggle": "true"}
    assert param["bind"] == "legend"
    for layer in (fit, series, dots, steps):
        assert _enc(layer, "color")["field"] == "family"
        assert _enc(layer, "opacity")["condition"]["param"] == param["name"]


def test_mui_performance_checkpoints_are_told_apart(mui_perf):
    table, fits = mui_perf
    spec = _spec(mui_performance_chart(table, fits, "glu", 0.001))
    data = _data(spec)
    points = data[data["layer"] == "point"]
    # whole numbers as text, whatever the CSV made of them (600.0); none: ""
    by_model = points.drop_duplicates("model").set_index("model")
    assert by_model.loc[list(CHECKPOINTS), "step"].tolist() == ["150", "300", "600"]
    assert by_model.loc[MODELS, "step"].tolist() == ["", "", ""]
    assert by_model["release"].tolist() == ["1", "2", "1", "2", "2", "2"]
    assert by_model.loc[MODELS, "series"].tolist() == ["", "", ""]
    assert by_model.loc[list(CHECKPOINTS), "step_order"].tolist() == [150, 300, 600]
    _, series, dots, steps = _layers(spec)
    # a solid line joins a series' checkpoints in step order ...
    assert series["mark"]["type"] == "line" and "strokeDash" not in series["mark"]
    assert _enc(series, "detail")["field"] == "series"
    assert _enc(series, "order")["field"] == "step_order"
    filters = [t["filter"] for t in series["transform"]]
    assert "datum.step != ''" in filters[0] and filters[1] == "datum.series != ''"
    # ... and each checkpoint is labelled with its step
    assert steps["mark"]["type"] == "text"
    assert _enc(steps, "text")["field"] == "step"
    assert "datum.step != ''" in steps["transform"][0]["filter"]
    assert {"series", "step"} <= {t["field"] for t in _enc(dots, "tooltip")}


def test_focus_must_exist(mui_perf):
    table, fits = mui_perf
    with pytest.raises(MoemuiError, match="no rows for variant 'act' at threshold 0.001"):
        mui_performance_chart(table, fits, "act", 0.001)


def _trajectory() -> pd.DataFrame:
    rows = []
    for step, mui, acc, phase in [
        (100, 0.01, 0.2, ""),
        (200, 0.02, 0.5, "accumulating"),
        (300, 0.015, 0.6, "evolving"),
        (400, 0.015, 0.4, "declining"),
    ]:
        rows.append(
            {
                "series": "s",
                "model": f"s-step{step}",
                "step": step,
                "task": "t",
                "variant": "glu",
                "threshold": 0.001,
                "mui": mui,
                "accuracy": acc,
                "d_mui": np.nan,
                "d_accuracy": np.nan,
                "phase": phase or np.nan,
            }
        )
    return pd.DataFrame(rows)


def test_trajectory_chart():
    table = _trajectory()
    spec = _spec(trajectory_chart(table, "glu", 0.001))
    data = _data(spec)
    assert len(data) == 2 * len(table)  # one row per measure
    mui = data[data["measure"] == "mui"].sort_values("step")
    np.testing.assert_allclose(mui["value"], table["mui"])
    acc = data[data["measure"] == "accuracy"].sort_values("step")
    np.testing.assert_allclose(acc["value"], table["accuracy"])
    assert mui["step_prev"].isna().tolist() == [True, False, False, False]
    assert mui["step_prev"].tolist()[1:] == [100, 200, 300]
    assert mui["phase"].tolist() == ["", "accumulating", "evolving", "declining"]
    shade, line = _layers(spec)
    assert shade["mark"]["type"] == "rect"
    assert _enc(shade, "x")["field"] == "step_prev" and _enc(shade, "x2")["field"] == "step"
    assert _enc(shade, "color")["field"] == "phase"
    assert _enc(line, "x")["field"] == "step" and _enc(line, "y")["field"] == "value"
    assert spec["facet"]["row"]["field"] == "panel"
    assert spec["facet"]["column"]["field"] == "task"


def _key_experts() -> pd.DataFrame:
    rows = []
    for m in MODELS:
        for t in TASKS:
            for rho in (0.0, 0.5):
                rows.append(
                    {
                        "model": m,
                        "task": t,
                        "variant": "glu",
                        "threshold": 0.001,
                        "rho": rho,
                        "key_experts": 3,
                        "total_experts": 8,
                        "key_expert_proportion": (3 - 2 * rho) / 8,
                        "shared_key_share": 0.0,
                        "gini": 0.4,
                    }
                )
    return pd.DataFrame(rows)


def test_key_experts_chart():
    table = _key_experts()
    spec = _spec(key_experts_chart(table, "glu", 0.001))
    data = _data(spec)
    assert len(data) == len(table)
    np.testing.assert_allclose(data["key_expert_proportion"], table["key_expert_proportion"])
    assert data["rho_label"].tolist() == ["rho = 0%", "rho = 50%"] * (len(table) // 2)
    (bar,) = _layers(spec)
    assert bar["mark"]["type"] == "bar"
    assert _enc(bar, "y")["field"] == "key_expert_proportion"
    assert _enc(bar, "x")["field"] == "model" and _enc(bar, "x")["sort"] == MODELS
    assert _enc(bar, "xOffset")["field"] == "rho_label"
    # in rho's order, not as text ("rho = 10%" before "rho = 5%")
    assert _enc(bar, "xOffset")["sort"] == _enc(bar, "color")["sort"] == ["rho = 0%", "rho = 50%"]
    assert spec["facet"]["column"]["field"] == "task"


def _top_experts() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": "m",
            "task": "t",
            "rank": [1, 2, 3],
            "layer": [0, 1, 0],
            "expert": [15, 3, 4],
            "expert_kind": ["shared", "routed", "routed"],
            "routed_tokens": [10, 6, 5],
            "activation_rate": [1.0, 0.6, 0.5],
        }
    )


def test_top_experts_chart():
    table = _top_experts()
    spec = _spec(top_experts_chart(table))
    data = _data(spec)
    assert data["expert_label"].tolist() == ["L0 E15", "L1 E3", "L0 E4"]
    np.testing.assert_allclose(data["activation_rate"], table["activation_rate"])
    assert data["expert_kind"].tolist() == table["expert_kind"].tolist()
    (bar,) = _layers(spec)
    assert _enc(bar, "x")["field"] == "activation_rate"
    assert _enc(bar, "y")["field"] == "expert_label"
    assert _enc(bar, "y")["sort"] == {"field": "rank"}
    color = _enc(bar, "color")
    assert color["field"] == "expert_kind" and color["scale"]["domain"] == ["routed", "shared"]


def _top_key_experts() -> pd.DataFrame:
    rows = []
    for variant, tau in (("glu", 0.001), ("glu", 0.002), ("gate", 0.001)):
        for rank, (layer, expert, kind, rate, mui) in enumerate(
            [(0, 16, "shared", 0.9, 0.125), (2, 3, "routed", 0.6, 0.03125)], start=1
        ):
            rows.append(
                {
                    "model": "m",
                    "task": "t",
                    "variant": variant,
                    "threshold": tau,
                    "rank": rank,
                    "layer": layer,
                    "expert": expert,
                    "expert_kind": kind,
                    "key_samples": int(rate * 10),
                    "key_rate": rate,
                    "key_neurons": int(mui * 32),
                    "expert_mui": mui,
                    "activation_rate": 1.0 if kind == "shared" else 0.2,
                    "n_samples": 10,
                }
            )
    return pd.DataFrame(rows)


def test_top_key_experts_chart_shows_the_focus_with_expert_mui():
    table = _top_key_experts()
    spec = _spec(top_key_experts_chart(table, "glu", 0.001))
    data = _data(spec)
    assert len(data) == 2 and set(data["variant"]) == {"glu"}
    assert set(data["threshold"]) == {0.001}
    assert data["expert_label"].tolist() == ["L0 E16", "L2 E3"]
    assert data["mui_label"].tolist() == ["MUI 12.5%", "MUI 3.1%"]
    bars, labels = _layers(spec)
    assert _enc(bars, "x")["field"] == "key_rate"
    # both layers sort by rank with an op that survives the union of their domains
    assert _enc(bars, "y")["sort"] == _enc(labels, "y")["sort"] == {"field": "rank", "op": "min"}
    assert _enc(bars, "color")["scale"]["domain"] == ["routed", "shared"]
    assert _enc(labels, "text")["field"] == "mui_label"
    assert spec["title"]["subtitle"][0] == "variant glu, threshold 0.1%"
    with pytest.raises(MoemuiError, match="top_key_experts: no rows for variant 'act'"):
        top_key_experts_chart(table, "act", 0.001)


def _robustness() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    mui = pd.DataFrame(
        [
            {"model": m, "task": t, "variant": "glu", "threshold": tau, "mui": rng.uniform()}
            for m in MODELS
            for t in TASKS
            for tau in (0.001, 0.002)
        ]
    )
    robustness = pd.DataFrame(
        [
            {
                "analysis": "mui_across_cells",
                "statistic": stat,
                "variant_a": "glu",
                "threshold_a": 0.001,
                "variant_b": "glu",
                "threshold_b": 0.002,
                "value": value,
                "n_cells": 6,
            }
            for stat, value in (("pearson", 0.98765), ("spearman", 0.9))
        ]
    )
    return mui, robustness


def test_threshold_robustness_chart():
    mui, robustness = _robustness()
    spec = _spec(threshold_robustness_chart(mui, robustness, "glu"))
    data = _data(spec)
    assert len(data) == len(MODELS) * len(TASKS)
    a = mui[mui["threshold"] == 0.001].set_index(["model", "task"])["mui"]
    b = mui[mui["threshold"] == 0.002].set_index(["model", "task"])["mui"]
    got = data.set_index(["model", "task"])
    np.testing.assert_allclose(got["mui_a"], a.loc[got.index])
    np.testing.assert_allclose(got["mui_b"], b.loc[got.index])
    assert set(data["pair"]) == {"0.1% vs 0.2%: r = 0.9877, rho = 0.9000 (6 cells)"}
    assert (data["pearson"] == 0.98765).all() and (data["n_cells"] == 6).all()
    (dots,) = _layers(spec)
    assert _enc(dots, "x")["field"] == "mui_a" and _enc(dots, "y")["field"] == "mui_b"
    assert spec["facet"]["column"]["field"] == "pair"
    undefined = robustness.assign(value=np.nan, n_cells=2)
    data = _data(_spec(threshold_robustness_chart(mui, undefined, "glu")))
    assert set(data["pair"]) == {"0.1% vs 0.2%: r = undefined, rho = undefined (2 cells)"}


def _diversity() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "model": m,
                "task": t,
                "variant": "glu",
                "threshold": 0.001,
                "n_samples": n,
                "draws": 3,
                "mui_mean": 0.001 * n,
                "mui_std": 0.0001,
                "mui_min": 0.0009 * n,
                "mui_max": 0.0011 * n,
                "total_neurons": 100,
            }
            for m in MODELS
            for t in [*TASKS, MIX]
            for n in (1, 2, 4)
        ]
    )


def test_diversity_chart():
    table = _diversity()
    spec = _spec(diversity_chart(table, "glu", 0.001))
    data = _data(spec)
    pd.testing.assert_frame_equal(
        data[table.columns].reset_index(drop=True), table.reset_index(drop=True)
    )
    band, line = _layers(spec)
    assert band["mark"]["type"] == "area"
    assert _enc(band, "y")["field"] == "mui_min" and _enc(band, "y2")["field"] == "mui_max"
    assert _enc(line, "y")["field"] == "mui_mean"
    for layer in (band, line):
        x = _enc(layer, "x")
        assert x["field"] == "n_samples" and x["scale"] == {"type": "log", "base": 2}
        assert _enc(layer, "color")["field"] == "task"
    assert spec["facet"]["field"] == "model"


def _ablation() -> pd.DataFrame:
    rows = []
    for tau, key_acc in ((0.01, 0.3), (0.001, 0.7)):
        for cond, seed, acc in [
            ("baseline", None, 0.8),
            ("key", None, key_acc),
            ("random", 0, 0.75),
            ("random", 1, 0.7),
        ]:
            rows.append(
                {
                    "model": "m",
                    "task": "t",
                    "variant": "glu",
                    "threshold": tau,
                    "condition": cond,
                    "seed": seed,
                    "n_neurons": 0 if cond == "baseline" else 12,
                    "n_experts": 0 if cond == "baseline" else 4,
                    "n_samples": 16,
                    "accuracy": acc,
                    "baseline_accuracy": 0.8,
                    "accuracy_drop": 0.8 - acc,
                    "drop_se": 0.0 if cond == "baseline" else 0.125,
                }
            )
    table = pd.DataFrame(rows)
    table["seed"] = table["seed"].astype("Int64")
    return table


def test_ablation_chart():
    table = _ablation()
    spec = _spec(ablation_chart(table))
    data = _data(spec)
    assert data["condition"].tolist() == ["key", "random", "random"] * 2  # no baseline bar
    np.testing.assert_allclose(data["accuracy_drop"], [0.5, 0.05, 0.1, 0.1, 0.05, 0.1])
    np.testing.assert_allclose(data["drop_high"] - data["drop_low"], 0.25)
    assert set(data["cell"]) == {"m / t"}
    bars, se, dots = _layers(spec)
    assert _enc(bars, "y")["field"] == "accuracy_drop" and _enc(bars, "y")["aggregate"] == "mean"
    assert _enc(dots, "y")["field"] == "accuracy_drop" and "aggregate" not in _enc(dots, "y")
    assert (_enc(se, "y")["field"], _enc(se, "y2")["field"]) == ("drop_low", "drop_high")
    assert _enc(bars, "color")["scale"]["domain"] == ["key", "random"]
    assert spec["facet"]["column"]["field"] == "cell"
    # one row per threshold, smallest first
    assert spec["facet"]["row"]["field"] == "key_neurons_at"
    assert spec["facet"]["row"]["sort"] == ["glu, threshold 0.1%", "glu, threshold 1%"]


#: each chart's tables (in its CHARTS entry's order), built small
CHART_TABLES = {
    "mui_performance": mui_perf_tables,
    "trajectory": lambda: [_trajectory()],
    "key_experts": lambda: [_key_experts()],
    "top_experts": lambda: [_top_experts()],
    "top_key_experts": lambda: [_top_key_experts()],
    "threshold_robustness": _robustness,
    "diversity": lambda: [_diversity()],
    "ablation": lambda: [_ablation()],
}

#: The quantitative fields the charts encode. Fractions in the tables (0.0098 is 0.98%:
#: MUI, accuracy, rates, proportions, shares, drops), which every chart shows as
#: percentages ...
PERCENT_FIELDS = {
    "mui",
    "mui_a",
    "mui_b",
    "mui_mean",
    "mui_std",
    "mui_min",
    "mui_max",
    "expert_mui",
    "accuracy",
    "baseline_accuracy",
    "accuracy_drop",
    "drop_se",
    "drop_low",
    "drop_high",
    "activation_rate",
    "key_rate",
    "key_expert_proportion",
    "shared_key_share",
    "rho",
    "value",  # the trajectory's MUI and accuracy, one row per measure
}
#: ... and those that are counts, steps or statistics, never a percentage.
OTHER_FIELDS = {
    "step",
    "step_prev",
    "step_order",
    "n_samples",
    "draws",
    "rank",
    "layer",
    "expert",
    "routed_tokens",
    "key_samples",
    "key_neurons",
    "key_experts",
    "total_experts",
    "n_neurons",
    "n_experts",
    "n_points",
    "gini",
    "r2",
}


def _field_defs(node, path=""):
    """Every ``(path, channel, field definition)`` of the encodings in a spec."""
    if isinstance(node, dict):
        for channel, value in node.get("encoding", {}).items():
            for fdef in value if isinstance(value, list) else [value]:
                if isinstance(fdef, dict):
                    yield f"{path}/encoding/{channel}", channel, fdef
        for key, value in node.items():
            if key != "encoding":
                yield from _field_defs(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _field_defs(value, f"{path}/{i}")


def test_chart_tables_cover_every_chart():
    assert set(CHART_TABLES) == set(CHARTS)


@pytest.mark.parametrize("name", list(CHARTS))
def test_every_chart_shows_fractions_as_percentages(name):
    """Tables hold fractions; every axis, tooltip and text of one of them shows it as a
    percentage (a % format), and no count or statistic is shown as one."""
    chart = make_chart(name, list(CHART_TABLES[name]()), "glu", 0.001)
    checked = 0
    for where, channel, fdef in _field_defs(_spec(chart)):
        if fdef.get("type") != "quantitative" or "field" not in fdef:
            continue  # nominal, a constant, count()
        field = fdef["field"]
        assert field in PERCENT_FIELDS | OTHER_FIELDS, f"{name} {where}: classify {field!r}"
        if channel in ("x", "y"):
            fmt = (fdef.get("axis") or {}).get("format", "")
        elif channel in ("tooltip", "text"):
            fmt = fdef.get("format", "")
        else:
            continue  # x2, y2 share x's and y's axis; order, size ...
        if field in PERCENT_FIELDS:
            assert "%" in fmt, f"{name} {where}: {field} is a fraction, shown without a % format"
            checked += 1
        else:
            assert "%" not in fmt, f"{name} {where}: {field} is not a fraction, shown as %"
    assert checked, f"{name}: no percentage checked"


def test_make_chart_checks_names_and_tables(mui_perf):
    assert set(CHARTS) == {
        "mui_performance",
        "trajectory",
        "key_experts",
        "top_experts",
        "top_key_experts",
        "threshold_robustness",
        "diversity",
        "ablation",
    }
    with pytest.raises(MoemuiError, match="unknown chart 'pie'"):
        make_chart("pie", [], "glu", 0.001)
    with pytest.raises(MoemuiError, match="takes the tables mui_performance, mui_perf"):
        make_chart("mui_performance", [mui_perf[0]], "glu", 0.001)
    chart = make_chart("key_experts", [_key_experts()], "glu", 0.001)
    assert _spec(chart)["facet"]["column"]["field"] == "task"


def test_save_chart_writes_the_four_files(tmp_path):
    pytest.importorskip("vl_convert")
    chart = key_experts_chart(_key_experts(), "glu", 0.001)
    paths = {fmt: tmp_path / f"c.{fmt}" for fmt in FORMATS}
    save_chart(chart, paths, bundle="/* vega */")
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = paths["svg"].read_text()
    assert svg.lstrip().startswith("<svg") and "key-expert proportion" in svg
    spec = json.loads(paths["vl.json"].read_text())
    assert spec == json.loads(json.dumps(chart.to_dict(), sort_keys=True))
    html = paths["html"].read_text()
    assert "/* vega */" in html and 'vegaEmbed("#vega-chart"' in html
    assert not list(tmp_path.glob(".*"))  # no temporary file left


def test_chart_html_escapes_the_spec():
    page = chart_html({"title": "</script><b>"}, "B", title="a <b>")
    assert "</script><b>" not in page.split("<body>")[1].split("vegaEmbed")[1]
    assert "<title>a &lt;b&gt;</title>" in page


def test_the_chart_step_reads_integer_columns_as_integers(tmp_path):
    """A table written by the steps and drawn by the chart step: a seed column with gaps
    (the baseline has none) is drawn as 0 and 1, not 0.0 and 1.0: read as the API reads it."""
    from moemui.steps.charts import draw_chart
    from moemui.steps.tables import write_csv

    write_csv(_ablation(), tmp_path / "ablation.csv")
    spec = tmp_path / "ablation.vl.json"
    draw_chart("ablation", [tmp_path / "ablation.csv"], {"vl.json": spec})
    data = pd.DataFrame(next(iter(json.loads(spec.read_text())["datasets"].values())))
    random = data[data["condition"] == "random"]
    assert sorted(random["seed"].tolist()) == ["0", "0", "1", "1"]  # not "0.0"
