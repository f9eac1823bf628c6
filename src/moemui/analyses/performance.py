"""MUI vs performance (docs/method.md §6.1): per model and task, with family and release order,
and per family a fitted log curve ``accuracy = a + b * ln(MUI)`` with its fit quality,
per task and over all tasks pooled (tasks differ in MUI scale, so the pooled fit mixes
task difficulty with utilisation; the per-task fits are the ones to read).
"""

from __future__ import annotations

import pandas as pd

from moemui.analyses.stats import MIN_CELLS, log_fit
from moemui.errors import MoemuiError

MUI_PERFORMANCE_COLUMNS = [
    "model",
    "family",
    "release",
    "series",
    "step",
    "task",
    "variant",
    "threshold",
    "mui",
    "accuracy",
    "n_samples",
]
ALL_TASKS = "(all)"
FIT_COLUMNS = [
    "family",
    "task",
    "variant",
    "threshold",
    "intercept",
    "slope",
    "r2",
    "rmse",
    "n_points",
    "mui_min",
    "mui_max",
    "reason",
]


def _require(table: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise MoemuiError(f"the {what} has no column {', '.join(missing)}")


def mui_performance(
    mui: pd.DataFrame, performance: pd.DataFrame, models: dict[str, dict]
) -> pd.DataFrame:
    """Join MUI and accuracy per (model, task, variant, threshold) and add each model's
    ``family`` (the model id when the config names none), ``release``, ``series`` and
    ``step`` from ``models`` (the config's models by id). Ordered by family, release,
    step, model, task."""
    _require(mui, ["model", "task", "variant", "threshold", "mui", "n_samples"], "MUI table")
    _require(performance, ["model", "task", "accuracy"], "performance table")
    perf = performance[["model", "task", "accuracy"]]
    table = mui.merge(perf, on=["model", "task"], how="left", validate="many_to_one")
    missing = table.loc[table["accuracy"].isna(), ["model", "task"]].drop_duplicates()
    if len(missing):
        cells = ", ".join(f"{m}/{t}" for m, t in missing.itertuples(index=False))
        raise MoemuiError(f"no performance row for {cells}")
    unknown = sorted(set(table["model"]) - set(models))
    if unknown:
        raise MoemuiError(f"models {unknown} of the MUI table are not in the config")

    def info(key, default=None):
        return table["model"].map(lambda m: models[m].get(key, default))

    table["family"] = [models[m].get("family") or m for m in table["model"]]
    table["release"] = info("release").astype("Int64")
    table["series"] = info("series", "").fillna("")
    table["step"] = info("step").astype("Int64")
    order = {m: i for i, m in enumerate(models)}
    table["_order"] = table["model"].map(order)
    table = table.sort_values(
        ["family", "release", "step", "_order", "task", "variant", "threshold"],
        kind="stable",
        na_position="first",
    )
    return table[MUI_PERFORMANCE_COLUMNS].reset_index(drop=True)


def family_fits(table: pd.DataFrame, min_points: int = MIN_CELLS) -> pd.DataFrame:
    """Per family, task, variant and threshold: least squares of accuracy on ln(MUI)
    over the family's models (and, as task ``(all)``, over all its (model, task)
    points); NaN with a reason when fewer than ``min_points`` points have MUI > 0.
    Columns: :data:`FIT_COLUMNS`."""
    pooled = table.assign(task=ALL_TASKS)
    rows = []
    for (family, task, variant, tau), part in pd.concat([table, pooled]).groupby(
        ["family", "task", "variant", "threshold"], sort=True
    ):
        fit = log_fit(part["mui"], part["accuracy"], min_points)
        positive = part.loc[part["mui"] > 0, "mui"]
        rows.append(
            {
                "family": family,
                "task": task,
                "variant": variant,
                "threshold": tau,
                "intercept": fit.intercept,
                "slope": fit.slope,
                "r2": fit.r2,
                "rmse": fit.rmse,
                "n_points": fit.n,
                "mui_min": positive.min() if len(positive) else float("nan"),
                "mui_max": positive.max() if len(positive) else float("nan"),
                "reason": fit.reason,
            }
        )
    return pd.DataFrame(rows, columns=FIT_COLUMNS)
