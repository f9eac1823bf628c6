"""The retained store (``capture.keep: key``) gives every table the full store gives.

Each builtin recipe, and a model trained here, is captured once with ``keep: all`` (all
three variants, both targets); the retained group is that group with
:func:`moemui.store.retain` applied, which is what the writer stores (checked on one
capture written both ways). Every table of docs/method.md §3-§6 computed from the two must be
identical: MUI at thresholds up to ``max_threshold`` (with the correct-only columns),
per-expert and key-expert tables, top experts, key-neuron sets, data diversity, the
ablation's neuron sets and table, and robustness over all the cells.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from moemui.analyses.ablation import ablation_table, neurons_from_flat
from moemui.analyses.diversity import diversity_table
from moemui.analyses.experts import expert_tables, top_experts
from moemui.analyses.keys import key_sets
from moemui.analyses.robustness import robustness_table
from moemui.io import write_records
from moemui.metrics import mui_table
from moemui.recipes import RECIPES, TRAINED_RECIPES, build_model
from moemui.steps.capture import capture_task
from moemui.store import open_group, retain
from moemui.tasks import make_builtin, write_samples
from moemui.train import checkpoint_dir, train

MAX_THRESHOLD = 0.01
THRESHOLDS = [0.0002, 0.0008, 0.001, 0.002, 0.005, MAX_THRESHOLD]
VARIANTS = ("gate", "glu", "act")
LENGTHS = [12, 1, 0, 20, 7, 9, 16]  # response tokens; one sample has none
CELLS = [
    (recipe, target)
    for recipe in [*sorted(RECIPES), "trained"]
    for target in ("next", "same_position")
]
TRAINED = replace(
    TRAINED_RECIPES["olmoe_smoke"],
    arch={**TRAINED_RECIPES["olmoe_smoke"].arch, "hidden_size": 48},
    steps=30,
    save_steps=(30,),
    batch_size=16,
    warmup=5,
    mix=(("boolean_expressions", {"depth": 1, "n_operands": 2}, 1),),
)


def _capture(model_dir, work, target, keep, name="m"):
    rng = np.random.default_rng(11)
    samples = make_builtin("arithmetic", len(LENGTHS), seed=2)
    write_samples(work / "task.jsonl", samples)
    write_records(
        work / "responses.jsonl",
        [
            {
                "id": s["id"],
                "prompt_ids": [int(i) for i in rng.integers(3, 259, size=5)],
                "response_ids": [int(i) for i in rng.integers(3, 259, size=n)],
                "response": "",
                "answer": None,
                "correct": bool(i % 3),
                "n_response_tokens": n,
            }
            for i, (s, n) in enumerate(zip(samples, LENGTHS, strict=True))
        ],
    )
    store = work / "act.zarr"
    capture_task(
        name,
        str(model_dir),
        "t",
        work / "task.jsonl",
        work / "responses.jsonl",
        store / name / "t",
        variants=VARIANTS,
        target=target,
        max_threshold=MAX_THRESHOLD,
        batch_size=3,
        device="cpu",
        keep=keep,
    )
    return open_group(store, name, "t").load()


@pytest.fixture(scope="module")
def groups(tmp_path_factory):
    """Per cell: the keep-all group and the retained one."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("retention")
    trained = checkpoint_dir(train("tiny", root / "trained", TRAINED), 30)
    out = {}
    for recipe, target in CELLS:
        work = root / f"{recipe}-{target}"
        work.mkdir()
        model = trained if recipe == "trained" else build_model(recipe, 5, work / "model")
        full = _capture(model, work, target, "all")
        kept = full.copy()
        for v in VARIANTS:
            kept[f"score_{v}"] = full[f"score_{v}"].copy(
                data=retain(full[f"score_{v}"].values, full[f"pairtop_{v}"].values)
            )
        out[recipe, target] = full, kept
    return out


def test_the_writer_stores_the_retained_scores(tmp_path):
    model = build_model("deepseek_v2_tiny", 5, tmp_path / "model")
    (tmp_path / "all").mkdir()
    (tmp_path / "key").mkdir()
    full = _capture(model, tmp_path / "all", "next", "all")
    kept = _capture(model, tmp_path / "key", "next", "key")
    assert kept.attrs["keep"] == "key" and "K-th largest" in kept.attrs["keep_rule"]
    assert full.attrs["keep"] == "all" and "keep_rule" not in full.attrs
    for v in VARIANTS:
        want = retain(full[f"score_{v}"].values, full[f"pairtop_{v}"].values)
        np.testing.assert_array_equal(kept[f"score_{v}"].values, want)
        np.testing.assert_array_equal(kept[f"pairtop_{v}"].values, full[f"pairtop_{v}"].values)
        # something was dropped, and what was kept are exactly the full store's values
        values = kept[f"score_{v}"].values
        assert np.isnan(values).mean() > 0.5
        np.testing.assert_array_equal(values[~np.isnan(values)], want[~np.isnan(want)])
    for name in ("route_tokens", "route_weight", "n_tokens", "correct"):
        np.testing.assert_array_equal(kept[name].values, full[name].values)
    assert dict(kept.sizes) == dict(full.sizes) and kept["score_glu"].dims == full["score_glu"].dims


