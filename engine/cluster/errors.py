"""What can go wrong with a cluster, as messages an operator can act on."""

from engine.core.errors import CraError


class ClusterError(CraError):
    """The cluster cannot be reached or used as configured."""


class NodeError(CraError):
    """A node cannot do the work it was sent (another install, no sandbox, a damaged transfer);
    the message names the node and what to fix there."""
