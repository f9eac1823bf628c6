"""The sandbox that runs generated code: each limit holds, and a passing solution passes.

The "without the guard" tests turn the in-interpreter audit guard off to show that the
operating-system layers (rlimits, an unprivileged user, namespaces, process-group kill)
hold on their own.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from moemui.tasks.sandbox import _unshare_prefix, run_python

HAS_NETNS = bool(_unshare_prefix(os.geteuid() == 0))


def _processes_with(marker: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmdline:
                found.append(entry.name)
    return found


def test_passing_and_failing_programs():
    ok = run_python("def f(x):\n    return x * 2\n\nassert f(21) == 42\nprint('done')")
    assert ok.status == "passed" and ok.passed and ok.returncode == 0
    assert ok.stdout == "done\n"
    bad = run_python("assert 1 + 1 == 3")
    assert bad.status == "failed" and "AssertionError" in bad.stderr


def test_sys_exit_is_not_a_pass():
    result = run_python("import sys\nsys.exit(0)\nassert False")
    assert result.status == "failed" and "sys.exit(0)" in result.stderr


def test_infinite_loop_is_killed_at_the_timeout():
    start = time.monotonic()
    result = run_python("while True:\n    pass", timeout=1.0)
    assert result.status == "timeout" and result.returncode is None
    assert time.monotonic() - start < 5


def test_children_are_killed_with_the_program():
    """Without the guard a program can start a child; on timeout the child dies too."""
    marker = f"{uuid.uuid4().int % 10**6}.{os.getpid()}"  # a unique sleep duration
    program = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        f"    os.execv('/bin/sleep', ['sleep', '{marker}'])\n"
        "while True:\n"
        "    time.sleep(0.1)\n"
    )
    result = run_python(program, timeout=1.0, guard=False)
    assert result.status == "timeout"
    time.sleep(0.2)
    assert _processes_with(f"sleep {marker}") == []


def test_fork_is_refused_by_the_guard():
    result = run_python("import os\nwhile True:\n    os.fork()", timeout=5)
    assert result.status == "failed"
    assert "sandbox: os.fork refused" in result.stderr
    result = run_python("import subprocess\nsubprocess.run(['true'])")
    assert result.status == "failed" and "refused" in result.stderr


def test_fork_loop_is_bounded_without_the_guard():
    """RLIMIT_NPROC binds (as root the child runs as nobody): a fork loop stops early."""
    program = (
        "import os, sys, time\n"
        "n = 0\n"
        "try:\n"
        "    for _ in range(500):\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(30)\n"
        "            os._exit(0)\n"
        "        n += 1\n"
        "except OSError as err:\n"
        "    print('stopped after', n, type(err).__name__, flush=True)\n"
        "    raise\n"
    )
    result = run_python(program, max_procs=8, timeout=10, guard=False)
    assert result.status == "failed"
    words = result.stdout.split()
    assert words[:2] == ["stopped", "after"] and words[3] == "BlockingIOError", result.stdout
    assert int(words[2]) < 8


def test_huge_allocation_fails_inside_the_child():
    result = run_python("x = bytearray(16 * 2**30)\nprint('allocated')", memory_mb=256)
    assert result.status == "failed"
    assert "MemoryError" in result.stderr and result.stdout == ""


def test_writing_outside_the_directory_is_refused(tmp_path):
    outside = tmp_path / "escape.txt"
    tmp_path.chmod(0o777)  # even a world-writable directory
    for program in (
        f"open({str(outside)!r}, 'w').write('x')",
        f"import os\nos.open({str(outside)!r}, os.O_WRONLY | os.O_CREAT)",
        f"import pathlib\npathlib.Path({str(outside)!r}).write_text('x')",
        f"import os\nos.mkdir({str(tmp_path / 'newdir')!r})",
        "open('../../escape.txt', 'w')",
    ):
        result = run_python(program)
        assert result.status == "failed", program
        assert "outside" in result.stderr, program
    assert sorted(os.listdir(tmp_path)) == []


def test_removing_or_renaming_outside_is_refused(tmp_path):
    victim = tmp_path / "keep.txt"
    victim.write_text("precious")
    victim.chmod(0o666)
    tmp_path.chmod(0o777)
    for program in (
        f"import os\nos.remove({str(victim)!r})",
        f"import os\nos.rename({str(victim)!r}, 'stolen.txt')",
        f"import shutil\nshutil.rmtree({str(tmp_path)!r})",
    ):
        assert run_python(program).status == "failed", program
    assert victim.read_text() == "precious"


def test_writing_inside_the_directory_works():
    program = (
        "import os, tempfile\n"
        "open('out.txt', 'w').write('hello')\n"
        "with tempfile.NamedTemporaryFile('w') as fh:\n"
        "    fh.write('x')\n"
        "assert open('out.txt').read() == 'hello'\n"
    )
    assert run_python(program).status == "passed"


@pytest.mark.skipif(os.geteuid() != 0, reason="the OS-level write refusal is nobody's")
def test_writing_outside_is_refused_without_the_guard(tmp_path):
    target = tmp_path / "escape.txt"  # a root-owned directory, not world-writable
    result = run_python(f"open({str(target)!r}, 'w').write('x')", guard=False)
    assert result.status == "failed" and "PermissionError" in result.stderr
    assert not target.exists()


def test_file_size_is_limited():
    result = run_python("open('big', 'wb').write(b'x' * (4 << 20))", max_output_bytes=1 << 20)
    assert result.status == "failed"


def test_socket_is_refused():
    for program in (
        "import socket\nsocket.socket(socket.AF_INET, socket.SOCK_STREAM)",
        "import socket\nsocket.create_connection(('127.0.0.1', 22), timeout=1)",
        "import socket\nsocket.getaddrinfo('example.com', 80)",
        "import urllib.request\nurllib.request.urlopen('http://example.com', timeout=2)",
    ):
        result = run_python(program, timeout=5)
        assert result.status == "failed", program
        assert "refused" in result.stderr, program


@pytest.mark.skipif(not HAS_NETNS, reason="unshare cannot make a network namespace here")
def test_no_network_without_the_guard():
    """In the network namespace no address is reachable, even with sockets allowed."""
    program = "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=2)"
    result = run_python(program, timeout=5, guard=False)
    assert result.status == "failed"
    assert "Network is unreachable" in result.stderr


def test_ctypes_is_refused():
    result = run_python("import ctypes\nctypes.CDLL(None).fork()")
    assert result.status == "failed" and "refused" in result.stderr


def test_the_directory_is_removed_afterwards():
    result = run_python("import os\nprint(os.getcwd())")
    assert result.passed
    assert not Path(result.stdout.strip()).exists()
