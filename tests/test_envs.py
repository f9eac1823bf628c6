"""The conda env files carry the same pins as pyproject.toml."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ENV_FILES = sorted((ROOT / "envs").glob("*.yaml"))


def _pins(requirements) -> dict[str, str]:
    out = {}
    for req in requirements:
        for op in ("==", ">="):
            if op in req:
                name, ver = req.split(op)
                out[name.strip().lower()] = op + ver.strip()
                break
    return out


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_env_file_parses_and_pins_match_pyproject(env_file):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = _pins(project["dependencies"])
    env = yaml.safe_load(env_file.read_text())
    assert env["channels"] and "python=3.11" in env["dependencies"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    pinned = _pins(r for r in pip if not r.startswith("-e"))
    for name, pin in pinned.items():
        assert wanted.get(name) == pin, f"{env_file.name}: {name}{pin} vs pyproject"
    assert set(wanted) <= set(pinned), f"{env_file.name} misses {set(wanted) - set(pinned)}"


def test_every_rule_names_an_env_file():
    rules = (ROOT / "workflow" / "rules").glob("*.smk")
    text = "\n".join(p.read_text() for p in rules)
    n_rules = text.count("\nrule ") + text.startswith("rule ")
    assert n_rules > 0 and text.count('conda:\n        "../../envs/') == n_rules
    assert ENV_FILES
