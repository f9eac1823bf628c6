"""The analysis rules' steps: read tables and store groups, write tidy CSV tables.

Each rule of ``workflow/rules/analyses.smk`` calls exactly one of these functions
(through the ``moemui`` CLI); the statistics live in the pure modules beside this one.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from moemui.analyses.diversity import diversity_table
from moemui.analyses.experts import expert_tables, top_experts, top_key_experts
from moemui.analyses.keys import GroupKeys, as_keys
from moemui.analyses.performance import family_fits, mui_performance
from moemui.analyses.robustness import robustness_table
from moemui.errors import MoemuiError
from moemui.pipeline import write_csv
from moemui.store import CorruptGroupError, not_a_group, open_group, unusable

log = logging.getLogger(__name__)


def split_group(path: str | os.PathLike) -> tuple[Path, str, str]:
    """A store group directory ``STORE/{model}/{task}`` -> (store, model, task)."""
    group = Path(path)
    return group.parent.parent, group.parent.name, group.name


def _group_keys(path: str | os.PathLike, thresholds: list[float]) -> GroupKeys:
    """Check a store group directory and derive its keys, verifying what is read; it
    only reads (a path that is not a group, or a group that cannot be used, is one
    :class:`MoemuiError` line naming it and how to capture it again)."""
    why = not_a_group(path)
    if why:
        raise MoemuiError(why)
    store, model, task = split_group(path)
    ds = open_group(store, model, task)
    try:
        return GroupKeys.from_group(ds, thresholds, model, task, verify=True)
    except CorruptGroupError as err:
        raise unusable(store, model, task, str(err)) from None
    except MoemuiError as err:
        raise MoemuiError(f"{model}/{task}: {err}") from None


def read_keys(path: str | os.PathLike, thresholds: list[float]) -> GroupKeys:
    """The key neurons of one group at ``thresholds``: a key-neuron file (``.npz``,
    written by :func:`derive_keys`) is read as it is; a store group directory is
    checked, read once (verifying every value read) and its keys derived."""
    if Path(path).suffix == ".npz":
        keys = GroupKeys.load(path)
        return _named(keys.model, keys.task, as_keys, keys, thresholds)
    return _group_keys(path, thresholds)


def derive_keys(
    group: str | os.PathLike, thresholds: list[float], out: str | os.PathLike
) -> GroupKeys:
    """Read a store group's score arrays once and write its key neurons at every
    threshold (:class:`GroupKeys`) to ``out``: what every table of the group reads."""
    keys = _group_keys(group, thresholds)
    model, task = keys.model, keys.task
    keys.save(out)
    n = {v: int(keys.keys[v][0][-1]) for v in keys.variants}
    log.info("key neurons of %s/%s at %s: %s", model, task, thresholds, n)
    return keys


def _named(model: str, task: str, fn, *args):
    """``fn(*args)``, with a known failure naming the store group."""
    try:
        return fn(*args)
    except MoemuiError as err:
        raise MoemuiError(f"{model}/{task}: {err}") from None


def _read_csv(path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, keep_default_na=True)
    except FileNotFoundError:
        raise MoemuiError(f"{path}: file not found") from None


def tabulate_experts(
    groups: list[str | os.PathLike],
    thresholds: list[float],
    rhos: list[float],
    top: int,
    out_experts: str | os.PathLike,
    out_key_experts: str | os.PathLike,
    out_top: str | os.PathLike,
    out_top_key: str | os.PathLike,
) -> None:
    """Per-expert, key-expert and top-expert tables (by activation rate, ``out_top``;
    by key rate, ``out_top_key``) over every group (key-neuron files or store group
    directories, :func:`read_keys`)."""
    experts, key_experts, tops = [], [], []
    for path in groups:
        keys = read_keys(path, thresholds)
        model, task = keys.model, keys.task
        e, k = _named(model, task, expert_tables, keys, thresholds, rhos, model, task)
        experts.append(e)
        key_experts.append(k)
        tops.append(top_experts(keys, model, task, top))
        log.info("experts of %s/%s", model, task)
    per_expert = pd.concat(experts, ignore_index=True)
    write_csv(per_expert, out_experts)
    write_csv(pd.concat(key_experts, ignore_index=True), out_key_experts)
    write_csv(pd.concat(tops, ignore_index=True), out_top)
    write_csv(top_key_experts(per_expert, top), out_top_key)


def tabulate_robustness(
    mui: str | os.PathLike,
    key_experts: str | os.PathLike,
    experts: str | os.PathLike,
    out: str | os.PathLike,
) -> pd.DataFrame:
    """Threshold and method robustness from the MUI, key-expert and expert tables."""
    table = robustness_table(_read_csv(mui), _read_csv(key_experts), _read_csv(experts))
    write_csv(table, out)
    return table


def tabulate_mui_performance(
    mui: str | os.PathLike,
    performance: str | os.PathLike,
    models: dict[str, dict],
    out_table: str | os.PathLike,
    out_fits: str | os.PathLike,
) -> None:
    """MUI against accuracy per model and task, and the per-family log fits."""
    table = mui_performance(_read_csv(mui), _read_csv(performance), models)
    write_csv(table, out_table)
    write_csv(family_fits(table), out_fits)


def tabulate_diversity(
    groups: list[str | os.PathLike],
    thresholds: list[float],
    sizes: list[int],
    draws: int,
    seed: int,
    out: str | os.PathLike,
) -> pd.DataFrame:
    """MUI of seeded random subsets of each task and of an equal-size mix, per model,
    from each group's key neurons (:func:`read_keys`)."""
    by_model: dict[str, dict[str, GroupKeys]] = {}
    for path in groups:
        keys = read_keys(path, thresholds)
        by_model.setdefault(keys.model, {})[keys.task] = keys
    frames = []
    for model, per_task in by_model.items():
        total = next(iter(per_task.values())).total_neurons
        sets: dict[tuple[str, float], dict[str, list[np.ndarray]]] = {}
        for task, keys in per_task.items():
            for variant in keys.variants:
                for tau in thresholds:
                    per_sample = _named(model, task, keys.sets, variant, tau)
                    sets.setdefault((variant, float(tau)), {})[task] = per_sample
        frames.append(diversity_table(sets, total, sizes, draws, seed, model))
    table = pd.concat(frames, ignore_index=True)
    write_csv(table, out)
    return table


