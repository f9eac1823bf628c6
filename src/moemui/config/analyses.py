"""The ``analyses`` section of a config: its checks against the rest of the config, and
its settings with the nulls resolved."""

from __future__ import annotations

import copy

from moemui.config.models import all_models
from moemui.config.thresholds import check_unique, same_row
from moemui.errors import MoemuiError


def analysis_settings(config: dict) -> dict:
    """The ``analyses`` section of a validated config with its nulls resolved: the focus
    ``variant`` (null: the first captured variant) and ``threshold`` (null: the first
    configured threshold); the ablation's ``variant`` (null: the focus one) and
    ``thresholds`` (null: the focus threshold and ``capture.max_threshold``), sorted."""
    section = copy.deepcopy(config["analyses"])
    if section["variant"] is None:
        section["variant"] = config["capture"]["variants"][0]
    if section["threshold"] is None:
        section["threshold"] = config["thresholds"][0]
    ablation = section["ablation"]
    if ablation["variant"] is None:
        ablation["variant"] = section["variant"]
    if ablation["thresholds"] is None:
        top = config["capture"]["max_threshold"]
        focus = section["threshold"]
        ablation["thresholds"] = [focus] if same_row(focus, top) else [focus, top]
    ablation["thresholds"] = sorted(ablation["thresholds"])
    return section


def check_analyses(config: dict) -> None:
    section = config["analyses"]
    variants, thresholds = config["capture"]["variants"], config["thresholds"]
    for where in ("analyses", "analyses.ablation"):
        part = section if where == "analyses" else section["ablation"]
        variant = part["variant"]
        if variant is not None and variant not in variants:
            raise MoemuiError(
                f"config key '{where}.variant': {variant!r} is not a captured variant "
                f"(capture.variants: {', '.join(variants)})"
            )
    tau = section["threshold"]
    if tau is not None and not any(abs(tau - t) <= 1e-12 * t for t in thresholds):
        raise MoemuiError(
            f"config key 'analyses.threshold': {tau} is not one of the thresholds "
            f"({', '.join(map(str, thresholds))})"
        )
    ablation_thresholds = section["ablation"]["thresholds"]
    if ablation_thresholds is not None:
        check_unique(ablation_thresholds, "analyses.ablation.thresholds")
        top = config["capture"]["max_threshold"]
        for i, tau in enumerate(ablation_thresholds):
            if tau > top:
                raise MoemuiError(
                    f"config key 'analyses.ablation.thresholds[{i}]': {tau} exceeds "
                    f"capture.max_threshold {top}, the largest threshold the store supports"
                )
    models = {m["id"] for m in all_models(config)}
    tasks = {t["id"] for t in config["tasks"]}
    seen: dict[tuple[str, str], int] = {}
    for i, cell in enumerate(section["ablation"]["cells"]):
        key = f"analyses.ablation.cells[{i}]"
        if cell["model"] not in models:
            raise MoemuiError(f"config key '{key}.model': unknown model {cell['model']!r}")
        if cell["task"] not in tasks:
            raise MoemuiError(f"config key '{key}.task': unknown task {cell['task']!r}")
        pair = (cell["model"], cell["task"])
        if pair in seen:
            raise MoemuiError(f"config key '{key}': duplicate cell (also cells[{seen[pair]}])")
        seen[pair] = i
