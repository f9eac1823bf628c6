"""The defaults module reads the config schema: one place for every default."""

import pytest
import yaml

from moemui.config import SCHEMA
from moemui.defaults import default
from moemui.errors import MoemuiError


def test_defaults_are_the_schema_entries():
    schema = yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))
    props = schema["properties"]
    assert default("capture.batch_size") == props["capture"]["properties"]["batch_size"]["default"]
    assert default("models.dtype") == props["models"]["items"]["properties"]["dtype"]["default"]
    ablation = props["analyses"]["properties"]["ablation"]["properties"]
    assert default("analyses.ablation.seeds") == ablation["seeds"]["default"]


def test_a_default_is_a_fresh_copy():
    rho = default("analyses.rho")
    rho.append(0.9)
    assert 0.9 not in default("analyses.rho")


def test_unknown_key_and_key_without_default_are_named():
    with pytest.raises(MoemuiError, match=r"no config key 'capture\.nope' in the schema"):
        default("capture.nope")
    with pytest.raises(MoemuiError, match=r"config key 'tasks\.source' has no default"):
        default("tasks.source")
