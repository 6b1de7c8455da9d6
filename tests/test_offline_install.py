"""The offline install, proven: `cra bundle` builds a bundle (the connected side, so pip may use
the network or its cache here, as the README's install step does), then, inside a network
namespace with no network at all (bubblewrap's `--unshare-net`), the bundle's own install.sh
installs it into a fresh virtual environment, whose `cra --version` and `ray --version` (the
`cluster` extra) run, and whose `cra demo --run` walks the whole loop. The bundle is built once
for the module; the install and the demo run in one namespace, once."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.bundle.lock import check_lock
from engine.bundle.manifest import SUMS_FILE, bundle_files, read_manifest

pytestmark = pytest.mark.slow  # a 400 MB wheelhouse, a venv from it and the demo loop: minutes

CRA = Path(sys.executable).parent / "cra"
BWRAP = "/usr/bin/bwrap"

_PROBE = """
import errno, socket
s = socket.socket()
s.settimeout(5)
try:
    s.connect(("1.1.1.1", 53))
except OSError as exc:
    print("network: absent,", errno.errorcode.get(exc.errno, exc.errno))
else:
    print("network: PRESENT")
"""

_OFFLINE = """
set -eu
"$PROBE_PYTHON" -c "$PROBE"
echo "@@ install $(date +%s.%N)"
sh "$BUNDLE/install.sh" "$VENV"
echo "@@ version $(date +%s.%N)"
"$VENV/bin/cra" --version
"$VENV/bin/ray" --version
"$VENV/bin/python" -c "import engine.cluster.fanout; print('the cluster backend imports')"
echo "@@ demo $(date +%s.%N)"
"$VENV/bin/cra" --workspace "$WORKSPACE" demo --run
echo "@@ end $(date +%s.%N)"
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`cra bundle --out DIR --cluster --no-debs`, through the real CLI, once for the module:
    the cluster extra (Ray) rides along, so the cluster backend is proven to install too."""
    out = tmp_path_factory.mktemp("bundle") / "bundle"
    started = time.monotonic()
    done = subprocess.run(
        [str(CRA), "bundle", "--out", str(out), "--cluster", "--no-debs"],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    print(f"\ncra bundle: {time.monotonic() - started:.1f}s\n{done.stdout}")
    return out


@pytest.fixture(scope="module")
def offline(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """install.sh, `cra --version` and `cra demo --run`, in one namespace with no network:
    what they printed and how long each took."""
    assert Path(BWRAP).is_file(), "bubblewrap is required: apt-get install bubblewrap"
    assert shutil.which("python3.11"), "install.sh makes the venv with python3.11"
    base = tmp_path_factory.mktemp("offline")
    env = {
        **os.environ,
        "BUNDLE": str(bundle),
        "VENV": str(base / "venv"),
        "WORKSPACE": str(base / "demo"),
        "PROBE": _PROBE,
        "PROBE_PYTHON": sys.executable,
        "OMP_NUM_THREADS": "1",
    }
    env.pop("PYTHON", None)
    done = subprocess.run(
        [BWRAP, "--dev-bind", "/", "/", "--unshare-net", "--die-with-parent"]
        + ["--", "sh", "-c", _OFFLINE],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    marks = {
        line.split()[1]: float(line.split()[2])
        for line in done.stdout.splitlines()
        if line.startswith("@@ ")
    }
    steps = list(marks)
    timings = {a: marks[b] - marks[a] for a, b in zip(steps, steps[1:], strict=False)}
    print("\noffline: " + ", ".join(f"{name} {secs:.1f}s" for name, secs in timings.items()))
    return {"done": done, "timings": timings, "venv": base / "venv"}


def test_the_bundle_is_whole(bundle: Path) -> None:
    """bundle.json says what it is, every file is in SHA256SUMS, and the lock pins each wheel
    by its hash, one to one."""
    manifest = read_manifest(bundle)
    assert manifest.debian is None and "--no-debs" in manifest.notes[0]
    assert manifest.torch_version.startswith("2.") and manifest.extras == ["cluster"]
    assert manifest.torch_build == (
        "+" + manifest.torch_version.split("+")[1] if "+" in manifest.torch_version else ""
    )
    listed = {line.split("  ", 1)[1] for line in (bundle / SUMS_FILE).read_text().splitlines()}
    assert listed == {p.as_posix() for p in bundle_files(bundle)} - {SUMS_FILE}
    assert not (bundle / "install-system.sh").exists()
    pins = check_lock((bundle / "requirements.lock").read_text(), bundle / "wheels")
    assert len(pins) == manifest.wheel_count == len(list((bundle / "wheels").iterdir()))
    assert {
        "cra-console",
        "torch",
        "pytest",
        "pluggy",
        "iniconfig",
        "pygments",
        "packaging",
        "ray",
    } <= {p.name for p in pins}


def test_there_is_no_network_inside(offline: dict[str, object]) -> None:
    done = offline["done"]
    assert isinstance(done, subprocess.CompletedProcess)
    assert "network: absent, ENETUNREACH" in done.stdout, done.stdout + done.stderr


def test_install_sh_installs_the_console_offline(offline: dict[str, object], bundle: Path) -> None:
    done = offline["done"]
    assert isinstance(done, subprocess.CompletedProcess)
    version = read_manifest(bundle).console_version
    assert f"\ncra, version {version}\n" in done.stdout, done.stdout + done.stderr
    assert "\nray, version 2.60.0\n" in done.stdout
    assert "\nthe cluster backend imports\n" in done.stdout
    venv = offline["venv"]
    assert isinstance(venv, Path)
    assert (venv / "bin" / "cra").is_file()


def test_cra_demo_run_walks_the_loop_offline(offline: dict[str, object]) -> None:
    done = offline["done"]
    assert isinstance(done, subprocess.CompletedProcess)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "the loop is done: scope-v1 was trained, evaluated, promoted and rolled back" in (
        done.stdout
    )
