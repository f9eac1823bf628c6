"""moemui: the MoE Model Utilization Index (MUI) from the inside of MoE language models.

The Python API (:mod:`moemui.api`):

- :func:`open_store`: the activations store as an :class:`xarray.DataTree`;
- :func:`open_group`: one ``{model}/{task}`` group of it, checked;
- :func:`key_neurons`: per sample, the key neurons at a threshold, with their decoder
  layer, expert and neuron;
- :func:`mui`: the MUI table of a group;
- :func:`read_table`, :func:`load_tables`: the tables of ``results/tables/``.

Examples
--------
>>> import moemui
>>> "key_neurons" in dir(moemui)
True
>>> moemui.mui.__module__
'moemui.api'
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

try:
    __version__ = version("moemui")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

if TYPE_CHECKING:
    from moemui.api import key_neurons, load_tables, mui, open_group, open_store, read_table

__all__ = [
    "__version__",
    "key_neurons",
    "load_tables",
    "mui",
    "open_group",
    "open_store",
    "read_table",
]
#: The names of :mod:`moemui.api` importable from here.
_API = frozenset(__all__) - {"__version__"}


def __getattr__(name: str):
    """Load :mod:`moemui.api` on first use of one of its names: ``import moemui`` (and so
    the CLI and the Snakefile, which import the package) stays free of xarray, zarr and
    pandas."""
    if name in _API:
        from moemui import api

        value = getattr(api, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
