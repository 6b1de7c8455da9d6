"""The planner prompt and parser, the `openai` pipeline against a real local HTTP server speaking
the chat completions API, and the `command` pipeline running real scripts."""

import json
import os
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from fake_vllm import QuietServer
from pilot_wait import wait_for

from engine.core.config import CommandPipelineConfig, OpenAIPipelineConfig
from engine.harness.command_pipeline import propose_command
from engine.harness.openai_pipeline import propose_openai
from engine.harness.package import HarnessError
from engine.harness.pipeline import PlannerTask
from engine.harness.plan import Edit, Plan, PlannerOutput, PlanPart, PlanStep
from engine.harness.prompt import MalformedOutput, build_messages, parse_output

OUTPUT = PlannerOutput(
    plan=Plan(
        summary="Apply the discount.",
        parts=[
            PlanPart(
                id="p1",
                title="Discount",
                steps=[
                    PlanStep(
                        description="Use the rate.",
                        file="src/shop/pricing.py",
                        symbols=["apply_discount"],
                    )
                ],
            )
        ],
    ),
    edits=[Edit(path="src/shop/pricing.py", search="return amount\n", replace="return 0\n")],
)
OUTPUT_JSON = OUTPUT.model_dump_json()


@pytest.fixture
def task(tmp_path: Path) -> PlannerTask:
    worktree = tmp_path / "worktree"
    worktree.mkdir()
    return PlannerTask(
        task="shop-0001",
        repo="shop",
        instruction="Apply the discount rate",
        parent="a" * 40,
        worktree=str(worktree),
        context="=== src/shop/pricing.py (outline, 7 lines) ===\n",
        context_tokens=16,
        model="planner-v3",
        temperature=0.7,
        seed=11,
    )


# --- prompt -------------------------------------------------------------------------------


def test_messages_carry_the_rules_the_task_and_the_context(task: PlannerTask) -> None:
    system, user = build_messages(task)
    assert system["role"] == "system"
    assert user["role"] == "user"
    assert "ONE JSON object" in system["content"]
    assert "exactly once" in system["content"]
    assert 'An empty "search" creates a new file' in system["content"]
    example = system["content"].split("shaped like this example:\n\n")[1].split("\n\nRules:")[0]
    assert isinstance(parse_output(example), PlannerOutput)
    assert task.instruction in user["content"]
    assert task.context in user["content"]
    assert task.parent in user["content"]


@pytest.mark.parametrize(
    "raw",
    [
        OUTPUT_JSON,
        f"  \n{OUTPUT_JSON}\n",
        f"Here is the plan:\n{OUTPUT_JSON}",
        f"```json\n{OUTPUT_JSON}\n```",
        f"Here is the plan.\n\n```json\n{OUTPUT_JSON}\n```\n",
        f"```\n{OUTPUT_JSON}\n```",
    ],
)
def test_parse_accepts_the_object_bare_after_prose_or_fenced(raw: str) -> None:
    assert parse_output(raw) == OUTPUT


@pytest.mark.parametrize(
    ("raw", "rule"),
    [
        ("I cannot do that.", "there is no '{' in it"),
        (f"{OUTPUT_JSON}\nHope this helps!", "not one JSON object: Extra data"),
        (f"```json\n{OUTPUT_JSON}\n```\nHope this helps!", "does not end with ```"),
        (f"```json\n{OUTPUT_JSON}", "does not end with ```"),
        ('{"plan": {"summary": "x", "parts": []}, "edits": []}', "key plan.parts"),
        ('{"plan": 1, "edits": [], "extra": 2}', "key extra: Extra inputs are not permitted"),
        ("{'plan': 1}", "not one JSON object: Expecting property name"),
    ],
)
def test_parse_names_the_rule_a_bad_answer_breaks(raw: str, rule: str) -> None:
    with pytest.raises(MalformedOutput) as caught:
        parse_output(raw)
    assert rule in str(caught.value)


# --- openai -------------------------------------------------------------------------------


HOLD_S = 30
"""How long a held request waits to be released before the endpoint answers anyway."""


def _open_gate() -> threading.Event:
    gate = threading.Event()
    gate.set()
    return gate


