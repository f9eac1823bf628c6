"""Small file helpers: atomic writes and JSON-lines records."""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from moemui.errors import MoemuiError

log = logging.getLogger(__name__)


def _remove_stale(paths: Iterable[Path]) -> None:
    """Remove temporary files or directories a killed run left beside an output.

    Each output is written by one job at a time (Snakemake's guarantee), so a temporary
    sibling of the output that exists when a new write starts is stale.
    """
    for stale in paths:
        log.warning("removing %s, left by an interrupted run", stale)
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


@contextmanager
def naming_os_errors(path: str | os.PathLike) -> Iterator[None]:
    """Re-raise an OSError that names no file (a full disk, for one) as naming ``path``,
    the output being written."""
    try:
        yield
    except OSError as err:
        if err.filename is None:
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` so readers never see a partial file
    (:func:`atomic_write`)."""
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` through ``write(file)`` so readers never see a partial file.

    The bytes go to a temporary file in the target's directory (created if missing),
    are flushed and fsynced, and replace ``path`` with :func:`os.replace`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with naming_os_errors(path), os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def staged_directory(out: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside ``out``; when the block succeeds, it replaces
    ``out`` in one rename. Whatever happens, no temporary directory is left behind.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(out.parent.glob(f".{glob.escape(out.name)}.*.staged"))
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".staged", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_records(path: str | os.PathLike, records: Iterable[dict]) -> None:
    """Write dicts as JSON lines (sorted keys, UTF-8), atomically."""
    text = "".join(
        json.dumps(r, ensure_ascii=False, sort_keys=True, allow_nan=False) + "\n" for r in records
    )
    atomic_write_text(path, text)


def read_records(path: str | os.PathLike) -> list[dict]:
    """Read JSON lines written by :func:`write_records`; errors name the file and line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise MoemuiError(f"{path}: file not found") from None
    except UnicodeDecodeError as err:
        raise MoemuiError(f"{path}: not valid UTF-8 ({err.reason})") from None
    records = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise MoemuiError(f"{path}, line {lineno}: invalid JSON ({err.msg})") from None
    return records
