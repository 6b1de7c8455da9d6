"""Serving adapters: the vLLM client against a local fake server, safe loads, serve commands."""

import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fake_vllm import FakeVllm

from app.cli import cli
from app.cli_serve import serve
from engine.adapters.activation import AdapterVersion, version_by_id
from engine.core.workspace import Workspace
from engine.serving.command import SERVE_ENV, serve_commands, server_url
from engine.serving.status import serving_status
from engine.serving.vllm_client import (
    ServedModel,
    ServingError,
    VllmClient,
    check_adapter,
    load_version,
)

if "serve" not in cli.commands:
    cli.add_command(serve)


def _config(root: Path, port: int, bases: dict[str, str], **extra: int) -> None:
    lines = ["[serving]", f'base_url = "http://127.0.0.1:{port}"', "timeout_s = 5"]
    lines += [f"{key} = {value}" for key, value in extra.items()]
    lines += ["[serving.bases]"] + [f'{kind} = "{folder}"' for kind, folder in bases.items()]
    (root / "cra.toml").write_text("\n".join(lines) + "\n")


def _workspace(root: Path, port: int = 8000, **extra: int) -> Workspace:
    root.mkdir(parents=True, exist_ok=True)
    for folder in ("models/reasoning", "models/coding"):
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "config.json").write_text("{}")
    bases = {"reasoning": "models/reasoning", "coding": "models/coding"}
    _config(root, port, bases, **extra)
    return Workspace.open(root)


def _version(
    ws: Workspace,
    stage: str,
    version: int,
    status: str,
    rank: int,
    base: str = "reasoning",
    config_rank: int | None = None,
) -> AdapterVersion:
    path = f"adapters/{stage}/v{version}"
    (ws.root / path).mkdir(parents=True)
    config = {"r": config_rank or rank, "peft_type": "LORA"}
    (ws.root / path / "adapter_config.json").write_text(json.dumps(config))
    row = {
        "stage": stage,
        "version": version,
        "name": f"{stage}-v{version}",
        "status": status,
        "base_model": base,
        "base_model_path": f"models/{base}",
        "rank": rank,
        "path": path,
        "created_at": "2026-01-01T00:00:00Z",
    }
    return version_by_id(ws, ws.db["adapter_versions"].insert(row).last_pk)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return _workspace(tmp_path / "ws")


@pytest.fixture
def fake(ws: Workspace) -> Iterator[FakeVllm]:
    with FakeVllm(str(ws.root / "models/reasoning")) as server:
        yield server