def ablate(
    model_id: str,
    source: str,
    tasks: str | os.PathLike,
    group: str | os.PathLike,
    variant: str,
    thresholds: list[float],
    seeds: list[int],
    n_samples: int,
    max_new_tokens: int,
    batch_size: int,
    out: str | os.PathLike,
    revision: str | None = None,
    dtype: str = "float32",
    device: str = "auto",
    trust_remote_code: bool = False,
    device_map: str | None = None,
    reasoning: str = "none",
    template_kwargs: dict | None = None,
) -> pd.DataFrame:
    """Accuracy with the key neurons of (model, task, variant) zeroed at each of
    ``thresholds``, and with as many random neurons of the same experts zeroed (one draw
    per seed), against one baseline run (:func:`moemui.analyses.ablation.ablation_table`).

    The key neurons are those of the first ``n_samples`` samples of the group (a
    key-neuron file holding ``thresholds``, or a store group directory, which serves any
    threshold up to its ``max_threshold``; :func:`read_keys`).
    """
    import torch

    from moemui.adapters import adapter_for
    from moemui.analyses.ablation import ablation_table, neurons_from_flat, zeroed_neurons
    from moemui.generate import generate_responses
    from moemui.sources import load_model
    from moemui.tasks import read_samples

    thresholds = sorted({float(t) for t in thresholds})
    keys = read_keys(group, thresholds)
    task = keys.task
    samples = read_samples(tasks)[:n_samples]
    keys = keys.head(len(samples))
    if [str(s) for s in keys.samples] != [s["id"] for s in samples]:
        raise MoemuiError(f"{group}: sample ids differ from the task file {tasks}; re-capture")
    n_exp, n_neu = keys.n_experts, keys.n_neurons
    key: dict[float, list] = {}
    for tau in thresholds:
        sets = _named(keys.model, task, keys.sets, variant, tau)
        flat = np.unique(np.concatenate(sets)) if sets else np.array([], dtype=np.int64)
        key[tau] = neurons_from_flat(flat, keys.layers, n_exp, n_neu)
        if not key[tau]:
            raise MoemuiError(f"{model_id}/{task}: no key neuron at threshold {tau}")

    torch.manual_seed(0)
    model, tokenizer = load_model(
        source, model_id, revision, dtype, device, True, trust_remote_code, device_map
    )
    adapter = adapter_for(model, f"model {model_id!r}")

    ids = [s["id"] for s in samples]

    def correct_of(neurons):
        with zeroed_neurons(model, adapter, neurons):
            records = generate_responses(
                model,
                tokenizer,
                samples,
                batch_size,
                max_new_tokens,
                model_id,
                reasoning=reasoning,
                template_kwargs=template_kwargs,
            )
        if [r["id"] for r in records] != ids:
            raise MoemuiError(f"{model_id}/{task}: the ablation's responses are out of order")
        return [bool(r["correct"]) for r in records]

    meta = {"model": model_id, "task": task, "variant": variant}
    table = ablation_table(correct_of, key, n_neu, seeds, meta)
    write_csv(table, out)
    return table


def aggregate_ablation(
    tables: list[str | os.PathLike],
    out: str | os.PathLike,
    out_summary: str | os.PathLike,
) -> pd.DataFrame:
    """The ablation cells' tables as one table (``out``), and its summary, the key
    neurons' drop against the random draws' spread (``out_summary``,
    :func:`moemui.analyses.ablation.ablation_summary`)."""
    from moemui.analyses.ablation import ablation_summary

    table = pd.concat([_read_csv(t) for t in tables], ignore_index=True)
    summary = ablation_summary(table)
    write_csv(table, out)
    write_csv(summary, out_summary)
    return summary
