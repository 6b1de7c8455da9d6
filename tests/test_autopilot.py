"""The autopilot: its window, its policy, its one pending request surviving a restart, freeing
the GPU, and a whole night on the demo's tiny model with a fake clock (a run stopped at a
checkpoint when the window closes, resumed the next night, evaluated, gated and promoted).

The clock is the one thing faked: training, evaluation and the gate are the real jobs, the
servers' port a real socket."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import tomli_w
from click.testing import CliRunner

from app.cli import cli
from engine.adapters.activation import resolve
from engine.core.locks import try_lock
from engine.core.night_events import night_events, record_event
from engine.core.workspace import Workspace
from engine.demo.loop import reviewed_stage
from engine.demo.workspace import prepare_demo
from engine.reports.morning import morning_report, report_text
from engine.runners.autopilot import (
    PENDING_FILE,
    Autopilot,
    AutopilotError,
    Request,
    autopilot_status,
    window_bounds,
)
from engine.serving.command import server_url
from engine.serving.hold import current_hold
from engine.serving.status import serving_status
from engine.serving.supervisor import supervisor_running
from engine.training.runs import run_row

NIGHT = datetime(2026, 12, 7, 1, 50).astimezone()


class Clock:
    """A local clock the test moves."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def at(self, hour: int, minute: int, days: int = 0) -> None:
        day = NIGHT + timedelta(days=days)
        self.now = day.replace(hour=hour, minute=minute)


