"""Time `cra`'s start-up, as whole processes, against the floors it cannot go under.

Usage: .venv/bin/python bench/startup.py [--repeat N]

Every measurement is a new interpreter, from its start until it exits, run N times (default 11)
in turns so that a busy machine slows each side alike; medians and their ratios are printed
against the targets (issue 17, point 4):

- `cra --help` against `python -c "import click"`: within 3x;
- `cra adapters list`, `cra train status`, `cra ingest list` on an empty workspace (made by
  `cra init`) against `python -c "import sqlite_utils"`: within 1.5x. sqlite-utils imports
  pandas and numpy whenever they are installed, so that is the floor of any command that opens
  the workspace's database;
- the console's first frame against a minimal Textual app's: each is a process that builds the
  app, runs it headless at 120x40 and exits on `Ready`, the event Textual sends once the first
  frame is drawn. The console is the real `CraApp` on the empty workspace: within 2x.

`cra` runs as its script does (`from app.cli import main; main()`) with this interpreter; the
code measured is the current directory's (`python -c` puts it first on the path), so run it from
the checkout to measure. Opening the workspace alone (sqlite-utils and the config's models) is
timed too: it is what every listing command is made of before it reads anything.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CRA = "import sys; from app.cli import main; sys.exit(main())"

MINIMAL_FIRST_FRAME = """
from textual.app import App
from textual.widgets import Static

class FirstFrame(App[None]):
    def compose(self):
        yield Static("first frame")

    def on_ready(self) -> None:
        self.exit()

FirstFrame().run(headless=True, size=(120, 40))
"""

CONSOLE_FIRST_FRAME = """
import time

start = time.perf_counter()

import sys
from pathlib import Path

from app.app import CraApp
from engine.core.workspace import Workspace

imported = time.perf_counter()

class FirstFrame(CraApp):
    def on_ready(self) -> None:
        print(f"console: importing app.app {imported - start:.3f}")
        print(f"console: opening the workspace to first frame {time.perf_counter() - imported:.3f}")
        self.exit()

ws = Workspace.open(Path(sys.argv[1]), create=False, write=False)
FirstFrame(ws, usb_dirs=[]).run(headless=True, size=(120, 40))
"""


OPEN_WORKSPACE = """
import sqlite_utils
from engine.core.workspace import Workspace

Workspace.open(create=False, write=False)
"""


def cra(*args: str) -> list[str]:
    return [sys.executable, "-c", CRA, *args]


def python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def run(command: list[str], env: dict[str, str]) -> tuple[float, dict[str, float]]:
    """Wall-clock seconds of one run of `command`, which must succeed, and the phases it
    printed (`name seconds` lines)."""
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{command[3:] or command}: exit {done.returncode}\n{done.stderr}")
    phases = {}
    for line in done.stdout.splitlines():
        if line.startswith("console: "):
            name, _, value = line.rpartition(" ")
            phases[name] = float(value)
    return elapsed, phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=11)
    repeat = parser.parse_args().repeat
    with tempfile.TemporaryDirectory(prefix="cra-startup-") as scratch:
        ws = Path(scratch) / "ws"
        env = {**os.environ, "CRA_WORKSPACE": str(ws), "NO_COLOR": "1"}
        run(cra("--workspace", str(ws), "init"), env)
        cases = {
            "python -c 'import click'": python("import click"),
            "cra --help": cra("--help"),
            "python -c 'import sqlite_utils'": python("import sqlite_utils"),
            "python: open the workspace": python(OPEN_WORKSPACE),
            "cra adapters list": cra("adapters", "list"),
            "cra train status": cra("train", "status"),
            "cra ingest list": cra("ingest", "list"),
            "minimal Textual app, first frame": python(MINIMAL_FIRST_FRAME),
            "the same, importing sqlite_utils": python("import sqlite_utils" + MINIMAL_FIRST_FRAME),
            "console, first frame": python(CONSOLE_FIRST_FRAME, str(ws)),
        }
        for command in cases.values():  # warm the file cache and the bytecode
            run(command, env)
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(repeat):
            for name, command in cases.items():
                elapsed, phases = run(command, env)
                times[name].append(elapsed)
                for phase, value in phases.items():
                    times.setdefault(phase, []).append(value)
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"median of {repeat} runs, each a whole process; python {sys.version.split()[0]}")
    for name, value in median.items():
        print(f"  {name:<48} {value:6.3f} s")
    print("ratios against their floors (target):")
    checks = [
        ("cra --help", "python -c 'import click'", 3.0),
        ("python: open the workspace", "python -c 'import sqlite_utils'", None),
        ("cra adapters list", "python -c 'import sqlite_utils'", 1.5),
        ("cra train status", "python -c 'import sqlite_utils'", 1.5),
        ("cra ingest list", "python -c 'import sqlite_utils'", 1.5),
        ("console, first frame", "minimal Textual app, first frame", 2.0),
        ("console, first frame", "the same, importing sqlite_utils", None),
    ]
    for name, floor, target in checks:
        ratio = median[name] / median[floor]
        if target is None:
            print(f"  {name:<26} / {floor:<32} {ratio:5.2f}x")
        else:
            verdict = "ok" if ratio <= target else "OVER"
            print(f"  {name:<26} / {floor:<32} {ratio:5.2f}x  (<= {target:g}x) {verdict}")


if __name__ == "__main__":
    main()
