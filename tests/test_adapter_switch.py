"""Promotion and rollback on the database and the running server together: the load before
the flip, a failed load changing nothing, no server running, the gate, a process killed
between the load and the flip (reconciled after), the serving status, and promotions and
rollbacks racing from several processes.

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
from races import race

from app.cli import cli
from engine.adapters.activation import (
    ActivationError,
    StageChangedError,
    active_row,
    history,
    resolve,
    version_row,
)
from engine.core.workspace import Workspace
from engine.evaluation.gate import latest_decision, target_name
from engine.promotion.switch import promote_version, reconcile_intents, rollback_stage
from engine.serving.status import serving_status
from engine.serving.vllm_client import ServingError

STAGE = "scope"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _workspace(root: Path, port: int) -> Workspace:
    (root / "models/reasoning").mkdir(parents=True)
    (root / "models/reasoning" / "config.json").write_text("{}")
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
    with pytest.raises(ServingError, match="HTTP 500: Call to add_lora method failed: CUDA"):
        promote_version(ws, "scope-v2")
    assert resolve(ws, STAGE) == "scope-v1"
    assert [h.action for h in history(ws, STAGE)] == ["promote"]
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
    from engine.promotion import switch
    from engine.adapters.activation import version_row
    from engine.core.workspace import Workspace

    def load_then_die(ws, name, operator=None, reason="", sync=None, check=None, override=None):
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
    assert [h.action for h in history(ws, STAGE)] == ["promote", "interrupted"]
    assert reconcile_intents(ws) == []
    output = CliRunner().invoke(cli, ["--workspace", str(ws.root), "adapters", "reconcile"])
    assert output.output == "nothing to reconcile: no switch was interrupted\n"

    result = promote_version(ws, "scope-v2")
    assert result.server == f"scope-v2 was already loaded on {fake.url}"
    assert fake.load_requests.count("scope-v2") == 1
    assert resolve(ws, STAGE) == "scope-v2"


def test_a_rollback_naming_a_version_no_longer_active_is_refused(tmp_path: Path) -> None:
    """The operator saw scope-v2 serving and rolls it back, but meanwhile someone promoted
    scope-v3: the rollback is refused naming both, and scope-v3 still serves. The CLI asks for
    the version withdrawn and names the active one when it is missing."""
    ws = Workspace.open(tmp_path / "ws")
    for version, baseline in ((1, "base"), (2, "scope-v1"), (3, "scope-v2")):
        add_version(ws, STAGE, version)
        pass_gate(ws, f"scope-v{version}", baseline)
        promote_version(ws, f"scope-v{version}")
    with pytest.raises(StageChangedError) as refused:
        rollback_stage(ws, STAGE, "scope-v2")
    assert str(refused.value) == (
        "scope: the rollback withdraws scope-v2, but scope-v3 serves scope now; nothing "
        "changed (someone switched it since), look again and roll back again"
    )
    assert resolve(ws, STAGE) == "scope-v3"
    assert [h.action for h in history(ws, STAGE)] == ["promote"] * 3

    def cra(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(cli, ["--workspace", str(ws.root), "adapters", *args])
        return result.exit_code, result.output

    assert cra("rollback", STAGE) == (
        1,
        "error: scope: name the version you withdraw with --from NAME (scope-v3 is active "
        "now); a rollback never withdraws a version its operator did not name\n",
    )
    code, output = cra("rollback", STAGE, "--from", "scope-v2")
    assert (code, output.count("\n")) == (1, 1)
    assert "withdraws scope-v2, but scope-v3 serves scope now" in output
    assert resolve(ws, STAGE) == "scope-v3"
    assert cra("rollback", STAGE, "--from", "scope-v3")[1].startswith(
        "scope: rolled back to scope-v2\n"
    )


# -- several processes at once -------------------------------------------------------------


def _candidates(round_no: int) -> tuple[str, str]:
    """The two candidates added (and gated against the active version) for a round."""
    return f"scope-v{2 * round_no + 2}", f"scope-v{2 * round_no + 3}"


def _promote_first(ws: Workspace, round_no: int, seen: object) -> str:
    name = _candidates(round_no)[0]
    promote_version(ws, name)
    return f"promoted {name}"


def _serving(ws: Workspace, round_no: int) -> str:
    """What the operator sees serving before acting."""
    return resolve(ws, STAGE)


def _promote_or_roll_back(ws: Workspace, round_no: int, seen: str) -> str:
    """Even rounds promote the other candidate; odd ones roll back the version seen serving."""
    if round_no % 2 == 0:
        name = _candidates(round_no)[1]
        promote_version(ws, name)
        return f"promoted {name}"
    rollback_stage(ws, STAGE, seen)
    return f"withdrew {seen}"


@pytest.mark.slow
def test_racing_switches_never_promote_past_the_gate_nor_undo_an_unseen_promotion(
    tmp_path: Path,
) -> None:
    """Two processes switch one stage at the same moment, round after round: two promotions of
    candidates gated against the version active when the round began, or a promotion and a
    rollback of the version seen serving. Exactly one switch lands each round; the other is
    refused; every promotion in the history was gated against the version it replaced, and
    every rollback withdrew the version its operator saw."""
    ws = Workspace.open(tmp_path / "ws")
    add_version(ws, STAGE, 1)
    pass_gate(ws, "scope-v1", "base")
    promote_version(ws, "scope-v1")

    def prepare(round_no: int) -> None:
        baseline = target_name(active_row(ws, STAGE))
        for name in _candidates(round_no):
            add_version(ws, STAGE, int(name.rsplit("v", 1)[1]))
            pass_gate(ws, name, baseline)

    def settle(round_no: int, outcomes: list[str]) -> None:
        landed = [o for o in outcomes if not o.startswith("refused: ")]
        assert len(landed) == 1, (round_no, outcomes)
        assert not any(o.startswith("crashed") for o in outcomes), outcomes
        flips = [h for h in history(ws, STAGE) if h.action in ("promote", "rollback")]
        for before, after in zip(flips, flips[1:], strict=False):
            assert after.from_name == before.to_name, flips
        for flip in flips:
            if flip.action == "promote":
                gate = latest_decision(ws, version_row(ws, flip.to_name).id)
                assert gate["baseline"] == (flip.from_name or "base"), (round_no, flip)
        if landed[0].startswith("withdrew "):
            assert flips[-1].action == "rollback"
            assert flips[-1].from_name == landed[0].split()[1], (round_no, flips[-1])

    race(ws.root, [(None, _promote_first), (_serving, _promote_or_roll_back)], settle, prepare)
