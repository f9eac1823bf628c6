"""Run untrusted Python (a model's generated code) in a separate, limited process.

The workflow's own process never executes model output: :func:`run_python` writes the
program into a fresh temporary directory and runs it in a child interpreter, then
reports how it ended. The child runs under these layers, each of which holds on its own:

Process and time
    A new session (its own process group), killed as a whole with ``SIGKILL`` when the
    wall-clock ``timeout`` passes and again when it ends, so no child outlives it.
    ``RLIMIT_CPU`` stops a CPU-bound loop even if the wall clock were not watched. Where
    ``unshare`` works, the program also runs in its own PID namespace: when its first
    process dies, the kernel kills every process of the namespace, including ones that
    left the process group.
Memory
    ``RLIMIT_AS`` (``memory_mb``): a huge allocation fails with ``MemoryError`` in the
    child instead of exhausting the machine.
Process count
    ``RLIMIT_NPROC`` (``max_procs``). It does not bind root, so when the caller is root
    the child runs as the unprivileged user ``nobody`` (uid/gid 65534), for which it
    does; as another user the limit is the user's current process count plus
    ``max_procs``. The count is per user, so sandboxes running at the same time share
    it (each needs one process to start). On top of that, the in-interpreter guard
    (below) refuses ``fork``, ``exec``, ``posix_spawn``, ``system`` and ``subprocess``.
Network
    Where ``unshare`` works, a new network namespace with no interface up: no address
    is reachable. Always, the guard refuses creating a socket and resolving names.
Files
    The working directory is the temporary directory, removed afterwards. The guard
    refuses opening a file for writing, creating, removing, renaming, linking or
    changing the mode/owner/times of any path outside it; ``RLIMIT_FSIZE`` caps every
    file it writes (and its captured output) at ``max_output_bytes``; as ``nobody`` the
    operating system's permissions protect everything not world-writable.
Interpreter
    ``python -I -B``: no environment variables, no user site-packages, no current
    directory on ``sys.path``, no bytecode written; a minimal environment (``PATH``,
    ``HOME`` and ``TMPDIR`` inside the temporary directory). As root, the interpreter
    is this one when ``nobody`` can run it, else the system's ``python3.X`` of the same
    version (an interpreter under ``/root`` is out of ``nobody``'s reach).

What it does not guarantee: the in-interpreter guard is a Python audit hook, which
native code can get around (it refuses ``ctypes`` and ``_posixsubprocess`` for that
reason, but an extension module already importable could still do it); behind it stay
the OS layers above, which hold without it. Without ``unshare`` there is no network
namespace (only the guard blocks sockets) and no PID namespace. Reading files is not
confined: the program can read what ``nobody`` (or the calling user) can read. The
verdict is the exit status; a program that calls ``os._exit(0)`` before its tests run
is counted as passing (``sys.exit`` is caught and counts as a failure): the sandbox
protects the machine, it does not make a benchmark cheat-proof.

Examples
--------
>>> run_python("assert 1 + 1 == 2").status
'passed'
>>> run_python("while True: pass", timeout=0.5).status
'timeout'
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from moemui.errors import MoemuiError

log = logging.getLogger(__name__)

__all__ = ["SandboxResult", "Status", "run_python"]

#: How a sandboxed run ended: ``passed`` (exit status 0), ``failed`` (any other status,
#: e.g. an assertion, an exception, a refused operation, ``MemoryError``), ``timeout``
#: (killed after the wall-clock limit or the CPU-time limit).
Status = Literal["passed", "failed", "timeout"]

#: The unprivileged user the child runs as when the caller is root.
NOBODY = 65534

# The child's first code: install the guard, then run the program as __main__. Kept as
# text so it is written into the sandbox directory (readable by ``nobody``).
_BOOT = r"""
import os, sys

