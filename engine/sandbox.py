"""Run untrusted repository code: no network, bounded memory, CPU and wall time, no secrets.

Every command that executes code from a repo package (the validation dry run now, the harness's
test runs later) goes through `run_sandboxed`. The command is wrapped, outermost first, in:

- `setpriv --pdeathsig KILL`: the command dies if the console dies, instead of running on
  orphaned (the signal is kept across the execs below; `unshare --kill-child` passes it on).
- `prlimit`: address-space (`memory_mb`), CPU-time and core-dump limits, inherited by every
  process the command starts. Limits are set by this exec wrapper rather than in `preexec_fn`,
  which is unsafe in a process with threads (validation runs in a console worker thread).
- `unshare --net --map-root-user --pid --fork --kill-child`: a new network namespace in which no
  interface is up, not even loopback, so every connect fails (ENETUNREACH); and a new PID
  namespace, so every process the command starts dies with it, `setsid` daemons included.
- `/bin/sh` as the PID namespace's init, running the command as an ordinary child: the kernel
  ignores signals without a handler sent to PID 1, which would change how the command dies.
  A command killed by signal N therefore exits with 128+N, as in a shell.

The command runs in its own session; on timeout the whole process group is killed. Its
environment holds only PATH, HOME and TMPDIR (a throwaway folder), LANG and the keys the caller
passes; stdin is /dev/null; only the last `OUTPUT_TAIL_BYTES` of each output stream are kept.
If network isolation cannot be set up, `run_sandboxed` raises instead of running unisolated.

Known limits: the file system is shared (a command can read what the operator's user can read
and reach Unix sockets on disk); run the console as an unprivileged user.
"""

import math
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from engine.errors import CraError

OUTPUT_TAIL_BYTES = 64 * 1024
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
UNSHARE_FLAGS = ("--net", "--map-root-user", "--pid", "--fork", "--kill-child")
_INIT = ("/bin/sh", "-c", '"$@" & wait $!', "sandbox-init")
_RESERVED_ENV = frozenset({"PATH", "HOME", "TMPDIR", "LANG"})
_READ_CHUNK = 64 * 1024
_PROBE_TIMEOUT_S = 30.0


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


def _unavailable(reason: str) -> CraError:
    return CraError(
        f"network isolation is unavailable: {reason}; untrusted repository code is never run "
        "without it (needs util-linux `setpriv`, `unshare` and `prlimit`, and user namespaces "
        "enabled: sysctl user.max_user_namespaces > 0, and kernel.unprivileged_userns_clone=1 "
        "where present)"
    )


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise _unavailable(f"`{name}` is not on PATH")
    return found


def _probe(unshare: str) -> str | None:
    """None when `unshare` gives a namespace whose only interface is loopback, else why not."""
    argv = [unshare, *UNSHARE_FLAGS, "--", "/bin/sh", "-c", "cat /proc/self/net/dev"]
    try:
        result = subprocess.run(
            argv,
            env={"PATH": SYSTEM_PATH, "LANG": "C.UTF-8"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return f"`{unshare} {' '.join(UNSHARE_FLAGS)}` did not finish in {_PROBE_TIMEOUT_S:g}s"
    if result.returncode != 0:
        return f"`{unshare} {' '.join(UNSHARE_FLAGS)}` failed: {result.stderr.strip()}"
    interfaces = {
        line.split(":", 1)[0].strip() for line in result.stdout.splitlines() if ":" in line
    }
    if interfaces != {"lo"}:
        return f"the new network namespace shows interfaces {sorted(interfaces)}, expected only lo"
    return None


def isolation_prefix(timeout_s: float, memory_mb: int) -> list[str]:
    """The argv prefix applying limits and namespaces; raises CraError when unavailable."""
    unshare = _tool("unshare")
    prlimit = _tool("prlimit")
    setpriv = _tool("setpriv")
    problem = _probe(unshare)
    if problem is not None:
        raise _unavailable(problem)
    memory_bytes = memory_mb * 1024 * 1024
    cpu_s = max(1, math.ceil(timeout_s))
    return [
        setpriv,
        "--pdeathsig",
        "KILL",
        "--",
        prlimit,
        f"--as={memory_bytes}",
        f"--cpu={cpu_s}",
        "--core=0",
        "--",
        unshare,
        *UNSHARE_FLAGS,
        "--",
        *_INIT,
    ]


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


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return


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
) -> SandboxResult:
    """Run `argv` in `cwd` isolated (see the module docstring) and return how it ended.

    `env` adds variables to the scrubbed environment; `extra_path` folders come first on PATH
    (a virtual environment's bin/, for instance). The throwaway HOME/TMPDIR folder is made under
    `tmp_root` (the system temp folder when None) and removed afterwards.
    """
    if not argv:
        raise ValueError("run_sandboxed needs a command")
    prefix = isolation_prefix(timeout_s, memory_mb)
    with tempfile.TemporaryDirectory(prefix="cra-sandbox-", dir=tmp_root) as throwaway:
        home = Path(throwaway)
        (home / "tmp").mkdir()
        started = time.monotonic()
        proc = subprocess.Popen(
            [*prefix, *argv],
            cwd=cwd,
            env=sandbox_env(home, env, extra_path),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert proc.stdout is not None and proc.stderr is not None
        readers = [_TailReader(proc.stdout.fileno()), _TailReader(proc.stderr.fileno())]
        for reader in readers:
            reader.start()
        try:
            proc.wait(timeout=timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.wait()
            timed_out = True
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
