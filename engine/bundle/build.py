"""`cra bundle --out DIR`: the whole bundle, built beside DIR and renamed into place at the end.

Nothing is left half-made: the bundle is written into `DIR.partial-<random>` next to DIR (same
file system, so the rename is one step), flushed, then renamed; any failure removes the partial
folder. DIR must not exist, or be an empty folder.
"""

import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.bundle import debs, lock, scripts, source, wheelhouse
from engine.bundle.errors import BundleError
from engine.bundle.manifest import (
    DEBS_DIR,
    LOCK_FILE,
    MANIFEST_FILE,
    SUMS_FILE,
    VLLM_DIR,
    WHEELS_DIR,
    BundleManifest,
    DebianRepo,
    bundle_files,
    write_sha256sums,
)
from engine.core.durable import fsync_dir, sync_filesystem
from engine.core.staged import remove_tree
from engine.core.timestamps import utc_now
from engine.serving.vllm_client import VLLM_PIN

Say = Callable[[str], None]
NO_DEBS_NOTE = (
    "no debs/: made with --no-debs; bubblewrap, git and the Python's venv module must come "
    "another way"
)


@dataclass(frozen=True)
class BundleOptions:
    """What `cra bundle` was asked for."""

    out: Path
    gpu: bool = False
    cluster: bool = False
    vllm: bool = False
    python_version: str | None = None
    platforms: tuple[str, ...] = ()
    debs: bool = True


@dataclass(frozen=True)
class _Plan:
    """What the options and this machine settle before anything is written."""

    out: Path
    root: Path
    extras: list[str]
    target: wheelhouse.Target
    debian: tuple[str, str] | None
    uv: str
    vllm: bool


def check_out(out: Path) -> Path:
    """`out` made absolute; BundleError when it exists and is not an empty folder."""
    out = out.expanduser().absolute()
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise BundleError(f"--out {out}: exists and is not a folder; give a new folder")
    if out.is_dir() and any(out.iterdir()):
        raise BundleError(f"--out {out}: exists and is not empty; give a new folder")
    return out


def _plan(options: BundleOptions) -> _Plan:
    out = check_out(options.out)
    root = source.find_source()
    extras = source.bundle_extras(
        source.defined_extras(root), gpu=options.gpu, cluster=options.cluster
    )
    target = wheelhouse.resolve_target(options.python_version, options.platforms)
    debian = (debs.debian_release(), debs.host_architecture()) if options.debs else None
    return _Plan(out, root, extras, target, debian, wheelhouse.uv_version(), options.vllm)


def _timed(say: Say, started: float, line: str) -> None:
    say(f"{line} ({time.monotonic() - started:.1f}s)")


def _size(nbytes: int) -> str:
    return f"{nbytes / 1e6:.1f} MB"


def _wheels_and_lock(plan: _Plan, bundle: Path, scratch: Path, say: Say) -> list[lock.Pin]:
    wheels = bundle / WHEELS_DIR
    started = time.monotonic()
    project = source.build_project_wheel(plan.root, scratch, wheels)
    _timed(say, started, f"built {project.name} from {plan.root}")
    started = time.monotonic()
    say(f"downloading the wheels it needs for {plan.target.shown} with pip (the network step)")
    wheelhouse.download_wheels(project, plan.extras, plan.target, wheels)
    found = sorted(wheels.glob("*.whl"))
    _timed(say, started, f"wheels/: {len(found)} wheels, {_size(_total(found))}")
    started = time.monotonic()
    extras = f"[{','.join(plan.extras)}]" if plan.extras else ""
    requirement = f"{source.PROJECT}{extras}=={source.wheel_version(project)}"
    locked = wheelhouse.compile_lock(requirement, wheels, plan.target, scratch)
    header = (
        f"# {requirement} for {plan.target.shown}: every wheel in wheels/, pinned by its\n"
        f"# sha256, compiled offline from wheels/ alone by {plan.uv} (cra bundle).\n"
    )
    (bundle / LOCK_FILE).write_text(header + locked, encoding="utf-8")
    pins = lock.check_lock(locked, wheels)
    _timed(say, started, f"{LOCK_FILE}: {len(pins)} pins, each matching one file in wheels/")
    return pins


def vllm_wheels(target: wheelhouse.Target, folder: Path, scratch: Path, uv: str) -> list[lock.Pin]:
    """`VLLM_PIN` and every wheel it needs on `target` in `folder/wheels/`, with the lock uv
    compiles from them alone (`folder/requirements.lock`): vLLM's own set, with its own torch,
    for the environment `cra serve --install-vllm` makes (`engine.bundle.vllm_env`)."""
    wheels = folder / WHEELS_DIR
    wheels.mkdir(parents=True)
    wheelhouse.download_requirement(VLLM_PIN, target, wheels)
    locked = wheelhouse.compile_lock(VLLM_PIN, wheels, target, scratch)
    header = (
        f"# {VLLM_PIN} for {target.shown}: every wheel in wheels/, pinned by its sha256,\n"
        f"# compiled offline from wheels/ alone by {uv} (cra bundle --vllm).\n"
    )
    (folder / LOCK_FILE).write_text(header + locked, encoding="utf-8")
    return lock.check_lock(locked, wheels)


