"""Progress for long loops: a bar on a terminal, periodic log lines otherwise.

A Snakemake job's stderr is its log file, where a bar's carriage returns would pile up;
there each line is whole and says how far, how fast and how long is left::

    generate olmoe-v1: 0/32 batch
    generate olmoe-v1: 12/32 batch (37%), 1.8 batch/s, ETA 11 s
    generate olmoe-v1: 32/32 batch done in 18 s (1.8 batch/s)

Examples
--------
>>> format_duration(2.54), format_duration(11.4), format_duration(200), format_duration(7500)
('2.5 s', '11 s', '3 min 20 s', '2 h 05 min')
>>> progress_line("generate olmoe-v1", 12, 32, "batch", 6.6)
'generate olmoe-v1: 12/32 batch (37%), 1.8 batch/s, ETA 11 s'
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator, Sized
from typing import IO, TypeVar

from tqdm import tqdm

log = logging.getLogger("moemui.progress")
T = TypeVar("T")


def format_duration(seconds: float) -> str:
    """``seconds`` as a person reads it: ``2.5 s``, ``11 s``, ``3 min 20 s``, ``2 h 05 min``."""
    if seconds < 9.95:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def _rate(done: int, elapsed: float, unit: str) -> str:
    """Items per second: one decimal from 1/s up, two significant digits below."""
    if elapsed <= 0:
        return f"- {unit}/s"
    rate = done / elapsed
    return f"{rate:.1f} {unit}/s" if rate >= 1 else f"{rate:.2g} {unit}/s"


def progress_line(desc: str, done: int, total: int | None, unit: str, elapsed: float) -> str:
    """One progress line: ``desc: done/total unit (percent), rate, ETA``.

    The rate is ``done / elapsed``; the ETA is the items left at that rate. Without a
    ``total`` (an iterable of unknown length) there is no percentage and no ETA.
    """
    rate = _rate(done, elapsed, unit)
    if total is None:
        return f"{desc}: {done} {unit}, {rate} (total unknown, no ETA)"
    eta = format_duration((total - done) * elapsed / done) if done and elapsed > 0 else "unknown"
    percent = 100 * done // total if total else 100
    return f"{desc}: {done}/{total} {unit} ({percent}%), {rate}, ETA {eta}"


def progress(
    items: Iterable[T],
    desc: str,
    unit: str = "it",
    every: float = 10.0,
    stream: IO[str] | None = None,
) -> Iterator[T]:
    """Iterate ``items`` showing progress.

    Parameters
    ----------
    items
        What to iterate; its ``len`` is the total when it has one.
    desc, unit
        What is done (``generate olmoe-v1``) and what an item is (``batch``).
    every
        Seconds between two log lines.
    stream
        The stream whose being a terminal decides the form (default: ``sys.stderr``).

    Notes
    -----
    On a terminal: a tqdm bar. Elsewhere (a Snakemake log file): INFO lines of
    ``moemui.progress``, one at the start, then at most one every ``every`` seconds
    (:func:`progress_line`: the rate, and the ETA when the total is known), and one at
    the end; never a carriage return.
    """
    total = len(items) if isinstance(items, Sized) else None
    if (stream or sys.stderr).isatty():
        yield from tqdm(items, desc=desc, unit=unit, total=total, file=stream)
        return
    start = last = time.monotonic()
    log.info("%s: 0/%s %s", desc, total if total is not None else "?", unit)
    done = 0
    for item in items:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= every:
            last = now
            log.info("%s", progress_line(desc, done, total, unit, now - start))
    elapsed = time.monotonic() - start
    log.info(
        "%s: %d/%s %s done in %s (%s)",
        desc, done, total if total is not None else done, unit, format_duration(elapsed),
        _rate(done, elapsed, unit),
    )  # fmt: skip
