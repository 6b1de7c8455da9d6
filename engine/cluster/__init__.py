"""Harness work on a Ray cluster: campaigns and gold validation fanned out to several machines.

The head (the machine holding the workspace) stays the only writer of the database and the
workspace: it decides what runs, sends each node a work order with the package by content hash,
and records what comes back exactly as a local worker would. A node keeps a workspace of its own
as a cache (`node.node_dir`), runs the same attempt and validation code in its own sandbox, and
returns the outcome with its artifacts. `ray` is imported only in `remote`; everything else here
is plain Python, so the local backend needs nothing new.
"""
