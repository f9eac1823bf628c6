"""Model sources: parsing, and the Hub helpers' errors when offline."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from moemui.errors import MoemuiError
from moemui.sources import ModelSource, parse_source


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("builtin:olmoe_tiny", ModelSource("builtin", "olmoe_tiny")),
        ("trained:olmoe_v2@150", ModelSource("trained", "olmoe_v2@150")),
        ("local:ckpt/step1", ModelSource("local", "ckpt/step1")),
        ("./ckpt", ModelSource("local", "./ckpt")),
        ("/abs/ckpt", ModelSource("local", "/abs/ckpt")),
        ("~/ckpt", ModelSource("local", "~/ckpt")),
        ("allenai/OLMoE-1B-7B-0924", ModelSource("hub", "allenai/OLMoE-1B-7B-0924")),
    ],
)
def test_parse_source(text, expected):
    assert parse_source(text) == expected


@pytest.mark.parametrize("text", ["", "olmoe", "a/b/c", "http://x/y"])
def test_unknown_source_is_named(text):
    with pytest.raises(MoemuiError, match="model 'm'"):
        parse_source(text, "m")


def test_revisions_offline_names_the_repository(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "moemui.cli", "revisions", "allenai/OLMoE-1B-7B-0924"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(
        "ERROR: cannot list the revisions of allenai/OLMoE-1B-7B-0924: "
    ), proc.stderr
