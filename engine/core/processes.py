"""Process-group kills and parent-death signals for the processes the engine starts."""

import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def kill_group(pgid: int) -> None:
    """SIGKILL every process in group `pgid`; a group already gone is fine."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return


def die_with_parent() -> None:
    """Have the kernel SIGKILL this process when the thread that started it dies.

    Safe as a `preexec_fn` only in a single-threaded parent.
    """
    if _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(errno)}")
