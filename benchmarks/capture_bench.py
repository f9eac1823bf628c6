"""Capture performance: overhead, scoring cost, the reference algorithm, memory, store I/O.

On a Qwen3-MoE-like model (hidden 512, 8 layers, 32 experts of width 256, top-4, vocab
32000; random weights) and one batch of 8 x 256 tokens, medians of several runs in one
process:

1. plain forward vs capture pass (the capture's hooks read h; no scoring): ratio, in
   both forward layouts: one forward per sequence (the capture's default, which makes
   stores bit-identical across batch sizes) and one batched forward;
2. scoring of all layers (the full ``score_batch`` minus the capture pass), as a
   fraction of the batched plain forward; and what the per-sequence layout costs;
3. the reference code's algorithm for the same scores (materialise W_down_e^T W_U for
   each expert, index it by token), run once on the same captured h and g, checked to
   give the same key-neuron sets at 0.08%, 0.1% and 0.2%: speed-up of ours;
4. peak resident memory of a ``moemui capture`` job over 64 and over 1024 samples of one
   task (a separate process each): ratio;
5. store write throughput (MB/s) next to the raw disk write speed of the same directory;
6. one cell (256 samples) captured in one job with every thread, and in one shard job
   per thread side by side (``--shard``) followed by their gather: wall times, and that
   the gathered group is byte-identical.

Where CUDA is available, (1) and (2) are also measured there, as tokens per second.

    python benchmarks/capture_bench.py [--runs 5] [--threads 2] [--skip-reference]
    python benchmarks/capture_bench.py --shards-only     # (6) alone, about 2 minutes
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from moemui.adapters import adapter_for
from moemui.capture import ContributionCapture
from moemui.metrics import k_for

CONFIG = {
    "model_type": "qwen3_moe",
    "vocab_size": 32000,
    "hidden_size": 512,
    "num_hidden_layers": 8,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "num_experts": 32,
    "num_experts_per_tok": 4,
    "moe_intermediate_size": 256,
    "intermediate_size": 1024,
    "max_position_embeddings": 512,
    "tie_word_embeddings": False,
}
BATCH, SEQ = 8, 256
THRESHOLDS = (0.0008, 0.001, 0.002)


def bench_model(device: str):
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    config = AutoConfig.for_model(**CONFIG)
    model = AutoModelForCausalLM.from_config(config, experts_implementation="grouped_mm")
    with torch.no_grad():  # weights at std 1/sqrt(fan_in): activations of a real model's size
        for p in model.parameters():
            if p.ndim >= 2:
                p.normal_(0.0, p.shape[-1] ** -0.5)
    return model.eval().to(device)


def median_time(fn, runs: int, device: str) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _timed(method, spent: list, device: str):
    """``method``, adding the seconds each call takes to ``spent``."""

    def wrapper(*args, **kwargs):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = method(*args, **kwargs)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        spent.append(time.perf_counter() - start)
        return out

    return wrapper


def overhead(model, runs: int, device: str) -> dict:
    """Plain forward, capture pass and full scoring, on the same batch, in both forward
    layouts: one forward per sequence (the default, ``batch_invariant``) and one batched
    forward."""
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(3, CONFIG["vocab_size"], (BATCH, SEQ), generator=gen).to(device)
    prompts = [row[:32].tolist() for row in ids]
    responses = [row[32:].tolist() for row in ids]
    adapter = adapter_for(model)
    geometry = adapter.geometry(model)
    k_top = k_for(0.01, geometry.neurons_per_layer)

    def forward(rows):
        with torch.no_grad():
            model(
                input_ids=rows,
                attention_mask=torch.ones_like(rows),
                use_cache=False,
                logits_to_keep=1,
            )

    def batched():
        forward(ids)

    def per_sequence():
        for b in range(BATCH):
            forward(ids[b : b + 1])

    out = {"plain_s": median_time(batched, runs, device)}
    out["plain_seq_s"] = median_time(per_sequence, runs, device)
    for invariant, tag in ((True, "seq"), (False, "batched")):
        with ContributionCapture(
            model, adapter, ("gate", "glu"), k_top, batch_invariant=invariant
        ) as cap:
            # the capture's hooks, nothing to score
            out[f"pass_{tag}_s"] = median_time(per_sequence if invariant else batched, runs, device)
            # the scoring's own time: every call of the scoring methods, and the reduction
            spent = []
            for name in ("score_routed", "score_shared_experts", "_finish"):
                setattr(cap, name, _timed(getattr(cap, name), spent, device))

            def full(cap=cap, spent=spent):
                spent.clear()
                cap.score_batch(prompts, responses)
                return sum(spent)

            full()  # warm-up
            out[f"scoring_{tag}_s"] = statistics.median(full() for _ in range(runs))
            out[f"full_{tag}_s"] = median_time(
                lambda cap=cap: cap.score_batch(prompts, responses), runs, device
            )
    n_tokens = BATCH * SEQ
    out["tokens_per_s"] = {
        "plain forward, batched": n_tokens / out["plain_s"],
        "plain forward, per sequence": n_tokens / out["plain_seq_s"],
        "capture + scoring, per sequence (default)": n_tokens / out["full_seq_s"],
        "capture + scoring, batched": n_tokens / out["full_batched_s"],
    }
    return out | {"prompts": prompts, "responses": responses, "k_top": k_top}


def key_sets(scores_max: np.ndarray, triples_top: np.ndarray, n_layer: int) -> dict:
    """Key neurons per (sample, layer) at each threshold (SPEC §3), from max-over-t scores
    ``[B, L, E, N]`` and each sample and layer's triple scores sorted descending."""
    out = {}
    for tau in THRESHOLDS:
        k = k_for(tau, n_layer)
        top = triples_top[..., :k]
        positive = np.where(top > 0, top, np.inf)
        theta = np.min(positive, axis=-1)  # k-th largest, or smallest positive
        mask = (scores_max >= theta[..., None, None]) & (scores_max > 0)
        out[tau] = mask
    return out


