"""Time to build every analysis table of one store group, at Qwen3-30B-A3B's geometry.

A 2-layer slice of Qwen3-30B-A3B's experts (128 x 768, top-8; hidden 256) is captured on
``--samples`` random prompts of 64 tokens and responses of 256 (variants ``gate`` and
``glu``, max_threshold 0.01), with ``keep: all`` and with the default ``keep: key``.
For each store the script times the tables of SPEC §3-§6 that read the group (MUI with
the correct-only columns, per-expert and key-expert tables, top experts, the diversity
key sets) at the default thresholds, two ways:

- one read per table, as the workflow did before 0.3.0 (each table job opened the group
  and read its score arrays: MUI, experts, diversity);
- one read in all (0.3.0): ``derive_keys`` reads the score arrays once and writes the key
  neurons; every table is built from that file.

    python benchmarks/tables_bench.py --samples 64
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from moemui.analyses.diversity import diversity_table
from moemui.analyses.experts import expert_tables, top_experts
from moemui.analyses.keys import key_sets
from moemui.metrics import mui_table
from moemui.steps.capture import capture_task
from moemui.store import open_group

THRESHOLDS = [0.0008, 0.001, 0.002]
PROMPT, RESPONSE = 64, 256


def build_store(work: Path, samples: int, keep: str) -> Path:
    from store_bench import random_task, slice_model

    model = work / "model"
    if not model.exists():
        slice_model("qwen3-30b-a3b", model)
    random_task(work, samples)
    group = work / f"{keep}.zarr" / "m" / "t"
    capture_task(
        "m", str(model), "t", work / "t", work / "r", group, variants=("gate", "glu"),
        max_threshold=0.01, batch_size=8, device="cpu", keep=keep,
    )  # fmt: skip
    return group


def tables_per_read(group: Path) -> None:
    """Each table job reads the group itself."""
    store, model, task = group.parent.parent, group.parent.name, group.name
    mui_table(open_group(store, model, task), THRESHOLDS, model, task, correct_only=True)
    ds = open_group(store, model, task)
    expert_tables(ds, THRESHOLDS, [0.6], model, task)
    top_experts(ds, model, task)
    ds = open_group(store, model, task)
    sets = {
        (v, t): {task: s} for v in ("gate", "glu") for t, s in key_sets(ds, v, THRESHOLDS).items()
    }
    diversity_table(sets, 10, [4, 16], 5, 0, model)


def tables_one_read(group: Path, work: Path) -> None:
    """derive_keys once, then every table from its file."""
    from moemui.analyses.keys import GroupKeys
    from moemui.steps import metrics

    metrics.derive_keys(group, THRESHOLDS, work / "keys.npz")
    keys = GroupKeys.load(work / "keys.npz")
    mui_table(keys, THRESHOLDS, "m", "t", correct_only=True)
    expert_tables(keys, THRESHOLDS, [0.6], "m", "t")
    top_experts(keys, "m", "t")
    sets = {(v, t): {"t": keys.sets(v, t)} for v in keys.variants for t in THRESHOLDS}
    diversity_table(sets, keys.total_neurons, [4, 16], 5, 0, "m")


def best_of(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser (tests/test_docs.py parses the README's command lines)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", help="keep the stores in this directory (reused if there)")
    return parser


def main() -> None:
    args = build_parser().parse_args()
    torch.set_num_threads(2)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        for keep in ("all", "key"):
            group = work / f"{keep}.zarr" / "m" / "t"
            if not group.exists():
                group = build_store(work, args.samples, keep)
            per_read = best_of(lambda g=group: tables_per_read(g), args.runs)
            one_read = best_of(lambda g=group: tables_one_read(g, work), args.runs)
            rows.append((keep, per_read, one_read))
    print("\n| store | one read per table (s) | one read in all (s) | ratio |")
    print("|---|---|---|---|")
    for keep, per_read, one_read in rows:
        print(f"| keep: {keep} | {per_read:.2f} | {one_read:.2f} | {per_read / one_read:.1f}x |")
    print(
        f"\n{args.samples} samples of {PROMPT} + {RESPONSE} tokens, 2 MoE layers of 128 x 768, "
        f"variants gate and glu, thresholds {THRESHOLDS}; best of {args.runs}"
    )


if __name__ == "__main__":
    main()
