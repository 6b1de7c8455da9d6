"""Promotion and rollback on the database and the running server together: the load before
the flip, a failed load changing nothing, no server running, the gate, a process killed
between the load and the flip (reconciled after), and the serving status.

The server is `tests/fake_vllm.py`, a local HTTP server speaking vLLM's LoRA endpoints.
"""

import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from eval_fixtures import add_version, pass_gate
from fake_vllm import FakeVllm

from app.cli import cli
from engine.adapters.activation import ActivationError, history, resolve
from engine.adapters.switch import promote_version, reconcile_intents, rollback_stage
from engine.serving.status import serving_status
from engine.serving.vllm_client import ServingError
from engine.workspace import Workspace

STAGE = "scope"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _workspace(root: Path, port: int) -> Workspace:
    (root / "models/reasoning").mkdir(parents=True)
    (root / "cra.toml").write_text(
        f'[serving]\nbase_url = "http://127.0.0.1:{port}"\ntimeout_s = 5\n'
        '[serving.bases]\nreasoning = "models/reasoning"\n',
        encoding="utf-8",
    )
    ws = Workspace.open(root)
    for version in (1, 2, 3):
        add_version(ws, STAGE, version)
    return ws


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Workspace, FakeVllm]]:
    base = str(tmp_path / "ws" / "models/reasoning")
    with FakeVllm(base) as fake:
        port = int(fake.url.rsplit(":", 1)[1])
        yield _workspace(tmp_path / "ws", port), fake


def test_promotion_loads_on_the_server_then_flips(served: tuple[Workspace, FakeVllm]) -> None:
    ws, fake = served
    pass_gate(ws, "scope-v1", "base")
    result = promote_version(ws, "scope-v1", operator="ana", reason="better recall")
    assert (result.stage, result.active) == (STAGE, "scope-v1")
    assert result.server == f"scope-v1 loaded on {fake.url}"
    assert fake.loaded == {"scope-v1": str(ws.root / "adapters/scope/v1")}
    assert resolve(ws, STAGE) == "scope-v1"
    assert ws.db["activation_intents"].count == 0
    [status] = serving_status(ws)
    assert (status.running, status.loaded, status.missing) == (True, ["scope-v1"], [])


def test_a_failed_load_leaves_the_active_version_as_it_was(
    served: tuple[Workspace, FakeVllm],
) -> None:
    ws, fake = served
    pass_gate(ws, "scope-v1", "base")
    promote_version(ws, "scope-v1")
    pass_gate(ws, "scope-v2", "scope-v1")
    fake.fail_loads.add("scope-v2")
    with pytest.raises(ServingError, match="Loading lora scope-v2 failed"):
        promote_version(ws, "scope-v2")
    assert resolve(ws, STAGE) == "scope-v1"
    assert [h["action"] for h in history(ws, STAGE)] == ["promote"]
    assert ws.db["activation_intents"].count == 0


def test_with_no_server_running_the_flip_happens_and_says_so(tmp_path: Path) -> None:
    port = _free_port()
    ws = _workspace(tmp_path / "ws", port)
    pass_gate(ws, "scope-v1", "base")
    result = promote_version(ws, "scope-v1")
    assert result.server.startswith(f"no server is running at http://127.0.0.1:{port}")
    assert resolve(ws, STAGE) == "scope-v1"
    [status] = serving_status(ws)
    assert (status.running, status.missing, status.error) == (False, ["scope-v1"], None)
    output = CliRunner().invoke(cli, ["--workspace", str(ws.root), "serve", "--status"]).output
    assert f"base reasoning at http://127.0.0.1:{port}: not running" in output
    assert "active but not loaded: scope-v1" in output


def test_a_candidate_without_a_gate_pass_is_refused(served: tuple[Workspace, FakeVllm]) -> None:
    ws, fake = served
    with pytest.raises(ActivationError, match="has not been through the eval gate"):
        promote_version(ws, "scope-v1")
    assert fake.load_requests == [] and resolve(ws, STAGE) == "reasoning"


def test_rollback_loads_the_older_version_when_the_server_lacks_it(
    served: tuple[Workspace, FakeVllm],
) -> None:
    ws, fake = served
    pass_gate(ws, "scope-v1", "base")
    promote_version(ws, "scope-v1")
    pass_gate(ws, "scope-v2", "scope-v1")
    promote_version(ws, "scope-v2")
    fake.loaded.pop("scope-v1")
    result = rollback_stage(ws, STAGE, "scope-v2", reason="e2e regression")
    assert (result.active, result.server) == ("scope-v1", f"scope-v1 loaded on {fake.url}")
    assert set(fake.loaded) == {"scope-v1", "scope-v2"}
    result = rollback_stage(ws, STAGE, "scope-v1")
    assert (result.active, result.server) == (
        "reasoning",
        "the base model serves scope now; nothing to load",
    )
    assert resolve(ws, STAGE) == "reasoning"


DIE_AFTER_LOAD = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from engine.adapters import switch
    from engine.adapters.activation import version_row
    from engine.workspace import Workspace

    def load_then_die(ws, name, operator=None, reason="", sync=None, check=None):
        sync(version_row(ws, name))
        os._exit(9)

    switch.promote = load_then_die
    switch.promote_version(Workspace.open(Path(sys.argv[1])), sys.argv[2])
    """
)


def test_a_crash_between_the_load_and_the_flip_is_reconciled(
    served: tuple[Workspace, FakeVllm],
) -> None:
    ws, fake = served
    pass_gate(ws, "scope-v1", "base")
    promote_version(ws, "scope-v1")
    pass_gate(ws, "scope-v2", "scope-v1")
    crashed = subprocess.run(
        [sys.executable, "-c", DIE_AFTER_LOAD, str(ws.root), "scope-v2"], capture_output=True
    )
    assert crashed.returncode == 9, crashed.stderr
    assert "scope-v2" in fake.loaded
    assert ws.db["activation_intents"].count == 1
    assert resolve(ws, STAGE) == "scope-v1"

    [line] = reconcile_intents(ws)
    assert "the promotion from scope-v1 to scope-v2" in line
    assert "was interrupted before the database flip; scope-v1 is still active" in line
    assert ws.db["activation_intents"].count == 0
    assert [h["action"] for h in history(ws, STAGE)] == ["promote", "interrupted"]
    assert reconcile_intents(ws) == []
    output = CliRunner().invoke(cli, ["--workspace", str(ws.root), "adapters", "reconcile"])
    assert output.output == "nothing to reconcile: no switch was interrupted\n"

    result = promote_version(ws, "scope-v2")
    assert result.server == f"scope-v2 was already loaded on {fake.url}"
    assert fake.load_requests.count("scope-v2") == 1
    assert resolve(ws, STAGE) == "scope-v2"
