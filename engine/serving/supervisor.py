"""`cra serve --launch`: one inference server per base, kept up, stopped with the supervisor.

Each server runs in a process group of its own, its output appended to `logs/serve-<base>.log`;
when the supervisor ends (SIGTERM, SIGINT, an error) every group is stopped, so vLLM's own
workers go with their server. A server that exits on its own crashed: the crash is recorded
with its exit status and the end of its log, and the server is started again from a fresh
command, so it comes back with the versions active *now* preloaded. A base that crashes
`max_crashes` times within `crash_window_s` is given up on: everything stops and the supervisor
exits with an error, since a server that cannot stay up needs a person, not a loop.

Servers on one GPU start one at a time: vLLM sizes its KV cache from the memory free once its
model is loaded, so a second server starting beside one still loading would see the first's
memory come and go. A server starts once the one before it on its GPU answers `/v1/models`.

While serving is held (`engine.serving.hold`: the autopilot trains) or a training run holds the
GPU, no server runs: the supervisor stops them and waits, then starts them again once the GPU is
free. Every start, crash, restart, hold and resume is a night event (`engine.core.night_events`)
that the morning report shows. One supervisor per workspace (`locks/serve.lock`).
"""

import os
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.bases.registry import unservable_reason
from engine.core.errors import CraError
from engine.core.file_tail import file_tail
from engine.core.jobs import TRAINING_KIND, live_jobs
from engine.core.locks import lock_held, try_lock
from engine.core.night_events import record_event
from engine.core.stages import BaseModelKind
from engine.core.workspace import LOCKS_DIR, LOGS_DIR, Workspace
from engine.serving.command import ServeCommand, active_adapters, server_url
from engine.serving.hold import current_hold
from engine.serving.started import clear_start, record_start
from engine.serving.vllm_client import ServingError, VllmClient, load_version

LOCK_FILE = "serve.lock"
RECONCILE_TIMEOUT_S = 5.0
ANSWER_TIMEOUT_S = 1.0
STOP_GRACE_S = 30.0
CRASH_TAIL_LINES = 5


class SupervisorError(CraError):
    """The servers cannot be kept up: another supervisor runs, or a base keeps crashing."""


@dataclass
class _Server:
    base: BaseModelKind
    url: str
    gpu: str | None
    process: subprocess.Popen[bytes]
    answered: bool = False
    """Whether it has answered `/v1/models` since it started."""


def serve_log(ws: Workspace, base: str) -> Path:
    return ws.root / LOGS_DIR / f"serve-{base}.log"


def supervisor_running(ws: Workspace) -> bool:
    """Whether a supervisor holds this workspace's serving lock now."""
    return lock_held(ws.root / LOCKS_DIR / LOCK_FILE)


