"""`cra doctor`: one line per check, ok/warn/fail, exit 1 on a failure, nothing changed.

Runs on this machine for real (sandbox, git, torch, disk, the database). The GPU cannot be
reached here, so `nvidia-smi` is a script on PATH printing what the real one prints for the
query; vLLM is a real virtual environment whose installed vllm is a dist-info of the version
under test, found through a `vllm` entry point whose first line names that environment's
Python, as pip writes it.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from eval_fixtures import add_version, pass_gate

from app.cli import cli
from engine.adapters.activation import promote
from engine.bases.registry import register_base
from engine.core.workspace import Workspace
from engine.reports import doctor
from engine.reports.doctor import gpu_pins, run_checks
from engine.serving.vllm_client import VLLM_PIN


def _model(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights" * 100)


def _workspace(root: Path, backend: str = "local") -> Workspace:
    root.mkdir()
    _model(root / "models/reasoning")
    (root / "cra.toml").write_text(
        f'[evaluation]\nbackend = "{backend}"\n'
        '[serving.bases]\nreasoning = "models/reasoning"\n'
        '[training.base_models]\nreasoning = "models/reasoning"\n'
    )
    return Workspace.open(root)


def _by_name(ws: Workspace) -> dict[str, tuple[str, str]]:
    return {check.name: (check.status, check.detail) for check in run_checks(ws)}


def _doctor(ws: Workspace, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--workspace", str(ws.root), "doctor", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def _on_path(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


def test_a_cpu_machine_is_ready_for_the_demo_and_says_what_it_lacks(tmp_path: Path) -> None:
    ws = _workspace(tmp_path / "ws")
    register_base(ws, "reasoning")
    before = (ws.root / "cra.sqlite").read_bytes()
    code, out, err = _doctor(ws)
    assert code == 0, out + err
    lines = out.splitlines()

    def shown(prefix: str, text: str) -> bool:
        return any(line.startswith(prefix) and text in line for line in lines)

    assert lines[0].startswith("ok    console ")
    assert any(line.startswith("ok    sandbox ") for line in lines)
    assert any(line.startswith("ok    git ") and "git version" in line for line in lines)
    assert any(
        line.startswith("warn  gpu ") and "nvidia-smi is not on PATH" in line for line in lines
    )
    assert any(line.startswith("warn  torch ") and "a CPU build" in line for line in lines)
    assert any(line.startswith("ok    gpu set ") and "the CPU set" in line for line in lines)
    assert any(line.startswith("warn  vllm ") and VLLM_PIN in line for line in lines)
    assert any(line.startswith("ok    database ") for line in lines)
    assert shown("ok    base reasoning ", "reasoning-base-v1: 2 files match")
    assert (ws.root / "cra.sqlite").read_bytes() == before
    code, out, _ = _doctor(ws, "--json")
    assert {item["name"]: item["status"] for item in json.loads(out)}["base coding"] == "ok"


def test_the_gpu_pins_are_the_gpu_extra() -> None:
    pins = {pin.name: str(pin.specifier) for pin in gpu_pins()}
    assert pins["unsloth"] == "==2026.10.9" and pins["trl"] == "==1.15.0"
    assert "torch" not in pins and "pytest" not in pins


def test_a_changed_or_tampered_base_and_a_tampered_adapter_fail(tmp_path: Path) -> None:
    ws = _workspace(tmp_path / "ws")
    register_base(ws, "reasoning")
    version = add_version(ws, "scope", 1)
    pass_gate(ws, "scope-v1", "base")
    promote(ws, "scope-v1", operator="ana")
    assert _by_name(ws)["adapters"] == ("ok", "files match: scope-v1")
    (ws.root / "models/reasoning/model.safetensors").write_bytes(b"other weights")
    (ws.root / version.path / "adapter_config.json").write_text('{"r": 64}')
    checks = _by_name(ws)
    assert checks["base reasoning"] == (
        "fail",
        "reasoning-base-v1: file model.safetensors does not match its registered sha256",
    )
    status, detail = checks["adapters"]
    assert status == "fail" and "adapter_config.json does not match" in detail
    code, _, err = _doctor(ws)
    assert code == 1 and "not ready: base reasoning, adapters failed" in err
    _model(ws.root / "models/reasoning-v2")
    text = (ws.root / "cra.toml").read_text().replace("models/reasoning", "models/reasoning-v2")
    (ws.root / "cra.toml").write_text(text)
    status, detail = _by_name(Workspace.open(ws.root))["base reasoning"]
    assert status == "fail" and "cra bases register reasoning" in detail


def test_an_active_version_on_an_old_base_warns(tmp_path: Path) -> None:
    ws = _workspace(tmp_path / "ws")
    register_base(ws, "reasoning")
    add_version(ws, "scope", 1)
    pass_gate(ws, "scope-v1", "base")
    promote(ws, "scope-v1", operator="ana")
    _model(ws.root / "models/reasoning-v2")
    text = (ws.root / "cra.toml").read_text().replace("models/reasoning", "models/reasoning-v2")
    (ws.root / "cra.toml").write_text(text)
    ws = Workspace.open(ws.root)
    register_base(ws, "reasoning")
    status, detail = _by_name(ws)["adapters"]
    assert status == "warn" and "on an older base, never served: scope-v1" in detail


def _nvidia_smi(folder: Path, body: str) -> None:
    folder.mkdir(exist_ok=True)
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)


def test_each_gpu_is_a_line_and_a_cpu_torch_beside_a_gpu_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = _workspace(tmp_path / "ws")
    bin_dir = tmp_path / "bin"
    _nvidia_smi(
        bin_dir,
        'test "$1" = "--query-gpu=index,name,memory.total,memory.free" || exit 9\n'
        'echo "0, NVIDIA H100 80GB HBM3, 81559, 80471"\n'
        'echo "1, NVIDIA H100 80GB HBM3, 81559, 2048"',
    )
    _on_path(monkeypatch, bin_dir)
    checks = _by_name(ws)
    assert checks["gpu 0"] == ("ok", "NVIDIA H100 80GB HBM3: 78.6 GiB free of 79.6 GiB")
    status, detail = checks["gpu 1"]
    assert status == "warn" and detail.startswith("NVIDIA H100 80GB HBM3: 2.0 GiB free")
    assert checks["torch"][0] == "fail" and "a CPU build" in checks["torch"][1]
    assert checks["gpu set"][0] == "warn"
    _nvidia_smi(
        bin_dir, 'echo "NVIDIA-SMI has failed because it could not communicate" >&2; exit 9'
    )
    assert _by_name(ws)["gpu"][0] == "fail"


def _vllm_env(root: Path, version: str) -> Path:
    """A real virtual environment whose site-packages holds vllm `version`'s dist-info, and
    a `vllm` entry point, as pip installs one."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    site = next((root / "lib").glob("python3.*/site-packages"))
    dist = site / f"vllm-{version}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}\n")
    script = root / "bin" / "vllm"
    script.write_text(f"#!{root / 'bin' / 'python'}\nraise SystemExit('not run by the doctor')\n")
    script.chmod(0o755)
    return root


