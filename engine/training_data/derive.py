"""`cra data build`: the approved packages' usable tasks and done attempts into the database.

For every usable task not yet derived: the synthetic SFT examples of its commit (LoRA Training
Strategy §6.3, `derive_examples`) and its CodeFavor pairs (§6.7), then a `derivations` row with the
counts and the skipped stages, so a commit is derived once per repository (the manifest's name) and
sha, whichever package brought it first; a commit that yields nothing records why and is not retried
on every build. Then the items of the packages' plan artifacts (§6.8, plan_items.py) and the
harness pairs of every task with done attempts (§6.9), which are rebuilt each time and kept
once by the store's dedup. Adding twice adds nothing; of
two builds racing over one commit, the first one's `derivations` row stands.
"""

import json
import re
from collections.abc import Iterable

import sqlite_utils
from pydantic import BaseModel, Field

from engine.core.stages import Stage
from engine.core.timestamps import utc_now
from engine.core.workspace import Workspace
from engine.harness.attempts import commit_message
from engine.harness.package import CorpusPackage, find_package, load_package
from engine.harness.task_validation import find_commit
from engine.intake.approval import package_labels
from engine.training_data.codefavor import codefavor_pairs
from engine.training_data.harness_pairs import Lineage, Skip, harness_pairs, lineage_of
from engine.training_data.items import TrainingItem
from engine.training_data.plan_items import plan_artifact_items
from engine.training_data.store import add_items
from engine.training_data.synthetic import Example, SyntheticError, derive_examples


class PackageBuild(BaseModel):
    """What one build did for one package."""

    name: str
    digest: str
    label: str = Field(description="the package as the operator knows it: folder@digest")
    tasks_derived: int = Field(default=0, description="tasks derived now, yielding or not")
    tasks_already_derived: int = 0
    examples_added: int = 0
    pairs_added: dict[str, int] = Field(default_factory=dict, description="by stage")
    already_present: int = Field(default=0, description="items the database already held")
    skipped: dict[str, int] = Field(default_factory=dict, description="by `Skip.label`")

    def add(self, db: sqlite_utils.Database, items: list[TrainingItem]) -> None:
        """Store `items`, counting what was new by kind and stage."""
        groups: dict[tuple[str, str], list[TrainingItem]] = {}
        for item in items:
            groups.setdefault((item.kind, item.stage), []).append(item)
        for (kind, stage), group in groups.items():
            added = add_items(db, group)
            if kind == "sft":
                self.examples_added += added.added
            else:
                self.pairs_added[stage] = self.pairs_added.get(stage, 0) + added.added
            self.already_present += added.already

    def count(self, skips: Iterable[Skip]) -> None:
        for skip in skips:
            self.skipped[skip.label] = self.skipped.get(skip.label, 0) + 1


class BuildReport(BaseModel):
    """One build, package by package."""

    packages: list[PackageBuild]


def build_training_data(ws: Workspace, packages: list[str] | None = None) -> BuildReport:
    """Derive the usable tasks of `packages` (approved packages by name or digest prefix; all
    approved packages when None) and their harness pairs; see the module docstring."""
    chosen = _packages(ws, packages)
    labels = package_labels(ws)
    reports = {
        digest: PackageBuild(name=package.manifest.name, digest=digest, label=labels[digest])
        for digest, package in chosen.items()
    }
    for digest, sha in _usable_tasks(ws, chosen):
        package = chosen[digest]
        derived = ws.db.execute(
            "SELECT 1 FROM derivations WHERE repo = ? AND sha = ?", [package.manifest.name, sha]
        ).fetchone()
        if derived:
            reports[digest].tasks_already_derived += 1
        else:
            _derive_task(ws.db, package, sha, reports[digest])
    for digest, package in chosen.items():
        artifact_items, no_item = plan_artifact_items(package)
        reports[digest].add(ws.db, artifact_items)
        if no_item:
            reports[digest].skipped["plan artifact"] = len(no_item)
    items, skips = harness_pairs(ws, ws.config.training_data, set(chosen))
    for digest, report in reports.items():
        report.add(ws.db, [item for item in items if item.package_digest == digest])
        report.count(skip for skip in skips if skip.package_digest == digest)
    return BuildReport(packages=list(reports.values()))


