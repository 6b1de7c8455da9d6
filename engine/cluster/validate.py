"""`cra harness validate` on a Ray cluster: the commits that must run are validated on the
nodes at once, the rest on the head, and the results come out in commit order, as
`engine.harness.selection.validate_commits` gives them.

A commit with a standing validation is shown, not run again (unless `again`); one that needs no
run (a test-only commit, one another package of the repository validated) is recorded on the
head; every other commit is one order. A node lost under an order sends it again, once; lost
twice, or failed on its node, the command stops with the reason (what landed is kept).
"""

from collections.abc import Iterator

from engine.cluster.errors import ClusterError
from engine.cluster.fanout import Fanout
from engine.cluster.landing import land_validation
from engine.cluster.orders import ValidationDone
from engine.core.workspace import Workspace
from engine.harness.attempts import commit_lock
from engine.harness.package import CorpusPackage
from engine.harness.selection import recorded_validation
from engine.harness.supplement import validation_without_run
from engine.harness.task_validation import TaskValidation, task_name
from engine.intake.manifest import ManifestCommit

POLL_S = 1.0


def validate_commits_on_cluster(
    ws: Workspace, package: CorpusPackage, commits: list[ManifestCommit], again: bool = False
) -> Iterator[tuple[TaskValidation, bool]]:
    """Each of `commits` validated, yielded in order with whether it was recorded already."""
    done: dict[str, tuple[TaskValidation, bool]] = {}
    waiting: list[ManifestCommit] = []
    for commit in commits:
        earlier = None if again else recorded_validation(ws, package, commit)
        if earlier is not None:
            done[commit.sha] = (earlier, True)
            continue
        with commit_lock(ws, commit.sha):
            recorded = validation_without_run(ws, package, commit)
        if recorded is not None:
            done[commit.sha] = (recorded, False)
        else:
            waiting.append(commit)
    if not waiting:
        yield from (done[commit.sha] for commit in commits)
        return
    run = _Validations(ws, package, waiting)
    try:
        for commit in commits:
            while commit.sha not in done and commit.sha not in run.done:
                run.step()
            yield done.get(commit.sha) or run.done[commit.sha]
    finally:
        run.fanout.close()


class _Validations:
    """The commits still to send, those in flight and what landed."""

    def __init__(self, ws: Workspace, package: CorpusPackage, waiting: list[ManifestCommit]):
        self.ws = ws
        self.package = package
        self.waiting = list(waiting)
        self.fanout = Fanout(ws)
        self.done: dict[str, tuple[TaskValidation, bool]] = {}
        self.losses: dict[str, list[str]] = {}

    def step(self) -> None:
        """Send what the cluster has room for, then record what lands."""
        free = self.fanout.capacity() - len(self.fanout.flights)
        while free > 0 and self.waiting:
            commit = self.waiting.pop(0)
            label = task_name(self.package.digest, commit.sha)
            self.fanout.send_validation(self.ws, self.package, commit.sha, label)
            free -= 1
        for landed in self.fanout.wait(POLL_S):
            sha = landed.flight.subject["sha"]
            if isinstance(landed.result, ValidationDone):
                self.done[sha] = (land_validation(self.ws, landed.result), False)
            elif landed.failed is not None:
                raise ClusterError(f"the validation of commit {sha[:12]} failed {landed.failed}")
            else:
                self._lost(sha, landed.lost or "")

    def _lost(self, sha: str, why: str) -> None:
        seen = self.losses.setdefault(sha, [])
        seen.append(why)
        if len(seen) > 1:
            raise ClusterError(
                f"the validation of commit {sha[:12]} lost its node twice ({'; '.join(seen)}); "
                "run the command again to retry it"
            )
        self.waiting.insert(0, next(c for c in self.package.manifest.commits if c.sha == sha))
