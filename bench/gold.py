"""Time gold validation per commit against its floor: one plain pytest run of its tests.

Usage: .venv/bin/python bench/gold.py PACKAGE [--commit SHA]... [--since DATE] [--limit N]
       [--scratch DIR]

PACKAGE is a repo package folder (manifest.json, repo/, packages/), e.g. one `cra package`
built from a real repository. It is copied under a scratch folder, approved into a fresh
workspace there (as `cra ingest approve` does) and its environment built (timed, not counted
per commit). Then, for each chosen commit (`--commit`/`--since`/`--limit`, as `cra harness
validate` takes them; by default the first 5 commits with test files):

1. the floor: a checkout of the commit, the repository installed (install_repo packages, not
   timed), and one plain `python -m pytest <its test files>` in the task's environment, timed
   (the median of `--repeat` runs): outside the sandbox, so use it only on a package whose code
   you trust;
2. gold validation: `validate_task`, timed end to end (checkouts, every run): once first, which
   builds the shared install of a build configuration not seen yet (`built`: how many;
   engine.harness.repo_sites), then `--repeat` times more, whose median is the commit's cost.

Prints each commit's floor, first and repeated gold time, runs made and the ratio of the
repeated gold to the floor (target ≤ 2.5), then the median and the largest ratio and the
totals. The first validations' total says what the shared builds add.
"""

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

from engine.core.workspace import Workspace
from engine.harness.environments import TaskEnv, ensure_env
from engine.harness.package import CorpusPackage, load_package
from engine.harness.repo_sites import SITES_DIR, install_tree
from engine.harness.selection import CommitSelection, select_commits
from engine.harness.task_validation import parallel_sides, validate_task
from engine.harness.worktrees import checkout
from engine.intake.approval import approve_package
from engine.intake.manifest import ManifestCommit

DEFAULT_COMMITS = 5


def floor_s(ws: Workspace, env: TaskEnv, package: CorpusPackage, commit: ManifestCommit) -> float:
    """Seconds of one plain pytest run of the commit's test files at the commit."""
    scratch = ws.runs_dir / "bench-floor"
    scratch.mkdir(parents=True, exist_ok=True)
    with checkout(package.repo, commit.sha, scratch) as tree:
        site = None
        if package.manifest.install_repo:
            site = install_tree(ws, env, package, tree, Path(tempfile.mkdtemp(dir=scratch)))
        files = [f for f in commit.test_files if (tree / f).is_file()]
        argv = [str(env.python), "-m", package.manifest.runner, *files]
        run_env = {
            **os.environ,
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": str(site or tree),
            "PATH": f"{env.bin_dir}:{os.environ['PATH']}",
        }
        start = time.perf_counter()
        subprocess.run(
            [*argv, "-p", "no:cacheprovider", "-q"],
            cwd=tree,
            env=run_env,
            capture_output=True,
            check=False,
        )
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package", type=Path)
    parser.add_argument("--commit", dest="commits", action="append", default=[])
    parser.add_argument("--since", type=lambda text: datetime.strptime(text, "%Y-%m-%d").date())
    parser.add_argument("--limit", type=int)
    parser.add_argument(
        "--repeat", type=int, default=3, help="Runs of the floor and of a warm validation."
    )
    parser.add_argument("--scratch", type=Path, help="Where to copy the package and workspace.")
    args = parser.parse_args()
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="cra-bench-gold-"))
    drive = scratch / "drive" / args.package.name
    shutil.copytree(args.package, drive, symlinks=True)
    ws = Workspace.open(scratch / "workspace")
    limits = ws.config.harness
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.python_version()}; flaky_runs {limits.flaky_runs}, sides at once: "
        f"{parallel_sides(limits.test_memory_mb)}; scratch {scratch}"
    )
    start = time.perf_counter()
    digest = approve_package(ws, drive).digest
    print(f"approval: {time.perf_counter() - start:.1f}s")
    package = load_package(ws, digest)
    start = time.perf_counter()
    env = ensure_env(ws, package)
    print(f"environment: {time.perf_counter() - start:.1f}s")
    selection = CommitSelection(commits=args.commits, since=args.since, limit=args.limit)
    chosen = [c for c in select_commits([package], selection)[digest] if c.test_files]
    if not (args.commits or args.limit):
        chosen = chosen[:DEFAULT_COMMITS]
    ratios, floors, golds = [], [], []
    shares = env.path / SITES_DIR
    header = f"{'commit':<12} {'status':<8} {'runs':>4} {'floor':>7} {'first':>7} {'built':>5}"
    print(f"{header} {'gold':>7} {'ratio':>6}")
    firsts, builds, ratios, floors, golds = [], [], [], [], []
    for commit in chosen:
        floor = statistics.median(floor_s(ws, env, package, commit) for _ in range(args.repeat))
        known = set(shares.glob("*/site.json"))
        start = time.perf_counter()
        report = validate_task(ws, digest, commit.sha)
        first = time.perf_counter() - start
        built = len(set(shares.glob("*/site.json")) - known)
        again = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            validate_task(ws, digest, commit.sha)
            again.append(time.perf_counter() - start)
        gold = statistics.median(again)
        firsts.append(first)
        builds.append(built)
        ratios.append(gold / floor)
        floors.append(floor)
        golds.append(gold)
        print(
            f"{commit.sha[:12]} {report.status:<8} {len(report.runs):>4} {floor:>6.2f}s "
            f"{first:>6.2f}s {built:>5} {gold:>6.2f}s {gold / floor:>6.2f}  {commit.subject[:40]}"
        )
    if ratios:
        print(
            f"ratio median {statistics.median(ratios):.2f}, max {max(ratios):.2f}; floor "
            f"{sum(floors):.1f}s, gold {sum(golds):.1f}s over {len(ratios)} commits; first "
            f"validations {sum(firsts):.1f}s, {sum(builds)} of them building a shared install"
        )


if __name__ == "__main__":
    main()
