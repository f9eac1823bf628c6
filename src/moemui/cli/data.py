"""The data and model commands: build or train a model, materialise a task, generate
(or import) responses, and gather a sharded cell's responses."""

from __future__ import annotations

import argparse
import json

from moemui.cli.args import (
    BATCH,
    NEW_TOKENS,
    SEED,
    add_generation_args,
    add_model_args,
    add_shard_arg,
    add_task_file_arg,
    loading,
)
from moemui.defaults import default


def cmd_build_model(args: argparse.Namespace) -> None:
    from moemui.recipes import build_model

    build_model(args.recipe, args.seed, args.out)


def cmd_train(args: argparse.Namespace) -> None:
    from moemui.train import train

    train(args.recipe, args.out)


def cmd_make_task(args: argparse.Namespace) -> None:
    from moemui.steps.tasks import materialise_task

    materialise_task(json.loads(args.spec), args.out)


def cmd_generate(args: argparse.Namespace) -> None:
    from moemui.steps.responses import generate_task

    generate_task(
        args.model_id,
        args.source,
        args.task_file,
        args.out,
        **loading(args),
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        reasoning=args.reasoning,
        template_kwargs=args.chat_template_kwargs,
        imported=args.import_responses,
        shard=args.shard,
    )


def cmd_gather_responses(args: argparse.Namespace) -> None:
    from moemui.shards import gather_responses

    gather_responses(args.task_file, args.parts, args.out)


def register(sub) -> None:
    """Add the data and model commands to the subparsers ``sub``."""
    p = sub.add_parser("build-model", help="build a builtin tiny MoE and save it")
    p.add_argument("--recipe", required=True, help="a builtin recipe (moemui.recipes.RECIPES)")
    p.add_argument("--seed", type=SEED, default=default("models.seed"), help="the weights' seed")
    p.add_argument("--out", required=True, help="the model directory to write")
    p.set_defaults(func=cmd_build_model)

    p = sub.add_parser("train", help="train a tiny MoE recipe on the built-in tasks")
    p.add_argument(
        "--recipe", required=True, help="a trained recipe (moemui.recipes.TRAINED_RECIPES)"
    )
    p.add_argument(
        "--out", required=True, help="the training directory: a step-NNNNN checkpoint per save"
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("make-task", help="materialise a config task's samples as JSONL")
    p.add_argument("--spec", required=True, help="the config task entry, as JSON")
    p.add_argument("--out", required=True, help="the task file to write (JSONL)")
    p.set_defaults(func=cmd_make_task)

    p = sub.add_parser("generate", help="greedy responses of a model to a task")
    add_model_args(p)
    add_task_file_arg(p, "the task's JSONL file")
    p.add_argument("--out", required=True, help="the responses file to write (JSONL)")
    p.add_argument(
        "--batch-size",
        type=BATCH,
        default=default("generation.batch_size"),
        help="prompts generated together",
    )
    p.add_argument(
        "--max-new-tokens",
        type=NEW_TOKENS,
        default=default("generation.max_new_tokens"),
        help="the response budget, in tokens",
    )
    add_generation_args(p)
    p.add_argument(
        "--import",
        dest="import_responses",
        default=None,
        metavar="FORMAT:PATH",
        help="read responses made elsewhere instead of generating: jsonl:PATH or lm-eval:PATH "
        "(default: generate)",
    )
    add_shard_arg(p)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser(
        "gather-responses", help="join the responses of a cell's shards into one file"
    )
    add_task_file_arg(p, "the task's JSONL file")
    p.add_argument("--parts", nargs="+", required=True, help="every shard's responses file")
    p.add_argument("--out", required=True, help="the cell's responses file to write (JSONL)")
    p.set_defaults(func=cmd_gather_responses)
