"""The `vllm serve` command lines for the configured bases: one server per base, own port.

Each server starts with LoRA enabled, a `--max-lora-rank` large enough for every active and
candidate version on its base, the base's active versions preloaded under their version names,
and runtime loading allowed so candidates can be added without a restart. Ports follow a fixed
order from `[serving] base_url`'s port (reasoning, then coding), so a base keeps its port
whether or not the other is configured. A base is served under its kind (`reasoning`, `coding`:
the name `cra adapters resolve` gives a stage with no active version) and under its folder's path
(the name evaluations and watches ask for).

vLLM runs from its own environment (`[serving] vllm_env`), offline and without usage reports.
Servers on one GPU get their share of its memory explicitly (`--gpu-memory-utilization`: by
default vLLM takes all of it). The adapters end every turn on `CHAT_END_TOKEN`, which a base's
own generation config may not stop on, and vLLM reads neither an adapter's tokenizer nor its
generation config: each server reads a copy of its base's generation config that also stops
on that token (`--generation-config`).
"""

import json
import socket
import sys
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.bases.registry import unservable_reason
from engine.core.durable import write_durably
from engine.core.stages import CHAT_END_TOKEN, BaseModelKind
from engine.core.workspace import Workspace
from engine.serving.vllm_client import (
    RUNTIME_UPDATES_ENV,
    SERVED_STATUSES,
    ServingError,
    check_adapter,
    lora_module,
    rank_limit,
    served_base,
)

BASE_ORDER: tuple[BaseModelKind, ...] = ("reasoning", "coding")
SERVE_ENV = {
    RUNTIME_UPDATES_ENV: "True",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "VLLM_DO_NOT_TRACK": "1",
    "DO_NOT_TRACK": "1",
}
"""Every server's environment: runtime LoRA loads on, no network (the bases are local folders),
no usage reports."""
SERVING_DIR = "serving"
GENERATION_CONFIG = "generation_config.json"


@dataclass(frozen=True)
class ServeCommand:
    """One server to start: the base it serves, where it answers, its argv and extra env."""

    base: BaseModelKind
    url: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=lambda: dict(SERVE_ENV))
    notes: list[str] = field(default_factory=list)
    """Active versions left out, and why (trained on an older base)."""
    adapters: list[str] = field(default_factory=list)
    """The versions it preloads, by name."""
    max_lora_rank: int | None = None
    """The `--max-lora-rank` it is started with (recorded while it runs, for later loads)."""
    gpu: str | None = None
    """The GPU it runs on; servers on one GPU are started one at a time. None: no GPU."""


def server_url(ws: Workspace, kind: str) -> str:
    """Where the server of base `kind` answers: `base_url` with the base's port."""
    scheme = urllib.parse.urlsplit(ws.config.serving.base_url).scheme
    host, port = _host_port(ws)
    return f"{scheme}://{host}:{port + BASE_ORDER.index(kind)}"


def serve_commands(ws: Workspace) -> list[ServeCommand]:
    """One `vllm serve` command per configured base; refused when an adapter has no base."""
    serving = ws.config.serving
    if not serving.bases:
        raise ServingError(f"no base is served: [serving] bases is empty in {ws.config_path}")
    if serving.max_cpu_loras is not None and serving.max_cpu_loras < serving.max_loras:
        raise ServingError(
            f"{ws.config_path}: [serving] max_cpu_loras ({serving.max_cpu_loras}) must be at "
            f"least max_loras ({serving.max_loras})"
        )
    versions = ws.db.execute(
        "SELECT name, base_model, base_version_id FROM adapter_versions "
        "WHERE status IN (?, ?) ORDER BY name",
        list(SERVED_STATUSES),
    ).fetchall()
    for name, kind, base_id in versions:
        if kind not in serving.bases and unservable_reason(ws, name, kind, base_id) is None:
            raise ServingError(
                f"adapter {name} needs base '{kind}', but [serving] bases.{kind} is not set "
                f"in {ws.config_path}"
            )
    return [_command(ws, kind) for kind in BASE_ORDER if kind in serving.bases]


