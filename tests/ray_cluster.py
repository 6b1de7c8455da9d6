"""A real Ray cluster on this machine for the cluster tests: a head and worker nodes, each its
own `ray start --block` process group with its own node folder, on loopback only."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.cluster.node import NODE_DIR_ENV

RAY = str(Path(sys.executable).parent / "ray")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalCluster:
    """The head's address, the node processes by name, and each node's folder."""

    root: Path
    address: str = ""
    nodes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    temp: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="cra-ray-", dir="/tmp"))
    )

    def node_dir(self, name: str) -> Path:
        return self.root / name

    def _start(self, name: str, args: list[str]) -> None:
        env = {**os.environ, NODE_DIR_ENV: str(self.node_dir(name)), "RAY_USAGE_STATS_ENABLED": "0"}
        log = (self.root / f"{name}.log").open("wb")
        self.nodes[name] = subprocess.Popen(
            [RAY, "start", "--block", "--disable-usage-stats", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_head(self, cpus: int = 1) -> None:
        port = _free_port()
        self.address = f"127.0.0.1:{port}"
        self._start(
            "head",
            [
                "--head",
                f"--port={port}",
                f"--num-cpus={cpus}",
                "--include-dashboard=false",
                f"--temp-dir={self.temp}",
            ],
        )

    def add_node(self, name: str, cpus: int = 1) -> None:
        self._start(name, [f"--address={self.address}", f"--num-cpus={cpus}"])

    def kill(self, name: str) -> None:
        """SIGKILL the node's whole process group: its raylet and agents at once."""
        os.killpg(self.nodes[name].pid, signal.SIGKILL)
        self.nodes[name].wait()

    def stop(self) -> None:
        for name in reversed(list(self.nodes)):
            proc = self.nodes[name]
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        shutil.rmtree(self.temp, ignore_errors=True)


def alive_nodes(address: str) -> list[dict]:
    """The cluster's alive nodes, asked from a separate driver process."""
    script = (
        f"import json, ray; ray.init(address={address!r}, logging_level='ERROR', "
        "log_to_driver=False); print(json.dumps([n for n in ray.nodes() if n['Alive']]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def wait_nodes(address: str, count: int, limit_s: float = 120) -> list[dict]:
    """Wait until `count` nodes are alive; returns them."""
    deadline = time.monotonic() + limit_s
    while True:
        try:
            nodes = alive_nodes(address)
        except subprocess.CalledProcessError:
            nodes = []
        if len(nodes) >= count:
            return nodes
        if time.monotonic() > deadline:
            raise AssertionError(f"{count} Ray nodes did not come up at {address}: {len(nodes)}")
        time.sleep(1)