def reference(model, prompts, responses, k_top: int):
    """Ours and the reference algorithm's scores on identical captured h and g."""
    adapter = adapter_for(model)
    geometry = adapter.geometry(model)
    with ContributionCapture(
        model, adapter, ("gate",), k_top, keep_activations=True, batch_invariant=False
    ) as cap:
        ours = cap.score_batch(prompts, responses)
        records = [r for r in cap.records if r["kind"] == "routed"]
    unembed = adapter.unembedding(model).detach().float().cpu()  # [V, H]
    seqs = [p + r for p, r in zip(prompts, responses, strict=True)]
    width = max(map(len, seqs))
    n_layers, n_exp = len(geometry.moe_layers), geometry.experts_per_layer
    n_neu = geometry.neurons_per_expert
    ref_max = np.zeros((len(seqs), n_layers, n_exp, n_neu), dtype=np.float32)
    triples: list[list[list]] = [[[] for _ in range(n_layers)] for _ in seqs]
    layers = adapter.moe_layers(model)
    start = time.perf_counter()
    for rec in records:
        slot = rec["slot"]
        down = layers[slot].experts.down_proj.detach().float().cpu()  # [E, H, N]
        token, expert = rec["token"].cpu(), rec["expert"].cpu()
        g, act = rec["g"].float().cpu(), rec["act"].float().cpu()
        for e in torch.unique(expert).tolist():
            proj = down[e].T @ unembed.T  # [N, V]: the reference's full projection
            for i in torch.nonzero(expert == e).squeeze(1).tolist():
                b, t = divmod(int(token[i]), width)
                if t < len(prompts[b]) - 1 or t >= len(seqs[b]) - 1:
                    continue  # not a scored position (target: next)
                y = seqs[b][t + 1]
                s = (g[i] * act[i] * proj[:, y]).numpy()
                ref_max[b, slot, e] = np.maximum(ref_max[b, slot, e], s)
                triples[b][slot].append(s)
    elapsed = time.perf_counter() - start
    n_layer = geometry.neurons_per_layer
    tops = np.zeros((len(seqs), n_layers, k_top), dtype=np.float32)
    for b in range(len(seqs)):
        for slot in range(n_layers):
            flat = np.sort(np.concatenate(triples[b][slot]))[::-1]
            tops[b, slot] = flat[:k_top]
    theirs = key_sets(ref_max, tops, n_layer)
    mine = key_sets(ours.score["gate"], np.nan_to_num(ours.pairtop["gate"], nan=0.0), n_layer)
    same = all(np.array_equal(theirs[tau], mine[tau]) for tau in THRESHOLDS)
    return elapsed, same


