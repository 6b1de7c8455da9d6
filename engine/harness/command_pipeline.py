"""The `command` pipeline: the operator's own planner (the agent), run as an external command.

`harness.command.argv` runs in the task's worktree with the task as JSON on stdin
(`PlannerTask.model_dump_json()`); it answers on stdout in one of the shapes `parse_output`
accepts. Its environment holds only PATH, HOME and LANG from the console's, plus `CRA_TASK`, the
task id. The command is trusted (it is the operator's), so it is not sandboxed, but it must not
hang the harness: it runs in its own session, and past `harness.command.timeout_s`, or once it
has answered, its whole process group is killed; it is also killed when the worker process that
started it dies (PR_SET_PDEATHSIG, set between fork and exec: harness workers are
single-threaded processes, where `preexec_fn` is safe). A failed start, a nonzero exit, a time limit
or a malformed answer is a `PipelineResult` with the error (and the tail of stderr) and stdout
kept as the raw answer.
"""

import os
import subprocess

from engine.core.config import CommandPipelineConfig
from engine.core.processes import die_with_parent, kill_group
from engine.harness.package import HarnessError
from engine.harness.pipeline import PipelineResult, PlannerTask
from engine.harness.prompt import MalformedOutput, parse_output

INHERITED_ENV = ("PATH", "HOME", "LANG")
STDERR_TAIL_CHARS = 2000
DRAIN_TIMEOUT_S = 5.0


def propose_command(config: CommandPipelineConfig, task: PlannerTask) -> PipelineResult:
    """Run the configured command for `task` and read its plan and edits from stdout."""
    if not config.argv:
        raise HarnessError(
            "harness.command.argv in cra.toml is empty: set it to the planner command, which "
            "reads the task as JSON on stdin and writes its answer on stdout"
        )
    env = {key: os.environ[key] for key in INHERITED_ENV if key in os.environ}
    env["CRA_TASK"] = task.task
    try:
        proc = subprocess.Popen(
            config.argv,
            cwd=task.worktree,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    except OSError as exc:
        return PipelineResult(
            output=None, raw="", error=f"cannot start {config.argv[0]!r}: {exc.strerror}"
        )
    try:
        stdout, stderr = proc.communicate(task.model_dump_json().encode("utf-8"), config.timeout_s)
        timed_out = False
    except subprocess.TimeoutExpired:
        kill_group(proc.pid)
        stdout, stderr = _drain(proc)
        timed_out = True
    finally:
        kill_group(proc.pid)
    return _result(proc.returncode, timed_out, config.timeout_s, stdout, stderr)


def _drain(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """What the killed command wrote; a process outside its group that still holds the pipes
    open gets `DRAIN_TIMEOUT_S`, then the pipes are closed with what was read so far."""
    try:
        return proc.communicate(timeout=DRAIN_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()
        return exc.output or b"", exc.stderr or b""


def _result(
    returncode: int, timed_out: bool, timeout_s: float, stdout: bytes, stderr: bytes
) -> PipelineResult:
    raw = stdout.decode("utf-8", "replace")
    tail = _stderr_tail(stderr.decode("utf-8", "replace"))
    if timed_out:
        error = f"the command ran past the time limit of {timeout_s:g}s and was killed; {tail}"
        return PipelineResult(output=None, raw=raw, error=error)
    if returncode < 0:
        error = f"the command was killed by signal {-returncode}; {tail}"
        return PipelineResult(output=None, raw=raw, error=error)
    if returncode != 0:
        return PipelineResult(
            output=None, raw=raw, error=f"the command exited with status {returncode}; {tail}"
        )
    try:
        output = parse_output(raw)
    except MalformedOutput as exc:
        return PipelineResult(output=None, raw=raw, error=f"{exc}; {tail}", malformed=True)
    return PipelineResult(output=output, raw=raw)


def _stderr_tail(stderr: str) -> str:
    text = stderr.strip()
    if not text:
        return "its stderr is empty"
    shown = text[-STDERR_TAIL_CHARS:]
    cut = "the end of " if len(text) > STDERR_TAIL_CHARS else ""
    return f"{cut}its stderr:\n{shown}"
