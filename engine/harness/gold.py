"""The gold pipeline: a commit's own change, given as a pipeline's answer.

It checks the harness end to end (applying its edits to the parent must pass the task's tests)
and yields the plan `engine.harness.change_plan` derives from the change: code parts in import
order, one step per symbol added, changed or removed, the documentation and changelog last. The
test files are left out: the harness overlays them itself.
"""

from pathlib import Path

from engine.harness.ast_diff import commit_changes, dependency_order
from engine.harness.change_plan import plan_from_changes
from engine.harness.edits import edits_from_change
from engine.harness.pipeline import PipelineResult
from engine.harness.plan import PlannerOutput


def gold_output(repo: Path, parent: str, sha: str, test_files: list[str]) -> PipelineResult:
    """The change `sha` makes to `parent` outside `test_files`, as plan and edits."""
    changes = commit_changes(repo, parent, sha, exclude=set(test_files))
    if not changes:
        return PipelineResult(
            output=None, raw="", error="the commit changes no files outside its tests"
        )
    opaque = [change.path for change in changes if not change.text]
    if opaque:
        return PipelineResult(
            output=None,
            raw="",
            error=f"search/replace edits cannot express changes to {', '.join(opaque)} "
            "(a link, a submodule or not UTF-8 text)",
        )
    by_path = {change.path: change for change in changes}
    edits = [
        edit
        for path in dependency_order(changes)
        for edit in edits_from_change(path, by_path[path].old, by_path[path].new)
    ]
    if not edits:
        return PipelineResult(
            output=None, raw="", error="the commit changes only file modes outside its tests"
        )
    output = PlannerOutput(plan=plan_from_changes(changes), edits=edits)
    return PipelineResult(output=output, raw=output.model_dump_json())
