"""Greedy generation throughput of ``moemui.generate.generate_responses``, on two models.

What is timed is one whole ``generate_responses(model, tokenizer, samples, batch_size,
max_new_tokens, name)`` call over all of a model's samples (prompt rendering, batching,
``model.generate``, cutting the responses at end tokens and stop strings, scoring),
float32 on the CPU, after one untimed warm-up call on the first batch with a budget of 4
tokens; building or loading the model is not timed. Each model's wall time is the median
of ``--runs`` calls (the default model's calls take a fraction of a second, so it gets
5 x ``--runs``). Reported per model: samples, batch size, budget (``max_new_tokens``),
wall seconds, kept response tokens per second (the sum of ``n_response_tokens`` over the
wall time), samples per second, the mean kept response length, and how the kept
responses end, counted from the records themselves (not from any field a version may or
may not write): ``end`` (last kept token is one of the model's end tokens), ``stop``
(the decoded response, special tokens skipped, contains one of the sample's stop
strings), ``budget`` (``max_new_tokens`` tokens, none of these), ``other``.

1. ``default``: the default workflow's ``olmoe-v1`` model (trained recipe ``olmoe_v1``:
   OLMoE, 2 layers, hidden 96, 16 experts of 256, top-2; 400 steps). Loaded from the
   workflow's checkpoint ``results/training/olmoe_v1/step-00400`` (or
   ``results/models/olmoe-v1``, or ``--default-model DIR``) when there is one, else
   trained once with ``moemui.train.train`` (about 1.5 min on 2 cores) into
   ``~/.cache/moemui-bench/olmoe_v1-<hash of the recipe>/``. Samples: the default
   config's ``arithmetic`` task (``builtin:arithmetic``, n 64, digits 2; kind
   ``number``), each given the stop string ``"\\n"``; batch size 16 (the workflow's
   default), budget 32 tokens. The model was trained to answer with the number and its
   eos, so its responses end at the eos (``end``) after 2-4 tokens; the stop string is
   checked but this model never writes it (the ``ends`` column shows it).
2. ``qwen3-30b-a3b-2l``: Qwen3-30B-A3B's geometry (``Qwen3MoeConfig``: hidden 2048, 32
   attention heads, 4 KV heads, head_dim 128, 128 experts of 768, top-8, renormalised,
   rope theta 1e6) cut to 2 layers, 1.25 B parameters, random float32 weights drawn by
   this script with seed 0 (matrices N(0, 1/fan_in), embeddings N(0, 1), norms 1; the
   same in every process), ``grouped_mm`` experts. Tokenizer: the project's byte-level
   one (``moemui.tokenizer.build_tokenizer``) plus the special token ``<|im_end|>`` (id
   259; vocab 260); the model declares two end tokens,
   ``generation_config.eos_token_id = [1 (<|endoftext|>, the tokenizer's eos), 259
   (<|im_end|>, a chat model's end of turn)]``. Samples: 16 prompts of seeded random
   lowercase words, 20 to 200 bytes (= tokens) long (uniform), in random length order;
   kind ``number``, no chat template; batch size 8, budget 64 tokens.

   Random weights do not stop by themselves, so the stop strings are put in play this
   way, before anything is timed: each prompt is first generated alone (batch of one,
   no padding) greedily to the full budget, with no end token or stop string honoured
   (a plain KV-cache loop, not ``generate_responses``). For each sample a position
   ``pos`` is drawn uniformly from ``[1, budget)`` (``random.Random(1)``, in sample
   order) and the sample's ``meta.stop`` is ``[decode(gen[pos-1:pos+1])]``, the text of
   the 2 tokens generated there, so that a version honouring it keeps ``pos + 1`` tokens
   (fewer if that text occurs earlier, or an end token comes first). A draw is redrawn
   (up to 100 times) when one of the 2 tokens is special or their text is not valid
   UTF-8 on its own or not found in the decoded generation up to ``pos``; a sample with
   no valid draw has no stop string. The end tokens are in play only where the random
   model itself emits ``<|endoftext|>`` or ``<|im_end|>`` (reported in the footnote,
   with the mean kept length the reference generation implies with both end tokens and
   with the eos alone). The timed calls generate in padded batches, so a sample's
   greedy tokens may differ from the unbatched reference where two logits nearly tie;
   the ``ends`` column shows how many stop strings were actually met.

With ``--compare-src DIR`` the script first runs itself in a subprocess with
``PYTHONPATH=DIR`` (and the same arguments), so that ``moemui`` is imported from another
checkout's ``src``, on the very same samples, stop strings and weights (prepared once
by this process and handed over in a file), then measures the ``moemui`` this process
imports, and prints before / after columns, the speed-up (before wall / after wall), and
how many samples got the same kept ``response_ids`` on both sides. For example, against
the commit before the in-loop stopping::

    git worktree add /tmp/gen-before 3ac1ec6
    python benchmarks/generate_bench.py --compare-src /tmp/gen-before/src
    python benchmarks/generate_bench.py [--runs 3] [--threads 2] [--only default]
    python benchmarks/generate_bench.py --quick      # smoke run, < 1 min once trained
    python benchmarks/generate_bench.py --json rows.json
    python benchmarks/generate_bench.py --only qwen3-30b-a3b-2l --runs 1 \
        --qwen-budget 128 --qwen-prompt-len 16 64 --compare-src /tmp/gen-before/src

``--qwen-budget`` and ``--qwen-prompt-len MIN MAX`` change the Qwen3 slice's budget and
prompt lengths (the second command: about 9 minutes, 130 s of it the reference run).

Default arguments should take about 3 minutes on 2 idle cores (about 5.5 with
``--compare-src``), plus 1.5 min the first time, for training; most of it is the Qwen3
slice (18 s to draw its weights in each process, about 50 s of reference generation,
then about 35 s a run). ``--quick`` shrinks everything (the default model: 16 samples;
the Qwen3 slice: 4 prompts of 20 to 60 tokens, batch 4, budget 8; one run): about 30 s,
a minute with ``--compare-src``. Its single runs are timings for a smoke test only.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path.home() / ".cache" / "moemui-bench"
MODELS = ("default", "qwen3-30b-a3b-2l")
RECIPE = "olmoe_v1"
IM_END = "<|im_end|>"
PAD_ID, EOS_ID, BOS_ID = 0, 1, 2
QWEN_SEED, STOP_SEED, PROMPT_SEED = 0, 1, 2
QWEN = {
    "hidden_size": 2048,
    "intermediate_size": 6144,
    "moe_intermediate_size": 768,
    "num_hidden_layers": 2,
    "num_attention_heads": 32,
    "num_key_value_heads": 4,
    "head_dim": 128,
    "num_experts": 128,
    "num_experts_per_tok": 8,
    "norm_topk_prob": True,
    "rope_theta": 1e6,
    "rms_norm_eps": 1e-6,
    "max_position_embeddings": 512,
    "tie_word_embeddings": False,
}
#: per model: samples, batch size, budget, prompt length range (qwen), runs factor
FULL = {
    "default": {"samples": 64, "batch_size": 16, "budget": 32, "runs_factor": 5},
    "qwen3-30b-a3b-2l": {
        "samples": 16,
        "batch_size": 8,
        "budget": 64,
        "prompt_len": (20, 200),
        "runs_factor": 1,
    },
}
QUICK = {
    "default": {"samples": 16, "batch_size": 16, "budget": 32, "runs_factor": 1},
    "qwen3-30b-a3b-2l": {
        "samples": 4,
        "batch_size": 4,
        "budget": 8,
        "prompt_len": (20, 60),
        "runs_factor": 1,
    },
}


# ------------------------------------------------------------------------------------
# models
# ------------------------------------------------------------------------------------


def default_model_dir(override: str | None) -> Path:
    """The ``olmoe_v1`` checkpoint: given, the workflow's, or trained once into the cache."""
    if override:
        return Path(override).resolve()
    for found in (
        ROOT / "results" / "training" / RECIPE / "step-00400",
        ROOT / "results" / "models" / "olmoe-v1",
    ):
        if (found / "config.json").is_file():
            return found
    from moemui.recipes import recipe_spec, trained_recipe
    from moemui.train import checkpoint_dir, train

    digest = hashlib.sha256(recipe_spec(RECIPE).encode()).hexdigest()[:12]
    out = CACHE / f"{RECIPE}-{digest}"
    final = checkpoint_dir(out, trained_recipe(RECIPE).steps)
    if not (final / "config.json").is_file():
        print(f"training {RECIPE} into {out} (once; about 1.5 min on 2 cores)", flush=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        train(RECIPE, out)
    return final


def load_default(path: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=torch.float32, experts_implementation="grouped_mm"
    )
    return model.eval(), AutoTokenizer.from_pretrained(path)


def qwen_tokenizer():
    """The byte-level tokenizer plus ``<|im_end|>`` (id 259)."""
    from tokenizers import AddedToken

    from moemui.tokenizer import build_tokenizer

    tok = build_tokenizer(model_max_length=QWEN["max_position_embeddings"])
    tok.add_tokens([AddedToken(IM_END, special=True, normalized=False)], special_tokens=True)
    return tok


def qwen_model(vocab: int, im_end: int):
    """Qwen3-30B-A3B's geometry in 2 layers, seeded random float32 weights."""
    from transformers import AutoModelForCausalLM, GenerationConfig, Qwen3MoeConfig

    try:  # skip transformers' own initialisation: every parameter is drawn below
        from transformers.initialization import no_init_weights
    except ImportError:  # pragma: no cover - another transformers
        no_init_weights = contextlib.nullcontext
    config = Qwen3MoeConfig(
        vocab_size=vocab, pad_token_id=PAD_ID, eos_token_id=EOS_ID, bos_token_id=BOS_ID, **QWEN
    )
    with no_init_weights():
        model = AutoModelForCausalLM.from_config(config, experts_implementation="grouped_mm")
    generator = torch.Generator().manual_seed(QWEN_SEED)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            if param.ndim < 2:
                param.fill_(1.0 if "norm" in name else 0.0)
                continue
            std = 1.0 if "embed" in name else param.shape[-1] ** -0.5
            param.normal_(0.0, std, generator=generator)
    model.generation_config = GenerationConfig(
        eos_token_id=[EOS_ID, im_end], pad_token_id=PAD_ID, bos_token_id=BOS_ID, do_sample=False
    )
    return model.eval()


def end_ids(model, tokenizer) -> set[int]:
    declared = model.generation_config.eos_token_id
    declared = declared if isinstance(declared, list) else [declared]
    return {int(t) for t in [*declared, tokenizer.eos_token_id] if t is not None}


# ------------------------------------------------------------------------------------
# samples
# ------------------------------------------------------------------------------------


def default_samples(n: int) -> list[dict]:
    from moemui.tasks import make_task

    samples = make_task(
        {"id": "arithmetic", "source": "builtin:arithmetic", "n": n, "params": {"digits": 2}}
    )
    for sample in samples:
        sample["meta"]["stop"] = ["\n"]
    return samples


def random_prompt(rng: random.Random, length: int) -> str:
    words = []
    while sum(len(w) + 1 for w in words) < length:
        words.append("".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(1, 9))))
    return " ".join(words)[:length]


