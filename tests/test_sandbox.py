"""The sandbox for untrusted code: its own filesystem view, no network, total limits, no secrets.

Each hostile test runs real code in the real sandbox and fails if the isolation it names is gone.
"""

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from pilot_wait import wait_for

import engine.isolation.cgroups
import engine.isolation.sandbox
from engine.core.errors import CraError
from engine.isolation.sandbox import OUTPUT_TAIL_BYTES, python_paths, run_sandboxed

PYTHON = python_paths(Path(sys.executable))


def run_python(code: str, cwd: Path, *args: str, **kwargs):
    """`python -c code args…` sandboxed in `cwd`, its throwaway HOME under `cwd` too."""
    options = {
        "timeout_s": 30.0,
        "memory_mb": 1024,
        "env": {},
        "tmp_root": cwd,
        "readable": PYTHON,
        **kwargs,
    }
    return run_sandboxed([sys.executable, "-c", code, *args], cwd, **options)


def test_connect_fails_inside_but_works_outside(tmp_path: Path):
    """A listener on the host's loopback is out of reach: the sandbox's loopback is its own."""
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
    assert result.stdout.strip() == str(errno.ECONNREFUSED)


CONNECT_UNIX = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_UNIX)\n"
    "try:\n"
    "    s.connect(sys.argv[1].replace('@', '\\0', 1))\n"
    "except OSError as exc:\n"
    "    print(exc.errno)\n"
    "else:\n"
    "    print('connected')\n"
)


def test_a_unix_socket_on_the_host_is_out_of_reach(tmp_path: Path):
    """The tmux escape: a listener's socket file under the host's /tmp is not in the view."""
    folder = Path(tempfile.mkdtemp(prefix="cra-listener-"))
    try:
        path = folder / "listener.sock"
        with socket.socket(socket.AF_UNIX) as server:
            server.bind(str(path))
            server.listen()
            with socket.socket(socket.AF_UNIX) as probe:
                probe.connect(str(path))
            result = run_python(CONNECT_UNIX, tmp_path, str(path))
    finally:
        shutil.rmtree(folder)
    assert result.stdout.strip() == str(errno.ENOENT), result.stderr


def test_an_abstract_socket_on_the_host_is_out_of_reach(tmp_path: Path):
    """Abstract Unix sockets belong to a network namespace; the sandbox has its own."""
    name = f"cra-abstract-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind("\0" + name)
        server.listen()
        with socket.socket(socket.AF_UNIX) as probe:
            probe.connect("\0" + name)
        result = run_python(CONNECT_UNIX, tmp_path, "@" + name)
    assert result.stdout.strip() == str(errno.ECONNREFUSED), result.stderr


def test_files_outside_the_view_cannot_be_read(tmp_path: Path, worktree: Path):
    """Secrets, homes, /run and the caller's own files beside the worktree do not exist inside."""
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2")
    paths = ["/etc/shadow", "/root/.bashrc", "/home", "/run", "/var/run", str(secret)]
    code = (
        "import os, sys\n"
        "for path in sys.argv[1:]:\n"
        "    print(path, os.path.exists(path))\n"
        "print('tmp', sorted(os.listdir('/tmp')))\n"
        "print('passwd', open('/etc/passwd').read().count(':x:'))\n"
    )
    result = run_python(code, worktree, *paths)
    lines = result.stdout.splitlines()
    assert lines[: len(paths)] == [f"{path} False" for path in paths], result.stderr
    bound = [path.resolve().parts for path in (worktree, *PYTHON)]
    leading = sorted({parts[2] for parts in bound if parts[1] == "tmp"})
    assert lines[len(paths)] == f"tmp {leading}", "only the folders leading to bound paths"
    assert lines[-1] == "passwd 1", "a passwd naming the sandbox's user alone"
    assert "hunter2" not in result.stdout


