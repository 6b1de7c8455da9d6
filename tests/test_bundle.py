"""`cra bundle`'s parts, offline and fast: the lock held against the wheels, debs/'s Packages
file and apt reading it, bundle.json, the out folder, and the bundle's install.sh run for real
on a tiny bundle of real wheels (`tests/test_offline_install.py` installs a whole one, slowly).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from app.cli import cli
from engine.bundle import build as bundle_build
from engine.bundle.build import BundleOptions, check_torch_build, make_bundle
from engine.bundle.debs import (
    SystemTool,
    closure_names,
    debian_release,
    host_architecture,
    os_release,
    write_packages_index,
)
from engine.bundle.errors import BundleError
from engine.bundle.lock import check_lock, lock_problems, parse_lock, pinned_version
from engine.bundle.manifest import BundleManifest, DebianRepo, write_sha256sums
from engine.bundle.scripts import install_sh, install_system_sh
from engine.bundle.source import bundle_extras
from engine.bundle.wheelhouse import compile_lock, resolve_target
from engine.core.hashing import sha256_file
from engine.demo.wheels import build_wheel

THIS_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
BASE_PYTHON = Path(sys.base_prefix) / "bin" / f"python{THIS_PYTHON}"
FAKE_CRA = "def main():\n    print('cra, version 0.0.1')\n"
ENTRY_POINTS = "[console_scripts]\ncra = fakecra:main\n"


def tiny_wheels(folder: Path) -> dict[str, Path]:
    """A fake cra-console 0.0.1 (a `cra` script that prints its version) needing beta==2.0,
    whose only wheel is a local build, 2.0+cpu, as torch's is."""
    console = build_wheel(
        "cra-console",
        "0.0.1",
        {
            "fakecra.py": FAKE_CRA,
            "cra_console-0.0.1.dist-info/entry_points.txt": ENTRY_POINTS,
        },
        folder,
        requires=["beta==2.0"],
    )
    beta = build_wheel("beta", "2.0+cpu", {"beta.py": "VALUE = 2\n"}, folder)
    return {"console": console, "beta": beta}


def manifest_for(wheel_count: int, python_version: str = THIS_PYTHON) -> BundleManifest:
    return BundleManifest(
        console_version="0.0.1",
        python_version=python_version,
        platform="manylinux_2_36_x86_64",
        extras=[],
        torch_version="2.0+cpu",
        torch_build="+cpu",
        wheel_count=wheel_count,
        debian=None,
        file_count=0,
        total_bytes=0,
        locked_by="uv 0.13.9",
        created_at="2026-01-01T00:00:00Z",
    )


@pytest.fixture
def locked(tmp_path: Path) -> tuple[Path, str]:
    """A wheels/ folder of the tiny wheels and the lock uv compiles from it, offline."""
    wheels = tmp_path / "wheels"
    tiny_wheels(wheels)
    target = resolve_target(None, ())
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return wheels, compile_lock("cra-console==0.0.1", wheels, target, scratch)


def test_lock_compiled_offline_pins_every_wheel_by_its_hash(locked: tuple[Path, str]) -> None:
    """uv locks the requirement from the folder alone; `beta==2.0` takes the local build
    2.0+cpu, whose tag the manifest records, and the lock matches the files one to one."""
    wheels, lock_text = locked
    pins = check_lock(lock_text, wheels)
    assert sorted(p.shown for p in pins) == ["beta==2.0+cpu", "cra-console==0.0.1"]
    assert pinned_version(pins, "beta") == ("2.0+cpu", "+cpu")
    assert pinned_version(pins, "cra-console") == ("0.0.1", "")
    assert {digest for p in pins for digest in p.hashes} == {
        sha256_file(p) for p in wheels.iterdir()
    }


def test_lock_fails_to_compile_when_a_wheel_is_missing(tmp_path: Path) -> None:
    """Without beta's wheel, the offline compile itself fails, naming it: the wheelhouse is
    proved complete before anything reaches the air-gapped machine."""
    wheels = tmp_path / "wheels"
    tiny_wheels(wheels)["beta"].unlink()
    with pytest.raises(BundleError, match=r"uv pip compile\) failed: .*beta"):
        compile_lock("cra-console==0.0.1", wheels, resolve_target(None, ()), tmp_path)