@torch.no_grad()
def greedy_unbatched(model, ids: list[int], budget: int) -> list[int]:
    """``budget`` greedy tokens after ``ids``, one sequence, no end token honoured."""
    out = model(input_ids=torch.tensor([ids]), use_cache=True)
    gen = []
    for step in range(budget):
        token = int(out.logits[0, -1].argmax())
        gen.append(token)
        if step + 1 < budget:
            out = model(
                input_ids=torch.tensor([[token]]),
                past_key_values=out.past_key_values,
                use_cache=True,
            )
    return gen


def kept_length(tokenizer, gen: list[int], ends: set[int], stop: list[str] | None) -> int:
    """Tokens a response keeps: up to its first end token or the token that completes
    its first stop string, whichever comes first."""
    n = next((i + 1 for i, t in enumerate(gen) if t in ends), len(gen))
    if stop:
        for j in range(1, n + 1):
            if any(s in tokenizer.decode(gen[:j], skip_special_tokens=True) for s in stop):
                return j
    return n


def qwen_samples(model, tokenizer, n: int, budget: int, prompt_len: tuple[int, int]):
    """Random prompts, each with a stop string drawn from its unbatched greedy
    generation (see the module docstring); and the reference's statistics."""
    im_end = tokenizer.convert_tokens_to_ids(IM_END)
    special = {PAD_ID, EOS_ID, BOS_ID, im_end}
    prompts = random.Random(PROMPT_SEED)
    stops = random.Random(STOP_SEED)
    samples, stats = [], {"stop_strings": 0, "eos": 0, "im_end": 0, "both": [], "eos_only": []}
    for i in range(n):
        text = random_prompt(prompts, prompts.randint(*prompt_len))
        gen = greedy_unbatched(model, list(tokenizer(text)["input_ids"]), budget)
        meta = {"kind": "number", "chat_template": False}
        for _ in range(100):
            pos = stops.randrange(1, budget)
            pair = gen[pos - 1 : pos + 1]
            stop = tokenizer.decode(pair, skip_special_tokens=True)
            whole = tokenizer.decode(gen[: pos + 1], skip_special_tokens=True)
            if special.isdisjoint(pair) and "\ufffd" not in stop and stop and stop in whole:
                meta |= {"stop": [stop], "stop_position": pos}
                stats["stop_strings"] += 1
                break
        stats["eos"] += EOS_ID in gen
        stats["im_end"] += im_end in gen
        stats["both"].append(kept_length(tokenizer, gen, {EOS_ID, im_end}, meta.get("stop")))
        stats["eos_only"].append(kept_length(tokenizer, gen, {EOS_ID}, meta.get("stop")))
        samples.append({"id": f"rand-{i:03d}", "prompt": text, "reference": "0", "meta": meta})
    return samples, stats


