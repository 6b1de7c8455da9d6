"""The planner slot's contract: the task a pipeline is given and what it hands back.

A pipeline (`gold`, `openai`, `command`) turns a `PlannerTask` into a `PipelineResult`. A
pipeline never raises for a bad answer: malformed output, a refused request or a time limit is a
result with `error` set and the raw response kept, so the attempt records it as a failure.
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.harness.plan import PlannerOutput

PipelineName = Literal["gold", "openai", "command"]
PIPELINES: tuple[PipelineName, ...] = ("gold", "openai", "command")


class PlannerTask(BaseModel):
    """One task as a planner sees it; sent as JSON on stdin to a command pipeline."""

    model_config = ConfigDict(frozen=True)

    task: str
    repo: str
    instruction: str
    parent: str
    worktree: str
    context: str
    context_tokens: int
    model: str
    temperature: float = Field(ge=0, le=2)
    seed: int


class PipelineResult(BaseModel):
    """A pipeline's answer: the parsed output, or the error, with the raw response kept.

    `malformed` says the planner answered but its answer is not a valid plan with edits (the
    planner's failure), as opposed to no answer at all (the endpoint or command failed).
    """

    model_config = ConfigDict(frozen=True)

    output: PlannerOutput | None
    raw: str
    error: str | None = None
    malformed: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
