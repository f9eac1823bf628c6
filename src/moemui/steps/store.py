"""The store steps: index the captured groups, and check every group of a store."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from moemui.cache import cache_entry, set_aside_entry
from moemui.errors import MoemuiError
from moemui.progress import progress
from moemui.store import index_store, not_a_group, recapture_hint, set_aside, verify_group


def group_location(path: str | os.PathLike) -> tuple[Path, str, str]:
    """Where a store group directory is: ``STORE/{model}/{task}`` -> (store, model,
    task), the store's layout (every group's own names are its attributes)."""
    group = Path(path)
    return group.parent.parent, group.parent.name, group.name


def index_groups(groups: list[str | os.PathLike]) -> None:
    """Write the root and model group metadata of the one store holding ``groups``
    (group directories ``STORE/{model}/{task}``)."""
    for group in groups:
        if why := not_a_group(group):
            raise MoemuiError(why)
    places = [group_location(g) for g in groups]
    stores = {store for store, _, _ in places}
    if len(stores) != 1:
        raise MoemuiError(f"groups belong to several stores: {sorted(map(str, stores))}")
    models: dict[str, list[str]] = {}
    for _, model, task in places:
        models.setdefault(model, []).append(task)
    index_store(stores.pop(), models)


def check_store(
    store: str | os.PathLike, move_aside: bool = False, say: Callable[[str], None] = print
) -> None:
    """Check every group of the store at ``store``, saying one line per group (``ok`` or
    ``CORRUPT`` with its problems); with ``move_aside``, move each group that cannot be
    used (and its output-cache entry) aside. Any such group is an error at the end."""
    root = Path(store)
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
            say(f"ok       {model}/{task}")
            continue
        bad += 1
        say(f"CORRUPT  {model}/{task}: {'; '.join(problems)}")
        if move_aside:
            entry = cache_entry(group)
            say(f"         moved to {set_aside(root, model, task)}")
            if entry is not None:
                say(f"         its output cache entry moved to {set_aside_entry(entry)}")
    if bad:
        hint = (
            "run snakemake to capture them again"
            if move_aside
            else recapture_hint(root).replace("capture it", "capture them")
        )
        raise MoemuiError(f"{root}: {bad} of {len(groups)} groups cannot be used; {hint}")
