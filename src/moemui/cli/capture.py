"""The capture and store commands: capture a cell's contribution scores, gather a
sharded cell's store group, index the store and check its groups."""

from __future__ import annotations

import argparse

from moemui.cli.args import (
    BATCH,
    THRESHOLD,
    add_model_args,
    add_shard_arg,
    add_task_file_arg,
    csv_list,
    json_object,
    loading,
)
from moemui.defaults import default


def cmd_capture(args: argparse.Namespace) -> None:
    from moemui.steps.capture import capture_task

    capture_task(
        args.model_id,
        args.source,
        args.task_id,
        args.task_file,
        args.responses,
        args.out,
        **loading(args),
        variants=tuple(v for part in args.variants for v in part),
        target=args.target,
        max_threshold=args.max_threshold,
        batch_size=args.batch_size,
        batch_invariant=args.batch_invariant,
        keep=args.keep,
        tokens=args.tokens,
        attrs=args.attrs,
        shard=args.shard,
    )


def cmd_gather_store(args: argparse.Namespace) -> None:
    from moemui.progress import progress
    from moemui.shards import gather_store

    gather_store(
        args.task_file,
        args.parts,
        args.out,
        progress=lambda blocks: progress(blocks, desc=f"gather {args.out}", unit="block"),
    )


def cmd_index_store(args: argparse.Namespace) -> None:
    from moemui.steps.store import index_groups

    index_groups(args.groups)


def cmd_check_store(args: argparse.Namespace) -> None:
    from moemui.steps.store import check_store

    check_store(args.store, move_aside=args.set_aside)


def register(sub) -> None:
    """Add the capture and store commands to the subparsers ``sub``."""
    p = sub.add_parser("capture", help="capture contribution scores into the store")
    add_model_args(p)
    p.add_argument("--task-id", required=True, help="the task's id (slug) in the config")
    add_task_file_arg(p, "the task's JSONL file")
    p.add_argument("--responses", required=True, help="the responses to score (moemui generate)")
    p.add_argument("--out", required=True, help="the group directory: STORE/{model}/{task}")
    p.add_argument(
        "--variants",
        type=csv_list,
        nargs="+",
        default=[default("capture.variants")],
        help="the score variants (a list; items may also be comma-separated)",
    )
    p.add_argument(
        "--target",
        default=default("capture.target"),
        choices=["next", "same_position"],
        help="the logit a position's score is of: the next token's (next) or the position's "
        "own token's (same_position)",
    )
    p.add_argument(
        "--max-threshold",
        type=THRESHOLD,
        default=default("capture.max_threshold"),
        help="the largest threshold the stored scores serve (it sets K)",
    )
    p.add_argument(
        "--batch-size",
        type=BATCH,
        default=default("capture.batch_size"),
        help="sequences per batch",
    )
    p.add_argument(
        "--batch-invariant",
        action=argparse.BooleanOptionalAction,
        default=default("capture.batch_invariant"),
        help="one forward per sequence: scores bit-identical across batch sizes; "
        "--no-batch-invariant runs a batch as one padded forward (faster on GPUs; scores "
        "then agree across batch sizes to rounding)",
    )
    p.add_argument(
        "--keep",
        choices=["key", "all"],
        default=default("capture.keep"),
        help="key: store only the scores of neurons that can be key at a threshold <= "
        "--max-threshold (exact for every table); all: every neuron's score",
    )
    p.add_argument(
        "--tokens",
        choices=["all", "answer"],
        default=default("capture.tokens"),
        help="all: score every response token; answer: only the final answer's",
    )
    p.add_argument(
        "--attrs", type=json_object, default="{}", help="extra group attributes, as JSON"
    )
    add_shard_arg(p)
    p.set_defaults(func=cmd_capture)

    p = sub.add_parser("gather-store", help="join the store groups of a cell's shards")
    add_task_file_arg(p, "the task's JSONL file")
    p.add_argument(
        "--parts", nargs="+", required=True, help="every shard's group, .../I-of-N/.../STORE/m/t"
    )
    p.add_argument("--out", required=True, help="the group directory: STORE/{model}/{task}")
    p.set_defaults(func=cmd_gather_store)

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
