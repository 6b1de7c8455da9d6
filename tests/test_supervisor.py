"""The serving supervisor: real processes standing in for the servers (each a Python process
that sleeps, as a server that does not answer requests), killed for real; the supervisor's
steps are driven one at a time, then its run loop in a thread.

What `cra serve --launch --cpu` does with the real stand-in (a crash, the restart with the
active version loaded) is `tests/test_cpu_server.py`'s."""

import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import cli
from engine.core.jobs import TRAINING_KIND, process_start_time
from engine.core.night_events import night_events
from engine.core.workspace import Workspace
from engine.serving.command import ServeCommand, free_base_port
from engine.serving.hold import current_hold, hold_serving, release_serving
from engine.serving.started import running_start, start_record
from engine.serving.supervisor import (
    Supervisor,
    SupervisorError,
    serve_log,
    supervisor_running,
)

SERVER = "import sys, time; print('serving', sys.argv[1], flush=True); time.sleep(600)"


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace.open(tmp_path / "ws", create=True)


class Commands:
    """Two servers; each start asks again, and `adapters` says what is active by then."""

    def __init__(self) -> None:
        self.adapters: list[str] = []
        self.asked = 0

    def __call__(self, ws: Workspace) -> list[ServeCommand]:
        self.asked += 1
        return [
            ServeCommand(
                base=base,
                url=f"http://127.0.0.1:{port}",
                argv=[sys.executable, "-c", SERVER, base],
                env={},
                adapters=list(self.adapters),
            )
            for base, port in (("reasoning", 8000), ("coding", 8001))
        ]


@pytest.fixture
def supervisor(ws: Workspace) -> Iterator[tuple[Supervisor, Commands, list[str]]]:
    said: list[str] = []
    commands = Commands()
    sup = Supervisor(ws, commands, said.append, poll_s=0.05, max_crashes=3, crash_window_s=600)
    try:
        yield sup, commands, said
    finally:
        sup.stop_all("the test ended")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _kill(sup: Supervisor, base: str) -> int:
    """SIGKILL the base's server once it has said it serves."""
    log = serve_log(sup.ws, base)
    deadline = time.monotonic() + 30
    while f"serving {base}" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    process = sup.servers[base].process
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return process.pid


def test_a_crashed_server_is_started_again_with_the_versions_active_now(
    ws: Workspace, supervisor: tuple[Supervisor, Commands, list[str]]
) -> None:
    sup, commands, said = supervisor
    sup.step()
    first = sup.servers["reasoning"].process.pid
    assert _alive(first) and _alive(sup.servers["coding"].process.pid)
    sup.step()
    sup.step()
    # A command is built only to start a server: building one hashes the base's files.
    assert commands.asked == 1
    commands.adapters = ["scope-v2"]
    _kill(sup, "reasoning")
    sup.step()
    again = sup.servers["reasoning"].process.pid
    assert again != first and _alive(again) and commands.asked == 2
    events = [(event.kind, event.detail) for event in night_events(ws, "serve")]
    assert [kind for kind, _ in events] == ["started", "started", "crashed", "restarted"]
    assert events[2][1] == "base reasoning exited with status -9"
    assert events[3][1].endswith("with scope-v2")
    crash = night_events(ws, "serve")[2].data
    assert crash["tail"] == "serving reasoning" and crash["log"] == str(serve_log(ws, "reasoning"))
    assert "crashed: base reasoning exited with status -9" in said


def test_a_base_that_keeps_crashing_is_given_up_and_everything_stops(
    ws: Workspace, supervisor: tuple[Supervisor, Commands, list[str]]
) -> None:
    sup, _, _ = supervisor
    sup.step()
    coding = sup.servers["coding"].process.pid
    _kill(sup, "reasoning")
    sup.step()
    _kill(sup, "reasoning")
    sup.step()
    _kill(sup, "reasoning")
    with pytest.raises(
        SupervisorError, match="its 3th crash within 600s; every server was stopped"
    ):
        try:
            sup.step()
        finally:
            sup.stop_all("gave up")
    assert not _alive(coding)
    assert [e.kind for e in night_events(ws, "serve")][-1] == "gave up"


def test_a_hold_stops_the_servers_and_its_release_starts_them_again(
    ws: Workspace, supervisor: tuple[Supervisor, Commands, list[str]]
) -> None:
    sup, commands, _ = supervisor
    sup.step()
    pids = [server.process.pid for server in sup.servers.values()]
    hold_serving(ws, "autopilot", "training scope")
    sup.step()
    assert sup.servers == {}
    assert not any(_alive(pid) for pid in pids)
    sup.step()
    asked = commands.asked
    assert commands.asked == asked
    commands.adapters = ["scope-v3"]
    assert release_serving(ws) is not None and current_hold(ws) is None
    sup.step()
    assert set(sup.servers) == {"reasoning", "coding"}
    events = [(e.kind, e.detail) for e in night_events(ws, "serve")]
    assert events[2] == (
        "held",
        "servers stopped: serving held by autopilot: training scope",
    )
    assert events[3][0] == "resumed"
    assert events[4][0] == "started" and events[4][1].endswith("with scope-v3")


