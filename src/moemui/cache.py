"""Snakemake's between-workflow output cache, as moemui uses it.

Two things the cache itself does not do, and moemui needs at the paper's scale, where
one cached store group is GPU-hours of capture shared by several projects:

- **A damaged entry is not served again.** A cached output comes back as links into one
  cache entry (``$SNAKEMAKE_OUTPUT_CACHE/<hash>``), so setting the project's group aside
  would only bring the same damaged entry back on the next run. :func:`set_aside_entry`
  moves the entry out of the cache's lookup path (``moemui check-store --set-aside`` calls
  it for every group it sets aside); the next run computes the output afresh and stores a
  new entry.
- **Concurrent writers of one entry leave one clean entry.** Two projects that compute
  the same output at once both store it: Snakemake's final ``shutil.move`` of the second
  moves its copy *into* the first's entry, a nested duplicate that every later fetch links
  in as a stray member of the group. :func:`install` makes that move a rename that keeps
  the entry already there (the outputs are the same: the cache key covers everything that
  determines them) and links the second project to it.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from pathlib import Path

from moemui.io import claim_dated_dir

log = logging.getLogger(__name__)

#: Where :func:`set_aside_entry` puts damaged entries, inside the cache directory.
SET_ASIDE_DIR = ".set-aside"
LOCATION_ENVVAR = "SNAKEMAKE_OUTPUT_CACHE"


def cache_root() -> Path | None:
    """The output cache directory of this environment (``$SNAKEMAKE_OUTPUT_CACHE``)."""
    location = os.environ.get(LOCATION_ENVVAR)
    return Path(os.path.realpath(location)) if location else None


def linked_target(path: str | os.PathLike) -> Path | None:
    """Where an output linked from a cache lives: the target of a symlinked output, or
    the one directory every link of a directory of links points into; None when
    ``path`` holds no links (an output computed here)."""
    path = Path(path)
    if path.is_symlink():
        return Path(os.path.realpath(path))
    if not path.is_dir():
        return None
    parents = {
        Path(os.path.realpath(child)).parent for child in path.iterdir() if child.is_symlink()
    }
    return parents.pop() if len(parents) == 1 else None


def cache_entry(path: str | os.PathLike, root: Path | None = None) -> Path | None:
    """The entry of the output cache ``root`` (default :func:`cache_root`) that the
    output at ``path`` comes from, or None when it does not come from that cache."""
    root = root if root is not None else cache_root()
    target = linked_target(path)
    if root is None or target is None or target.parent != Path(os.path.realpath(root)):
        return None
    return target


def set_aside_entry(entry: str | os.PathLike) -> Path:
    """Move a cache entry to ``<cache>/.set-aside/<entry>.<UTC time>`` (kept, never
    replaced) so that the cache no longer serves it; return where it went."""
    entry = Path(entry)
    aside = claim_dated_dir(entry.parent / SET_ASIDE_DIR, entry.name)
    os.rename(entry, aside)  # a directory onto the empty one just claimed
    log.warning("set aside the output cache entry %s as %s", entry, aside)
    return aside


def _keep_first(src, dst, copy_function=shutil.copy2):
    """``shutil.move`` for the cache's moves, where a directory that lands on an entry
    already stored by another writer keeps that entry (and leaves ``src`` to the
    caller's temporary directory) instead of nesting inside it."""
    if os.path.isdir(src) and not os.path.islink(src):
        try:
            os.rename(src, dst)
            return str(dst)
        except OSError as err:
            if err.errno in (errno.ENOTEMPTY, errno.EEXIST) and os.path.isdir(dst):
                log.warning(
                    "the output cache entry %s was stored by another writer first; "
                    "keeping it and discarding this copy",
                    dst,
                )
                return str(dst)
            if err.errno != errno.EXDEV:
                raise
    return shutil.move(src, dst, copy_function=copy_function)


class _CacheShutil:
    """:mod:`shutil` as Snakemake's local output cache sees it once :func:`install`-ed:
    the same module, with :func:`_keep_first` as ``move``."""

    move = staticmethod(_keep_first)

    def __getattr__(self, name):
        return getattr(shutil, name)


def install() -> bool:
    """Make Snakemake's local output cache keep the first of two concurrently stored
    copies of an entry (:func:`_keep_first`); True when installed (idempotent), False
    when this Snakemake has no local output cache module of the expected shape."""
    try:
        from snakemake.caching import local
    except ImportError:
        return False
    if isinstance(getattr(local, "shutil", None), _CacheShutil):
        return True
    if getattr(local, "shutil", None) is not shutil:
        log.warning("snakemake.caching.local has changed; concurrent cache writers unguarded")
        return False
    local.shutil = _CacheShutil()
    return True