def test_a_wheel_the_lock_does_not_use_is_a_problem(locked: tuple[Path, str]) -> None:
    wheels, lock_text = locked
    build_wheel("gamma", "1.0", {"gamma.py": ""}, wheels)
    assert lock_problems(parse_lock(lock_text), wheels) == [
        "wheels/gamma-1.0-py3-none-any.whl is not in the lock (no pin uses it)"
    ]
    with pytest.raises(BundleError, match="found 1 problem"):
        check_lock(lock_text, wheels)


def test_a_changed_wheel_is_a_hash_mismatch(locked: tuple[Path, str]) -> None:
    wheels, lock_text = locked
    beta = wheels / "beta-2.0+cpu-py3-none-any.whl"
    beta.write_bytes(beta.read_bytes() + b"\0")
    problems = lock_problems(parse_lock(lock_text), wheels)
    assert len(problems) == 2
    assert problems[0].startswith(f"wheels/{beta.name} has sha256 {sha256_file(beta)}")
    assert problems[0].endswith("which the lock does not allow for beta==2.0+cpu")
    assert problems[1] == "beta==2.0+cpu is in the lock, but no file in wheels/ has its sha256"


def test_a_pin_without_its_wheel_is_a_problem(locked: tuple[Path, str]) -> None:
    wheels, lock_text = locked
    (wheels / "beta-2.0+cpu-py3-none-any.whl").unlink()
    (wheels / "notes.txt").write_text("x")
    assert lock_problems(parse_lock(lock_text), wheels) == [
        "wheels/notes.txt is not a wheel file",
        "beta==2.0+cpu is in the lock, but no file in wheels/ has its sha256",
    ]


def test_a_file_under_another_pins_hash_is_a_problem(locked: tuple[Path, str]) -> None:
    wheels, lock_text = locked
    beta = wheels / "beta-2.0+cpu-py3-none-any.whl"
    beta.rename(wheels / "beta-2.1-py3-none-any.whl")
    assert lock_problems(parse_lock(lock_text), wheels)[0] == (
        "wheels/beta-2.1-py3-none-any.whl has the sha256 the lock gives beta==2.0+cpu"
    )


@pytest.mark.parametrize(
    "entry",
    ["beta>=2.0 --hash=sha256:" + "0" * 64, "beta==2.0", "--hash=sha256:" + "0" * 64],
)
def test_a_lock_entry_that_is_not_a_hashed_pin_is_refused(entry: str) -> None:
    with pytest.raises(BundleError, match="requirements.lock: "):
        parse_lock(f"# header\n{entry}\n")


def test_gpu_needs_the_gpu_extra() -> None:
    """--gpu installs the gpu extra; a pyproject without one is refused, naming it."""
    assert bundle_extras(["dev"], gpu=False) == []
    assert bundle_extras(["dev", "gpu"], gpu=True) == ["gpu"]
    with pytest.raises(
        BundleError, match=r"no \[project.optional-dependencies\] extra named 'gpu'"
    ):
        bundle_extras(["dev"], gpu=True)


def test_cluster_adds_the_cluster_extra() -> None:
    """--cluster installs Ray for the cluster backend, beside the GPU set or alone."""
    assert bundle_extras(["cluster", "gpu"], gpu=False, cluster=True) == ["cluster"]
    assert bundle_extras(["cluster", "gpu"], gpu=True, cluster=True) == ["gpu", "cluster"]
    with pytest.raises(BundleError, match=r"--cluster: .* extra named 'cluster'"):
        bundle_extras(["gpu"], gpu=False, cluster=True)


def test_a_gpu_bundle_refuses_torchs_cpu_build() -> None:
    """With --gpu, a torch pip took from a CPU find-links folder is refused, naming it."""
    check_torch_build([], "2.13.0", "+cpu")
    check_torch_build(["gpu"], "2.13.0", "")
    check_torch_build(["gpu"], "2.13.0", "+cu128")
    with pytest.raises(BundleError, match=r"--gpu: pip chose torch 2.13.0\+cpu, the CPU build"):
        check_torch_build(["gpu"], "2.13.0+cpu", "+cpu")