def cell_files(n_samples: int, workdir: Path) -> tuple[Path, Path, Path]:
    """(model directory, task file, responses file) of one cell of the benchmark model:
    ``n_samples`` samples of 16 prompt + 48 response tokens."""
    model = workdir / "rss-model"
    if not model.exists():
        bench_model("cpu").save_pretrained(model)
    rng = np.random.default_rng(0)
    tasks, responses = workdir / f"t{n_samples}.jsonl", workdir / f"r{n_samples}.jsonl"
    with open(tasks, "w") as ft, open(responses, "w") as fr:
        for i in range(n_samples):
            sid = f"s{i:05d}"
            ft.write(
                json.dumps({"id": sid, "prompt": "p", "reference": "r", "meta": {"kind": "exact"}})
                + "\n"
            )
            ids = rng.integers(3, CONFIG["vocab_size"], 64).tolist()
            fr.write(
                json.dumps(
                    {
                        "id": sid,
                        "prompt_ids": ids[:16],
                        "response_ids": ids[16:],
                        "correct": bool(i % 2),
                    }
                )
                + "\n"
            )
    return model, tasks, responses


def _capture_argv(model: Path, tasks: Path, responses: Path, out: Path, threads: int) -> list:
    return [
        "--threads",
        str(threads),
        "capture",
        "--model-id",
        "m",
        "--source",
        str(model),
        "--task-id",
        "arith",
        "--tasks",
        str(tasks),
        "--responses",
        str(responses),
        "--out",
        str(out),
        "--device",
        "cpu",
    ]


