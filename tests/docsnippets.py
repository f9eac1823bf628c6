"""The code blocks of the documentation (README.md, docs/*.md), parsed and checked.

tests/test_docs.py runs these checks on every block; tests/test_workflow.py runs the
python blocks in a finished run. The conventions a page follows:

- Every fenced block (```) names its language: ``bash``, ``yaml``, ``python`` or
  ``text`` (output, directory trees, formulas: never run). An indented fence (in a list)
  is dedented by its indent.
- ``yaml``: a config fragment, merged over :data:`BASE_CONFIG` as Snakemake merges config
  files (mappings recursively, lists replaced); a complete config (``models`` and
  ``tasks``) stands alone. It must pass what workflow/rules/common.smk checks at load
  (``validate_config(..., read_data=True)``, every model and task source parsed), with
  the page's project as the working directory. A first line ``# file: NAME`` also writes
  the block as NAME (relative, inside the project) into the page's project, the
  temporary copy of the repository (:data:`PROJECT_FILES`) in which its bash blocks run.
- ``python``: compiles (test_docs), and runs in a finished tiny run (test_workflow: the
  page's blocks in order in one namespace, ``"olmoe-v1"`` read as ``"olmoe-tiny"``,
  warnings as errors).
- ``bash``: split into commands (``\\``-continued lines joined, ``#`` comments and blank
  lines dropped, split on ``&&``; any other shell operator fails, and nothing is
  expanded: no ``$VAR``, ``~`` or globs). Each command is checked by its program
  (:data:`CHECKS`, each check's docstring says what it does); a program, or a form of
  one, without a check fails with "no check for `<cmd>` (FILE:LINE)". ``export`` and
  ``cd`` hold for the block's following commands only.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.util
import io
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT, snakemake_command, snakemake_env

from moemui.plan import merge  # as Snakemake merges config files

LANGUAGES = ("bash", "yaml", "python", "text")
#: What a yaml fragment is merged over: one builtin model, one small builtin task.
BASE_CONFIG = {
    "models": [{"id": "m", "source": "builtin:olmoe_tiny"}],
    "tasks": [{"id": "t", "source": "builtin:arithmetic", "n": 4}],
}
#: What a page's project copies from the repository (constraints.txt: the envs name it;
#: examples/: the example task file the docs use).
PROJECT_FILES = (
    "Snakefile",
    "workflow",
    "config",
    "profiles",
    "envs",
    "constraints.txt",
    "examples",
)


SNAKEMAKE_TIMEOUT = 300
MOEMUI_TIMEOUT = 120


class DocCheckError(AssertionError):
    """A block or command that breaks the conventions; the message names FILE:LINE."""


def doc_pages(root: Path = REPO_ROOT) -> list[Path]:
    """README.md and every docs/*.md, in that order."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


# --------------------------------------------------------------------------------------
# Blocks and commands
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """A fenced block: its page (a path relative to the repository), the line of its
    opening fence, its language ("" when none) and its text."""

    page: str
    line: int
    lang: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def file_name(self) -> str | None:
        """NAME of a yaml block whose first line is ``# file: NAME``."""
        match = re.match(r"#\s*file:\s*(\S+)\s*$", self.text.split("\n", 1)[0])
        return match[1] if self.lang == "yaml" and match else None


def parse_blocks(text: str, page: str) -> list[Block]:
    """The fenced blocks of a markdown text (an indented fence is dedented by its indent)."""
    blocks, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        opening = re.match(r"^( *)(`{3,})(.*)$", lines[i])
        i += 1
        if not opening:
            continue
        indent, fence, info = opening.groups()
        start, body = i, []
        while i < len(lines) and not re.match(rf"^ *{fence}`*\s*$", lines[i]):
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        if i == len(lines):
            raise DocCheckError(f"{page}:{start}: the fence opened here is never closed")
        i += 1
        lang = info.split()[0] if info.split() else ""
        blocks.append(Block(page, start, lang, "\n".join(body) + "\n"))
    return blocks


def page_blocks(path: Path) -> list[Block]:
    """The blocks of a page of the repository."""
    return parse_blocks(path.read_text(encoding="utf-8"), path.relative_to(REPO_ROOT).as_posix())


@dataclass(frozen=True)
class Command:
    """One command of a bash block: its words and the line it starts on."""

    argv: tuple[str, ...]
    page: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    def __str__(self) -> str:
        return shlex.join(self.argv)


def shell_words(line: str) -> list[str]:
    """A line's words as the shell quotes them, operators (``&&``, ``|``...) as words of
    their own, from an unquoted ``#`` on dropped."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split, lexer.commenters = True, "#"
    return list(lexer)


def split_commands(block: Block) -> list[Command]:
    """The commands of a bash block: ``\\``-continued lines joined, ``#`` comments (a
    word starting with ``#``) and blank lines dropped, split on ``&&``."""
    commands, lines, i = [], block.text.split("\n"), 0
    while i < len(lines):
        line_no, logical = block.line + 1 + i, lines[i]
        while logical.endswith("\\") and i + 1 < len(lines):
            i += 1
            logical = logical[:-1] + " " + lines[i]
        i += 1
        try:
            words = shell_words(logical)
        except ValueError as err:
            raise DocCheckError(f"{block.page}:{line_no}: {err}") from None
        current: list[str] = []
        for word in [*words, "&&"]:
            if word == "&&":
                if current:
                    commands.append(Command(tuple(current), block.page, line_no))
                current = []
            elif set(word) <= set("();<>|&"):
                raise DocCheckError(
                    f"shell operator `{word}` is not supported, only `&&` ({block.page}:{line_no})"
                )
            else:
                current.append(word)
    return commands


# --------------------------------------------------------------------------------------
# Languages, yaml, python
# --------------------------------------------------------------------------------------


def check_language(block: Block) -> None:
    """The block names one of :data:`LANGUAGES`."""
    if block.lang not in LANGUAGES:
        named = f"`{block.lang}`" if block.lang else "no language"
        raise DocCheckError(
            f"{block.where}: code block with {named}; use one of {', '.join(LANGUAGES)}"
        )


def check_yaml(block: Block, project: Path) -> dict:
    """A config fragment over :data:`BASE_CONFIG` (a complete config as it is) passes
    what workflow/rules/common.smk checks at load, with ``project`` as the working
    directory (relative paths resolve there). Returns the validated config."""
    from moemui.config import SCHEMA, all_models, load_schema, validate_config
    from moemui.errors import MoemuiError
    from moemui.sources import parse_source
    from moemui.tasks import parse_task_source

    try:
        fragment = yaml.safe_load(block.text)
    except yaml.YAMLError as err:
        raise DocCheckError(f"{block.where}: not YAML: {err}") from None
    if not isinstance(fragment, dict):
        raise DocCheckError(f"{block.where}: a yaml block is a config mapping")
    complete = {"models", "tasks"} <= fragment.keys()
    config = copy.deepcopy(fragment) if complete else merge(BASE_CONFIG, fragment)
    try:
        with contextlib.chdir(project):
            validate_config(config, load_schema(SCHEMA), read_data=True)
            for model in all_models(config):
                parse_source(model["source"], model["id"])
            for task in config["tasks"]:
                parse_task_source(task["source"], task["id"])
    except MoemuiError as err:
        raise DocCheckError(f"{block.where}: invalid config: {err}") from None
    return config


def python_source(block: Block, replace: dict[str, str] | None = None) -> str:
    """A python block's code, padded so that its line numbers are the page's."""
    text = block.text
    for old, new in (replace or {}).items():
        text = text.replace(old, new)
    return "\n" * block.line + text


# --------------------------------------------------------------------------------------
# Projects and the state of a bash block
# --------------------------------------------------------------------------------------


def make_project(root: Path, blocks: list[Block]) -> Path:
    """``root``: a copy of the repository's workflow (:data:`PROJECT_FILES`) with the
    page's ``# file:`` blocks written in it."""
    root.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, dirs_exist_ok=True)
        else:
            shutil.copy(source, root / name)
    for block in blocks:
        name = block.file_name
        if name is None:
            continue
        target = (root / name).resolve()
        if Path(name).is_absolute() or not target.is_relative_to(root.resolve()):
            raise DocCheckError(f"{block.where}: `# file: {name}` is not inside the project")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block.text, encoding="utf-8")
    return root


def files_digest(blocks: list[Block]) -> str:
    """What a page's ``# file:`` blocks write, as a digest (part of a dry run's cache key)."""
    files = sorted((b.file_name, b.text) for b in blocks if b.file_name)
    return hashlib.sha256(repr(files).encode()).hexdigest()


#: The phases of a bash block: "repo" checks against the repository (fast), "project"
#: runs snakemake and moemui in the page's project (tests marked workflow).
REPO, PROJECT, BOTH = "repo", "project", "both"


@dataclass
class Context:
    """A bash block's state: the page's project, the directory its commands run in
    (``cd``), the variables they see (``export``), and where absolute paths map to."""

    project: Path
    outside: Path
    phase: str
    digest: str = ""
    cwd: Path = field(init=False)
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cwd = self.project

    def run_env(self) -> dict[str, str]:
        env = snakemake_env()
        env.pop("SNAKEMAKE_OUTPUT_CACHE", None)  # only what the block exports
        return {**env, **self.env}


def _fail(cmd: Command, what: str, output: str = "") -> None:
    tail = f"\n{output[-4000:]}" if output else ""
    raise DocCheckError(f"`{cmd}` ({cmd.where}): {what}{tail}")


def _run(cmd: Command, argv: list[str], cwd: Path, env: dict, timeout: float):
    try:
        return subprocess.run(
            argv,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        _fail(cmd, f"still running after {timeout} s")


def _executable(name: str) -> str:
    """``name`` from this interpreter's environment, else from PATH."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if not found:
        raise DocCheckError(f"`{name}` is not installed")
    return found


# --------------------------------------------------------------------------------------
# The checks, one per program
# --------------------------------------------------------------------------------------

#: Dry runs done: (command, its directory in the project, exported variables, the
#: page's files) -> (exit status, output). The same command in two pages runs once.
DRY_RUNS: dict[tuple, tuple[int, str]] = {}


def conda_env_files(rules_dir: Path) -> list[Path]:
    """The env files of the rules' ``conda:`` directives (relative to their rule file)."""
    found = set()
    for rules in sorted(rules_dir.glob("*.smk")):
        for name in re.findall(r"^\s+conda:\s*\n\s+\"([^\"]+)\"", rules.read_text(), re.M):
            found.add((rules.parent / name).resolve())
    return sorted(found)


def check_conda_envs(cmd: Command, project: Path) -> None:
    """Every env file a ``--sdm conda`` run would create exists, parses, and names the
    files its pip section reads (``-c``/``-r``)."""
    envs = conda_env_files(project / "workflow" / "rules")
    if not envs:
        _fail(cmd, "--sdm conda, but no rule has a conda env")
    for path in envs:
        if not path.exists():
            _fail(cmd, f"conda env {path.relative_to(project)} does not exist")
        env = yaml.safe_load(path.read_text())
        if not isinstance(env, dict) or not env.get("dependencies"):
            _fail(cmd, f"conda env {path.name} has no dependencies")
        for dep in env["dependencies"]:
            for line in dep.get("pip", []) if isinstance(dep, dict) else []:
                option = re.match(r"-[cr]\s+(\S+)", line)
                if option and not (path.parent / option[1]).exists():
                    _fail(cmd, f"conda env {path.name}: {option[1]} does not exist")


def without_conda(args: list[str]) -> tuple[list[str], bool]:
    """``args`` without ``--sdm conda`` / ``--use-conda``, and whether they had it."""
    out, had, i = [], False, 0
    while i < len(args):
        if args[i] == "--use-conda":
            had, i = True, i + 1
            continue
        if args[i] in ("--sdm", "--software-deployment-method"):
            j = i + 1
            while j < len(args) and not args[j].startswith("-"):
                j += 1
            methods = [m for m in args[i + 1 : j] if m != "conda"]
            had |= len(methods) < j - i - 1
            out += [args[i], *methods] if methods else []
            i = j
            continue
        out.append(args[i])
        i += 1
    return out, had


def check_snakemake(cmd: Command, ctx: Context) -> None:
    """A dry run (``-n`` appended; ``--lint`` runs as is) in the page's project, exit 0.
    Conda is not installed here and Snakemake refuses ``--sdm conda`` without it (even
    dry): such a command dry-runs without it, and its env files are checked instead."""
    args, conda = without_conda(list(cmd.argv[1:]))
    if conda:
        check_conda_envs(cmd, ctx.project)
    if "--lint" not in args and not {"-n", "--dry-run", "--dryrun"} & set(args):
        args.append("-n")
    key = (tuple(args), str(ctx.cwd.relative_to(ctx.project)), tuple(sorted(ctx.env.items())))
    key += (ctx.digest,)
    if key not in DRY_RUNS:
        proc = _run(cmd, [*snakemake_command(), *args], ctx.cwd, ctx.run_env(), SNAKEMAKE_TIMEOUT)
        DRY_RUNS[key] = (proc.returncode, proc.stdout)
    status, output = DRY_RUNS[key]
    if status != 0:
        _fail(cmd, f"exited {status}, run as `snakemake {shlex.join(args)}`", output)


def check_moemui(cmd: Command, ctx: Context) -> None:
    """Run for real in the page's project (offline), exit 0."""
    proc = _run(cmd, [_executable("moemui"), *cmd.argv[1:]], ctx.cwd, ctx.run_env(), MOEMUI_TIMEOUT)
    if proc.returncode != 0:
        _fail(cmd, f"exited {proc.returncode}", proc.stdout)


def check_export(cmd: Command, ctx: Context) -> None:
    """``export NAME=VALUE ...``: set for the block's following commands; an absolute
    VALUE is mapped into a temporary directory (created)."""
    for word in cmd.argv[1:]:
        name, eq, value = word.partition("=")
        if not eq or not re.fullmatch(r"[A-Za-z_]\w*", name):
            _fail(cmd, f"`{word}` is not NAME=VALUE")
        if value.startswith("/"):
            mapped = ctx.outside / value.lstrip("/")
            mapped.mkdir(parents=True, exist_ok=True)
            value = str(mapped)
        ctx.env[name] = value


def check_cd(cmd: Command, ctx: Context) -> None:
    """``cd DIR``: DIR must exist in the page's project."""
    if len(cmd.argv) != 2:
        _fail(cmd, "cd takes one directory")
    target = (ctx.cwd / cmd.argv[1]).resolve()
    if not target.is_dir() or not target.is_relative_to(ctx.project.resolve()):
        _fail(cmd, "no such directory in the project")
    ctx.cwd = target


@cache
def bench_module(path: str):
    """A benchmarks/ script imported by path (not as __main__), once."""
    spec = importlib.util.spec_from_file_location(f"_docs_{Path(path).stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_python(cmd: Command, ctx: Context) -> None:
    """``python benchmarks/NAME.py ARGS``: ARGS parse with the script's
    ``build_parser()``; ``python3 -m venv DIR``: as :func:`check_venv`."""
    if cmd.argv[1:3] == ("-m", "venv"):
        return check_venv(cmd, ctx)
    script = cmd.argv[1] if len(cmd.argv) > 1 else ""
    if not re.fullmatch(r"benchmarks/\w+\.py", script):
        return no_check(cmd, ctx)
    path = REPO_ROOT / script
    if not path.exists():
        _fail(cmd, f"{script} does not exist")
    parser = bench_module(str(path)).build_parser()
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(list(cmd.argv[2:]))
    except SystemExit:
        _fail(cmd, f"{script} refuses its arguments", stderr.getvalue())


@cache
def ci_commands() -> tuple[tuple[str, ...], ...]:
    """The install commands of .ci/run (its lines running pip, python or an activate)."""
    lines = (REPO_ROOT / ".ci" / "run").read_text().splitlines()
    pattern = r"\s*(pip3?|python3?|\.|source)\s"
    return tuple(tuple(shell_words(line)) for line in lines if re.match(pattern, line))


def check_venv(cmd: Command, ctx: Context) -> None:
    """``python3 -m venv DIR``: CI creates a venv too."""
    if not any(c[1:3] == ("-m", "venv") for c in ci_commands()):
        _fail(cmd, ".ci/run creates no venv")


def check_activate(cmd: Command, ctx: Context) -> None:
    """``. DIR/bin/activate`` / ``source ...``: CI activates a venv too."""
    if len(cmd.argv) != 2 or not cmd.argv[1].endswith("bin/activate"):
        return no_check(cmd, ctx)
    if not any(c[0] in (".", "source") and c[1].endswith("bin/activate") for c in ci_commands()):
        _fail(cmd, ".ci/run activates no venv")


def check_pip(cmd: Command, ctx: Context) -> None:
    """``pip install ...``: one of .ci/run's installs, the same packages and flags
    (``--quiet`` aside)."""
    if cmd.argv[1:2] != ("install",):
        return no_check(cmd, ctx)

    def args(argv):
        return [a for a in argv[2:] if a not in ("--quiet", "-q")]

    installs = [
        args(c) for c in ci_commands() if c[:2] in (("pip", "install"), ("pip3", "install"))
    ]
    if args(cmd.argv) not in installs:
        _fail(cmd, "not an install of .ci/run: " + "; ".join(shlex.join(i) for i in installs))


@cache
def pytest_options() -> dict[str, bool]:
    """The options ``pytest --help`` lists (with its plugins), each: takes a value."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    options = {}
    for line in proc.stdout.splitlines():
        spec = re.match(r"  (-\S.*?)(?:\s{2,}|$)", line)
        if not spec:
            continue
        alts = [re.match(r"(-[^\s=]+)[= ]?(.*)", alt).groups() for alt in spec[1].split(", ")]
        takes_value = any(value for _, value in alts)
        options.update({name: takes_value for name, _ in alts})
    return options


@cache
def registered_markers() -> frozenset[str]:
    """The markers pyproject.toml registers."""
    ini = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
    return frozenset(re.match(r"\w+", m)[0] for m in ini["ini_options"]["markers"])


def check_pytest(cmd: Command, ctx: Context) -> None:
    """Every option one pytest accepts (``pytest --help``; ``-n`` is pytest-xdist's),
    every ``-m`` marker registered in pyproject.toml, every path an existing one."""
    options, args = pytest_options(), list(cmd.argv[1:])
    while args:
        arg = args.pop(0)
        if not arg.startswith("-") or arg == "-":
            if not (REPO_ROOT / arg.split("::")[0]).exists():
                _fail(cmd, f"{arg}: no such test path")
            continue
        name, value = (arg.split("=", 1) + [None])[:2] if arg.startswith("--") else (arg, None)
        if not arg.startswith("--") and len(arg) > 2:
            name, value = arg[:2], arg[2:]
        if name not in options:
            _fail(cmd, f"pytest has no option {name}")
        if options[name] and value is None:
            if not args:
                _fail(cmd, f"{name} takes a value")
            value = args.pop(0)
        elif not options[name] and value:
            flags = [f"-{c}" for c in value]
            if not all(f in options and not options[f] for f in flags):
                _fail(cmd, f"{arg}: not a pytest option")
        if name == "-n" and importlib.util.find_spec("xdist") is None:
            _fail(cmd, "-n needs pytest-xdist")
        if name in ("-m",):
            unknown = set(re.findall(r"\w+", value)) - {"and", "or", "not"} - registered_markers()
            if unknown:
                _fail(cmd, f"markers not registered in pyproject.toml: {sorted(unknown)}")


def check_tool(cmd: Command, ctx: Context) -> None:
    """``ruff ...`` / ``snakefmt ...``: read-only checks, run for real from the
    repository's root, exit 0."""
    proc = _run(cmd, [_executable(cmd.argv[0]), *cmd.argv[1:]], REPO_ROOT, ctx.run_env(), 120)
    if proc.returncode != 0:
        _fail(cmd, f"exited {proc.returncode}", proc.stdout)


def check_git(cmd: Command, ctx: Context) -> None:
    """``git worktree add DIR [REV]``: REV is a commit of the repository (skipped when
    a shallow checkout lacks it)."""
    if cmd.argv[1:3] != ("worktree", "add"):
        return no_check(cmd, ctx)
    positional = [a for a in cmd.argv[3:] if not a.startswith("-")]
    if len(positional) < 2:
        return
    rev = positional[1]
    git = ["git", "-C", str(REPO_ROOT)]
    if subprocess.run(
        [*git, "cat-file", "-e", f"{rev}^{{commit}}"], capture_output=True
    ).returncode:
        shallow = subprocess.run(
            [*git, "rev-parse", "--is-shallow-repository"], capture_output=True, text=True
        )
        if shallow.stdout.strip() == "true":
            pytest.skip(f"{cmd.where}: {rev} is not in this shallow checkout")
        _fail(cmd, f"{rev} is not a commit of the repository")


def no_check(cmd: Command, ctx: Context) -> None:
    """A program (or form of it) without a check: fails, so that a new snippet gets one."""
    raise DocCheckError(f"no check for `{cmd}` ({cmd.where})")


#: program -> (its check, the phase it runs in).
CHECKS: dict[str, tuple[Callable[[Command, Context], None], str]] = {
    "snakemake": (check_snakemake, PROJECT),
    "moemui": (check_moemui, PROJECT),
    "export": (check_export, BOTH),
    "cd": (check_cd, BOTH),
    "python": (check_python, REPO),
    "python3": (check_python, REPO),
    ".": (check_activate, REPO),
    "source": (check_activate, REPO),
    "pip": (check_pip, REPO),
    "pip3": (check_pip, REPO),
    "pytest": (check_pytest, REPO),
    "ruff": (check_tool, REPO),
    "snakefmt": (check_tool, REPO),
    "git": (check_git, REPO),
}


def runs_in_project(block: Block) -> bool:
    """Whether a bash block has a command of the project phase (snakemake, moemui)."""
    return any(CHECKS.get(c.argv[0], (None, REPO))[1] == PROJECT for c in split_commands(block))


def run_block(block: Block, ctx: Context) -> None:
    """Check a bash block's commands in order: those of ``ctx.phase`` and the state
    changes (``export``, ``cd``); a command without a check fails in every phase."""
    for cmd in split_commands(block):
        check, phase = CHECKS.get(cmd.argv[0], (no_check, BOTH))
        if phase in (BOTH, ctx.phase):
            check(cmd, ctx)