def test_target_platforms() -> None:
    """This machine's target is its own glibc's manylinux; given tags map to uv's names."""
    own = resolve_target(None, ())
    assert own.python_version == THIS_PYTHON and own.pip_args() == []
    assert own.platform.startswith("manylinux_2_")
    given = resolve_target("3.12", ("manylinux2014_x86_64", "manylinux_2_20_x86_64"))
    assert (given.platform, given.uv_platform) == ("manylinux_2_20_x86_64", "x86_64-manylinux_2_20")
    # pip matches a platform tag exactly: a glibc level brings every older one of its arch.
    assert given.pip_args() == [
        *("--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_20_x86_64"),
        *("--platform", "manylinux_2_19_x86_64", "--platform", "manylinux_2_18_x86_64"),
        *("--platform", "manylinux_2_17_x86_64", "--python-version", "3.12"),
    ]
    with pytest.raises(BundleError, match="more than one architecture"):
        resolve_target(None, ("manylinux_2_28_x86_64", "manylinux_2_28_aarch64"))
    with pytest.raises(BundleError, match="--python-version '3'"):
        resolve_target("3", ())


def test_bundle_json_round_trips_and_refuses_unknown_keys() -> None:
    manifest = manifest_for(2).model_copy(
        update={
            "debian": DebianRepo(
                codename="bookworm", architecture="amd64", tools=["git"], deb_count=3
            )
        }
    )
    assert BundleManifest.model_validate_json(manifest.model_dump_json()) == manifest
    data = manifest.model_dump(mode="json")
    with pytest.raises(ValidationError, match="extra_forbidden"):
        BundleManifest.model_validate({**data, "surprise": 1})
    with pytest.raises(ValidationError):
        BundleManifest.model_validate({**data, "format": 2})


def test_a_non_empty_out_is_refused(tmp_path: Path) -> None:
    """Nothing is built into a folder that holds something, and no partial folder is left."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = CliRunner().invoke(cli, ["bundle", "--out", str(out), "--no-debs"])
    assert result.exit_code == 1
    assert f"--out {out}: exists and is not empty; give a new folder" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_a_failed_step_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A step that fails after writing removes the partial folder, and --out stays absent."""

    def failing_build(root: Path, scratch: Path, wheels: Path) -> Path:
        wheels.mkdir(parents=True)
        (wheels / "half.whl").write_text("half")
        raise BundleError("building the console's wheel (pip wheel) failed: no")

    monkeypatch.setattr(bundle_build.source, "build_project_wheel", failing_build)
    with pytest.raises(BundleError, match="pip wheel"):
        make_bundle(BundleOptions(out=tmp_path / "b", debs=False), lambda line: None)
    assert list(tmp_path.iterdir()) == []


