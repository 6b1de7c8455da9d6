"""Run git on an untrusted repository without letting the repository run anything.

Every call ignores system and global config, disables hooks, fsmonitor, external diff and ssh
commands from the command line (which overrides the repository's own config), and never prompts.
"""

import os
import subprocess
from pathlib import Path

from engine.core.errors import CraError

SAFE_OVERRIDES = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.sshCommand=false",
    "core.pager=cat",
    "core.askPass=",
    "credential.helper=",
    "protocol.allow=never",
    "protocol.file.allow=always",
    "diff.external=",
    "submodule.recurse=false",
    "uploadpack.allowFilter=false",
)


class GitError(CraError):
    """A git command on a package repository failed."""


def safe_git_env() -> dict[str, str]:
    """The environment every git call on package data runs with: no user or system config."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "",
        "GIT_OPTIONAL_LOCKS": "0",
        "GIT_NO_REPLACE_OBJECTS": "1",
    }


def git_argv(repo: Path, *args: str) -> list[str]:
    overrides = [part for item in SAFE_OVERRIDES for part in ("-c", item)]
    return ["git", "--no-pager", *overrides, "-C", str(repo), *args]


def run_git(
    repo: Path,
    *args: str,
    timeout: float = 120.0,
    check: bool = True,
    input_bytes: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run `git args…` in `repo` safely; raise GitError naming the command when it fails."""
    argv = git_argv(repo, *args)
    try:
        result = subprocess.run(
            argv,
            env=safe_git_env(),
            capture_output=True,
            timeout=timeout,
            input=input_bytes,
            stdin=None if input_bytes is not None else subprocess.DEVNULL,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired as exc:
        raise GitError(f"{repo}: git {' '.join(args)} took longer than {timeout:g}s") from exc
    if check and result.returncode != 0:
        err = result.stderr.decode("utf-8", "replace").strip()
        raise GitError(f"{repo}: git {' '.join(args)} failed: {err}")
    return result
