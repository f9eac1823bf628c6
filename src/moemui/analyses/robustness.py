"""Robustness (docs/method.md §5): does the picture change with the threshold or the method?

- Threshold robustness: Pearson and Spearman correlation of MUI across (model, task)
  cells, for every pair of thresholds (per variant).
- Method robustness: cosine similarity of the KeyExpertProportion vectors over
  (model, task) cells, for every pair of methods (a method is a variant at a
  threshold: thresholds, ``gate`` vs ``glu``, projection vs ``act``), and, per cell,
  cosine of the per-expert ``key_rate`` vectors.

Every statistic carries the number of cells (and of values) it used; a cross-cell
statistic over fewer than 3 cells is NaN with the reason.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from moemui.analyses.stats import MIN_CELLS, cosine, pearson, spearman

ROBUSTNESS_COLUMNS = [
    "analysis",
    "statistic",
    "model",
    "task",
    "variant_a",
    "threshold_a",
    "variant_b",
    "threshold_b",
    "compares",
    "value",
    "n_cells",
    "n_values",
    "reason",
]
CELL = ["model", "task"]


def _compares(va: str, ta: float, vb: str, tb: float) -> str:
    if va == vb:
        return "threshold"
    return "variant" if ta == tb else "variant and threshold"


def _row(analysis, statistic, a, b, stat, n_cells, model="", task="") -> dict:
    (va, ta), (vb, tb) = a, b
    return {
        "analysis": analysis,
        "statistic": statistic,
        "model": model,
        "task": task,
        "variant_a": va,
        "threshold_a": ta,
        "variant_b": vb,
        "threshold_b": tb,
        "compares": _compares(va, ta, vb, tb),
        "value": stat.value,
        "n_cells": n_cells,
        "n_values": stat.n,
        "reason": stat.reason,
    }


def _paired(table: pd.DataFrame, a, b, value: str, keys: list[str]) -> pd.DataFrame:
    """Rows of methods ``a`` and ``b`` side by side on ``keys``: ``value_a``, ``value_b``."""
    sides = []
    for side, (variant, tau) in (("a", a), ("b", b)):
        part = table[(table["variant"] == variant) & (table["threshold"] == tau)]
        sides.append(part.set_index(keys)[value].rename(f"{value}_{side}"))
    return pd.concat(sides, axis=1, join="inner").reset_index()


def _methods(table: pd.DataFrame) -> list[tuple[str, float]]:
    pairs = table[["variant", "threshold"]].drop_duplicates()
    return sorted((str(v), float(t)) for v, t in pairs.itertuples(index=False))


def threshold_robustness(mui: pd.DataFrame, min_cells: int = MIN_CELLS) -> pd.DataFrame:
    """Pearson and Spearman of MUI across cells for every pair of thresholds, per
    variant. ``mui``: the MUI table (model, task, variant, threshold, mui)."""
    rows = []
    for variant in sorted(mui["variant"].unique()):
        taus = sorted(mui.loc[mui["variant"] == variant, "threshold"].unique())
        for ta, tb in combinations(taus, 2):
            a, b = (variant, float(ta)), (variant, float(tb))
            both = _paired(mui, a, b, "mui", CELL)
            for name, fn in (("pearson", pearson), ("spearman", spearman)):
                stat = fn(both["mui_a"], both["mui_b"], min_cells)
                rows.append(_row("mui_across_cells", name, a, b, stat, len(both)))
    return pd.DataFrame(rows, columns=ROBUSTNESS_COLUMNS)


def method_robustness(
    key_experts: pd.DataFrame, rho: float = 0.0, min_cells: int = MIN_CELLS
) -> pd.DataFrame:
    """Cosine of KeyExpertProportion vectors over cells, for every pair of methods.
    ``key_experts``: the key-expert table; the rows at ``rho`` are used."""
    table = key_experts[np.isclose(key_experts["rho"], rho)]
    rows = []
    for a, b in combinations(_methods(table), 2):
        both = _paired(table, a, b, "key_expert_proportion", CELL)
        n = len(both)
        stat = cosine(both["key_expert_proportion_a"], both["key_expert_proportion_b"], min_cells)
        rows.append(_row("key_expert_proportion_across_cells", "cosine", a, b, stat, n))
    return pd.DataFrame(rows, columns=ROBUSTNESS_COLUMNS)


def cell_robustness(experts: pd.DataFrame) -> pd.DataFrame:
    """Per cell, cosine of the per-expert ``key_rate`` vectors for every pair of methods.
    ``experts``: the per-expert table."""
    rows = []
    for (model, task), cell in experts.groupby(CELL, sort=False):
        wide = cell.pivot_table(
            index=["layer", "expert"], columns=["variant", "threshold"], values="key_rate"
        )
        for a, b in combinations(_methods(cell), 2):
            stat = cosine(wide[a].to_numpy(), wide[b].to_numpy())
            rows.append(_row("key_rate_per_cell", "cosine", a, b, stat, 1, model, task))
    return pd.DataFrame(rows, columns=ROBUSTNESS_COLUMNS)


def robustness_table(
    mui: pd.DataFrame, key_experts: pd.DataFrame, experts: pd.DataFrame
) -> pd.DataFrame:
    """The three robustness analyses in one tidy table (:data:`ROBUSTNESS_COLUMNS`)."""
    parts = [
        threshold_robustness(mui),
        method_robustness(key_experts),
        cell_robustness(experts),
    ]
    return pd.concat([p for p in parts if len(p)], ignore_index=True).reindex(
        columns=ROBUSTNESS_COLUMNS
    )
