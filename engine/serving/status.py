"""What each configured base's server has loaded, beside what the database says is active."""

from dataclasses import dataclass

from engine.core.workspace import Workspace
from engine.serving.command import BASE_ORDER, server_url
from engine.serving.vllm_client import ServingError, VllmClient


@dataclass(frozen=True)
class ServerStatus:
    """One base's server: where, whether it answers, its adapters, and the active versions it
    does not list (requests naming them would fail). `error`: why it could not be read."""

    base: str
    url: str
    running: bool
    loaded: list[str]
    missing: list[str]
    error: str | None


def serving_status(ws: Workspace) -> list[ServerStatus]:
    """One status per configured base, in serving order; a down server is a status, not an
    error. Takes up to `[serving] timeout_s` per base: call it off the UI thread."""
    statuses = []
    for kind in BASE_ORDER:
        if kind not in ws.config.serving.bases:
            continue
        url = server_url(ws, kind)
        active = sorted(
            row[0]
            for row in ws.db.execute(
                "SELECT name FROM adapter_versions WHERE base_model = ? AND status = 'active'",
                [kind],
            )
        )
        try:
            loaded = sorted(VllmClient(url, ws.config.serving.timeout_s).loaded_adapters())
        except ServingError as exc:
            refused = "connection refused" in str(exc)
            statuses.append(
                ServerStatus(kind, url, False, [], active, None if refused else str(exc))
            )
            continue
        missing = [name for name in active if name not in loaded]
        statuses.append(ServerStatus(kind, url, True, loaded, missing, None))
    return statuses
