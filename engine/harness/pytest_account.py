"""pytest's own account of a gold-validation run, and the kinds of reason a task is unusable.

Outcomes come from the JUnit report alone (engine.harness.junit); this module reads what the
report and pytest's output say about why tests did not run or pass, so that an unusable task
names the true cause with its evidence: a run that stopped before any test ran (a configuration
or usage error, exit 4 or a traceback; a plugin the configuration needs that is not installed; a
conftest that does not load; an internal error), a run past the limits, and per test the skip
reason or the error line (a module that could not be collected; a marker the configuration does
not register). Every evidence line is hostile text (the tested code can print anything): it is
one line, neutralised and cut to `EVIDENCE_MAX` characters, and it never decides an outcome.
"""

import re
from pathlib import Path
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict

from engine.core.terminal_text import neutralise
from engine.harness.ast_diff import FileChange
from engine.harness.junit import Outcome, read_notes
from engine.isolation.sandbox import SandboxResult

RunKind = Literal[
    "timeout",
    "resource-limit",
    "config-error",
    "missing-plugin",
    "conftest-error",
    "internal-error",
    "untrusted-report",
]
"""Why one run gave no usable outcomes."""

ReasonKind = Literal[
    RunKind,
    "install-error",
    "collection-error",
    "unknown-marker",
    "no-test-files",
    "no-tests",
    "flaky",
    "skipped",
    "failing",
    "already-passing",
    "test-only",
    "static-check",
    "structural",
]
"""Why a task is unusable (or only structurally validated), as a short word to group by (a
run's kind, or the task's own); `TaskValidation.reason` says it in full."""

EVIDENCE_MAX = 240
UNKNOWN_MARKER = "not found in `markers` configuration option"


def evidence(text: str) -> str:
    """One line of untrusted output, safe to show and store: stripped, neutralised, cut."""
    line = neutralise(" ".join(text.split()))
    return line if len(line) <= EVIDENCE_MAX else f"{line[: EVIDENCE_MAX - 1]}…"


class TestNote(BaseModel):
    """Why a test did not pass in one run, from the JUnit report."""

    model_config = ConfigDict(frozen=True)

    outcome: Outcome
    collection: bool
    line: str


class RunAccount(BaseModel):
    """What pytest said about one run: why it gave no usable outcomes (`kind`, None when it
    ran and its report is trusted), the line that shows it (pytest's summary line when it ran),
    and each test that did not pass."""

    model_config = ConfigDict(frozen=True)

    kind: RunKind | None
    evidence: str
    notes: dict[str, TestNote]


_PLUGIN = (
    re.compile(r"Missing required plugins: .*"),
    re.compile(r"Error importing plugin .*"),
    re.compile(r"error: unrecognized arguments: .*"),
)
_MISSING_MODULE = re.compile(r"No module named '([^']+)'")


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.strip()]


def _stopped(result: SandboxResult) -> tuple[RunKind, str] | None:
    """Why pytest stopped before running any test, from its output, or None when it did not
    say (a run killed from outside, a crash in a test). A traceback is pytest's own refusal of
    the configuration only when it was raised while pytest prepared its configuration."""
    lines = _lines(result.stderr) + _lines(result.stdout)
    for pattern in _PLUGIN:
        for line in lines:
            if found := pattern.search(line):
                return "missing-plugin", found.group()
    if any("ImportError while loading conftest" in line for line in lines):
        raised = [line.removeprefix("E").strip() for line in lines if line.startswith("E ")]
        line = raised[-1] if raised else next(x for x in lines if "while loading conftest" in x)
        module = _MISSING_MODULE.search(line)
        if module and module.group(1).split(".")[0].startswith("pytest_"):
            return "missing-plugin", line
        return "conftest-error", line
    internal = [line for line in lines if line.startswith("INTERNALERROR>")]
    if result.returncode == 3 and internal:
        return "internal-error", internal[-1].removeprefix("INTERNALERROR>").strip()
    errors = [line for line in lines if line.startswith("ERROR: ") and "usage:" not in line]
    if errors:
        return "config-error", errors[0].removeprefix("ERROR: ")
    stderr = _lines(result.stderr)
    in_config = "Traceback (most recent call last):" in stderr and any(
        "in _prepareconfig" in line for line in stderr
    )
    if result.returncode == 4 or in_config:
        raised = [line for line in stderr if not line.startswith(" ")]
        return "config-error", raised[-1] if raised else f"pytest exited with {result.returncode}"
    return None


def account_run(result: SandboxResult, junit: Path, junit_error: str | None) -> RunAccount:
    """pytest's account of the run that ended as `result`, its report at `junit` (untrusted,
    for `junit_error`'s reason, when that is not None)."""
    if result.timed_out:
        last = _lines(result.stdout)
        return RunAccount(kind="timeout", evidence=evidence(last[-1]) if last else "", notes={})
    if junit_error is None:
        notes = {
            tid: TestNote(outcome=n.outcome, collection=n.collection, line=evidence(n.line))
            for tid, n in read_notes(junit).items()
        }
        last = _lines(result.stdout)
        return RunAccount(kind=None, evidence=evidence(last[-1]) if last else "", notes=notes)
    if result.limits_hit:
        return RunAccount(kind="resource-limit", evidence=", ".join(result.limits_hit), notes={})
    written = junit.is_file() and junit.stat().st_size > 0
    if (not written or result.returncode in (3, 4)) and (stopped := _stopped(result)):
        kind, line = stopped
        return RunAccount(kind=kind, evidence=evidence(line), notes={})
    # Tests that broke the process (closed its streams, crashed it) leave their last words there.
    err = _lines(result.stderr)
    ends = f'; its stderr ends: "{evidence(err[-1])}"' if err else ""
    return RunAccount(kind="untrusted-report", evidence=evidence(junit_error) + ends, notes={})


