"""Running a command with one folder mounted read-only, in a user and mount namespace of its
own: real read-only media without root or a spare drive."""

import shutil
import subprocess
import sys
from pathlib import Path

_MOUNT = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0"'


def read_only_mounts_work() -> bool:
    """Whether this machine lets a process mount a folder read-only in its own namespace."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", _MOUNT, str(Path(__file__).parent)],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


def cra_with_read_only(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`cra ARGS` with `folder` mounted read-only."""
    cra = str(Path(sys.executable).parent / "cra")
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c", f'{_MOUNT} && exec "$@"', str(folder), cra, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
