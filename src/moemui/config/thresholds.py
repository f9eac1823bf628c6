"""Thresholds and rhos as rows of the tables and points of the charts: two values one
of them would read as one are refused."""

from __future__ import annotations

from moemui.errors import MoemuiError
from moemui.limits import TABLE_DIGITS


def table_value(value: float) -> str:
    """A threshold or rho as the tables write it (``"%.10g"``)."""
    return f"{value:.{TABLE_DIGITS}g}"


def same_row(a: float, b: float) -> bool:
    """Whether the tables (``%.10g``) or the charts and robustness table (``np.isclose``,
    within 1e-8 + 1e-5 x the value) would read thresholds (or rhos) ``a`` and ``b`` as
    one."""
    return table_value(a) == table_value(b) or abs(a - b) <= 1e-8 + 1e-5 * max(abs(a), abs(b))


def check_unique(values: list[float], key: str) -> None:
    """No two thresholds (or rhos) are one row of the tables or one point of the charts."""
    for i, value in enumerate(values):
        for j in range(i):
            if same_row(values[j], value):
                raise MoemuiError(
                    f"config key '{key}[{i}]': {value!r} is too close to {key}[{j}] "
                    f"({values[j]!r}): the tables ({TABLE_DIGITS} significant digits, "
                    f"{table_value(value)} and {table_value(values[j])}) or the charts "
                    "(within 1e-8 + 1e-5 x the value) would read them as one"
                )