@dataclass
class _Endpoint:
    """What the fake endpoint answers, and the requests it was sent."""

    status: int = 200
    body: bytes = b""
    released: threading.Event = field(default_factory=_open_gate)
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def answer(self, content: str, finish_reason: str = "stop") -> None:
        self.body = json.dumps(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": finish_reason,
                    }
                ],
                "usage": {"prompt_tokens": 321, "completion_tokens": 54, "total_tokens": 375},
            }
        ).encode()


@pytest.fixture
def endpoint() -> Iterator[tuple[_Endpoint, str]]:
    state = _Endpoint()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            state.requests.append((self.path, json.loads(self.rfile.read(length))))
            state.released.wait(HOLD_S)
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = QuietServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_openai_sends_the_task_and_parses_the_answer(
    endpoint: tuple[_Endpoint, str], task: PlannerTask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    state, url = endpoint
    state.answer(f"Sure.\n```json\n{OUTPUT_JSON}\n```")
    config = OpenAIPipelineConfig(base_url=url, max_tokens=777, timeout_s=10)
    result = propose_openai(config, task)
    assert result.error is None
    assert result.output == OUTPUT
    assert (result.prompt_tokens, result.completion_tokens) == (321, 54)
    assert result.raw == f"Sure.\n```json\n{OUTPUT_JSON}\n```"
    [(path, sent)] = state.requests
    assert path == "/v1/chat/completions"
    assert sent["model"] == "planner-v3"
    assert (sent["temperature"], sent["seed"], sent["max_tokens"]) == (0.7, 11, 777)
    assert sent["messages"] == build_messages(task)


def test_openai_malformed_plan_keeps_the_answer_and_the_tokens(
    endpoint: tuple[_Endpoint, str], task: PlannerTask
) -> None:
    state, url = endpoint
    state.answer('{"plan": {"summary": "cut', finish_reason="length")
    result = propose_openai(OpenAIPipelineConfig(base_url=url, max_tokens=64), task)
    assert result.output is None
    assert result.malformed
    assert result.raw == '{"plan": {"summary": "cut'
    assert result.error is not None
    assert "not one JSON object" in result.error
    assert "stopped at max_tokens=64" in result.error
    assert (result.prompt_tokens, result.completion_tokens) == (321, 54)


def test_openai_garbage_body_is_an_error_with_the_body_kept(
    endpoint: tuple[_Endpoint, str], task: PlannerTask
) -> None:
    state, url = endpoint
    state.body = b"<html>gateway says hi</html>"
    result = propose_openai(OpenAIPipelineConfig(base_url=url), task)
    assert result.output is None
    assert not result.malformed
    assert result.raw == "<html>gateway says hi</html>"
    assert result.error is not None
    assert "answered with no JSON" in result.error


def test_openai_answer_without_choices_is_an_error(
    endpoint: tuple[_Endpoint, str], task: PlannerTask
) -> None:
    state, url = endpoint
    state.body = json.dumps({"choices": [], "usage": {"prompt_tokens": 1}}).encode()
    result = propose_openai(OpenAIPipelineConfig(base_url=url), task)
    assert result.output is None
    assert not result.malformed
    assert result.raw == state.body.decode()
    assert result.error is not None
    assert "not a chat completion" in result.error
    assert "key choices:" in result.error
    assert "key usage.completion_tokens: Field required" in result.error


def test_openai_http_error_status_is_an_error(
    endpoint: tuple[_Endpoint, str], task: PlannerTask
) -> None:
    state, url = endpoint
    state.status, state.body = 500, b'{"error": "adapter planner-v3 not loaded"}'
    result = propose_openai(OpenAIPipelineConfig(base_url=url), task)
    assert result.output is None
    assert result.raw == '{"error": "adapter planner-v3 not loaded"}'
    assert result.error is not None
    assert "answered HTTP 500" in result.error
    assert "adapter planner-v3 not loaded" in result.error


def test_openai_server_down_is_an_error(task: PlannerTask) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = propose_openai(OpenAIPipelineConfig(base_url=f"http://127.0.0.1:{port}/v1"), task)
    assert result.output is None
    assert result.raw == ""
    assert result.error is not None
    assert result.error.startswith(f"cannot reach http://127.0.0.1:{port}/v1/chat/completions")


def test_openai_slow_server_hits_the_timeout(
    endpoint: tuple[_Endpoint, str], task: PlannerTask
) -> None:
    state, url = endpoint
    state.answer(OUTPUT_JSON)
    state.released.clear()  # the endpoint answers only once the call has given up
    try:
        result = propose_openai(OpenAIPipelineConfig(base_url=url, timeout_s=0.3), task)
    finally:
        state.released.set()
    assert result.output is None
    assert result.error is not None
    assert "did not answer within 0.3s" in result.error


# --- command ------------------------------------------------------------------------------


def _script(tmp_path: Path, name: str, body: str) -> list[str]:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return [sys.executable, str(path)]


ECHO = """
import json, os, sys
task = json.load(sys.stdin)
seen = {"task": task, "cwd": os.getcwd(), "env": sorted(os.environ)}
print("Working on it.")
print(json.dumps({
    "plan": {
        "summary": json.dumps(seen),
        "parts": [{"id": "p1", "title": "t", "steps": [{"description": "d", "file": "a.py"}]}],
    },
    "edits": [{"path": "a.py", "search": "", "replace": task["instruction"]}],
}))
"""


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def test_command_gets_the_task_on_stdin_and_a_scrubbed_environment(
    tmp_path: Path, task: PlannerTask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRA_SECRET_TOKEN", "do-not-leak")
    config = CommandPipelineConfig(argv=_script(tmp_path, "echo.py", ECHO), timeout_s=30)
    result = propose_command(config, task)
    assert result.error is None
    assert result.output is not None
    assert result.raw.startswith("Working on it.\n{")
    assert result.output.edits[0].replace == "Apply the discount rate"
    seen = json.loads(result.output.plan.summary)
    assert seen["task"] == task.model_dump(mode="json")
    assert seen["cwd"] == task.worktree
    inherited = {key for key in ("PATH", "HOME", "LANG") if key in os.environ}
    assert set(seen["env"]) - {"LC_CTYPE"} == inherited | {"CRA_TASK"}


def test_command_past_its_time_limit_is_killed_with_its_children(
    tmp_path: Path, task: PlannerTask
) -> None:
    pids = tmp_path / "pids"
    sleeper = f"""
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open({str(pids)!r}, "w").write(f"{{child.pid}}")
print("thinking", flush=True)
time.sleep(60)
"""
    config = CommandPipelineConfig(argv=_script(tmp_path, "sleep.py", sleeper), timeout_s=1)
    result = propose_command(config, task)
    assert result.output is None
    assert not result.malformed
    assert result.raw == "thinking\n"
    assert result.error is not None
    assert "ran past the time limit of 1s" in result.error
    child = int(pids.read_text())
    wait_for(lambda: _gone(child), f"the planner's child {child} to be killed", limit_s=5)


def test_command_nonzero_exit_reports_the_tail_of_stderr(tmp_path: Path, task: PlannerTask) -> None:
    failing = """
import sys
print("partial answer")
sys.stderr.write("noise " * 2000 + "\\nTraceback: boom at the end\\n")
sys.exit(3)
"""
    config = CommandPipelineConfig(argv=_script(tmp_path, "fail.py", failing), timeout_s=30)
    result = propose_command(config, task)
    assert result.output is None
    assert not result.malformed
    assert result.raw == "partial answer\n"
    assert result.error is not None
    assert result.error.startswith("the command exited with status 3; the end of its stderr:")
    assert result.error.endswith("Traceback: boom at the end")
    assert len(result.error) < 2200


def test_command_malformed_stdout_keeps_the_raw_answer(tmp_path: Path, task: PlannerTask) -> None:
    config = CommandPipelineConfig(
        argv=_script(tmp_path, "bad.py", "print('plan: {not json')"), timeout_s=30
    )
    result = propose_command(config, task)
    assert result.output is None
    assert result.malformed
    assert result.raw == "plan: {not json\n"
    assert result.error is not None
    assert result.error.startswith("the answer is not one JSON object")
    assert result.error.endswith("its stderr is empty")


def test_command_that_cannot_start_is_an_error(tmp_path: Path, task: PlannerTask) -> None:
    missing = str(tmp_path / "no-such-agent")
    result = propose_command(CommandPipelineConfig(argv=[missing]), task)
    assert result.output is None
    assert result.error == f"cannot start {missing!r}: No such file or directory"


def test_command_without_argv_is_refused(task: PlannerTask) -> None:
    with pytest.raises(HarnessError, match=r"harness\.command\.argv in cra\.toml is empty"):
        propose_command(CommandPipelineConfig(), task)
