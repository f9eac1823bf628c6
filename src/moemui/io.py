"""Small file helpers: atomic writes, and the one JSON-lines writer and reader
(:func:`write_records`, :func:`read_records`, :func:`read_json_lines`).

Unicode: every file is UTF-8 and reads back as written, whatever characters its strings
hold. JSON lines are split on ``"\\n"`` only (:func:`split_json_lines`): JSON escapes
every control character inside a string, so a record never holds a raw newline, while
U+2028, U+2029 and U+0085, which ``str.splitlines`` also breaks on, may appear raw. A
lone surrogate (``"\\ud800"`` in the source JSON, which :func:`json.loads` turns into a
``str`` that has no UTF-8 form) is written back as its JSON escape (:func:`json_line`),
never as invalid UTF-8. Text that is not JSON and cannot hold a lone surrogate fails to
write with an error naming the file (:func:`atomic_write_text`).
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

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


#: A lone surrogate: a code point U+D800..U+DFFF, which no UTF-8 text can hold.
SURROGATE = re.compile("[\ud800-\udfff]")


def describe_surrogate(text: str) -> str | None:
    """``"U+D800 at character 3"`` for the first lone surrogate of ``text``, else None."""
    m = SURROGATE.search(text)
    return f"U+{ord(m.group()):04X} at character {m.start()}" if m else None


def replace_surrogates(text: str) -> tuple[str, int]:
    """``text`` with every lone surrogate replaced by U+FFFD, and how many there were:
    for text given to a tokenizer, which cannot take them."""
    return SURROGATE.subn("\ufffd", text)


def claim_dated_dir(parent: str | os.PathLike, name: str) -> Path:
    """Create and return a new empty directory ``parent/name.<UTC time>[.n]``, a name no
    one else holds (``os.mkdir`` claims it), for something to be moved onto with one
    rename; an earlier directory of that name is never replaced."""
    base = Path(parent) / f"{name}.{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    base.parent.mkdir(parents=True, exist_ok=True)
    claimed, n = base, 0
    while True:
        try:
            os.mkdir(claimed)
            return claimed
        except FileExistsError:
            n += 1
            claimed = base.with_name(f"{base.name}.{n}")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` so readers never see a partial file
    (:func:`atomic_write`).

    Raises
    ------
    MoemuiError
        ``text`` holds a lone surrogate (no UTF-8 form), naming the file and where;
        nothing is written.
    """
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as err:
        line = text.count("\n", 0, err.start) + 1
        raise MoemuiError(
            f"{path}, line {line}: cannot write the lone surrogate "
            f"U+{ord(text[err.start]):04X} as UTF-8; nothing was written"
        ) from None
    atomic_write(path, lambda fh: fh.write(data))


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


def json_line(obj) -> str:
    """``obj`` as one line of JSON (sorted keys, no NaN, non-ASCII kept as is) ending in
    ``"\\n"``, that encodes as UTF-8: a lone surrogate in a string is written as its
    escape ``\\udXXX``, which :func:`json.loads` reads back as the same ``str``. (Only
    a high surrogate followed by a low one, two code points in the ``str``, reads back
    as the one character they encode, as JSON defines.)"""
    text = json.dumps(obj, ensure_ascii=False, sort_keys=True, allow_nan=False)
    # A surrogate can only stand inside a JSON string, where "\\" is escaped, so its
    # escape is read as that code point again.
    return SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n"


def split_json_lines(data: bytes) -> list[bytes]:
    """The lines of a JSON-lines file's bytes: split on ``b"\\n"`` only (a ``"\\r"``
    before it is JSON whitespace). Not ``str.splitlines``, which also splits at U+2028,
    U+2029 and U+0085, characters that stand raw inside a JSON string (and at
    ``\\r``, ``\\x0b``, ``\\x0c``, ``\\x1c``..``\\x1e``, which JSON escapes)."""
    return data.split(b"\n")


def write_records(path: str | os.PathLike, records: Iterable[dict]) -> None:
    """Write dicts as JSON lines (:func:`json_line`: sorted keys, UTF-8, lone
    surrogates escaped), atomically."""
    atomic_write_text(path, "".join(json_line(r) for r in records))


def read_records(path: str | os.PathLike) -> list[dict]:
    """Read JSON lines written by :func:`write_records`: the value of each non-blank line
    (:func:`read_json_lines`); errors name the file and line."""
    return [value for _, value in read_json_lines(path)]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name} is not allowed")


def read_json_lines(path: str | os.PathLike, task_file: bool = False) -> list[tuple[int, Any]]:
    """``(line number, value)`` of each non-blank line of a JSON-lines file: the one
    JSON-lines reader (:func:`read_records`, and the task files of :mod:`moemui.tasks`).

    The file is read whole, split on ``"\\n"`` only (:func:`split_json_lines`), each line
    decoded strictly as UTF-8 and parsed as JSON, before anything is returned; a line
    of whitespace only is skipped. Line numbers count from 1.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    task_file : bool
        A task file (a person may have written it) rather than a file this package
        wrote: a UTF-8 byte order mark is skipped, ``NaN`` and ``Infinity`` are refused,
        every line must be an object and the file must hold one; the messages are the
        ones task files have always given (``task file not found: <path>``; ``invalid
        UTF-8 (<reason> at byte <n>)``; ``invalid JSON: <reason> (column <n>)``), where
        other files give ``<path>: file not found``, ``not valid UTF-8 (<reason>)`` and
        ``invalid JSON (<reason>)``. (Both wordings are kept as they were when the two
        readers were merged: users and tests match them.)

    Raises
    ------
    MoemuiError
        Naming the file and, for a bad line, the line: a missing file, invalid UTF-8,
        invalid JSON; for a task file also an unreadable file, ``NaN``, a line that is
        not an object, a file without a non-blank line.
    """
    path = Path(path)
    if task_file and not path.is_file():
        raise MoemuiError(f"task file not found: {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        if task_file:
            raise MoemuiError(f"cannot read task file {path}: {exc}") from exc
        if isinstance(exc, FileNotFoundError):
            raise MoemuiError(f"{path}: file not found") from None
        raise
    if task_file and data.startswith(b"\xef\xbb\xbf"):  # UTF-8 byte order mark
        data = data[3:]
    rows: list[tuple[int, Any]] = []
    for lineno, raw in enumerate(split_json_lines(data), 1):
        where = f"{path}, line {lineno}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            if task_file:
                raise MoemuiError(
                    f"{where}: invalid UTF-8 ({err.reason} at byte {err.start})"
                ) from err
            raise MoemuiError(f"{where}: not valid UTF-8 ({err.reason})") from None
        if not line.strip():
            continue
        if not task_file:
            try:
                rows.append((lineno, json.loads(line)))
            except json.JSONDecodeError as err:
                raise MoemuiError(f"{where}: invalid JSON ({err.msg})") from None
            continue
        try:
            value = json.loads(line, parse_constant=_reject_constant)
        except json.JSONDecodeError as err:
            raise MoemuiError(f"{where}: invalid JSON: {err.msg} (column {err.colno})") from err
        except ValueError as err:  # NaN or Infinity
            raise MoemuiError(f"{where}: invalid JSON: {err}") from err
        if not isinstance(value, dict):
            raise MoemuiError(f"{where}: expected a JSON object, got {type(value).__name__}")
        rows.append((lineno, value))
    if task_file and not rows:
        raise MoemuiError(f"task file is empty: {path}")
    return rows
