"""A workflow config: validated, expanded and recorded.

One module per concern:

:mod:`~moemui.config.schema`
    the schema (``moemui/schemas/config.schema.yaml``): its defaults filled, its
    checks, finite JSON values;
:mod:`~moemui.config.validate`
    :func:`validate_config`: the schema, then the checks a schema cannot express (every
    error names the offending config key);
:mod:`~moemui.config.models`
    the models of a config (its series' checkpoints expanded), their resources and
    context;
:mod:`~moemui.config.thresholds`
    thresholds and rhos as the tables write them;
:mod:`~moemui.config.analyses`
    the ``analyses`` section, its nulls resolved;
:mod:`~moemui.config.record`
    the merged config of a run and the config files that made a results directory.

The workflow (``workflow/rules/common.smk``) and the CLI import the names below from
here.
"""

from __future__ import annotations

from moemui.config.analyses import analysis_settings
from moemui.config.models import all_models, model_context, model_resources, series_models
from moemui.config.record import (
    CONFIG_FILES_RECORD,
    check_config_files,
    config_hash,
    record_config_files,
    write_run_config,
)
from moemui.config.schema import RENAMED, SCHEMA, load_schema
from moemui.config.thresholds import table_value
from moemui.config.validate import validate_config

__all__ = [
    "CONFIG_FILES_RECORD",
    "RENAMED",
    "SCHEMA",
    "all_models",
    "analysis_settings",
    "check_config_files",
    "config_hash",
    "load_schema",
    "model_context",
    "model_resources",
    "record_config_files",
    "series_models",
    "table_value",
    "validate_config",
    "write_run_config",
]
