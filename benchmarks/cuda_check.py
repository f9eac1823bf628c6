"""Check the capture on a CUDA device against the CPU: run where a GPU is available.

For every built-in recipe: the model's outputs are unchanged by the capture on CUDA,
every MoE block rebuilds from the captured g and h (max abs error), and the scores and
MUI computed on CUDA match those computed on the CPU. Prints one table row per recipe.

    python benchmarks/cuda_check.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from moemui.adapters import adapter_for
from moemui.batching import right_pad
from moemui.capture import ContributionCapture
from moemui.io import write_records
from moemui.metrics import mui_table
from moemui.recipes import RECIPES, build_model
from moemui.steps.capture import capture_task
from moemui.store import open_group
from moemui.tasks import make_builtin, write_samples


def block_rebuild_error(model, prompts, responses) -> tuple[float, bool]:
    adapter = adapter_for(model)
    layers = adapter.moe_layers(model)
    outs, final = {}, {}
    hooks = [
        model.model.layers[la.index].mlp.register_forward_hook(
            lambda m, i, o, k=la.index: outs.__setitem__(k, o.reshape(-1, o.shape[-1]).clone())
        )
        for la in layers
    ]
    hooks.append(model.model.norm.register_forward_hook(lambda m, i, o: final.__setitem__(0, o)))
    seqs = [p + r for p, r in zip(prompts, responses, strict=True)]
    dev = next(model.parameters()).device
    ids, mask = (t.to(dev) for t in right_pad(seqs, 0))
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask)
    plain = final[0].clone()
    with ContributionCapture(
        model, adapter, ("glu",), 8, keep_activations=True, batch_invariant=False
    ) as cap:  # one batched forward, as above
        cap.score_batch(prompts, responses)
    same = torch.equal(plain, final[0])
    for h in hooks:
        h.remove()
    worst = 0.0
    for slot, la in enumerate(layers):
        rebuilt = torch.zeros_like(outs[la.index])
        for rec in (r for r in cap.records if r["slot"] == slot):
            if rec["kind"] == "routed":
                y = torch.einsum("pn,phn->ph", rec["h"], la.experts.down_proj[rec["expert"]])
                rebuilt.index_add_(0, rec["token"], rec["g"][:, None] * y)
            else:
                y = rec["h"].reshape(-1, rec["h"].shape[-1]) @ la.shared.down_proj.weight.T
                rebuilt += y if rec["g"] is None else rec["g"].reshape(-1, 1) * y
        worst = max(worst, (rebuilt - outs[la.index]).abs().max().item())
    return worst, same


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser: no option (tests/test_docs.py parses the README's
    command lines)."""
    return argparse.ArgumentParser(description=__doc__.splitlines()[0])


def main() -> int:
    build_parser().parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 0
    torch.backends.cuda.matmul.allow_tf32 = False
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    rng = np.random.default_rng(0)
    columns = [
        "recipe",
        "rebuild max abs err (cuda)",
        "outputs unchanged",
        "score max rel diff",
        "MUI equal",
        "capture s (cpu / cuda)",
    ]
    print("| " + " | ".join(columns) + " |")
    print("|---|---|---|---|---|---|")
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        samples = make_builtin("arithmetic", 24, seed=0)
        write_samples(tmp / "task.jsonl", samples)
        records = []
        for s in samples:
            p = [int(i) for i in rng.integers(3, 259, size=rng.integers(3, 12))]
            r = [int(i) for i in rng.integers(3, 259, size=rng.integers(0, 10))]
            records.append(
                {
                    "id": s["id"],
                    "prompt_ids": p,
                    "response_ids": r,
                    "response": "",
                    "answer": None,
                    "correct": False,
                    "n_response_tokens": len(r),
                }
            )
        write_records(tmp / "resp.jsonl", records)
        for recipe in sorted(RECIPES):
            model_dir = build_model(recipe, 0, tmp / recipe)
            from transformers import AutoModelForCausalLM

            model = (
                AutoModelForCausalLM.from_pretrained(model_dir, experts_implementation="grouped_mm")
                .to("cuda")
                .eval()
            )
            prompts = [r["prompt_ids"] for r in records[:4]]
            resps = [r["response_ids"] for r in records[:4]]
            err, same = block_rebuild_error(model, prompts, resps)
            tables, times, scores = {}, {}, {}
            for dev in ("cpu", "cuda"):
                out = tmp / f"{dev}.zarr" / recipe / "t"
                t0 = time.perf_counter()
                capture_task(
                    recipe,
                    str(model_dir),
                    "t",
                    tmp / "task.jsonl",
                    tmp / "resp.jsonl",
                    out,
                    device=dev,
                    variants=("gate", "glu"),
                    batch_size=8,
                )
                times[dev] = time.perf_counter() - t0
                ds = open_group(tmp / f"{dev}.zarr", recipe, "t")
                scores[dev] = ds["score_glu"].values
                tables[dev] = mui_table(ds, [0.0008, 0.001, 0.002], recipe, "t")
            scale = np.abs(scores["cpu"]).max()
            rel = float(np.abs(scores["cpu"] - scores["cuda"]).max() / scale)
            mui_equal = tables["cpu"].equals(tables["cuda"])
            failed |= err > 1e-5 or not same or rel > 1e-4
            print(
                f"| {recipe} | {err:.2e} | {same} | {rel:.2e} | {mui_equal} | "
                f"{times['cpu']:.2f} / {times['cuda']:.2f} |"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