class Reason(NamedTuple):
    """Why a task is unusable: its kind, to group by, and the sentence with its evidence."""

    kind: ReasonKind
    text: str


def run_reason(account: RunAccount, side: str, limit_s: float) -> Reason:
    """The reason a run of `side` ("at the commit", "at the parent") that gave no usable
    outcomes (`account.kind` is not None) makes its task unusable."""
    kind = account.kind
    assert kind is not None, "only a run with no usable outcomes has a reason"
    said = f': "{account.evidence}"' if account.evidence else ""
    texts: dict[RunKind, str] = {
        "timeout": f"the tests {side} ran past the time limit of {limit_s:g}s "
        f"(test_timeout_s){'; the last line printed' + said if said else ''}",
        "resource-limit": f"the tests {side} ran into the sandbox's {account.evidence} limit",
        "config-error": f"pytest stopped {side} before running any test, on a configuration "
        f"or usage error{said}",
        "missing-plugin": f"pytest {side} needs a plugin that is not installed{said}",
        "conftest-error": f"the repository's conftest.py does not load {side}{said}",
        "internal-error": f"pytest {side} stopped on an internal error{said}",
        "untrusted-report": f"the tests {side} gave no trustworthy result: {account.evidence}",
    }
    return Reason(kind, texts[kind])


def _quoted(tid: str, note: TestNote | None) -> str:
    line = note.line if note else ""
    return f'{evidence(tid)}: "{line}"' if line else evidence(tid)


def touched_tests(changes: list[FileChange]) -> set[tuple[str, str]]:
    """(file, symbol) of each test function or class a commit adds or changes
    (`Class.test_x`), from its changes (engine.harness.ast_diff)."""
    return {
        (change.path, symbol)
        for change in changes
        if change.symbols is not None
        for symbol in change.symbols.touched
    }


def _touches(touched: set[tuple[str, str]], tid: str) -> bool:
    """Whether test `tid` (`path::Class::name[params]`) is one the commit adds or changes, or
    lies in a class it does."""
    path, _, rest = tid.partition("::")
    parts = rest.split("[", 1)[0].split("::")
    return any((path, ".".join(parts[:size])) in touched for size in range(1, len(parts) + 1))


def _rest(untouched: dict[str, Outcome]) -> str:
    """How the tests a commit does not touch, and that do not pass, ended: " (2 more it does
    not change: 1 skipped, 1 failed)"."""
    if not untouched:
        return ""
    counts: dict[str, int] = {}
    for outcome in untouched.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    said = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
    return f" ({len(untouched)} more it does not change: {said})"


def candidates_reason(
    outcomes: dict[str, Outcome],
    account: RunAccount | None,
    settled: set[str],
    touched: set[tuple[str, str]],
) -> Reason:
    """Why no test of a commit fails at the parent and passes at the commit, from the commit's
    outcomes (`outcomes`, the run's `account`), the tests already explained (`settled`: those
    passing on both sides and the flaky) and the tests the commit adds or changes (`touched`,
    see `touched_tests`).

    The candidates are the commit's other tests (none passes there). A module that cannot be
    collected hides its tests, so it is named first. Among the rest, those the commit adds or
    changes decide: skipped, it says so with pytest's skip reason; failing, it quotes the first
    failure. A test skipped or failing that the commit does not touch (skipped on this Python
    for years, say) does not make a refactor's reason."""
    notes = account.notes if account else {}
    candidates = {tid: o for tid, o in outcomes.items() if tid not in settled}
    collection = sorted(tid for tid in candidates if tid in notes and notes[tid].collection)
    if collection:
        marker = [tid for tid in collection if UNKNOWN_MARKER in notes[tid].line]
        if marker:
            return Reason(
                "unknown-marker",
                "a test module uses a marker the repository's pytest configuration does not "
                f"register, at the commit: {_quoted(marker[0], notes.get(marker[0]))}",
            )
        count = f"{len(collection)} test modules" if len(collection) > 1 else "a test module"
        return Reason(
            "collection-error",
            f"{count} cannot be collected at the commit: "
            f"{_quoted(collection[0], notes.get(collection[0]))}",
        )
    passing = sum(o == "passed" for o in outcomes.values())
    own = {tid: o for tid, o in candidates.items() if _touches(touched, tid)}
    if passing and not own:
        return Reason("already-passing", f"its tests already pass at the parent{_rest(candidates)}")
    deciding = own or candidates
    skipped = sorted(tid for tid, o in deciding.items() if o == "skipped")
    if len(skipped) == len(deciding):
        others = f" (the other {passing} already pass at the parent)" if passing else ""
        return Reason(
            "skipped",
            f"the tests it adds or changes ({len(skipped)}) are skipped at the commit{others}: "
            f"{_quoted(skipped[0], notes.get(skipped[0]))}",
        )
    failing = sorted(tid for tid in deciding if tid not in skipped)
    also = f" ({len(skipped)} more skipped)" if skipped else ""
    first = f"; {_quoted(failing[0], notes.get(failing[0]))}"
    if not passing:
        return Reason("failing", f"none of its tests passes at the commit{also}{first}")
    return Reason(
        "failing",
        f"its tests that pass at the commit already pass at the parent, and {len(failing)} "
        f"it adds or changes fail at the commit{also}{first}",
    )
