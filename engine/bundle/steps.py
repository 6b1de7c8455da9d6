"""Run the tools a bundle is made with (pip, git, apt, dpkg-deb) as named steps.

A failing step is one line for the operator: the step and the tool's own reason, never its whole
output and never a traceback.
"""

import subprocess
from collections.abc import Sequence
from pathlib import Path

from engine.bundle.errors import BundleError

STEP_TIMEOUT_S = 1800.0
_CAUSE_MAX_CHARS = 400
# Error lines, best first: pip's own, then apt's, git's, dpkg-deb's, and last the generic
# `error:` pip wraps a failed subprocess in.
_ERROR_PREFIXES = (("ERROR:",), ("E:", "fatal:", "dpkg-deb: error"), ("error:",))
# What pip and apt print when the network or the index is out of reach: their last error line
# alone ("No matching distribution found") would hide it.
_UNREACHABLE = (
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Temporary failure resolving",
    "Network is unreachable",
    "Connection refused",
    "Could not connect to",
)


def cause_line(stderr: str, stdout: str = "") -> str:
    """The line of a tool's output that says why it failed: its best error line, else its last
    line, trimmed; said to be the network's fault when the output shows that."""
    text = stderr if stderr.strip() else stdout
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    chosen = None
    for prefixes in _ERROR_PREFIXES:
        errors = [line for line in lines if line.startswith(prefixes)]
        if errors:
            chosen = errors[-1]
            break
    line = chosen or (lines[-1] if lines else "it printed nothing")
    if any(mark in text for mark in _UNREACHABLE):
        line = f"the network or the package index could not be reached: {line}"
    if len(line) > _CAUSE_MAX_CHARS:
        line = line[: _CAUSE_MAX_CHARS - 1] + "…"
    return line


def run_step(
    step: str,
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    timeout: float = STEP_TIMEOUT_S,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run `argv` as the step named `step`; its result, or BundleError naming the step and why
    (a non-zero exit is the caller's to judge when not `check`)."""
    try:
        done = subprocess.run(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except FileNotFoundError as exc:
        raise BundleError(f"{step} failed: {argv[0]} is not installed here") from exc
    except subprocess.TimeoutExpired as exc:
        raise BundleError(f"{step} failed: it took longer than {timeout:g}s") from exc
    if check and done.returncode != 0:
        raise BundleError(f"{step} failed: {cause_line(done.stderr, done.stdout)}")
    return done
