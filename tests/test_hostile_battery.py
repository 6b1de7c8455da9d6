"""Every hostile case is caught by the right check (or flagged), and never reaches the corpus."""

import dataclasses
import hashlib
from pathlib import Path

import pytest

from engine.core.errors import IngestError
from engine.core.workspace import Workspace
from engine.demo.hostile import HostileCase
from engine.demo.hostile.catalog import ALL_CASES
from engine.intake.approval import approve_package, list_corpus
from engine.intake.validate import validate_package


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode("utf-8", "surrogateescape"))
        if path.is_symlink():
            digest.update(str(path.readlink()).encode())
        elif path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_case_names_are_unique():
    names = [case.name for case in ALL_CASES]
    assert len(names) == len(set(names))


SLOW_CASES = {
    "collection-hangs",
    "collection-uses-network",
    "collection-exhausts-memory",
    "tests-fail-to-collect",
}
"""Cases that wait out a time limit or a sandbox's refusal: seconds each."""


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(case, marks=pytest.mark.slow) if case.name in SLOW_CASES else case
        for case in ALL_CASES
    ],
    ids=lambda c: c.name,
)
def test_hostile_case(case: HostileCase, valid_package: Path, workspace: Workspace):
    limits = workspace.config.validation.model_copy(update=case.config)
    config = workspace.config.model_copy(update={"validation": limits})
    workspace = dataclasses.replace(workspace, config=config)
    case.mutate(valid_package)
    before = _tree_digest(valid_package)
    report = validate_package(valid_package, workspace.config.validation)
    if case.flag:
        assert report.ok, [c for c in report.checks if not c.ok]
        kinds = {(f.kind, f.path) for f in report.flags}
        assert (case.flag, case.path) in kinds, report.flags
        return
    assert not report.ok
    failing = report.failures()
    assert failing, report.checks
    assert {c.name for c in failing} == {case.check}, failing
    assert any(case.expect in c.detail and c.path == case.path for c in failing), failing
    with pytest.raises(IngestError):
        approve_package(workspace, valid_package)
    assert list_corpus(workspace) == []
    assert [p.name for p in workspace.corpus_dir.iterdir() if not p.name.startswith(".")] == []
    assert _tree_digest(valid_package) == before