class Supervisor:
    """Keeps `commands(ws)`'s servers up until `stop()` or a signal; see the module docstring.

    `commands` is asked again for each start, so a restarted server gets the active versions
    of that moment. `say` prints a line for the operator at the terminal."""

    def __init__(
        self,
        ws: Workspace,
        commands: Callable[[Workspace], list[ServeCommand]],
        say: Callable[[str], None],
        *,
        poll_s: float = 1.0,
        max_crashes: int = 3,
        crash_window_s: float = 600.0,
        reconcile_s: float = 15.0,
    ) -> None:
        self.ws = ws
        self.commands = commands
        self.say = say
        self.poll_s = poll_s
        self.max_crashes = max_crashes
        self.crash_window_s = crash_window_s
        self.servers: dict[BaseModelKind, _Server] = {}
        self.crashes: dict[str, deque[float]] = {}
        self.paused: str | None = None
        self.bases: list[BaseModelKind] | None = None
        self.reconcile_s = reconcile_s
        self._next_reconcile = 0.0
        self._stopping = False
        self.waiting: tuple[BaseModelKind, BaseModelKind] | None = None
        self.pending: dict[BaseModelKind, ServeCommand] = {}
        """Commands built and not yet started (a server waiting for its turn on the GPU)."""

    def run(self) -> None:
        """Supervise until stopped; every server is stopped on the way out, however it ends."""
        lock_path = self.ws.root / LOCKS_DIR / LOCK_FILE
        fd = try_lock(lock_path)
        if fd is None:
            raise SupervisorError(
                f"another `cra serve --launch` supervises {self.ws.root} (it holds {lock_path}); "
                "one supervisor per workspace"
            )
        try:
            self._event("supervisor", "supervising the servers", {"pid": os.getpid()})
            while not self._stopping:
                self.step()
                time.sleep(self.poll_s)
        finally:
            self.stop_all("the supervisor stopped")
            os.close(fd)

    def stop(self) -> None:
        self._stopping = True

    def step(self) -> None:
        """One look: make way for a hold or a training run, restart what crashed, start what
        is missing."""
        reason = self._pause_reason()
        if reason is not None:
            if self.paused is None:
                self.paused = reason
                self.pending = {}
                self.stop_all(f"paused: {reason}")
                self._event("held", f"servers stopped: {reason}")
            return
        if self.paused is not None:
            self._event("resumed", f"no longer paused ({self.paused}); starting the servers")
            self.paused = None
        if self.bases is None:
            self.pending = {command.base: command for command in self.commands(self.ws)}
            self.bases = list(self.pending)
        for base in self.bases:
            server = self.servers.get(base)
            if server is not None:
                status = server.process.poll()
                if status is None:
                    continue
                del self.servers[base]
                clear_start(self.ws, base)
                self._crashed(base, status)
            # Commands are built only to start a server: building one hashes the base's files.
            # One built while its server waits its turn is kept for the start.
            if base not in self.pending:
                self.pending = {command.base: command for command in self.commands(self.ws)}
            command = self.pending[base]
            starting = self._starting(command)
            if starting is not None:
                if self.waiting != (base, starting):
                    self.waiting = (base, starting)
                    self.say(
                        f"base {base} waits for base {starting} to answer: servers on one GPU "
                        "start one at a time (vLLM sizes its cache from the memory free then)"
                    )
                continue
            self.waiting = None
            del self.pending[base]
            self._start(command, "started" if server is None else "restarted")
        self._load_missing()

    def _starting(self, command: ServeCommand) -> BaseModelKind | None:
        """The base of a server on `command`'s GPU that has not answered yet, if any."""
        if command.gpu is None:
            return None
        for other in self.servers.values():
            if other.base == command.base or other.answered:
                continue
            if other.gpu != command.gpu or other.process.poll() is not None:
                continue
            try:
                VllmClient(other.url, ANSWER_TIMEOUT_S).models()
            except ServingError:
                return other.base
            other.answered = True
        return None

    def _load_missing(self) -> None:
        """Every `reconcile_s`, load on each answering server the active versions it lacks: a
        version promoted while its server was down (or starting) is loaded once it answers."""
        now = time.monotonic()
        if now < self._next_reconcile:
            return
        self._next_reconcile = now + self.reconcile_s
        for base, server in self.servers.items():
            if server.process.poll() is not None:
                continue
            client = VllmClient(server_url(self.ws, base), RECONCILE_TIMEOUT_S)
            try:
                loaded = client.loaded_adapters()
            except ServingError:
                continue
            for version in active_adapters(self.ws, base):
                if version.name in loaded:
                    continue
                if unservable_reason(self.ws, version.name, base, version.base_version_id):
                    continue
                try:
                    load_version(client, self.ws, version)
                except ServingError as exc:
                    self._event("load failed", f"{version.name} on base {base}: {exc}")
                    continue
                self._event("loaded", f"{version.name} on base {base}, active but not loaded")

    def _pause_reason(self) -> str | None:
        hold = current_hold(self.ws)
        if hold is not None:
            return f"serving held by {hold.holder}: {hold.reason}"
        running = live_jobs(self.ws, TRAINING_KIND)
        if running:
            return f"training run {running[0].ref_id} holds the GPU"
        return None

    def _crashed(self, base: BaseModelKind, status: int) -> None:
        """Record the crash; give up (raise) when the base has crashed too often."""
        now = time.monotonic()
        window = self.crashes.setdefault(base, deque())
        window.append(now)
        while window and window[0] < now - self.crash_window_s:
            window.popleft()
        log = serve_log(self.ws, base)
        tail = file_tail(log, CRASH_TAIL_LINES)
        detail = f"base {base} exited with status {status}"
        data: dict[str, object] = {
            "base": base,
            "status": status,
            "log": str(log),
            "tail": tail,
        }
        if len(window) >= self.max_crashes:
            self._event(
                "gave up", f"{detail}: {len(window)} crashes in {self.crash_window_s:g}s", data
            )
            raise SupervisorError(
                f"{detail}, its {len(window)}th crash within {self.crash_window_s:g}s; every "
                f"server was stopped. The end of {log}:\n{tail}"
            )
        self._event("crashed", detail, data)

    def _start(self, command: ServeCommand, kind: str) -> None:
        log = serve_log(self.ws, command.base)
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            process = subprocess.Popen(
                command.argv,
                env={**os.environ, **command.env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.servers[command.base] = _Server(command.base, command.url, command.gpu, process)
        if command.max_lora_rank is not None:
            record_start(self.ws, command.base, command.url, process.pid, command.max_lora_rank)
        loaded = ", ".join(command.adapters) or "no adapters"
        detail = f"base {command.base} at {command.url} (pid {process.pid}), with {loaded}"
        self._event(kind, detail, {"base": command.base, "adapters": command.adapters})
        for note in command.notes:
            self.say(f"note: {note}")

    def stop_all(self, why: str) -> None:
        """Stop every server's process group: SIGTERM, then SIGKILL after `STOP_GRACE_S`."""
        for base in list(self.servers):
            server = self.servers.pop(base)
            _stop_group(server.process)
            clear_start(self.ws, base)
            self.say(f"stopped base {base} ({why})")

    def _event(self, kind: str, detail: str, data: dict[str, object] | None = None) -> None:
        self.say(f"{kind}: {detail}")
        record_event(self.ws, "serve", kind, detail, data)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    for sig, wait_s in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue
    if process.returncode is None:
        process.wait()
