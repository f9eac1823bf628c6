"""The steps' CSV tables: one writer (atomic, full precision, ``\\n`` line ends), the
steps' reader, and the typed reader of the charts and the Python API (:func:`read_typed`)."""

from __future__ import annotations

import csv
import os

import pandas as pd

from moemui.errors import MoemuiError
from moemui.io import atomic_write_text

#: The text columns of the tables: read as text, an empty field as ``""`` (as written),
#: so that an id such as ``NA`` or ``1`` reads back as itself.
TEXT_COLUMNS = frozenset(
    {
        "analysis",
        "compares",
        "condition",
        "expert_kind",
        "family",
        "model",
        "phase",
        "reason",
        "series",
        "statistic",
        "task",
        "variant",
        "variant_a",
        "variant_b",
    }
)
#: The integer columns of the tables that may be empty (a model outside a series has no
#: ``step``, the baseline of an ablation no ``seed``): read as pandas' nullable
#: ``Int64``, not as floats, in every table (so that tables join on them).
NULLABLE_INTEGER_COLUMNS = frozenset({"release", "seed", "step"})


def write_csv(table: pd.DataFrame, out: str | os.PathLike) -> None:
    """Write a tidy table atomically, floats with full precision, ``\\n`` line ends.

    Every text reads back with :func:`pandas.read_csv` as written: a field holding a
    newline, quote or comma is quoted, and so is every non-numeric field of a table with
    a lone ``\\r`` in a text (the CSV writer quotes only fields holding a character of
    its line terminator, and the reader ends a line at ``\\r`` too). A lone surrogate
    cannot be written (no UTF-8 form): the error names the file (the tables hold config
    ids and numbers, so none should reach them)."""
    texts = table.select_dtypes(exclude="number")
    has_cr = any(
        isinstance(v, str) and "\r" in v for column in texts.columns for v in texts[column]
    )
    quoting = csv.QUOTE_NONNUMERIC if has_cr else csv.QUOTE_MINIMAL
    atomic_write_text(
        out,
        table.to_csv(index=False, float_format="%.10g", lineterminator="\n", quoting=quoting),
    )


def read_csv(path: str | os.PathLike) -> pd.DataFrame:
    """A table written by :func:`write_csv`; a missing file is one error naming it."""
    try:
        return pd.read_csv(path, keep_default_na=True)
    except FileNotFoundError:
        raise MoemuiError(f"{path}: file not found") from None


def read_typed(path: str | os.PathLike) -> pd.DataFrame:
    """A table written by :func:`write_csv`, with its column types (the reader of the
    charts and the Python API): texts as text, nullable integers as ``Int64`` (a step
    reads 600, not 600.0), the rest as pandas infers; a missing or empty file is one
    error naming it."""
    try:
        header = pd.read_csv(path, nrows=0).columns
    except FileNotFoundError:
        raise MoemuiError(f"{path}: file not found") from None
    except pd.errors.EmptyDataError:
        raise MoemuiError(f"{path}: empty file, not a table") from None
    text = [c for c in header if c in TEXT_COLUMNS]
    table = pd.read_csv(
        path,
        dtype=dict.fromkeys(text, str),
        keep_default_na=False,  # only an empty field is missing, and never a text
        na_values={c: [""] for c in header if c not in TEXT_COLUMNS},
    )
    for column in NULLABLE_INTEGER_COLUMNS.intersection(table.columns):
        table[column] = pd.to_numeric(table[column]).astype("Int64")
    return table


def concat_tables(paths: list[str | os.PathLike], out: str | os.PathLike) -> pd.DataFrame:
    """Concatenate CSV tables with the same columns, in the given order."""
    if not paths:
        raise MoemuiError(f"{out}: no input tables to concatenate")
    table = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    write_csv(table, out)
    return table