def _policy(root: Path, **policy: object) -> Workspace:
    path = root / "cra.toml"
    config = tomllib.loads(path.read_text()) if path.exists() else {}
    config["autopilot"] = {"enabled": True, "stages": ["scope"], **policy}
    path.write_text(tomli_w.dumps(config))
    return Workspace.open(root)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    root = tmp_path / "ws"
    Workspace.open(root, create=True)
    (root / "cra.toml").write_text(
        f'[serving]\nbase_url = "http://127.0.0.1:{_free_port()}"\n'
        '[serving.bases]\nreasoning = "models/reasoning"\n'
    )
    return _policy(root, window="23:00-05:00", min_new_examples=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_window_may_wrap_midnight() -> None:
    late = datetime(2026, 12, 6, 23, 30).astimezone()
    opens, closes = window_bounds("23:00-05:00", late) or (None, None)
    assert (opens.hour, closes.hour, closes.day - opens.day) == (23, 5, 1)
    early = datetime(2026, 12, 7, 4, 59).astimezone()
    assert window_bounds("23:00-05:00", early) == (opens, closes)
    assert window_bounds("23:00-05:00", datetime(2026, 12, 7, 5, 0).astimezone()) is None
    with pytest.raises(AutopilotError, match=r"\[autopilot\] window '2-3': not HH:MM-HH:MM"):
        window_bounds("2-3", late)


def test_nothing_ready_means_nothing_is_done(ws: Workspace) -> None:
    clock = Clock(datetime(2026, 12, 6, 23, 30).astimezone())
    pilot = Autopilot(ws, clock, lambda line: None)
    pilot.tick()
    assert pilot.pending() is None and night_events(ws, "autopilot") == []
    assert autopilot_status(ws) == (
        "autopilot: not running (start `cra autopilot`); nothing pending; window 23:00-05:00, scope"
    )


def test_a_stage_trained_within_the_cooldown_waits(ws: Workspace) -> None:
    clock = Clock(datetime(2026, 12, 6, 23, 30).astimezone())
    pilot = Autopilot(ws, clock, lambda line: None)
    earlier = Request(
        stage="scope", requested_at=(clock.now - timedelta(hours=3)).isoformat(), step="curate"
    )
    record_event(ws, "autopilot", "requested", "scope", earlier.model_dump())
    assert pilot._cooling("scope", clock.now)
    clock.now += timedelta(hours=18)
    assert not pilot._cooling("scope", clock.now)
    assert not pilot._cooling("precision", clock.now)


def test_a_pending_request_is_picked_up_after_a_restart_and_a_server_that_stays_up_fails_it(
    ws: Workspace,
) -> None:
    """The request was freeing the GPU when the autopilot stopped. A new autopilot picks it up,
    holds serving; the server on the base's port keeps answering (nothing supervises it), so
    after `server_stop_timeout_s` the request fails, says why, and the hold is lifted."""
    clock = Clock(datetime(2026, 12, 6, 23, 30).astimezone())
    request = Request(
        stage="scope", requested_at=clock.now.isoformat(), step="free_gpu", dataset_id="scope-d1"
    )
    (ws.root / PENDING_FILE).write_text(request.model_dump_json())
    url = server_url(ws, "reasoning")
    with socket.socket() as server:
        server.bind(("127.0.0.1", int(url.rsplit(":", 1)[1])))
        server.listen()
        pilot = Autopilot(ws, clock, lambda line: None)
        pilot.tick()
        assert current_hold(ws) is not None and current_hold(ws).holder == "autopilot"
        assert pilot.pending().step == "free_gpu"
        assert autopilot_status(ws).endswith("freeing the GPU for scope")
        clock.now += timedelta(seconds=301)
        Autopilot(ws, clock, lambda line: None).tick()
    assert current_hold(ws) is None
    assert not (ws.root / PENDING_FILE).exists()
    events = [(event.kind, event.detail) for event in night_events(ws, "autopilot")]
    assert events[0] == ("holding serving", "stopping the servers to free the GPU")
    assert events[1][0] == "failed"
    assert events[1][1].startswith(f"scope at free_gpu: the server at {url} still answers 300s")


def test_a_damaged_pending_file_is_named_not_ignored(ws: Workspace) -> None:
    (ws.root / PENDING_FILE).write_text('{"stage": "scope"}')
    with pytest.raises(AutopilotError, match="autopilot.pending is not an autopilot request"):
        Autopilot(ws).tick()
    assert "is not an autopilot request" in autopilot_status(ws)


def test_the_command_refuses_a_disabled_policy_and_a_second_autopilot(ws: Workspace) -> None:
    runner = CliRunner()
    off = _policy(ws.root, enabled=False)
    result = runner.invoke(cli, ["--workspace", str(off.root), "autopilot"])
    assert result.exit_code == 1 and "[autopilot] enabled is false" in result.stderr
    result = runner.invoke(cli, ["--workspace", str(off.root), "autopilot", "--status"])
    assert (result.exit_code, result.stdout) == (
        0,
        "autopilot: off ([autopilot] enabled = false)\n",
    )
    on = _policy(ws.root, window="23:00-05:00")
    lock = on.root / "locks" / "autopilot.lock"
    lock.parent.mkdir(exist_ok=True)
    fd = try_lock(lock)
    try:
        result = runner.invoke(cli, ["--workspace", str(on.root), "autopilot"])
        assert result.exit_code == 1 and "another autopilot runs" in result.stderr
        assert autopilot_status(on).startswith("autopilot: running;")
    finally:
        os.close(fd)


# -- a whole night on the demo's tiny model -----------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """The demo workspace after a day's work: its package approved, the gold campaign run,
    scope's round spot-checked, its eval set frozen. Scope checkpoints every 25 steps."""
    root = tmp_path_factory.mktemp("night") / "demo"
    ws, drive = prepare_demo(root)
    reviewed_stage(ws, drive, lambda line: None)
    config = tomllib.loads((root / "cra.toml").read_text())
    config["training"]["hyper"]["scope"]["save_steps"] = 25
    (root / "cra.toml").write_text(tomli_w.dumps(config))
    yield _policy(root, window="02:00-06:00", min_new_examples=10, may_promote=True, poll_s=0.2)


def _step(pilot: Autopilot) -> str | None:
    request = pilot.pending()
    return None if request is None else request.step


def _until(pilot: Autopilot, done: Callable[[], bool], what: str, limit_s: float = 600) -> None:
    deadline = time.monotonic() + limit_s
    while not done():
        assert time.monotonic() < deadline, f"{what}: {autopilot_status(pilot.ws)}"
        pilot.tick()
        time.sleep(0.2)


def _serving(ws: Workspace) -> subprocess.Popen[bytes]:
    """`cra serve --launch --cpu` beside the autopilot, as on the GPU machine, once it answers."""
    cra = str(Path(sys.executable).parent / "cra")
    supervisor = subprocess.Popen(
        [cra, "--workspace", str(ws.root), "serve", "--launch", "--cpu"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.monotonic() + 120
    while not all(status.running for status in serving_status(ws)):
        assert supervisor.poll() is None, "the supervisor exited"
        assert time.monotonic() < deadline, "the servers did not answer"
        time.sleep(0.2)
    return supervisor


@pytest.mark.slow
def test_a_night_stopped_by_the_window_resumes_the_next_night_and_promotes(
    demo: Workspace,
) -> None:
    """With `cra serve --launch` supervising the servers: they stop while the autopilot trains
    and come back after, and the version it promoted ends up loaded on its base's server."""
    ws = demo
    supervisor = _serving(ws)
    try:
        _night(ws)
        deadline = time.monotonic() + 120
        while serving_status(ws)[0].loaded != ["scope-v1"]:
            assert time.monotonic() < deadline, serving_status(ws)
            time.sleep(0.5)
    finally:
        supervisor.send_signal(signal.SIGTERM)
        supervisor.wait(timeout=60)
    kinds = [event.kind for event in night_events(ws, "serve")]
    assert kinds[:3] == ["supervisor", "started", "started"]
    assert kinds.count("held") == 2 and kinds.count("resumed") == 2


def _night(ws: Workspace) -> None:
    said: list[str] = []
    clock = Clock(NIGHT)
    pilot = Autopilot(ws, clock, said.append)
    pilot.tick()
    assert pilot.pending() is None, "nothing happens before the window opens"

    clock.at(2, 0)
    pilot.tick()
    assert _step(pilot) == "free_gpu", "the servers still answer right after the hold"
    _until(pilot, lambda: _step(pilot) != "free_gpu", "the servers to stop for training")
    request = pilot.pending()
    assert request is not None and request.step == "train", night_events(ws, "autopilot")
    assert request.run_id is not None
    assert current_hold(ws) is not None, "serving is held while it trains"
    assert not any(status.running for status in serving_status(ws))
    run_id = request.run_id

    _until(pilot, lambda: (run_row(ws, run_id).step or 0) >= 25, "the first checkpoint")
    clock.at(5, 50)
    _until(pilot, lambda: run_row(ws, run_id).status == "stopped", "the stop for the night")
    pilot.tick()
    assert pilot.pending().step == "free_gpu" and current_hold(ws) is None
    stopped_at = run_row(ws, run_id).step
    if supervisor_running(ws):
        # The day between the nights: the supervisor has seen the hold lifted and serves again.
        deadline = time.monotonic() + 120
        while not all(status.running for status in serving_status(ws)):
            assert time.monotonic() < deadline, "the servers did not come back for the day"
            time.sleep(0.2)

    clock.at(1, 59, days=1)
    pilot = Autopilot(ws, clock, said.append)  # a restart between the nights
    pilot.tick()
    assert pilot.pending().step == "free_gpu" and run_row(ws, run_id).status == "stopped"
    clock.at(2, 0, days=1)
    _until(pilot, lambda: pilot.pending() is None, "the night's request to end")

    run = run_row(ws, run_id)
    assert run.status == "done" and run.step == 200 and stopped_at < 200
    assert resolve(ws, "scope") == run.adapter_name == "scope-v1"
    assert current_hold(ws) is None
    kinds = [event.kind for event in night_events(ws, "autopilot")]
    assert kinds == [
        "requested",
        "curated",
        "holding serving",
        "training",
        "stopping",
        "serving resumes",
        "holding serving",
        "training",
        "serving resumes",
        "evaluating",
        "promoted",
    ]
    details = {event.kind: event.detail for event in night_events(ws, "autopilot")}
    assert details["promoted"].startswith("scope-v1 (pass against base)")
    assert "resumed from its checkpoint" in night_events(ws, "autopilot")[7].detail
    since = NIGHT - timedelta(days=1)
    text = report_text(morning_report(ws, since.astimezone()), since.astimezone())
    assert "What the autopilot did · 1 request, 1 promoted, 0 failed" in text
    assert "promoted: scope-v1 (pass against base)" in text
    assert any("stopping: run" in line and "resumes next night" in line for line in said)
    assert json.loads(night_events(ws, "autopilot")[0].data_json or "{}")["stage"] == "scope"