def peak_rss(n_samples: int, workdir: Path, threads: int) -> float:
    """Peak RSS (MiB) of a ``moemui capture`` job of the benchmark model over ``n_samples``
    samples of one task (16 prompt + 48 response tokens each), in a process of its own."""
    model, tasks, responses = cell_files(n_samples, workdir)
    # VmHWM, the peak RSS of this process's own memory map: getrusage's ru_maxrss would
    # also count the parent's RSS at the fork, which Linux carries across exec
    code = (
        "import re, sys\n"
        "from moemui.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "status = open('/proc/self/status').read()\n"
        "print(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1))\n"
        "sys.exit(rc)\n"
    )
    out = workdir / f"store{n_samples}.zarr" / "m" / "arith"
    done = subprocess.run(
        [sys.executable, "-c", code, *_capture_argv(model, tasks, responses, out, threads)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return int(done.stdout.strip().splitlines()[-1]) / 1024


MOEMUI = [sys.executable, "-c", "import sys; from moemui.cli import main; sys.exit(main())"]


def shard_times(n_samples: int, workdir: Path, cores: int) -> dict:
    """Wall seconds to capture one cell of ``n_samples`` samples: in one job with
    ``cores`` threads, and in ``cores`` shard jobs side by side with one thread each,
    then the gather of their groups; checks that both groups are byte-identical."""
    model, tasks, responses = cell_files(n_samples, workdir)

    def run(argvs: list[list[str]]) -> float:
        start = time.perf_counter()
        procs = [
            subprocess.Popen([*MOEMUI, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for argv in argvs
        ]
        for proc in procs:
            _, err = proc.communicate()
            if proc.returncode:
                raise RuntimeError(err.decode()[-3000:])
        return time.perf_counter() - start

    whole = workdir / "whole.zarr" / "m" / "arith"
    one = run([_capture_argv(model, tasks, responses, whole, cores)])
    # the same job on one thread, as each shard runs: torch's CPU kernels round by thread
    # count, so this is the group the gathered one must equal byte for byte
    single = workdir / "single.zarr" / "m" / "arith"
    one_thread = run([_capture_argv(model, tasks, responses, single, 1)])
    parts = [workdir / f"{i}-of-{cores}" / "s.zarr" / "m" / "arith" for i in range(1, cores + 1)]
    shards = run(
        [
            [*_capture_argv(model, tasks, responses, part, 1), "--shard", f"{i}/{cores}"]
            for i, part in enumerate(parts, start=1)
        ]
    )
    gathered = workdir / "gathered.zarr" / "m" / "arith"
    gather = run(
        [
            [
                "gather-store",
                "--tasks",
                str(tasks),
                "--parts",
                *map(str, parts),
                "--out",
                str(gathered),
            ]
        ]
    )

    def files(path: Path) -> dict:
        return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}

    return {
        "one_s": one,
        "one_thread_s": one_thread,
        "shards_s": shards,
        "gather_s": gather,
        "same": files(single) == files(gathered),
    }


def store_throughput(workdir: Path) -> tuple[float, float, float]:
    """(store MB/s, raw disk MB/s, MB written by the store)."""
    from moemui.adapters import Geometry
    from moemui.capture import BatchScores
    from moemui.store import StoreWriter

    geo = Geometry("qwen3_moe", "Qwen3MoeForCausalLM", list(range(8)), [], 32, 0, 256, 4)
    n, k = 64, 41
    rng = np.random.default_rng(0)
    batch = BatchScores(
        score={v: rng.random((n, 8, 32, 256), dtype=np.float32) for v in ("gate", "glu")},
        pairtop={v: rng.random((n, 8, k), dtype=np.float32) for v in ("gate", "glu")},
        route_tokens=rng.integers(0, 50, (n, 8, 32)).astype(np.int32),
        route_weight=rng.random((n, 8, 32), dtype=np.float32),
        n_tokens=np.full(n, 50, np.int32),
    )
    root = workdir / "throughput.zarr"
    start = time.perf_counter()
    writer = StoreWriter(
        root / "m" / "t",
        geo,
        [f"s{i}" for i in range(n)],
        ("gate", "glu"),
        k,
        {"model": "m", "task": "t"},
    )
    for lo in range(0, n, 8):
        part = BatchScores(
            score={v: a[lo : lo + 8] for v, a in batch.score.items()},
            pairtop={v: a[lo : lo + 8] for v, a in batch.pairtop.items()},
            route_tokens=batch.route_tokens[lo : lo + 8],
            route_weight=batch.route_weight[lo : lo + 8],
            n_tokens=batch.n_tokens[lo : lo + 8],
        )
        writer.write(lo, part, np.ones(8, bool))
    writer.publish()
    elapsed = time.perf_counter() - start
    mb = sum(a.nbytes for a in batch.score.values()) / 1e6
    raw = workdir / "raw.bin"
    payload = rng.random(32 * 1024 * 1024 // 8).tobytes()  # 32 MiB
    start = time.perf_counter()
    with open(raw, "wb") as fh:
        for _ in range(4):
            fh.write(payload)
        fh.flush()
        os.fsync(fh.fileno())
    raw_mbs = 4 * len(payload) / 1e6 / (time.perf_counter() - start)
    return mb / elapsed, raw_mbs, mb


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser (tests/test_docs.py parses the README's command lines)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per median")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument(
        "--shards-only",
        action="store_true",
        help="only the shard comparison (one cell in one job vs in one shard job per core)",
    )
    parser.add_argument("--shard-samples", type=int, default=256, help="samples of that cell")
    return parser


def main() -> int:
    args = build_parser().parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t = shard_times(args.shard_samples, Path(tmp), args.threads)
    total = t["shards_s"] + t["gather_s"]
    rows.append(
        (
            f"one cell, {args.threads} shard jobs side by side / 1 job",
            f"{total / t['one_s']:.2f}",
            "(report)",
            f"{args.shard_samples} samples: 1 job of {args.threads} threads {t['one_s']:.1f} s; "
            f"{args.threads} shard jobs of 1 thread {t['shards_s']:.1f} s + gather "
            f"{t['gather_s']:.1f} s (1 job of 1 thread {t['one_thread_s']:.1f} s); gathered "
            f"group byte-identical to the 1-thread job's: {t['same']}",
        )
    )
    if args.shards_only:
        _print(rows, args)
        return 0
    model = bench_model("cpu")
    cpu = overhead(model, args.runs, "cpu")
    for tag, plain, layout in (
        ("seq", "plain_seq_s", "per sequence (default)"),
        ("batched", "plain_s", "batched"),
    ):
        rows.append(
            (
                f"capture pass / plain forward, {layout}",
                f"{cpu[f'pass_{tag}_s'] / cpu[plain]:.3f}",
                "<= 1.15",
                f"{cpu[plain] * 1e3:.0f} ms plain, {cpu[f'pass_{tag}_s'] * 1e3:.0f} ms",
            )
        )
    for tag, layout in (("seq", "per sequence (default)"), ("batched", "batched")):
        rows.append(
            (
                f"scoring (all layers) / batched plain forward, {layout}",
                f"{cpu[f'scoring_{tag}_s'] / cpu['plain_s']:.3f}",
                "<= 0.35",
                f"{cpu[f'scoring_{tag}_s'] * 1e3:.0f} ms",
            )
        )
    rows.append(
        (
            "batch invariance: plain forward per sequence / batched",
            f"{cpu['plain_seq_s'] / cpu['plain_s']:.3f}",
            "(report)",
            "the cost of bit-identical stores across batch sizes",
        )
    )
    rows.append(
        (
            "capture + scoring, default / batched plain forward",
            f"{cpu['full_seq_s'] / cpu['plain_s']:.3f}",
            "(report)",
            f"{cpu['full_seq_s'] * 1e3:.0f} ms; --no-batch-invariant: "
            f"{cpu['full_batched_s'] / cpu['plain_s']:.3f}",
        )
    )
    if not args.skip_reference:
        ref_s, same = reference(model, cpu["prompts"], cpu["responses"], cpu["k_top"])
        rows.append(
            (
                "reference algorithm / our scoring (batched)",
                f"{ref_s / cpu['scoring_batched_s']:.0f}x",
                ">= 50x",
                f"{ref_s:.1f} s; same key-neuron sets: {same}",
            )
        )
    with tempfile.TemporaryDirectory() as tmp:
        small = peak_rss(64, Path(tmp), args.threads)
        large = peak_rss(1024, Path(tmp), args.threads)
        rows.append(
            (
                "peak RSS, 1024 / 64 samples",
                f"{large / small:.3f}",
                "<= 1.2",
                f"{small:.0f} MiB vs {large:.0f} MiB",
            )
        )
        store_mbs, raw_mbs, mb = store_throughput(Path(tmp))
        rows.append(
            (
                "store write throughput",
                f"{store_mbs:.0f} MB/s",
                "(report)",
                f"raw disk {raw_mbs:.0f} MB/s; {mb:.0f} MB of scores",
            )
        )
    if torch.cuda.is_available():
        gpu = overhead(bench_model("cuda"), args.runs, "cuda")
        for what, value in gpu["tokens_per_s"].items():
            rows.append((f"CUDA tokens/s, {what}", f"{value:.0f}", "(report)", ""))
        rows.append(
            (
                "CUDA capture pass / plain forward, per sequence (default)",
                f"{gpu['pass_seq_s'] / gpu['plain_seq_s']:.3f}",
                "",
                f"batched: {gpu['pass_batched_s'] / gpu['plain_s']:.3f}",
            )
        )
    _print(rows, args)
    return 0


def _print(rows: list, args) -> None:
    print("| measure | value | goal | detail |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(
        f"\n{torch.get_num_threads()} CPU threads, torch {torch.__version__}, "
        f"batch {BATCH} x {SEQ} tokens, medians of {args.runs} runs"
    )


if __name__ == "__main__":
    sys.exit(main())