def _client(fake: FakeVllm) -> VllmClient:
    return VllmClient(fake.url + "/", timeout_s=5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_models_lists_the_base_and_the_loaded_adapters(ws: Workspace, fake: FakeVllm) -> None:
    fake.loaded["scope-v1"] = "/adapters/scope/v1"
    base = str(ws.root / "models/reasoning")
    assert _client(fake).models() == [
        ServedModel(id=base, root=base, parent=None),
        ServedModel(id="scope-v1", root="/adapters/scope/v1", parent=base),
    ]
    assert _client(fake).loaded_adapters() == {"scope-v1"}


def test_load_and_unload(ws: Workspace, fake: FakeVllm) -> None:
    row = _version(ws, "scope", 1, "candidate", 16)
    client = _client(fake)
    client.load_adapter("scope-v1", str(ws.root / row.path))
    assert client.loaded_adapters() == {"scope-v1"}
    client.unload_adapter("scope-v1")
    assert client.loaded_adapters() == set()
    with pytest.raises(ServingError, match=r"unload_lora_adapter: HTTP 404: .*'scope-v1' cannot"):
        client.unload_adapter("scope-v1")


def test_a_failed_load_names_the_server_the_endpoint_and_its_message(
    ws: Workspace, fake: FakeVllm
) -> None:
    row = _version(ws, "scope", 1, "candidate", 16)
    fake.fail_loads.add("scope-v1")
    with pytest.raises(ServingError) as caught:
        load_version(_client(fake), ws, row)
    message = str(caught.value)
    assert fake.url in message
    assert "POST /v1/load_lora_adapter: HTTP 400: Loading lora scope-v1 failed" in message
    assert fake.loaded == {}


def test_the_server_refuses_a_rank_above_its_limit(ws: Workspace, fake: FakeVllm) -> None:
    row = _version(ws, "scope", 1, "candidate", 32)
    with pytest.raises(ServingError, match="LoRA rank 32 is greater than max_lora_rank 16"):
        _client(fake).load_adapter("scope-v1", str(ws.root / row.path))


def test_a_rank_over_the_limit_is_refused_before_any_request(ws: Workspace, fake: FakeVllm) -> None:
    row = _version(ws, "scope", 1, "candidate", 32)
    with pytest.raises(ServingError, match="rank 32, above the server's --max-lora-rank 16"):
        check_adapter(row, ws.root / row.path, 16, {"reasoning"})
    retired = _version(ws, "scope", 2, "retired", 64)
    with pytest.raises(ServingError, match="rank 64, above the server's --max-lora-rank 32"):
        load_version(_client(fake), ws, retired)
    assert fake.load_requests == []


def test_an_adapter_whose_config_disagrees_with_its_record_is_refused(ws: Workspace) -> None:
    row = _version(ws, "scope", 1, "candidate", 16, config_rank=8)
    with pytest.raises(ServingError, match="has rank 8, but its version record says 16"):
        check_adapter(row, ws.root / row.path, 16, {"reasoning"})


def test_an_adapter_on_a_base_not_served_is_refused(tmp_path: Path, fake: FakeVllm) -> None:
    root = tmp_path / "only-reasoning"
    (root / "models/reasoning").mkdir(parents=True)
    _config(root, 8000, {"reasoning": "models/reasoning"})
    ws = Workspace.open(root)
    row = _version(ws, "execute_code", 1, "candidate", 16, base="coding")
    with pytest.raises(ServingError, match=r"base 'coding', which is not served \(served: reas"):
        load_version(_client(fake), ws, row)
    assert fake.load_requests == []


def test_a_server_of_another_base_is_refused(ws: Workspace, fake: FakeVllm) -> None:
    row = _version(ws, "execute_code", 1, "candidate", 16, base="coding")
    with pytest.raises(ServingError, match=r"not base 'coding'"):
        load_version(_client(fake), ws, row)
    assert fake.load_requests == []


def test_a_load_is_confirmed_in_the_model_list(ws: Workspace, fake: FakeVllm) -> None:
    row = _version(ws, "scope", 1, "candidate", 16)
    served = load_version(_client(fake), ws, row)
    base = str(ws.root / "models/reasoning")
    assert served == ServedModel(id="scope-v1", root=str(ws.root / row.path), parent=base)
    assert fake.load_requests == ["scope-v1"]


def test_a_name_already_loaded_is_confirmed_without_a_second_load(
    ws: Workspace, fake: FakeVllm
) -> None:
    row = _version(ws, "scope", 1, "active", 16)
    fake.loaded["scope-v1"] = str(ws.root / row.path)
    assert load_version(_client(fake), ws, row).id == "scope-v1"
    assert fake.load_requests == []


def test_a_name_loaded_from_another_folder_is_refused(ws: Workspace, fake: FakeVllm) -> None:
    row = _version(ws, "scope", 1, "active", 16)
    fake.loaded["scope-v1"] = "/elsewhere/scope"
    with pytest.raises(ServingError, match="from /elsewhere/scope, not from .*never reused"):
        load_version(_client(fake), ws, row)
    assert fake.load_requests == []


def test_a_load_accepted_but_not_listed_fails_clearly(ws: Workspace, fake: FakeVllm) -> None:
    row = _version(ws, "scope", 1, "candidate", 16)
    fake.unlisted.add("scope-v1")
    with pytest.raises(ServingError, match="accepted adapter scope-v1 but /v1/models does not"):
        load_version(_client(fake), ws, row)


def test_connection_refused_says_the_server_is_not_running() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(ServingError, match=f"the vLLM server is not running at {url}"):
        VllmClient(url, timeout_s=5).models()


def test_serve_commands_from_the_adapter_versions(tmp_path: Path) -> None:
    """A base is served under its kind, the name `cra adapters resolve` gives a stage with no
    active version, and under its folder's path."""
    ws = _workspace(tmp_path / "ws", port=9000, max_loras=3, max_cpu_loras=6)
    scope = _version(ws, "scope", 1, "active", 16)
    _version(ws, "scope", 2, "candidate", 24)
    _version(ws, "precision", 1, "retired", 128)
    plan = _version(ws, "planning_dpo", 3, "active", 8)
    code = _version(ws, "execute_code", 1, "active", 16, base="coding")
    reasoning, coding = serve_commands(ws)
    assert reasoning.base == "reasoning"
    assert reasoning.url == server_url(ws, "reasoning") == "http://127.0.0.1:9000"
    assert reasoning.env == SERVE_ENV == {"VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True"}
    assert reasoning.argv == [
        "vllm", "serve", str(ws.root / "models/reasoning"),
        "--served-model-name", "reasoning", str(ws.root / "models/reasoning"), "--enable-lora",
        "--host", "127.0.0.1", "--port", "9000",
        "--max-lora-rank", "32", "--max-loras", "3", "--max-cpu-loras", "6",
        "--lora-modules",
        f"planning_dpo-v3={ws.root / plan.path}",
        f"scope-v1={ws.root / scope.path}",
    ]  # fmt: skip
    assert coding.url == "http://127.0.0.1:9001"
    assert coding.argv == [
        "vllm", "serve", str(ws.root / "models/coding"),
        "--served-model-name", "coding", str(ws.root / "models/coding"), "--enable-lora",
        "--host", "127.0.0.1", "--port", "9001",
        "--max-lora-rank", "16", "--max-loras", "3", "--max-cpu-loras", "6",
        "--lora-modules", f"execute_code-v1={ws.root / code.path}",
    ]  # fmt: skip


def test_serve_commands_leave_out_unset_options_and_absent_modules(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / "models/coding").mkdir(parents=True)
    (root / "models/coding/config.json").write_text("{}")
    _config(root, 8000, {"coding": "models/coding"})
    ws = Workspace.open(root)
    _version(ws, "execute_code", 1, "candidate", 64, base="coding")
    (command,) = serve_commands(ws)
    assert command.url == "http://127.0.0.1:8001"
    assert command.argv[7:] == [
        "--host", "127.0.0.1", "--port", "8001", "--max-lora-rank", "64", "--max-loras", "4",
    ]  # fmt: skip


def test_an_adapter_whose_base_has_no_served_folder_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / "models/reasoning").mkdir(parents=True)
    _config(root, 8000, {"reasoning": "models/reasoning"})
    ws = Workspace.open(root)
    _version(ws, "execute_code", 1, "candidate", 16, base="coding")
    with pytest.raises(ServingError, match=r"\[serving\] bases.coding is not set"):
        serve_commands(ws)


