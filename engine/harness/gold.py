"""The gold pipeline: a commit's own change, given as a pipeline's answer.

It checks the harness end to end (applying its edits to the parent must pass the task's tests)
and yields a synthetic plan with a known structure: one part per changed file outside the tests,
in import order, each part depending on the parts of the files it imports, with one step naming
the file and the symbols it adds or changes. The test files are left out: the harness overlays
them itself.
"""

from pathlib import Path

from engine.harness.ast_diff import FileChange, commit_changes, dependency_order, import_graph
from engine.harness.edits import edits_from_change
from engine.harness.pipeline import PipelineResult
from engine.harness.plan import Plan, PlannerOutput, PlanPart, PlanStep

_VERBS = {"added": "Add", "modified": "Change", "deleted": "Delete"}


def gold_output(
    repo: Path, parent: str, sha: str, test_files: list[str], subject: str
) -> PipelineResult:
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
    order = dependency_order(changes)
    by_path = {change.path: change for change in changes}
    edits = [
        edit
        for path in order
        for edit in edits_from_change(path, by_path[path].old, by_path[path].new)
    ]
    if not edits:
        return PipelineResult(
            output=None, raw="", error="the commit changes only file modes outside its tests"
        )
    output = PlannerOutput(plan=_plan(subject, order, by_path, import_graph(changes)), edits=edits)
    return PipelineResult(output=output, raw=output.model_dump_json())


def _plan(
    subject: str, order: list[str], by_path: dict[str, FileChange], graph: dict[str, set[str]]
) -> Plan:
    part_ids = {path: f"part-{n}" for n, path in enumerate(order, start=1)}
    parts = []
    for n, path in enumerate(order):
        earlier = [dep for dep in order[:n] if dep in graph[path]]
        change = by_path[path]
        symbols = change.symbols.touched if change.symbols is not None else []
        description = f"{_VERBS[change.status]} {path}"
        if symbols:
            description += f": {', '.join(symbols)}"
        parts.append(
            PlanPart(
                id=part_ids[path],
                title=description,
                depends_on=[part_ids[dep] for dep in earlier],
                steps=[PlanStep(description=description, file=path, symbols=symbols)],
            )
        )
    return Plan(summary=subject, parts=parts)
