"""The Harness pane's read-only queries, with known answers on a real SQLite workspace.

Rows are inserted directly (no campaign is run), so every figure below is worked out by hand:
two packages, attempts in every state and outcome, a job whose window of finished attempts is
known, and a second campaign that must never leak into the first's figures.
"""

import hashlib
import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from workspaces import HARNESS, open_workspace

from app.cli import cli
from engine.core.jobs import process_start_time
from engine.core.workspace import Workspace
from engine.harness.attempts import run_attempt
from engine.harness.campaigns import CampaignSpec, create_campaign
from engine.harness.package import HarnessError
from engine.harness.progress import (
    ARTIFACT_CAP_BYTES,
    TEST_OUTPUT,
    attempt_count,
    attempt_detail,
    attempt_page,
    campaign_summaries,
    format_time,
    package_progress,
    worker_lines,
)
from engine.intake.approval import approve_package

NOW = datetime(2025, 6, 1, 12, 30, tzinfo=UTC)
DIGEST_A = "a" * 64
DIGEST_B = "b" * 64
PLAN = {
    "summary": "Teach slugify to keep unicode letters",
    "parts": [
        {
            "id": "core",
            "title": "Normalise text",
            "steps": [
                {
                    "description": "Normalise to NFKC before filtering",
                    "file": "src/textkit/slug.py",
                    "symbols": ["slugify", "Normaliser.apply"],
                }
            ],
        },
        {
            "id": "docs",
            "title": "Document it",
            "depends_on": ["core"],
            "steps": [{"description": "Mention unicode in the docstring", "file": "README.md"}],
        },
    ],
}
DIFF = """\
diff --git a/src/textkit/slug.py b/src/textkit/slug.py
--- a/src/textkit/slug.py
+++ b/src/textkit/slug.py
@@ -1,3 +1,4 @@
+import unicodedata
 def slugify(text):
-    return text.lower()
+    return unicodedata.normalize("NFKC", text).lower()
"""


def spec(**changes: Any) -> str:
    data = {
        "packages": [DIGEST_A, DIGEST_B],
        "pipeline": "gold",
        "model": "gold",
        "temperatures": [0.3, 0.6],
        "seeds": [1],
        "workers": 2,
    }
    return json.dumps({**data, **changes})


def add_campaign(
    ws: Workspace,
    status: str = "running",
    reason: str = "",
    created_at: str = "2025-06-01T12:00:00Z",
) -> int:
    with ws.db.conn:
        return (
            ws.db["campaigns"]
            .insert(
                {
                    "created_at": created_at,
                    "created_by": "night-operator",
                    "spec_json": spec(),
                    "status": status,
                    "reason": reason,
                    "updated_at": created_at,
                }
            )
            .last_pk
        )


def sha_of(n: int) -> str:
    """A commit sha that differs from the others in its first 12 digits, as real ones do."""
    return hashlib.sha1(str(n).encode()).hexdigest()