def test_a_served_base_folder_that_is_missing_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    _config(root, 8000, {"reasoning": "models/nowhere"})
    with pytest.raises(ServingError, match=r"\[serving\] bases.reasoning in .*is not a folder"):
        serve_commands(Workspace.open(root))


def test_no_served_base_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "cra.toml").write_text("[serving]\nmax_loras = 2\n")
    with pytest.raises(ServingError, match=r"\[serving\] bases is empty"):
        serve_commands(Workspace.open(root))


def test_cli_prints_the_commands_and_refuses_to_launch_without_vllm(
    tmp_path: Path, ws: Workspace
) -> None:
    _version(ws, "scope", 1, "active", 16)
    runner = CliRunner()
    printed = runner.invoke(cli, ["--workspace", str(ws.root), "serve", "--print"])
    assert printed.exit_code == 0, printed.output
    lines = printed.output.splitlines()
    assert lines[0] == "# base reasoning at http://127.0.0.1:8000"
    assert lines[1].startswith("VLLM_ALLOW_RUNTIME_LORA_UPDATING=True vllm serve ")
    assert f"--lora-modules scope-v1={ws.root / 'adapters/scope/v1'}" in lines[1]
    assert lines[2] == "# base coding at http://127.0.0.1:8001"
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    launched = runner.invoke(
        cli, ["--workspace", str(ws.root), "serve", "--launch"], env={"PATH": str(empty)}
    )
    assert launched.exit_code == 1
    assert "error: vllm is not installed here (no `vllm` on PATH)" in launched.output
    neither = runner.invoke(cli, ["--workspace", str(ws.root), "serve"])
    assert neither.exit_code == 2
    assert "give exactly one of --print, --launch, --status or --release" in neither.output


def test_status_refuses_a_server_of_another_workspace_on_the_port(tmp_path: Path) -> None:
    """A server answering on the base's port but serving another folder (another workspace's
    server) is reported as that, not as this base's server with its adapters."""
    other = tmp_path / "other" / "models" / "reasoning"
    other.mkdir(parents=True)
    with FakeVllm(str(other)) as server:
        server.loaded["scope-v1"] = "/other/adapters/scope/v1"
        ws = _workspace(tmp_path / "ws", port=int(server.url.rsplit(":", 1)[1]))
        _version(ws, "scope", 1, "active", 16)
        reasoning = serving_status(ws)[0]
        assert (reasoning.running, reasoning.other, reasoning.loaded) == (False, True, [])
        assert reasoning.missing == ["scope-v1"]
        assert f"serves {other}, not base 'reasoning' of this workspace" in str(reasoning.error)
        shown = CliRunner().invoke(cli, ["--workspace", str(ws.root), "serve", "--status"])
        assert shown.exit_code == 0, shown.output
        assert f"base reasoning at {server.url}: another server answers" in shown.output


