"""Time the whole commit filter against git's own `git log --no-merges --numstat` floor.

Usage: .venv/bin/python bench/mining.py REPO [--repeat N]

Both run side by side in the same process, alternating, N times each; the medians and their
ratio are printed (issue 3 asks for a ratio of at most 2.0), then the attrition table.
"""

import argparse
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

from engine.isolation.gitsafe import git_argv, safe_git_env
from engine.mining import FilterSettings, MiningResult, mine_commits


def time_git_log(repo: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        git_argv(repo, "log", "--no-merges", "--numstat"),
        env=safe_git_env(),
        capture_output=True,
        check=True,
    )
    return time.perf_counter() - start


def time_mining(repo: Path) -> tuple[float, MiningResult]:
    start = time.perf_counter()
    result = mine_commits(repo, FilterSettings())
    return time.perf_counter() - start, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", type=Path)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    floor_times, mining_times = [], []
    result = None
    for _ in range(args.repeat):
        floor_times.append(time_git_log(args.repo))
        seconds, result = time_mining(args.repo)
        mining_times.append(seconds)
    assert result is not None, "--repeat must be at least 1"
    floor, mining = statistics.median(floor_times), statistics.median(mining_times)
    git_version = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout
    head = subprocess.run(
        git_argv(args.repo, "rev-parse", "HEAD"), env=safe_git_env(), capture_output=True, text=True
    ).stdout
    print(
        f"machine: {platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {git_version.strip()}"
    )
    print(f"repository {args.repo} at {head.strip()}: {result.total} commits")
    print(f"git log --no-merges --numstat: {floor:.3f} s (median of {args.repeat})")
    print(f"mine_commits (whole filter):   {mining:.3f} s (median of {args.repeat})")
    print(f"ratio: {mining / floor:.2f} (target at most 2.0)")
    print()
    print(result.attrition_table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
