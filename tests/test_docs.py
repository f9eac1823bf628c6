"""Every code block of the documentation (README.md and docs/*.md) is checked.

The conventions and the checks are in tests/docsnippets.py: each block names its
language (bash, yaml, python, text), each yaml block is a valid config fragment, each
python block compiles here and runs in tests/test_workflow.py (in a finished run), and
each command of a bash block passes the check of its program (snakemake dry-runs in a
copy of the workflow, marked ``workflow``). A failure names FILE:LINE.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from docsnippets import (
    PROJECT,
    REPO,
    Block,
    Context,
    DocCheckError,
    check_language,
    check_yaml,
    conda_env_files,
    doc_pages,
    files_digest,
    make_project,
    page_blocks,
    parse_blocks,
    python_source,
    run_block,
    runs_in_project,
    split_commands,
    without_conda,
)


def _collect():
    """Every page's blocks, and the pages that do not parse (an unclosed fence)."""
    blocks, errors = [], {}
    for path in doc_pages():
        try:
            blocks += page_blocks(path)
        except DocCheckError as err:
            errors[path.relative_to(REPO_ROOT).as_posix()] = str(err)
    return blocks, errors


BLOCKS, PARSE_ERRORS = _collect()
PAGES = [p.relative_to(REPO_ROOT).as_posix() for p in doc_pages()]


def blocks(lang: str, *, in_project: bool = False) -> list:
    """The blocks of a language as parameters named FILE:LINE."""
    chosen = [b for b in BLOCKS if b.lang == lang]
    if in_project:
        chosen = [b for b in chosen if _safe(runs_in_project, b)]
    return [pytest.param(b, id=b.where) for b in chosen]


def _safe(predicate, block) -> bool:
    try:
        return predicate(block)
    except DocCheckError:
        return False  # reported by test_bash_block


@pytest.fixture(scope="session")
def project(tmp_path_factory):
    """Callable ``(page) -> Path``: the page's project (a copy of the workflow with the
    page's ``# file:`` blocks), made once per page."""
    made: dict[str, Path] = {}

    def get(page: str) -> Path:
        if page not in made:
            page_blocks = [b for b in BLOCKS if b.page == page]
            made[page] = make_project(tmp_path_factory.mktemp("project"), page_blocks)
        return made[page]

    return get


@pytest.fixture(scope="session")
def outside(tmp_path_factory) -> Path:
    """Where the absolute paths of ``export`` go (one for the session: a dry run's cache
    key holds the mapped values)."""
    return tmp_path_factory.mktemp("outside")


def report(call, *args):
    """``call(*args)``, a :class:`DocCheckError` as a plain failure (its message only)."""
    try:
        return call(*args)
    except DocCheckError as err:
        pytest.fail(str(err), pytrace=False)


@pytest.mark.parametrize("page", PAGES)
def test_page_parses(page):
    if page in PARSE_ERRORS:
        pytest.fail(PARSE_ERRORS[page], pytrace=False)


def test_readme_has_blocks_of_every_kind():
    langs = {b.lang for b in BLOCKS if b.page == "README.md"}
    assert {"bash", "yaml", "python"} <= langs


@pytest.mark.parametrize("block", [pytest.param(b, id=b.where) for b in BLOCKS])
def test_block_names_its_language(block):
    report(check_language, block)


@pytest.mark.parametrize("block", blocks("yaml"))
def test_yaml_block_is_a_valid_config(block, project):
    report(check_yaml, block, project(block.page))


@pytest.mark.parametrize("block", blocks("python"))
def test_python_block_compiles(block):
    try:
        compile(python_source(block), block.page, "exec")
    except SyntaxError as err:
        pytest.fail(f"{block.page}:{err.lineno}: {err.msg}", pytrace=False)


@pytest.mark.parametrize("block", blocks("bash"))
def test_bash_block(block, project, outside):
    """The commands checked against the repository (installs, pytest, linters,
    benchmarks' arguments, git); snakemake and moemui run in the test below."""
    report(run_block, block, Context(project(block.page), outside, REPO))


@pytest.mark.workflow
@pytest.mark.parametrize("block", blocks("bash", in_project=True))
def test_bash_block_in_project(block, project, outside):
    """snakemake (a dry run) and moemui commands, in the page's project."""
    digest = files_digest([b for b in BLOCKS if b.page == block.page])
    report(run_block, block, Context(project(block.page), outside, PROJECT, digest))


# --------------------------------------------------------------------------------------
# The checks themselves, on a page made up here
# --------------------------------------------------------------------------------------

SYNTHETIC = """\
# A page

```
no language
```

```yaml
tasks:
  - id: t
    source: builtin:arithmetic
    bogus_key: 1
```

```bash
export CACHE=/shared/cache && frobnicate --all
```

```console
$ ls
```

```yaml
# file: my.yaml
models:
  - {id: a, source: "builtin:olmoe_tiny"}
tasks:
  - {id: t, source: "builtin:arithmetic", n: 2}
```
"""


@pytest.fixture
def synthetic(tmp_path):
    blocks = parse_blocks(SYNTHETIC, "synthetic.md")
    return blocks, make_project(tmp_path / "project", blocks), tmp_path / "outside"