ROOT = os.path.realpath(sys.argv[1])
PROGRAM = sys.argv[2]
GUARD = sys.argv[3] == "1"
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
PATH_EVENTS = {
    "os.remove": (0,), "os.rmdir": (0,), "os.mkdir": (0,), "os.rename": (0, 1),
    "os.link": (0, 1), "os.symlink": (1,), "os.chmod": (0,), "os.chown": (0,),
    "os.truncate": (0,), "os.utime": (0,), "os.chflags": (0,), "os.lchflags": (0,),
    "os.setxattr": (0,), "os.removexattr": (0,), "os.mknod": (0,), "os.mkfifo": (0,),
}
REFUSED = {
    "os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
    "subprocess.Popen", "pty.spawn", "os.kill", "os.killpg",
    "socket.__new__", "socket.socketpair", "socket.fromfd", "socket.getaddrinfo",
    "socket.gethostbyname", "socket.gethostbyaddr", "socket.connect", "socket.bind",
}
REFUSED_MODULES = {"ctypes", "_ctypes", "_posixsubprocess"}


def _inside(path):
    if isinstance(path, int):
        return True
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    real = os.path.realpath(os.fspath(path))
    return real == ROOT or real.startswith(ROOT + os.sep)


def _guard(event, args):
    if event in REFUSED or event.startswith("ctypes."):
        raise PermissionError(f"sandbox: {event} refused")
    if event == "import" and args[0].partition(".")[0] in REFUSED_MODULES:
        raise PermissionError(f"sandbox: import of {args[0]} refused")
    if event == "open":
        path, mode, flags = (tuple(args) + (None, None))[:3]
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags > 0 and flags & WRITE_FLAGS
        )
        if writes and path is not None and not _inside(path):
            raise PermissionError(f"sandbox: writing {path!r} outside the sandbox refused")
    elif event in PATH_EVENTS:
        for i in PATH_EVENTS[event]:
            if i < len(args) and args[i] is not None and not _inside(args[i]):
                raise PermissionError(f"sandbox: {event} on {args[i]!r} outside refused")


with open(PROGRAM, encoding="utf-8") as fh:
    code = compile(fh.read(), PROGRAM, "exec")
del fh
if GUARD:
    sys.addaudithook(_guard)
del sys.argv[1:]
try:
    exec(code, {"__name__": "__main__", "__builtins__": __builtins__})
except SystemExit as exc:
    print(f"sandbox: the program called sys.exit({exc.code!r})", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)