def test_a_fork_bomb_stops_at_the_process_limit(tmp_path: Path):
    """The process total holds for the whole sandbox, not per process."""
    code = (
        "import os, time\n"
        "started = 0\n"
        "try:\n"
        "    for _ in range(200):\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(30)\n"
        "            os._exit(0)\n"
        "        started += 1\n"
        "except OSError as exc:\n"
        "    print('refused', exc.errno)\n"
        "print('started', started, flush=True)\n"
        "os.killpg(0, 9)\n"
    )
    result = run_python(code, tmp_path, max_processes=24, timeout_s=60.0)
    lines = result.stdout.splitlines()
    assert lines[0] == f"refused {errno.EAGAIN}", result.stderr
    started = int(lines[1].split()[1])
    assert 10 <= started < 24
    assert "processes" in result.limits_hit


@pytest.mark.slow
def test_children_together_cannot_exceed_the_memory_limit(tmp_path: Path):
    """Four children of 400 MB each under a 1 GB limit: the total is enforced, not each one."""
    code = (
        "import os, time\n"
        "pids = []\n"
        "for _ in range(4):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        held = bytearray(b'x' * (400 * 1024 * 1024))\n"
        "        time.sleep(5)\n"
        "        os._exit(0)\n"
        "    pids.append(pid)\n"
        "killed = sum(os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) == -9 for p in pids)\n"
        "print('killed', killed)\n"
    )
    result = run_python(code, tmp_path, memory_mb=1024, timeout_s=60.0)
    killed = int(result.stdout.split()[1])
    assert killed >= 1, result.stderr
    assert "memory" in result.limits_hit


def test_a_process_cannot_outlive_its_command(tmp_path: Path, worktree: Path):
    """A daemon (double fork, new session) dies with the command that started it."""
    late = worktree / "late.txt"
    token = f"cra-daemon-{uuid.uuid4().hex}"
    daemon = f"import time; time.sleep(2); open({str(late)!r}, 'w').write('{token}')"
    code = (
        "import os, subprocess, sys\n"
        f"subprocess.Popen([sys.executable, '-c', {daemon!r}], start_new_session=True,\n"
        "                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print('left it running')\n"
    )
    result = run_python(code, worktree)
    assert result.stdout == "left it running\n"
    wait_for(
        lambda: subprocess.run(["pgrep", "-f", token], capture_output=True).returncode == 1,
        "the daemon to be gone",
        limit_s=10,
    )
    assert not late.exists()


def test_a_file_cannot_grow_past_the_size_limit(tmp_path: Path, worktree: Path):
    """Writes past `max_file_mb` fail (EFBIG) instead of filling the disk."""
    code = (
        "try:\n"
        "    with open('big.bin', 'wb') as f:\n"
        "        f.write(b'x' * (3 * 1024 * 1024))\n"
        "except OSError as exc:\n"
        "    print(exc.errno)\n"
    )
    result = run_python(code, worktree, max_file_mb=1)
    assert result.stdout.strip() == str(errno.EFBIG), result.stderr
    assert (worktree / "big.bin").stat().st_size == 1024 * 1024


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
    assert home.parent.parent == tmp_path
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