def prepare(args, plan: dict) -> tuple[dict, dict]:
    """The inputs both sides measure (model locations, samples), and the reference notes."""
    inputs, notes = {}, {}
    if "default" in args.only:
        inputs["default"] = {
            "path": str(default_model_dir(args.default_model)),
            "samples": default_samples(plan["default"]["samples"]),
        }
    if "qwen3-30b-a3b-2l" in args.only:
        p = plan["qwen3-30b-a3b-2l"]
        tokenizer = qwen_tokenizer()
        model = qwen_model(len(tokenizer), tokenizer.convert_tokens_to_ids(IM_END))
        start = time.perf_counter()
        samples, stats = qwen_samples(model, tokenizer, p["samples"], p["budget"], p["prompt_len"])
        stats["seconds"] = time.perf_counter() - start
        inputs["qwen3-30b-a3b-2l"] = {"samples": samples}
        notes["qwen3-30b-a3b-2l"] = stats
        notes["_built"] = (model, tokenizer)  # measured again, not rebuilt
    return inputs, notes


# ------------------------------------------------------------------------------------
# measurement
# ------------------------------------------------------------------------------------


def end_kind(tokenizer, ids: list[int], ends: set[int], stop, budget: int) -> str:
    if ids and ids[-1] in ends:
        return "end"
    text = tokenizer.decode(ids, skip_special_tokens=True)
    if stop and any(s in text for s in stop):
        return "stop"
    return "budget" if len(ids) >= budget else "other"


