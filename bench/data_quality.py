"""The training data a real repository yields, audited: issue 15's targets on real history.

Usage: .venv/bin/python bench/data_quality.py REPO --domain DOMAIN --since YYYY-MM-DD
           --slice-since YYYY-MM-DD [--tasks N] [--wheels DIR] [--scratch DIR]

REPO is a git work tree of a real project fetched into a scratch folder (never committed), e.g.
`git clone https://github.com/python-attrs/attrs scratch/attrs`. As an operator would,
through `cra` in a fresh workspace under --scratch:

1. package REPO twice: its history since --since, and a later slice since --slice-since (the
   same commits arrive again in a second package, as when a repository is re-packaged), the
   slice taking its wheels from the first package;
2. approve both;
3. gold-validate the N newest kept commits that change code and tests (those that can become
   tasks) in the first package, then the same commits in the slice;
4. `cra data build`, then `cra data audit --json`, printed per stage.

Then the targets: 0 e-mail addresses or trailer lines in any prompt, 0 scope examples with
nothing to change or create, 0 planning steps that repeat the prompt, 0 CodeFavor pairs without
a code difference, 0 commits derived twice. Exits 1 when one is missed.
"""

import argparse
import json
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

TARGET_RULES = {
    "prompts with an e-mail address": ("any", "prompt_email"),
    "prompts with a trailer line": ("any", "prompt_trailer"),
    "scope examples with nothing to change or create": ("scope", "scope_nothing_to_change"),
    "planning steps that repeat the prompt": ("any", "plan_step_repeats_title"),
    "CodeFavor pairs without a code difference": ("execute_code", "pair_no_code_difference"),
}


def cra(workspace: Path | None, *args: str) -> str:
    """Run `cra` with this interpreter; its stdout, or exit with its error."""
    prefix = ["--workspace", str(workspace)] if workspace is not None else []
    command = [sys.executable, "-c", "from app.cli import main; main()", *prefix, *args]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    took = time.perf_counter() - started
    print(f"  cra {' '.join(args)}  ({took:.0f} s)", flush=True)
    if result.returncode != 0:
        raise SystemExit(f"cra {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result.stdout


def task_commits(package: Path, count: int) -> list[str]:
    """The `count` newest kept commits that change code beside their tests."""
    manifest = json.loads((package / "manifest.json").read_text(encoding="utf-8"))
    commits = [c for c in manifest["commits"] if c["test_files"]]
    commits = [c for c in commits if c["files_changed"] > len(c["test_files"])]
    commits.sort(key=lambda c: c["date"], reverse=True)
    return [c["sha"] for c in commits[:count]]


def derived_twice(database: Path) -> int:
    """Commits (repository and sha) whose commit-derived examples came from more than one
    package: a commit derived twice."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        return db.execute(
            "SELECT COUNT(*) FROM (SELECT repo, sha FROM examples WHERE origin = 'commit' "
            "GROUP BY repo, sha HAVING COUNT(DISTINCT package_digest) > 1)"
        ).fetchone()[0]


def rule_count(audit: dict, stage: str, rule: str) -> int:
    """Items breaking `rule` in `stage` ("any": summed over stages)."""
    stages = (
        audit["stages"] if stage == "any" else [s for s in audit["stages"] if s["stage"] == stage]
    )
    return sum(r["items"] for s in stages for r in s["rules"] if r["rule"] == rule)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", type=Path)
    parser.add_argument("--domain", required=True)
    parser.add_argument("--since", required=True)
    parser.add_argument("--slice-since", required=True)
    parser.add_argument("--tasks", type=int, default=12)
    parser.add_argument("--wheels", type=Path)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/cra-data-quality"))
    args = parser.parse_args()
    if args.scratch.exists():
        shutil.rmtree(args.scratch)
    usb, ws = args.scratch / "usb", args.scratch / "ws"
    usb.mkdir(parents=True)
    full, part = usb / "full", usb / "slice"
    started = time.perf_counter()
    wheels = ["--wheels", str(args.wheels)] if args.wheels else []
    cra(None, "package", str(args.repo), "--out", str(full), "--since", args.since,
        "--domain", args.domain, *wheels)  # fmt: skip
    cra(None, "package", str(args.repo), "--out", str(part), "--since", args.slice_since,
        "--domain", args.domain, "--wheels", str(full / "packages"))  # fmt: skip
    cra(None, "--workspace", str(ws), "init")
    for package in (full, part):
        cra(ws, "ingest", "approve", str(package))
    shas = task_commits(full, args.tasks)
    in_slice = set(task_commits(part, 10**6))
    for name, chosen in (("full", shas), ("slice", [s for s in shas if s in in_slice])):
        if chosen:
            digest = json.loads(cra(ws, "ingest", "list", "--json"))
            wanted = [p for p in digest if p["source_path"].endswith(f"/{name}")]
            ref = wanted[0]["digest"][:12] if wanted else name
            cra(ws, "harness", "validate", ref, *(f"--commit={sha}" for sha in chosen))
    print(cra(ws, "data", "build"))
    audit = json.loads(cra(ws, "data", "audit", "--json"))
    print(cra(ws, "data", "audit"))
    missed = 0
    print(f"\nTargets ({len(shas)} commits gold-validated, {time.perf_counter() - started:.0f} s):")
    results = {label: rule_count(audit, *where) for label, where in TARGET_RULES.items()}
    results["commits derived twice"] = derived_twice(ws / "cra.sqlite")
    for label, value in results.items():
        missed += value != 0
        print(f"  {label}: {value} (target 0){'' if value == 0 else '  MISSED'}")
    raise SystemExit(1 if missed else 0)


if __name__ == "__main__":
    main()
