"""Time the sandbox's own cost: a command run bare against the same command sandboxed.

Usage: .venv/bin/python bench/sandbox.py [--repeat N]

Two commands, each run bare (`subprocess.run`, the floor) and through `run_sandboxed` (bubblewrap,
its own filesystem view and namespaces, a cgroup made, joined and removed, rlimits), alternating:

1. `python -c pass`: the interpreter's start, where the sandbox's fixed cost shows most;
2. `python -m pytest --collect-only` on a small test folder: a typical short sandboxed step.

Prints each median, the sandbox's added seconds and the ratio against the floor.
"""

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine.isolation.sandbox import python_paths, run_sandboxed

TESTS = "import pytest\n\n\n@pytest.mark.parametrize('n', range(50))\ndef test_n(n):\n    pass\n"


def bare(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def sandboxed(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    result = run_sandboxed(
        argv,
        cwd,
        timeout_s=60.0,
        memory_mb=2048,
        env={},
        tmp_root=cwd,
        readable=python_paths(Path(sys.executable)),
    )
    if result.returncode != 0:
        raise SystemExit(f"the sandboxed command failed: {result.stderr}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {platform.python_version()}, repeat {args.repeat}")
    with tempfile.TemporaryDirectory(prefix="cra-bench-sandbox-") as scratch:
        work = Path(scratch)
        (work / "test_n.py").write_text(TESTS, encoding="utf-8")
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "pytest --collect-only (50 tests)": [
                sys.executable,
                *("-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "test_n.py"),
            ],
        }
        sandboxed(commands["python -c pass"], work)  # the probe, once per process
        print(f"{'command':<36} {'bare':>9} {'sandboxed':>10} {'added':>9} {'ratio':>6}")
        for name, argv in commands.items():
            floor, cost = [], []
            for _ in range(args.repeat):
                floor.append(bare(argv, work))
                cost.append(sandboxed(argv, work))
            low, high = statistics.median(floor), statistics.median(cost)
            print(f"{name:<36} {low:>8.3f}s {high:>9.3f}s {high - low:>8.3f}s {high / low:>6.2f}")


if __name__ == "__main__":
    main()