def test_status_reads_this_workspaces_server_by_its_resolved_base_folder(tmp_path: Path) -> None:
    """The base folder is compared by resolved path: a server started on a link to it is this
    base's server."""
    ws = _workspace(tmp_path / "ws")
    link = tmp_path / "link"
    link.symlink_to(ws.root / "models/reasoning")
    with FakeVllm(str(link)) as server:
        server.loaded["scope-v1"] = str(ws.root / "adapters/scope/v1")
        _config(ws.root, int(server.url.rsplit(":", 1)[1]), {"reasoning": "models/reasoning"})
        ws = Workspace.open(ws.root)
        [reasoning] = serving_status(ws)
        assert (reasoning.running, reasoning.other, reasoning.loaded) == (True, False, ["scope-v1"])


def test_a_connection_reset_mid_answer_is_a_serving_error(tmp_path: Path) -> None:
    """A server dying while it answers resets the connection after it was made: the client
    says so as a ServingError, which status readers show, rather than raising past them."""
    import struct
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def reset_one() -> None:
        conn, _ = listener.accept()
        conn.recv(1024)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    thread = threading.Thread(target=reset_one)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        with pytest.raises(ServingError, match="GET /v1/models: the connection broke"):
            VllmClient(url, 5).models()
    finally:
        thread.join(timeout=10)
        listener.close()


def test_each_printed_line_runs_as_is_and_starts_what_launch_starts(
    tmp_path: Path, ws: Workspace
) -> None:
    """Each command line `cra serve --print` writes, run by a shell as it is, gives `vllm` the
    argv and the environment `--launch` would: a `vllm` on PATH records what it got, even with a
    workspace whose path holds a space and a quote."""
    odd = tmp_path / "it's a ws"
    shutil.copytree(ws.root, odd)
    ws = Workspace.open(odd)
    _version(ws, "scope", 1, "active", 16)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "argv.jsonl"
    vllm = bin_dir / "vllm"
    vllm.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        f"with open({str(record)!r}, 'a') as out:\n"
        "    env = os.environ.get('VLLM_ALLOW_RUNTIME_LORA_UPDATING')\n"
        "    out.write(json.dumps([sys.argv[1:], env]) + '\\n')\n"
    )
    vllm.chmod(0o755)
    printed = CliRunner().invoke(cli, ["--workspace", str(ws.root), "serve", "--print"])
    assert printed.exit_code == 0, printed.output
    lines = [line for line in printed.output.splitlines() if not line.startswith("#")]
    for line in lines:
        subprocess.run(
            ["/bin/sh", "-c", line], check=True, env={"PATH": f"{bin_dir}:/usr/bin:/bin"}
        )
    got = [json.loads(line) for line in record.read_text().splitlines()]
    assert got == [[command.argv[1:], "True"] for command in serve_commands(ws)]
    assert any("--lora-modules" in argv for argv, _ in got)


def test_a_server_started_without_runtime_updates_is_named_for_it(
    tmp_path: Path, ws: Workspace
) -> None:
    """vLLM has no LoRA routes unless started with VLLM_ALLOW_RUNTIME_LORA_UPDATING: its web
    framework answers 404 `Not Found`, and the console names the missing variable."""
    row = _version(ws, "scope", 1, "candidate", 16)
    with FakeVllm(str(ws.root / "models/reasoning"), runtime_updates=False) as fake:
        with pytest.raises(ServingError) as caught:
            _client(fake).load_adapter("scope-v1", str(ws.root / row.path))
        assert "HTTP 404: the server has no runtime LoRA endpoints" in str(caught.value)
        assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True" in str(caught.value)
        with pytest.raises(ServingError, match="HTTP 404: Not Found$"):
            _client(fake)._request("GET", "/v1/nothing", None)


def test_a_missing_adapter_folder_is_vllms_404(ws: Workspace) -> None:
    with (
        FakeVllm(str(ws.root / "models/reasoning")) as fake,
        pytest.raises(
            ServingError, match="HTTP 404: Loading lora x failed: No adapter found for /nowhere"
        ),
    ):
        _client(fake).load_adapter("x", "/nowhere")