def measure(name: str, model, tokenizer, samples, plan: dict, runs: int) -> dict:
    from moemui.generate import generate_responses

    batch, budget = plan["batch_size"], plan["budget"]
    torch.manual_seed(0)
    generate_responses(model, tokenizer, samples[:batch], batch, min(budget, 4), name)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        records = generate_responses(model, tokenizer, samples, batch, budget, name)
        times.append(time.perf_counter() - start)
    wall = statistics.median(times)
    kept = sum(r["n_response_tokens"] for r in records)
    ends = end_ids(model, tokenizer)
    stops = {s["id"]: s["meta"].get("stop") for s in samples}
    kinds = {"end": 0, "stop": 0, "budget": 0, "other": 0}
    for r in records:
        kinds[end_kind(tokenizer, r["response_ids"], ends, stops[r["id"]], budget)] += 1
    return {
        "model": name,
        "samples": len(samples),
        "batch_size": batch,
        "budget": budget,
        "runs": runs,
        "wall_s": wall,
        "wall_s_runs": times,
        "kept_tokens": kept,
        "kept_tokens_per_s": kept / wall,
        "samples_per_s": len(samples) / wall,
        "mean_kept": kept / len(records),
        "ends": kinds,
        "_responses": {r["id"]: list(r["response_ids"]) for r in records},
    }