"""


@dataclass(frozen=True)
class SandboxResult:
    """How one sandboxed run ended.

    Attributes
    ----------
    status : {"passed", "failed", "timeout"}
        See :data:`Status`.
    returncode : int or None
        The child's exit status (negative: killed by that signal); ``None`` on timeout.
    stdout, stderr : str
        What the program printed, at most ``max_output_bytes`` each (decoded leniently).
    seconds : float
        Wall-clock time.
    """

    status: Status
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@functools.cache
def _unshare_prefix(as_root: bool) -> tuple[str, ...]:
    """The ``unshare`` arguments that work on this machine, or ``()``."""
    exe = shutil.which("unshare")
    if exe is None:
        return ()
    if as_root:
        prefix = (exe, "--net", "--pid", "--fork", "--kill-child")
        prefix += ("--setgid", str(NOBODY), "--setuid", str(NOBODY))
    else:
        prefix = (exe, "--user", "--net", "--pid", "--fork", "--kill-child")
    try:
        done = subprocess.run([*prefix, "true"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return ()
    if done.returncode != 0:
        log.info("sandbox: unshare unavailable (%s); no network/PID namespace", done.stderr)
        return ()
    return prefix


def _drop_to_nobody() -> None:
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


@functools.cache
def _interpreter(as_root: bool) -> str:
    """A Python the child's user can run: ours, else the system's ``python3.X``.

    As root the child runs as ``nobody``, who may not reach an interpreter installed
    under a private home (e.g. ``/root/.pyenv``); the system interpreter of the same
    version then runs the program (generated code needs only the standard library).
    """
    if not as_root:
        return sys.executable
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [sys.executable, f"/usr/bin/{version}", f"/usr/local/bin/{version}"]
    candidates += [c for c in (shutil.which("python3", path="/usr/local/bin:/usr/bin"),) if c]
    for exe in candidates:
        try:
            done = subprocess.run(
                [exe, "-I", "-c", "import json, collections, re"],
                preexec_fn=_drop_to_nobody,  # noqa: PLW1509
                capture_output=True,
                timeout=30,
                check=False,
                cwd="/",
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if done.returncode == 0:
            return exe
    raise MoemuiError(
        "sandbox: no Python interpreter the unprivileged user 'nobody' can run "
        f"(tried {', '.join(candidates)}); generated code is never run as root"
    )


def _user_processes(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += 1
            except OSError:
                pass
    return count


def _limits(timeout: float, memory_mb: int, max_procs: int, max_output: int, as_root: bool):
    nproc = max_procs if as_root else _user_processes(os.getuid()) + max_procs
    cpu = math.ceil(timeout) + 1
    table = [
        (resource.RLIMIT_AS, memory_mb * 2**20),
        (resource.RLIMIT_CPU, cpu),
        (resource.RLIMIT_FSIZE, max_output),
        (resource.RLIMIT_NPROC, nproc),
        (resource.RLIMIT_NOFILE, 64),
        (resource.RLIMIT_CORE, 0),
    ]

    def apply() -> None:  # runs in the child between fork and exec
        for which, value in table:
            resource.setrlimit(which, (value, value))

    return apply


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _read(path: Path, limit: int) -> str:
    try:
        with open(path, "rb") as fh:
            return fh.read(limit).decode("utf-8", errors="replace")
    except OSError:
        return ""


def run_python(
    program: str,
    timeout: float = 10.0,
    memory_mb: int = 1024,
    max_procs: int = 16,
    max_output_bytes: int = 1 << 20,
    guard: bool = True,
) -> SandboxResult:
    """Run ``program`` as ``__main__`` in a sandboxed Python process (see the module doc).

    Parameters
    ----------
    program : str
        Python source; it passes when it runs to the end (exit status 0).
    timeout : float
        Wall-clock seconds before the process group is killed.
    memory_mb : int
        Address-space limit of each process, in MiB.
    max_procs : int
        Process-count limit (see the module doc for how it is made to bind).
    max_output_bytes : int
        Largest file the program may write, and the most of its stdout/stderr kept.
    guard : bool
        Install the in-interpreter audit guard (default). ``False`` leaves only the OS
        layers, which the tests use to show that those hold on their own.

    Returns
    -------
    SandboxResult
    """
    as_root = os.geteuid() == 0
    prefix = _unshare_prefix(as_root)
    drop_in_preexec = as_root and not prefix
    root = Path(tempfile.mkdtemp(prefix="moemui-sandbox-"))
    try:
        (root / "boot.py").write_text(_BOOT, encoding="utf-8")
        (root / "main.py").write_text(program, encoding="utf-8")
        work = root / "work"
        (work / "tmp").mkdir(parents=True)
        os.rename(root / "main.py", work / "main.py")
        out_path, err_path = root / "stdout", root / "stderr"
        if as_root:
            for path in (root, work, work / "tmp", work / "main.py", root / "boot.py"):
                os.chown(path, NOBODY, NOBODY)
        os.chmod(root, 0o755)
        set_limits = _limits(timeout, memory_mb, max_procs, max_output_bytes, as_root)

        def preexec() -> None:
            if drop_in_preexec:
                _drop_to_nobody()
            set_limits()

        argv = [
            *prefix,
            _interpreter(as_root),
            "-I",
            "-B",
            str(root / "boot.py"),
            str(work),
            str(work / "main.py"),
            "1" if guard else "0",
        ]
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(work),
            "TMPDIR": str(work / "tmp"),
            "LANG": "C.UTF-8",
            "PYTHONHASHSEED": "0",
        }
        start = time.monotonic()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(
                argv,
                cwd=work,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                preexec_fn=preexec,  # noqa: PLW1509 - setrlimit/setuid need it
                close_fds=True,
            )
            try:
                returncode = proc.wait(timeout=timeout)
                status: Status = "passed" if returncode == 0 else "failed"
                if returncode == -signal.SIGXCPU or returncode == 128 + signal.SIGXCPU:
                    status = "timeout"
            except subprocess.TimeoutExpired:
                returncode, status = None, "timeout"
            finally:
                _kill_group(proc.pid)
                proc.wait()
        seconds = time.monotonic() - start
        result = SandboxResult(
            status,
            returncode,
            _read(out_path, max_output_bytes),
            _read(err_path, max_output_bytes),
            seconds,
        )
        log.debug("sandbox: %s in %.2fs (exit %s)", status, seconds, returncode)
        return result
    finally:
        shutil.rmtree(root, ignore_errors=True)