def test_an_empty_out_folder_takes_the_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty --out is replaced by the finished bundle in one rename; nothing else is left."""

    def fill(plan: object, bundle: Path, scratch: Path, say: object) -> BundleManifest:
        (bundle / "bundle.json").write_text("{}")
        return manifest_for(0)

    monkeypatch.setattr(bundle_build, "_fill", fill)
    (tmp_path / "b").mkdir()
    where, _ = make_bundle(BundleOptions(out=tmp_path / "b", debs=False), lambda line: None)
    assert where == tmp_path / "b"
    assert [p.name for p in tmp_path.iterdir()] == ["b"]
    assert [p.name for p in where.iterdir()] == ["bundle.json"]


def test_an_unreachable_index_is_one_line_naming_the_step(tmp_path: Path) -> None:
    """With no index to reach, `cra bundle` says which step failed and why in one line, with
    no traceback, and leaves nothing behind."""
    env = {
        **os.environ,
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
        "PIP_FIND_LINKS": "",
        "PIP_RETRIES": "1",
    }
    done = subprocess.run(
        [str(Path(sys.executable).parent / "cra"), "bundle", "--out", "b", "--no-debs"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(
        "error: building the console's wheel (pip wheel) failed: the network or the package "
        "index could not be reached: ERROR: No matching distribution found for setuptools"
    )
    assert "Traceback" not in done.stdout + done.stderr
    assert list(tmp_path.iterdir()) == []


def test_closure_names_keeps_real_packages_only() -> None:
    output = (
        "git\n  Depends: libc6\n  Depends: <perl:any>\n    perl\n<perl:any>\nlibc6\nlibc6:i386\n"
    )
    assert closure_names(output) == ["git", "libc6"]


def test_os_release_reads_quoted_values(tmp_path: Path) -> None:
    release = tmp_path / "os-release"
    release.write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\n')
    assert os_release(release)["PRETTY_NAME"] == "Debian GNU/Linux 12 (bookworm)"
    assert debian_release(release) == "bookworm"
    release.write_text('NAME="Fedora Linux"\n')
    with pytest.raises(BundleError, match="no VERSION_CODENAME.*--no-debs"):
        debian_release(release)


needs_dpkg = pytest.mark.skipif(
    shutil.which("dpkg-deb") is None or shutil.which("apt-get") is None,
    reason="dpkg-deb and apt-get: Debian's tools",
)


def build_deb(folder: Path, name: str = "cra-test-tool", depends: str = "libc6") -> Path:
    """A real, tiny .deb: one script in /usr/bin, built by dpkg-deb."""
    root = folder / f"{name}-root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: 1.0-1\nArchitecture: all\nMaintainer: cra <cra@example.org>\n"
        f"Depends: {depends}\nDescription: a test tool\n a package built by the tests.\n .\n"
        " It does nothing.\n"
    )
    script = root / "usr" / "bin" / name
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\necho ok\n")
    script.chmod(0o755)
    deb = folder / "repo" / f"{name}_1.0-1_all.deb"
    deb.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "--build", str(root), str(deb)],
        check=True,
        capture_output=True,
    )
    return deb


def paragraphs(text: str) -> list[dict[str, str]]:
    """A Packages file's paragraphs as field -> value (continuation lines joined)."""
    found = []
    for block in text.strip().split("\n\n"):
        fields: dict[str, str] = {}
        last = ""
        for line in block.splitlines():
            if line.startswith(" "):
                fields[last] += "\n" + line
            else:
                last, _, value = line.partition(":")
                fields[last] = value.strip()
        found.append(fields)
    return found


@needs_dpkg
def test_packages_index_of_a_real_deb(tmp_path: Path) -> None:
    """Packages holds each .deb's control fields, then its Filename, Size and SHA256."""
    deb = build_deb(tmp_path)
    build_deb(tmp_path, "cra-other-tool", depends="cra-test-tool")
    assert write_packages_index(deb.parent) == 2
    other, tool = paragraphs((deb.parent / "Packages").read_text())
    assert tool["Package"] == "cra-test-tool"
    assert (tool["Version"], tool["Architecture"], tool["Depends"]) == ("1.0-1", "all", "libc6")
    assert tool["Description"].splitlines() == [
        "a test tool",
        " a package built by the tests.",
        " .",
        " It does nothing.",
    ]
    assert tool["Filename"] == f"./{deb.name}"
    assert tool["Size"] == str(deb.stat().st_size)
    assert tool["SHA256"] == sha256_file(deb)
    assert other["Depends"] == "cra-test-tool"


def system_bundle(tmp_path: Path, tools: list[SystemTool], codename: str) -> Path:
    """A bundle of debs/ (two tiny .debs, the second needing the first) and install-system.sh."""
    bundle = tmp_path / "bundle"
    deb = build_deb(tmp_path)
    build_deb(tmp_path, "cra-other-tool", depends="cra-test-tool")
    bundle.mkdir()
    deb.parent.rename(bundle / "debs")
    write_packages_index(bundle / "debs")
    script = install_system_sh(codename, host_architecture(), tools)
    (bundle / "install-system.sh").write_text(script)
    write_sha256sums(bundle)
    return bundle