def measure_all(args, plan: dict, inputs: dict, built=None) -> dict:
    import moemui

    rows = []
    for name in MODELS:
        if name not in inputs:
            continue
        runs = args.runs * plan[name]["runs_factor"]
        if name == "default":
            model, tokenizer = load_default(inputs[name]["path"])
        elif built is not None:
            model, tokenizer = built
        else:
            tokenizer = qwen_tokenizer()
            model = qwen_model(len(tokenizer), tokenizer.convert_tokens_to_ids(IM_END))
        rows.append(measure(name, model, tokenizer, inputs[name]["samples"], plan[name], runs))
        del model
        print(f"measured {name} ({moemui.__file__})", file=sys.stderr, flush=True)
    return {"moemui": str(Path(moemui.__file__).parent), "rows": rows}


def run_before(args, inputs: dict, tmp: Path) -> dict:
    """This script, in a subprocess importing ``moemui`` from ``--compare-src``."""
    src = Path(args.compare_src).resolve()
    (tmp / "inputs.json").write_text(json.dumps(inputs))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--runs",
        str(args.runs),
        "--threads",
        str(args.threads),
        "--only",
        *args.only,
        "--inputs",
        str(tmp / "inputs.json"),
        "--json",
        str(tmp / "before.json"),
        *(["--quick"] if args.quick else []),
        *(["--qwen-budget", str(args.qwen_budget)] if args.qwen_budget else []),
        *(["--qwen-prompt-len", *map(str, args.qwen_prompt_len)] if args.qwen_prompt_len else []),
    ]
    subprocess.run(cmd, env=env, check=True)
    before = json.loads((tmp / "before.json").read_text())
    if not Path(before["moemui"]).resolve().is_relative_to(src):
        raise SystemExit(f"the subprocess imported moemui from {before['moemui']}, not {src}")
    return before


# ------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------


def _ends(row: dict) -> str:
    e = row["ends"]
    text = f"{e['end']}/{e['stop']}/{e['budget']}"
    return text + (f" (+{e['other']} other)" if e["other"] else "")


def table(rows: list[dict]) -> str:
    out = [
        "| model | samples | batch | budget | wall s | kept tokens/s | samples/s | "
        "mean kept length | ends: end/stop/budget |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['model']} | {r['samples']} | {r['batch_size']} | {r['budget']} | "
            f"{r['wall_s']:.3f} | {r['kept_tokens_per_s']:.1f} | {r['samples_per_s']:.2f} | "
            f"{r['mean_kept']:.2f} | {_ends(r)} |"
        )
    return "\n".join(out)


