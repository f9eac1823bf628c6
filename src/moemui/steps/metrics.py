"""The metric steps: a store group's key neurons (read once), its MUI table, and the
training trajectories."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from moemui.analyses.keys import GroupKeys, as_keys
from moemui.errors import MoemuiError
from moemui.metrics import mui_table
from moemui.steps.store import group_location
from moemui.steps.tables import write_csv
from moemui.store import CorruptGroupError, not_a_group, open_group, unusable
from moemui.trajectory import trajectory_table

log = logging.getLogger(__name__)


def named(model: str, task: str, fn, *args):
    """``fn(*args)``, with a known failure naming the store group."""
    try:
        return fn(*args)
    except MoemuiError as err:
        raise MoemuiError(f"{model}/{task}: {err}") from None


def group_keys(path: str | os.PathLike, thresholds: list[float]) -> GroupKeys:
    """Check a store group directory and derive its keys, verifying what is read; it
    only reads (a path that is not a group, or a group that cannot be used, is one
    :class:`MoemuiError` line naming it and how to capture it again). The keys are
    named by the group's own attributes ``model`` and ``task``."""
    why = not_a_group(path)
    if why:
        raise MoemuiError(why)
    store, model, task = group_location(path)
    ds = open_group(store, model, task)
    try:
        return GroupKeys.from_group(ds, thresholds, verify=True)
    except CorruptGroupError as err:
        raise unusable(store, model, task, str(err)) from None
    except MoemuiError as err:
        raise MoemuiError(f"{model}/{task}: {err}") from None


def read_keys(path: str | os.PathLike, thresholds: list[float]) -> GroupKeys:
    """The key neurons of one group at ``thresholds``: a key-neuron file (``.npz``,
    written by :func:`derive_keys`) is read as it is; a store group directory is
    checked, read once (verifying every value read) and its keys derived."""
    if Path(path).suffix == ".npz":
        keys = GroupKeys.load(path)
        return named(keys.model, keys.task, as_keys, keys, thresholds)
    return group_keys(path, thresholds)


def derive_keys(
    group: str | os.PathLike, thresholds: list[float], out: str | os.PathLike
) -> GroupKeys:
    """Read a store group's score arrays once and write its key neurons at every
    threshold (:class:`GroupKeys`) to ``out``: what every table of the group reads."""
    keys = group_keys(group, thresholds)
    model, task = keys.model, keys.task
    keys.save(out)
    n = {v: int(keys.keys[v][0][-1]) for v in keys.variants}
    log.info("key neurons of %s/%s at %s: %s", model, task, thresholds, n)
    return keys


def mui_cell(
    group: str | os.PathLike,
    thresholds: list[float],
    out: str | os.PathLike,
    correct_only: bool | None = None,
) -> pd.DataFrame:
    """MUI of one (model, task) group at every threshold, written as CSV; with
    ``correct_only`` (None: the config's default, ``correct_only``), also over the
    correctly answered samples only (extra columns).

    ``group`` is the store group directory or its key-neuron file (``.npz``)."""
    keys = read_keys(group, thresholds)
    table = mui_table(keys, thresholds, keys.model, keys.task, correct_only=correct_only)
    write_csv(table, out)
    return table


def trajectory(
    mui: str | os.PathLike,
    performance: str | os.PathLike,
    series: list[dict],
    out: str | os.PathLike,
) -> pd.DataFrame:
    """MUI and performance along each checkpoint ``series`` (``[{id, checkpoints:
    [{model, step}]}]``), from the MUI and performance tables."""
    table = trajectory_table(pd.read_csv(mui), pd.read_csv(performance), series)
    write_csv(table, out)
    return table
