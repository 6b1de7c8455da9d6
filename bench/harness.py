"""Time the harness's own overhead: per attempt beyond the test run, and the environment build.

Usage: .venv/bin/python bench/harness.py [--attempts N] [--repeat N]

On a fresh workspace with the demo package approved (real repo, real wheels, offline):

1. Environment build: `ensure_env` (uv venv + offline install, staged, fsynced, renamed) against
   a bare `uv venv` + `uv pip install --offline` of the same requirements from the same wheels,
   alternating, each with a warm uv cache of its own; medians and their ratio (target ≤ 1.2).
2. Per-attempt overhead: N gold attempts run through `run_attempt` after the task's gold
   validation is recorded; overhead = the attempt's duration minus its test run (checkout,
   index, retrieval, plan, edits, diff, recording). Median and max (target ≤ 1 s).
"""

import argparse
import os
import platform
import secrets
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from engine.core.staged import remove_tree
from engine.core.workspace import ENVS_DIR, Workspace
from engine.demo.package import build_package, build_wheels
from engine.demo.wheels import repack_installed, runtime_closure
from engine.harness.attempts import run_attempt, validated_task
from engine.harness.campaigns import CampaignSpec, create_campaign
from engine.harness.environments import ensure_env, env_key
from engine.harness.package import CorpusPackage, load_package
from engine.intake.approval import approve_package
from engine.isolation.uvtool import find_python, offline_install_args, run_uv, write_requirements


def bare_install(package_dir: Path, requirements: list[str], python: str, scratch: Path) -> float:
    """`uv venv` + `uv pip install --offline` into a new folder; returns seconds.

    The folder has a new name each time, as a new environment has: uv caches what it learns
    about an interpreter by its path, so reusing one path would skip a query `ensure_env` pays.
    """
    for old in scratch.glob("bare-*"):
        remove_tree(old)
    dest = scratch / f"bare-{secrets.token_hex(4)}"
    dest.mkdir()
    req = write_requirements(dest / "requirements.txt", requirements)
    start = time.perf_counter()
    venv = dest / "venv"
    for args in (
        ["venv", "--offline", "--no-project", "--python", python, str(venv)],
        [*offline_install_args(package_dir, venv / "bin" / "python"), "-r", str(req)],
    ):
        result = run_uv(args, dest, scratch)
        if result.returncode != 0:
            raise SystemExit(f"bare uv failed: {result.stderr}")
    return time.perf_counter() - start


HEAVY_ROOTS = (
    "rich",
    "pytest-asyncio",
    "syrupy",
    "click",
    "tabulate",
    "pip",
    "sqlite-fts4",
    "annotated-types",
    "typing-inspection",
    "platformdirs",
)


def heavy_package(work: Path, demo: CorpusPackage) -> CorpusPackage:
    """The demo's manifest over ~20 real wheels repacked from this venv: a realistic env size."""
    root = work / "heavy"
    names = sorted({name for top in HEAVY_ROOTS for name in runtime_closure(top)})
    for name in names:
        repack_installed(name, root / "packages")
    manifest = demo.manifest.model_copy(update={"requirements": list(HEAVY_ROOTS)})
    return CorpusPackage(digest="f" * 64, root=root, manifest=manifest)


def time_env_build(ws: Workspace, package: CorpusPackage) -> float:
    final = ws.root / ENVS_DIR / env_key(package)
    if final.exists():
        remove_tree(final)
    start = time.perf_counter()
    env = ensure_env(ws, package)
    elapsed = time.perf_counter() - start
    assert env.built_now
    return elapsed


def compare_builds(
    ws: Workspace, package: CorpusPackage, python: str, work: Path, repeat: int
) -> tuple[list[float], list[float]]:
    """Bare uv against `ensure_env`, alternating, after one untimed warm-up of each.

    Every timed build starts with nothing dirty in the page cache (an untimed `sync`), so the
    flush `ensure_env` does for crash safety covers its own files only.
    """
    scratch = work / f"bare-{package.digest[:8]}"
    scratch.mkdir()
    reqs = package.manifest.requirements
    bare_install(package.packages, reqs, python, scratch)
    time_env_build(ws, package)
    bare, ours = [], []
    for _ in range(repeat):
        os.sync()  # neither side pays for flushing the other's writes
        bare.append(bare_install(package.packages, reqs, python, scratch))
        os.sync()
        ours.append(time_env_build(ws, package))
    return bare, ours


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cra-bench-harness-"))
    try:
        wheels = work / "wheels"
        build_wheels(wheels)
        package_dir = build_package(work / "drive" / "textkit", wheels)
        root = work / "ws"
        root.mkdir()
        (root / "cra.toml").write_text("[harness]\nflaky_runs = 1\n", encoding="utf-8")
        ws = Workspace.open(root)
        digest = approve_package(ws, package_dir).digest
        package = load_package(ws, digest)
        python = find_python(package.manifest.python_version, work, work)
        builds = {
            f"demo ({len(list(package.packages.iterdir()))} wheels)": package,
        }
        heavy = heavy_package(work, package)
        builds[f"realistic ({len(list(heavy.packages.iterdir()))} wheels)"] = heavy
        env_times = {
            name: compare_builds(ws, pkg, python, work, args.repeat) for name, pkg in builds.items()
        }

        spec = CampaignSpec(
            packages=[digest],
            pipeline="gold",
            model="gold",
            temperatures=[0.0],
            seeds=list(range(1, args.attempts + 1)),
            workers=1,
        )
        campaign_id = create_campaign(ws, spec, "bench")
        rows = list(ws.db["attempts"].rows_where("campaign_id = ?", [campaign_id], order_by="id"))
        usable = None
        for row in rows:
            if validated_task(ws, digest, row["sha"], row["task"])["status"] == "usable":
                usable = row["sha"]
                break
        assert usable is not None, "the demo package has no usable task"
        overheads, tests = [], []
        for row in (r for r in rows if r["sha"] == usable):
            record = run_attempt(ws, row, lambda stage: None)
            assert record.outcome == "resolved", record.reason
            overheads.append(record.duration_s - record.test_duration_s)
            tests.append(record.test_duration_s)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"machine: {platform.machine()} {platform.system()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}"
    )
    for name, (bare, ours) in env_times.items():
        print(f"environment build, {name}, median of {args.repeat}:")
        print(f"  bare uv venv + uv pip install --offline  {statistics.median(bare):.3f} s")
        print(f"  ensure_env (staged, synced, renamed)     {statistics.median(ours):.3f} s")
        print(f"  ratio {statistics.median(ours) / statistics.median(bare):.2f} (target <= 1.2)")
    print(f"per-attempt overhead beyond the test run, {len(overheads)} gold attempts:")
    print(
        f"  median {statistics.median(overheads):.3f} s, max {max(overheads):.3f} s "
        f"(target <= 1 s); test run median {statistics.median(tests):.3f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
