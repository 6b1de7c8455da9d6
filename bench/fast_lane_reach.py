"""Which of the project's modules a pytest run reaches: run pytest with this, and it lists the
modules of app/, engine/ and screens/ that no test imported, or imported without calling them.

Usage: .venv/bin/python bench/fast_lane_reach.py [PYTEST ARGS]   (e.g. -m "not slow" -q)

Every Python process of the run counts: the pytest process and its threads through
`sys.settrace` / `threading.settrace`, and the Python subprocesses its tests start (`cra`, job
workers, killed ones too) through a `sitecustomize` put first on the inherited `PYTHONPATH`
(a subprocess started with a cleaned environment, as the sandbox does, is not counted, so the
list is an upper bound of what is missed). Each process appends a project function to its file
the first time it runs it; the trace function looks only at new frames (no line events), so the
run is slower than a plain one but not by much: time the fast lane with plain pytest.

A module counts as exercised when a function, method or class body of it ran outside its
import; one whose only code is its import (constants, exceptions) is listed as imported only.
Exit 1 when a module was not imported at all.
"""

import os
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("app", "engine", "screens")
ENV_OUT = "CRA_REACH_DIR"

SITECUSTOMIZE = """
import os, sys, threading

_seen = set()
_out = {{}}


def _trace(frame, event, arg):
    code = frame.f_code
    if code in _seen:
        return None
    _seen.add(code)
    if code.co_filename.startswith({root!r}):
        pid = os.getpid()
        if pid not in _out:
            path = os.path.join(os.environ["{env}"], f"{{pid}}.txt")
            _out[pid] = open(path, "a", encoding="utf-8", buffering=1)
        _out[pid].write(f"{{code.co_name}}\\t{{code.co_filename}}\\n")
    return None


if os.environ.get("{env}"):
    sys.settrace(_trace)
    threading.settrace(_trace)
"""


def project_modules() -> dict[str, Path]:
    """Every module of the project's packages, by its file's absolute path."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[str(path)] = path.relative_to(ROOT)
    return found


def read_reached(out_dir: Path) -> tuple[set[str], set[str]]:
    """The files any process imported, and those where code other than the import ran."""
    imported: set[str] = set()
    exercised: set[str] = set()
    for dump in out_dir.glob("*.txt"):
        for line in dump.read_text(encoding="utf-8").splitlines():
            name, where = line.split("\t", 1)
            imported.add(where)
            if name != "<module>":
                exercised.add(where)
    return imported, exercised


def main(args: list[str]) -> int:
    import pytest

    with tempfile.TemporaryDirectory(prefix="cra-reach-") as tmp:
        site = Path(tmp) / "site"
        site.mkdir()
        out_dir = Path(tmp) / "out"
        out_dir.mkdir()
        (site / "sitecustomize.py").write_text(
            SITECUSTOMIZE.format(env=ENV_OUT, root=str(ROOT) + os.sep), encoding="utf-8"
        )
        os.environ[ENV_OUT] = str(out_dir)
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(site), str(ROOT), os.environ.get("PYTHONPATH", "")) if p
        )
        sys.path.insert(0, str(site))
        import sitecustomize  # noqa: F401  (installs the tracer in this process too)

        code = pytest.main(args)
        sys.settrace(None)
        threading.settrace(None)
        imported, exercised = read_reached(out_dir)

    modules = project_modules()
    missing = [rel for path, rel in modules.items() if path not in imported]
    import_only = [
        rel for path, rel in modules.items() if path in imported and path not in exercised
    ]
    print(f"\n{len(modules)} modules; {len(modules) - len(missing)} imported by the run")
    print(f"not imported ({len(missing)}): " + (", ".join(map(str, missing)) or "none"))
    only = ", ".join(map(str, import_only)) or "none"
    print(f"imported, nothing called ({len(import_only)}): {only}")
    print(f"pytest exit code {code}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