def test_retention_keeps_at_most_what_can_be_key(groups):
    """Kept per (sample, layer): positive and at or above the K-th largest triple; at most
    K neurons but for ties at the floor."""
    for full, kept in groups.values():
        k_top = full.sizes["rank"]
        for v in VARIANTS:
            values = kept[f"score_{v}"].values
            n_kept = (~np.isnan(values)).sum(axis=(2, 3))
            floor = full[f"pairtop_{v}"].values[..., -1]
            ties = (full[f"score_{v}"].values == floor[..., None, None]).sum(axis=(2, 3))
            assert (n_kept <= k_top + np.maximum(ties - 1, 0)).all()
            assert (values[~np.isnan(values)] > 0).all()


@pytest.mark.parametrize("cell", CELLS, ids=["-".join(c) for c in CELLS])
def test_every_table_is_the_full_stores(groups, cell):
    full, kept = groups[cell]
    for a, b in (
        (mui_table(full, THRESHOLDS, "m", "t", correct_only=True),
         mui_table(kept, THRESHOLDS, "m", "t", correct_only=True)),
        *zip(expert_tables(full, THRESHOLDS, [0.3, 0.6], "m", "t"),
             expert_tables(kept, THRESHOLDS, [0.3, 0.6], "m", "t"), strict=True),
        (top_experts(full, "m", "t"), top_experts(kept, "m", "t")),
    ):  # fmt: skip
        pd.testing.assert_frame_equal(a, b)
    assert mui_table(full, THRESHOLDS, "m", "t")["key_neurons"].min() > 0
    n_exp, n_neu = full.sizes["expert"], full.sizes["neuron"]
    sets = {}
    for which, ds in (("full", full), ("kept", kept)):
        sets[which] = {v: key_sets(ds, v, THRESHOLDS) for v in VARIANTS}
    for v in VARIANTS:
        for tau in THRESHOLDS:
            a, b = sets["full"][v][tau], sets["kept"][v][tau]
            assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    # data diversity: the same subsets' MUI
    tables = []
    for which in ("full", "kept"):
        per = {(v, tau): {"t": s} for v in VARIANTS for tau, s in sets[which][v].items()}
        tables.append(diversity_table(per, n_exp * n_neu * full.sizes["layer"], [2, 5], 3, 0, "m"))
    pd.testing.assert_frame_equal(*tables)
    # ablation: the same key neurons, the same random controls, the same table

    def ablation(which):
        flat = np.unique(np.concatenate(sets[which]["glu"][0.001]))
        key = neurons_from_flat(flat, full["layer"].values, n_exp, n_neu)
        zeroed = []

        def correct_of(neurons):
            zeroed.append(sorted(neurons))
            return [j < len(zeroed) for j in range(7)]

        meta = {"model": "m", "task": "t", "variant": "glu"}
        return ablation_table(correct_of, {0.001: key}, n_neu, [0, 1], meta), zeroed

    (table_a, zeroed_a), (table_b, zeroed_b) = ablation("full"), ablation("kept")
    pd.testing.assert_frame_equal(table_a, table_b)
    assert zeroed_a == zeroed_b and len(zeroed_a[1]) > 0


def test_robustness_over_all_cells_is_the_full_stores(groups):
    tables = {}
    for which in (0, 1):
        mui, experts, key_experts = [], [], []
        for (recipe, target), pair in groups.items():
            ds, name = pair[which], f"{recipe}-{target}"
            mui.append(mui_table(ds, [0.0008, 0.001, 0.002], name, "t"))
            e, k = expert_tables(ds, [0.0008, 0.001, 0.002], [0.6], name, "t")
            experts.append(e)
            key_experts.append(k)
        tables[which] = robustness_table(
            pd.concat(mui, ignore_index=True),
            pd.concat(key_experts, ignore_index=True),
            pd.concat(experts, ignore_index=True),
        )
    assert tables[0]["value"].notna().any()
    pd.testing.assert_frame_equal(tables[0], tables[1])
