"""Shared fixtures: a tiny workflow config and a runner for the real ``snakemake`` CLI."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO_ROOT / "Snakefile"

#: Two tiny MoE families (routed only; with a shared expert), two tasks of 4 samples,
#: a capture batch of 3 so the second batch is partial.
TINY_CONFIG: dict = {
    "models": [
        {"id": "olmoe-tiny", "source": "builtin:olmoe_tiny"},
        {"id": "qwen2moe-tiny", "source": "builtin:qwen2_moe_tiny"},
    ],
    "tasks": [
        {"id": "arithmetic", "source": "builtin:arithmetic", "n": 4},
        {"id": "boolean", "source": "builtin:boolean_expressions", "n": 4},
    ],
    "thresholds": [0.0008, 0.001, 0.002],
    "generation": {"max_new_tokens": 4, "batch_size": 4},
    "capture": {"batch_size": 3},
}


@pytest.fixture(scope="session")
def tiny_config() -> Callable[..., dict]:
    """Factory: a fresh deep copy of the tiny config, top-level keys replaced by ``overrides``."""

    def make(**overrides) -> dict:
        config = copy.deepcopy(TINY_CONFIG)
        config.update(copy.deepcopy(overrides))
        return config

    return make


@pytest.fixture(scope="session")
def write_config() -> Callable[..., Path]:
    """Callable ``(workdir, config, name="config.yaml") -> path``: write ``config`` as
    ``workdir/name``."""

    def write(workdir: Path, config: dict, name: str = "config.yaml") -> Path:
        path = Path(workdir) / name
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        return path

    return write


def snakemake_command() -> list[str]:
    """The ``snakemake`` executable of this environment, else ``python -m snakemake``."""
    bin_dir = Path(sys.executable).parent
    exe = shutil.which("snakemake", path=str(bin_dir)) or shutil.which("snakemake")
    return [exe] if exe else [sys.executable, "-m", "snakemake"]


def snakemake_env() -> dict[str, str]:
    """The environment the workflow runs in: offline, this interpreter's scripts first
    (the rules call `moemui`)."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["HF_HUB_OFFLINE"] = "1"
    return env


def workflow_command(
    workdir: Path, *args: str, cores: int = 2, configfile: str | Path = "config.yaml"
) -> list[str]:
    """``snakemake`` on the repository's workflow in ``workdir`` with its config.yaml
    (or ``configfile``, relative to ``workdir``)."""
    return [
        *snakemake_command(),
        "--snakefile",
        str(SNAKEFILE),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / configfile),
        "--cores",
        str(cores),
        *args,
    ]


def spawn_workflow(workdir: Path, *args: str, cores: int = 2) -> subprocess.Popen:
    """Start the workflow in ``workdir`` in a session of its own (output discarded), so
    that a test can SIGKILL its whole process group."""
    return subprocess.Popen(
        workflow_command(workdir, *args, cores=cores),
        cwd=workdir,
        env=snakemake_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


@pytest.fixture(scope="session")
def run_snakemake() -> Callable[..., subprocess.CompletedProcess]:
    """Run the repository's workflow in ``workdir`` on ``workdir/config.yaml``.

    Returns a callable ``(workdir, *extra_args, timeout=600, cores=2, extra_env=None,
    configfile="config.yaml") -> CompletedProcess`` whose ``stdout`` holds stdout and
    stderr together. The process runs with ``workdir`` as its working directory, so
    nothing is written into the repository. ``cores`` is passed as ``--cores``;
    ``extra_env`` adds or replaces environment variables; ``configfile`` (relative to
    ``workdir``) is the config file passed as ``--configfile``.
    """
    env = snakemake_env()

    def run(
        workdir: Path,
        *args: str,
        timeout: float = 600,
        cores: int = 2,
        extra_env: dict[str, str] | None = None,
        configfile: str | Path = "config.yaml",
    ) -> subprocess.CompletedProcess:
        workdir = Path(workdir)
        return subprocess.run(
            workflow_command(workdir, *args, cores=cores, configfile=configfile),
            cwd=workdir,
            env={**env, **(extra_env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


#: Packages the table steps (envs/tables.yaml) must run without.
HEAVY = ("torch", "transformers", "tokenizers", "safetensors", "altair", "vl_convert")


def python_without_heavy(code: str, cwd: Path) -> subprocess.CompletedProcess:
    """Python ``code`` in a fresh interpreter where the :data:`HEAVY` packages cannot be
    imported (stdout and stderr captured)."""
    block = (
        "import sys\n"
        f"HEAVY = {HEAVY!r}\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in HEAVY:\n"
        "            raise ImportError(f'{name} is not in the tables env')\n"
        "sys.meta_path.insert(0, Block())\n"
    )
    return subprocess.run(
        [sys.executable, "-c", block + code], cwd=cwd, capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="session")
def run_without_heavy() -> Callable[[list[str], Path], subprocess.CompletedProcess]:
    """Callable ``(argv, cwd) -> CompletedProcess``: ``moemui ARGV`` through
    :func:`python_without_heavy`."""

    def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
        return python_without_heavy(f"from moemui.cli import main\nsys.exit(main({argv!r}))\n", cwd)

    return run


def pytest_collection_modifyitems(config, items) -> None:
    """The files that run workflows first, each file's tests in their order: with the
    two workers of ``--dist loadfile`` (pyproject.toml) the long files do not end the
    run on one worker while the other idles."""
    slow = {item.path for item in items if item.get_closest_marker("workflow")}
    slow |= {item.path for item in items if item.get_closest_marker("slurm")}
    items.sort(key=lambda item: item.path not in slow)
