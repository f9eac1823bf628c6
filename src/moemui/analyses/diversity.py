"""Data diversity (docs/method.md §6.4): MUI as a function of the number of samples.

For each size ``n``, ``draws`` seeded random subsets of ``n`` samples (without
replacement) of a task, and of an equal-size mix of the model's tasks
(``n // T`` samples from each of ``T`` tasks); MUI of each subset is its union of
key neurons over the MUI denominator. The same subsets serve every variant and
threshold, so the curves differ only by the method.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

MIX = "(mix)"
DIVERSITY_COLUMNS = [
    "model",
    "task",
    "variant",
    "threshold",
    "n_samples",
    "draws",
    "mui_mean",
    "mui_std",
    "mui_min",
    "mui_max",
    "total_neurons",
]


def _rng(seed: int, *names: str) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(n.encode()) for n in names)])


def subsets(
    n_available: Mapping[str, int], sizes: Iterable[int], draws: int, seed: int, model: str
) -> dict[tuple[str, int], list[dict[str, np.ndarray]]]:
    """The random subsets: ``{(task or MIX, n): [draw: {task: sample positions}]}``.

    Sizes above a task's sample count are skipped; the mix takes ``n // T`` samples
    from each task (skipped when that is 0 or exceeds a task) and is keyed by the
    size it really has, ``T * (n // T)``.
    """
    out: dict[tuple[str, int], list[dict[str, np.ndarray]]] = {}
    tasks = list(n_available)
    for n in sorted(set(sizes)):
        for task in tasks:
            if n <= n_available[task]:
                rng = _rng(seed, model, task, str(n))
                out[(task, n)] = [
                    {task: np.sort(rng.choice(n_available[task], n, replace=False))}
                    for _ in range(draws)
                ]
        per = n // len(tasks)
        if len(tasks) > 1 and per > 0 and all(per <= n_available[t] for t in tasks):
            rng = _rng(seed, model, MIX, str(n))
            out.setdefault(
                (MIX, per * len(tasks)),
                [
                    {t: np.sort(rng.choice(n_available[t], per, replace=False)) for t in tasks}
                    for _ in range(draws)
                ],
            )
    return out


def _union(by_task: Mapping[str, list[np.ndarray]], pick: Mapping[str, np.ndarray]) -> int:
    parts = [by_task[task][i] for task, positions in pick.items() for i in positions]
    return int(np.unique(np.concatenate(parts)).size) if parts else 0


def diversity_table(
    sets: Mapping[tuple[str, float], Mapping[str, list[np.ndarray]]],
    total_neurons: int,
    sizes: Iterable[int],
    draws: int,
    seed: int,
    model: str,
) -> pd.DataFrame:
    """MUI of random subsets for one model (:data:`DIVERSITY_COLUMNS`).

    ``sets[(variant, threshold)][task]`` are the per-sample key-neuron index sets of
    :func:`moemui.analyses.keys.key_sets`.
    """
    rows = []
    if not sets:
        return pd.DataFrame(columns=DIVERSITY_COLUMNS)
    first = next(iter(sets.values()))
    plan = subsets({t: len(s) for t, s in first.items()}, sizes, draws, seed, model)
    for (variant, tau), by_task in sets.items():
        for (task, n), picks in plan.items():
            values = np.array([_union(by_task, pick) for pick in picks]) / total_neurons
            rows.append(
                {
                    "model": model,
                    "task": task,
                    "variant": variant,
                    "threshold": tau,
                    "n_samples": n,
                    "draws": len(values),
                    "mui_mean": values.mean(),
                    "mui_std": values.std(ddof=1) if len(values) > 1 else float("nan"),
                    "mui_min": values.min(),
                    "mui_max": values.max(),
                    "total_neurons": total_neurons,
                }
            )
    table = pd.DataFrame(rows, columns=DIVERSITY_COLUMNS)
    return table.sort_values(["variant", "threshold", "task", "n_samples"], kind="stable")
