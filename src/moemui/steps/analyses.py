"""The analysis steps (docs/method.md §4-§6): tidy tables from the groups' key neurons and from
the MUI and performance tables, and the ablation of key neurons; the statistics live in
the pure modules of :mod:`moemui.analyses`."""

from __future__ import annotations

import logging
import os

import numpy as np
import pandas as pd

from moemui.analyses.diversity import diversity_table
from moemui.analyses.experts import expert_tables, top_experts, top_key_experts
from moemui.analyses.keys import GroupKeys
from moemui.analyses.performance import family_fits, mui_performance
from moemui.analyses.robustness import robustness_table
from moemui.defaults import default
from moemui.errors import MoemuiError
from moemui.steps.metrics import named, read_keys
from moemui.steps.tables import read_csv, write_csv
from moemui.tasks import read_samples

log = logging.getLogger(__name__)


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
    directories, :func:`~moemui.steps.metrics.read_keys`)."""
    experts, key_experts, tops = [], [], []
    for path in groups:
        keys = read_keys(path, thresholds)
        model, task = keys.model, keys.task
        e, k = named(model, task, expert_tables, keys, thresholds, rhos, model, task)
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
    table = robustness_table(read_csv(mui), read_csv(key_experts), read_csv(experts))
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
    table = mui_performance(read_csv(mui), read_csv(performance), models)
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
    from each group's key neurons (:func:`~moemui.steps.metrics.read_keys`)."""
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
                    per_sample = named(model, task, keys.sets, variant, tau)
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
    dtype: str | None = None,
    device: str = "auto",
    trust_remote_code: bool = False,
    device_map: str | None = None,
    reasoning: str | None = None,
    template_kwargs: dict | None = None,
) -> pd.DataFrame:
    """Accuracy with the key neurons of (model, task, variant) zeroed at each of
    ``thresholds``, and with as many random neurons of the same experts zeroed (one draw
    per seed), against one baseline run (:func:`moemui.analyses.ablation.ablation_table`).

    The key neurons are those of the first ``n_samples`` samples of the group (a
    key-neuron file holding ``thresholds``, or a store group directory, which serves any
    threshold up to its ``max_threshold``; :func:`~moemui.steps.metrics.read_keys`).
    ``dtype``, ``reasoning``: None is the config's default (``models.dtype``,
    ``models.reasoning``).
    """
    import torch

    from moemui.adapters import adapter_for
    from moemui.analyses.ablation import ablation_table, neurons_from_flat, zeroed_neurons
    from moemui.generate import generate_responses
    from moemui.sources import load_model

    dtype = default("models.dtype") if dtype is None else dtype
    reasoning = default("models.reasoning") if reasoning is None else reasoning
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
        sets = named(keys.model, task, keys.sets, variant, tau)
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

    table = pd.concat([read_csv(t) for t in tables], ignore_index=True)
    summary = ablation_summary(table)
    write_csv(table, out)
    write_csv(summary, out_summary)
    return summary
