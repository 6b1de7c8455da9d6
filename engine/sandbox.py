"""Run untrusted repository code: no network, writes confined, bounded resources, no secrets.

Every command that executes code from a repo package (the validation dry run, the harness's test
runs) goes through `run_sandboxed`. The command is wrapped, outermost first, in:

- `setpriv --pdeathsig KILL`: the command dies if the console dies, instead of running on
  orphaned (the signal is kept across the execs below; `unshare --kill-child` passes it on).
- `prlimit`: address-space (`memory_mb`), CPU-time and core-dump limits, inherited by every
  process the command starts. Limits are set by this exec wrapper rather than in `preexec_fn`,
  which is unsafe in a process with threads (validation runs in a console worker thread).
- `unshare --net --map-root-user --pid --fork --kill-child --mount --mount-proc`: a new network
  namespace in which no interface is up, not even loopback, so every connect fails
  (ENETUNREACH); a new PID namespace, so every process the command starts dies with it, `setsid`
  daemons included, with its own /proc (the console's processes, and their /proc/PID/root, are
  out of sight); and a new mount namespace for the confinement below.
- `_CONFINE`, run by the console's Python as the namespaces' PID 1: it makes every mount read-only
  (one recursive `mount_setattr`, Linux 5.12+, which also reaches overmounted mounts), then
  bind-mounts each writable folder onto itself and makes that bind writable again: the command's
  `cwd`, the throwaway HOME/TMPDIR folder and the caller's `writable` folders. /dev/shm gets a
  private tmpfs of `memory_mb` (POSIX semaphores work; nothing lands in the host's /dev/shm);
  the rest of /dev is read-only, which still lets device files such as /dev/null be written.
  It reports success on a pipe before it execs the rest, so a failed setup raises instead of
  passing for the command's own failure.
- `setpriv --inh-caps=-all --bounding-set=-all --no-new-privs`: the command keeps uid 0 in its
  user namespace but no capability, so it cannot remount anything writable; a nested namespace
  cannot either, as the kernel locks inherited read-only flags.
- `/bin/sh` as PID 1 from here on, running the command as an ordinary child: the kernel ignores
  signals without a handler sent to PID 1, which would change how the command dies. A command
  killed by signal N therefore exits with 128+N, as in a shell.

The command runs in its own session; on timeout the whole process group is killed. Its
environment holds only PATH, HOME and TMPDIR (a throwaway folder), LANG and the keys the caller
passes; stdin is /dev/null; only the last `OUTPUT_TAIL_BYTES` of each output stream are kept.
If any of this cannot be set up, `run_sandboxed` raises instead of running the command. The
first call in a process probes the whole chain once (network, writes inside and outside,
capabilities) and the verdict is kept for the process.

Known limits: reads are not confined (a command can read what the operator's user can read) and
it can connect to Unix sockets on disk; /proc is read-only, so a command cannot map ids in a
nested user namespace. Run the console as an unprivileged user.
"""

import functools
import math
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict

from engine.errors import CraError
from engine.processes import kill_group

OUTPUT_TAIL_BYTES = 64 * 1024
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
UNSHARE_FLAGS = (
    "--net",
    "--map-root-user",
    "--pid",
    "--fork",
    "--kill-child",
    "--mount",
    "--mount-proc",
)
DROP_CAPS_FLAGS = ("--inh-caps=-all", "--bounding-set=-all", "--no-new-privs")
_INIT = ("/bin/sh", "-c", '"$@" & wait $!', "sandbox-init")
_RESERVED_ENV = frozenset({"PATH", "HOME", "TMPDIR", "LANG"})
_READ_CHUNK = 64 * 1024
_PROBE_TIMEOUT_S = 30.0
_PROBE_MEMORY_MB = 512
_CONFINED = b"1"

