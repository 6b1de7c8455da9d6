"""Keep a process's niceness across the new sessions the engine starts.

Linux's autogroup (on in Debian's and Ubuntu's kernels) schedules each session as one group,
weighted by the group's own nice value, and a new session's group starts at 0. A process's own
niceness then counts only against the processes of its session: a job or a sandboxed test run,
each started with `setsid`, would compete with the console's session as an equal however nice
its processes are. So a new session's leader sets its group to the niceness it was meant to run at
before it execs the command (`/proc/self/autogroup`). Raising it needs no privilege, but without
CAP_SYS_ADMIN the kernel takes one such write per 100 ms system-wide and refuses the others
(EAGAIN), so the write is retried for up to two seconds: sandboxes start several at once. A
write still refused is said on the command's stderr (the job's log, the sandbox's stderr) and the
command runs anyway: a scheduling preference is not worth a failed test run. A kernel
without autogroup has no such file and schedules by each process's own niceness, inherited as
usual.
"""

import os

_SET_GROUP = (
    "if [ -e /proc/self/autogroup ]; then tries=0; "
    'until echo "$1" 2>/dev/null > /proc/self/autogroup; do tries=$((tries + 1)); '
    'if [ "$tries" -ge 40 ]; then echo "cra: cannot set this session\'s niceness to $1: it runs '
    'as an equal of the console\'s" >&2; break; fi; sleep 0.05; done; fi; shift; exec "$@"'
)


def niceness() -> int:
    """This process's niceness."""
    return os.getpriority(os.PRIO_PROCESS, 0)


def session_niceness_prefix(value: int) -> list[str]:
    """The argv prefix that sets the calling session's group to niceness `value` (0 to 19) and
    execs the rest of the argv in its place, so a recorded pid stays the command's."""
    if not 0 <= value <= 19:
        raise ValueError(f"a session's niceness is 0 to 19, not {value}")
    return ["/bin/sh", "-c", _SET_GROUP, "cra-nice", str(value)]
