"""The sandbox for untrusted code: no network, writes confined, limits, no operator secrets."""

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

import engine.sandbox
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
    assert 3.0 <= result.duration_s < 10.0
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
    with pytest.raises(CraError, match="sandbox isolation is unavailable: `unshare`"):
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
        f"              timeout_s=300, memory_mb=512, env={{}}, tmp_root=Path({str(tmp_path)!r}))\n"
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


WRITE_EACH = (
    "import sys\n"
    "for path in sys.argv[1:]:\n"
    "    try:\n"
    "        with open(path, 'x') as f:\n"
    "            f.write('x')\n"
    "    except OSError as exc:\n"
    "        print(path, exc.errno)\n"
    "    else:\n"
    "        print(path, 'ok')\n"
)


def write_each(cwd: Path, paths: list[str], **kwargs) -> dict[str, str]:
    """Each path mapped to 'ok' or the errno the sandboxed write got."""
    options = {"timeout_s": 30.0, "memory_mb": 1024, "env": {}, "tmp_root": cwd.parent, **kwargs}
    result = run_sandboxed([sys.executable, "-c", WRITE_EACH, *paths], cwd, **options)
    assert result.returncode == 0, result.stderr
    return dict(line.rsplit(" ", 1) for line in result.stdout.splitlines())


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    tree = tmp_path / "worktree"
    tree.mkdir()
    return tree


def test_writes_inside_the_worktree_temp_and_writable_folders_go_through(
    tmp_path: Path, worktree: Path
):
    reports = tmp_path / "reports"
    reports.mkdir()
    (worktree / "pkg").mkdir()
    code = (
        "import os, pathlib, tempfile\n"
        "pathlib.Path('relative.txt').write_text('r')\n"
        "pathlib.Path('pkg/nested.txt').write_text('n')\n"
        "with tempfile.NamedTemporaryFile(delete=False) as f:\n"
        "    f.write(b't')\n"
        "pathlib.Path(os.environ['HOME'], '.cache').mkdir()\n"
        f"pathlib.Path({str(reports / 'junit.xml')!r}).write_text('j')\n"
        "print(f.name)\n"
    )
    result = run_sandboxed(
        [sys.executable, "-c", code],
        worktree,
        timeout_s=30.0,
        memory_mb=1024,
        env={},
        tmp_root=tmp_path,
        writable=[reports],
    )
    assert result.returncode == 0, result.stderr
    assert (worktree / "relative.txt").read_text() == "r"
    assert (worktree / "pkg" / "nested.txt").read_text() == "n"
    assert (reports / "junit.xml").read_text() == "j"
    temp_file = Path(result.stdout.strip())
    assert temp_file.parent.parent.parent == tmp_path, "the temp file went to the throwaway TMPDIR"


def test_writes_elsewhere_fail_read_only_and_leave_nothing(tmp_path: Path, worktree: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    unique = f"cra-sandbox-test-{uuid.uuid4().hex}"
    targets = [
        outside / "file.txt",
        tmp_path / "beside-the-worktree.txt",
        Path.home() / unique,
        Path(tempfile.gettempdir()) / unique,
    ]
    try:
        seen = write_each(worktree, [str(t) for t in targets])
        assert seen == {str(t): str(errno.EROFS) for t in targets}
        assert [t for t in targets if t.exists()] == []
    finally:
        for target in targets:
            target.unlink(missing_ok=True)


def test_a_missing_writable_folder_is_refused(tmp_path: Path, worktree: Path):
    with pytest.raises(ValueError, match="not an existing directory"):
        write_each(worktree, [], writable=[tmp_path / "missing"])


def test_dev_null_and_a_private_dev_shm_work(worktree: Path):
    unique = f"cra-sandbox-test-{uuid.uuid4().hex}"
    code = (
        "import multiprocessing, pathlib\n"
        "pathlib.Path('/dev/null').write_text('gone')\n"
        "lock = multiprocessing.Lock()\n"
        "with lock:\n"
        f"    pathlib.Path('/dev/shm/{unique}').write_text('private')\n"
        f"print(pathlib.Path('/dev/shm/{unique}').read_text())\n"
    )
    result = run_python(code, worktree)
    assert (result.returncode, result.stdout) == (0, "private\n"), result.stderr
    assert not (Path("/dev/shm") / unique).exists()


def test_the_command_cannot_undo_the_confinement(tmp_path: Path, worktree: Path):
    """Remounting read-write, in the sandbox's namespaces or fresh ones, is refused."""
    outside = tmp_path / "outside"
    outside.mkdir()
    code = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "MS_REMOUNT, MS_BIND, CLONE_NEWNS, CLONE_NEWUSER = 32, 4096, 0x20000, 0x10000000\n"
        f"outside = {os.fsencode(outside)!r}\n"
        "def remount():\n"
        "    if libc.mount(None, b'/', None, MS_REMOUNT | MS_BIND, None) == 0:\n"
        "        print('remounted /')\n"
        "    if libc.mount(outside, outside, None, MS_BIND, None) == 0:\n"
        "        if libc.mount(None, outside, None, MS_REMOUNT | MS_BIND, None) == 0:\n"
        "            print('remounted a bind of outside')\n"
        "remount()\n"
        "assert libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0, ctypes.get_errno()\n"
        "remount()\n"
        f"open({str(outside / 'escaped')!r}, 'x')\n"
    )
    result = run_python(code, worktree)
    assert result.stdout == ""
    assert "Read-only file system" in result.stderr
    assert not (outside / "escaped").exists()


