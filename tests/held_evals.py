"""Real eval jobs that a test can catch mid-way: a workspace whose scope candidate and frozen
eval set (`evidence_fixtures.unscored_candidate`) are scored by the eval job against a local
stand-in for vLLM (`FakeVllm`) that answers every row and holds one answer until the test lets
it go. Leaving `served_eval` lets the answer go and waits until every eval job has ended.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evidence_fixtures import unscored_candidate
from fake_vllm import FakeVllm
from pilot_wait import wait_for

from engine.core.workspace import Workspace
from engine.evaluation.runs import eval_jobs, reconcile_evals

ANSWER = '{"relevant": [], "supporting": [], "irrelevant": []}'


class HeldAnswers:
    """Answers every chat request with `ANSWER`, but holds the `hold_at`-th (counting from 1)
    until `release()`; `release` also lets every later one through at once."""

    def __init__(self, hold_at: int) -> None:
        self.hold_at = hold_at
        self.asked = 0
        self._lock = threading.Lock()
        self._released = threading.Event()

    def __call__(self, model: str, messages: list[dict[str, str]]) -> str:
        with self._lock:
            self.asked += 1
            number = self.asked
        if number == self.hold_at:
            self._released.wait(120)
        return ANSWER

    def release(self) -> None:
        self._released.set()


def open_served(root: Path, url: str) -> Workspace:
    """A workspace at `root` whose reasoning base is served at `url`."""
    (root / "models/reasoning").mkdir(parents=True, exist_ok=True)
    (root / "models/reasoning" / "config.json").write_text("{}")
    (root / "cra.toml").write_text(
        f'[usb]\nmount_roots = []\n[serving]\nbase_url = "{url}"\n'
        'timeout_s = 5\n[serving.bases]\nreasoning = "models/reasoning"\n',
        encoding="utf-8",
    )
    return Workspace.open(root)


def jobs_ended(ws: Workspace) -> bool:
    reconcile_evals(ws)
    return not any(job.live for job in eval_jobs(ws))


@contextmanager
def served_eval(root: Path, hold_at: int) -> Iterator[tuple[Workspace, FakeVllm, HeldAnswers]]:
    """The workspace at `root` with scope-v1 and scope's eval set, served by a FakeVllm whose
    answers hold at the `hold_at`-th; on leaving, the answers go and every eval job ends."""
    held = HeldAnswers(hold_at)
    with FakeVllm(str(root / "models/reasoning")) as fake:
        fake.answer = held
        ws = open_served(root, fake.url)
        unscored_candidate(ws)
        try:
            yield ws, fake, held
        finally:
            held.release()
            wait_for(lambda: jobs_ended(ws), "every eval job to end", every_s=0.2)
