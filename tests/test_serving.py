"""Serving adapters: the vLLM client against a local fake server, safe loads, serve commands."""

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fake_vllm import FakeVllm, write_base_tokenizer

from app.cli import cli
from app.cli_serve import serve
from engine.adapters.activation import AdapterVersion, version_by_id
from engine.core.errors import CraError
from engine.core.workspace import Workspace
from engine.serving.command import SERVE_ENV, serve_commands, server_url, vllm_executable
from engine.serving.cpu_server import parse_lora_module
from engine.serving.started import record_start, running_start, start_record
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


def _config(root: Path, port: int, bases: dict[str, str], **extra: object) -> None:
    lines = ["[serving]", f'base_url = "http://127.0.0.1:{port}"', "timeout_s = 5"]
    lines += [f"{key} = {_toml(value)}" for key, value in extra.items()]
    lines += ["[serving.bases]"] + [f'{kind} = "{folder}"' for kind, folder in bases.items()]
    (root / "cra.toml").write_text("\n".join(lines) + "\n")


def _base(folder: Path) -> None:
    """A base folder as far as serving reads it: its config and a tokenizer whose end of turn
    (id 2) differs from its eos (id 1)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text('{"eos_token_id": 1}')
    write_base_tokenizer(folder)


def _toml(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key} = {_toml(item)}" for key, item in value.items()) + "}"
    return json.dumps(value)


def _workspace(root: Path, port: int = 8000, **extra: object) -> Workspace:
    root.mkdir(parents=True, exist_ok=True)
    for folder in ("models/reasoning", "models/coding"):
        _base(root / folder)
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
    assert "POST /v1/load_lora_adapter: HTTP 500: Call to add_lora method failed: CUDA" in message
    assert fake.loaded == {}


def test_the_server_refuses_a_rank_above_its_limit(ws: Workspace, fake: FakeVllm) -> None:
    row = _version(ws, "scope", 1, "candidate", 32)
    with pytest.raises(ServingError, match="LoRA rank 32 is greater than max_lora_rank 16"):
        _client(fake).load_adapter("scope-v1", str(ws.root / row.path))


def test_a_rank_over_the_limit_is_refused_before_any_request(ws: Workspace, fake: FakeVllm) -> None:
    """The limit checked is the running server's, not the one a server started now would get
    (which counts the candidate being loaded, and so never refused it)."""
    row = _version(ws, "scope", 1, "candidate", 32)
    with pytest.raises(ServingError, match="rank 32, above the server's --max-lora-rank 16"):
        check_adapter(row, ws.root / row.path, 16, {"reasoning"})
    by_hand = (
        "rank 32, above --max-lora-rank 16, which `cra serve` gives a server started before "
        "scope-v1 existed"
    )
    with pytest.raises(ServingError, match=by_hand):
        load_version(_client(fake), ws, row)
    assert fake.load_requests == []


def test_the_rank_limit_of_a_launched_server_is_the_one_it_was_started_with(
    ws: Workspace,
) -> None:
    """`cra serve --launch` records each server's `--max-lora-rank` while it runs: a load is
    checked against that, and a record whose process is gone counts for nothing."""
    row = _version(ws, "scope", 1, "candidate", 32)
    with FakeVllm(str(ws.root / "models/reasoning"), max_lora_rank=32) as fake:
        record_start(ws, "reasoning", fake.url, os.getpid(), 16)
        launched = r"rank 32, above the server's --max-lora-rank 16 \(serve-reasoning.start"
        with pytest.raises(ServingError, match=launched):
            load_version(_client(fake), ws, row)
        record_start(ws, "reasoning", fake.url, os.getpid(), 32)
        assert load_version(_client(fake), ws, row).id == "scope-v1"
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        record = json.loads(start_record(ws, "reasoning").read_text())
        start_record(ws, "reasoning").write_text(json.dumps({**record, "pid": gone.pid}))
        assert running_start(ws, "reasoning", fake.url) is None
        start_record(ws, "reasoning").write_text("{")
        with pytest.raises(CraError, match="serve-reasoning.start.json is not a server start"):
            running_start(ws, "reasoning", fake.url)


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
    active version, and under its folder's path; from vLLM's own environment, offline, with its
    share of the GPU, and stopping on the adapters' end of turn."""
    ws = _workspace(tmp_path / "ws", port=9000, max_loras=3, max_cpu_loras=6, vllm_env="/opt/v")
    scope = _version(ws, "scope", 1, "active", 16)
    _version(ws, "scope", 2, "candidate", 24)
    _version(ws, "precision", 1, "retired", 128)
    plan = _version(ws, "planning_dpo", 3, "active", 8)
    code = _version(ws, "execute_code", 1, "active", 16, base="coding")
    reasoning, coding = serve_commands(ws)
    assert reasoning.base == "reasoning"
    assert reasoning.url == server_url(ws, "reasoning") == "http://127.0.0.1:9000"
    assert reasoning.env == {**SERVE_ENV, "CUDA_VISIBLE_DEVICES": "0"} == coding.env
    assert SERVE_ENV["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert SERVE_ENV["HF_HUB_OFFLINE"] == SERVE_ENV["VLLM_NO_USAGE_STATS"] == "1"
    assert (reasoning.max_lora_rank, reasoning.gpu) == (32, "0")

    def module(name: str, path: str) -> str:
        return json.dumps({"name": name, "path": str(ws.root / path)})

    assert reasoning.argv == [
        "/opt/v/bin/vllm", "serve", str(ws.root / "models/reasoning"),
        "--served-model-name", "reasoning", str(ws.root / "models/reasoning"), "--enable-lora",
        "--host", "127.0.0.1", "--port", "9000", "--gpu-memory-utilization", "0.45",
        "--max-lora-rank", "32", "--max-loras", "3", "--max-cpu-loras", "6",
        "--generation-config", str(ws.root / "serving/reasoning"),
        "--lora-modules", module("planning_dpo-v3", plan.path), module("scope-v1", scope.path),
    ]  # fmt: skip
    assert coding.url == "http://127.0.0.1:9001"
    assert coding.argv == [
        "/opt/v/bin/vllm", "serve", str(ws.root / "models/coding"),
        "--served-model-name", "coding", str(ws.root / "models/coding"), "--enable-lora",
        "--host", "127.0.0.1", "--port", "9001", "--gpu-memory-utilization", "0.45",
        "--max-lora-rank", "16", "--max-loras", "3", "--max-cpu-loras", "6",
        "--generation-config", str(ws.root / "serving/coding"),
        "--lora-modules", module("execute_code-v1", code.path),
    ]  # fmt: skip
    # The base stops on its own eos and on the end of turn its adapters were trained to end on.
    served = json.loads((ws.root / "serving/reasoning/generation_config.json").read_text())
    assert served == {"eos_token_id": [1, 2]}


def test_a_bases_generation_config_is_kept_with_the_end_of_turn_added(tmp_path: Path) -> None:
    ws = _workspace(tmp_path / "ws")
    own = {"eos_token_id": [1], "temperature": 0.7, "top_p": 0.8}
    (ws.root / "models/reasoning/generation_config.json").write_text(json.dumps(own))
    (ws.root / "models/coding/generation_config.json").write_text('{"eos_token_id": [2, 1]}')
    serve_commands(ws)
    folder = ws.root / "serving"
    reasoning = json.loads((folder / "reasoning/generation_config.json").read_text())
    assert reasoning == {**own, "eos_token_id": [1, 2]}
    coding = json.loads((folder / "coding/generation_config.json").read_text())
    assert coding == {"eos_token_id": [2, 1]}
    bare = tmp_path / "bare"
    (bare / "models/coding").mkdir(parents=True)
    (bare / "models/coding/config.json").write_text("{}")
    _config(bare, 8000, {"coding": "models/coding"})
    with pytest.raises(ServingError, match="models/coding: has no tokenizer.json"):
        serve_commands(Workspace.open(bare))


def test_the_gpu_is_split_between_the_servers_as_configured(tmp_path: Path) -> None:
    def shares(**serving: object) -> dict[str, tuple[str, str, str | None]]:
        root = tmp_path / f"ws{len(list(tmp_path.iterdir()))}"
        commands = serve_commands(_workspace(root, **serving))
        return {
            command.base: (
                command.argv[command.argv.index("--gpu-memory-utilization") + 1],
                command.env["CUDA_VISIBLE_DEVICES"],
                command.argv[command.argv.index("--max-model-len") + 1]
                if "--max-model-len" in command.argv
                else None,
            )
            for command in commands
        }

    assert shares() == {"reasoning": ("0.45", "0", None), "coding": ("0.45", "0", None)}
    told = shares(gpu_memory_utilization={"reasoning": 0.6}, max_model_len={"coding": 16384})
    assert told == {"reasoning": ("0.6", "0", None), "coding": ("0.3", "0", "16384")}
    apart = shares(cuda_devices={"coding": "1"})
    assert apart == {"reasoning": ("0.9", "0", None), "coding": ("0.9", "1", None)}


@pytest.mark.parametrize(
    ("serving", "says"),
    [
        ("gpu_memory_utilization = {reasoning = 0.6, coding = 0.5}", "ask for 1.1 of its memory"),
        ("gpu_memory_utilization = {reasoning = 0.88}", "leaving under 0.05 each for coding"),
        ("gpu_memory_utilization = {reasoning = 1.0}", "reasoning = 1.0 is not within 0..1"),
        ('cuda_devices = {coding = "cuda:1"}', "cuda_devices.coding = 'cuda:1' is not a GPU"),
        ("max_model_len = {coding = 0}", "max_model_len.coding"),
    ],
)
def test_a_gpu_split_that_cannot_work_is_a_config_error(
    tmp_path: Path, serving: str, says: str
) -> None:
    root = _workspace(tmp_path / "ws").root
    (root / "cra.toml").write_text(
        f'[serving]\n{serving}\n[serving.bases]\nreasoning = "r"\ncoding = "c"\n'
    )
    result = CliRunner().invoke(cli, ["--workspace", str(root), "serve", "--print"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert says in result.output and "cra.toml" in result.output


def test_serve_commands_leave_out_unset_options_and_absent_modules(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    _base(root / "models/coding")
    _config(root, 8000, {"coding": "models/coding"})
    ws = Workspace.open(root)
    _version(ws, "execute_code", 1, "candidate", 64, base="coding")
    (command,) = serve_commands(ws)
    assert command.url == "http://127.0.0.1:8001"
    assert command.argv[7:] == [
        "--host", "127.0.0.1", "--port", "8001", "--gpu-memory-utilization", "0.9",
        "--max-lora-rank", "64", "--max-loras", "4",
        "--generation-config", str(ws.root / "serving/coding"),
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
    assert lines[1].startswith("VLLM_ALLOW_RUNTIME_LORA_UPDATING=True HF_HUB_OFFLINE=1 ")
    assert f"{vllm_executable(ws)} serve " in lines[1]
    assert '--lora-modules \'{"name": "scope-v1", "path": ' in lines[1]
    assert lines[2] == "# base coding at http://127.0.0.1:8001"
    launched = runner.invoke(cli, ["--workspace", str(ws.root), "serve", "--launch"])
    assert launched.exit_code == 1
    env = Path("~/.local/share/cra-console/vllm-env").expanduser()
    assert f"error: vllm is not installed in {env} ([serving] vllm_env)" in launched.output
    assert "cra serve --install-vllm BUNDLE/vllm" in launched.output
    neither = runner.invoke(cli, ["--workspace", str(ws.root), "serve"])
    assert neither.exit_code == 2
    assert "give exactly one of --print, --launch, --status, --hold, --release or" in (
        neither.output
    )


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
    argv and the environment `--launch` would: the `vllm` of `[serving] vllm_env` records what
    it got, even with a workspace whose path holds a space, a quote and a comma; and each
    `--lora-modules` value reads back, by vLLM's own rule, as the version's name and folder."""
    odd = tmp_path / "it's, a ws"
    shutil.copytree(ws.root, odd)
    env = tmp_path / "vllm env"
    config = odd / "cra.toml"
    config.write_text(
        config.read_text().replace(
            "[serving]\n", f"[serving]\nvllm_env = {json.dumps(str(env))}\n", 1
        )
    )
    ws = Workspace.open(odd)
    scope = _version(ws, "scope", 1, "active", 16)
    record = tmp_path / "argv.jsonl"
    vllm = env / "bin" / "vllm"
    vllm.parent.mkdir(parents=True)
    vllm.write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        f"with open({str(record)!r}, 'a') as out:\n"
        "    skip = ('PATH', 'PWD', 'SHLVL', '_', 'LC_CTYPE')\n"
        "    env = {k: v for k, v in os.environ.items() if k not in skip}\n"
        "    out.write(json.dumps([sys.argv[1:], env]) + '\\n')\n"
    )
    vllm.chmod(0o755)
    printed = CliRunner().invoke(cli, ["--workspace", str(ws.root), "serve", "--print"])
    assert printed.exit_code == 0, printed.output
    lines = [line for line in printed.output.splitlines() if not line.startswith("#")]
    for line in lines:
        subprocess.run(["/bin/sh", "-c", line], check=True, env={"PATH": "/usr/bin:/bin"})
    got = [json.loads(line) for line in record.read_text().splitlines()]
    assert got == [[command.argv[1:], command.env] for command in serve_commands(ws)]
    argv = got[0][0]
    modules = argv[argv.index("--lora-modules") + 1 :]
    assert [parse_lora_module(value) for value in modules] == [
        ("scope-v1", str(ws.root / scope.path))
    ]


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


def test_a_workspace_reached_through_a_link_is_the_same_workspace_to_its_server(
    tmp_path: Path,
) -> None:
    """vLLM reports the paths it was given, unresolved: a server started on the workspace's
    real path serves the base and the adapters of a console that reached it through a link."""
    ws = _workspace(tmp_path / "real")
    row = _version(ws, "scope", 1, "active", 16)
    link = tmp_path / "link"
    link.symlink_to(ws.root)
    with FakeVllm(str(ws.root / "models/reasoning")) as fake:
        fake.loaded["scope-v1"] = str(ws.root / row.path)
        linked = Workspace.open(link)
        served = load_version(_client(fake), linked, version_by_id(linked, row.id))
        assert served.root == str(ws.root / row.path)
        assert fake.load_requests == []


def test_a_generation_config_that_cannot_be_written_is_a_clear_error(tmp_path: Path) -> None:
    ws = _workspace(tmp_path / "ws")
    (ws.root / "serving").write_text("in the way")
    result = CliRunner().invoke(cli, ["--workspace", str(ws.root), "serve", "--print"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"cannot write {ws.root / 'serving/reasoning/generation_config.json'}" in result.output
