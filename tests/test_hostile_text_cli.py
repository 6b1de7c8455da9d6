"""Untrusted text reaches the terminal neutralised through every `cra` command that prints it.

One hostile string (clear the screen, retitle the terminal through OSC and BEL, a C1 CSI, a
right-to-left override) is written where the data really comes from: a commit subject and the
fields of a repo package's manifest, a logged call of the agent's raw DB, a review note, an
operator's name and reasons, a campaign's reason, a training run's reason, a dataset's curator.
Each command's output must hold none of those code points raw and each of them as its escape.
Click strips some escape sequences itself, but only when the output is not a terminal, so the
commands run with `color=True`, as on a terminal; one runs in a real `cra` process on a pty.
"""

import json
import os
import pty
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from eval_fixtures import add_version
from test_import_logs import _SCHEMA, _call, _run
from test_review_engine import item
from test_training_pane import add_dataset, add_run

from app.cli import cli
from engine.core.workspace import Workspace
from engine.demo.hostile import edit_manifest
from engine.harness.campaigns import create_campaign, parse_spec
from engine.intake.approval import approve_package
from engine.training_data.review import draw_sample, set_note
from engine.training_data.store import add_items

HOSTILE = "pwn \x1b[2J\x1b]0;pwned\x07 bell\x07 csi\x9b6n rlo\u202eexe.txt"
RAW = ("\x1b", "\x07", "\x9b", "\u202e")
SHOWN = ("\\x1b[2J\\x1b]0;pwned\\x07", "bell\\x07", "csi\\x9b6n", "rlo\\u202eexe.txt")


def assert_neutralised(result: Result) -> None:
    """No control of the hostile string reached the output raw; each is there as its escape."""
    output = result.output
    for raw in RAW:
        assert raw not in output, f"{raw!r} printed raw:\n{output!r}"
    for shown in SHOWN:
        assert shown in output, f"{shown!r} not shown:\n{output!r}"


