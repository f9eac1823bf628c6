"""Every module's docstring examples run (doctest), one test per module of src/moemui.

A module that needs an optional dependency which is not installed (torch for the
capture, say) is skipped, naming it; any other import failure fails.
"""

from __future__ import annotations

import doctest
import importlib
import io
import types
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "moemui"


def _module_names() -> list[str]:
    """Every module of the package, by name (``__main__`` modules run on import)."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _run(module: types.ModuleType) -> tuple[int, int, str]:
    """Run the examples of the docstrings defined in ``module``: (examples, failures,
    the runner's report)."""
    report = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in doctest.DocTestFinder().find(module, module.__name__):
        runner.run(test, out=report.write)
    return runner.tries, runner.failures, report.getvalue()


def test_the_runner_reports_a_failing_example():
    module = types.ModuleType("fake", ">>> 1 + 1\n3\n>>> \"ok\"\n'ok'\n")
    tries, failures, report = _run(module)
    assert (tries, failures) == (2, 1)
    assert "Expected:\n    3\nGot:\n    2" in report


def test_every_module_is_found():
    names = _module_names()
    assert {"moemui", "moemui.api", "moemui.store.layout", "moemui.analyses.keys"} <= set(names)
    assert not any(n.endswith("__main__") for n in names)


@pytest.mark.parametrize("name", _module_names())
def test_doctests(name):
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name and err.name.split(".")[0] != "moemui":
            pytest.skip(f"{name} needs {err.name}, not installed")
        raise
    tries, failures, report = _run(module)
    assert failures == 0, report
    if name in ("moemui", "moemui.api"):  # the public API is shown by example
        assert tries >= 3