def compare_table(before: list[dict], after: list[dict]) -> str:
    out = [
        "| model | samples | batch | budget | wall s before | wall s after | speed-up | "
        "kept tokens/s before | after | samples/s before | after | mean kept length "
        "before | after | ends before | ends after | same kept tokens |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    old = {r["model"]: r for r in before}
    for a in after:
        b = old[a["model"]]
        same = sum(b["_responses"].get(k) == v for k, v in a["_responses"].items())
        out.append(
            f"| {a['model']} | {a['samples']} | {a['batch_size']} | {a['budget']} | "
            f"{b['wall_s']:.3f} | {a['wall_s']:.3f} | {b['wall_s'] / a['wall_s']:.2f}x | "
            f"{b['kept_tokens_per_s']:.1f} | {a['kept_tokens_per_s']:.1f} | "
            f"{b['samples_per_s']:.2f} | {a['samples_per_s']:.2f} | "
            f"{b['mean_kept']:.2f} | {a['mean_kept']:.2f} | {_ends(b)} | {_ends(a)} | "
            f"{same}/{a['samples']} |"
        )
    return "\n".join(out)


def footnotes(args, plan: dict, notes: dict, sources: list[str]) -> str:
    import transformers

    lines = [
        "",
        f"{torch.get_num_threads()} CPU threads, torch {torch.__version__}, transformers "
        f"{transformers.__version__}, float32; runs per median: {args.runs} "
        f"(default model: {args.runs * plan['default']['runs_factor']}); moemui from "
        + " -> ".join(sources),
        "ends: the last kept token is an end token / the kept text holds a stop string / "
        "the budget was used up",
    ]
    q = notes.get("qwen3-30b-a3b-2l")
    if q:
        n = len(q["both"])
        lines.append(
            f"qwen3-30b-a3b-2l reference (unbatched greedy to the budget, {q['seconds']:.0f} s, "
            f"untimed): {q['stop_strings']}/{n} samples got a stop string; the model emits "
            f"<|endoftext|> in {q['eos']} and <|im_end|> in {q['im_end']} of them; it implies "
            f"a mean kept length of {statistics.mean(q['both']):.2f} with both end tokens "
            f"and {statistics.mean(q['eos_only']):.2f} with <|endoftext|> alone"
        )
    return "\n".join(lines)


def public(rows: list[dict], side: str | None = None) -> list[dict]:
    out = []
    for r in rows:
        row = {k: v for k, v in r.items() if not k.startswith("_")}
        out.append(row | ({"side": side} if side else {}))
    return out


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser (tests/test_docs.py parses the README's command lines)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, help="timed runs per median (3; --quick: 1)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--only", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--quick", action="store_true", help="a smoke run (< 1 min)")
    parser.add_argument("--default-model", metavar="DIR", help="an olmoe_v1 checkpoint")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    parser.add_argument(
        "--compare-src", metavar="DIR", help="also measure the moemui of this src, as before"
    )
    parser.add_argument("--qwen-budget", type=int, help="the Qwen3 slice's budget (64; --quick: 8)")
    parser.add_argument(
        "--qwen-prompt-len",
        type=int,
        nargs=2,
        metavar=("MIN", "MAX"),
        help="the Qwen3 slice's prompt lengths in tokens (20 200; --quick: 20 60)",
    )
    parser.add_argument("--inputs", help=argparse.SUPPRESS)  # the subprocess's samples
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    plan = json.loads(json.dumps(QUICK if args.quick else FULL))
    qwen = plan["qwen3-30b-a3b-2l"]
    if args.qwen_budget:
        qwen["budget"] = args.qwen_budget
    if args.qwen_prompt_len:
        qwen["prompt_len"] = tuple(args.qwen_prompt_len)
    if args.runs is None:
        args.runs = 1 if args.quick else 3
    args.only = [m for m in MODELS if m in args.only]

    if args.inputs:  # the --compare-src subprocess: measure, write everything, print nothing
        result = measure_all(args, plan, json.loads(Path(args.inputs).read_text()))
        Path(args.json).write_text(json.dumps(result))
        return 0

    inputs, notes = prepare(args, plan)
    if args.compare_src:
        with tempfile.TemporaryDirectory() as tmp:
            before = run_before(args, inputs, Path(tmp))
        after = measure_all(args, plan, inputs, notes.pop("_built", None))
        print(compare_table(before["rows"], after["rows"]))
        print(footnotes(args, plan, notes, [before["moemui"], after["moemui"]]))
        rows = public(before["rows"], "before") + public(after["rows"], "after")
    else:
        after = measure_all(args, plan, inputs, notes.pop("_built", None))
        print(table(after["rows"]))
        print(footnotes(args, plan, notes, [after["moemui"]]))
        rows = public(after["rows"])
    if args.json:
        import transformers

        env = {
            "threads": args.threads,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "quick": args.quick,
            "moemui": ([before["moemui"]] if args.compare_src else []) + [after["moemui"]],
            "reference": {k: v for k, v in notes.items() if not k.startswith("_")},
        }
        Path(args.json).write_text(json.dumps({"environment": env, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
