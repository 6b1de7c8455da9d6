"""The CPU stand-in server: the tiny model and a LoRA adapter served over real HTTP, driven by
the same clients the console uses for vLLM (`VllmClient`, `load_version`'s endpoints, `chat`)."""

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from eval_fixtures import pass_gate
from peft import LoraConfig, get_peft_model
from pilot_wait import wait_for
from transformers import AutoModelForCausalLM

from engine.adapters.activation import resolve
from engine.core.hashing import sha256_file
from engine.core.night_events import night_events
from engine.core.workspace import Workspace
from engine.promotion.switch import promote_version
from engine.serving.chat import chat
from engine.serving.command import free_base_port, server_url
from engine.serving.cpu_server import Model, RequestRefused, cpu_server
from engine.serving.status import serving_status
from engine.serving.vllm_client import ServingError, VllmClient
from engine.training.tiny_model import build_tiny_model

MESSAGES = [{"role": "system", "content": "You plan."}, {"role": "user", "content": "Fix it."}]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny base and an adapter whose weights move its answers away from the base's."""
    root = tmp_path_factory.mktemp("cpu-server")
    base = build_tiny_model(root / "base")
    torch.manual_seed(1)
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base),
        LoraConfig(r=8, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False),
    )
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.mul_(50)
    model.save_pretrained(root / "adapter")
    return base, root / "adapter"