def cra(ws: Workspace, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--workspace", str(ws.root), *args], color=True)


def hostile_package(package: Path) -> None:
    """The package's first commit subject and its description hold the hostile string."""

    def edit(data: dict) -> None:
        data["description"] = HOSTILE
        data["commits"][0]["subject"] = HOSTILE

    edit_manifest(package, edit)


def test_ingest_validate_list_reject_and_report(ws: Workspace, valid_package: Path):
    """`ingest validate` (a check's detail quoting the manifest), `ingest reject` and
    `report` (the reason), `ingest approve` and `ingest list` (the approving operator)."""
    edit_manifest(valid_package, lambda data: data.update(schema_version=HOSTILE))
    result = cra(ws, "ingest", "validate", str(valid_package))
    assert result.exit_code == 1, result.output
    assert_neutralised(result)

    result = cra(ws, "ingest", "reject", str(valid_package), "--reason", HOSTILE)
    assert result.exit_code == 0, result.output
    assert_neutralised(result)
    assert_neutralised(cra(ws, "report", "--since", "1d"))

    edit_manifest(valid_package, lambda data: data.update(schema_version=1))
    hostile_package(valid_package)
    result = cra(ws, "ingest", "approve", str(valid_package), "--operator", HOSTILE)
    assert result.exit_code == 0, result.output
    assert_neutralised(cra(ws, "ingest", "list"))
    listed = json.loads(cra(ws, "ingest", "list", "--json").stdout)
    assert listed[0]["approved_by"] == HOSTILE, "JSON keeps the text, escaped the JSON way"


@pytest.mark.slow
def test_harness_validate_status(ws: Workspace, valid_package: Path):
    """`harness validate` prints the commit subject; `harness status` a campaign's reason."""
    hostile_package(valid_package)
    digest = approve_package(ws, valid_package).digest
    sha = json.loads((valid_package / "manifest.json").read_text())["commits"][0]["sha"]
    result = cra(ws, "harness", "validate", digest[:12], "--commit", sha)
    assert result.exit_code == 0, result.output
    assert_neutralised(result)

    spec = parse_spec(
        {
            "packages": [digest],
            "pipeline": "gold",
            "model": "gold",
            "temperatures": [0.3],
            "seeds": [1],
        }
    )
    campaign_id = create_campaign(ws, spec, "night")
    with ws.db.conn:
        ws.db["campaigns"].update(campaign_id, {"status": "failed", "reason": HOSTILE})
    assert_neutralised(cra(ws, "harness", "status"))


def test_import_logs(ws: Workspace, tmp_path: Path):
    """A logged call whose type the agent wrote is counted under a reason that names it."""
    raw = tmp_path / "raw.sqlite"
    conn = sqlite3.connect(raw)
    conn.executescript(_SCHEMA)
    conn.close()
    _run(raw, "run-ok", 1, "/r/textkit", "2026-01-02 03:04:05")
    _call(raw, "run-ok", HOSTILE)
    result = cra(ws, "import-logs", str(raw))
    assert result.exit_code == 0, result.output
    assert_neutralised(result)
    report = json.loads(cra(ws, "import-logs", str(raw), "--json").stdout)
    assert f"no_stage:{HOSTILE}" in report["skipped"]


def test_review_show(ws: Workspace):
    """A round's items: the repo and task of a logged item, and a note."""
    add_items(ws.db, [item(0, repo=f"textkit {HOSTILE}", task_key=HOSTILE)])
    round_id = draw_sample(ws, "execute_code", 1, seed=1)
    set_note(ws, round_id, 1, HOSTILE)
    result = cra(ws, "review", "show", str(round_id))
    assert result.exit_code == 0, result.output
    assert_neutralised(result)
    shown = json.loads(cra(ws, "review", "show", str(round_id), "--json").stdout)
    assert shown["items"][0]["note"] == HOSTILE


def test_train_show(ws: Workspace):
    """A failed run's reason (the end of its log), who started it and its backend."""
    add_dataset(ws, "scope-d1", "scope")
    add_run(ws, 1, "scope-d1", "scope", "failed", 3, reason=HOSTILE)
    with ws.db.conn:
        ws.db["training_runs"].update(1, {"created_by": HOSTILE, "backend": HOSTILE})
    assert_neutralised(cra(ws, "train", "show", "1"))


def test_adapters_history_and_trace(ws: Workspace):
    """A rejection's reason and operator in `adapters history`; the curator in `trace`."""
    with ws.db.conn:
        ws.db["datasets"].insert(
            {
                "id": "scope-d1",
                "stage": "scope",
                "base_model": "reasoning",
                "format": "sft",
                "path": "datasets/scope-d1",
                "created_at": "2026-11-20T20:00:00Z",
                "created_by": HOSTILE,
                "manifest_sha256": "0" * 64,
            }
        )
    add_version(ws, "scope", 1, dataset_id="scope-d1")
    result = cra(ws, "adapters", "reject", "scope-v1", "--reason", HOSTILE, "--operator", HOSTILE)
    assert result.exit_code == 0, result.output
    assert_neutralised(result)
    assert_neutralised(cra(ws, "adapters", "history", "scope"))
    assert_neutralised(cra(ws, "adapters", "trace", "scope-v1"))


def test_an_error_quoting_untrusted_text(ws: Workspace, tmp_path: Path):
    """Click's one-line usage error naming a folder on a drive is neutralised too."""
    result = cra(ws, "ingest", "validate", str(tmp_path / HOSTILE))
    assert result.exit_code == 2, result.output
    assert_neutralised(result)


def test_a_real_cra_process_on_a_terminal(ws: Workspace, tmp_path: Path):
    """A real `cra` on a pty, where click strips nothing: its streams neutralise what it prints."""
    drive = tmp_path / f"drive {HOSTILE}"
    drive.mkdir()
    cra_bin = Path(sys.executable).with_name("cra")
    primary, secondary = pty.openpty()
    try:
        done = subprocess.run(
            [str(cra_bin), "--workspace", str(ws.root), "ingest", "validate", str(drive)],
            stdin=subprocess.DEVNULL,
            stdout=secondary,
            stderr=secondary,
            check=False,
            timeout=60,
        )
        os.close(secondary)
        output = _read_all(primary).decode("utf-8")
    finally:
        os.close(primary)
    assert done.returncode != 0
    for raw in RAW:
        assert raw not in output, f"{raw!r} printed raw:\n{output!r}"
    for shown in SHOWN:
        assert shown in output, f"{shown!r} not shown:\n{output!r}"


def _read_all(fd: int) -> bytes:
    """Everything on a pty's primary side once its other side is closed (EIO at the end)."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return b"".join(chunks)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
