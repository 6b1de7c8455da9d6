"""A small client for vLLM's OpenAI-compatible server: its model list and LoRA endpoints.

Runtime loads need the server started with `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`. In
`/v1/models` an adapter is an entry whose `parent` names the base it runs on and whose `root`
is the folder it was loaded from; the base itself has no parent. Standard library only.
"""

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from engine.bases.registry import (
    SERVING_KEY,
    BaseRegistryError,
    ensure_base,
    unservable_reason,
)
from engine.core.errors import CraError
from engine.core.stages import BaseModelKind
from engine.core.workspace import Workspace
from engine.serving.started import running_start, start_record

ADAPTER_CONFIG = "adapter_config.json"
SERVED_STATUSES = ("active", "candidate")
RUNTIME_UPDATES_ENV = "VLLM_ALLOW_RUNTIME_LORA_UPDATING"
RUNTIME_LORA_ENDPOINTS = ("/v1/load_lora_adapter", "/v1/unload_lora_adapter")
"""Routes vLLM has only when started with `RUNTIME_UPDATES_ENV` true; else they answer 404."""
DEFAULT_MAX_LORA_RANK = 16
VLLM_PIN = "vllm==0.34.0"
"""The vLLM release this client's endpoints, JSON fields and server flags were read against.
vLLM needs its own torch (2.14.0 for this release, beside the console's 2.13.0), so it lives in
an environment of its own: `cra doctor` reads its version there."""
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The values vLLM accepts for `--max-lora-rank`."""


class ServableAdapter(Protocol):
    """What serving reads of an adapter version: `engine.adapters.activation.AdapterVersion`,
    which sits in a layer beside serving, not below it."""

    @property
    def name(self) -> str: ...

    @property
    def base_model(self) -> BaseModelKind: ...

    @property
    def path(self) -> str:
        """The version's folder, relative to the workspace."""
        ...

    @property
    def rank(self) -> int | None:
        """The LoRA rank on record; None when none was recorded."""
        ...

    @property
    def base_version_id(self) -> int | None:
        """The registered base version it was trained on (`engine.bases.registry`)."""
        ...


class ServingError(CraError):
    """The vLLM server refused a request, gave an unreadable answer, or cannot be reached."""


@dataclass(frozen=True)
class ServedModel:
    """One entry of `/v1/models`: a base (parent None) or an adapter on a base."""

    id: str
    root: str | None
    parent: str | None

    @property
    def is_adapter(self) -> bool:
        return self.parent is not None


class VllmClient:
    """Talks to the vLLM server at `base_url` (scheme, host and port; no `/v1`)."""

    def __init__(self, base_url: str, timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def models(self) -> list[ServedModel]:
        """Every model the server answers for: its bases and its loaded adapters."""
        endpoint = "/v1/models"
        body = self._request("GET", endpoint, None)
        try:
            data = json.loads(body)
            return [
                ServedModel(id=entry["id"], root=entry.get("root"), parent=entry.get("parent"))
                for entry in data["data"]
            ]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
            raise ServingError(
                f"vLLM at {self.base_url}: {endpoint} is not a model list ({exc}): {body[:200]!r}"
            ) from exc

    def loaded_adapters(self) -> set[str]:
        """The names of the adapters the server has loaded."""
        return {model.id for model in self.models() if model.is_adapter}

    def load_adapter(self, name: str, path: str) -> None:
        """Ask the server to load the adapter folder `path` under `name`."""
        self._request("POST", "/v1/load_lora_adapter", {"lora_name": name, "lora_path": path})

    def unload_adapter(self, name: str) -> None:
        """Ask the server to drop the adapter `name`."""
        self._request("POST", "/v1/unload_lora_adapter", {"lora_name": name})

    def _request(self, method: str, endpoint: str, payload: dict[str, Any] | None) -> bytes:
        url = self.base_url + endpoint
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        where = f"vLLM at {self.base_url}: {method} {endpoint}"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            message = server_message(exc)
            if exc.code == 404 and endpoint in RUNTIME_LORA_ENDPOINTS and message == "Not Found":
                raise ServingError(
                    f"{where}: HTTP 404: the server has no runtime LoRA endpoints: it was started "
                    f"without {RUNTIME_UPDATES_ENV}=True (`cra serve --launch` sets it; restart "
                    "it that way)"
                ) from exc
            raise ServingError(f"{where}: HTTP {exc.code}: {message}") from exc
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, ConnectionRefusedError):
                raise ServingError(
                    f"{where}: connection refused; the vLLM server is not running at "
                    f"{self.base_url} (start it with `cra serve --launch`)"
                ) from exc
            if isinstance(exc.reason, TimeoutError):
                raise ServingError(f"{where}: no answer within {self.timeout_s:g}s") from exc
            raise ServingError(f"{where}: cannot reach the server: {exc.reason}") from exc
        except (ConnectionError, http.client.HTTPException) as exc:
            # A server stopping or crashing mid-answer resets the connection after it was made.
            raise ServingError(f"{where}: the connection broke: {exc!r}") from exc
        except TimeoutError as exc:
            raise ServingError(f"{where}: no answer within {self.timeout_s:g}s") from exc


