"""Results do not depend on the batch size or the number of CPU threads.

What is exact: the generated tokens, the routing (tokens per expert), the token counts,
and everything the method derives from the scores (key neurons, MUI) at every
threshold. The float32 scores themselves agree to rounding (a few ulp): torch's CPU
kernels sum in an order that depends on tensor shapes and thread partitioning (the
model's own logits differ by ~1e-6 between 1 and 2 threads), so bit-identical scores
across batch sizes or thread counts would need unbatched, single-threaded runs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from moemui.io import read_records
from moemui.metrics import mui_table
from moemui.pipeline import capture_task, generate_task, materialise_task
from moemui.recipes import build_model
from moemui.store import open_group

THRESHOLDS = [0.0008, 0.001, 0.002, 0.005]


@pytest.fixture(scope="module")
def cell(tmp_path_factory):
    root = tmp_path_factory.mktemp("repro")
    model = build_model("qwen2_moe_tiny", 0, root / "model")
    tasks = root / "arith.jsonl"
    materialise_task({"id": "arith", "source": "builtin:arithmetic", "n": 21}, tasks)
    return root, str(model), tasks


def _with_threads(n, fn, *args, **kwargs):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        return fn(*args, **kwargs)
    finally:
        torch.set_num_threads(before)


def test_generation_is_independent_of_batch_size_and_threads(cell):
    root, model, tasks = cell
    runs = {}
    for batch, threads in ((1, 1), (7, 1), (7, 2)):
        out = root / f"gen-{batch}-{threads}.jsonl"
        _with_threads(
            threads,
            generate_task,
            "m",
            model,
            tasks,
            out,
            device="cpu",
            batch_size=batch,
            max_new_tokens=6,
        )
        runs[batch, threads] = read_records(out)
    assert runs[1, 1] == runs[7, 1] == runs[7, 2]


def test_capture_is_independent_of_batch_size_and_threads(cell):
    root, model, tasks = cell
    responses = root / "responses.jsonl"
    generate_task("m", model, tasks, responses, device="cpu", batch_size=7, max_new_tokens=6)
    groups = {}
    for batch, threads in ((1, 1), (7, 1), (7, 2)):
        store = root / f"store-{batch}-{threads}.zarr"
        _with_threads(
            threads,
            capture_task,
            "m",
            model,
            "arith",
            tasks,
            responses,
            store / "m" / "arith",
            device="cpu",
            batch_size=batch,
        )
        groups[batch, threads] = open_group(store, "m", "arith").load()
    ref = groups[1, 1]
    for key, ds in groups.items():
        for name in ("route_tokens", "n_tokens", "correct", "sample", "expert_kind"):
            np.testing.assert_array_equal(ds[name].values, ref[name].values, err_msg=str(key))
        for name in ("score_gate", "score_glu", "pairtop_gate", "pairtop_glu", "route_weight"):
            scale = float(np.nanmax(np.abs(ref[name].values)))
            np.testing.assert_allclose(
                ds[name].values,
                ref[name].values,
                rtol=1e-5,
                atol=1e-6 * scale,
                err_msg=f"{name} {key}",
            )
        table = mui_table(ds, THRESHOLDS, "m", "arith")
        expected = mui_table(ref, THRESHOLDS, "m", "arith")
        assert table.equals(expected), f"MUI differs for batch/threads {key}"
