"""What a pipeline in the planner slot returns: a plan and search/replace edits (pydantic).

The plan follows the agent's shape (LoRA Training Strategy §6.9): a meta plan splits the task into
parts with dependency edges; each part is an ordered list of steps, each step naming the file it
changes and the symbols it targets. Edits are search/replace blocks applied to the task's worktree.
"""

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from engine.intake.manifest import RepoPath


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _identifier_path(value: str) -> str:
    parts = value.split(".")
    if not all(part.isidentifier() for part in parts):
        raise ValueError(f"{value!r} must be a dotted Python name such as Class.method")
    return value


SymbolName = Annotated[str, AfterValidator(_identifier_path)]


class PlanStep(_Model):
    """One implementation step: what to do, in which file, to which symbols."""

    description: str = Field(min_length=1)
    file: RepoPath
    symbols: list[SymbolName] = Field(default_factory=list)


class PlanPart(_Model):
    """An independent unit of the task; `depends_on` names parts that must come first."""

    id: str = Field(min_length=1, max_length=64)
    title: str = Field(min_length=1)
    depends_on: list[str] = Field(default_factory=list)
    steps: list[PlanStep] = Field(min_length=1)


class Plan(_Model):
    """Meta plan (a summary and its parts) with every part's steps."""

    summary: str = Field(min_length=1)
    parts: list[PlanPart] = Field(min_length=1)

    @model_validator(mode="after")
    def _edges_name_parts(self) -> "Plan":
        ids = [part.id for part in self.parts]
        if len(set(ids)) != len(ids):
            raise ValueError(f"part ids must be unique, got {ids}")
        for part in self.parts:
            unknown = sorted(set(part.depends_on) - set(ids))
            if unknown:
                raise ValueError(f"part {part.id!r} depends on unknown parts {unknown}")
            if part.id in part.depends_on:
                raise ValueError(f"part {part.id!r} depends on itself")
        self.ordered_steps()
        return self

    def ordered_steps(self) -> list[PlanStep]:
        """Every step in execution order: parts in dependency order (ties as listed)."""
        done: list[str] = []
        pending = list(self.parts)
        while pending:
            ready = [p for p in pending if set(p.depends_on) <= set(done)]
            if not ready:
                raise ValueError(f"parts {[p.id for p in pending]} depend on each other in a cycle")
            done.append(ready[0].id)
            pending.remove(ready[0])
        by_id = {part.id: part for part in self.parts}
        return [step for pid in done for step in by_id[pid].steps]


class Edit(_Model):
    """Replace the one occurrence of `search` in `path` with `replace`.

    An empty `search` creates `path` (which must not exist) holding `replace`; `delete` removes
    `path` (then `search` and `replace` must be empty).
    """

    path: RepoPath
    search: str = ""
    replace: str = ""
    delete: bool = False

    @model_validator(mode="after")
    def _delete_alone(self) -> "Edit":
        if self.delete and (self.search or self.replace):
            raise ValueError("an edit that deletes a file carries no search or replace text")
        return self


class PlannerOutput(_Model):
    """A pipeline's answer for one task: the plan and the edits that carry it out."""

    plan: Plan
    edits: list[Edit] = Field(min_length=1)
