"""The ``moemui`` command line: one subcommand per workflow step.

Known failures (bad config, model, task or file) print one ``ERROR: ...`` line and
exit with status 2; anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path

from moemui import __version__
from moemui.errors import MoemuiError
from moemui.limits import (
    MAX_BATCH,
    MAX_DRAWS,
    MAX_NEW_TOKENS,
    MAX_SAMPLES,
    MAX_SEED,
    MAX_SHARDS,
    MAX_TOP_EXPERTS,
)


def _int_in(lo: int, hi: int):
    """An argparse type: a whole number of ASCII digits in ``lo..hi`` (the config's
    bounds, :mod:`moemui.limits`); "64.0", "1e3" and "²" are usage errors."""

    def parse(text: str) -> int:
        if not re.fullmatch(r"[+-]?[0-9]+", text.strip()):
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
        value = int(text)
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value} is outside {lo}..{hi}")
        return value

    parse.__name__ = "integer"
    return parse


def _fraction(lo_open: bool = True):
    """An argparse type: a finite number in (0, 1) (a threshold), or [0, 1) (a rho)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not (0 < value < 1 if lo_open else 0 <= value < 1):
            raise argparse.ArgumentTypeError(f"{text} is outside {'(0' if lo_open else '[0'}, 1)")
        return value

    parse.__name__ = "fraction"
    return parse


_THRESHOLD = _fraction()
_RHO = _fraction(lo_open=False)
_BATCH = _int_in(1, MAX_BATCH)
_NEW_TOKENS = _int_in(1, MAX_NEW_TOKENS)
_SAMPLES = _int_in(1, MAX_SAMPLES)
_SEED = _int_in(0, MAX_SEED)


def _shard(text: str) -> tuple[int, int]:
    """An argparse type: a shard ``I/N`` (or ``I-of-N``), 1 <= I <= N <= MAX_SHARDS."""
    from moemui.shards import parse_shard

    try:
        index, count = parse_shard(text)
    except MoemuiError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if count > MAX_SHARDS:
        raise argparse.ArgumentTypeError(f"{count} shards: at most {MAX_SHARDS}")
    return index, count


_shard.__name__ = "shard"


def _add_shard_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--shard",
        type=_shard,
        default=None,
        metavar="I/N",
        help="only shard I of N: a contiguous range of the task's samples (default: all)",
    )


def _csv_list(text: str) -> list[str]:
    return [part for part in text.split(",") if part]


def _json_object(text: str) -> dict:
    """A flag's JSON object (argparse reports anything else as a usage error)."""
    try:
        value = json.loads(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not JSON ({err}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"not a JSON object: {text!r}")
    return value


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model-id", required=True, help="the model's id (slug) in the config")
    p.add_argument("--source", required=True, help="a model directory or a Hub id")
    p.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, ...")
    p.add_argument(
        "--device-map",
        default=None,
        help="spread the model over the visible GPUs (auto, balanced, sequential, ...)",
    )
    p.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="let transformers run the model repository's own code",
    )


def _add_generation_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--reasoning",
        choices=["none", "think", "harmony"],
        default="none",
        help="where the final answer is: the whole response (none), after </think> "
        "(think), GPT-OSS's final channel (harmony)",
    )
    p.add_argument(
        "--chat-template-kwargs",
        type=_json_object,
        default="{}",
        help="variables for the chat template, as JSON (e.g. '{\"enable_thinking\": false}')",
    )


def _loading(args) -> dict:
    """The model-loading options of :func:`_add_model_args`, as keyword arguments."""
    return {
        "revision": args.revision,
        "dtype": args.dtype,
        "device": args.device,
        "trust_remote_code": args.trust_remote_code,
        "device_map": args.device_map,
    }


def cmd_build_model(args) -> None:
    from moemui.recipes import build_model

    build_model(args.recipe, args.seed, args.out)


def cmd_make_task(args) -> None:
    from moemui.pipeline import materialise_task

    materialise_task(json.loads(args.spec), args.out)


def cmd_generate(args) -> None:
    from moemui.pipeline import generate_task

    generate_task(
        args.model_id,
        args.source,
        args.tasks,
        args.out,
        **_loading(args),
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        reasoning=args.reasoning,
        template_kwargs=args.chat_template_kwargs,
        imported=args.import_responses,
        shard=args.shard,
    )


def cmd_capture(args) -> None:
    from moemui.pipeline import capture_task

    capture_task(
        args.model_id,
        args.source,
        args.task_id,
        args.tasks,
        args.responses,
        args.out,
        **_loading(args),
        variants=tuple(args.variants),
        target=args.target,
        max_threshold=args.max_threshold,
        batch_size=args.batch_size,
        batch_invariant=args.batch_invariant,
        keep=args.keep,
        tokens=args.tokens,
        attrs=args.attrs,
        shard=args.shard,
    )


