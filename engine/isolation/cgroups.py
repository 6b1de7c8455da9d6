"""Totals for the sandbox: one cgroup per sandboxed command bounds all its processes together.

Per-process limits (rlimits) let four children hold four times the memory limit and a fork
bomb run until the machine's own limit. A cgroup counts every process the command starts:
`memory` bounds their memory together (swap included, so nothing spills to disk), `pids` their
number. Two layouts are supported:

- cgroup v2 (the unified hierarchy with the memory and pids controllers): the sandbox's cgroup
  is made in `CGROUP_PARENT_ENV` when set, else beside the console's own cgroup (its parent,
  which must delegate memory and pids to its children and be writable: root, or a delegated
  subtree);
- cgroup v1 (the memory and pids hierarchies mounted separately, as on hybrid machines): one
  cgroup in each, under the console's own.

A process joins by writing its pid into `procs_files` before it execs the command (a fork
before that point cannot happen: the joining shell execs directly). When neither layout can be
used, `open_cgroup` raises CgroupUnavailable saying what was tried and why it failed.
"""

import contextlib
import os
import secrets
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CGROUP_PARENT_ENV = "CRA_SANDBOX_CGROUP"
_PREFIX = "cra-sandbox-"
_REMOVE_TIMEOUT_S = 10.0
_CONTROLLERS = ("memory", "pids")


class CgroupUnavailable(Exception):
    """No cgroup can bound the sandbox's totals here; the message says what was tried."""


@dataclass(frozen=True)
class SandboxCgroup:
    """The cgroup(s) of one sandboxed command: v2 has one folder, v1 one per controller."""

    version: int
    folders: tuple[Path, ...]

    @property
    def procs_files(self) -> tuple[Path, ...]:
        return tuple(folder / "cgroup.procs" for folder in self.folders)

    def limits_hit(self) -> tuple[str, ...]:
        """Which totals the command ran into: "memory" (a process was killed at the limit) and/or
        "processes" (a fork was refused at the limit). Reclaiming page cache at the memory limit
        is not counted: only a kill is."""
        memory, pids = (self.folders[0], self.folders[0]) if self.version == 2 else self.folders
        oom = _events(memory / ("memory.events" if self.version == 2 else "memory.oom_control"))
        hit = []
        if oom.get("oom_kill", 0):
            hit.append("memory")
        if _events(pids / "pids.events").get("max", 0):
            hit.append("processes")
        return tuple(hit)

    def kill(self) -> None:
        """SIGKILL every process still in the cgroup."""
        if self.version == 2:
            kill_file = self.folders[0] / "cgroup.kill"
            if kill_file.exists():
                kill_file.write_text("1", encoding="ascii")
                return
        for procs in self.procs_files:
            for pid in _pids(procs):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def remove(self) -> None:
        """Kill what is left and remove the folders once empty; raises OSError if one stays."""
        deadline = time.monotonic() + _REMOVE_TIMEOUT_S
        for folder in self.folders:
            while True:
                self.kill()
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)


def _events(path: Path) -> dict[str, int]:
    """A flat-keyed cgroup file ("key value" per line) as a dict; missing file: empty."""
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return {}
    pairs = (line.split() for line in text.splitlines())
    return {fields[0]: int(fields[1]) for fields in pairs if len(fields) == 2}


def _pids(procs: Path) -> list[int]:
    try:
        return [int(line) for line in procs.read_text(encoding="ascii").split()]
    except FileNotFoundError:
        return []


def _own_cgroups() -> dict[str, str]:
    """Controller (or "" for v2) -> this process's cgroup path, from /proc/self/cgroup."""
    found = {}
    for line in Path("/proc/self/cgroup").read_text(encoding="ascii").splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            found[controller] = path
    return found


def _mounts() -> dict[str, Path]:
    """ "" -> the cgroup2 mount point, and each v1 controller -> its hierarchy's mount point."""
    found: dict[str, Path] = {}
    for line in Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines():
        left, right = line.split(" - ", 1)
        fstype, _source, options = right.split(" ", 2)
        mount_point = Path(left.split(" ")[4])
        if fstype == "cgroup2":
            found.setdefault("", mount_point)
        elif fstype == "cgroup":
            for option in options.split(","):
                if option in _CONTROLLERS:
                    found.setdefault(option, mount_point)
    return found