def _usable_tasks(ws: Workspace, chosen: dict[str, CorpusPackage]) -> list[tuple[str, str]]:
    """The chosen packages' usable tasks as (digest, sha), those each package validated itself
    first: a commit in two packages is derived under the package whose sandbox run validated
    it, whatever order the packages' digests sort in."""
    rows = ws.db.execute(
        "SELECT package_digest, sha, validated_in, id FROM tasks WHERE status = 'usable' "
        f"AND package_digest IN ({', '.join('?' for _ in chosen)}) ORDER BY id",
        list(chosen),
    ).fetchall()
    order = {digest: index for index, digest in enumerate(chosen)}
    rows.sort(key=lambda row: (row[2] in chosen, order[row[0]], row[3]))
    return [(digest, sha) for digest, sha, _, _ in rows]


def _packages(ws: Workspace, names: list[str] | None) -> dict[str, CorpusPackage]:
    if names is None:
        digests = [
            row[0] for row in ws.db.execute("SELECT digest FROM packages ORDER BY name, digest")
        ]
        return {digest: load_package(ws, digest) for digest in digests}
    found: dict[str, CorpusPackage] = {}
    for name in names:
        package = find_package(ws, name)
        found[package.digest] = package
    return found


def _derive_task(
    db: sqlite_utils.Database, package: CorpusPackage, sha: str, report: PackageBuild
) -> None:
    commit = find_commit(package, sha)
    lineage = lineage_of(package, commit)
    message = commit_message(package, sha)
    tests = list(commit.test_files)
    try:
        derivation = derive_examples(package.repo, commit.parent, sha, message, tests)
    except SyntheticError as exc:
        skip = _skip(lineage, "commit", None, str(exc))
        _record(db, lineage, 0, 0, [skip])
        report.tasks_derived += 1
        report.count([skip])
        return
    examples = [_sft_item(example, lineage) for example in derivation.examples]
    pairs, codefavor_skips = codefavor_pairs(package.repo, commit.parent, message, tests, lineage)
    skips = [_skip(lineage, f"{s.stage} example", s.stage, s.reason) for s in derivation.skipped]
    skips += codefavor_skips
    report.add(db, [*examples, *pairs])
    _record(db, lineage, len(examples), len(pairs), skips)
    report.tasks_derived += 1
    report.count(skips)


def _sft_item(example: Example, lineage: Lineage) -> TrainingItem:
    *prompt, answer = example.messages
    return TrainingItem(
        **lineage.model_dump(),
        stage=example.stage,
        kind="sft",
        source="synthetic",
        origin="commit",
        prompt=prompt,
        chosen=[answer],
    )


def _skip(lineage: Lineage, what: str, stage: Stage | None, text: str) -> Skip:
    """A synthetic skip: its reason is `text` without the commit and with numbers masked, so
    equal causes group together; `text` itself is the detail."""
    general = re.sub(rf"^.*?commit {lineage.sha}: ", "", text)
    general = re.sub(r"(?<![\w-])\d+(?![\w-])", "N", general.replace(lineage.sha, "<sha>"))
    return Skip(
        package_digest=lineage.package_digest,
        sha=lineage.sha,
        what=what,
        stage=stage,
        reason=general,
        detail=text,
    )


def _record(
    db: sqlite_utils.Database, lineage: Lineage, examples: int, pairs: int, skips: list[Skip]
) -> None:
    skipped = [skip.model_dump(exclude={"package_digest", "sha"}) for skip in skips]
    with db.conn:
        db.table("derivations").insert(
            {
                "repo": lineage.repo,
                "sha": lineage.sha,
                "package_digest": lineage.package_digest,
                "derived_at": utc_now(),
                "examples": examples,
                "pairs": pairs,
                "skipped_json": json.dumps(skipped, ensure_ascii=False),
            },
            ignore=True,
        )
