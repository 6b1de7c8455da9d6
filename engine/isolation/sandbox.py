"""Run untrusted repository code in a filesystem of its own, offline, with total limits.

Every command that executes code from a repo package (the validation dry run, the repository's
build backend, the harness's test runs) goes through `run_sandboxed`. The command runs under
bubblewrap (`bwrap`, Debian's package), which builds its view of the world from nothing:

- filesystem: `/usr` (and the /bin, /lib… links into it) read-only, a handful of /etc files
  the dynamic loader needs, a two-line /etc/passwd and /etc/group, the caller's `readable`
  paths read-only (the task's environment, the Python install behind it, wheels), and the
  command's `cwd`, its throwaway HOME/TMPDIR and the caller's `writable` folders writable.
  Everything else is absent: /home, /root, /run, /var, /sys, the operator's files and every
  socket on disk. /tmp and /dev/shm are private tmpfs; /proc is the sandbox's own; /dev holds
  only null, zero, full, random, urandom and tty. The root of this view is read-only;
- namespaces: its own user (uid 1000 inside, nested user namespaces disabled), PID, network
  (no interface up: no network, and abstract Unix sockets are per network namespace, so the
  host's are out of reach), IPC, UTS and cgroup namespaces; no capabilities; a new session
  (no TIOCSTI into the console's terminal); killed when the console dies;
- totals: a cgroup of its own (`engine.isolation.cgroups`) bounds the memory of all its processes
  together (`memory_mb`, swap included) and their number (`max_processes`). Where no cgroup can
  be made, the command is refused, unless the operator set `TOTALS_ENV=per-process`: then only
  per-process limits hold, and the process count is RLIMIT_NPROC in the sandbox's user
  namespace (which root's processes ignore);
- per process: address space (`memory_mb`), CPU time, file size (`max_file_mb`), no core dumps;
- time: on `timeout_s` the whole sandbox is killed (its PID namespace and its cgroup);
- priority: the caller's niceness, for the new session's scheduling group too
  (`engine.core.priority`), so a job's tests stay below the console.

Its environment holds only PATH, HOME and TMPDIR (a throwaway folder), LANG and the keys the
caller passes; stdin is /dev/null; only the last `OUTPUT_TAIL_BYTES` of each output stream are
kept. `pass_fds` hands open files to the command (a report it writes where its own code cannot
name the file). bwrap reports on a status pipe the command cannot reach whether the command
started and how it exited, so a failed setup raises instead of passing for the command's own
failure. The first call in a process probes the whole chain once and keeps the verdict.
"""

import contextlib
import functools
import json
import math
import os
import select
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict

from engine.core.errors import CraError
from engine.core.priority import niceness, session_niceness_prefix
from engine.core.processes import kill_group
from engine.isolation.cgroups import CgroupUnavailable, SandboxCgroup, sandbox_cgroup

OUTPUT_TAIL_BYTES = 64 * 1024
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
MAX_PROCESSES = 512
MAX_FILE_MB = 4096
TOTALS_ENV = "CRA_SANDBOX_TOTALS"
PER_PROCESS = "per-process"
SANDBOX_UID = 1000
SANDBOX_USER = "sandbox"
BWRAP_FLAGS = (
    "--unshare-all",
    "--unshare-user",
    "--disable-userns",
    "--uid",
    str(SANDBOX_UID),
    "--gid",
    str(SANDBOX_UID),
    "--hostname",
    SANDBOX_USER,
    "--die-with-parent",
    "--new-session",
    "--cap-drop",
    "ALL",
)
# Top-level links of a merged-/usr system (or real folders on an older one), and the /etc
# files the dynamic loader and libc read; all read-only, each only where the host has it.
_SYSTEM_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_SYSTEM_ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime")
_JOIN_CGROUP = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n - 1)); done; exec "$@"'  # noqa: E501
_RESERVED_ENV = frozenset({"PATH", "HOME", "TMPDIR", "LANG"})
_READ_CHUNK = 64 * 1024
_PROBE_TIMEOUT_S = 30.0
_PROBE_MEMORY_MB = 512


class SandboxResult(BaseModel):
    """How a sandboxed command ended, with the tail of each output stream.

    `returncode` is the command's exit status (128+N when killed by signal N); when `timed_out`
    is true the command was killed and `returncode` says nothing about it. `limits_hit` names
    the totals it ran into: "memory" and/or "processes". `stdout_truncated` says whether
    `stdout` holds only the tail of what it wrote.
    """

    model_config = ConfigDict(frozen=True)

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool
    duration_s: float
    stdout_truncated: bool
    limits_hit: tuple[str, ...] = ()


class _SetupFailed(Exception):
    """The sandbox failed to set up, so the command never ran; the message says why."""