@needs_dpkg
def test_install_system_sh_has_apt_install_from_debs_alone(tmp_path: Path) -> None:
    """`install-system.sh --simulate`: apt reads debs/ as its only source, with its lists and
    cache in a temporary folder, and would install the missing tool and what it needs from
    there; the machine is not changed."""
    tools = [
        SystemTool("cra-other-tool", "command -v cra-other-tool"),
        SystemTool("git", "true"),
    ]
    bundle = system_bundle(tmp_path, tools, debian_release())
    done = subprocess.run(
        ["sh", str(bundle / "install-system.sh"), "--simulate"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"installing cra-other-tool from {bundle.resolve()}/debs" in done.stdout
    assert "Inst cra-test-tool (1.0-1 localhost [all])" in done.stdout
    assert "Inst cra-other-tool (1.0-1 localhost [all])" in done.stdout
    assert "Remv" not in done.stdout


@needs_dpkg
def test_install_system_sh_refuses_another_release_and_skips_present_tools(
    tmp_path: Path,
) -> None:
    bundle = system_bundle(tmp_path, [SystemTool("git", "true")], "nonesuch")
    done = subprocess.run(
        ["sh", str(bundle / "install-system.sh"), "--simulate"], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert f"this machine is Debian '{debian_release()}', but debs/ was made for nonesuch" in (
        done.stderr
    )
    script = install_system_sh(debian_release(), host_architecture(), [SystemTool("git", "true")])
    (bundle / "install-system.sh").write_text(script)
    write_sha256sums(bundle)
    done = subprocess.run(
        ["sh", str(bundle / "install-system.sh"), "--simulate"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "git: all present, nothing to install\n"


def tiny_bundle(tmp_path: Path, python_version: str = THIS_PYTHON) -> Path:
    """A bundle by hand from the tiny wheels: wheels/, the lock uv compiles offline,
    install.sh, bundle.json and SHA256SUMS, each written by the engine's own functions."""
    bundle = tmp_path / "bundle"
    tiny_wheels(bundle / "wheels")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    lock_text = compile_lock(
        "cra-console==0.0.1", bundle / "wheels", resolve_target(None, ()), scratch
    )
    (bundle / "requirements.lock").write_text(lock_text)
    manifest = manifest_for(2, python_version)
    (bundle / "install.sh").write_text(install_sh(manifest))
    (bundle / "bundle.json").write_text(manifest.model_dump_json(indent=2))
    write_sha256sums(bundle)
    return bundle


def run_install(bundle: Path, venv: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(bundle / "install.sh"), str(venv)],
        env={**os.environ, "PYTHON": str(BASE_PYTHON)},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_install_sh_installs_the_locked_wheels(tmp_path: Path) -> None:
    """The tiny bundle installs into a new venv and its `cra --version` runs."""
    bundle = tiny_bundle(tmp_path)
    done = run_install(bundle, tmp_path / "venv")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cra, version 0.0.1\n" in done.stdout
    site = next((tmp_path / "venv" / "lib").glob("python*/site-packages"))
    assert (site / "beta.py").is_file()


def test_install_sh_refuses_a_tampered_wheel(tmp_path: Path) -> None:
    """A wheel changed after the bundle was made fails SHA256SUMS before any venv is made."""
    bundle = tiny_bundle(tmp_path)
    beta = bundle / "wheels" / "beta-2.0+cpu-py3-none-any.whl"
    beta.write_bytes(beta.read_bytes() + b"\0")
    done = run_install(bundle, tmp_path / "venv")
    assert done.returncode == 1
    assert f"wheels/{beta.name}: FAILED" in done.stderr
    assert "does not match its SHA256SUMS" in done.stderr
    assert not (tmp_path / "venv").exists()


def test_install_sh_refuses_an_added_wheel(tmp_path: Path) -> None:
    bundle = tiny_bundle(tmp_path)
    build_wheel("gamma", "1.0", {"gamma.py": ""}, bundle / "wheels")
    done = run_install(bundle, tmp_path / "venv")
    assert done.returncode == 1
    assert "wheels/gamma-1.0-py3-none-any.whl is not in SHA256SUMS" in done.stderr
    assert not (tmp_path / "venv").exists()


def test_install_sh_refuses_another_python(tmp_path: Path) -> None:
    bundle = tiny_bundle(tmp_path, python_version="3.99")
    done = run_install(bundle, tmp_path / "venv")
    assert done.returncode == 1
    assert f"is Python {THIS_PYTHON}, but this bundle's wheels are for Python 3.99" in (done.stderr)
    assert not (tmp_path / "venv").exists()


def test_install_sh_refuses_a_non_empty_venv_folder(tmp_path: Path) -> None:
    bundle = tiny_bundle(tmp_path)
    (tmp_path / "venv").mkdir()
    (tmp_path / "venv" / "keep").write_text("mine")
    done = run_install(bundle, tmp_path / "venv")
    assert done.returncode == 1
    assert "exists and is not empty: give a new folder" in done.stderr
