"""`cra autopilot`: the unattended night (LoRA Training Strategy §12.5).

It follows the continuous-learning design the strategy borrows from: a threshold trigger, a
training window, one request at a time, the inference servers stopped while training and started
again after, the result picked up on restart, deployment only through the quality gate. A
foreground process (under systemd or tmux) looks every `[autopilot] poll_s`:

- With no request pending, inside the window, the first stage of the policy that is ready
  becomes the night's one request. Ready means its spot-check gate passes, it has at least the
  policy's minimum of new reviewed items, and the autopilot has not trained it within the
  cooldown. The request is written to `autopilot.pending` before anything is done, so a
  restarted autopilot picks it up at the step it had reached.
- A request moves through its steps, each recorded as a night event (`engine.core.night_events`):
  curate the stage; free the GPU (hold serving, `engine.serving.hold`, and wait until no server
  answers); train; lift the hold once the run is done (the supervisor starts the servers again
  with the active versions); evaluate and gate the candidate; promote it on a gate pass when the
  policy allows, else leave it for the morning.
- A run still going `stop_margin_minutes` before the window closes is stopped at a checkpoint and
  the hold lifted; the next night the GPU is freed again and the run resumes from there.
- A step that fails ends the request, says why, and lifts the hold. The stage then waits out its
  cooldown, so a failing stage cannot take every night.

The clock is a parameter (local time), so a night can be driven in a test.
"""

import os
from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from engine.adapters.activation import version_row
from engine.core.config import AutopilotConfig
from engine.core.durable import fsync_dir, write_durably
from engine.core.errors import CraError
from engine.core.locks import lock_held, try_lock
from engine.core.night_events import NightEvent, night_events, record_event
from engine.core.stages import LoraStage
from engine.core.workspace import LOCKS_DIR, Workspace
from engine.evaluation.gate import latest_decision
from engine.evaluation.runs import eval_jobs, eval_row, reconcile_evals, start_eval
from engine.promotion.switch import promote_version
from engine.serving.hold import current_hold, hold_serving, release_serving
from engine.training.guardrails import accepts_connections, in_window, serving_urls
from engine.training.runs import reconcile_runs, resume_run, run_row, start_run, stop_run
from engine.training_data.curate import curate
from engine.training_data.curate_outlook import curation_outlook

PENDING_FILE = "autopilot.pending"
LOCK_FILE = "autopilot.lock"
HOLDER = "autopilot"
OPERATOR = "autopilot"

Step = Literal["curate", "free_gpu", "train", "evaluate"]
Clock = Callable[[], datetime]
Say = Callable[[str], None]


class AutopilotError(CraError):
    """The autopilot cannot run as configured, or its pending request is unreadable."""


class Request(BaseModel):
    """The night's one request, as far as it has got (`autopilot.pending`)."""

    model_config = ConfigDict(extra="forbid")

    stage: LoraStage
    requested_at: str
    step: Step
    dataset_id: str | None = None
    run_id: int | None = None
    freeing_since: str | None = None
    candidate: str | None = None
    eval_ids: list[int] = []


def local_now() -> datetime:
    return datetime.now().astimezone()


def window_bounds(window: str, now: datetime) -> tuple[datetime, datetime] | None:
    """When the window around `now` opened and when it closes; None when `now` is outside it."""
    try:
        start, end = (time.fromisoformat(part) for part in window.split("-"))
    except ValueError as exc:
        raise AutopilotError(f"[autopilot] window {window!r}: not HH:MM-HH:MM: {exc}") from exc
    if start == end:
        raise AutopilotError(f"[autopilot] window {window!r}: start equals end")
    if not in_window(start, end, now.time()):
        return None
    opens = now.replace(hour=start.hour, minute=start.minute, second=0, microsecond=0)
    if opens > now:
        opens -= timedelta(days=1)
    closes = opens.replace(hour=end.hour, minute=end.minute)
    if closes <= opens:
        closes += timedelta(days=1)
    return opens, closes