def cpu_serve_commands(ws: Workspace) -> list[ServeCommand]:
    """The CPU stand-in (`engine.serving.cpu_server`) in place of vLLM, one per configured base
    on the same ports, active versions preloaded: for the tiny model and the demo, no GPU."""
    serving = ws.config.serving
    if not serving.bases:
        raise ServingError(f"no base is served: [serving] bases is empty in {ws.config_path}")
    host, port = _host_port(ws)
    commands = []
    for kind in BASE_ORDER:
        if kind not in serving.bases:
            continue
        base = served_base(ws, kind, verify=True)
        argv = [sys.executable, "-m", "engine.serving.cpu_server"]
        argv += ["--base", str(base), *_served_names(base, kind), "--host", host]
        argv += ["--port", str(port + BASE_ORDER.index(kind))]
        max_rank = rank_limit(ws, kind)
        argv += ["--max-lora-rank", str(max_rank)]
        argv += ["--generation-config", str(generation_config(ws, kind, base))]
        modules, notes = _active_modules(ws, kind, max_rank)
        if modules:
            argv += ["--lora-modules", *(lora_module(name, path) for name, path in modules)]
        commands.append(
            ServeCommand(
                base=kind,
                url=server_url(ws, kind),
                argv=argv,
                notes=notes,
                adapters=[name for name, _ in modules],
                max_lora_rank=max_rank,
            )
        )
    return commands


@dataclass(frozen=True)
class ActiveAdapter:
    """An active version, as much of it as a server needs to load it."""

    name: str
    base_model: BaseModelKind
    path: str
    rank: int | None
    base_version_id: int | None


def active_adapters(ws: Workspace, kind: BaseModelKind) -> list[ActiveAdapter]:
    """The active versions on base `kind`, by name."""
    return [
        ActiveAdapter(*row)
        for row in ws.db.execute(
            "SELECT name, base_model, path, rank, base_version_id FROM adapter_versions "
            "WHERE base_model = ? AND status = 'active' ORDER BY name",
            [kind],
        ).fetchall()
    ]


def _active_modules(
    ws: Workspace, kind: BaseModelKind, max_rank: int
) -> tuple[list[tuple[str, Path]], list[str]]:
    """Name and folder of each active version on base `kind`, each checked against the server,
    and a note for each active version left out because it was trained on an older base."""
    modules, notes = [], []
    for version in active_adapters(ws, kind):
        reason = unservable_reason(ws, version.name, kind, version.base_version_id)
        if reason is not None:
            notes.append(f"{version.name} is active but not loaded: {reason}")
            continue
        adapter_dir = ws.root / version.path
        check_adapter(version, adapter_dir, max_rank, ws.config.serving.bases.keys())
        modules.append((version.name, adapter_dir))
    return modules, notes


def vllm_executable(ws: Workspace) -> Path:
    """The `vllm` of the environment `[serving] vllm_env` names (`~` expanded; a relative path
    is against the workspace)."""
    env = Path(ws.config.serving.vllm_env).expanduser()
    return (env if env.is_absolute() else ws.root / env) / "bin" / "vllm"


