"""The ``analyses`` config section: defaults, resolved nulls, errors naming the key; and
the analysis commands: the table ones run without torch, transformers or Altair, and
known failures end in one ``ERROR:`` line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from moemui.config import analysis_settings, load_schema, validate_config
from moemui.errors import MoemuiError


def test_defaults_fill_the_section(tiny_config):
    config = validate_config(tiny_config())
    assert config["analyses"] == {
        "variant": None,
        "threshold": None,
        "rho": [0.1, 0.5, 0.6],
        "top_experts": 10,
        "diversity": {"sizes": [1, 2, 4, 8, 16, 32, 64], "draws": 5, "seed": 0},
        "ablation": {
            "cells": [],
            "variant": None,
            "thresholds": None,
            "seeds": [0, 1, 2],
            "n_samples": 64,
            "max_new_tokens": 8,
        },
    }
    settings = analysis_settings(config)
    assert (settings["variant"], settings["threshold"]) == ("gate", 0.0008)
    # the ablation: the focus threshold and the largest the store supports
    assert (settings["ablation"]["variant"], settings["ablation"]["thresholds"]) == (
        "gate",
        [0.0008, 0.01],
    )
    assert config["analyses"]["variant"] is None  # the config itself is left as given


def test_settings_resolve_the_ablation_to_the_focus(tiny_config):
    config = validate_config(
        tiny_config(analyses={"variant": "glu", "threshold": 0.002, "ablation": {"seeds": [4]}})
    )
    settings = analysis_settings(config)
    assert settings["ablation"]["variant"] == "glu"
    assert settings["ablation"]["thresholds"] == [0.002, 0.01]
    # a focus at capture.max_threshold is ablated once
    at_top = tiny_config(analyses={"threshold": 0.002}, capture={"max_threshold": 0.002})
    at_top["thresholds"] = [0.001, 0.002]
    assert analysis_settings(validate_config(at_top))["ablation"]["thresholds"] == [0.002]
    # thresholds of its own, any up to max_threshold, not only those of `thresholds`
    own = validate_config(
        tiny_config(
            analyses={
                "variant": "glu",
                "ablation": {"variant": "gate", "thresholds": [0.005, 0.001]},
            }
        )
    )
    assert analysis_settings(own)["ablation"]["variant"] == "gate"
    assert analysis_settings(own)["ablation"]["thresholds"] == [0.001, 0.005]


def test_every_analysis_key_is_described():
    section = load_schema()["properties"]["analyses"]
    assert section["additionalProperties"] is False

    def walk(node, path):
        for key, sub in node.get("properties", {}).items():
            assert sub.get("description"), f"{path}.{key} has no description"
            if sub.get("type") == "object":
                walk(sub, f"{path}.{key}")
                if "items" not in sub:
                    assert "default" in sub, f"{path}.{key}"

    walk(section, "analyses")


@pytest.mark.parametrize(
    ("analyses", "message"),
    [
        ({"variant": "act"}, "config key 'analyses.variant': 'act' is not a captured variant"),
        ({"threshold": 0.005}, "config key 'analyses.threshold': 0.005 is not one of the"),
        (
            {"ablation": {"variant": "act"}},
            "config key 'analyses.ablation.variant': 'act' is not a captured variant",
        ),
        (
            {"ablation": {"thresholds": [0.001, 0.03]}},
            "config key 'analyses.ablation.thresholds[1]': 0.03 exceeds capture.max_threshold",
        ),
        (
            {"ablation": {"thresholds": [0.001, 0.00100000001]}},
            "config key 'analyses.ablation.thresholds[1]': 0.00100000001 is too close to",
        ),
        (
            {"ablation": {"threshold": 0.001}},
            "config key 'analyses.ablation.threshold': unknown key (0.7.0 ablates at several "
            "thresholds: write analyses.ablation.thresholds, a list)",
        ),
        (
            {"ablation": {"cells": [{"model": "nope", "task": "boolean"}]}},
            "config key 'analyses.ablation.cells[0].model': unknown model 'nope'",
        ),
        (
            {"ablation": {"cells": [{"model": "olmoe-tiny", "task": "nope"}]}},
            "config key 'analyses.ablation.cells[0].task': unknown task 'nope'",
        ),
        (
            {
                "ablation": {
                    "cells": [
                        {"model": "olmoe-tiny", "task": "boolean"},
                        {"model": "olmoe-tiny", "task": "boolean"},
                    ]
                }
            },
            "config key 'analyses.ablation.cells[1]': duplicate cell (also cells[0])",
        ),
        ({"colour": "red"}, "config key 'analyses.colour': unknown key"),
        ({"diversity": {"draws": 0}}, "config key 'analyses.diversity.draws'"),
        ({"rho": [1.0]}, "config key 'analyses.rho[0]'"),
        (
            {"ablation": {"cells": [{"model": "olmoe-tiny"}]}},
            "config key 'analyses.ablation.cells[0].task': required but missing",
        ),
    ],
)
def test_bad_settings_name_their_key(tiny_config, analyses, message):
    with pytest.raises(MoemuiError) as err:
        validate_config(tiny_config(analyses=analyses))
    assert message in str(err.value)


# --------------------------------------------------------------------------------------
# The commands
# --------------------------------------------------------------------------------------


def _write_group(root: Path, model: str, task: str, seed: int, n: int = 5) -> str:
    from moemui.adapters import Geometry
    from moemui.capture import BatchScores
    from moemui.store import StoreWriter

    geo = Geometry("fam", "FamForCausalLM", [0, 2], [1], 3, 1, 8, 2)
    rng = np.random.default_rng(seed)
    score = rng.normal(size=(n, 2, 4, 8)).astype(np.float32)
    top = -np.sort(-score.reshape(n, 2, -1), axis=-1)[..., :4]
    route = np.zeros((n, 2, 4), dtype=np.int32)
    route[:, :, :3] = 2  # 3 tokens, top-2 of 3 routed experts: 6 picks, 2 each
    route[:, :, 3] = 3  # the shared expert sees every token
    batch = BatchScores(
        score={"gate": score, "glu": score * 0.5},
        pairtop={"gate": top, "glu": top * 0.5},
        route_tokens=route,
        route_weight=np.ones((n, 2, 4), dtype=np.float32),
        n_tokens=np.full(n, 3, dtype=np.int32),
    )
    writer = StoreWriter(
        root / model / task,
        geo,
        [f"s{i}" for i in range(n)],
        ("gate", "glu"),
        4,
        {"model": model, "task": task},
    )
    writer.write(0, batch, np.ones(n, dtype=bool))
    writer.publish()
    return str(root / model / task)


def test_analysis_table_commands_run_without_heavy_packages(tmp_path, run_without_heavy):
    store = tmp_path / "act.zarr"
    groups = [
        _write_group(store, model, task, seed)
        for seed, (model, task) in enumerate([("m1", "x"), ("m1", "y"), ("m2", "x"), ("m2", "y")])
    ]
    mui = pd.DataFrame(
        [
            {"model": m, "task": t, "variant": v, "threshold": tau, "mui": 0.1 + i / 100}
            | {"n_samples": 5}
            for i, (m, t) in enumerate([("m1", "x"), ("m1", "y"), ("m2", "x"), ("m2", "y")])
            for v in ("gate", "glu")
            for tau in (0.05, 0.1)
        ]
    )
    mui.to_csv(tmp_path / "mui.csv", index=False)
    perf = mui[["model", "task"]].drop_duplicates().assign(accuracy=[0.2, 0.4, 0.3, 0.5])
    perf.to_csv(tmp_path / "performance.csv", index=False)
    models = '{"m1": {"family": "f", "release": 1}, "m2": {"family": "f", "release": 2}}'
    steps = [
        ["experts", *groups, "--thresholds", "0.05", "0.1", "--rho", "0.5", "--top", "3"]
        + ["--out-experts", "e.csv", "--out-key-experts", "k.csv", "--out-top", "top.csv"]
        + ["--out-top-key", "topk.csv"],
        ["robustness", "--mui", "mui.csv", "--key-experts", "k.csv", "--experts", "e.csv"]
        + ["--out", "r.csv"],
        ["mui-performance", "--mui", "mui.csv", "--performance", "performance.csv"]
        + ["--models", models, "--out", "mp.csv", "--out-fits", "fits.csv"],
        ["diversity", *groups, "--thresholds", "0.1", "--sizes", "1", "2", "4"]
        + ["--draws", "3", "--out", "d.csv"],
        ["aggregate-ablation", "a1.csv", "a2.csv", "--out", "a.csv", "--out-summary", "as.csv"],
    ]
    for i, drops in enumerate(([0.0, 0.5, 0.1, 0.2], [0.0, 0.25, 0.25, 0.0]), start=1):
        pd.DataFrame(
            {
                "model": f"m{i}",
                "task": "x",
                "variant": "glu",
                "threshold": 0.1,
                "condition": ["baseline", "key", "random", "random"],
                "seed": [None, None, 0, 1],
                "n_neurons": [0, 4, 4, 4],
                "n_experts": [0, 2, 2, 2],
                "n_samples": 4,
                "accuracy": [0.75 - d for d in drops],
                "baseline_accuracy": 0.75,
                "accuracy_drop": drops,
                "drop_se": [0.0, 0.2, 0.1, 0.1],
            }
        ).to_csv(tmp_path / f"a{i}.csv", index=False)
    for argv in steps:
        done = run_without_heavy(argv, tmp_path)
        assert done.returncode == 0, f"moemui {argv[0]}: {done.stderr}"
    experts = pd.read_csv(tmp_path / "e.csv")
    assert len(experts) == 4 * 2 * 2 * 2 * 4  # cells x variants x thresholds x layers x experts
    keys = pd.read_csv(tmp_path / "k.csv")
    assert sorted(set(keys["rho"])) == [0.0, 0.5]
    top = pd.read_csv(tmp_path / "top.csv")
    assert (top.groupby(["model", "task"]).size() == 3).all()
    assert top[top["rank"] == 1]["expert_kind"].eq("shared").all()
    top_key = pd.read_csv(tmp_path / "topk.csv")
    assert (top_key.groupby(["model", "task", "variant", "threshold"]).size() <= 3).all()
    robustness = pd.read_csv(tmp_path / "r.csv")
    across = robustness[robustness["analysis"] == "mui_across_cells"]
    assert (across["n_cells"] == 4).all() and across["value"].notna().all()
    fits = pd.read_csv(tmp_path / "fits.csv")
    assert set(fits["family"]) == {"f"}
    diversity = pd.read_csv(tmp_path / "d.csv")
    assert set(diversity["task"]) == {"x", "y", "(mix)"}
    assert len(pd.read_csv(tmp_path / "a.csv")) == 8
    summary = pd.read_csv(tmp_path / "as.csv").set_index("model")
    assert summary["random_at_least_key"].to_dict() == {"m1": 0, "m2": 1}
    assert summary["p_value"].to_dict() == pytest.approx({"m1": 1 / 3, "m2": 2 / 3})


def test_missing_inputs_end_in_one_error_line(tmp_path, capsys):
    from moemui.cli import main

    argv = ["robustness", "--mui", str(tmp_path / "no.csv"), "--key-experts", "k.csv"]
    assert main([*argv, "--experts", "e.csv", "--out", str(tmp_path / "r.csv")]) == 1
    err = capsys.readouterr().err
    assert f"ERROR: {tmp_path / 'no.csv'}: file not found" in err
    assert "Traceback" not in err
    group = str(tmp_path / "act.zarr" / "m" / "t")
    argv = ["experts", group, "--thresholds", "0.1", "--out-experts", "e", "--out-key-experts"]
    assert main([*argv, "k", "--out-top", "t", "--out-top-key", "tk"]) == 1
    assert "no group m/t in the activations store" in capsys.readouterr().err
    group = _write_group(tmp_path / "act.zarr", "m", "t", 0)
    outs = ["k", "--out-top", "t", "--out-top-key", "tk"]
    assert main([*argv[:2], "--thresholds", "0.2", *argv[4:], *outs]) == 1
    assert "ERROR: m/t: k = 6 exceeds the 4 triple scores" in capsys.readouterr().err
    assert main(["chart", "pie", str(tmp_path / "no.csv"), "--svg", "x.svg"]) == 1
    assert f"ERROR: {tmp_path / 'no.csv'}: file not found" in capsys.readouterr().err
