"""The config schema (``moemui/schemas/config.schema.yaml``; where it is and reading
it: :mod:`moemui.defaults`, which reads every default from it) and the checks it makes.

:func:`check_schema` fills a config's unset keys from the schema's defaults and fails
on the first value the schema rejects, naming its key; every value must also be a
finite JSON value (YAML can write ``.nan``, dates, sets).
"""

from __future__ import annotations

import copy
import math

import jsonschema

from moemui.defaults import SCHEMA, load_schema
from moemui.errors import MoemuiError

__all__ = ["RENAMED", "SCHEMA", "check_schema", "load_schema"]

#: Keys of earlier versions -> what took their place.
RENAMED = {
    "analyses.ablation.threshold": (
        "0.7.0 ablates at several thresholds: write analyses.ablation.thresholds, a list"
    ),
}


def _key(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _extend_with_default(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if "default" in sub and prop not in instance:
                    instance[prop] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _is_integer(checker, instance) -> bool:
    """An int, not a bool and not a float: jsonschema's own ``integer`` takes 64.0, which
    the jobs' ``int`` arguments reject."""
    return isinstance(instance, int) and not isinstance(instance, bool)


_Validator = jsonschema.validators.extend(
    _extend_with_default(jsonschema.Draft7Validator),
    type_checker=jsonschema.Draft7Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)

#: What YAML may give that JSON (the jobs' --spec and params) has too.
_JSON_SCALARS = (str, int, float, bool, type(None))


def _check_values(node, path: list) -> None:
    """Every value in the config is finite (no .nan, .inf) and a JSON value (no YAML
    date, set or binary), naming the first offending key."""
    if isinstance(node, float) and not math.isfinite(node):
        raise MoemuiError(f"config key '{_key(path)}': {node} is not a finite number")
    if isinstance(node, dict):
        for key, value in node.items():
            if path and not isinstance(key, str):  # top level: "unknown key", by the schema
                raise MoemuiError(
                    f"config key '{_key([*path, key])}': the key {key!r} is a YAML "
                    f"{type(key).__name__}, not a string (quote it)"
                )
            _check_values(value, [*path, key])
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _check_values(value, [*path, i])
    elif not isinstance(node, _JSON_SCALARS):
        raise MoemuiError(
            f"config key '{_key(path)}': {node!r} is a YAML {type(node).__name__}, not a "
            "string, number, boolean, list or mapping (quote it)"
        )


def check_schema(config: dict, schema: dict | None = None) -> None:
    """Check ``config`` (a mapping) against ``schema`` (default: the package's), in
    place, filling the defaults.

    Raises
    ------
    MoemuiError
        ``config key '<key>': <what is wrong>`` for the first problem found.
    """
    schema = schema or load_schema()
    _check_values(config, [])
    errors = sorted(_Validator(schema).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        path = list(err.absolute_path)
        if err.validator == "additionalProperties":
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})), key=str)
            key = _key(path + extra[:1])
            hint = f" ({RENAMED[key]})" if key in RENAMED else ""
            raise MoemuiError(f"config key '{key}': unknown key{hint}")
        if err.validator == "required":
            missing = err.message.split("'")[1]
            raise MoemuiError(f"config key '{_key(path + [missing])}': required but missing")
        message = err.message
        wrote_float = err.validator == "type" and isinstance(err.instance, float)
        whole = wrote_float and err.instance.is_integer() and abs(err.instance) < 2**53
        if whole and "integer" in err.validator_value:
            message += f" (write {int(err.instance)}, without a decimal point)"
        raise MoemuiError(f"config key '{_key(path)}': {message}")
