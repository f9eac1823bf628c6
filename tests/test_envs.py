"""The per-stage conda envs: pyproject's packages at constraints.txt's versions, and each
stage runs in its env.

envs/tables.yaml has no torch, transformers or Altair: the table steps are run here
with those packages made unimportable, on real files, to show they do not need them.
That each env's versions are constraints.txt's is checked in tests/test_dependencies.py.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from moemui.store import verify_group

ROOT = Path(__file__).resolve().parents[1]
ENV_FILES = sorted((ROOT / "envs").glob("*.yaml"))
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
#: What each stage's env adds to pyproject's core dependencies (its extras).
STAGE_EXTRAS = {"model.yaml": ["model"], "tables.yaml": ["data"], "charts.yaml": ["charts"]}


def _names(requirements) -> list[str]:
    """The package names of requirement strings (``moemui[...]`` self-references left out)."""
    names = [canonicalize_name(Requirement(r).name) for r in requirements]
    return [n for n in names if n != "moemui"]


def env_pins(env_file: Path) -> tuple[dict[str, str], list[str]]:
    """An env file's pip section: ``{package: exact version}`` and its option lines."""
    env = yaml.safe_load(env_file.read_text())
    assert env["channels"] and "python=3.11" in env["dependencies"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    pins = {}
    for line in (r for r in pip if not r.startswith("-")):
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==", f"{env_file.name}: {line} is not an exact pin"
        pins[canonicalize_name(req.name)] = spec.version
    return pins, [r for r in pip if r.startswith("-")]


def _rules() -> dict[str, str]:
    """Rule name -> rule text, over every rule file."""
    text = "\n".join(p.read_text() for p in sorted((ROOT / "workflow" / "rules").glob("*.smk")))
    return {m[1]: m[2] for m in re.finditer(r"(?ms)^rule (\w+):\n(.*?)(?=^\S|\Z)", text)}


def test_env_files_are_the_stages():
    assert sorted(p.name for p in ENV_FILES) == sorted(STAGE_EXTRAS)


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_env_names_pyprojects_core_and_stage_extras(env_file):
    extras = PROJECT["optional-dependencies"]
    wanted = set(_names(PROJECT["dependencies"]))
    for extra in STAGE_EXTRAS[env_file.name]:
        wanted |= set(_names(extras[extra]))
    pinned, options = env_pins(env_file)
    assert set(pinned) == wanted, f"{env_file.name} names other packages than pyproject"
    # the constraints pin what the named packages pull in; then the package itself
    assert options == ["-c ../constraints.txt", "-e ../"]


def test_extras_name_every_package_once():
    extras = PROJECT["optional-dependencies"]
    names = [n for group in ("model", "charts", "workflow", "data") for n in _names(extras[group])]
    names += _names(PROJECT["dependencies"])
    assert len(names) == len(set(names))
    assert extras["all"] == ["moemui[model,charts,workflow,data]"]
    assert "moemui[all]" in extras["dev"]


def test_every_rule_names_an_existing_env_file():
    rules = _rules()
    assert len(rules) >= 10
    for name, text in rules.items():
        match = re.search(r'conda:\n\s+"\.\./\.\./envs/([\w.]+)"', text)
        assert match, f"rule {name} has no conda env"
        assert (ROOT / "envs" / match[1]).is_file(), f"rule {name}: envs/{match[1]} missing"


def _commands_in(env: str) -> set[str]:
    """The moemui subcommands the rules of one env file run."""
    out = set()
    for text in _rules().values():
        if f'"../../envs/{env}"' in text:
            out |= set(re.findall(r"moemui (?:--threads \{threads:q\} )?([a-z][a-z-]+)", text))
            # the model steps' commands, built in common.smk (generate_command, ...)
            out |= set(re.findall(r"^\s+([a-z]+)_command\(", text, flags=re.M))
    return out


def test_model_rules_are_the_model_commands():
    assert _commands_in("model.yaml") == {
        "build-model",
        "train",
        "generate",
        "capture",
        "ablate",
    }


def _batch(rng: np.random.Generator, n: int):
    """Random scores of ``n`` samples of the 2-layer, 4-expert, 8-neuron test geometry."""
    from moemui.capture import BatchScores

    return BatchScores(
        score={"gate": rng.random((n, 2, 4, 8), dtype=np.float32)},
        pairtop={"gate": np.sort(rng.random((n, 2, 4), dtype=np.float32))[..., ::-1].copy()},
        route_tokens=np.full((n, 2, 4), 2, dtype=np.int32),
        route_weight=np.ones((n, 2, 4), dtype=np.float32),
        n_tokens=np.full(n, 4, dtype=np.int32),
    )


def _write_group(root: Path, model: str, task: str, seed: int) -> None:
    from moemui.adapters import Geometry
    from moemui.store import StoreWriter

    geo = Geometry("fam", "FamForCausalLM", [0, 1], [], 4, 0, 8, 2)
    rng = np.random.default_rng(seed)
    n = 3
    batch = _batch(rng, n)
    writer = StoreWriter(
        root / model / task, geo, ["a", "b", "c"], ("gate",), 4, {"model": model, "task": task}
    )
    writer.write(0, batch, np.array([True, False, True]))
    writer.publish()


def _write_shards(tmp_path: Path) -> list[str]:
    """A task of samples a, b, c in 2 shards (a, b and c): each shard's responses and
    store group; the gather commands' arguments."""
    from moemui.adapters import Geometry
    from moemui.store import StoreWriter

    tasks = tmp_path / "abc.jsonl"
    tasks.write_text(
        "".join(
            json.dumps({"id": i, "prompt": "p", "reference": "r", "meta": {"kind": "exact"}}) + "\n"
            for i in "abc"
        )
    )
    geo = Geometry("fam", "FamForCausalLM", [0, 1], [], 4, 0, 8, 2)
    rng = np.random.default_rng(0)
    responses, groups = [], []
    for index, ids in ((1, ["a", "b"]), (2, ["c"])):
        shard = tmp_path / "shards" / f"{index}-of-2"
        shard.mkdir(parents=True)
        (shard / "r.jsonl").write_text("".join(json.dumps({"id": i}) + "\n" for i in ids))
        responses.append(str(shard / "r.jsonl"))
        n, start = len(ids), 0 if index == 1 else 2
        batch = _batch(rng, n)
        shard_attr = {"index": index, "count": 2, "start": start, "stop": start + n}
        group = shard / "act.zarr" / "m" / "abc"
        writer = StoreWriter(
            group, geo, ids, ("gate",), 4, {"model": "m", "task": "abc", "shard": shard_attr}
        )
        writer.write(0, batch, np.ones(n, dtype=bool))
        writer.publish()
        groups.append(str(group))
    return [
        ["gather-responses", "--tasks", str(tasks), "--parts", *responses, "--out", "g.jsonl"],
        ["gather-store", "--tasks", str(tasks), "--parts", *groups, "--out", "g.zarr/m/abc"],
    ]


def test_table_steps_run_without_torch_transformers_or_altair(tmp_path, run_without_heavy):
    """Every command the tables env's rules run, on real inputs, with the heavy packages
    unimportable: the tables env needs none of them."""
    store = tmp_path / "act.zarr"
    for step, model in ((100, "m-step100"), (200, "m-step200")):
        _write_group(store, model, "arith", step)
        responses = tmp_path / "responses" / model / "arith.jsonl"
        responses.parent.mkdir(parents=True)
        rows = [
            {"id": i, "response": "1", "correct": c, "n_response_tokens": 2}
            for i, c in zip("abc", (True, step > 100, False), strict=True)
        ]
        responses.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = json.dumps({"id": "arith", "source": "builtin:arithmetic", "n": 5})
    groups = [str(store / m / "arith") for m in ("m-step100", "m-step200")]
    series = json.dumps(
        [
            {
                "id": "m",
                "checkpoints": [
                    {"model": "m-step100", "step": 100},
                    {"model": "m-step200", "step": 200},
                ],
            }
        ]
    )
    steps = [
        ["make-task", "--spec", spec, "--out", "tasks/arith.jsonl"],
        ["index-store", *groups],
        ["keys", "--group", groups[0], "--thresholds", "0.05", "0.1", "--out", "keys/a.npz"],
        ["mui", "--group", "keys/a.npz", "--thresholds", "0.05", "0.1", "--out", "mui/a.csv"],
        ["mui", "--group", groups[1], "--thresholds", "0.05", "0.1", "--out", "mui/b.csv"],
        ["concat", "mui/a.csv", "mui/b.csv", "--out", "mui.csv"],
        [
            "performance",
            *[str(p) for p in sorted((tmp_path / "responses").rglob("*.jsonl"))],
            "--out",
            "performance.csv",
        ],
        [
            "trajectory",
            "--mui",
            "mui.csv",
            "--performance",
            "performance.csv",
            "--series",
            series,
            "--out",
            "trajectory.csv",
        ],
    ]
    steps += _write_shards(tmp_path)
    # the analysis table commands run the same way, without the heavy packages, in
    # tests/test_analyses_config.py::test_analysis_table_commands_run_without_heavy_packages
    analyses = {"experts", "robustness", "mui-performance", "diversity", "aggregate-ablation"}
    assert {s[0] for s in steps} | analyses >= _commands_in("tables.yaml")
    for argv in steps:
        done = run_without_heavy(argv, tmp_path)
        assert done.returncode == 0, f"moemui {argv[0]}: {done.stderr}"
    assert len((tmp_path / "tasks/arith.jsonl").read_text().splitlines()) == 5
    assert [json.loads(line)["id"] for line in (tmp_path / "g.jsonl").open()] == ["a", "b", "c"]
    assert verify_group(tmp_path / "g.zarr", "m", "abc") == []
    assert (store / "zarr.json").is_file()
    mui = pd.read_csv(tmp_path / "mui.csv")
    assert set(mui["model"]) == {"m-step100", "m-step200"}
    perf = pd.read_csv(tmp_path / "performance.csv").set_index("model")
    assert perf.loc["m-step200", "n_correct"] == 2 and perf.loc["m-step100", "n_correct"] == 1
    trajectory = pd.read_csv(tmp_path / "trajectory.csv")
    assert len(trajectory) == 4  # 2 checkpoints x 2 thresholds (one variant, one task)
    later = trajectory[trajectory["step"] == 200]
    assert later["d_accuracy"].round(6).tolist() == [round(1 / 3, 6)] * 2
    assert set(later["phase"]) <= {"accumulating", "evolving"}


def test_blocker_really_blocks(tmp_path, run_without_heavy):
    """The check above would prove nothing if the heavy packages still imported."""
    done = run_without_heavy(["inspect", "builtin:olmoe_tiny", "--json"], tmp_path)
    assert done.returncode != 0 and "is not in the tables env" in done.stderr
