"""Train tiny MoE models from scratch on the built-in tasks: ``trained:<recipe>`` sources.

A trained recipe (:data:`moemui.recipes.TRAINED_RECIPES`) names an architecture (a
family's routing at a given size) and a training schedule. :func:`train` runs it with
fixed seeds and writes a checkpoint directory per configured step (``step-00100/``
...), each written with ``save_pretrained`` together with the byte-level tokenizer, so
every checkpoint loads like a Hub checkpoint. ``trained:<recipe>`` is the final checkpoint and
``trained:<recipe>@<step>`` an intermediate one.

Training data are fresh samples of the built-in generators, one task per batch, drawn
from a seed of their own. The loss is the cross-entropy of the answer tokens (the
reference and the end-of-sequence token) only, plus the family's router load-balancing
loss.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from pathlib import Path

from moemui.io import staged_directory
from moemui.progress import progress_line
from moemui.recipes import (
    EOS_ID,
    PAD_ID,
    TrainRecipe,
    generation_config,
    trained_config,
    trained_recipe,
)
from moemui.tasks import make_builtin

log = logging.getLogger(__name__)


def checkpoint_dir(root: str | os.PathLike, step: int) -> Path:
    """Where :func:`train` writes the checkpoint of ``step`` under ``root``."""
    return Path(root) / f"step-{step:05d}"


def _batch(tokenizer, samples):
    """Right-padded input ids and labels (answer tokens + eos only)."""
    from moemui.batching import right_pad

    ids, labels = [], []
    for s in samples:
        prompt = tokenizer(s["prompt"])["input_ids"]
        answer = tokenizer(s["reference"])["input_ids"] + [EOS_ID]
        ids.append(prompt + answer)
        labels.append([-100] * len(prompt) + answer)
    input_ids, mask = right_pad(ids, PAD_ID)
    return input_ids, right_pad(labels, -100)[0], mask


def _lr(recipe: TrainRecipe, step: int) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step <= recipe.warmup:
        return recipe.lr * step / recipe.warmup
    progress = (step - recipe.warmup) / max(1, recipe.steps - recipe.warmup)
    return recipe.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(name: str, out: str | os.PathLike, recipe: TrainRecipe | None = None) -> Path:
    """Train recipe ``name`` and write its checkpoints and ``training_log.csv`` to ``out``.

    The directory is assembled beside ``out`` and moved into place when training ends.
    """
    import torch
    from transformers import AutoModelForCausalLM

    from moemui.tokenizer import build_tokenizer

    recipe = recipe or trained_recipe(name)
    out = Path(out)
    torch.manual_seed(recipe.seed)
    config = trained_config(recipe)
    model = AutoModelForCausalLM.from_config(config, experts_implementation="grouped_mm")
    model.generation_config = generation_config()
    tokenizer = build_tokenizer(model_max_length=config.max_position_embeddings)
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, betas=(0.9, 0.95), weight_decay=0.01)
    order = [(task, params) for task, params, weight in recipe.mix for _ in range(weight)]
    rows = []
    start = last = time.monotonic()
    with staged_directory(out) as tmp:
        model.train()
        for step in range(1, recipe.steps + 1):
            task, params = order[(step - 1) % len(order)]
            samples = make_builtin(task, recipe.batch_size, recipe.seed * 1_000_003 + step, params)
            input_ids, labels, mask = _batch(tokenizer, samples)
            for group in opt.param_groups:
                group["lr"] = _lr(recipe, step)
            result = model(
                input_ids=input_ids,
                attention_mask=mask,
                labels=labels,
                output_router_logits=True,
            )
            opt.zero_grad(set_to_none=True)
            result.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            aux = result.aux_loss
            aux = float(aux.detach()) if aux is not None else 0.0
            loss = float(result.loss.detach())
            rows.append((step, task, loss, aux))
            now = time.monotonic()
            if now - last >= 10 or step == recipe.steps:
                last = now
                # "olmoe_v1: 43/400 step (10%), 4.3 step/s, ETA 1 min 23 s; arithmetic loss 2.1944"
                line = progress_line(f"train {name}", step, recipe.steps, "step", now - start)
                log.info("%s; %s loss %.4f", line, task, loss)
            if step in recipe.save_steps:
                model.eval()
                ckpt = checkpoint_dir(tmp, step)
                model.save_pretrained(ckpt)
                tokenizer.save_pretrained(ckpt)
                model.train()
        with open(tmp / "training_log.csv", "w", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(["step", "task", "loss", "aux_loss"])
            writer.writerows(rows)
    log.info("trained %s in %.0f s -> %s", name, time.monotonic() - start, out)
    return out
