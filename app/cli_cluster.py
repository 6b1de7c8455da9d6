"""`cra cluster`: the Ray cluster that `[harness] backend = "ray"` runs campaigns and gold
validation on (docs/cluster.md)."""

import click

from app.cli_common import open_workspace
from engine.core.errors import CraError


@click.group()
def cluster() -> None:
    """The Ray cluster harness work runs on: its nodes and whether each can take work."""


@cluster.command("status")
@click.pass_context
def cluster_status(ctx: click.Context) -> None:
    """Every node of the cluster at [harness.ray] address: its address, CPUs, and whether it can
    take work (it runs this console's code and its sandbox isolates), checked on the node.
    Exit status 1 when a node cannot, or none is alive."""
    ws = open_workspace(ctx, write=False)
    settings = ws.config.harness.ray
    if not settings.address:
        raise CraError(
            f"no cluster is configured: set [harness.ray] address in {ws.config_path} "
            "(docs/cluster.md)"
        )
    from engine.cluster.fanout import check_nodes, cluster_nodes, connect, disconnect

    connect(settings.address)
    try:
        nodes = cluster_nodes()
        checked = dict((node.node_id, problem) for node, problem in check_nodes())
    finally:
        disconnect()
    backend = ws.config.harness.backend
    click.echo(
        f"cluster at {settings.address} (backend {backend!r}"
        + ("" if backend == "ray" else ": campaigns run locally until it is 'ray'")
        + f"), {settings.cpus_per_task:g} CPUs per task"
    )
    ready = 0
    for node in nodes:
        if not node.alive:
            click.echo(f"{node.node_id[:8]}  {node.address:<15}  lost")
            continue
        problem = checked.get(node.node_id)
        places = int(node.cpus // settings.cpus_per_task)
        ready += places if problem is None else 0
        state = "ready" if problem is None else f"REFUSED: {problem}"
        click.echo(
            f"{node.node_id[:8]}  {node.address:<15}  {node.cpus:>3g} CPUs  {places} at once  "
            f"{state}"
        )
    click.echo(f"{ready} tasks at once on the ready nodes")
    if ready == 0 or any(problem is not None for problem in checked.values()):
        ctx.exit(1)
