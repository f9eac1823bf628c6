"""Per-model loading options of the config: trust_remote_code and device_map."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from moemui.config import all_models, validate_config
from moemui.errors import MoemuiError
from moemui.recipes import build_model
from moemui.sources import load_model
from moemui.steps.capture import capture_task
from moemui.steps.responses import generate_task
from moemui.steps.tasks import materialise_task
from moemui.store import open_group


@pytest.fixture(scope="module")
def cell(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub-options")
    model = build_model("qwen2_moe_tiny", 0, root / "model")
    tasks = root / "t.jsonl"
    materialise_task({"id": "t", "source": "builtin:arithmetic", "n": 5}, tasks)
    return root, str(model), tasks


def test_config_defaults_and_series_inherit_them():
    config = validate_config(
        {
            "models": [{"id": "a", "source": "o/a", "device_map": "auto"}],
            "series": [
                {
                    "id": "s",
                    "source": "o/s",
                    "trust_remote_code": True,
                    "checkpoints": [{"step": 1, "revision": "r1"}],
                }
            ],
            "tasks": [{"id": "t", "source": "builtin:arithmetic", "n": 2}],
        }
    )
    a, s1 = all_models(config)
    assert (a["device_map"], a["trust_remote_code"]) == ("auto", False)
    assert (s1["device_map"], s1["trust_remote_code"]) == (None, True)


def test_unknown_device_map_names_its_key():
    with pytest.raises(MoemuiError, match=r"config key 'models\[0\]\.device_map'"):
        validate_config(
            {
                "models": [{"id": "a", "source": "o/a", "device_map": "everywhere"}],
                "tasks": [{"id": "t", "source": "builtin:arithmetic", "n": 2}],
            }
        )


def test_trust_remote_code_reaches_transformers_only_when_set(cell, monkeypatch):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    _, model, _ = cell
    seen = []
    for cls in (AutoConfig, AutoModelForCausalLM, AutoTokenizer):
        original = cls.from_pretrained.__func__

        def spy(klass, *args, _original=original, _name=cls.__name__, **kwargs):
            seen.append((_name, kwargs.get("trust_remote_code")))
            return _original(klass, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))
    load_model(model, "m", device="cpu")
    assert seen and {flag for _, flag in seen} == {False}
    seen.clear()
    load_model(model, "m", device="cpu", trust_remote_code=True)
    assert {name for name, _ in seen} == {"AutoConfig", "AutoModelForCausalLM", "AutoTokenizer"}
    assert {flag for _, flag in seen} == {True}


def test_device_map_placement_gives_the_same_responses_and_store(cell):
    """device_map='auto' (all on the CPU here; across GPUs on a multi-GPU node) goes
    through accelerate's dispatch and gives what a single-device load gives."""
    root, model, tasks = cell
    results = {}
    for name, device_map in (("single", None), ("mapped", "auto")):
        responses = root / f"{name}.jsonl"
        generate_task(
            "m",
            model,
            tasks,
            responses,
            device="cpu",
            batch_size=5,
            max_new_tokens=4,
            device_map=device_map,
        )
        capture_task(
            "m",
            model,
            "t",
            tasks,
            responses,
            root / f"{name}.zarr" / "m" / "t",
            device="cpu",
            device_map=device_map,
        )
        results[name] = (responses.read_text(), open_group(root / f"{name}.zarr", "m", "t"))
    assert results["single"][0] == results["mapped"][0]
    single, mapped = results["single"][1].load(), results["mapped"][1].load()
    for name in single.data_vars:
        np.testing.assert_array_equal(single[name].values, mapped[name].values, err_msg=name)
    xr.testing.assert_identical(single.drop_attrs(), mapped.drop_attrs())
