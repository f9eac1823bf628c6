"""Store bytes per sample at the expert geometries of the paper's models.

For each geometry, a 2-layer slice (the real expert count, width, top-k and shared
experts; hidden 256; random weights at std 1/sqrt(fan_in)) is captured with
``moemui``'s own ``capture_task`` on random prompts of 64 tokens and responses of 256,
once with ``keep: all`` and once with the default ``keep: key`` (max_threshold 0.01,
variant ``glu``). The table gives ``score_glu`` bytes on disk per sample and MoE layer,
the whole group per sample and layer, and the whole group extrapolated to the real
model (its MoE layer count, both default variants ``gate`` and ``glu``).

    python benchmarks/store_bench.py                      # all five geometries
    python benchmarks/store_bench.py --only qwen3-30b-a3b --samples 16
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, GenerationConfig

from moemui.io import write_records
from moemui.recipes import VOCAB, init_model
from moemui.steps.capture import capture_task
from moemui.tasks import write_samples
from moemui.tokenizer import build_tokenizer

#: name: (model_type, config overrides, MoE layers of the real model)
GEOMETRIES: dict[str, tuple[str, dict, int]] = {
    "qwen3-30b-a3b": (
        "qwen3_moe",
        {"num_experts": 128, "moe_intermediate_size": 768, "num_experts_per_tok": 8},
        48,
    ),
    "deepseek-v3": (
        "deepseek_v3",
        {
            "n_routed_experts": 256,
            "n_shared_experts": 1,
            "moe_intermediate_size": 2048,
            "num_experts_per_tok": 8,
            "n_group": 8,
            "topk_group": 4,
            "first_k_dense_replace": 0,
            "kv_lora_rank": 32,
            "q_lora_rank": 64,
            "qk_rope_head_dim": 16,
            "qk_nope_head_dim": 16,
            "v_head_dim": 32,
        },
        58,
    ),
    "mixtral-8x7b": (
        "mixtral",
        {"num_local_experts": 8, "intermediate_size": 14336, "num_experts_per_tok": 2},
        32,
    ),
    "gpt-oss-20b": (
        "gpt_oss",
        {
            "num_local_experts": 32,
            "intermediate_size": 2880,
            "num_experts_per_tok": 4,
            "head_dim": 32,
            "layer_types": ["full_attention", "full_attention"],
        },
        24,
    ),
    "olmoe-1b-7b": (
        "olmoe",
        {"num_experts": 64, "intermediate_size": 1024, "num_experts_per_tok": 8},
        16,
    ),
}
HIDDEN, PROMPT, RESPONSE = 256, 64, 256


def slice_model(name: str, out: Path) -> Path:
    model_type, overrides, _ = GEOMETRIES[name]
    config = AutoConfig.for_model(
        model_type,
        **{
            "hidden_size": HIDDEN,
            "num_hidden_layers": 2,
            "num_attention_heads": 8,
            "num_key_value_heads": 8,
            "vocab_size": VOCAB,
            "max_position_embeddings": PROMPT + RESPONSE + 8,
            "tie_word_embeddings": False,
            **overrides,
        },
    )
    model = init_model(config, 0)
    model.generation_config = GenerationConfig(eos_token_id=2, pad_token_id=0, bos_token_id=1)
    model.save_pretrained(out)
    build_tokenizer(model_max_length=PROMPT + RESPONSE + 8).save_pretrained(out)
    return out


def dir_bytes(path: Path, prefix: str = "") -> int:
    total = 0
    for root, _, files in os.walk(path):
        if prefix and not Path(root).relative_to(path).as_posix().startswith(prefix):
            continue
        total += sum(os.path.getsize(Path(root) / f) for f in files)
    return total


def random_task(work: Path, samples: int) -> None:
    """A task file ``work/t`` and its responses ``work/r``: random prompts of PROMPT
    tokens and responses of RESPONSE tokens (every other one marked correct)."""
    rng = np.random.default_rng(0)
    ids = [f"s{i}" for i in range(samples)]
    write_samples(
        work / "t",
        [{"id": i, "prompt": "", "reference": "", "meta": {"kind": "exact"}} for i in ids],
    )
    write_records(
        work / "r",
        [
            {
                "id": i,
                "prompt_ids": rng.integers(3, VOCAB, PROMPT).tolist(),
                "response_ids": rng.integers(3, VOCAB, RESPONSE).tolist(),
                "response": "",
                "answer": None,
                "correct": bool(n % 2),
                "n_response_tokens": RESPONSE,
            }
            for n, i in enumerate(ids)
        ],
    )


def measure(name: str, samples: int, work: Path) -> dict:
    model_dir = slice_model(name, work / "model")
    random_task(work, samples)
    out = {"name": name}
    for keep in ("all", "key"):
        group = work / f"store-{keep}.zarr" / "m" / "t"
        start = time.perf_counter()
        capture_task(
            "m", str(model_dir), "t", work / "t", work / "r", group,
            variants=("glu",), max_threshold=0.01, batch_size=4, device="cpu", keep=keep,
        )  # fmt: skip
        out[f"seconds_{keep}"] = time.perf_counter() - start
        per = samples * 2  # sample x layer
        out[f"score_{keep}"] = dir_bytes(group, "score_glu") / per
        out[f"group_{keep}"] = dir_bytes(group) / per
    out["layers"] = GEOMETRIES[name][2]
    return out


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser (tests/test_docs.py parses the README's command lines)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(GEOMETRIES), default=list(GEOMETRIES))
    parser.add_argument("--samples", type=int, default=8)
    return parser


def main() -> None:
    args = build_parser().parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    rows = []
    for name in args.only:
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(measure(name, args.samples, Path(tmp)))
        print(f"measured {name}", flush=True)
    print(
        "\n| geometry | score_glu, keep all (KB / sample / layer) | score_glu, keep key | "
        "ratio | group, keep all | group, keep key | real model, keep all (MB / sample) | "
        "real model, keep key |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        # the real model: its MoE layers, two variants (gate, glu) of score and pairtop
        scale = r["layers"] * 2 / 1e6
        print(
            f"| {r['name']} | {r['score_all'] / 1e3:.1f} | {r['score_key'] / 1e3:.1f} | "
            f"{r['score_all'] / r['score_key']:.0f}x | {r['group_all'] / 1e3:.1f} | "
            f"{r['group_key'] / 1e3:.1f} | {r['group_all'] * scale:.1f} | "
            f"{r['group_key'] * scale:.2f} |"
        )
    print(f"\n{args.samples} samples of {PROMPT} + {RESPONSE} tokens; KB = 1000 bytes")


if __name__ == "__main__":
    main()