def _use_vllm_env(ws: Workspace, env: Path) -> Workspace:
    config = ws.root / "cra.toml"
    config.write_text(config.read_text() + f'[serving]\nvllm_env = "{env}"\n')
    return Workspace.open(ws.root)


def test_vllm_is_read_in_its_own_environment_against_the_pin(tmp_path: Path) -> None:
    """The vllm checked is the one `[serving] vllm_env` holds, whatever is on PATH."""
    ws = _workspace(tmp_path / "ws", backend="server")
    status, detail = _by_name(_use_vllm_env(ws, tmp_path / "none"))["vllm"]
    assert status == "fail" and f"no vllm in {tmp_path / 'none'}" in detail
    assert "cra serve --install-vllm" in detail and VLLM_PIN in detail
    pinned = VLLM_PIN.split("==")[1]
    good = _vllm_env(tmp_path / "good", pinned)
    status, detail = _by_name(_use_vllm_env(_workspace(tmp_path / "ws2", "server"), good))["vllm"]
    assert (status, detail) == ("ok", f"vllm {pinned} in {good}")
    old = _vllm_env(tmp_path / "old", "0.30.0")
    status, detail = _by_name(_use_vllm_env(_workspace(tmp_path / "ws3", "server"), old))["vllm"]
    assert (status, detail) == (
        "fail",
        f"vllm 0.30.0 in {old}; the console is checked against {VLLM_PIN}",
    )


def test_little_free_disk_warns_then_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = _workspace(tmp_path / "ws")
    free = os.statvfs(ws.root).f_bavail * os.statvfs(ws.root).f_frsize
    monkeypatch.setattr(doctor, "DISK_WARN_BYTES", free * 2)
    assert _by_name(ws)["disk"][0] == "warn"
    monkeypatch.setattr(doctor, "DISK_FAIL_BYTES", free * 2)
    status, detail = _by_name(ws)["disk"]
    assert status == "fail" and "a checkpoint may not fit" in detail
