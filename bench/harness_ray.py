"""The Ray backend's overhead: one gold campaign run locally and on a local Ray cluster.

Usage: .venv/bin/python bench/harness_ray.py [--workers N] [--repeat R]

The demo package (its whole history, real wheels, offline) is approved into fresh workspaces.
Each round runs the same gold campaign (temperature 0, one seed) locally and on Ray, in turn:

- local, cold: a fresh workspace, N local workers (builds the task environment, validates
  every commit, then attempts);
- Ray, cold: a fresh workspace on a Ray cluster started here (a head with N CPUs, nothing else,
  `cpus_per_task` 1: "on one machine") with a fresh node folder (the node receives the package,
  verifies it and builds the environment itself);
- warm: a second campaign over the same package in the same workspace (the commits are
  validated, the environments built; the node keeps its copy);
- warm large: a third, of `--seeds` seeds (the gold pipeline answers alike at each, so it is
  the same work, repeated).

Wall time is from `start_campaign` to `done`. The two warm sizes split each backend's wall time
into a fixed cost per campaign job and a cost per further attempt; the per-attempt overhead is
Ray's cost per attempt over local's, at the same number of attempts in flight (target under
10 %, issue 21). A campaign's job connects to Ray and starts new worker processes, which import
the engine and probe the sandbox once each: that is fixed per job, not per attempt. It also prints
what one task cost (the gold validation's test runs and the attempt, from the rows and
reports), which docs/BENCHMARKS.md projects the corpus from.
"""

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine.core.workspace import Workspace
from engine.demo.package import build_package
from engine.harness.campaigns import (
    CampaignSpec,
    campaign_row,
    create_campaign,
    reconcile_campaigns,
    start_campaign,
)
from engine.intake.approval import approve_package

NO_DRIVES = "[usb]\nmount_roots = []\n"
RAY = str(Path(sys.executable).parent / "ray")


def workspace(root: Path, extra: str) -> Workspace:
    root.mkdir(parents=True)
    (root / "cra.toml").write_text(NO_DRIVES + "[harness]\n" + extra, encoding="utf-8")
    return Workspace.open(root)


def campaign(ws: Workspace, workers: int, seeds: int) -> tuple[float, int]:
    """Run one gold campaign of `seeds` seeds to done; (wall seconds, attempts)."""
    digest = ws.db.execute("SELECT digest FROM packages").fetchone()[0]
    spec = CampaignSpec(
        packages=[digest],
        pipeline="gold",
        model="gold",
        temperatures=[0],
        seeds=list(range(1, seeds + 1)),
        workers=workers,
    )
    campaign_id = create_campaign(ws, spec, "bench")
    started = time.perf_counter()
    start_campaign(ws, campaign_id)
    while True:
        reconcile_campaigns(ws)
        status = campaign_row(ws, campaign_id).status
        if status in ("done", "failed", "interrupted", "stopped"):
            break
        time.sleep(0.1)
    wall = time.perf_counter() - started
    if status != "done":
        raise SystemExit(f"campaign {campaign_id} in {ws.root} ended {status}")
    count = ws.db.execute(
        "SELECT COUNT(*) FROM attempts WHERE campaign_id = ?", [campaign_id]
    ).fetchone()[0]
    return wall, count


