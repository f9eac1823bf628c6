"""The task step: a config task's samples, materialised as JSONL."""

from __future__ import annotations

import logging
import os

from moemui.tasks import make_task, write_samples

log = logging.getLogger(__name__)


def materialise_task(spec: dict, out: str | os.PathLike) -> int:
    """Write the samples of config task ``spec`` to ``out``; return their number."""
    samples = make_task(spec)
    write_samples(out, samples)
    log.info("task %s: %d samples -> %s", spec.get("id"), len(samples), out)
    return len(samples)
