"""Which console code a process runs: a digest of the engine's sources.

A node whose digest differs from the head's is refused before it runs anything: an attempt
graded by other code is not the same result, whatever its row says.
"""

import functools
import hashlib
from pathlib import Path

import engine


@functools.cache
def code_digest() -> str:
    """sha256 over every engine module's path and bytes, in path order."""
    root = Path(engine.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode("utf-8") + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()
