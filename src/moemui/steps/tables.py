"""The steps' CSV tables: one writer (atomic, full precision, ``\\n`` line ends) and
one reader."""

from __future__ import annotations

import csv
import os

import pandas as pd

from moemui.errors import MoemuiError
from moemui.io import atomic_write_text


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


def concat_tables(paths: list[str | os.PathLike], out: str | os.PathLike) -> pd.DataFrame:
    """Concatenate CSV tables with the same columns, in the given order."""
    if not paths:
        raise MoemuiError(f"{out}: no input tables to concatenate")
    table = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    write_csv(table, out)
    return table