def _total(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths)


def _debs(plan: _Plan, bundle: Path, say: Say) -> DebianRepo | None:
    if plan.debian is None:
        say("debs/: left out (--no-debs)")
        return None
    codename, arch = plan.debian
    started = time.monotonic()
    tools = debs.system_tools(plan.target.python_version)
    names = debs.dependency_closure([tool.package for tool in tools])
    repo = bundle / DEBS_DIR
    found = debs.download_debs(names, repo)
    count = debs.write_packages_index(repo)
    _timed(
        say,
        started,
        f"debs/: {count} packages for Debian {codename} ({arch}), {_size(_total(found))}",
    )
    (bundle / scripts.INSTALL_SYSTEM_SH).write_text(
        scripts.install_system_sh(codename, arch, tools), encoding="utf-8"
    )
    return DebianRepo(
        codename=codename, architecture=arch, tools=[t.package for t in tools], deb_count=count
    )


def check_torch_build(extras: list[str], version: str, build: str) -> None:
    """A GPU bundle (--gpu) with torch's CPU build is refused: Unsloth would fail on the GPU
    machine, far from the pip configuration that chose it."""
    if source.GPU_EXTRA in extras and build == "+cpu":
        raise BundleError(
            f"--gpu: pip chose torch {version}, the CPU build, which the gpu extra cannot train "
            "on; pip's configured find-links or index (`pip config list`) offer it first: point "
            "pip at torch's CUDA build (PyPI's, or the PyTorch index's +cuNNN) and run again"
        )


def _fill(plan: _Plan, bundle: Path, scratch: Path, say: Say) -> BundleManifest:
    """Write every part of the bundle into the empty folder `bundle`."""
    pins = _wheels_and_lock(plan, bundle, scratch, say)
    torch = lock.pinned_version(pins, "torch")
    if torch is None:
        raise BundleError(f"{LOCK_FILE} pins no torch, which the console needs")
    check_torch_build(plan.extras, *torch)
    vllm_pins = None
    if plan.vllm:
        started = time.monotonic()
        say(f"downloading {VLLM_PIN} and its wheels for {plan.target.shown} (the network step)")
        vllm_pins = vllm_wheels(plan.target, bundle / VLLM_DIR, scratch, plan.uv)
        found = sorted((bundle / VLLM_DIR / WHEELS_DIR).glob("*.whl"))
        _timed(say, started, f"{VLLM_DIR}/: {len(found)} wheels, {_size(_total(found))}, locked")
    debian = _debs(plan, bundle, say)
    console = lock.pinned_version(pins, source.PROJECT)
    if console is None:
        raise BundleError(f"{LOCK_FILE} pins no {source.PROJECT}")
    notes = [] if debian else [NO_DEBS_NOTE]
    draft = BundleManifest(
        console_version=console[0],
        python_version=plan.target.python_version,
        platform=plan.target.platform,
        extras=plan.extras,
        torch_version=torch[0],
        torch_build=torch[1],
        wheel_count=len(pins),
        debian=debian,
        file_count=0,
        total_bytes=0,
        locked_by=plan.uv,
        created_at=utc_now(),
        notes=notes,
        vllm_version=VLLM_PIN.split("==")[1] if vllm_pins is not None else None,
        vllm_wheel_count=len(vllm_pins) if vllm_pins is not None else None,
    )
    (bundle / scripts.INSTALL_SH).write_text(scripts.install_sh(draft), encoding="utf-8")
    (bundle / scripts.README_TXT).write_text(scripts.readme_txt(draft), encoding="utf-8")
    files = bundle_files(bundle)
    manifest = draft.model_copy(
        update={"file_count": len(files), "total_bytes": _total([bundle / f for f in files])}
    )
    (bundle / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    say(f"{SUMS_FILE}: the sha256 of each of the {write_sha256sums(bundle)} other files")
    return manifest


def make_bundle(options: BundleOptions, say: Say) -> tuple[Path, BundleManifest]:
    """Build the bundle `options` asks for at `options.out`; where it is and its manifest."""
    plan = _plan(options)
    partial = plan.out.parent / f"{plan.out.name}.partial-{secrets.token_hex(4)}"
    try:
        partial.mkdir(parents=True)
    except OSError as exc:
        raise BundleError(f"--out {plan.out}: cannot write beside it: {exc.strerror}") from exc
    try:
        with tempfile.TemporaryDirectory(prefix="cra-bundle-") as scratch:
            manifest = _fill(plan, partial, Path(scratch), say)
        sync_filesystem(partial)
        try:
            partial.rename(plan.out)
        except OSError as exc:
            raise BundleError(f"moving the bundle into {plan.out} failed: {exc.strerror}") from exc
    except BaseException:
        remove_tree(partial)
        raise
    fsync_dir(plan.out.parent)
    return plan.out, manifest
