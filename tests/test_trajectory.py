"""Trajectory rows and phases on a hand-made table."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from moemui.errors import MoemuiError
from moemui.trajectory import TRAJECTORY_COLUMNS, phase, trajectory_table


def _tables():
    # checkpoints listed out of step order on purpose
    cells = {  # model: (step, mui on t1, accuracy on t1)
        "s-300": (300, 0.30, 0.50),
        "s-100": (100, 0.10, 0.20),
        "s-200": (200, 0.20, 0.40),  # acc up, mui up   -> accumulating
        "s-400": (400, 0.25, 0.70),  # acc up, mui down -> evolving
        "s-500": (500, 0.40, 0.70),  # acc equal        -> stable
        "s-600": (600, 0.45, 0.60),  # acc down         -> declining
        "other": (0, 0.9, 0.9),  # not in the series
    }
    mui = pd.DataFrame(
        [
            {"model": m, "task": "t1", "variant": "glu", "threshold": 0.001, "mui": v[1]}
            for m, v in cells.items()
        ]
    )
    perf = pd.DataFrame([{"model": m, "task": "t1", "accuracy": v[2]} for m, v in cells.items()])
    series = [
        {
            "id": "ser",
            "checkpoints": [{"model": m, "step": v[0]} for m, v in cells.items() if m != "other"],
        }
    ]
    return mui, perf, series


def test_one_row_per_checkpoint_with_phases():
    table = trajectory_table(*_tables())
    assert list(table.columns) == TRAJECTORY_COLUMNS
    assert table["step"].tolist() == [100, 200, 300, 400, 500, 600]
    assert table["model"].tolist() == ["s-100", "s-200", "s-300", "s-400", "s-500", "s-600"]
    assert table["phase"].tolist() == [
        "",
        "accumulating",
        "accumulating",
        "evolving",
        "stable",
        "declining",
    ]
    assert math.isnan(table["d_mui"].iloc[0])
    assert table["d_mui"].iloc[3] == pytest.approx(-0.05)
    assert table["d_accuracy"].iloc[5] == pytest.approx(-0.10)
    assert (table["series"] == "ser").all()


def test_phase_rules():
    assert phase(0.1, 0.1) == "accumulating"
    assert phase(0.1, 0.0) == "evolving"
    assert phase(-0.1, -0.1) == "declining"
    assert phase(0.0, -0.1) == "stable"
    assert phase(float("nan"), 0.1) == ""


def test_missing_checkpoint_is_named():
    mui, perf, series = _tables()
    series[0]["checkpoints"].append({"model": "s-700", "step": 700})
    with pytest.raises(MoemuiError, match=r"series 'ser': no MUI rows for \['s-700'\]"):
        trajectory_table(mui, perf, series)
