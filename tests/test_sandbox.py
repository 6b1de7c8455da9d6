"""The sandbox for untrusted code: no network, memory and time limits, no operator secrets."""

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from engine.errors import CraError
from engine.sandbox import OUTPUT_TAIL_BYTES, run_sandboxed


def run_python(code: str, tmp_path: Path, **kwargs):
    options = {"timeout_s": 30.0, "memory_mb": 1024, "env": {}, "tmp_root": tmp_path, **kwargs}
    return run_sandboxed([sys.executable, "-c", code], tmp_path, **options)


def test_connect_fails_inside_but_works_outside(tmp_path: Path):
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        code = (
            "import socket\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=5)\n"
            "except OSError as exc:\n"
            "    print(exc.errno)\n"
            "else:\n"
            "    print('connected')\n"
        )
        result = run_python(code, tmp_path)
    assert result.stdout.strip() == str(errno.ENETUNREACH)


def test_memory_limit_refuses_large_allocations(tmp_path: Path):
    code = (
        "small = bytearray(32 * 1024 * 1024)\n"
        "print('small ok', flush=True)\n"
        "big = bytearray(1024 * 1024 * 1024)\n"
        "print('big ok')\n"
    )
    result = run_python(code, tmp_path, memory_mb=256)
    assert result.stdout == "small ok\n"
    assert "MemoryError" in result.stderr
    assert result.returncode == 1


def test_timeout_kills_the_whole_process_tree(tmp_path: Path):
    token = f"cra-sandbox-test-{uuid.uuid4().hex}"
    sleeper = f"import time; print('up', flush=True); time.sleep(600)  # {token}"
    code = (
        "import subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-c', {sleeper!r}])\n"
        f"subprocess.Popen([sys.executable, '-c', {sleeper!r}], start_new_session=True)\n"
        "time.sleep(600)\n"
    )
    result = run_python(code, tmp_path, timeout_s=3.0)
    assert result.timed_out
    assert result.stdout == "up\nup\n", "both children, one in its own session, were running"
    survivors = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if token.encode() in cmdline:
            survivors.append(proc.name)
    assert survivors == []


def test_operator_environment_stays_outside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CRA_SECRET_TOKEN", "hunter2")
    venv_bin = tmp_path / "venv" / "bin"
    code = "import json, os; print(json.dumps(dict(os.environ)))"
    result = run_python(code, tmp_path, env={"EXTRA": "yes"}, extra_path=[venv_bin])
    seen = json.loads(result.stdout)
    assert "CRA_SECRET_TOKEN" not in seen
    assert "hunter2" not in result.stdout
    assert seen["EXTRA"] == "yes"
    assert seen["PATH"].split(os.pathsep)[0] == str(venv_bin)
    home = Path(seen["HOME"])
    assert home.parent == tmp_path
    assert Path(seen["TMPDIR"]) == home / "tmp"
    assert not home.exists(), "the throwaway home is removed afterwards"


def test_reserved_keys_cannot_be_overridden(tmp_path: Path):
    with pytest.raises(ValueError, match="HOME"):
        run_python("pass", tmp_path, env={"HOME": "/root"})


def test_stdin_is_empty(tmp_path: Path):
    result = run_python("import sys; print(repr(sys.stdin.read()))", tmp_path)
    assert result.stdout == "''\n"


def test_output_keeps_only_the_tail(tmp_path: Path):
    code = "import sys\nfor i in range(100_000): print(f'line {i}')\nprint('END')\n"
    result = run_python(code, tmp_path)
    assert len(result.stdout.encode()) == OUTPUT_TAIL_BYTES
    assert result.stdout.endswith("line 99999\nEND\n")


def test_exit_status_and_signals_come_through(tmp_path: Path):
    assert run_python("raise SystemExit(3)", tmp_path).returncode == 3
    killed = run_python("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", tmp_path)
    assert (killed.returncode, killed.timed_out) == (128 + 15, False)


def test_missing_unshare_is_an_error_not_a_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(CraError, match="network isolation is unavailable: `unshare`"):
        run_python("print('ran')", tmp_path)


def test_failing_unshare_is_an_error_not_a_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    unshare = fake_bin / "unshare"
    unshare.write_text(
        "#!/bin/sh\necho 'unshare: unshare failed: Operation not permitted' >&2\nexit 1\n"
    )
    unshare.chmod(0o755)
    for tool in ("prlimit", "setpriv"):
        found = shutil.which(tool)
        assert found is not None
        (fake_bin / tool).symlink_to(found)
    monkeypatch.setenv("PATH", str(fake_bin))
    with pytest.raises(CraError, match="Operation not permitted"):
        run_python("print('ran')", tmp_path)


def test_command_dies_with_the_process_that_started_it(tmp_path: Path):
    token = f"cra-orphan-{uuid.uuid4().hex}"
    parent_code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from engine.sandbox import run_sandboxed\n"
        f"run_sandboxed(['/bin/sh', '-c', 'sleep 300; : {token}'], Path({str(tmp_path)!r}),\n"
        "              timeout_s=300, memory_mb=512, env={})\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code])

    def sandboxed_alive() -> bool:
        return subprocess.run(["pgrep", "-f", token], capture_output=True).returncode == 0

    deadline = time.monotonic() + 30
    while not sandboxed_alive():
        assert time.monotonic() < deadline, "the sandboxed command never started"
        time.sleep(0.05)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while sandboxed_alive():
        assert time.monotonic() < deadline, "the sandboxed command outlived its parent"
        time.sleep(0.05)