# argv: READY_FD SHM_MB WRITABLE... -- COMMAND...; WRITABLE are resolved, parents before children.
# It writes _CONFINED to READY_FD once set up. 442 is mount_setattr on every architecture
# (syscalls added after Linux 5.1 share one number).
_CONFINE = r"""
import ctypes, os, sys
MS_NOSUID, MS_NODEV, MS_BIND, MS_REC = 2, 4, 4096, 16384
SYS_MOUNT_SETATTR, AT_FDCWD, AT_RECURSIVE, MOUNT_ATTR_RDONLY = 442, -100, 0x8000, 1
libc = ctypes.CDLL(None, use_errno=True)

class MountAttr(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in ("set", "clr", "propagation", "userns_fd")]

def check(result, what):
    if result != 0:
        sys.exit(f"cra-sandbox: cannot {what}: {os.strerror(ctypes.get_errno())}")

def set_readonly(path, readonly, flags):
    attr = MountAttr(*((MOUNT_ATTR_RDONLY, 0) if readonly else (0, MOUNT_ATTR_RDONLY)), 0, 0)
    call = libc.syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(AT_FDCWD),
                        os.fsencode(path), ctypes.c_uint(flags), ctypes.byref(attr),
                        ctypes.c_size_t(ctypes.sizeof(attr)))
    check(call, f"make {path} {'read-only' if readonly else 'writable'}")

ready_fd, shm_mb, *rest = sys.argv[1:]
end = rest.index("--")
set_readonly("/", True, AT_RECURSIVE)
for path in rest[:end]:
    check(libc.mount(os.fsencode(path), os.fsencode(path), None, MS_BIND | MS_REC, None),
          f"bind-mount {path}")
    set_readonly(path, False, 0)
check(libc.mount(b"tmpfs", b"/dev/shm", b"tmpfs", MS_NOSUID | MS_NODEV,
                 f"size={shm_mb}m,mode=1777".encode()), "mount a tmpfs on /dev/shm")
os.chdir(os.getcwd())
os.write(int(ready_fd), b"1")
os.close(int(ready_fd))
os.execv(rest[end + 1], rest[end + 1:])
"""


class SandboxResult(BaseModel):
    """How a sandboxed command ended, with the tail of each output stream.

    `returncode` is the command's exit status (128+N when killed by signal N); when `timed_out`
    is true the command was killed and `returncode` says nothing about it.
    """

    model_config = ConfigDict(frozen=True)

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool
    duration_s: float


class _SetupFailed(Exception):
    """The confinement failed to set up, so the command never ran; the message says why."""


class _Tools(NamedTuple):
    setpriv: str
    prlimit: str
    unshare: str
    python: str


def _unavailable(reason: str) -> CraError:
    return CraError(
        f"sandbox isolation is unavailable: {reason}; untrusted repository code is never run "
        "without it (needs util-linux `setpriv`, `unshare` and `prlimit`, Linux 5.12 or later, "
        "and user namespaces enabled: sysctl user.max_user_namespaces > 0, and "
        "kernel.unprivileged_userns_clone=1 where present)"
    )


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise _unavailable(f"`{name}` is not on PATH")
    return found


def _find_tools() -> _Tools:
    unshare, prlimit, setpriv = _tool("unshare"), _tool("prlimit"), _tool("setpriv")
    return _Tools(setpriv=setpriv, prlimit=prlimit, unshare=unshare, python=sys.executable)


def _wrap(
    tools: _Tools,
    timeout_s: float,
    memory_mb: int,
    writable: Sequence[str],
    ready_fd: int,
) -> list[str]:
    """The argv prefix applying limits, namespaces and the confinement, unprobed."""
    return [
        tools.setpriv,
        "--pdeathsig",
        "KILL",
        "--",
        tools.prlimit,
        f"--as={memory_mb * 1024 * 1024}",
        f"--cpu={max(1, math.ceil(timeout_s))}",
        "--core=0",
        "--",
        tools.unshare,
        *UNSHARE_FLAGS,
        "--",
        tools.python,
        "-I",
        "-S",
        "-c",
        _CONFINE,
        str(ready_fd),
        str(memory_mb),
        *writable,
        "--",
        tools.setpriv,
        *DROP_CAPS_FLAGS,
        "--",
        *_INIT,
    ]


def _writable_folders(folders: Sequence[Path]) -> list[str]:
    """The folders as the sandbox binds them: resolved, unique, each parent before its children.

    Raises ValueError for a folder that does not exist or is not a directory.
    """
    resolved = set()
    for folder in folders:
        path = folder.resolve()
        if not path.is_dir():
            raise ValueError(f"writable folder {folder} is not an existing directory")
        resolved.add(str(path))
    return sorted(resolved)


