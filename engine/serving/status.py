"""What each configured base's server has loaded, beside what the database says is active."""

from dataclasses import dataclass, field

from engine.bases.registry import unservable_reason
from engine.core.workspace import Workspace
from engine.serving.command import BASE_ORDER, server_url
from engine.serving.vllm_client import ServingError, VllmClient, base_folder, serves_base


@dataclass(frozen=True)
class ServerStatus:
    """One base's server: where, whether it answers, its adapters, and the active versions it
    does not list (requests naming them would fail). `error`: why it could not be read.
    `other`: a server answers on the port but serves another base folder (another workspace's):
    it is not this base's server, so `running` is False and nothing it lists is reported."""

    base: str
    url: str
    running: bool
    loaded: list[str]
    missing: list[str]
    error: str | None
    other: bool = False
    stranded: list[str] = field(default_factory=list)
    """Active versions trained on an older base than the current one: never loaded."""


def serving_status(ws: Workspace) -> list[ServerStatus]:
    """One status per configured base, in serving order; a down server is a status, not an
    error, and so is a server of another base folder. Takes up to `[serving] timeout_s` per
    base: call it off the UI thread."""
    statuses = []
    for kind in BASE_ORDER:
        if kind not in ws.config.serving.bases:
            continue
        url = server_url(ws, kind)
        folder = base_folder(ws, kind)
        active: list[str] = []
        stranded: list[str] = []
        for name, base_id in ws.db.execute(
            "SELECT name, base_version_id FROM adapter_versions "
            "WHERE base_model = ? AND status = 'active' ORDER BY name",
            [kind],
        ).fetchall():
            reason = unservable_reason(ws, name, kind, base_id)
            (active if reason is None else stranded).append(name)
        try:
            models = VllmClient(url, ws.config.serving.timeout_s).models()
        except ServingError as exc:
            refused = "connection refused" in str(exc)
            statuses.append(
                ServerStatus(
                    kind, url, False, [], active, None if refused else str(exc), stranded=stranded
                )
            )
            continue
        try:
            serves_base(url, models, kind, folder)
        except ServingError as exc:
            statuses.append(
                ServerStatus(kind, url, False, [], active, str(exc), other=True, stranded=stranded)
            )
            continue
        loaded = sorted(model.id for model in models if model.is_adapter)
        missing = [name for name in active if name not in loaded]
        statuses.append(ServerStatus(kind, url, True, loaded, missing, None, stranded=stranded))
    return statuses