def cmd_gather_responses(args) -> None:
    from moemui.shards import gather_responses

    gather_responses(args.tasks, args.parts, args.out)


def cmd_gather_store(args) -> None:
    from moemui.progress import progress
    from moemui.shards import gather_store

    gather_store(
        args.tasks,
        args.parts,
        args.out,
        progress=lambda blocks: progress(blocks, desc=f"gather {args.out}", unit="block"),
    )


def _group(path: str) -> tuple[Path, str, str]:
    """Split a store group directory STORE/{model}/{task} into its parts."""
    group = Path(path)
    return group.parent.parent, group.parent.name, group.name


def cmd_mui(args) -> None:
    from moemui.pipeline import mui_cell

    mui_cell(args.group, args.thresholds, args.out, correct_only=args.correct_only)


def cmd_keys(args) -> None:
    from moemui.analyses.steps import derive_keys

    derive_keys(args.group, args.thresholds, args.out)


def cmd_performance(args) -> None:
    from moemui.pipeline import performance

    performance([(Path(p).parent.name, Path(p).stem, p) for p in args.responses], args.out)


def cmd_concat(args) -> None:
    from moemui.pipeline import concat_tables

    concat_tables(args.inputs, args.out)


def cmd_index_store(args) -> None:
    from moemui.pipeline import index
    from moemui.store import not_a_group

    for group in args.groups:
        if why := not_a_group(group):
            raise MoemuiError(why)
    parts = [_group(g) for g in args.groups]
    stores = {store for store, _, _ in parts}
    if len(stores) != 1:
        raise MoemuiError(f"groups belong to several stores: {sorted(map(str, stores))}")
    index(stores.pop(), [f"{model}/{task}" for _, model, task in parts])


def cmd_check_store(args) -> None:
    from moemui.cache import cache_entry, set_aside_entry
    from moemui.progress import progress
    from moemui.store import recapture_hint, set_aside, verify_group

    root = Path(args.store)
    if not (root / "zarr.json").exists() and not root.is_dir():
        raise MoemuiError(f"{root}: no activations store there")
    # every directory at a group's place, also one whose metadata is gone
    groups = sorted(
        p
        for p in root.glob("*/*")
        if p.is_dir() and not p.name.startswith(".") and not p.parent.name.startswith(".")
    )
    bad = 0
    for group in groups:
        model, task = group.parent.name, group.name

        def chunks(items, name=f"{model}/{task}"):
            return progress(items, desc=f"check {name}", unit="chunk")

        problems = verify_group(root, model, task, progress=chunks)
        if not problems:
            print(f"ok       {model}/{task}")
            continue
        bad += 1
        print(f"CORRUPT  {model}/{task}: {'; '.join(problems)}")
        if args.set_aside:
            entry = cache_entry(group)
            print(f"         moved to {set_aside(root, model, task)}")
            if entry is not None:
                print(f"         its output cache entry moved to {set_aside_entry(entry)}")
    if bad:
        hint = (
            "run snakemake to capture them again"
            if args.set_aside
            else recapture_hint(root).replace("capture it", "capture them")
        )
        raise MoemuiError(f"{root}: {bad} of {len(groups)} groups cannot be used; {hint}")


def cmd_revisions(args) -> None:
    from moemui.sources import list_revisions

    for name in list_revisions(args.repo):
        print(name)


def cmd_train(args) -> None:
    from moemui.train import train

    train(args.recipe, args.out)


def cmd_trajectory(args) -> None:
    import pandas as pd

    from moemui.pipeline import write_csv
    from moemui.trajectory import trajectory_table

    table = trajectory_table(
        pd.read_csv(args.mui), pd.read_csv(args.performance), json.loads(args.series)
    )
    write_csv(table, args.out)


def cmd_plan(args) -> None:
    from moemui.plan import format_plan, plan_rows, read_config

    config = read_config(args.configfile, Path(args.default) if args.default else None)
    results = Path(args.results or config["results"])
    print(format_plan(plan_rows(config, results), config["capture"]["keep"]))


