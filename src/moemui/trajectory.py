"""Training trajectories (docs/method.md §6.2): MUI and performance along a checkpoint series.

Between consecutive checkpoints the phase is

``accumulating``
    performance up, MUI up;
``evolving``
    performance up, MUI down or equal;
``declining``
    performance down;
``stable``
    performance exactly unchanged (docs/method.md §6.2 names no phase for it).
"""

from __future__ import annotations

import math

import pandas as pd

from moemui.errors import MoemuiError

TRAJECTORY_COLUMNS = [
    "series",
    "model",
    "step",
    "task",
    "variant",
    "threshold",
    "mui",
    "accuracy",
    "d_mui",
    "d_accuracy",
    "phase",
]


def phase(d_accuracy: float, d_mui: float) -> str:
    """The phase of a step between checkpoints from the changes in accuracy and MUI.

    Examples
    --------
    >>> phase(0.1, 0.02), phase(0.1, -0.01), phase(-0.05, 0.3), phase(0.0, 0.1)
    ('accumulating', 'evolving', 'declining', 'stable')
    """
    if math.isnan(d_accuracy) or math.isnan(d_mui):
        return ""
    if d_accuracy > 0:
        return "accumulating" if d_mui > 0 else "evolving"
    if d_accuracy < 0:
        return "declining"
    return "stable"


def trajectory_table(
    mui: pd.DataFrame, performance: pd.DataFrame, series: list[dict]
) -> pd.DataFrame:
    """One row per series checkpoint, task, variant and threshold, ordered by step.

    Parameters
    ----------
    mui
        The MUI table (model, task, variant, threshold, mui, ...).
    performance
        The performance table (model, task, accuracy, ...).
    series
        ``[{"id": ..., "checkpoints": [{"model": ..., "step": ...}, ...]}, ...]``.
    """
    acc = performance.set_index(["model", "task"])["accuracy"]
    frames = []
    for entry in series:
        steps = {c["model"]: int(c["step"]) for c in entry["checkpoints"]}
        part = mui[mui["model"].isin(steps)].copy()
        missing = set(steps) - set(part["model"])
        if missing:
            raise MoemuiError(f"series {entry['id']!r}: no MUI rows for {sorted(missing)}")
        part["series"] = entry["id"]
        part["step"] = part["model"].map(steps)
        keys = list(zip(part["model"], part["task"], strict=True))
        try:
            part["accuracy"] = [float(acc.loc[k]) for k in keys]
        except KeyError as err:
            raise MoemuiError(f"series {entry['id']!r}: no performance row for {err}") from None
        part = part.sort_values(["task", "variant", "threshold", "step"], kind="stable")
        group = part.groupby(["task", "variant", "threshold"], sort=False)
        part["d_mui"] = group["mui"].diff()
        part["d_accuracy"] = group["accuracy"].diff()
        part["phase"] = [
            phase(da, dm) for da, dm in zip(part["d_accuracy"], part["d_mui"], strict=True)
        ]
        frames.append(part[TRAJECTORY_COLUMNS])
    if not frames:
        return pd.DataFrame(columns=TRAJECTORY_COLUMNS)
    return pd.concat(frames, ignore_index=True)