def test_no_server_runs_while_a_training_run_holds_the_gpu(
    ws: Workspace, supervisor: tuple[Supervisor, Commands, list[str]]
) -> None:
    sup, _, _ = supervisor
    pid = os.getpid()
    ws.db["jobs"].insert(
        {
            "kind": TRAINING_KIND,
            "ref_id": 7,
            "pid": pid,
            "pid_start": process_start_time(pid),
            "status": "running",
            "started_at": "2026-12-06T02:00:00Z",
        }
    )
    sup.step()
    assert sup.servers == {}
    assert [(e.kind, e.detail) for e in night_events(ws, "serve")] == [
        ("held", "servers stopped: training run 7 holds the GPU")
    ]


def test_a_hold_of_another_holder_is_refused_and_a_damaged_one_is_named(ws: Workspace) -> None:
    hold_serving(ws, "autopilot", "training")
    with pytest.raises(Exception, match="serving is held by autopilot"):
        hold_serving(ws, "ana", "maintenance")
    (ws.root / "serving.hold").write_text("not json")
    with pytest.raises(Exception, match="is not a serving hold.*cra serve --release"):
        current_hold(ws)
    result = CliRunner().invoke(cli, ["--workspace", str(ws.root), "serve", "--release"])
    assert result.exit_code == 1 and "is not a serving hold" in result.stderr
    (ws.root / "serving.hold").unlink()
    hold_serving(ws, "autopilot", "training")
    result = CliRunner().invoke(cli, ["--workspace", str(ws.root), "serve", "--release"])
    assert (result.exit_code, result.stdout) == (0, "lifted the hold of autopilot\n")


def test_one_supervisor_per_workspace_and_its_servers_stop_with_it(ws: Workspace) -> None:
    commands = Commands()
    running: list[Supervisor] = []

    def supervise() -> None:
        # The database connection is the thread's own, as it would be the process's own.
        running.append(
            Supervisor(Workspace.open(ws.root), commands, lambda line: None, poll_s=0.05)
        )
        running[0].run()

    thread = threading.Thread(target=supervise)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while (not running or len(running[0].servers) < 2) and time.monotonic() < deadline:
            time.sleep(0.05)
        pids = [server.process.pid for server in running[0].servers.values()]
        assert len(pids) == 2 and supervisor_running(ws)
        second = Supervisor(ws, commands, lambda line: None)
        with pytest.raises(SupervisorError, match="one supervisor per workspace"):
            second.run()
    finally:
        if running:
            running[0].stop()
        thread.join(timeout=60)
    assert not any(_alive(pid) for pid in pids)
    assert not supervisor_running(ws)


ANSWERS_WHEN = """
import json, os, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer
port, flag = int(sys.argv[1]), sys.argv[2]
print("loading", flush=True)
while not os.path.exists(flag):
    time.sleep(0.02)
class Models(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"data": []}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
HTTPServer(("127.0.0.1", port), Models).serve_forever()
"""


def test_servers_on_one_gpu_start_one_at_a_time_and_their_rank_limit_is_recorded(
    ws: Workspace, tmp_path: Path
) -> None:
    """vLLM sizes its cache from the memory free once its model is loaded: the second server on
    a GPU starts only once the first answers. Each server's `--max-lora-rank` is on record
    while it runs, for the loads that come later."""
    port = free_base_port()
    flag = tmp_path / "loaded"

    def commands(ws: Workspace) -> list[ServeCommand]:
        return [
            ServeCommand(
                base=base,
                url=f"http://127.0.0.1:{port + offset}",
                argv=[sys.executable, "-c", ANSWERS_WHEN, str(port + offset), str(flag)],
                env={},
                max_lora_rank=16 * (offset + 1),
                gpu="0",
            )
            for offset, base in enumerate(("reasoning", "coding"))
        ]

    said: list[str] = []
    sup = Supervisor(ws, commands, said.append, poll_s=0.05)
    try:
        sup.step()
        sup.step()
        assert set(sup.servers) == {"reasoning"}
        assert (
            said.count(
                "base coding waits for base reasoning to answer: servers on one GPU start one at a "
                "time (vLLM sizes its cache from the memory free then)"
            )
            == 1
        )
        record = running_start(ws, "reasoning", f"http://127.0.0.1:{port}")
        assert record is not None and record.max_lora_rank == 16
        flag.touch()
        deadline = time.monotonic() + 30
        while "coding" not in sup.servers and time.monotonic() < deadline:
            sup.step()
            time.sleep(0.05)
        assert set(sup.servers) == {"reasoning", "coding"}
        coding = running_start(ws, "coding", f"http://127.0.0.1:{port + 1}")
        assert coding is not None and coding.max_lora_rank == 32
    finally:
        sup.stop_all("the test ended")
    assert not start_record(ws, "reasoning").exists() and not start_record(ws, "coding").exists()


def test_servers_on_different_gpus_start_together(ws: Workspace, tmp_path: Path) -> None:
    port = free_base_port()

    def commands(ws: Workspace) -> list[ServeCommand]:
        return [
            ServeCommand(
                base=base,
                url=f"http://127.0.0.1:{port + offset}",
                argv=[sys.executable, "-c", SERVER, base],
                env={},
                gpu=str(offset),
            )
            for offset, base in enumerate(("reasoning", "coding"))
        ]

    sup = Supervisor(ws, commands, lambda line: None, poll_s=0.05)
    try:
        sup.step()
        assert set(sup.servers) == {"reasoning", "coding"}
    finally:
        sup.stop_all("the test ended")