class Autopilot:
    """One autopilot over a workspace; `tick` is one look, `run` looks until stopped."""

    def __init__(self, ws: Workspace, clock: Clock = local_now, say: Say = print) -> None:
        self.ws = ws
        self.clock = clock
        self.say = say
        self._stopping = False

    @property
    def policy(self) -> AutopilotConfig:
        return self.ws.config.autopilot

    def run(self, sleep: Callable[[float], None]) -> None:
        """Look every `poll_s` until `stop()`."""
        if not self.policy.enabled:
            raise AutopilotError(
                f"[autopilot] enabled is false in {self.ws.config_path}: the autopilot does "
                "nothing until the policy enables it"
            )
        if not self.policy.stages:
            raise AutopilotError(
                f"[autopilot] stages is empty in {self.ws.config_path}: name the stages it "
                "may train"
            )
        lock_path = self.ws.root / LOCKS_DIR / LOCK_FILE
        fd = try_lock(lock_path)
        if fd is None:
            raise AutopilotError(
                f"another autopilot runs on {self.ws.root} (it holds {lock_path}); one at a time"
            )
        try:
            self._event(
                "started", f"watching {', '.join(self.policy.stages)}; {self._policy_line()}"
            )
            while not self._stopping:
                self.tick()
                sleep(self.policy.poll_s)
        finally:
            os.close(fd)

    def stop(self) -> None:
        self._stopping = True

    def tick(self) -> None:
        """One look: advance the pending request, else start one if a stage is ready."""
        now = self.clock()
        request = self.pending()
        if request is not None:
            self._advance(request, now)
            return
        if not self.policy.enabled or not self._may_start(now):
            return
        for stage in self.policy.stages:
            if self._cooling(stage, now):
                continue
            ready = self._ready(stage)
            if ready is None:
                continue
            request = Request(stage=stage, requested_at=now.isoformat(), step="curate")
            self._save(request)
            self._event("requested", f"{stage}: {ready}", request)
            self._advance(request, now)
            return

    # -- the pending request -------------------------------------------------------------------

    def pending(self) -> Request | None:
        path = self.ws.root / PENDING_FILE
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return Request.model_validate_json(data)
        except ValidationError as exc:
            raise AutopilotError(
                f"{path} is not an autopilot request ({exc.error_count()} problems): move it "
                "aside to start afresh"
            ) from exc

    def _save(self, request: Request) -> None:
        write_durably(self.ws.root / PENDING_FILE, request.model_dump_json(indent=2).encode())

    def _clear(self) -> None:
        (self.ws.root / PENDING_FILE).unlink(missing_ok=True)
        fsync_dir(self.ws.root)

    # -- deciding ---------------------------------------------------------------------------------

    def _may_start(self, now: datetime) -> bool:
        """Inside the window, with more than the stop margin left before it closes."""
        bounds = window_bounds(self.policy.window, now)
        if bounds is None:
            return False
        return now < bounds[1] - timedelta(minutes=self.policy.stop_margin_minutes)

    def _cooling(self, stage: str, now: datetime) -> bool:
        """Whether the autopilot requested `stage` within the cooldown (by its own clock)."""
        for event in reversed(self._events()):
            if event.kind == "requested" and event.data.get("stage") == stage:
                then = datetime.fromisoformat(event.data["requested_at"])
                return now - then < timedelta(hours=self.policy.cooldown_hours)
        return False

    def _ready(self, stage: str) -> str | None:
        """Why `stage` is ready to train (its new reviewed items), None when it is not."""
        outlook = next(o for o in curation_outlook(self.ws) if o.stage == stage)
        minimum = self.policy.min_new_by_stage.get(outlook.stage, self.policy.min_new_examples)
        if not outlook.ready or outlook.new < minimum:
            return None
        items = f"{outlook.new} new reviewed {outlook.format} items (at least {minimum})"
        return f"{items}; {outlook.reason}"

    # -- the steps --------------------------------------------------------------------------------

    def _advance(self, request: Request, now: datetime) -> None:
        try:
            if request.step == "curate":
                self._curate(request, now)
            if request.step == "free_gpu":
                self._free_gpu(request, now)
            elif request.step == "train":
                self._train(request, now)
            elif request.step == "evaluate":
                self._evaluate(request)
        except CraError as exc:
            self._fail(request, str(exc))

    def _curate(self, request: Request, now: datetime) -> None:
        report = curate(self.ws, stage=request.stage, operator=OPERATOR)
        if not report.curated:
            reasons = "; ".join(blocked.reason for blocked in report.blocked) or "nothing curated"
            raise AutopilotError(f"curation of {request.stage} was refused: {reasons}")
        dataset = report.curated[0]
        request.dataset_id = dataset.id
        request.step = "free_gpu"
        self._save(request)
        self._event("curated", f"{request.stage}: dataset {dataset.id}", request)

    def _free_gpu(self, request: Request, now: datetime) -> None:
        """Hold serving and wait until nothing answers on the servers' ports; then train (or
        resume the run a closing window stopped)."""
        if not self._may_start(now):
            self._lift_hold(request, "the window is closed; it resumes when the window opens")
            return
        if current_hold(self.ws) is None:
            hold_serving(self.ws, HOLDER, f"training {request.stage}")
            request.freeing_since = now.isoformat()
            self._save(request)
            self._event("holding serving", "stopping the servers to free the GPU", request)
        answering = self._answering()
        if answering:
            since = datetime.fromisoformat(request.freeing_since or now.isoformat())
            if now - since > timedelta(seconds=self.policy.server_stop_timeout_s):
                raise AutopilotError(
                    f"the server at {answering[0]} still answers "
                    f"{self.policy.server_stop_timeout_s:g}s after serving was held: it is not "
                    "one `cra serve --launch` supervises, so stop it by hand"
                )
            return
        if request.run_id is None:
            assert request.dataset_id is not None
            request.run_id = start_run(
                self.ws, request.dataset_id, request.stage, operator=OPERATOR
            )
            self._event(
                "training",
                f"{request.stage}: run {request.run_id} on {request.dataset_id}",
                request,
            )
        else:
            resume_run(self.ws, request.run_id)
            self._event(
                "training",
                f"{request.stage}: run {request.run_id} resumed from its checkpoint",
                request,
            )
        request.step = "train"
        self._save(request)

    def _train(self, request: Request, now: datetime) -> None:
        assert request.run_id is not None
        reconcile_runs(self.ws)
        run = run_row(self.ws, request.run_id)
        if run.status in ("pending", "running", "stopping"):
            closing = not self._may_start(now)
            if closing and run.status == "running":
                stop_run(self.ws, request.run_id)
                self._event(
                    "stopping",
                    f"run {run.id} at step {run.step}: the window closes at "
                    f"{self.policy.window.split('-')[1]}; it resumes next night",
                    request,
                )
            return
        if run.status == "stopped":
            request.step = "free_gpu"
            request.freeing_since = None
            self._save(request)
            self._lift_hold(request, f"run {run.id} stopped at step {run.step} for the night")
            return
        if run.status != "done" or run.adapter_name is None:
            raise AutopilotError(f"run {run.id} ended {run.status}: {run.reason}")
        request.candidate = run.adapter_name
        self._lift_hold(
            request, f"run {run.id} done at step {run.step}: candidate {run.adapter_name}"
        )
        request.eval_ids = start_eval(self.ws, adapter=run.adapter_name, operator=OPERATOR)
        request.step = "evaluate"
        self._save(request)
        self._event(
            "evaluating",
            f"{run.adapter_name}: eval runs {', '.join(map(str, request.eval_ids))}",
            request,
        )

    def _evaluate(self, request: Request) -> None:
        assert request.candidate is not None
        reconcile_evals(self.ws)
        last = request.eval_ids[-1]
        if any(job.live for job in eval_jobs(self.ws, [last]) if job.key == last):
            return
        for eval_id in request.eval_ids:
            row = eval_row(self.ws, eval_id)
            if row.status != "done":
                raise AutopilotError(f"eval run {eval_id} ended {row.status}: {row.reason}")
        name = request.candidate
        decision = latest_decision(self.ws, version_row(self.ws, name).id)
        if decision is None:
            raise AutopilotError(f"the gate did not decide on {name}")
        verdict = f"{decision['decision']} against {decision['baseline']}"
        if decision["decision"] == "pass" and self.policy.may_promote:
            result = promote_version(
                self.ws, name, operator=OPERATOR, reason=f"autopilot: the gate's {verdict}"
            )
            self._event("promoted", f"{name} ({verdict}): {result.server}", request)
        elif decision["decision"] == "pass":
            self._event(
                "left for the morning",
                f"{name}: gate {verdict}; [autopilot] may_promote is false, so it waits for "
                f"`cra adapters promote {name}`",
                request,
            )
        else:
            self._event("left for the morning", f"{name}: gate {verdict}; not promoted", request)
        self._clear()

    # -- helpers ----------------------------------------------------------------------------------

    def _fail(self, request: Request, reason: str) -> None:
        self._clear()
        hold = current_hold(self.ws)
        if hold is not None and hold.holder == HOLDER:
            release_serving(self.ws)
        self._event("failed", f"{request.stage} at {request.step}: {reason}", request)

    def _lift_hold(self, request: Request, why: str) -> None:
        hold = current_hold(self.ws)
        if hold is not None and hold.holder == HOLDER:
            release_serving(self.ws)
            self._event(
                "serving resumes", f"{why}; the servers start with the active versions", request
            )

    def _answering(self) -> list[str]:
        """The served bases' URLs where something still accepts connections."""
        urls = list(serving_urls(self.ws).values())
        if self.ws.config.training.inference_url is not None:
            urls.append(self.ws.config.training.inference_url)
        return [url for url in urls if accepts_connections(url)]

    def _events(self) -> list[NightEvent]:
        return night_events(self.ws, "autopilot")

    def _event(self, kind: str, detail: str, request: Request | None = None) -> None:
        data: dict[str, Any] | None = None if request is None else request.model_dump()
        self.say(f"{self.clock():%Y-%m-%d %H:%M} {kind}: {detail}")
        record_event(self.ws, "autopilot", kind, detail, data)

    def _policy_line(self) -> str:
        policy = self.policy
        promote = "promotes a gate pass" if policy.may_promote else "never promotes"
        return (
            f"window {policy.window}, at least {policy.min_new_examples} new reviewed items, "
            f"cooldown {policy.cooldown_hours:g} h, {promote}"
        )