class _Tools(NamedTuple):
    bwrap: str
    prlimit: str
    shell: str


class _Limits(NamedTuple):
    timeout_s: float
    memory_mb: int
    max_processes: int
    max_file_mb: int
    output_tail_bytes: int = OUTPUT_TAIL_BYTES


def _unavailable(reason: str) -> CraError:
    return CraError(
        f"sandbox isolation is unavailable: {reason}; untrusted repository code is never run "
        "without it (needs bubblewrap: `apt-get install bubblewrap`, util-linux `prlimit`, "
        "user namespaces enabled: sysctl user.max_user_namespaces > 0, and a cgroup for the "
        f"totals, or {TOTALS_ENV}={PER_PROCESS} to accept per-process limits only)"
    )


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise _unavailable(f"`{name}` is not on PATH")
    return found


def _find_tools() -> _Tools:
    return _Tools(bwrap=_tool("bwrap"), prlimit=_tool("prlimit"), shell="/bin/sh")


def python_paths(python: Path) -> list[Path]:
    """What running `python` needs to read: its virtual environment and its Python install."""
    paths = []
    venv = python.parent.parent
    if (venv / "pyvenv.cfg").is_file():
        paths.append(venv)
    paths.append(python.resolve().parent.parent)
    return paths


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in _SYSTEM_DIRS:
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", str(path.readlink()), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for name in _SYSTEM_ETC:
        path = Path("/etc") / name
        if path.exists():
            args += ["--ro-bind", str(path), str(path)]
    return args


def _identity_files(folder: Path, home: Path) -> list[str]:
    """A passwd and group naming only the sandbox's user, so `getpass` and `~` resolve."""
    passwd, group = folder / "passwd", folder / "group"
    passwd.write_text(
        f"{SANDBOX_USER}:x:{SANDBOX_UID}:{SANDBOX_UID}::{home}:/bin/sh\n", encoding="utf-8"
    )
    group.write_text(f"{SANDBOX_USER}:x:{SANDBOX_UID}:\n", encoding="utf-8")
    return ["--ro-bind", str(passwd), "/etc/passwd", "--ro-bind", str(group), "/etc/group"]


def _folders(folders: Sequence[Path], what: str) -> list[str]:
    """The folders resolved, unique, each parent before its children.

    Raises ValueError for one that does not exist (a readable path may be a file).
    """
    resolved = set()
    for folder in folders:
        path = folder.resolve()
        if what == "writable" and not path.is_dir():
            raise ValueError(f"writable folder {folder} is not an existing directory")
        if not path.exists():
            raise ValueError(f"readable path {folder} does not exist")
        resolved.add(str(path))
    return sorted(resolved)


def _wrap(
    tools: _Tools,
    limits: _Limits,
    cgroup: SandboxCgroup | None,
    view: Sequence[str],
    cwd: Path,
    status_fd: int,
) -> list[str]:
    """The argv prefix that joins the cgroup, sets the rlimits and starts bwrap."""
    join = []
    if cgroup is not None:
        files = [str(p) for p in cgroup.procs_files]
        join = [tools.shell, "-c", _JOIN_CGROUP, "cra-sandbox-join", str(len(files)), *files]
    # bwrap's --new-session starts a scheduling group at niceness 0: the command's group gets
    # its caller's niceness back (a job's tests stay below the console).
    inner = session_niceness_prefix(niceness())
    if cgroup is None:
        inner += [tools.prlimit, f"--nproc={limits.max_processes}", "--"]
    size = str(limits.memory_mb * 1024 * 1024)
    return [
        *join,
        tools.prlimit,
        f"--as={limits.memory_mb * 1024 * 1024}",
        f"--cpu={max(1, math.ceil(limits.timeout_s))}",
        f"--fsize={limits.max_file_mb * 1024 * 1024}",
        "--core=0",
        "--",
        tools.bwrap,
        *BWRAP_FLAGS,
        "--json-status-fd",
        str(status_fd),
        *_system_binds(),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--size",
        size,
        "--tmpfs",
        "/tmp",
        "--size",
        size,
        "--tmpfs",
        "/dev/shm",
        *view,
        "--remount-ro",
        "/",
        "--chdir",
        str(cwd),
        "--",
        *inner,
    ]


class _TailReader(threading.Thread):
    """Drains a pipe so the command never blocks on output, keeping only the last bytes."""

    def __init__(self, fd: int, keep: int = OUTPUT_TAIL_BYTES) -> None:
        super().__init__(daemon=True)
        self._fd = fd
        self._keep = keep
        self._tail = bytearray()
        self.truncated = False

    def run(self) -> None:
        while chunk := os.read(self._fd, _READ_CHUNK):
            self._tail += chunk
            if len(self._tail) > self._keep:
                del self._tail[: -self._keep]
                self.truncated = True

    def text(self) -> str:
        return self._tail.decode("utf-8", "replace")


