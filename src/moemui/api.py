"""The public Python API: open the activations store, find key neurons, compute MUI and
read the result tables. Every name here is importable from :mod:`moemui`.

A store group is the ``{model}/{task}`` group of ``results/activations.zarr`` (an
:class:`xarray.Dataset`, dims ``sample``, ``layer``, ``expert``, ``neuron``, ``rank``;
its ``layer`` coordinate holds decoder-layer indices). Thresholds are fractions of a
MoE layer's neurons (``0.001`` is 0.1 %), and MUI is a fraction of the model's
neurons, as in the config and the tables.

- :func:`open_store`: the whole store as an :class:`xarray.DataTree`;
- :func:`open_group`: one group, checked;
- :func:`key_neurons`: per sample, the key neurons at a threshold, in decoder-layer
  coordinates;
- :func:`mui`: the MUI table of a group (:func:`moemui.metrics.mui_table`);
- :func:`read_table`, :func:`load_tables`: the tidy tables of ``results/tables/``.

Examples
--------
A store of one group, written as a capture writes it (one sample; decoder layer 0 is
dense, layer 1 has two experts of three neurons):

>>> import tempfile, numpy as np
>>> from moemui.adapters import Geometry
>>> from moemui.store import StoreWriter, index_store
>>> geo = Geometry("toy", "ToyForCausalLM", moe_layers=[1], dense_layers=[0],
...                routed_experts=2, shared_experts=0, neurons_per_expert=3, top_k=1)
>>> tmp = tempfile.TemporaryDirectory(); root = f"{tmp.name}/activations.zarr"
>>> writer = StoreWriter(f"{root}/toy/count", geo, ["s0"], ("glu",), 2,
...                      {"model": "toy", "task": "count"})
>>> values = {"score_glu": [[[[0.5, 0.0, 0.0], [0.0, 0.0, 2.0]]]],
...           "pairtop_glu": [[[2.0, 0.5]]]}
>>> for name, arr in writer.arrays.items():
...     writer.write_block(name, 0, np.asarray(values.get(name, np.ones(arr.shape))))
>>> _ = writer.publish(); index_store(root, {"toy": ["count"]})
>>> open_store(root).groups
('/', '/toy', '/toy/count')
>>> group = open_group(root, "toy", "count")
>>> key_neurons(group, 0.2, "glu")  # k = floor(0.2 * 6) = 1: the largest score
  sample  layer  expert  neuron
0     s0      1       1       2
>>> mui(group, [0.2, 0.4])[["threshold", "mui", "key_neurons", "total_neurons"]]
   threshold       mui  key_neurons  total_neurons
0        0.2  0.166667            1              6
1        0.4  0.333333            2              6
>>> tmp.cleanup()
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from moemui.analyses.keys import GroupKeys, variants_of
from moemui.errors import MoemuiError
from moemui.metrics import mui_table
from moemui.steps.tables import NULLABLE_INTEGER_COLUMNS, TEXT_COLUMNS, read_typed
from moemui.store import open_group as _open_checked_group
from moemui.store import timestamp_ignored, unusable, verify_group

__all__ = [
    "NULLABLE_INTEGER_COLUMNS",
    "TEXT_COLUMNS",
    "key_neurons",
    "load_tables",
    "mui",
    "open_group",
    "open_store",
    "read_table",
]

#: A group as the functions take it: a store group (:func:`open_group`, or a node of
#: :func:`open_store`'s tree) or its key neurons already derived (``results/keys/
#: {model}/{task}.npz``, :meth:`moemui.analyses.keys.GroupKeys.load`).
Group = xr.Dataset | xr.DataTree | GroupKeys


def open_store(path: str | os.PathLike) -> xr.DataTree:
    """The activations store at ``path`` as a tree of its ``{model}/{task}`` groups.

    The arrays are read lazily, when their values are used. Unlike :func:`open_group`,
    the groups are not checked: the store's tree holds only published groups (a
    capture writes outside it and moves a finished group in), listed once the store
    is indexed (the workflow's ``index_store`` rule, ``moemui index-store``).

    Parameters
    ----------
    path
        The store, e.g. ``results/activations.zarr``.

    Returns
    -------
    xarray.DataTree
        Node ``{model}/{task}`` is a store group (``tree["olmoe-v1/arithmetic"]``;
        ``.to_dataset()`` gives it as a Dataset).

    Raises
    ------
    MoemuiError
        ``path`` is not a Zarr store.

    Examples
    --------
    >>> import tempfile, xarray as xr
    >>> tmp = tempfile.TemporaryDirectory(); root = f"{tmp.name}/activations.zarr"
    >>> _ = xr.Dataset({"n_tokens": ("sample", [3, 5])}).to_zarr(
    ...     root, group="toy/count", zarr_format=3, consolidated=False)
    >>> tree = open_store(root)
    >>> tree.groups
    ('/', '/toy', '/toy/count')
    >>> tree["toy/count"]["n_tokens"].values.tolist()
    [3, 5]
    >>> tmp.cleanup()
    """
    if not (Path(path) / "zarr.json").is_file():
        raise MoemuiError(f"{path}: not an activations store (no zarr.json)")
    with timestamp_ignored():  # Snakemake's timestamp files are not part of the store
        return xr.open_datatree(path, engine="zarr", consolidated=False, chunks=None)


def open_group(path: str | os.PathLike, model: str, task: str, verify: bool = False) -> xr.Dataset:
    """The ``{model}/{task}`` group of the store at ``path``, checked.

    The check (:func:`moemui.store.check_group`) reads only metadata: the group is
    complete, every array is present with the shape its geometry implies, no chunk is
    missing. The values are checked as they are read by the package's readers
    (:meth:`~moemui.analyses.keys.GroupKeys.from_group` with ``verify``); with
    ``verify`` every chunk is read here and every array's content digest recomputed
    first (slow on a large group).

    Parameters
    ----------
    path
        The store, e.g. ``results/activations.zarr``.
    model, task
        The group's model and task ids (the config's).
    verify
        Also read every chunk and check every array's digest.

    Returns
    -------
    xarray.Dataset
        The group, its arrays read lazily.

    Raises
    ------
    MoemuiError
        No such group (the message says how to capture it).
    moemui.store.CorruptGroupError
        The group is incomplete, damaged or inconsistent (the message names every
        problem and the commands that capture it again).

    Examples
    --------
    >>> open_group("no/store", "toy", "count")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    moemui.errors.MoemuiError: no/store: no group toy/count in the activations store; ...
    """
    ds = _open_checked_group(path, model, task)
    if verify:
        problems = verify_group(path, model, task)
        if problems:
            raise unusable(path, model, task, "; ".join(problems))
    return ds


def _names(source: xr.Dataset | GroupKeys) -> tuple[str, str]:
    """The model and task of a group (its attributes; empty when it has none)."""
    if isinstance(source, GroupKeys):
        return source.model, source.task
    return str(source.attrs.get("model", "")), str(source.attrs.get("task", ""))


def _source(group: Group, variant: str | None) -> xr.Dataset | GroupKeys:
    """``group`` as what :class:`GroupKeys` reads: a Dataset holding only ``variant``'s
    score arrays (the others are never read), or the derived keys as they are."""
    source = group.to_dataset() if isinstance(group, xr.DataTree) else group
    if variant is None:
        return source
    model, task = _names(source)
    where = f"{model}/{task}: " if model or task else ""
    if isinstance(source, GroupKeys):
        if variant not in source.keys:
            raise MoemuiError(
                f"{where}no key neurons of variant {variant!r} (has {source.variants})"
            )
        return source
    have = variants_of(source)
    if variant not in have or f"pairtop_{variant}" not in source:
        raise MoemuiError(f"{where}the store group holds no variant {variant!r} (has {have})")
    others = [f"{kind}_{v}" for v in have if v != variant for kind in ("score", "pairtop")]
    return source.drop_vars([name for name in others if name in source])


def key_neurons(group: Group, threshold: float, variant: str) -> pd.DataFrame:
    """Per sample, its key neurons at ``threshold``, in decoder-layer coordinates.

    At a MoE layer of ``n_layer = N * (E_s + E_r)`` neurons, ``k = max(1, floor(
    threshold * n_layer))``; ``theta`` is the sample's k-th largest positive triple
    score at that layer (``pairtop``; the smallest positive one when fewer are
    positive), and the key neurons are those whose ``score`` (max over t) is >=
    ``theta`` and > 0 (:mod:`moemui.keyrule`).

    Parameters
    ----------
    group
        A store group (:func:`open_group`, a node of :func:`open_store`'s tree; only
        ``variant``'s arrays are read), or its key neurons already derived
        (:class:`~moemui.analyses.keys.GroupKeys`, which must hold ``threshold``).
    threshold
        A fraction of each MoE layer's neurons, in (0, 1).
    variant
        The score variant (``glu``, ``gate``, ...: the group's ``score_<variant>``).

    Returns
    -------
    pandas.DataFrame
        One row per (sample, key neuron), sorted by sample (in store order), layer,
        expert and neuron. Columns: ``sample`` (the sample id, categorical over every
        sample of the group in store order, so that a sample without key neurons
        still counts in ``value_counts()``), ``layer`` (the decoder-layer index, the
        store's ``layer`` coordinate, not the position among the MoE layers),
        ``expert`` (routed experts first, then shared, as the ``expert`` coordinate)
        and ``neuron``.

    Raises
    ------
    MoemuiError
        No such variant; a threshold outside (0, 1), or above what the group kept
        (``capture.max_threshold``); derived keys without ``threshold``.

    Examples
    --------
    Two samples; decoder layer 0 is dense, layers 1 and 2 have one expert of four
    neurons (``n_layer`` = 4, so ``k`` = 1 at 0.25 and 2 at 0.5):

    >>> import numpy as np, xarray as xr
    >>> score = np.array([[[[3.0, 1.0, 0.0, 0.0]], [[0.0, 0.0, 2.0, 0.0]]],
    ...                   [[[0.0, 0.0, 0.0, 0.0]], [[1.0, 1.0, 0.5, 0.0]]]])
    >>> top = np.array([[[3.0, 1.0], [2.0, np.nan]],   # the layers' largest triple scores
    ...                 [[np.nan, np.nan], [1.0, 1.0]]])
    >>> group = xr.Dataset(
    ...     {"score_glu": (("sample", "layer", "expert", "neuron"), score),
    ...      "pairtop_glu": (("sample", "layer", "rank"), top)},
    ...     coords={"sample": ["a", "b"], "layer": [1, 2]})
    >>> key_neurons(group, 0.25, "glu")
      sample  layer  expert  neuron
    0      a      1       0       0
    1      a      2       0       2
    2      b      2       0       0
    3      b      2       0       1
    >>> key_neurons(group, 0.5, "glu").groupby("sample", observed=False).size().tolist()
    [3, 2]
    """
    source = _source(group, variant)
    if isinstance(source, GroupKeys):
        keys = source
    else:
        model, task = _names(source)
        keys = GroupKeys.from_group(source, [threshold], model, task)
    sample, index = keys.entries(variant, threshold)
    layer, expert, neuron = keys.unravel(index)
    ids = pd.Index([str(s) for s in keys.samples])
    return pd.DataFrame(
        {
            "sample": pd.Categorical.from_codes(sample, categories=ids),
            "layer": layer,
            "expert": expert.astype(np.int64),
            "neuron": neuron.astype(np.int64),
        }
    )


def mui(
    group: Group,
    thresholds: float | Iterable[float],
    variant: str | None = None,
    correct_only: bool | None = None,
) -> pd.DataFrame:
    """The MUI of a group at each threshold: the share of the model's neurons that are
    key neurons of at least one sample (:func:`moemui.metrics.mui_table`).

    Parameters
    ----------
    group
        A store group or its derived key neurons, as for :func:`key_neurons`.
    thresholds
        One threshold or several, fractions in (0, 1).
    variant
        One score variant; None: every variant of the group.
    correct_only
        Also the MUI over the correctly answered samples (columns
        :data:`moemui.metrics.MUI_CORRECT_COLUMNS`); None: the config's default.

    Returns
    -------
    pandas.DataFrame
        One row per variant and threshold, ascending; the columns of ``mui.csv``
        (:data:`moemui.metrics.MUI_COLUMNS`): ``model``, ``task`` (the group's
        attributes, ``""`` when it has none), ``variant``, ``threshold``, ``mui`` (a
        fraction), ``key_neurons``, ``total_neurons`` (``N * L * (E_s + E_r)``) and
        ``n_samples``.

    Raises
    ------
    MoemuiError
        As :func:`key_neurons`; ``correct_only`` on a group without a ``correct``
        array.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> score = np.array([[[[3.0, 1.0, 0.0, 0.0]]], [[[0.0, 2.0, 0.0, 0.0]]]])
    >>> top = np.array([[[3.0, 1.0]], [[2.0, np.nan]]])
    >>> group = xr.Dataset(
    ...     {"score_glu": (("sample", "layer", "expert", "neuron"), score),
    ...      "pairtop_glu": (("sample", "layer", "rank"), top)},
    ...     coords={"sample": ["a", "b"], "layer": [1]}, attrs={"model": "m", "task": "t"})
    >>> mui(group, 0.25)
      model task variant  threshold  mui  key_neurons  total_neurons  n_samples
    0     m    t     glu       0.25  0.5            2              4          2
    """
    if isinstance(thresholds, (int, float)):
        thresholds = [thresholds]
    source = _source(group, variant)
    model, task = _names(source)
    table = mui_table(source, thresholds, model, task, correct_only)
    if variant is not None:  # derived keys hold every variant
        table = table[table["variant"] == variant].reset_index(drop=True)
    return table


def _tables_dir(results: str | os.PathLike) -> Path:
    tables = Path(results) / "tables"
    if not tables.is_dir():
        raise MoemuiError(f"{results}: no tables/ directory (is it a results directory?)")
    return tables


def read_table(results: str | os.PathLike, name: str) -> pd.DataFrame:
    """One table of ``results/tables/``, with its column types.

    Text columns (:data:`TEXT_COLUMNS`) read as text, an empty field as ``""``;
    integer columns that may be empty (:data:`NULLABLE_INTEGER_COLUMNS`: ``step``,
    ``release``, ``seed``) as ``Int64``; ``threshold`` and the other measures as
    floats (fractions, as written).

    Parameters
    ----------
    results
        The results directory (``results``).
    name
        The table: ``mui``, ``performance``, ``trajectory``, ... (``.csv`` may be
        given), or a per-cell part such as ``mui/olmoe-v1/arithmetic``.

    Returns
    -------
    pandas.DataFrame
        The table, one row per line.

    Raises
    ------
    MoemuiError
        No such table (the message lists those there); ``results`` has no
        ``tables/``.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> from moemui.steps.tables import write_csv
    >>> tmp = tempfile.TemporaryDirectory(); results = tmp.name
    >>> write_csv(pd.DataFrame({"model": ["m", "m-step600"], "series": ["", "m"],
    ...                         "step": pd.array([None, 600], dtype="Int64"),
    ...                         "threshold": [0.001, 0.001]}),
    ...           f"{results}/tables/perf.csv")
    >>> table = read_table(results, "perf")
    >>> table
           model series  step  threshold
    0          m         <NA>      0.001
    1  m-step600      m   600      0.001
    >>> table["step"].dtype
    Int64Dtype()
    >>> tmp.cleanup()
    """
    tables = _tables_dir(results)
    path = tables / f"{name.removesuffix('.csv')}.csv"
    if not path.is_file():
        have = ", ".join(p.stem for p in sorted(tables.glob("*.csv"))) or "none"
        raise MoemuiError(f"{path}: no such table (the tables there: {have})")
    return read_typed(path)


def load_tables(results: str | os.PathLike) -> dict[str, pd.DataFrame]:
    """Every table of ``results/tables/`` (not the per-cell parts in its
    subdirectories, which the tables concatenate), read as :func:`read_table` does.

    Parameters
    ----------
    results
        The results directory (``results``).

    Returns
    -------
    dict of str to pandas.DataFrame
        By name (``mui``, ``performance``, ...), in name order.

    Raises
    ------
    MoemuiError
        ``results`` has no ``tables/``; a file there is not a table.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> from moemui.steps.tables import write_csv
    >>> tmp = tempfile.TemporaryDirectory(); results = tmp.name
    >>> write_csv(pd.DataFrame({"model": ["m"], "accuracy": [0.5]}),
    ...           f"{results}/tables/performance.csv")
    >>> write_csv(pd.DataFrame({"model": ["m"], "mui": [0.01]}), f"{results}/tables/mui.csv")
    >>> {name: len(table) for name, table in load_tables(results).items()}
    {'mui': 1, 'performance': 1}
    >>> tmp.cleanup()
    """
    tables = _tables_dir(results)
    return {path.stem: read_typed(path) for path in sorted(tables.glob("*.csv"))}