def server_message(exc: urllib.error.HTTPError) -> str:
    """What the server said: the `message` of vLLM's error JSON, else the body's text."""
    text = exc.read().decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return text or exc.reason
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
        if isinstance(data.get("detail"), str):
            return data["detail"]
    return text


def lora_module(name: str, path: Path) -> str:
    """One `--lora-modules` value in vLLM's JSON form: its `NAME=PATH` form is read as JSON
    whenever the value holds a comma, so a folder with a comma in its path would not load."""
    return json.dumps({"name": name, "path": str(path)})


def base_folder(ws: Workspace, kind: BaseModelKind) -> Path:
    """The model folder `[serving] bases.<kind>` names, absolute; refused when unset or absent."""
    key = f"[serving] bases.{kind}"
    folder = ws.config.serving.bases.get(kind)
    if folder is None:
        raise ServingError(f"base '{kind}' is not served: {key} is not set in {ws.config_path}")
    path = Path(folder)
    path = path if path.is_absolute() else ws.root / path
    if not path.is_dir():
        raise ServingError(f"{key} in {ws.config_path}: {path} is not a folder")
    return path


def served_base(ws: Workspace, kind: BaseModelKind, verify: bool) -> Path:
    """The folder `[serving] bases.<kind>` names, which must be the role's current registered
    base version (registered on first use); with `verify`, its files are hashed against the
    record. Absolute, as the config names it (the name the base is served under)."""
    folder = base_folder(ws, kind)
    try:
        ensure_base(ws, kind, SERVING_KEY, verify=verify)
    except BaseRegistryError as exc:
        raise ServingError(str(exc)) from exc
    return folder


def rank_limit(ws: Workspace, kind: BaseModelKind, excluding: str | None = None) -> int:
    """The `--max-lora-rank` the server of base `kind` is started with.

    The largest rank among the base's active and candidate versions that can serve on it (all
    but `excluding`), at least 16, rounded up to a value vLLM accepts: a larger adapter would
    fail to load.
    """
    rows = ws.db.execute(
        "SELECT name, rank, base_version_id FROM adapter_versions "
        "WHERE base_model = ? AND status IN (?, ?) AND name IS NOT ?",
        [kind, *SERVED_STATUSES, excluding],
    ).fetchall()
    ranks = [
        rank or 0
        for name, rank, base_id in rows
        if unservable_reason(ws, name, kind, base_id) is None
    ]
    needed = max([*ranks, DEFAULT_MAX_LORA_RANK])
    allowed = [rank for rank in VLLM_LORA_RANKS if rank >= needed]
    if not allowed:
        raise ServingError(
            f"base '{kind}': an adapter version has rank {needed}, above vLLM's largest "
            f"--max-lora-rank {VLLM_LORA_RANKS[-1]}"
        )
    return allowed[0]


def server_rank_limit(
    ws: Workspace, kind: BaseModelKind, url: str, loading: str
) -> tuple[int, str]:
    """The `--max-lora-rank` of base `kind`'s server at `url`, before `loading` is loaded on
    it, and where that number comes from.

    A server `cra serve --launch` started has its limit on record (`engine.serving.started`).
    Another (started by hand from `cra serve --print`) is taken to have what `cra serve` gave
    it before `loading` existed: the limit of every other served version.
    """
    record = running_start(ws, kind, url)
    if record is not None:
        limit = record.max_lora_rank
        return limit, f"the server's --max-lora-rank {limit} ({start_record(ws, kind).name})"
    limit = rank_limit(ws, kind, excluding=loading)
    return limit, (
        f"--max-lora-rank {limit}, which `cra serve` gives a server started before {loading} "
        "existed (no server `cra serve --launch` started answers there)"
    )