def _command(ws: Workspace, kind: BaseModelKind) -> ServeCommand:
    serving = ws.config.serving
    host, port = _host_port(ws)
    max_rank = rank_limit(ws, kind)
    base = served_base(ws, kind, verify=True)
    argv = [str(vllm_executable(ws)), "serve", str(base), *_served_names(base, kind)]
    argv += ["--enable-lora"]
    argv += ["--host", host, "--port", str(port + BASE_ORDER.index(kind))]
    argv += ["--gpu-memory-utilization", f"{serving.memory_share(kind):g}"]
    if kind in serving.max_model_len:
        argv += ["--max-model-len", str(serving.max_model_len[kind])]
    argv += ["--max-lora-rank", str(max_rank), "--max-loras", str(serving.max_loras)]
    if serving.max_cpu_loras is not None:
        argv += ["--max-cpu-loras", str(serving.max_cpu_loras)]
    argv += ["--generation-config", str(generation_config(ws, kind, base))]
    modules, notes = _active_modules(ws, kind, max_rank)
    if modules:
        argv += ["--lora-modules", *(lora_module(name, path) for name, path in modules)]
    gpu = serving.device(kind)
    return ServeCommand(
        base=kind,
        url=server_url(ws, kind),
        argv=argv,
        env={**SERVE_ENV, "CUDA_VISIBLE_DEVICES": gpu},
        notes=notes,
        adapters=[name for name, _ in modules],
        max_lora_rank=max_rank,
        gpu=gpu,
    )


def generation_config(ws: Workspace, kind: BaseModelKind, base: Path) -> Path:
    """The folder of base `kind`'s generation config as served: the base's own, with
    `CHAT_END_TOKEN` among the tokens generation ends on. Written under `serving/<kind>/` (only
    when it changes); the base's folder is never touched."""
    config = _json_object(base / GENERATION_CONFIG) or {}
    eos = config.get("eos_token_id")
    if eos is None:
        eos = (_json_object(base / "config.json") or {}).get("eos_token_id")
    ends = [eos] if isinstance(eos, int) else list(eos or [])
    end = _token_id(base, CHAT_END_TOKEN)
    if end not in ends:
        ends.append(end)
    config["eos_token_id"] = ends
    folder = ws.root / SERVING_DIR / kind
    target = folder / GENERATION_CONFIG
    data = (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()
    if not target.is_file() or target.read_bytes() != data:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            write_durably(target, data)
        except OSError as exc:
            raise ServingError(f"cannot write {target}, which the server reads: {exc}") from exc
    return folder


def _json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in `path`; None when there is no such file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ServingError(f"{path}: not readable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ServingError(f"{path}: not a JSON object")
    return data


def _token_id(base: Path, token: str) -> int:
    """The id of `token` in the base's tokenizer (its `tokenizer.json`)."""
    from tokenizers import Tokenizer

    path = base / "tokenizer.json"
    if not path.is_file():
        raise ServingError(f"{base}: has no tokenizer.json, which vLLM serves the base with")
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # noqa: BLE001 (tokenizers raises a bare Exception for any fault)
        raise ServingError(f"{path}: not a tokenizer vLLM can serve with: {exc}") from exc
    token_id = tokenizer.token_to_id(token)
    if token_id is None:
        raise ServingError(
            f"{base}: the tokenizer has no token {token!r}, which every adapter's turn ends on"
        )
    return token_id


def _served_names(base: Path, kind: BaseModelKind) -> list[str]:
    """`--served-model-name KIND PATH`: the first is what `/v1/models` names an adapter's parent."""
    return ["--served-model-name", kind, str(base)]


def free_base_port(host: str = "127.0.0.1") -> int:
    """A port `p` on `host` with `p` to `p + len(BASE_ORDER) - 1` free now: for a workspace whose
    servers must not collide with another's (the demo records it in its `[serving] base_url`)."""
    while True:
        with socket.socket() as first:
            first.bind((host, 0))
            port = first.getsockname()[1]
            if port + len(BASE_ORDER) - 1 > 65535:
                continue
            if all(_free(host, port + offset) for offset in range(1, len(BASE_ORDER))):
                return port


def _free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _host_port(ws: Workspace) -> tuple[str, int]:
    url = ws.config.serving.base_url
    parts = urllib.parse.urlsplit(url)
    if parts.hostname is None or parts.path.strip("/"):
        raise ServingError(
            f"{ws.config_path}: [serving] base_url {url!r} must be scheme://host:port, no path"
        )
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if port + len(BASE_ORDER) - 1 > 65535:
        raise ServingError(f"{ws.config_path}: [serving] base_url port {port} leaves no room")
    return parts.hostname, port
