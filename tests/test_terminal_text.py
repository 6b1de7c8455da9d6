"""Untrusted text never reaches a terminal raw: `visible`, and every `cra` command's output.

The CLI's streams pass every write through `visible` (`app/visible_output.py`), so these tests
feed hostile text through real commands on real data, and one through a real `cra` process on a
terminal. Click strips some escape sequences itself, but only when the output is not a terminal:
the tests invoke with `color=True`, as a terminal would be treated.
"""

import json
import os
import pty
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from package_commits import add_task_commit
from test_import_logs import _SCHEMA, _call, _run

from app.cli import cli
from engine.ingest import approve_package
from engine.terminal_text import visible
from engine.workspace import Workspace

# Clears the screen, retitles the window (OSC … BEL), a C1 CSI, a bidi override, a bare CR.
HOSTILE = "ok\x1b[2J\x1b]0;pwned\x07 \x9b31m \u202eevil\rX"
SHOWN = "ok\\x1b[2J\\x1b]0;pwned\\x07 \\x9b31m \\u202eevil\\x0dX"
RAW = [chr(c) for c in [*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0)]] + [
    "\u202e",
    "\u2066",
]


def assert_safe(output: str) -> None:
    """No character a terminal acts on, newline and tab aside."""
    assert [c for c in RAW if c in output] == []


class TestVisible:
    @pytest.mark.parametrize("code", [*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0)])
    def test_each_control_character_is_shown_as_a_hex_escape(self, code: int):
        assert visible(f"a{chr(code)}b") == f"a\\x{code:02x}b"

    @pytest.mark.parametrize("code", [0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), 0x2066])
    def test_bidirectional_controls_are_shown(self, code: int):
        assert visible(chr(code)) == f"\\u{code:04x}"

    def test_newlines_tabs_and_ordinary_text_are_kept(self):
        text = "déjà vu\tnaïve 漢字 🙂\nline two ← ✓"
        assert visible(text) == text

    def test_crlf_line_endings_become_newlines(self):
        assert visible("one\r\ntwo\r\n") == "one\ntwo\n"

    def test_a_hostile_string_is_shown_whole(self):
        assert visible(HOSTILE) == SHOWN

    def test_applying_it_twice_changes_nothing_more(self):
        assert visible(visible(HOSTILE)) == visible(HOSTILE)


def hostile_raw_db(path: Path) -> None:
    """An agent's raw DB whose run id, repository path and logged prompt are hostile."""
    conn = sqlite3.connect(path)
    conn.executescript(_SCHEMA)
    conn.close()
    _run(path, f"run-{HOSTILE}", 1, f"/repos/{HOSTILE}", "2026-01-02 03:04:05")
    _call(path, f"run-{HOSTILE}", "scope", prompt=f"Fix {HOSTILE}", response="relevant: a.py")
    _call(path, f"run-{HOSTILE}", "task_analysis", prompt=f"Why {HOSTILE}")


def test_import_logs_and_review_show_neutralise_logged_text(tmp_path: Path):
    """The raw DB's path, run ids and repository reach `import-logs` and `review show` escaped."""
    folder = tmp_path / f"agent{HOSTILE}"
    folder.mkdir()
    raw = folder / "raw.sqlite"
    hostile_raw_db(raw)
    runner = CliRunner()
    base = ["--workspace", str(tmp_path / "ws")]

    def invoke(*args: str):
        return runner.invoke(cli, [*base, *args], color=True)

    Workspace.open(tmp_path / "ws")
    imported = invoke("import-logs", str(raw))
    assert imported.exit_code == 0, imported.output
    assert SHOWN in imported.output
    sample = invoke("review", "sample", "--stage", "scope", "--n", "1")
    assert sample.exit_code == 0, sample.output
    shown = invoke("review", "show", "1")
    assert shown.exit_code == 0, shown.output
    as_json = invoke("review", "show", "1", "--json")
    for output in (imported.output, sample.output, shown.output, as_json.output):
        assert_safe(output)
    assert "\\x1b[2J" in shown.output
    assert json.loads(as_json.output)["items"], "JSON output stays parseable"


def test_harness_validate_neutralises_a_hostile_commit_subject(
    tmp_path: Path, _package_template: Path
):
    """A commit subject holding escape sequences is printed escaped, not interpreted."""
    package = tmp_path / "drive" / "textkit"
    shutil.copytree(_package_template, package, symlinks=True)
    subject = f"Add a note {HOSTILE}"
    sha = add_task_commit(package, {"NOTES.txt": "notes\n"}, subject, ["tests/test_slug.py"])
    root = tmp_path / "ws"
    root.mkdir()
    (root / "cra.toml").write_text("[usb]\nmount_roots = []\n[harness]\nflaky_runs = 1\n")
    approve_package(Workspace.open(root), package)
    result = CliRunner().invoke(
        cli,
        ["--workspace", str(root), "harness", "validate", "textkit", "--commit", sha],
        color=True,
    )
    assert_safe(result.output)
    assert f"Add a note {SHOWN}" in result.output


def test_a_real_cra_process_on_a_terminal_writes_no_control_character(tmp_path: Path):
    """On a real terminal (a pty), where click strips nothing, a real `cra` shows escapes."""
    hostile = tmp_path / f"drive{HOSTILE.replace(chr(0), '')}"
    hostile.mkdir()
    cra = Path(sys.executable).with_name("cra")
    primary, secondary = pty.openpty()
    try:
        done = subprocess.run(
            [str(cra), "--workspace", str(tmp_path / "ws"), "ingest", "validate", str(hostile)],
            stdin=subprocess.DEVNULL,
            stdout=secondary,
            stderr=secondary,
            check=False,
            timeout=60,
        )
        os.close(secondary)
        output = _read_all(primary).decode("utf-8").replace("\r\n", "\n")
    finally:
        os.close(primary)
    assert done.returncode != 0
    assert_safe(output)
    assert "drive" + SHOWN in output


def _read_all(fd: int) -> bytes:
    """Everything left on a pty's primary side once its other side is closed."""
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return b"".join(chunks)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
