"""The defaults of every setting, read from one place: the config schema.

The workflow fills a config's unset keys from the schema's ``default`` entries; the CLI's
flags and the functions behind them take the same values from here, so a default is
written once, in the schema the package ships (``moemui/schemas/config.schema.yaml``,
:data:`SCHEMA`), which the workflow validates a config against.

Examples
--------
>>> default("capture.batch_size")
8
>>> default("models.dtype")
'float32'
"""

from __future__ import annotations

import copy
import functools
import os
from pathlib import Path
from typing import Any

import yaml

from moemui.errors import MoemuiError

#: The config schema, package data (found in a source checkout and in an installed
#: package alike): the workflow validates a config against it (:mod:`moemui.config`)
#: and every default is read from it.
SCHEMA = Path(__file__).resolve().parent / "schemas" / "config.schema.yaml"


def load_schema(path: str | os.PathLike = SCHEMA) -> dict:
    """The schema at ``path`` (default: the package's, :data:`SCHEMA`), as a mapping."""
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@functools.cache
def _schema() -> dict:
    return load_schema()


def _node(key: str) -> dict:
    """The schema node of the dotted ``key``; a list's items are addressed by its name
    (``models.dtype``: the ``dtype`` of every entry of ``models``)."""
    node = _schema()
    for part in key.split("."):
        while node.get("type") == "array" and isinstance(node.get("items"), dict):
            node = node["items"]
        props = node.get("properties", {})
        if part not in props:
            raise MoemuiError(f"no config key {key!r} in the schema (at {part!r})")
        node = props[part]
    return node


def default(key: str) -> Any:
    """The schema's default of the dotted config ``key`` (a fresh copy of lists and
    mappings); a key without a default is an error."""
    node = _node(key)
    if "default" not in node:
        raise MoemuiError(f"config key {key!r} has no default in the schema")
    return copy.deepcopy(node["default"])