def _exit_code(status: str) -> int | None:
    """The command's exit code from bwrap's status stream; None when it never ran to the end."""
    decoder = json.JSONDecoder()
    position, code = 0, None
    while (position := _skip_space(status, position)) < len(status):
        try:
            record, position = decoder.raw_decode(status, position)
        except json.JSONDecodeError:
            return None
        if isinstance(record, dict) and isinstance(record.get("exit-code"), int):
            code = record["exit-code"]
    return code


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


@contextlib.contextmanager
def _totals(limits: _Limits) -> Iterator[SandboxCgroup | None]:
    """The sandbox's cgroup, or None where the operator accepted per-process limits."""
    if os.environ.get(TOTALS_ENV) == PER_PROCESS:
        yield None
        return
    try:
        with sandbox_cgroup(limits.memory_mb, limits.max_processes) as cgroup:
            yield cgroup
    except CgroupUnavailable as exc:
        raise _unavailable(f"no cgroup can bound the sandbox's totals ({exc})") from exc


def _launch(
    tools: _Tools,
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    limits: _Limits,
    view: Sequence[str],
    pass_fds: Sequence[int] = (),
) -> SandboxResult:
    """Run `argv` sandboxed; raises _SetupFailed when the sandbox did not set up."""
    with _totals(limits) as cgroup:
        status_r, status_w = os.pipe()
        try:
            started = time.monotonic()
            try:
                proc = subprocess.Popen(
                    [*_wrap(tools, limits, cgroup, view, cwd, status_w), *argv],
                    cwd=cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                    pass_fds=(status_w, *pass_fds),
                )
            finally:
                os.close(status_w)
            status = _TailReader(status_r)
            status.start()
            returncode, stdout, stderr, timed_out = _wait(proc, limits, cgroup)
            duration = time.monotonic() - started
            status.join()
        finally:
            os.close(status_r)
        hit = cgroup.limits_hit() if cgroup is not None else ()
    code = _exit_code(status.text())
    if code is None and not timed_out:
        raise _SetupFailed(f"the sandbox setup failed (exit {returncode}): {stderr.text().strip()}")
    return SandboxResult(
        returncode=returncode if code is None else code,
        stdout=stdout.text(),
        stdout_truncated=stdout.truncated,
        stderr=stderr.text(),
        timed_out=timed_out,
        duration_s=duration,
        limits_hit=hit,
    )


