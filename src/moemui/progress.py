"""Progress for long loops: a bar on a terminal, periodic log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator, Sized
from typing import TypeVar

from tqdm import tqdm

log = logging.getLogger("moemui.progress")
T = TypeVar("T")


def progress(items: Iterable[T], desc: str, unit: str = "it", every: float = 10.0) -> Iterator[T]:
    """Iterate ``items`` showing progress.

    On a terminal: a tqdm bar. Elsewhere (a Snakemake log file): one INFO line at the
    start, then at most one every ``every`` seconds (with the rate, and the time left
    when the total is known), and one at the end.
    """
    total = len(items) if isinstance(items, Sized) else None
    if sys.stderr.isatty():
        yield from tqdm(items, desc=desc, unit=unit, total=total)
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
            rate = done / (now - start)
            left = f", {(total - done) / rate:.0f} s left" if total else ""
            log.info(
                "%s: %d/%s %s (%.0f s, %.1f %s/s%s)",
                desc, done, total or "?", unit, now - start, rate, unit, left,
            )  # fmt: skip
    log.info(
        "%s: %d/%s %s done in %.1f s", desc, done, total or "?", unit, time.monotonic() - start
    )
