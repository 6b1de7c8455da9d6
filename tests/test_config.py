"""Workspace config: defaults, overrides, and bad values reported with file, key and reason."""

import socket
from pathlib import Path

import pytest

from engine.core.config import DEFAULT_MOUNT_ROOTS, load_config
from engine.core.errors import ConfigError
from engine.core.workspace import Workspace
from engine.demo.workspace import demo_config
from engine.serving.command import free_base_port


def test_missing_file_gives_defaults(tmp_path: Path):
    config = load_config(tmp_path / "cra.toml")
    assert config.usb.mount_roots == DEFAULT_MOUNT_ROOTS
    assert config.validation.dry_run_timeout_s == 300


def test_values_override_defaults(tmp_path: Path):
    path = tmp_path / "cra.toml"
    path.write_text('operator = "night-shift"\n[validation]\ndry_run_timeout_s = 30\n')
    config = load_config(path)
    assert config.operator == "night-shift"
    assert config.validation.dry_run_timeout_s == 30


def test_bad_value_names_file_key_and_reason(tmp_path: Path):
    path = tmp_path / "cra.toml"
    path.write_text("[validation]\ndry_run_timeout_s = -5\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert str(path) in message
    assert "validation.dry_run_timeout_s" in message
    assert "greater than 0" in message


def test_unknown_key_is_refused(tmp_path: Path):
    path = tmp_path / "cra.toml"
    path.write_text("[usb]\nmount_root = ['/media/*']\n")
    with pytest.raises(ConfigError, match=r"usb\.mount_root: Extra inputs are not permitted"):
        load_config(path)


def test_invalid_toml_is_reported(tmp_path: Path):
    path = tmp_path / "cra.toml"
    path.write_text("[usb\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_workspace_env_var_and_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CRA_WORKSPACE", str(tmp_path / "ws"))
    ws = Workspace.open()
    assert ws.root == tmp_path / "ws"
    for sub in ("corpus", "adapters", "logs"):
        assert (ws.root / sub).is_dir()
    assert (ws.root / "cra.sqlite").is_file()


def test_workspace_that_is_a_file_is_refused(tmp_path: Path):
    (tmp_path / "ws").write_text("")
    with pytest.raises(Exception, match="workspace must be a folder"):
        Workspace.open(tmp_path / "ws")


def test_demo_config_keeps_a_drive_path_with_quotes_whole(tmp_path: Path):
    """The demo's cra.toml is written by a TOML library: a path holding `"`, `\\` or a newline
    stays one string and the config still validates."""
    drive = tmp_path / 'a"b\\c\nd' / "usb-drive"
    path = tmp_path / "cra.toml"
    path.write_text(demo_config(drive, 8765), encoding="utf-8")
    assert load_config(path).usb.extra_dirs == [drive]


def test_demo_servers_take_free_ports_recorded_in_the_workspace(tmp_path: Path):
    """A demo workspace's servers answer on a port free when it was built, recorded in its
    cra.toml, not on a fixed one: two demo workspaces on one machine do not share a server."""
    port = free_base_port()
    with socket.socket() as reasoning, socket.socket() as coding:
        reasoning.bind(("127.0.0.1", port))
        coding.bind(("127.0.0.1", port + 1))
        reasoning.listen()
        other = free_base_port()
        assert other not in (port - 1, port, port + 1)
    path = tmp_path / "cra.toml"
    path.write_text(demo_config(tmp_path / "usb-drive", other), encoding="utf-8")
    assert load_config(path).serving.base_url == f"http://127.0.0.1:{other}"