def cmd_inspect(args) -> None:
    from moemui.adapters import adapter_for
    from moemui.sources import model_skeleton

    # from the config alone, on the meta device: no weights read, nothing run
    model = model_skeleton(args.source, args.source, args.revision)
    geometry = adapter_for(model, args.source).geometry(model, args.source)
    info = geometry.as_dict()
    if args.json:
        print(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        print(f"{key:>20}: {value}")


# --------------------------------------------------------------------------------------
# Analyses and charts (SPEC §4-§6)
# --------------------------------------------------------------------------------------


def cmd_experts(args) -> None:
    from moemui.analyses.steps import tabulate_experts

    tabulate_experts(
        args.groups,
        args.thresholds,
        args.rho,
        args.top,
        args.out_experts,
        args.out_key_experts,
        args.out_top,
        args.out_top_key,
    )


def cmd_robustness(args) -> None:
    from moemui.analyses.steps import tabulate_robustness

    tabulate_robustness(args.mui, args.key_experts, args.experts, args.out)


def cmd_mui_performance(args) -> None:
    from moemui.analyses.steps import tabulate_mui_performance

    models = json.loads(args.models)
    tabulate_mui_performance(args.mui, args.performance, models, args.out, args.out_fits)


def cmd_diversity(args) -> None:
    from moemui.analyses.steps import tabulate_diversity

    tabulate_diversity(args.groups, args.thresholds, args.sizes, args.draws, args.seed, args.out)


def cmd_ablate(args) -> None:
    from moemui.analyses.steps import ablate

    ablate(
        args.model_id,
        args.source,
        args.tasks,
        args.group,
        args.variant,
        args.thresholds,
        args.seeds,
        args.n_samples,
        args.max_new_tokens,
        args.batch_size,
        args.out,
        **_loading(args),
        reasoning=args.reasoning,
        template_kwargs=args.chat_template_kwargs,
    )


def cmd_aggregate_ablation(args) -> None:
    from moemui.analyses.steps import aggregate_ablation

    aggregate_ablation(args.tables, args.out, args.out_summary)


def cmd_chart(args) -> None:
    import pandas as pd

    from moemui.charts import make_chart, save_chart

    tables = []
    for path in args.tables:
        try:
            tables.append(pd.read_csv(path))
        except FileNotFoundError:
            raise MoemuiError(f"{path}: file not found") from None
    chart = make_chart(args.name, tables, args.variant, args.threshold)
    bundle = Path(args.bundle).read_text(encoding="utf-8") if args.bundle else None
    paths = {"html": args.html, "svg": args.svg, "png": args.png, "vl.json": args.spec}
    save_chart(chart, {fmt: path for fmt, path in paths.items() if path}, bundle)


def cmd_vega_bundle(args) -> None:
    from moemui.charts import vega_bundle
    from moemui.io import atomic_write_text

    atomic_write_text(args.out, vega_bundle())


_GROUPS_HELP = "group directories STORE/{model}/{task} or their key-neuron files (.npz)"


def _add_analysis_commands(sub) -> None:
    p = sub.add_parser("experts", help="key rates, key-expert proportions and top experts")
    p.add_argument("groups", nargs="+", help=_GROUPS_HELP)
    p.add_argument("--thresholds", type=_THRESHOLD, nargs="+", required=True)
    p.add_argument("--rho", type=_RHO, nargs="*", default=[], help="key_rate cut-offs (0 too)")
    p.add_argument(
        "--top",
        type=_int_in(1, MAX_TOP_EXPERTS),
        default=10,
        help="experts kept per cell in each top-experts table (default: 10)",
    )
    p.add_argument("--out-experts", required=True)
    p.add_argument("--out-key-experts", required=True)
    p.add_argument("--out-top", required=True, help="top experts by activation rate (CSV)")
    p.add_argument(
        "--out-top-key",
        required=True,
        help="top experts by key rate, per variant and threshold (CSV)",
    )
    p.set_defaults(func=cmd_experts)

    p = sub.add_parser("robustness", help="threshold and method robustness")
    p.add_argument("--mui", required=True)
    p.add_argument("--key-experts", required=True)
    p.add_argument("--experts", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_robustness)

    p = sub.add_parser("mui-performance", help="MUI against accuracy, with per-family fits")
    p.add_argument("--mui", required=True)
    p.add_argument("--performance", required=True)
    p.add_argument("--models", required=True, help="JSON: {model id: {family, release, ...}}")
    p.add_argument("--out", required=True)
    p.add_argument("--out-fits", required=True)
    p.set_defaults(func=cmd_mui_performance)

    p = sub.add_parser("diversity", help="MUI of random subsets of samples")
    p.add_argument("groups", nargs="+", help=_GROUPS_HELP)
    p.add_argument("--thresholds", type=_THRESHOLD, nargs="+", required=True)
    p.add_argument("--sizes", type=_SAMPLES, nargs="+", required=True)
    p.add_argument("--draws", type=_int_in(1, MAX_DRAWS), default=5)
    p.add_argument("--seed", type=_SEED, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_diversity)

    p = sub.add_parser("ablate", help="accuracy with key or random neurons zeroed")
    _add_model_args(p)
    p.add_argument("--tasks", required=True, help="the task's JSONL file")
    p.add_argument(
        "--group",
        required=True,
        help="the group directory STORE/{model}/{task} or its key-neuron file (.npz)",
    )
    p.add_argument("--variant", required=True)
    p.add_argument(
        "--thresholds",
        type=_THRESHOLD,
        nargs="+",
        required=True,
        help="the thresholds whose key neurons are zeroed, one run each",
    )
    p.add_argument(
        "--seeds",
        type=_SEED,
        nargs="+",
        default=[0, 1, 2],
        help="one random-neuron control per seed and threshold (default: 0 1 2)",
    )
    p.add_argument("--n-samples", type=_SAMPLES, default=64)
    p.add_argument("--max-new-tokens", type=_NEW_TOKENS, default=8)
    p.add_argument("--batch-size", type=_BATCH, default=16)
    _add_generation_args(p)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_ablate)

    p = sub.add_parser(
        "aggregate-ablation", help="the ablation cells' tables as one, and their summary"
    )
    p.add_argument("tables", nargs="+", help="per-cell ablation tables (moemui ablate)")
    p.add_argument("--out", required=True, help="all rows (CSV)")
    p.add_argument(
        "--out-summary",
        required=True,
        help="per cell and threshold: the key drop against the random draws (CSV)",
    )
    p.set_defaults(func=cmd_aggregate_ablation)

    p = sub.add_parser("chart", help="draw a chart as HTML, SVG, PNG and Vega-Lite JSON")
    p.add_argument("name", help="the chart (see moemui.charts.CHARTS)")
    p.add_argument("tables", nargs="+", help="its tables, in order")
    p.add_argument("--variant", default="gate", help="the variant shown")
    p.add_argument("--threshold", type=_THRESHOLD, default=0.001, help="the threshold shown")
    p.add_argument("--bundle", default=None, help="a Vega script from `moemui vega-bundle`")
    p.add_argument("--html", default=None, help="interactive page (Vega inlined)")
    p.add_argument("--svg", default=None)
    p.add_argument("--png", default=None)
    p.add_argument("--spec", default=None, help="the Vega-Lite JSON")
    p.set_defaults(func=cmd_chart)

    p = sub.add_parser("vega-bundle", help="write the Vega script the chart pages inline")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_vega_bundle)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="moemui", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"moemui {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("build-model", help="build a builtin tiny MoE and save it")
    p.add_argument("--recipe", required=True)
    p.add_argument("--seed", type=_SEED, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_build_model)

    p = sub.add_parser("make-task", help="materialise a config task's samples as JSONL")
    p.add_argument("--spec", required=True, help="the config task entry, as JSON")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_make_task)

    p = sub.add_parser("generate", help="greedy responses of a model to a task")
    _add_model_args(p)
    p.add_argument("--tasks", required=True, help="the task's JSONL file")
    p.add_argument("--out", required=True)
    p.add_argument("--batch-size", type=_BATCH, default=16)
    p.add_argument("--max-new-tokens", type=_NEW_TOKENS, default=16)
    _add_generation_args(p)
    p.add_argument(
        "--import",
        dest="import_responses",
        default=None,
        metavar="FORMAT:PATH",
        help="read responses made elsewhere instead of generating: jsonl:PATH or lm-eval:PATH",
    )
    _add_shard_arg(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("capture", help="capture contribution scores into the store")
    _add_model_args(p)
    p.add_argument("--task-id", required=True)
    p.add_argument("--tasks", required=True)
    p.add_argument("--responses", required=True)
    p.add_argument("--out", required=True, help="the group directory: STORE/{model}/{task}")
    p.add_argument("--variants", type=_csv_list, default=["gate", "glu"])
    p.add_argument("--target", default="next", choices=["next", "same_position"])
    p.add_argument("--max-threshold", type=_THRESHOLD, default=0.01)
    p.add_argument("--batch-size", type=_BATCH, default=8)
    p.add_argument(
        "--batch-invariant",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="one forward per sequence: scores bit-identical across batch sizes (default); "
        "--no-batch-invariant runs a batch as one padded forward (faster on GPUs; scores "
        "then agree across batch sizes to rounding)",
    )
    p.add_argument(
        "--keep",
        choices=["key", "all"],
        default="key",
        help="key (default): store only the scores of neurons that can be key at a "
        "threshold <= --max-threshold (exact for every table); all: every neuron's score",
    )
    p.add_argument(
        "--tokens",
        choices=["all", "answer"],
        default="all",
        help="all (default): score every response token; answer: only the final answer's",
    )
    p.add_argument(
        "--attrs", type=_json_object, default="{}", help="extra group attributes, as JSON"
    )
    _add_shard_arg(p)
    p.set_defaults(func=cmd_capture)

    p = sub.add_parser(
        "keys", help="read a store group once and write its key neurons at thresholds"
    )
    p.add_argument("--group", required=True, help="the group directory: STORE/{model}/{task}")
    p.add_argument("--thresholds", type=_THRESHOLD, nargs="+", required=True)
    p.add_argument("--out", required=True, help="the key-neuron file to write (.npz)")
    p.set_defaults(func=cmd_keys)

    p = sub.add_parser(
        "gather-responses", help="join the responses of a cell's shards into one file"
    )
    p.add_argument("--tasks", required=True, help="the task's JSONL file")
    p.add_argument("--parts", nargs="+", required=True, help="every shard's responses file")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_gather_responses)

    p = sub.add_parser("gather-store", help="join the store groups of a cell's shards")
    p.add_argument("--tasks", required=True, help="the task's JSONL file")
    p.add_argument(
        "--parts", nargs="+", required=True, help="every shard's group, .../I-of-N/.../STORE/m/t"
    )
    p.add_argument("--out", required=True, help="the group directory: STORE/{model}/{task}")
    p.set_defaults(func=cmd_gather_store)

    p = sub.add_parser("mui", help="MUI of one store group at thresholds")
    p.add_argument(
        "--group",
        required=True,
        help="the group directory STORE/{model}/{task} or its key-neuron file (.npz)",
    )
    p.add_argument("--thresholds", type=_THRESHOLD, nargs="+", required=True)
    p.add_argument(
        "--correct-only",
        action="store_true",
        help="also MUI over the correctly answered samples (extra columns)",
    )
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_mui)

    p = sub.add_parser("performance", help="accuracy per model and task")
    p.add_argument("responses", nargs="+", help="responses files .../{model}/{task}.jsonl")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_performance)

    p = sub.add_parser("concat", help="concatenate CSV tables")
    p.add_argument("inputs", nargs="+")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_concat)

    p = sub.add_parser("index-store", help="write the store's root and model groups")
    p.add_argument("groups", nargs="+", help="group directories STORE/{model}/{task}")
    p.set_defaults(func=cmd_index_store)

    p = sub.add_parser("check-store", help="check every group of an activations store")
    p.add_argument("store", help="the store's directory, e.g. results/activations.zarr")
    p.add_argument(
        "--set-aside",
        action="store_true",
        help="move each group that cannot be used out of the store, to "
        "STORE.set-aside/{model}/{task}.<UTC time> beside it (every copy kept); the next "
        "snakemake run captures it again",
    )
    p.set_defaults(func=cmd_check_store)

    p = sub.add_parser("revisions", help="list a Hub model's revisions (needs the network)")
    p.add_argument("repo", help="a Hub id <org>/<name>")
    p.set_defaults(func=cmd_revisions)

    p = sub.add_parser("train", help="train a tiny MoE recipe on the built-in tasks")
    p.add_argument("--recipe", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("trajectory", help="MUI and performance along checkpoint series")
    p.add_argument("--mui", required=True)
    p.add_argument("--performance", required=True)
    p.add_argument("--series", required=True, help="JSON: [{id, checkpoints: [{model, step}]}]")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_trajectory)

    p = sub.add_parser("inspect", help="print the MoE geometry of a model source")
    p.add_argument("source", help="builtin:<recipe>, a model directory or a Hub id")
    p.add_argument("--revision", default=None)
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser(
        "plan",
        help="print per (model, task) the samples, store bytes and weight memory of a config",
    )
    p.add_argument(
        "--configfile",
        nargs="+",
        default=[],
        help="config files merged on top of --default, as snakemake --configfile does",
    )
    p.add_argument(
        "--default",
        default="config/config.yaml",
        help="the workflow's own config, read first when it exists (default: %(default)s)",
    )
    p.add_argument(
        "--results",
        default=None,
        help="the results directory whose materialised task files are counted "
        "(default: the config's `results`, results unless set)",
    )
    p.set_defaults(func=cmd_plan)

    _add_analysis_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        args.func(args)
    except MoemuiError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # disk full, read-only or unwritable results, ...
        where = err.filename or "?"
        print(f"ERROR: {where}: {err.strerror or err}; nothing was published", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