class _TailReader(threading.Thread):
    """Drains a pipe so the command never blocks on output, keeping only the last bytes."""

    def __init__(self, fd: int) -> None:
        super().__init__(daemon=True)
        self._fd = fd
        self._tail = bytearray()

    def run(self) -> None:
        while chunk := os.read(self._fd, _READ_CHUNK):
            self._tail += chunk
            if len(self._tail) > OUTPUT_TAIL_BYTES:
                del self._tail[:-OUTPUT_TAIL_BYTES]

    def text(self) -> str:
        return self._tail.decode("utf-8", "replace")


def _launch(
    tools: _Tools,
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    *,
    timeout_s: float,
    memory_mb: int,
    writable: Sequence[str],
) -> SandboxResult:
    """Run `argv` wrapped by `_wrap`; raises _SetupFailed when the confinement did not set up."""
    ready_r, ready_w = os.pipe()
    try:
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                [*_wrap(tools, timeout_s, memory_mb, writable, ready_w), *argv],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                pass_fds=(ready_w,),
            )
        finally:
            os.close(ready_w)
        result = _wait(proc, timeout_s, started)
        if not result.timed_out and os.read(ready_r, len(_CONFINED)) != _CONFINED:
            raise _SetupFailed(
                f"the sandbox setup failed (exit {result.returncode}): {result.stderr.strip()}"
            )
    finally:
        os.close(ready_r)
    return result


def _exits_within(proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Whether `proc` ends within `timeout_s`; woken by a pidfd, so no polling delay is added."""
    pidfd = os.pidfd_open(proc.pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(math.ceil(timeout_s * 1000)))
    finally:
        os.close(pidfd)


def _wait(proc: subprocess.Popen[bytes], timeout_s: float, started: float) -> SandboxResult:
    """Drain `proc`'s output until it ends or `timeout_s` passes, then kill its group."""
    assert proc.stdout is not None and proc.stderr is not None
    readers = [_TailReader(proc.stdout.fileno()), _TailReader(proc.stderr.fileno())]
    for reader in readers:
        reader.start()
    timed_out = not _exits_within(proc, timeout_s)
    if timed_out:
        kill_group(proc.pid)
    proc.wait()
    duration = time.monotonic() - started
    for reader in readers:
        reader.join()
    proc.stdout.close()
    proc.stderr.close()
    return SandboxResult(
        returncode=proc.returncode,
        stdout=readers[0].text(),
        stderr=readers[1].text(),
        timed_out=timed_out,
        duration_s=duration,
    )


_PROBE_SCRIPT = (
    'cat /proc/self/net/dev > "$1/net" && grep "^CapEff:" /proc/self/status > "$1/caps" '
    '&& ! (: > "$2/outside") 2>/dev/null'
)


@functools.cache
def _probe(tools: _Tools) -> str | None:
    """None when the whole chain isolates as documented, else why not; run once per tool set."""
    with tempfile.TemporaryDirectory(prefix="cra-sandbox-probe-") as root:
        inside = Path(root) / "inside"
        inside.mkdir()
        try:
            result = _launch(
                tools,
                ["/bin/sh", "-c", _PROBE_SCRIPT, "probe", str(inside), root],
                inside,
                {"PATH": SYSTEM_PATH, "LANG": "C.UTF-8"},
                timeout_s=_PROBE_TIMEOUT_S,
                memory_mb=_PROBE_MEMORY_MB,
                writable=_writable_folders([inside]),
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
    writable: Sequence[Path] = (),
) -> SandboxResult:
    """Run `argv` in `cwd` isolated (see the module docstring) and return how it ended.

    `env` adds variables to the scrubbed environment; `extra_path` folders come first on PATH
    (a virtual environment's bin/, for instance). The throwaway HOME/TMPDIR folder is made under
    `tmp_root` (the system temp folder when None) and removed afterwards. The command can write
    only in `cwd`, that folder and the existing `writable` folders (a JUnit report's, say).
    """
    if not argv:
        raise ValueError("run_sandboxed needs a command")
    tools = _checked_tools()
    with tempfile.TemporaryDirectory(prefix="cra-sandbox-", dir=tmp_root) as throwaway:
        home = Path(throwaway)
        (home / "tmp").mkdir()
        try:
            return _launch(
                tools,
                argv,
                cwd,
                sandbox_env(home, env, extra_path),
                timeout_s=timeout_s,
                memory_mb=memory_mb,
                writable=_writable_folders([cwd, home, *writable]),
            )
        except _SetupFailed as exc:
            raise _unavailable(str(exc)) from exc
