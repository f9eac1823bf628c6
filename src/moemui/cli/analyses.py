"""The analysis commands (docs/method.md §4-§6): the expert, robustness, MUI-vs-performance and
diversity tables, and the ablation of key neurons."""

from __future__ import annotations

import argparse
import json

from moemui.cli.args import (
    BATCH,
    NEW_TOKENS,
    RHO,
    SAMPLES,
    SEED,
    THRESHOLD,
    add_generation_args,
    add_model_args,
    add_task_file_arg,
    int_in,
    loading,
)
from moemui.defaults import default
from moemui.limits import MAX_DRAWS, MAX_TOP_EXPERTS


def cmd_experts(args: argparse.Namespace) -> None:
    from moemui.steps.analyses import tabulate_experts

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


def cmd_robustness(args: argparse.Namespace) -> None:
    from moemui.steps.analyses import tabulate_robustness

    tabulate_robustness(args.mui, args.key_experts, args.experts, args.out)


def cmd_mui_performance(args: argparse.Namespace) -> None:
    from moemui.steps.analyses import tabulate_mui_performance

    models = json.loads(args.models)
    tabulate_mui_performance(args.mui, args.performance, models, args.out, args.out_fits)


def cmd_diversity(args: argparse.Namespace) -> None:
    from moemui.steps.analyses import tabulate_diversity

    tabulate_diversity(args.groups, args.thresholds, args.sizes, args.draws, args.seed, args.out)


def cmd_ablate(args: argparse.Namespace) -> None:
    from moemui.steps.analyses import ablate

    ablate(
        args.model_id,
        args.source,
        args.task_file,
        args.group,
        args.variant,
        args.thresholds,
        args.seeds,
        args.n_samples,
        args.max_new_tokens,
        args.batch_size,
        args.out,
        **loading(args),
        reasoning=args.reasoning,
        template_kwargs=args.chat_template_kwargs,
    )


def cmd_aggregate_ablation(args: argparse.Namespace) -> None:
    from moemui.steps.analyses import aggregate_ablation

    aggregate_ablation(args.tables, args.out, args.out_summary)


_GROUPS_HELP = "group directories STORE/{model}/{task} or their key-neuron files (.npz)"
_THRESHOLDS_HELP = "key-neuron thresholds, fractions in (0, 1)"


def register(sub) -> None:
    """Add the analysis commands to the subparsers ``sub``."""
    p = sub.add_parser("experts", help="key rates, key-expert proportions and top experts")
    p.add_argument("groups", nargs="+", help=_GROUPS_HELP)
    p.add_argument("--thresholds", type=THRESHOLD, nargs="+", required=True, help=_THRESHOLDS_HELP)
    p.add_argument(
        "--rho",
        type=RHO,
        nargs="*",
        default=[],
        help="key_rate cut-offs of the key-expert table, in [0, 1) (default: none; rho = 0 "
        "is always reported)",
    )
    p.add_argument(
        "--top",
        type=int_in(1, MAX_TOP_EXPERTS),
        default=default("analyses.top_experts"),
        help="experts kept per cell in each top-experts table (default: %(default)s)",
    )
    p.add_argument("--out-experts", required=True, help="per expert: rates per threshold (CSV)")
    p.add_argument("--out-key-experts", required=True, help="key-expert proportions per rho (CSV)")
    p.add_argument("--out-top", required=True, help="top experts by activation rate (CSV)")
    p.add_argument(
        "--out-top-key",
        required=True,
        help="top experts by key rate, per variant and threshold (CSV)",
    )
    p.set_defaults(func=cmd_experts)

    p = sub.add_parser("robustness", help="threshold and method robustness")
    p.add_argument("--mui", required=True, help="the MUI table (moemui mui, concatenated)")
    p.add_argument("--key-experts", required=True, help="the key-expert table (moemui experts)")
    p.add_argument("--experts", required=True, help="the per-expert table (moemui experts)")
    p.add_argument("--out", required=True, help="the robustness table to write (CSV)")
    p.set_defaults(func=cmd_robustness)

    p = sub.add_parser("mui-performance", help="MUI against accuracy, with per-family fits")
    p.add_argument("--mui", required=True, help="the MUI table (moemui mui, concatenated)")
    p.add_argument("--performance", required=True, help="the accuracy table (moemui performance)")
    p.add_argument("--models", required=True, help="JSON: {model id: {family, release, ...}}")
    p.add_argument("--out", required=True, help="MUI and accuracy per model and task (CSV)")
    p.add_argument("--out-fits", required=True, help="the per-family log fits (CSV)")
    p.set_defaults(func=cmd_mui_performance)

    p = sub.add_parser("diversity", help="MUI of random subsets of samples")
    p.add_argument("groups", nargs="+", help=_GROUPS_HELP)
    p.add_argument("--thresholds", type=THRESHOLD, nargs="+", required=True, help=_THRESHOLDS_HELP)
    p.add_argument(
        "--sizes", type=SAMPLES, nargs="+", required=True, help="subset sizes, in samples"
    )
    p.add_argument(
        "--draws",
        type=int_in(1, MAX_DRAWS),
        default=default("analyses.diversity.draws"),
        help="random subsets drawn per size",
    )
    p.add_argument(
        "--seed", type=SEED, default=default("analyses.diversity.seed"), help="the draws' seed"
    )
    p.add_argument("--out", required=True, help="the diversity table to write (CSV)")
    p.set_defaults(func=cmd_diversity)

    p = sub.add_parser("ablate", help="accuracy with key or random neurons zeroed")
    add_model_args(p)
    add_task_file_arg(p, "the task's JSONL file")
    p.add_argument(
        "--group",
        required=True,
        help="the group directory STORE/{model}/{task} or its key-neuron file (.npz)",
    )
    p.add_argument(
        "--variant", required=True, help="the score variant whose key neurons are zeroed"
    )
    p.add_argument(
        "--thresholds",
        type=THRESHOLD,
        nargs="+",
        required=True,
        help="the thresholds whose key neurons are zeroed, one run each",
    )
    p.add_argument(
        "--seeds",
        type=SEED,
        nargs="+",
        default=default("analyses.ablation.seeds"),
        help="one random-neuron control per seed and threshold (default: "
        + " ".join(map(str, default("analyses.ablation.seeds")))
        + ")",
    )
    p.add_argument(
        "--n-samples",
        type=SAMPLES,
        default=default("analyses.ablation.n_samples"),
        help="the task's first samples, whose key neurons are zeroed and which are answered",
    )
    p.add_argument(
        "--max-new-tokens",
        type=NEW_TOKENS,
        default=default("analyses.ablation.max_new_tokens"),
        help="the response budget, in tokens",
    )
    p.add_argument(
        "--batch-size",
        type=BATCH,
        default=default("generation.batch_size"),
        help="prompts generated together",
    )
    add_generation_args(p)
    p.add_argument("--out", required=True, help="the cell's ablation table to write (CSV)")
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