def test_the_consoles_processes_are_out_of_sight(tmp_path: Path, worktree: Path):
    """/proc is the sandbox's own: no /proc/PID/root path back into the console's mounts."""
    outside = tmp_path / "outside"
    outside.mkdir()
    via_proc = f"/proc/{os.getpid()}/root{outside}/escaped"
    code = (
        "import os\n"
        "print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n"
        "try:\n"
        f"    open({via_proc!r}, 'x')\n"
        "except OSError as exc:\n"
        "    print(exc.errno)\n"
    )
    result = run_python(code, worktree)
    assert result.stdout.splitlines()[1] == str(errno.ENOENT)
    assert max(json.loads(result.stdout.splitlines()[0])) < 10
    assert not (outside / "escaped").exists()


def fake_unshare(tmp_path: Path, body: str) -> None:
    """Put a shell script named unshare first on PATH; the real tools stay reachable."""
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    real = shutil.which("unshare")
    assert real is not None
    script = fake_bin / "unshare"
    script.write_text(f"#!/bin/sh\nREAL={real}\n{body}\n")
    script.chmod(0o755)
    for tool in ("prlimit", "setpriv"):
        found = shutil.which(tool)
        assert found is not None
        (fake_bin / tool).symlink_to(found)


def test_unconfined_writes_are_an_error_not_a_fallback(
    tmp_path: Path, worktree: Path, monkeypatch: pytest.MonkeyPatch
):
    # Drop the mount namespace: the confinement setup cannot work in the console's.
    fake_unshare(
        tmp_path,
        'for arg; do shift; case $arg in --mount|--mount-proc) ;; *) set -- "$@" "$arg";; esac; '
        'done\nexec "$REAL" "$@"',
    )
    monkeypatch.setenv("PATH", str(tmp_path / "fake-bin"))
    with pytest.raises(CraError, match="sandbox isolation is unavailable: .*cannot make /"):
        write_each(worktree, [str(worktree / "ran")])
    assert not (worktree / "ran").exists()


def test_a_failed_setup_is_an_error_not_the_commands_failure(
    worktree: Path, monkeypatch: pytest.MonkeyPatch
):
    write_each(worktree, [])  # the probe has passed and is kept for the process
    monkeypatch.setattr(engine.sandbox, "_CONFINE", "raise SystemExit('cra-sandbox: broken')")
    with pytest.raises(CraError, match="setup failed .*cra-sandbox: broken"):
        write_each(worktree, [str(worktree / "ran")])
    assert not (worktree / "ran").exists()


def test_the_probe_runs_once_per_process(
    tmp_path: Path, worktree: Path, monkeypatch: pytest.MonkeyPatch
):
    calls = tmp_path / "calls"
    fake_unshare(tmp_path, f'echo call >> {calls}\nexec "$REAL" "$@"')
    monkeypatch.setenv("PATH", str(tmp_path / "fake-bin"))
    for _ in range(3):
        write_each(worktree, [])
    assert calls.read_text().count("call") == 4, "one probe, then one unshare per run"
