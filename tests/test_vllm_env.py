"""vLLM's own environment: `cra serve --install-vllm` builds it offline from wheels, `cra doctor`
reads it, `cra serve --launch` starts the `vllm` it holds.

vLLM itself has no CPU wheel, so the wheels are real wheels built here: a `vllm` 0.34.0 whose
`vllm` script records what it was started with and answers `/v1/models` as vLLM does, needing
a `torch` 2.14.0 (vLLM's, not the console's 2.13.0). They are installed by the bundled uv into a
real virtual environment, and the launch is the real CLI in a subprocess.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from fake_vllm import write_base_tokenizer
from vllm_wheels import PINNED, vllm_wheels

from app.cli import cli
from engine.bundle.build import vllm_wheels as vllm_bundle_wheels
from engine.bundle.manifest import LOCK_FILE, VLLM_DIR
from engine.bundle.wheelhouse import resolve_target
from engine.core.workspace import Workspace
from engine.reports.doctor import run_checks
from engine.serving.command import free_base_port
from engine.serving.vllm_client import VLLM_PIN, ServingError, VllmClient


def _workspace(root: Path, env: Path, port: int = 8000) -> Workspace:
    base = root / "models/reasoning"
    base.mkdir(parents=True)
    (base / "config.json").write_text("{}")
    write_base_tokenizer(base)
    (root / "cra.toml").write_text(
        f'[evaluation]\nbackend = "server"\n[serving]\nvllm_env = "{env}"\n'
        f'base_url = "http://127.0.0.1:{port}"\n[serving.bases]\nreasoning = "models/reasoning"\n'
    )
    return Workspace.open(root, create=True)


def _cra(ws: Workspace, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--workspace", str(ws.root), *args])
    return result.exit_code, result.output


@pytest.mark.slow
def test_vllm_gets_an_environment_of_its_own_and_the_console_starts_it_from_there(
    tmp_path: Path,
) -> None:
    env = tmp_path / "vllm env"
    port = free_base_port()
    ws = _workspace(tmp_path / "ws", env, port)
    wheels = vllm_wheels(tmp_path / "vllm-wheels")
    code, out = _cra(ws, "serve", "--install-vllm", str(wheels))
    assert code == 0, out
    assert f"vllm {PINNED} installed in {env}" in out
    torch = subprocess.run(
        [env / "bin/python", "-c", "import torch; print(torch.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert torch.stdout.strip() == "2.14.0"
    doctor = {check.name: (check.status, check.detail) for check in run_checks(ws)}
    assert doctor["vllm"] == ("ok", f"vllm {PINNED} in {env}")

    code, out = _cra(ws, "serve", "--install-vllm", str(wheels))
    assert code == 1 and f"{env} ([serving] vllm_env) exists and is not empty" in out

    record = tmp_path / "started.jsonl"
    launch = subprocess.Popen(
        [sys.executable, "-m", "app", "--workspace", str(ws.root), "serve", "--launch"],
        env={**os.environ, "FAKE_VLLM_RECORD": str(record)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        client = VllmClient(f"http://127.0.0.1:{port}", 2)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if launch.poll() is not None:
                output = launch.stdout.read().decode() if launch.stdout else ""
                pytest.fail(f"cra serve --launch ended: {output}")
            if record.exists():
                try:
                    models = client.models()
                    break
                except ServingError:
                    time.sleep(0.1)
            time.sleep(0.1)
        else:
            pytest.fail("the launched vllm never answered")
        assert [model.id for model in models] == ["reasoning", str(ws.root / "models/reasoning")]
        started = json.loads(record.read_text().splitlines()[0])
        assert started["python"].startswith(str(env))
        assert started["env"] == {
            "CUDA_VISIBLE_DEVICES": "0",
            "VLLM_NO_USAGE_STATS": "1",
            "HF_HUB_OFFLINE": "1",
        }
        argv = started["argv"]
        assert argv[argv.index("--gpu-memory-utilization") + 1] == "0.9"
    finally:
        os.killpg(launch.pid, signal.SIGTERM)
        launch.wait(timeout=60)


@pytest.mark.parametrize(
    ("wheels", "says"),
    [
        ({"vllm": "0.30.0"}, "Because there is no version of vllm==0.34.0"),
        ({"torch": "2.13.0"}, "torch==2.14.0"),
    ],
)
def test_an_install_that_cannot_complete_leaves_no_environment(
    tmp_path: Path, wheels: dict[str, str], says: str
) -> None:
    env = tmp_path / "vllm-env"
    ws = _workspace(tmp_path / "ws", env)
    code, out = _cra(ws, "serve", "--install-vllm", str(vllm_wheels(tmp_path / "wheels", **wheels)))
    assert code == 1 and "Traceback" not in out
    assert f"error: making {env}: uv pip failed: " in out and says in out
    assert not env.exists()
    code, out = _cra(ws, "serve", "--install-vllm", str(tmp_path / "nowhere"))
    assert code == 1 and "nowhere: not a folder of wheels" in out


def test_the_bundles_vllm_folder_is_locked_and_installs_exactly_its_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cra bundle --vllm`'s step downloads vLLM's set apart from the console's (pip, here from a
    local folder as its find-links) and locks it by hash; `--install-vllm` on that folder installs
    exactly the lock, so a wheel changed after the bundle was made is refused."""
    index = vllm_wheels(tmp_path / "index")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    folder = tmp_path / "bundle" / VLLM_DIR
    folder.parent.mkdir()
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    pins = vllm_bundle_wheels(resolve_target(None, ()), folder, scratch, "uv test")
    assert sorted(pin.name for pin in pins) == ["torch", "vllm"]
    lock = (folder / LOCK_FILE).read_text()
    assert lock.startswith(f"# {VLLM_PIN} for Python ") and "--hash=sha256:" in lock

    env = tmp_path / "vllm-env"
    ws = _workspace(tmp_path / "ws", env)
    torch = next((folder / "wheels").glob("torch-*.whl"))
    original = torch.read_bytes()
    torch.write_bytes(original + b"\0")
    code, out = _cra(ws, "serve", "--install-vllm", str(folder))
    assert code == 1 and "hash" in out.lower() and not env.exists()
    torch.write_bytes(original)
    code, out = _cra(ws, "serve", "--install-vllm", str(folder))
    assert code == 0, out
    assert f"vllm {PINNED} installed in {env}" in out