def attempt(
    campaign_id: int,
    n: int,
    digest: str = DIGEST_A,
    state: str = "pending",
    outcome: str | None = None,
    finished_at: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One attempt row; `n` makes its sha (and so its key in the campaign) unique."""
    name = "alpha" if digest == DIGEST_A else "beta"
    done = state == "done"
    return {
        "campaign_id": campaign_id,
        "package_digest": digest,
        "package_name": name,
        "sha": sha_of(n),
        "task": f"{digest[:12]}-{sha_of(n)[:12]}",
        "pipeline": "gold",
        "model": "gold",
        "temperature": 0.3 if n % 2 else 0.6,
        "seed": 1,
        "state": state,
        "outcome": outcome,
        "reason": f"{outcome} on purpose" if outcome else None,
        "finished_at": finished_at,
        "duration_s": 61.5 if done else None,
        "f2p_passed": 1 if outcome == "resolved" else 0 if done else None,
        "f2p_total": 1 if done else None,
        "file_recall": 0.5 if done else None,
        **extra,
    }


def add_attempts(ws: Workspace, rows: list[dict[str, Any]]) -> list[int]:
    with ws.db.conn:
        first = ws.db.execute("SELECT COALESCE(MAX(id), 0) FROM attempts").fetchone()[0] + 1
        ws.db["attempts"].insert_all(rows)
    return list(range(first, first + len(rows)))


def add_job(
    ws: Workspace,
    campaign_id: int,
    started_at: str,
    ended_at: str | None = None,
    pid: int | None = None,
) -> int:
    """A job row for the campaign; `pid` (a live process) makes it count as running."""
    with ws.db.conn:
        return (
            ws.db["jobs"]
            .insert(
                {
                    "kind": "campaign",
                    "ref_id": campaign_id,
                    "status": "running" if ended_at is None else "exited",
                    "started_at": started_at,
                    "ended_at": ended_at,
                    "pid": pid,
                    "pid_start": process_start_time(pid) if pid else None,
                }
            )
            .last_pk
        )


def add_worker(
    ws: Workspace,
    campaign_id: int,
    slot: int,
    stage: str,
    attempt_id: int | None,
    detail: str,
    updated_at: str,
) -> None:
    with ws.db.conn:
        ws.db["harness_workers"].insert(
            {
                "campaign_id": campaign_id,
                "slot": slot,
                "pid": 4000 + slot,
                "stage": stage,
                "attempt_id": attempt_id,
                "detail": detail,
                "updated_at": updated_at,
            }
        )


def fill_known_campaign(ws: Workspace) -> tuple[int, list[int]]:
    """Campaign 1: alpha 10 attempts (3 resolved, 1 partial, 1 failed, 1 unusable, 1 running,
    3 pending), beta 4 (1 error, 1 resolved, 2 pending). Its job started at 12:10 and runs, so
    at NOW (12:30) the window is 12:20–12:30: alpha finished 4 in it, beta 1.
    Campaign 2 holds 3 resolved attempts finished in the same window, none of them campaign 1's.
    """
    first = add_campaign(ws)
    rows = [
        attempt(first, 1, state="done", outcome="resolved", finished_at="2025-06-01T12:05:00Z"),
        attempt(first, 2, state="done", outcome="resolved", finished_at="2025-06-01T12:21:00Z"),
        attempt(first, 3, state="done", outcome="resolved", finished_at="2025-06-01T12:22:00Z"),
        attempt(first, 4, state="done", outcome="partial", finished_at="2025-06-01T12:25:00Z"),
        attempt(first, 5, state="done", outcome="failed", finished_at="2025-06-01T12:29:00Z"),
        attempt(first, 6, state="done", outcome="unusable", finished_at="2025-06-01T12:19:59Z"),
        attempt(first, 7, state="running", started_at="2025-06-01T12:28:30Z", worker=1),
        attempt(first, 8),
        attempt(first, 9),
        attempt(first, 10),
        attempt(first, 11, DIGEST_B, "done", "error", finished_at="2025-06-01T12:15:00Z"),
        attempt(first, 12, DIGEST_B, "done", "resolved", finished_at="2025-06-01T12:30:00Z"),
        attempt(first, 13, DIGEST_B),
        attempt(first, 14, DIGEST_B),
    ]
    ids = add_attempts(ws, rows)
    add_job(ws, first, "2025-06-01T12:10:00Z")
    second = add_campaign(ws, status="done", created_at="2025-06-01T12:01:00Z")
    add_attempts(
        ws,
        [
            attempt(second, n, state="done", outcome="resolved", finished_at="2025-06-01T12:25:00Z")
            for n in range(3)
        ],
    )
    add_job(ws, second, "2025-06-01T12:20:00Z", ended_at="2025-06-01T12:26:00Z")
    return first, ids


@pytest.fixture
def known(workspace: Workspace) -> tuple[Workspace, int, list[int]]:
    campaign_id, ids = fill_known_campaign(workspace)
    return workspace, campaign_id, ids


@pytest.fixture
def live_pid() -> Iterator[int]:
    """A real process for a job row to point at, so reconciling leaves its campaign running."""
    proc = subprocess.Popen(["sleep", "300"])
    yield proc.pid
    proc.kill()
    proc.wait()


def test_campaign_summaries_newest_first_with_state_totals(known):
    ws, first, _ = known
    newest, oldest = campaign_summaries(ws)
    assert (newest.id, oldest.id) == (first + 1, first)
    assert oldest.status == "running"
    assert (oldest.pipeline, oldest.model, oldest.workers) == ("gold", "gold", 2)
    assert oldest.temperatures == [0.3, 0.6] and oldest.seeds == [1]
    assert oldest.created_by == "night-operator"
    totals = oldest.totals
    assert (totals.total, totals.pending, totals.running, totals.done) == (14, 5, 1, 8)
    assert (newest.totals.total, newest.totals.done) == (3, 3)


def test_campaign_with_a_bad_spec_is_a_harness_error(workspace):
    campaign_id = add_campaign(workspace)
    with workspace.db.conn:
        workspace.db["campaigns"].update(campaign_id, {"spec_json": spec(workers=0)})
    with pytest.raises(HarnessError, match="workers"):
        campaign_summaries(workspace)


def test_package_progress_per_package_and_overall(known):
    ws, first, _ = known
    progress = package_progress(ws, first, NOW)
    assert (progress.window_start, progress.window_end) == (
        "2025-06-01T12:20:00Z",
        "2025-06-01T12:30:00Z",
    )
    alpha, beta = progress.packages
    # Attempts of a package no longer in the corpus are named by their recorded name.
    assert (alpha.label, alpha.digest) == (f"alpha@{DIGEST_A[:7]}", DIGEST_A)
    assert beta.label.startswith("beta@")

    a = alpha.progress
    assert (a.total, a.done, a.running, a.remaining) == (10, 6, 1, 4)
    assert a.outcomes == {"resolved": 3, "partial": 1, "failed": 1, "error": 0, "unusable": 1}
    assert a.resolved_rate == pytest.approx(3 / 5)  # the unusable attempt is left out
    assert a.finished_in_window == 4
    assert a.throughput_per_min == pytest.approx(0.4)
    assert a.eta_s == pytest.approx(600)

    b = beta.progress
    assert (b.total, b.done, b.resolved, b.resolved_rate) == (4, 2, 1, 0.5)
    assert b.finished_in_window == 1  # 12:30:00 is inside; 12:15 is before the window
    assert b.throughput_per_min == pytest.approx(0.1)
    assert b.eta_s == pytest.approx(1200)

    whole = progress.overall
    assert (whole.total, whole.done, whole.running, whole.resolved) == (14, 8, 1, 4)
    assert whole.resolved_rate == pytest.approx(4 / 7)
    assert whole.throughput_per_min == pytest.approx(0.5)  # campaign 2's three are not counted
    assert whole.eta_s == pytest.approx(6 / 0.5 * 60)


def test_a_young_run_is_measured_since_it_started(workspace):
    campaign_id = add_campaign(workspace)
    add_attempts(
        workspace,
        [
            attempt(
                campaign_id, 1, state="done", outcome="failed", finished_at="2025-06-01T12:24:00Z"
            ),
            attempt(
                campaign_id, 2, state="done", outcome="failed", finished_at="2025-06-01T12:27:00Z"
            ),
            attempt(campaign_id, 3),
        ],
    )
    add_job(workspace, campaign_id, "2025-06-01T12:00:00Z", ended_at="2025-06-01T12:05:00Z")
    add_job(workspace, campaign_id, "2025-06-01T12:25:00Z")  # resumed five minutes ago
    whole = package_progress(workspace, campaign_id, NOW).overall
    assert whole.finished_in_window == 1
    assert whole.throughput_per_min == pytest.approx(1 / 5)
    assert whole.eta_s == pytest.approx(300)
    assert whole.resolved_rate == 0.0


def test_an_ended_run_keeps_the_rate_of_its_last_ten_minutes(workspace):
    campaign_id = add_campaign(workspace, status="paused")
    add_attempts(
        workspace,
        [
            attempt(
                campaign_id, 1, state="done", outcome="resolved", finished_at="2025-06-01T11:55:00Z"
            ),
            attempt(
                campaign_id, 2, state="done", outcome="resolved", finished_at="2025-06-01T11:58:00Z"
            ),
            attempt(campaign_id, 3),
        ],
    )
    add_job(workspace, campaign_id, "2025-06-01T11:00:00Z", ended_at="2025-06-01T12:00:00Z")
    progress = package_progress(workspace, campaign_id, NOW)
    assert (progress.window_start, progress.window_end) == (
        "2025-06-01T11:50:00Z",
        "2025-06-01T12:00:00Z",
    )
    assert progress.overall.throughput_per_min == pytest.approx(0.2)
    assert progress.overall.eta_s == pytest.approx(300)


def test_no_run_means_no_throughput_and_no_eta(workspace):
    campaign_id = add_campaign(workspace, status="pending")
    add_attempts(workspace, [attempt(campaign_id, n, outcome=None) for n in range(3)])
    whole = package_progress(workspace, campaign_id, NOW).overall
    assert (whole.throughput_per_min, whole.eta_s, whole.resolved_rate) == (None, None, None)
    assert (whole.total, whole.done, whole.remaining) == (3, 0, 3)


def test_a_stalled_run_has_zero_throughput_and_no_eta(workspace):
    campaign_id = add_campaign(workspace)
    add_attempts(workspace, [attempt(campaign_id, 1)])
    add_job(workspace, campaign_id, "2025-06-01T12:00:00Z")
    whole = package_progress(workspace, campaign_id, NOW).overall
    assert whole.throughput_per_min == 0.0
    assert whole.eta_s is None


def test_worker_lines_time_the_attempt_or_the_stage(known):
    ws, first, ids = known
    add_worker(ws, first, 2, "idle", None, "", "2025-06-01T12:29:50Z")
    add_worker(ws, first, 1, "plan", ids[6], "ignored", "2025-06-01T12:29:00Z")
    one, two = worker_lines(ws, first, NOW)
    assert (one.slot, one.stage, one.attempt_id) == (1, "plan", ids[6])
    assert one.task == f"{DIGEST_A[:12]}-{sha_of(7)[:12]}" and one.package_name == "alpha"
    assert one.since == "2025-06-01T12:28:30Z" and one.elapsed_s == 90
    assert (two.slot, two.stage, two.task, two.elapsed_s) == (2, "idle", "", 10)
    assert worker_lines(ws, first + 1, NOW) == []


def test_attempt_pages_in_id_order_with_an_outcome_filter(known):
    ws, first, ids = known
    assert attempt_count(ws, first) == 14
    assert attempt_count(ws, first, "resolved") == 4
    assert attempt_count(ws, first, "error") == 1
    assert [r.id for r in attempt_page(ws, first, 0, 5)] == ids[:5]
    assert [r.id for r in attempt_page(ws, first, 10, 100)] == ids[10:]
    assert attempt_page(ws, first, 14, 10) == []
    resolved = attempt_page(ws, first, 1, 10, "resolved")
    assert [r.id for r in resolved] == [ids[1], ids[2], ids[11]]
    row = resolved[0]
    assert (row.package_name, row.sha, row.state, row.outcome) == (
        "alpha",
        sha_of(2),
        "done",
        "resolved",
    )
    assert (row.f2p_passed, row.f2p_total, row.duration_s, row.file_recall) == (1, 1, 61.5, 0.5)


def test_attempt_page_refuses_bad_arguments(known):
    ws, first, _ = known
    with pytest.raises(HarnessError, match="unknown outcome 'won'"):
        attempt_count(ws, first, "won")  # type: ignore[arg-type]
    with pytest.raises(HarnessError, match="bad page"):
        attempt_page(ws, first, -1, 10)


BULK_START = datetime(2025, 5, 28, tzinfo=UTC)
BULK_EVERY_S = 3


def bulk_finished_at(n: int) -> str:
    """When bulk attempt `n` finished: one every 3 s from BULK_START."""
    return format_time(BULK_START + timedelta(seconds=BULK_EVERY_S * n))


def bulk_attempts(ws: Workspace, campaign_id: int, count: int) -> None:
    """`count` attempts in one transaction: every fifth pending, the rest done in turn, one
    finishing every 3 s from BULK_START.

    The connection stops syncing to disk for the rest of the test: an fsync per WAL checkpoint
    makes the insert take 25 s instead of 3, and nothing here survives the test anyway.
    """
    outcomes = ["resolved", "partial", "failed", "error", None]
    passed = {"resolved": 2, "partial": 1, "failed": 0, "error": 0}
    plan = json.dumps(PLAN)
    rows = []
    for n in range(count):
        outcome = outcomes[n % 5]
        done = outcome is not None
        first_half = n < count // 2
        rows.append(
            (
                campaign_id,
                DIGEST_A if first_half else DIGEST_B,
                "alpha" if first_half else "beta",
                sha_of(n),
                f"task-{n}",
                (0.3, 0.6, 0.9)[n % 3],
                n % 7 + 1,
                "done" if done else "pending",
                outcome,
                f"{outcome} after {n} tries" if done else None,
                bulk_finished_at(n) if done else None,
                61.5 if done else None,
                passed[outcome] if done else None,
                2 if done else None,
                0.5 if done else None,
                plan if done else None,
            )
        )
    ws.db.execute("PRAGMA synchronous = OFF")
    with ws.db.conn:
        ws.db.conn.executemany(
            "INSERT INTO attempts (campaign_id, package_digest, package_name, sha, task, "
            "pipeline, model, temperature, seed, state, outcome, reason, finished_at, "
            "duration_s, f2p_passed, f2p_total, file_recall, plan_json) "
            "VALUES (?, ?, ?, ?, ?, 'gold', 'gold', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


@pytest.mark.slow
def test_pages_come_from_indexes_at_100000_attempts(workspace):
    other = add_campaign(workspace)
    bulk_attempts(workspace, other, 1000)  # another campaign's attempts come first
    campaign_id = add_campaign(workspace)
    bulk_attempts(workspace, campaign_id, 100_000)
    assert attempt_count(workspace, campaign_id) == 100_000
    for offset, outcome in [(0, None), (99_950, None), (50_000, None), (19_950, "error")]:
        rows = attempt_page(workspace, campaign_id, offset, 50, outcome)
        assert len(rows) == 50
    for where in ("campaign_id = ?", "campaign_id = ? AND outcome = ?"):
        plan = workspace.db.execute(
            f"EXPLAIN QUERY PLAN SELECT id FROM attempts WHERE {where} ORDER BY id LIMIT 50",
            [campaign_id, "error"][: where.count("?")],
        ).fetchall()
        details = " | ".join(row[-1] for row in plan)
        assert "USING COVERING INDEX" in details and "TEMP B-TREE" not in details, details
    last = attempt_page(workspace, campaign_id, 99_999, 50)
    assert [r.task for r in last] == ["task-99999"]
    errors = attempt_page(workspace, campaign_id, 19_999, 5, "error")
    assert [r.task for r in errors] == ["task-99998"]


@pytest.mark.slow
def test_progress_at_100000_attempts(workspace):
    campaign_id = add_campaign(workspace, status="paused")
    bulk_attempts(workspace, campaign_id, 100_000)
    add_job(workspace, campaign_id, bulk_finished_at(0), ended_at=bulk_finished_at(99_999))
    progress = package_progress(workspace, campaign_id, NOW)
    alpha, beta = progress.packages
    assert (alpha.progress.done, alpha.progress.total, beta.progress.done) == (
        40_000,
        50_000,
        40_000,
    )
    whole = progress.overall
    assert whole.outcomes == {
        "resolved": 20_000,
        "partial": 20_000,
        "failed": 20_000,
        "error": 20_000,
        "unusable": 0,
    }
    window = range(99_999 - 600 // BULK_EVERY_S, 100_000)  # the last 10 minutes, ends included
    finished = sum(1 for n in window if n % 5 != 4)
    assert whole.finished_in_window == beta.progress.finished_in_window == finished
    assert whole.throughput_per_min == pytest.approx(finished / 10)
    assert whole.eta_s == pytest.approx(20_000 / (finished / 10) * 60)


def write_artifacts(ws: Workspace, folder: str, files: dict[str, str | bytes]) -> None:
    out = ws.root / folder
    for name, content in files.items():
        data = content.encode() if isinstance(content, str) else content
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)


def test_attempt_detail_reads_the_plan_and_artifacts(known):
    ws, first, ids = known
    folder = "runs/task/attempts/2"
    with ws.db.conn:
        ws.db["attempts"].update(
            ids[1],
            {
                "plan_json": json.dumps(PLAN),
                "artifacts": folder,
                "file_precision": 1.0,
                "symbol_recall": None,
            },
        )
    big = b"x" * (ARTIFACT_CAP_BYTES + 10)
    write_artifacts(ws, folder, {"patch.diff": DIFF, TEST_OUTPUT: big, "raw.txt": b"\xff ok"})
    detail = attempt_detail(ws, ids[1])
    assert detail.row["outcome"] == "resolved"
    assert detail.alignment["file_precision"] == 1.0
    assert detail.alignment["symbol_recall"] is None
    assert detail.plan is not None
    assert [p.id for p in detail.plan.parts] == ["core", "docs"]
    diff = detail.artifacts["patch.diff"]
    assert diff.text == DIFF and not diff.truncated and diff.missing is None
    output = detail.artifacts[TEST_OUTPUT]
    assert output.truncated and output.size == ARTIFACT_CAP_BYTES + 10
    assert output.text == "x" * ARTIFACT_CAP_BYTES
    assert detail.artifacts["raw.txt"].text == "\ufffd ok"
    report = detail.artifacts["report.json"]
    assert report.text is None and report.missing == f"{folder}/report.json is missing"


def test_attempt_detail_without_artifacts_or_with_a_bad_plan(known):
    ws, first, ids = known
    detail = attempt_detail(ws, ids[7])
    assert detail.plan is None and detail.plan_error is None
    assert {a.missing for a in detail.artifacts.values()} == {
        "the attempt has no artifacts folder yet"
    }
    with ws.db.conn:
        ws.db["attempts"].update(ids[0], {"plan_json": json.dumps({"summary": "", "parts": []})})
    broken = attempt_detail(ws, ids[0])
    assert broken.plan is None
    assert broken.plan_error is not None and "does not parse" in broken.plan_error
    with pytest.raises(HarnessError, match="there is no attempt 9999"):
        attempt_detail(ws, 9999)


def test_queries_only_read(known):
    ws, first, _ = known
    before = ws.db.conn.total_changes
    campaign_summaries(ws)
    package_progress(ws, first, NOW)
    worker_lines(ws, first, NOW)
    attempt_count(ws, first, "resolved")
    attempt_page(ws, first, 0, 10, "resolved")
    attempt_detail(ws, 1)
    assert ws.db.conn.total_changes == before


def test_cli_lists_a_campaigns_attempts_as_the_pane_does(known):
    """`cra harness attempts` prints the pane's columns for the newest campaign or the one
    named, `--json` the same rows as data; an unknown campaign is one error line."""
    ws, first, ids = known
    args = ["--workspace", str(ws.root), "harness", "attempts"]
    shown = CliRunner().invoke(cli, [*args, "--campaign", str(first)])
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[0] == f"campaign {first}: 14 attempts"
    assert lines[1].split() == ["id", "package", "commit", "temp", "seed", "state", "outcome",
                                "f2p", "time", "recall"]  # fmt: skip
    assert lines[2].split() == [
        str(ids[0]), "alpha", sha_of(1)[:12], "0.3", "1", "done", "resolved", "1/1", "1m",
        "01s", "0.50", "resolved", "on", "purpose",
    ]  # fmt: skip
    assert lines[9].split()[:8] == [str(ids[7]), "alpha", sha_of(8)[:12], "0.6", "1", "pending",
                                    "—", "—"]  # fmt: skip
    as_json = CliRunner().invoke(cli, [*args, "--campaign", str(first), "--json"])
    assert [row["id"] for row in json.loads(as_json.stdout)] == ids
    newest = CliRunner().invoke(cli, args)
    assert newest.stdout.splitlines()[0] == f"campaign {first + 1}: 3 attempts"
    missing = CliRunner().invoke(cli, [*args, "--campaign", "99"])
    assert missing.exit_code == 1 and len(missing.stderr.splitlines()) == 1


def test_cli_shows_one_attempt_as_its_drill_down_does(known):
    """`cra harness attempt ID` prints the heading, the plan and each artifact or why it is
    missing; an unknown id is one error line."""
    ws, first, ids = known
    folder = "runs/task/attempts/2"
    with ws.db.conn:
        ws.db["attempts"].update(
            ids[1], {"plan_json": json.dumps(PLAN), "artifacts": folder, "file_precision": 1.0}
        )
    write_artifacts(ws, folder, {"patch.diff": DIFF})
    args = ["--workspace", str(ws.root), "harness", "attempt"]
    shown = CliRunner().invoke(cli, [*args, str(ids[1])])
    assert shown.exit_code == 0, shown.output
    out = shown.stdout
    assert out.startswith(f"Attempt {ids[1]} · task {'a' * 12}-{sha_of(2)[:12]} · alpha @ ")
    assert "\nresolved — resolved on purpose\n" in out
    assert "F2P 1/1 · P2P —" in out
    assert "alignment file precision 1.00 · file recall 0.50 · symbol precision —" in out
    assert f"── patch.diff ({folder}/patch.diff)\n{DIFF.rstrip()}" in out
    assert f"── report.json ({folder}/report.json)\n{folder}/report.json is missing" in out
    missing = CliRunner().invoke(cli, [*args, "9999"])
    assert missing.exit_code == 1
    assert missing.stderr == "error: there is no attempt 9999\n"


@pytest.mark.slow
def test_the_test_output_shown_is_the_one_a_real_attempt_wrote(tmp_path, short_package):
    """An attempt run by the real writer (the gold pipeline on a usable demo commit) has its
    test output read where it wrote it: the view's "Test output" shows pytest's run, not
    "missing"."""
    ws = open_workspace(tmp_path / "ws", HARNESS)
    digest = approve_package(ws, short_package).digest
    spec = CampaignSpec(
        packages=[digest], pipeline="gold", model="gold", temperatures=[0.0], seeds=[1]
    )
    campaign_id = create_campaign(ws, spec, "tester")
    row = next(ws.db["attempts"].rows_where("campaign_id = ?", [campaign_id], order_by="id"))
    record = run_attempt(ws, row, lambda stage: None)
    assert record.outcome == "resolved", record.reason
    output = attempt_detail(ws, row["id"]).artifacts[TEST_OUTPUT]
    assert output.missing is None
    assert output.text is not None and " passed" in output.text