def _v2_parent(mount: Path, own: str) -> Path:
    configured = os.environ.get(CGROUP_PARENT_ENV)
    if configured:
        return Path(configured)
    return (mount / own.lstrip("/")).parent


def _open_v2(mount: Path, own: str, memory_mb: int, max_processes: int) -> SandboxCgroup:
    parent = _v2_parent(mount, own)
    enabled = set((parent / "cgroup.subtree_control").read_text(encoding="ascii").split())
    if missing := [c for c in _CONTROLLERS if c not in enabled]:
        raise CgroupUnavailable(
            f"cgroup v2: {parent} does not delegate {' and '.join(missing)} to its children "
            f"(set {CGROUP_PARENT_ENV} to a cgroup that does)"
        )
    folder = parent / f"{_PREFIX}{secrets.token_hex(6)}"
    folder.mkdir()
    cgroup = SandboxCgroup(version=2, folders=(folder,))
    try:
        (folder / "memory.max").write_text(str(memory_mb * 1024 * 1024), encoding="ascii")
        swap = folder / "memory.swap.max"
        if swap.exists():
            swap.write_text("0", encoding="ascii")
        (folder / "pids.max").write_text(str(max_processes), encoding="ascii")
    except BaseException:
        cgroup.remove()
        raise
    return cgroup


def _open_v1(
    mounts: dict[str, Path], own: dict[str, str], memory_mb: int, max_processes: int
) -> SandboxCgroup:
    name = f"{_PREFIX}{secrets.token_hex(6)}"
    memory = mounts["memory"] / own["memory"].lstrip("/") / name
    pids = mounts["pids"] / own["pids"].lstrip("/") / name
    memory.mkdir()
    try:
        pids.mkdir()
    except BaseException:
        memory.rmdir()
        raise
    cgroup = SandboxCgroup(version=1, folders=(memory, pids))
    try:
        limit = str(memory_mb * 1024 * 1024)
        (memory / "memory.limit_in_bytes").write_text(limit, encoding="ascii")
        memsw = memory / "memory.memsw.limit_in_bytes"
        if memsw.exists():
            memsw.write_text(limit, encoding="ascii")
        (pids / "pids.max").write_text(str(max_processes), encoding="ascii")
    except BaseException:
        cgroup.remove()
        raise
    return cgroup


def open_cgroup(memory_mb: int, max_processes: int) -> SandboxCgroup:
    """A new cgroup bounding memory (MB, swap included) and processes; raises CgroupUnavailable."""
    mounts, own = _mounts(), _own_cgroups()
    tried = []
    if "" in mounts and "" in own:
        controllers = (mounts[""] / "cgroup.controllers").read_text(encoding="ascii").split()
        if all(c in controllers for c in _CONTROLLERS):
            try:
                return _open_v2(mounts[""], own[""], memory_mb, max_processes)
            except OSError as exc:
                tried.append(f"cgroup v2: {exc}")
            except CgroupUnavailable as exc:
                tried.append(str(exc))
        else:
            tried.append("cgroup v2: the memory and pids controllers are not available in it")
    if all(c in mounts and c in own for c in _CONTROLLERS):
        try:
            return _open_v1(mounts, own, memory_mb, max_processes)
        except OSError as exc:
            tried.append(f"cgroup v1: {exc}")
    else:
        tried.append("cgroup v1: the memory and pids hierarchies are not both mounted")
    raise CgroupUnavailable("; ".join(tried))


@contextlib.contextmanager
def sandbox_cgroup(memory_mb: int, max_processes: int) -> Iterator[SandboxCgroup]:
    """`open_cgroup`, removed (every process in it killed) on exit."""
    cgroup = open_cgroup(memory_mb, max_processes)
    try:
        yield cgroup
    finally:
        cgroup.remove()