class Head:
    """A Ray head on this machine with `cpus` CPUs, its own process group and node folder."""

    def __init__(self, cpus: int, node_dir: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.address = f"127.0.0.1:{port}"
        self.temp = tempfile.mkdtemp(prefix="cra-ray-", dir="/tmp")
        env = {**os.environ, "CRA_NODE_DIR": str(node_dir), "RAY_USAGE_STATS_ENABLED": "0"}
        self.proc = subprocess.Popen(
            [
                RAY,
                "start",
                "--block",
                "--head",
                f"--port={port}",
                f"--num-cpus={cpus}",
                "--include-dashboard=false",
                "--disable-usage-stats",
                f"--temp-dir={self.temp}",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        script = (
            f"import ray; ray.init(address={self.address!r}, logging_level='ERROR', "
            "log_to_driver=False); print(len(ray.nodes()))"
        )
        for _ in range(120):
            done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
            if done.returncode == 0:
                return
            time.sleep(1)
        self.stop()
        raise SystemExit(f"the Ray head at {self.address} did not come up")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        subprocess.run(["rm", "-rf", self.temp], check=False)


def task_costs(ws: Workspace) -> tuple[list[float], list[float]]:
    """Each usable task's gold validation (its test runs' seconds) and each attempt's seconds."""
    validations = []
    for (path,) in ws.db.execute("SELECT report_path FROM tasks WHERE status = 'usable'"):
        report = json.loads((ws.root / path).read_text(encoding="utf-8"))
        validations.append(sum(run["duration_s"] for run in report["runs"]))
    attempts = [
        row[0]
        for row in ws.db.execute(
            "SELECT duration_s FROM attempts WHERE outcome != 'unusable' AND campaign_id = 1"
        )
    ]
    return validations, attempts


PHASES = ("cold", "warm", "warm large")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=5, help="seeds of the large warm campaign")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-harness-ray-"))
    package = build_package(root / "drive" / "textkit")
    walls: dict[tuple[str, str], list[float]] = {}
    sizes: dict[str, int] = {}
    costs: tuple[list[float], list[float]] = ([], [])
    for round_no in range(args.repeat):
        head = Head(args.workers, root / f"node-{round_no}")
        try:
            ray_cfg = f'backend = "ray"\n[harness.ray]\naddress = "{head.address}"\n'
            spaces = {
                "local": workspace(root / f"local-{round_no}", ""),
                "Ray": workspace(root / f"ray-{round_no}", ray_cfg),
            }
            for ws in spaces.values():
                approve_package(ws, package)
            for phase in PHASES:
                seeds = args.seeds if phase == "warm large" else 1
                for name, ws in spaces.items():
                    wall, sizes[phase] = campaign(ws, args.workers, seeds)
                    walls.setdefault((name, phase), []).append(wall)
                    print(
                        f"round {round_no + 1} {name} {phase}: {wall:.1f}s, "
                        f"{sizes[phase]} attempts",
                        flush=True,
                    )
            if round_no == 0:
                costs = task_costs(spaces["local"])
        finally:
            head.stop()
    machine = platform.processor() or platform.machine()
    print(f"\n{machine}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"{args.workers} attempts at once, {args.repeat} rounds (medians)")
    med = {key: statistics.median(values) for key, values in walls.items()}
    for phase in PHASES:
        local, ray = med[("local", phase)], med[("Ray", phase)]
        print(
            f"{phase:<10} {sizes[phase]:>3} attempts: local {local:6.1f}s, Ray {ray:6.1f}s, "
            f"overhead {100 * (ray - local) / local:+.1f} % (ratio {ray / local:.2f})"
        )
    extra = sizes["warm large"] - sizes["warm"]
    for name in ("local", "Ray"):
        slope = (med[(name, "warm large")] - med[(name, "warm")]) / extra
        fixed = med[(name, "warm")] - slope * sizes["warm"]
        print(f"{name}: {slope:.3f}s per further attempt, {fixed:.1f}s fixed per campaign job")
    local_slope = (med[("local", "warm large")] - med[("local", "warm")]) / extra
    ray_slope = (med[("Ray", "warm large")] - med[("Ray", "warm")]) / extra
    print(f"per-attempt overhead of Ray: {100 * (ray_slope - local_slope) / local_slope:+.1f} %")
    validations, runs = costs
    print(
        f"per usable task (local, cold round): gold validation test runs "
        f"{statistics.median(validations):.2f}s median, attempt "
        f"{statistics.median(runs):.2f}s median"
    )


if __name__ == "__main__":
    main()