@pytest.fixture(scope="module")
def server(models: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The stand-in on the tiny base with the adapter preloaded as precision-v4."""
    base, adapter = models
    log = tmp_path_factory.mktemp("log") / "server.log"
    with cpu_server(base, log, {"precision-v4": adapter}) as url:
        yield url


@pytest.mark.slow
def test_it_answers_like_vllm_for_the_base_and_its_adapters(
    server: str, models: tuple[Path, Path]
) -> None:
    base, adapter = models
    client = VllmClient(server, 30)
    listed = [(m.id, m.root, m.parent) for m in client.models()]
    assert listed == [(str(base), str(base), None), ("precision-v4", str(adapter), str(base))]
    first = chat(server, str(base), MESSAGES, 12, 30)
    assert first.prompt_tokens > 0 and 0 < first.completion_tokens <= 12 and first.text
    assert chat(server, str(base), MESSAGES, 12, 30) == first
    preloaded = chat(server, "precision-v4", MESSAGES, 12, 30)
    assert preloaded.text != first.text

    client.load_adapter("scope-v1", str(adapter))
    loaded = [(m.id, m.root, m.parent) for m in client.models() if m.id == "scope-v1"]
    assert loaded == [("scope-v1", str(adapter), str(base))]
    assert chat(server, "scope-v1", MESSAGES, 12, 30) == preloaded
    assert chat(server, str(base), MESSAGES, 12, 30) == first
    with pytest.raises(ServingError, match="HTTP 400: The lora adapter 'scope-v1' has already"):
        client.load_adapter("scope-v1", str(adapter))

    short = chat(server, "scope-v1", MESSAGES, 5, 30)
    assert (short.finish_reason, short.completion_tokens) == ("length", 5)
    with pytest.raises(ServingError, match=r"HTTP 404: The model `nope` does not exist\."):
        chat(server, "nope", MESSAGES, 5, 30)

    client.unload_adapter("scope-v1")
    assert client.loaded_adapters() == {"precision-v4"}
    assert chat(server, str(base), MESSAGES, 12, 30) == first
    with pytest.raises(ServingError, match=r"HTTP 404: The model `scope-v1` does not exist\."):
        chat(server, "scope-v1", MESSAGES, 5, 30)
    with pytest.raises(ServingError, match="HTTP 404: The lora adapter 'scope-v1' cannot be"):
        client.unload_adapter("scope-v1")

    client.unload_adapter("precision-v4")
    assert chat(server, str(base), MESSAGES, 12, 30) == first
    client.load_adapter("precision-v4", str(adapter))
    assert chat(server, "precision-v4", MESSAGES, 12, 30) == preloaded


@pytest.mark.slow
def test_its_lora_routes_and_rank_limit_are_vllms(
    models: tuple[Path, Path], tmp_path: Path
) -> None:
    """Started as vLLM is without VLLM_ALLOW_RUNTIME_LORA_UPDATING, it has no LoRA routes; with
    `--max-lora-rank` below an adapter's rank, it refuses the load as vLLM does."""
    base, adapter = models
    with cpu_server(base, tmp_path / "off.log", runtime_updates=False) as url:
        with pytest.raises(ServingError, match="no runtime LoRA endpoints: .*UPDATING=True"):
            VllmClient(url, 30).load_adapter("scope-v1", str(adapter))
        assert chat(url, str(base), MESSAGES, 3, 30).completion_tokens == 3
    with (
        cpu_server(base, tmp_path / "rank.log", max_lora_rank=4) as url,
        pytest.raises(
            ServingError,
            match=r"HTTP 500: Call to add_lora method failed: LoRA rank 8 is greater than "
            r"max_lora_rank 4\.",
        ),
    ):
        VllmClient(url, 30).load_adapter("scope-v1", str(adapter))


@pytest.mark.slow
def test_it_refuses_what_vllm_refuses_and_keeps_serving(
    server: str, models: tuple[Path, Path], tmp_path: Path
) -> None:
    base, adapter = models
    client = VllmClient(server, 30)
    before = client.models()
    missing = f"HTTP 404: Loading lora scope-v2 failed: No adapter found for {base}"
    with pytest.raises(ServingError, match=missing):
        client.load_adapter("scope-v2", str(base))
    no_tensors = tmp_path / "no-tensors"
    no_tensors.mkdir()
    shutil.copy(adapter / "adapter_config.json", no_tensors)
    with pytest.raises(ServingError, match="HTTP 500: .*no-tensors doesn't contain tensors"):
        client.load_adapter("scope-v2", str(no_tensors))
    junk = tmp_path / "junk"
    shutil.copytree(adapter, junk)
    (junk / "adapter_model.safetensors").write_bytes(b"not tensors")
    with pytest.raises(ServingError, match="HTTP 500: Call to add_lora method failed: "):
        client.load_adapter("scope-v2", str(junk))
    conflict = f"HTTP 400: The lora adapter '{base}' conflicts with a served base model"
    with pytest.raises(ServingError, match=conflict):
        client.load_adapter(str(base), str(adapter))
    assert client.models() == before
    with pytest.raises(ServingError, match="HTTP 400: max_tokens must be at least 1, got 0"):
        chat(server, str(base), MESSAGES, 0, 30)
    with pytest.raises(ServingError, match="HTTP 400: messages must be a non-empty list"):
        chat(server, str(base), [{"role": "user"}], 5, 30)  # type: ignore[list-item]
    assert chat(server, "precision-v4", MESSAGES, 3, 30).completion_tokens == 3


@pytest.mark.slow
def test_a_first_load_that_leaves_lora_layers_in_the_base_stops_serving(
    models: tuple[Path, Path], tmp_path: Path
) -> None:
    base, adapter = models
    junk = tmp_path / "junk"
    shutil.copytree(adapter, junk)
    (junk / "adapter_model.safetensors").write_bytes(b"not tensors")
    model = Model(base)
    with pytest.raises(RequestRefused, match="Call to add_lora method failed: "):
        model.load("scope-v2", str(junk))
    with pytest.raises(RequestRefused, match="left LoRA layers in the base model; restart"):
        model.complete(str(base), MESSAGES, 3)


def test_it_stops_on_every_end_its_generation_config_names(
    models: tuple[Path, Path], tmp_path: Path
) -> None:
    """As vLLM does, generation ends on the tokenizer's eos and on each `eos_token_id` of the
    generation config it was given (`cra serve` adds the adapters' end of turn there)."""
    base, _ = models
    plain = Model(base)
    prompt = plain.tokenizer.apply_chat_template(
        MESSAGES, tokenize=False, add_generation_prompt=True
    )
    inputs = plain.tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        output = plain.model.generate(
            **inputs, max_new_tokens=8, do_sample=False, eos_token_id=plain.stop_ids
        )
    generated = output[0, inputs["input_ids"].shape[1] :].tolist()
    assert len(generated) == 8, "the tiny model runs to the limit unless told to stop"
    at = 0
    folder = tmp_path / "generation"
    folder.mkdir()
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": [generated[at]]}))
    stopping = Model(base, generation_config=folder)
    assert stopping.stop_ids == [*plain.stop_ids, generated[at]]
    answer = stopping.complete(str(base), MESSAGES, 8)
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"]["completion_tokens"] == at + 1


def test_chat_names_the_server_it_cannot_reach() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(ServingError, match=f"{url}/v1/chat/completions \\(model m\\): cannot"):
        chat(url, "m", MESSAGES, 5, 5)


def test_a_server_that_cannot_start_says_why(tmp_path: Path) -> None:
    refused = pytest.raises(ServingError, match="exited .* before it served: .*not a model folder")
    with refused, cpu_server(tmp_path, tmp_path / "bad.log"):
        pass


def _serving_workspace(models: tuple[Path, Path], root: Path) -> Workspace:
    """A workspace serving the tiny base as `reasoning` on a free port, with candidate scope-v1
    (the module's adapter) passed by the gate."""
    base, adapter = models
    root.mkdir()
    (root / "cra.toml").write_text(
        f'[serving]\nbase_url = "http://127.0.0.1:{free_base_port()}"\ntimeout_s = 30\n'
        f'[serving.bases]\nreasoning = "{base}"\n',
        encoding="utf-8",
    )
    ws = Workspace.open(root)
    folder = ws.adapters_dir / "scope" / "v1"
    shutil.copytree(adapter, folder)
    files = {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file()}
    ws.db["adapter_versions"].insert(
        {
            "stage": "scope",
            "version": 1,
            "name": "scope-v1",
            "status": "candidate",
            "base_model": "reasoning",
            "base_model_path": str(base),
            "rank": 8,
            "path": "adapters/scope/v1",
            "files_json": json.dumps(files),
            "created_at": "2026-11-22T01:00:00Z",
        }
    )
    pass_gate(ws, "scope-v1", "base")
    return ws


def _server_pid(supervisor: subprocess.Popen[str]) -> int:
    """The pid of the server the supervisor says it started (its first `started:` line)."""
    assert supervisor.stdout is not None
    for line in supervisor.stdout:
        found = re.fullmatch(r"started: base reasoning at .* \(pid (\d+)\), with .*\n", line)
        if found:
            return int(found[1])
    raise AssertionError("the supervisor never said it started the server")


def _launch(ws: Workspace) -> subprocess.Popen[str]:
    """`cra serve --launch --cpu` in a subprocess, returned once its server answers."""
    cra = str(Path(sys.executable).parent / "cra")
    server = subprocess.Popen(
        [cra, "--workspace", str(ws.root), "serve", "--launch", "--cpu"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )

    def answering() -> bool:
        assert server.poll() is None, server.stdout.read() if server.stdout else ""
        return serving_status(ws)[0].running

    wait_for(answering, "the stand-in to answer", limit_s=120, every_s=0.2)
    return server


@pytest.mark.slow
def test_cra_serve_launches_the_stand_in_and_promotion_loads_on_it(
    models: tuple[Path, Path], tmp_path: Path
) -> None:
    ws = _serving_workspace(models, tmp_path / "ws")
    url = server_url(ws, "reasoning")
    server = _launch(ws)
    try:
        result = promote_version(ws, "scope-v1")
        assert result.server == f"scope-v1 loaded on {url}"
        [status] = serving_status(ws)
        assert (status.loaded, status.missing) == (["scope-v1"], [])
        answer = chat(url, "scope-v1", MESSAGES, 4, 30)
        assert answer.completion_tokens >= 1
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    assert not serving_status(ws)[0].running


def test_every_name_resolve_prints_is_served(models: tuple[Path, Path], tmp_path: Path) -> None:
    """`cra adapters resolve` names the bare base by its kind when no version is active, and the
    active version after a promotion: the server `cra serve` starts answers both."""
    ws = _serving_workspace(models, tmp_path / "ws")
    url = server_url(ws, "reasoning")
    server = _launch(ws)
    try:
        assert resolve(ws, "scope") == "reasoning"
        assert chat(url, resolve(ws, "scope"), MESSAGES, 4, 30).completion_tokens >= 1
        promote_version(ws, "scope-v1")
        assert resolve(ws, "scope") == "scope-v1"
        assert chat(url, resolve(ws, "scope"), MESSAGES, 4, 30).completion_tokens >= 1
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)


def test_cra_serve_stops_its_servers_when_it_is_terminated(
    models: tuple[Path, Path], tmp_path: Path
) -> None:
    """SIGTERM to `cra serve --launch` stops the servers it started (their process groups),
    rather than leaving them answering on the workspace's ports."""
    ws = _serving_workspace(models, tmp_path / "ws")
    server = _launch(ws)
    pid = _server_pid(server)
    try:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        assert not serving_status(ws)[0].running
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_a_crashed_server_comes_back_with_the_active_version_and_is_reported(
    models: tuple[Path, Path], tmp_path: Path
) -> None:
    """The stand-in is killed after scope-v1 went live: the supervisor records the crash and
    starts it again with scope-v1 preloaded, so requests naming it are answered again."""
    ws = _serving_workspace(models, tmp_path / "ws")
    url = server_url(ws, "reasoning")
    supervisor = _launch(ws)
    pid = _server_pid(supervisor)
    try:
        promote_version(ws, "scope-v1")
        os.killpg(pid, signal.SIGKILL)

        def back_with_scope() -> bool:
            status = serving_status(ws)[0]
            return status.running and status.loaded == ["scope-v1"]

        wait_for(back_with_scope, "the restarted stand-in with scope-v1", limit_s=120, every_s=0.2)
        assert chat(url, "scope-v1", MESSAGES, 4, 30).completion_tokens >= 1
        events = [(e.kind, e.detail) for e in night_events(ws, "serve")]
        kinds = [kind for kind, _ in events]
        assert kinds[:3] == ["supervisor", "started", "crashed"]
        assert events[2][1] == "base reasoning exited with status -9"
        assert events[3][0] == "restarted" and events[3][1].endswith("with scope-v1")
    finally:
        supervisor.send_signal(signal.SIGTERM)
        supervisor.wait(timeout=60)
    assert not serving_status(ws)[0].running