def test_a_passed_descriptor_reaches_the_command_and_its_file_stays_out_of_sight(
    tmp_path: Path, worktree: Path
):
    """A report file handed over as a descriptor can be written, but not found by name."""
    reports = tmp_path / "reports"
    reports.mkdir()
    report = reports / "report.xml"
    fd = os.open(report, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    code = (
        "import os, sys\n"
        f"print(os.path.exists({str(report)!r}))\n"
        "with open(f'/dev/fd/{sys.argv[1]}', 'w') as f:\n"
        "    f.write('<testsuites/>')\n"
    )
    try:
        result = run_python(code, worktree, str(fd), pass_fds=[fd])
    finally:
        os.close(fd)
    assert result.stdout == "False\n", result.stderr
    assert report.read_text() == "<testsuites/>"


def test_missing_bwrap_is_an_error_not_a_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(CraError, match="sandbox isolation is unavailable: `bwrap`"):
        run_python("print('ran')", tmp_path)


def fake_bwrap(tmp_path: Path, body: str) -> None:
    """Put a shell script named bwrap first on PATH; the real tools stay reachable."""
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    real = shutil.which("bwrap")
    assert real is not None
    script = fake_bin / "bwrap"
    script.write_text(f"#!/bin/sh\nREAL={real}\n{body}\n")
    script.chmod(0o755)
    found = shutil.which("prlimit")
    assert found is not None
    (fake_bin / "prlimit").symlink_to(found)


def test_failing_bwrap_is_an_error_not_a_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fake_bwrap(tmp_path, "echo 'bwrap: No permissions to create new namespace' >&2\nexit 1")
    monkeypatch.setenv("PATH", str(tmp_path / "fake-bin"))
    with pytest.raises(CraError, match="No permissions to create new namespace"):
        run_python("print('ran')", tmp_path)


def test_a_sandbox_sharing_the_network_is_refused(
    tmp_path: Path, worktree: Path, monkeypatch: pytest.MonkeyPatch
):
    """The probe notices a chain that kept the host's network namespace, and nothing runs."""
    fake_bwrap(tmp_path, 'first=$1; shift; exec "$REAL" "$first" --share-net "$@"')
    monkeypatch.setenv("PATH", str(tmp_path / "fake-bin"))
    with pytest.raises(CraError, match="sandbox isolation is unavailable: .*interfaces"):
        write_each(worktree, [str(worktree / "ran")])
    assert not (worktree / "ran").exists()


def test_a_failed_setup_is_an_error_not_the_commands_failure(
    tmp_path: Path, worktree: Path, monkeypatch: pytest.MonkeyPatch
):
    write_each(worktree, [])  # the probe has passed and is kept for the process
    missing = tmp_path / "missing"
    binds = engine.isolation.sandbox._system_binds
    monkeypatch.setattr(
        engine.isolation.sandbox,
        "_system_binds",
        lambda: [*binds(), "--ro-bind", str(missing), str(missing)],
    )
    with pytest.raises(CraError, match="setup failed .*Can't find source path"):
        write_each(worktree, [str(worktree / "ran")])
    assert not (worktree / "ran").exists()


def test_no_cgroup_is_an_error_unless_per_process_limits_are_accepted(
    tmp_path: Path, worktree: Path, monkeypatch: pytest.MonkeyPatch
):
    """Where no cgroup can be made the command is refused; the operator may accept less."""
    write_each(worktree, [])
    monkeypatch.setenv(engine.isolation.cgroups.CGROUP_PARENT_ENV, str(tmp_path / "no-such-cgroup"))
    monkeypatch.setattr(engine.isolation.cgroups, "_open_v1", _no_v1)
    with pytest.raises(CraError, match="no cgroup can bound the sandbox's totals"):
        write_each(worktree, [str(worktree / "ran")])
    assert not (worktree / "ran").exists()
    monkeypatch.setenv(engine.isolation.sandbox.TOTALS_ENV, engine.isolation.sandbox.PER_PROCESS)
    assert write_each(worktree, [str(worktree / "ran")]) == {str(worktree / "ran"): "ok"}


def _no_v1(*args):
    raise PermissionError("cgroup v1 refused for this test")


def test_the_probe_runs_once_per_process(
    tmp_path: Path, worktree: Path, monkeypatch: pytest.MonkeyPatch
):
    calls = tmp_path / "calls"
    fake_bwrap(tmp_path, f'echo call >> {calls}\nexec "$REAL" "$@"')
    monkeypatch.setenv("PATH", str(tmp_path / "fake-bin"))
    for _ in range(3):
        write_each(worktree, [])
    assert calls.read_text().count("call") == 4, "one probe, then one bwrap per run"


def test_the_command_runs_at_its_callers_niceness_in_its_own_session_too(tmp_path: Path):
    """bwrap's new session starts a scheduling group at niceness 0 where the kernel groups by
    session (autogroup): the sandboxed command's group gets its caller's niceness back, or a
    job's tests would compete with the console as equals."""
    code = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from engine.isolation.sandbox import run_sandboxed\n"
        "script = 'cat /proc/self/autogroup 2>/dev/null; ps -o ni= -p $$'\n"
        f"r = run_sandboxed(['/bin/sh', '-c', script], Path({str(tmp_path)!r}), timeout_s=30,\n"
        f"                  memory_mb=512, env={{}}, tmp_root=Path({str(tmp_path)!r}))\n"
        "sys.stdout.write(r.stdout + r.stderr)\n"
    )
    own = os.getpriority(os.PRIO_PROCESS, 0)
    caller = subprocess.run(
        ["nice", "-n", "7", sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    lines = caller.stdout.split("\n")
    expected = str(min(19, own + 7))
    assert lines[-2].strip() == expected, caller.stdout
    if Path("/proc/self/autogroup").exists():
        assert lines[0].endswith(f" nice {expected}"), caller.stdout


def test_command_dies_with_the_process_that_started_it(tmp_path: Path):
    token = f"cra-orphan-{uuid.uuid4().hex}"
    parent_code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from engine.isolation.sandbox import run_sandboxed\n"
        f"run_sandboxed(['/bin/sh', '-c', 'sleep 300; : {token}'], Path({str(tmp_path)!r}),\n"
        f"              timeout_s=300, memory_mb=512, env={{}}, tmp_root=Path({str(tmp_path)!r}))\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code])

    def sandboxed_alive() -> bool:
        return subprocess.run(["pgrep", "-f", token], capture_output=True).returncode == 0

    wait_for(sandboxed_alive, "the sandboxed command to start", limit_s=30)
    parent.kill()
    parent.wait()
    wait_for(lambda: not sandboxed_alive(), "the sandboxed command to die with its parent", 10)


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
    result = run_python(WRITE_EACH, cwd, *paths, **{"tmp_root": cwd.parent, **kwargs})
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
        f"pathlib.Path({str(reports / 'out.txt')!r}).write_text('j')\n"
        "print(f.name)\n"
    )
    result = run_python(code, worktree, tmp_root=tmp_path, writable=[reports])
    assert result.returncode == 0, result.stderr
    assert (worktree / "relative.txt").read_text() == "r"
    assert (worktree / "pkg" / "nested.txt").read_text() == "n"
    assert (reports / "out.txt").read_text() == "j"
    temp_file = Path(result.stdout.strip())
    assert temp_file.parents[3] == tmp_path, "the temp file went to the throwaway TMPDIR"


def test_writes_elsewhere_never_reach_the_host(tmp_path: Path, worktree: Path):
    """Outside the writable folders a write fails, or lands in the sandbox's private /tmp."""
    outside = tmp_path / "outside"
    outside.mkdir()
    readable = tmp_path / "readable"
    readable.mkdir()
    unique = f"cra-sandbox-test-{uuid.uuid4().hex}"
    targets = [
        outside / "file.txt",
        readable / "file.txt",
        tmp_path / "beside-the-worktree.txt",
        Path.home() / unique,
        Path(tempfile.gettempdir()) / unique,
        Path("/usr") / unique,
    ]
    try:
        seen = write_each(worktree, [str(t) for t in targets], readable=[*PYTHON, readable])
        assert seen[str(readable / "file.txt")] == str(errno.EROFS)
        assert seen[str(Path("/usr") / unique)] == str(errno.EROFS)
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
    """Remounting is refused, and so is a nested user namespace that would allow it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    code = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "MS_REMOUNT, MS_BIND, CLONE_NEWNS, CLONE_NEWUSER = 32, 4096, 0x20000, 0x10000000\n"
        "if libc.mount(None, b'/', None, MS_REMOUNT | MS_BIND, None) == 0:\n"
        "    print('remounted /')\n"
        "if libc.mount(b'/usr', b'/usr', None, MS_REMOUNT | MS_BIND, None) == 0:\n"
        "    print('remounted /usr')\n"
        "if libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0:\n"
        "    print('nested user namespace')\n"
        "print('done')\n"
    )
    result = run_python(code, worktree)
    assert result.stdout == "done\n", result.stderr


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