def adapter_rank(adapter_dir: Path) -> int:
    """The LoRA rank `r` in the adapter folder's adapter_config.json."""
    path = adapter_dir / ADAPTER_CONFIG
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ServingError(f"{path}: missing; {adapter_dir} is not a PEFT adapter") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ServingError(f"{path}: not readable JSON: {exc}") from exc
    rank = config.get("r") if isinstance(config, dict) else None
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise ServingError(f"{path}: key r is {rank!r}, not a positive LoRA rank")
    return rank


def check_adapter(
    version: ServableAdapter,
    adapter_dir: Path,
    max_lora_rank: int,
    served_bases: Collection[str],
    limit_source: str | None = None,
) -> int:
    """Refuse, before any request, an adapter the server could not load; returns its rank.

    A rank above `--max-lora-rank` fails inside vLLM, and a failed load can fail the requests
    in flight; an adapter on a base the server does not serve would answer with the wrong
    weights. The rank on record must match the adapter's own config.
    """
    name = version.name
    kind = version.base_model
    if kind not in served_bases:
        served = ", ".join(sorted(served_bases)) or "none"
        raise ServingError(
            f"adapter {name} is trained on base '{kind}', which is not served "
            f"(served: {served}; set [serving] bases.{kind})"
        )
    rank = adapter_rank(adapter_dir)
    if version.rank is not None and version.rank != rank:
        raise ServingError(
            f"adapter {name}: {adapter_dir / ADAPTER_CONFIG} has rank {rank}, "
            f"but its version record says {version.rank}"
        )
    if rank > max_lora_rank:
        source = limit_source or f"the server's --max-lora-rank {max_lora_rank}"
        raise ServingError(
            f"adapter {name} has rank {rank}, above {source}; restart the servers "
            "(`cra serve --launch` starts them with a limit every active and candidate version "
            "fits)"
        )
    return rank


def load_version(client: VllmClient, ws: Workspace, version: ServableAdapter) -> ServedModel:
    """Load an adapter version under its own name and confirm the server lists it.

    A version's name is never reused for other weights (reloading a name left a stale prefix
    cache, vllm#42125), so a name already loaded from the same folder is confirmed, not
    reloaded, and one loaded from another folder is refused. Folders are compared resolved:
    vLLM reports a path as it was given, and a workspace reached through a link names the
    same folder two ways. The server must serve the
    version's base, and after the load `/v1/models` must list the adapter on it: a runtime add
    the server does not list would send requests elsewhere (vllm#47724).
    """
    name = version.name
    kind = version.base_model
    adapter_dir = ws.root / version.path
    reason = unservable_reason(ws, name, kind, version.base_version_id)
    if reason is not None:
        raise ServingError(f"{reason}; an adapter is only loaded on the base it was trained on")
    limit, source = server_rank_limit(ws, kind, client.base_url, name)
    check_adapter(version, adapter_dir, limit, ws.config.serving.bases.keys(), source)
    base = served_base(ws, kind, verify=False)
    models = client.models()
    served = serves_base(client.base_url, models, kind, base)
    existing = _adapter(models, name)
    if existing is None:
        client.load_adapter(name, str(adapter_dir))
        existing = _adapter(client.models(), name)
        if existing is None:
            raise ServingError(
                f"vLLM at {client.base_url} accepted adapter {name} but /v1/models does not "
                f"list it; requests naming it would not reach it"
            )
    if existing.root is None or Path(existing.root).resolve() != adapter_dir.resolve():
        raise ServingError(
            f"vLLM at {client.base_url} has adapter {name} from {existing.root}, "
            f"not from {adapter_dir}; a name is never reused for other weights"
        )
    if existing.parent != served.id:
        raise ServingError(
            f"vLLM at {client.base_url} lists adapter {name} on {existing.parent}, not on "
            f"base '{kind}' ({served.id}, from {base})"
        )
    return existing


def serves_base(url: str, models: list[ServedModel], kind: str, base: Path) -> ServedModel:
    """The entry of `/v1/models` that is base `kind` of this workspace: a base whose `root` (its
    `id` when it has none) is the folder `base`, compared by resolved path. Refused when the
    server answering serves another folder: another workspace's server on the same port."""
    folder = base.resolve()
    for model in models:
        if not model.is_adapter and Path(model.root or model.id).resolve() == folder:
            return model
    served = ", ".join(model.root or model.id for model in models if not model.is_adapter)
    raise ServingError(
        f"the server at {url} serves {served or 'nothing'}, not base '{kind}' of this "
        f"workspace ({folder}): another server answers on that port"
    )


def _adapter(models: list[ServedModel], name: str) -> ServedModel | None:
    return next((model for model in models if model.id == name and model.is_adapter), None)
