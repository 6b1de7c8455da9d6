"""`cra bundle`: the offline install bundle for the air-gapped machine (connected side)."""

from pathlib import Path

import click

from app.cli_common import PathArg


@click.command()
@click.option(
    "--out",
    required=True,
    type=PathArg(),
    help="Folder to write the bundle to; it must not exist yet, or be empty.",
)
@click.option("--gpu", is_flag=True, help="Add the gpu extra: the GPU machine's training stack.")
@click.option(
    "--cluster",
    is_flag=True,
    help="Add the cluster extra: Ray, for harness work on several machines (docs/cluster.md).",
)
@click.option(
    "--vllm",
    is_flag=True,
    help="Add vllm/: vLLM's wheels and lock, for `cra serve --install-vllm BUNDLE/vllm` on the "
    "GPU machine (vLLM's own environment, its own torch).",
)
@click.option(
    "--python-version",
    help="Python of the air-gapped machine, as pip download takes it (default: this one's).",
)
@click.option(
    "--platform",
    "platforms",
    multiple=True,
    help="pip platform tag of the air-gapped machine, such as manylinux_2_36_x86_64 "
    "(repeatable, as pip download takes it; default: this machine's).",
)
@click.option(
    "--no-debs",
    is_flag=True,
    help="Leave out debs/ (bubblewrap, git and the venv module as .deb files): for a "
    "machine that has them, or a host that is not Debian.",
)
def bundle(
    out: Path,
    gpu: bool,
    cluster: bool,
    vllm: bool,
    python_version: str | None,
    platforms: tuple[str, ...],
    no_debs: bool,
) -> None:
    """Write an offline bundle that installs this console on an air-gapped machine.

    The bundle holds the console's wheel and every wheel it needs (wheels/, pinned by sha256 in
    requirements.lock, which uv compiles from wheels/ alone), bubblewrap, git and Python's venv
    module as a local apt repository (debs/), install.sh, install-system.sh, README.txt,
    bundle.json and SHA256SUMS. Downloading the wheels and .debs is the step that uses the
    network; the install uses none.
    """
    from engine.bundle.build import BundleOptions, make_bundle

    options = BundleOptions(
        out=out,
        gpu=gpu,
        cluster=cluster,
        vllm=vllm,
        python_version=python_version,
        platforms=platforms,
        debs=not no_debs,
    )
    where, manifest = make_bundle(options, click.echo)
    click.echo(
        f"bundle: {where}, {manifest.total_bytes / 1e6:.1f} MB (cra-console "
        f"{manifest.console_version}, {manifest.wheel_count} wheels, torch "
        f"{manifest.torch_version})"
    )
    click.echo("on the air-gapped machine:")
    if manifest.debian is not None:
        click.echo(f"  sh {where}/install-system.sh     (as root: the system tools it lacks)")
    click.echo(f"  sh {where}/install.sh VENV_DIR   (then VENV_DIR/bin/cra demo)")
    if manifest.vllm_version is not None:
        click.echo(
            f"  VENV_DIR/bin/cra serve --install-vllm {where}/vllm   (vLLM "
            f"{manifest.vllm_version}, {manifest.vllm_wheel_count} wheels, in its own environment)"
        )
