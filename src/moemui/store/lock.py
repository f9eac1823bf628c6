"""One writer per store group: the lock a capture holds while it writes.

The lock and the writer's partial group live beside the store, outside its tree
(:func:`partial_dir`), on the same filesystem, so that publishing is one rename.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import socket
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from moemui.errors import MoemuiError

log = logging.getLogger(__name__)

#: A writer's lock is refreshed every HEARTBEAT_S seconds; one not refreshed for
#: LOCK_TIMEOUT_S (or held by a process of this host that is gone) is stale.
HEARTBEAT_S = 30.0
LOCK_TIMEOUT_S = 600.0


def partial_dir(root: str | os.PathLike) -> Path:
    """Where writers keep their partial groups and locks: beside the store, outside it."""
    root = Path(root)
    return root.parent / f".{root.name}.partial"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class GroupLock:
    """One writer per group: a lock file beside the group, outside the store's tree
    (``<partial_dir>/{model}/{task}.lock``), created with ``O_CREAT | O_EXCL`` and
    holding host, pid, a random token, the start time and the writer's partial group;
    a heartbeat thread touches it every :data:`HEARTBEAT_S` seconds.

    A lock is stale when its holder ran on this host and its pid is gone, or when its
    heartbeat is older than :data:`LOCK_TIMEOUT_S`; a stale lock, and its partial group,
    is taken over with a warning. A live one makes :meth:`acquire` fail naming it.
    """

    def __init__(self, root: str | os.PathLike, model: str, task: str):
        self.root, self.model, self.task = Path(root), model, task
        self.path = partial_dir(root) / model / f"{task}.lock"
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.token = secrets.token_hex(8)
        self.partial = self.path.with_name(f"{task}.{self.host}.{self.pid}.{self.token}")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def _stale(self, info: dict | None, age: float) -> bool:
        if info is None:  # being written, or left half-written by a killed writer
            return age > 60
        if info.get("host") == self.host and not _pid_alive(int(info.get("pid", -1))):
            return True
        return age > LOCK_TIMEOUT_S

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps(
            {
                "host": self.host,
                "pid": self.pid,
                "token": self.token,
                "since": datetime.now(UTC).isoformat(timespec="seconds"),
                "partial": str(self.partial),
            }
        )
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._take_over_or_fail()
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(body)
            self._thread = threading.Thread(target=self._beat, daemon=True)
            self._thread.start()
            return
        raise MoemuiError(f"{self.path}: could not take the group's lock; try again")

    def _take_over_or_fail(self) -> None:
        info = self._read()
        try:
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return
        group = f"{self.root}/{self.model}/{self.task}"
        if not self._stale(info, age):
            who = (
                f"host {info.get('host')}, pid {info.get('pid')}, since {info.get('since')}"
                if info
                else "a writer that is starting"
            )
            raise MoemuiError(
                f"{group}: another capture is writing this group ({who}; lock {self.path}); "
                "wait for it to end, or remove the lock if that capture is gone"
            )
        log.warning(
            "taking over the stale lock %s of %s (heartbeat %.0f s old)", self.path, info, age
        )
        partial = Path(info["partial"]) if info and info.get("partial") else None
        if partial is not None and partial.parent == self.path.parent:
            log.warning("removing the partial group %s left by an interrupted run", partial)
            shutil.rmtree(partial, ignore_errors=True)
        stale = self.path.with_name(f"{self.path.name}.stale-{self.token}")
        try:
            os.replace(self.path, stale)
            os.unlink(stale)
        except FileNotFoundError:
            pass

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            if self.held():
                with contextlib.suppress(OSError):
                    os.utime(self.path)

    def held(self) -> bool:
        """Whether the lock file still holds this writer's token."""
        info = self._read()
        return bool(info) and info.get("token") == self.token

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.held():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