def _exits_within(proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Whether `proc` ends within `timeout_s`; woken by a pidfd, so no polling delay is added."""
    pidfd = os.pidfd_open(proc.pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(math.ceil(timeout_s * 1000)))
    finally:
        os.close(pidfd)


def _wait(
    proc: subprocess.Popen[bytes], limits: _Limits, cgroup: SandboxCgroup | None
) -> tuple[int, _TailReader, _TailReader, bool]:
    """Drain `proc`'s output until it ends or its time is up, then kill the whole sandbox."""
    assert proc.stdout is not None and proc.stderr is not None
    readers = [
        _TailReader(proc.stdout.fileno(), limits.output_tail_bytes),
        _TailReader(proc.stderr.fileno()),
    ]
    for reader in readers:
        reader.start()
    timed_out = not _exits_within(proc, limits.timeout_s)
    if timed_out:
        kill_group(proc.pid)
        if cgroup is not None:
            cgroup.kill()
    proc.wait()
    for reader in readers:
        reader.join()
    proc.stdout.close()
    proc.stderr.close()
    return proc.returncode, readers[0], readers[1], timed_out


_PROBE_SCRIPT = (
    'cat /proc/self/net/dev > "$1/net" && grep "^CapEff:" /proc/self/status > "$1/caps" '
    '&& { (: > "$2/outside") 2>/dev/null; true; } '
    "&& test ! -e /etc/shadow && test ! -e /home && test ! -e /run && test ! -e /var "
    '|| { echo "isolation check failed" >&2; exit 3; }'
)


@functools.cache
def _probe(tools: _Tools) -> str | None:
    """None when the whole chain isolates as documented, else why not; run once per tool set."""
    with tempfile.TemporaryDirectory(prefix="cra-sandbox-probe-") as root:
        inside = Path(root) / "inside"
        inside.mkdir()
        limits = _Limits(_PROBE_TIMEOUT_S, _PROBE_MEMORY_MB, MAX_PROCESSES, MAX_FILE_MB)
        try:
            with _view(inside, [], [inside]) as (_, view):
                result = _launch(
                    tools,
                    ["/bin/sh", "-c", _PROBE_SCRIPT, "probe", str(inside), root],
                    inside,
                    {"PATH": SYSTEM_PATH, "LANG": "C.UTF-8"},
                    limits,
                    view,
                )
        except _SetupFailed as exc:
            return str(exc)
        return _probe_verdict(result, inside, Path(root) / "outside")


def _probe_verdict(result: SandboxResult, inside: Path, outside: Path) -> str | None:
    if result.timed_out:
        return f"the sandbox probe did not finish in {_PROBE_TIMEOUT_S:g}s"
    if outside.exists():
        return "a write outside the writable folders went through"
    if result.returncode != 0:
        return f"the sandbox probe failed (exit {result.returncode}): {result.stderr.strip()}"
    net = (inside / "net").read_text(encoding="utf-8")
    interfaces = {line.split(":", 1)[0].strip() for line in net.splitlines() if ":" in line}
    if interfaces != {"lo"}:
        return f"the new network namespace shows interfaces {sorted(interfaces)}, expected only lo"
    caps = (inside / "caps").read_text(encoding="utf-8").split()
    if int(caps[1], 16) != 0:
        return f"the sandboxed command kept capabilities {caps[1]}"
    return None


def _checked_tools() -> _Tools:
    """The tools, once a probe has shown they isolate; raises CraError when they do not."""
    tools = _find_tools()
    problem = _probe(tools)
    if problem is not None:
        raise _unavailable(problem)
    return tools


def check_isolation() -> None:
    """Refuse (CraError, saying what is missing) unless the sandbox's tools are here and a probe
    shows they isolate: what `cra doctor` asks before a night."""
    _checked_tools()


@contextlib.contextmanager
def _view(
    tmp_root: Path | None, readable: Sequence[Path], writable: Sequence[Path]
) -> Iterator[tuple[Path, list[str]]]:
    """A throwaway HOME (with tmp/ inside) and the bwrap arguments for the filesystem view.

    Read-only paths are bound before writable ones, so a writable folder inside a read-only
    one stays writable; both are resolved and bound at their own paths.
    """
    with tempfile.TemporaryDirectory(prefix="cra-sandbox-", dir=tmp_root) as throwaway:
        home = Path(throwaway) / "home"
        etc = Path(throwaway) / "etc"
        (home / "tmp").mkdir(parents=True)
        etc.mkdir()
        args = _identity_files(etc, home)
        for path in _folders(readable, "readable"):
            args += ["--ro-bind", path, path]
        for path in _folders([home, *writable], "writable"):
            args += ["--bind", path, path]
        yield home, args


def sandbox_env(home: Path, env: Mapping[str, str], extra_path: Sequence[Path]) -> dict[str, str]:
    """The whole environment a sandboxed command sees; nothing comes from the operator's."""
    if clash := sorted(_RESERVED_ENV & env.keys()):
        raise ValueError(f"the sandbox sets {', '.join(clash)} itself; pass extra_path instead")
    path = os.pathsep.join([*(str(p) for p in extra_path), SYSTEM_PATH])
    return {
        "PATH": path,
        "HOME": str(home),
        "TMPDIR": str(home / "tmp"),
        "LANG": "C.UTF-8",
        **env,
    }


def run_sandboxed(
    argv: Sequence[str],
    cwd: Path,
    *,
    timeout_s: float,
    memory_mb: int,
    env: Mapping[str, str],
    extra_path: Sequence[Path] = (),
    tmp_root: Path | None = None,
    readable: Sequence[Path] = (),
    writable: Sequence[Path] = (),
    pass_fds: Sequence[int] = (),
    max_processes: int = MAX_PROCESSES,
    max_file_mb: int = MAX_FILE_MB,
    stdout_tail_bytes: int = OUTPUT_TAIL_BYTES,
) -> SandboxResult:
    """Run `argv` in `cwd` isolated (see the module docstring) and return how it ended.

    `env` adds variables to the scrubbed environment; `extra_path` folders come first on PATH
    (a virtual environment's bin/, for instance), and must be readable (`python_paths` gives
    what an interpreter needs); only the last `stdout_tail_bytes` of stdout are kept. The
    throwaway HOME/TMPDIR folder is made under `tmp_root` (the system temp folder when None)
    and removed afterwards. The command sees only the system,
    `readable` (read-only), and `cwd`, that folder and the existing `writable` folders.
    """
    if not argv:
        raise ValueError("run_sandboxed needs a command")
    tools = _checked_tools()
    limits = _Limits(timeout_s, memory_mb, max_processes, max_file_mb, stdout_tail_bytes)
    with _view(tmp_root, readable, [cwd, *writable]) as (home, view):
        try:
            return _launch(
                tools,
                argv,
                cwd,
                sandbox_env(home, env, extra_path),
                limits,
                view,
                pass_fds,
            )
        except _SetupFailed as exc:
            raise _unavailable(str(exc)) from exc
