"""The record of a run's config: the merged config written next to its results
(``run_config.yaml``, with its hash), and the config files that made a results
directory (``.moemui/config-files.json``), which a run of other config files may not
share."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import yaml

from moemui.errors import MoemuiError


def config_hash(config: dict) -> str:
    """SHA-256 of a config's canonical JSON form."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def write_run_config(config: dict, path: str | os.PathLike) -> None:
    """Write the merged, validated config of a run as YAML, headed by its hash and the
    package version (``<results>/run_config.yaml``)."""
    from moemui import __version__
    from moemui.io import atomic_write_text

    header = (
        "# The merged config of the last run (config files, --config, defaults filled).\n"
        f"# moemui {__version__}; config hash {config_hash(config)}\n"
    )
    atomic_write_text(path, header + yaml.safe_dump(config, sort_keys=False))


#: Where the workflow records the config files that made a results directory.
CONFIG_FILES_RECORD = ".moemui/config-files.json"


def _config_file_entries(results: str | os.PathLike, configfiles) -> list[str]:
    """``configfiles`` as the record holds them: resolved (symlinks and ``..``), then
    relative to the resolved results directory, deduplicated, in order. Relative, so
    that a project moved or copied with its results keeps its record; from the results
    directory, so that two projects sharing one (absolute) results directory differ."""
    base = Path(results).resolve()
    out: list[str] = []
    for file in configfiles:
        path = Path(file).resolve()
        try:
            entry = os.path.relpath(path, base)
        except ValueError:  # another drive (Windows): no relative path
            entry = str(path)
        if entry not in out:
            out.append(entry)
    return out


def _shown(results: str | os.PathLike, entries: list[str]) -> str:
    """Recorded config files as full paths, for a message."""
    base = Path(results).resolve()
    return ", ".join(os.path.normpath(base / entry) for entry in entries) or "(none)"


def check_config_files(results: str | os.PathLike, configfiles) -> None:
    """Refuse a run whose config files are not those that made ``results``.

    ``configfiles`` are this run's (Snakemake's ``workflow.configfiles``; inline
    ``--config`` values are not files and do not count); their order does not matter.
    Nothing is read but the record (``<results>/.moemui/config-files.json``) and nothing
    is written; without a record, any config files may run (:func:`record_config_files`
    makes it).

    Raises
    ------
    MoemuiError
        The record lists other config files (or cannot be read): one message naming the
        results directory, the recorded and this run's config files, and the ways out.
    """
    record = Path(results) / CONFIG_FILES_RECORD
    if not record.exists():
        return
    share = f"delete {record} and run again"
    try:
        recorded = json.loads(record.read_text(encoding="utf-8"))
        if not isinstance(recorded, list) or not all(isinstance(f, str) for f in recorded):
            raise ValueError("not a list of paths")
    except (OSError, ValueError) as err:
        raise MoemuiError(
            f"results directory '{results}': cannot read {record} ({err}), the config files "
            f"that made it; to run this config there anyway, {share}"
        ) from None
    mine = _config_file_entries(results, configfiles)
    if set(recorded) == set(mine):
        return
    raise MoemuiError(
        f"results directory '{results}' was made by other config files; two configs in one "
        "results directory would overwrite or merge each other's tables, store and charts, "
        "so nothing was run.\n"
        f"  made by (recorded in {record}): {_shown(results, recorded)}\n"
        f"  this run's config files: {_shown(results, mine)}\n"
        "Either give this config a results directory of its own: set `results: DIR` in "
        "its config file (or pass --config results=DIR); or, to share "
        f"'{results}' on purpose, {share}."
    )


def record_config_files(results: str | os.PathLike, configfiles) -> None:
    """Record ``configfiles`` as the config files that made ``results``
    (``<results>/.moemui/config-files.json``: a JSON list of paths relative to the
    results directory), unless recorded already."""
    from moemui.io import atomic_write_text

    record = Path(results) / CONFIG_FILES_RECORD
    text = json.dumps(_config_file_entries(results, configfiles), indent=2) + "\n"
    try:
        if record.read_text(encoding="utf-8") == text:
            return
    except (OSError, UnicodeDecodeError):
        pass
    atomic_write_text(record, text)