def test_a_block_without_a_known_language_fails(synthetic):
    blocks, _, _ = synthetic
    assert [b.lang for b in blocks] == ["", "yaml", "bash", "console", "yaml"]
    with pytest.raises(DocCheckError, match=r"^synthetic\.md:3: code block with no language"):
        check_language(blocks[0])
    with pytest.raises(DocCheckError, match=r"^synthetic\.md:18: code block with `console`"):
        check_language(blocks[3])


def test_a_yaml_block_with_an_unknown_key_fails(synthetic):
    blocks, project, _ = synthetic
    with pytest.raises(DocCheckError, match=r"^synthetic\.md:7: invalid config: .*bogus_key"):
        check_yaml(blocks[1], project)


def test_a_file_block_is_written_into_the_project_and_validated(synthetic):
    blocks, project, _ = synthetic
    assert blocks[4].file_name == "my.yaml"
    assert (project / "my.yaml").read_text() == blocks[4].text
    assert [m["id"] for m in check_yaml(blocks[4], project)["models"]] == ["a"]
    # a fragment merges over the base config: the base's model and task, its thresholds
    config = check_yaml(Block("p.md", 1, "yaml", "thresholds: [0.001]\n"), project)
    assert [m["id"] for m in config["models"]] == ["m"] and config["thresholds"] == [0.001]


@pytest.mark.parametrize("phase", [REPO, PROJECT])
def test_an_unknown_command_fails_in_every_phase(synthetic, phase):
    blocks, project, outside = synthetic
    ctx = Context(project, outside, phase)
    with pytest.raises(
        DocCheckError, match=r"^no check for `frobnicate --all` \(synthetic\.md:15\)"
    ):
        run_block(blocks[2], ctx)
    # the export before it was applied, its absolute path mapped and made
    assert ctx.env == {"CACHE": str(outside / "shared" / "cache")}
    assert (outside / "shared" / "cache").is_dir()


def _bash(text: str):
    (block,) = parse_blocks(f"```bash\n{text}\n```\n", "t.md")
    return block


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ls | wc", r"shell operator `\|` is not supported"),
        ("pip install numpy", r"not an install of \.ci/run"),
        ("pip uninstall numpy", r"no check for `pip uninstall numpy`"),
        ("pytest -m 'not fast'", r"markers not registered in pyproject\.toml: \['fast'\]"),
        ("pytest --no-such-option", r"pytest has no option --no-such-option"),
        ("pytest tests/test_nothing.py", r"no such test path"),
        ("python benchmarks/store_bench.py --only nowhere", r"refuses its arguments"),
        ("python benchmarks/none.py", r"does not exist"),
        ("python -c 'print(1)'", r"no check for"),
        ("cd nowhere", r"no such directory in the project"),
        ("git worktree add /tmp/x 0000000000000000000000000000000000000001", r"not a commit"),
        ("git status", r"no check for `git status`"),
    ],
)
def test_a_bad_command_fails_naming_it(text, message, tmp_path):
    ctx = Context(make_project(tmp_path / "project", []), tmp_path / "outside", REPO)
    with pytest.raises(DocCheckError, match=message) as err:
        run_block(_bash(text), ctx)
    assert "t.md:2" in str(err.value)


def test_the_splitter_joins_continuations_and_drops_comments():
    block = _bash(
        '# a comment\n\n. .venv/bin/activate && pytest -m "not workflow"  # skip\n'
        "python benchmarks/x.py --a 1 \\\n    --b 2   # end\n"
    )
    commands = [(c.line, c.argv) for c in split_commands(block)]
    assert commands == [
        (4, (".", ".venv/bin/activate")),
        (4, ("pytest", "-m", "not workflow")),
        (5, ("python", "benchmarks/x.py", "--a", "1", "--b", "2")),
    ]


def test_good_commands_pass(tmp_path):
    ctx = Context(make_project(tmp_path / "project", []), tmp_path / "outside", REPO)
    text = (
        "python3 -m venv .venv && . .venv/bin/activate\n"
        'pip install -e ".[dev]" -c constraints.txt\n'
        "pytest -n 0 -x -ra -m 'not workflow and not slurm' tests/test_docs.py\n"
        "python benchmarks/generate_bench.py --only default --runs 1\n"
        "cd config && cd ..\n"
    )
    run_block(_bash(text), ctx)
    assert ctx.cwd == ctx.project.resolve()


def test_sdm_conda_is_dropped_and_its_envs_checked():
    assert without_conda(["--cores", "2", "--sdm", "conda"]) == (["--cores", "2"], True)
    assert without_conda(["--sdm", "conda", "apptainer", "-n"]) == (
        ["--sdm", "apptainer", "-n"],
        True,
    )
    assert without_conda(["--use-conda", "-n"]) == (["-n"], True)
    assert without_conda(["--cores", "2"]) == (["--cores", "2"], False)
    envs = conda_env_files(REPO_ROOT / "workflow" / "rules")
    assert [p.name for p in envs] == ["charts.yaml", "model.yaml", "tables.yaml"]


def test_every_benchmark_script_has_build_parser():
    from docsnippets import bench_module

    for path in sorted((REPO_ROOT / "benchmarks").glob("*.py")):
        parser = bench_module(str(path)).build_parser()
        assert parser.parse_args([]) is not None, path.name


def test_the_pages_are_readme_and_docs():
    assert PAGES[0] == "README.md"
    assert all(re.fullmatch(r"docs/[^/]+\.md", p) for p in PAGES[1:])
    assert all(Path(REPO_ROOT / p).exists() for p in PAGES)
