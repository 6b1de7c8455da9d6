"""`cra data audit --json` on the demo's data, in CI: the demo package approved, its commits
validated for real (pytest in the sandbox), the data derived by `cra data build`, then the audit
run in a real `cra` process.

The demo's data changes as the derivation does, so the test holds the report to its shape and to
its own arithmetic (and to the database), not to today's numbers; its prompts must carry no
personal data.
"""

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from workspaces import HARNESS, approve_and_validate, open_workspace

from engine.core.stages import STAGES, TOKEN_BUDGET
from engine.core.workspace import Workspace
from engine.training_data.contracts import RULES

pytestmark = pytest.mark.slow  # the demo workspace built whole


CRA = str(Path(sys.executable).parent / "cra")
STAGE_KEYS = {
    "stage",
    "items",
    "by_source",
    "by_origin",
    "by_repo",
    "shapes",
    "degenerate",
    "degenerate_rate",
    "rules",
    "tokens",
    "duplicates",
    "personal_data",
}


def cra(root: Path, *args: str) -> str:
    done = subprocess.run(
        [CRA, "--workspace", str(root), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, copy_package: Callable[[Path], Path]) -> Path:
    """A workspace with the demo package approved, every commit validated and the data built."""
    base = tmp_path_factory.mktemp("audit-demo")
    package = copy_package(base)
    root = base / "ws"
    ws = open_workspace(root, HARNESS)
    approve_and_validate(ws, package)
    ws.db.conn.close()
    cra(root, "data", "build")
    return root


def test_the_demo_audit_is_whole_and_adds_up(demo: Path):
    """Every stage with items is reported with every field; each count agrees with the others
    and with the database; no prompt holds an e-mail address or a trailer line."""
    report = json.loads(cra(demo, "data", "audit", "--json"))
    ws = Workspace.open(demo, write=False)
    in_db = dict(ws.db.execute("SELECT stage, COUNT(*) FROM examples GROUP BY stage").fetchall())
    assert in_db, "the demo derived no examples"
    reported = [stage["stage"] for stage in report["stages"]]
    assert set(reported) >= set(in_db)
    assert reported == [name for name in STAGES if name in reported]
    for stage in report["stages"]:
        name = stage["stage"]
        assert set(stage) == STAGE_KEYS, name
        items = stage["items"]
        assert items == in_db.get(name, 0), name
        ids = {row[0] for row in ws.db.execute("SELECT id FROM examples WHERE stage = ?", [name])}
        for field in ("by_source", "by_origin", "by_repo"):
            assert sum(stage[field].values()) == items, (name, field)
        assert [t["rule"] for t in stage["rules"]] == [r.name for r in RULES if name in r.stages]
        for tally in stage["rules"]:
            assert 0 <= tally["items"] <= stage["degenerate"], (name, tally)
            assert tally["rate"] == pytest.approx(tally["items"] / items if items else 0.0)
            assert len(tally["examples"]) == min(5, tally["items"])
            assert set(tally["examples"]) <= ids
        assert stage["degenerate"] <= items
        assert stage["degenerate_rate"] == pytest.approx(
            stage["degenerate"] / items if items else 0.0
        )
        tokens = stage["tokens"]
        assert tokens["budget"] == TOKEN_BUDGET[name]
        if items:
            assert tokens["min"] <= tokens["median"] <= tokens["p95"] <= tokens["max"]
        over = next(t["items"] for t in stage["rules"] if t["rule"] == "over_budget")
        assert tokens["over_budget"] == over
        duplicates = stage["duplicates"]
        assert duplicates["within_package"] + duplicates["across_packages"] <= items
        assert stage["personal_data"] == {
            "items": 0,
            "with_email": [],
            "with_trailer": [],
            "trailer_keys": {},
        }, name
    first = report["stages"][0]
    alone = json.loads(cra(demo, "data", "audit", "--json", "--stage", first["stage"]))
    assert alone == {"stages": [first]}