def autopilot_running(ws: Workspace) -> bool:
    """Whether an autopilot holds this workspace's autopilot lock now."""
    return lock_held(ws.root / LOCKS_DIR / LOCK_FILE)


def autopilot_status(ws: Workspace) -> str:
    """One line for the console: whether the autopilot runs, and what its request is doing."""
    policy = ws.config.autopilot
    if not policy.enabled:
        return "autopilot: off ([autopilot] enabled = false)"
    running = autopilot_running(ws)
    try:
        request = Autopilot(ws).pending()
    except AutopilotError as exc:
        return f"autopilot: {exc}"
    state = "running" if running else "not running (start `cra autopilot`)"
    if request is None:
        stages = ", ".join(policy.stages) or "no stage"
        return f"autopilot: {state}; nothing pending; window {policy.window}, {stages}"
    doing = {
        "curate": f"curating {request.stage}",
        "free_gpu": f"freeing the GPU for {request.stage}",
        "train": f"training {request.stage}",
        "evaluate": f"evaluating {request.candidate}",
    }[request.step]
    if request.step == "train" and request.run_id is not None:
        run = run_row(ws, request.run_id)
        doing += f" (run {run.id}, {run.status}, step {run.step or 0} of {run.max_steps or '?'})"
    elif request.step == "free_gpu" and request.run_id is not None:
        doing += f" (run {request.run_id} resumes in the window {policy.window})"
    return f"autopilot: {state}; {doing}"
