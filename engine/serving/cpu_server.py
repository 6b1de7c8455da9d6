"""A CPU stand-in for vLLM's OpenAI-compatible server, for the tiny test model and the demo.

`python -m engine.serving.cpu_server --base PATH [--served-model-name NAME ...] [--host H]
[--port N] [--lora-modules NAME=PATH|JSON ...] [--max-lora-rank N] [--generation-config DIR]
[--ready-file FILE]` serves one base with transformers +
peft on the CPU and answers the endpoints the console uses, shaped as vLLM answers them:
`/v1/models` (one entry per served name, its `root` the base's folder, the name defaulting to that
folder's path; an adapter has `root` and `parent`, the first served name), `/v1/load_lora_adapter`,
`/v1/unload_lora_adapter` and `/v1/chat/completions`. Decoding is always greedy, whatever the
temperature and seed: the stand-in is deterministic, so an eval run's answers repeat. Port 0
picks a free port; the URL it serves at is written to `--ready-file` once it listens. Requests are
served one at a time. It never reaches the network; the model folders are local.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

from engine.core.errors import CraError
from engine.serving.vllm_client import (
    RUNTIME_LORA_ENDPOINTS,
    RUNTIME_UPDATES_ENV,
    ServingError,
    lora_module,
)

ADAPTER_CONFIG = "adapter_config.json"
CHAT = "/v1/chat/completions"
NOT_FOUND = {"detail": "Not Found"}
"""What vLLM's web framework answers for a path that is no route."""
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
ADD_FAILED = "Call to add_lora method failed: "
"""How vLLM's answer begins for a load its engine refused (every refusal but a missing folder)."""
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}


class RequestRefused(CraError):
    """A request the server answers with an error status and vLLM's error JSON."""

    def __init__(self, status: int, message: str, kind: str = "BadRequestError") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


class Model:
    """The base model and the adapters loaded on it; callers hold `lock` around every method."""

    def __init__(
        self,
        base: Path,
        names: list[str] | None = None,
        max_lora_rank: int | None = None,
        generation_config: Path | None = None,
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.max_lora_rank = max_lora_rank
        self.root = str(base)
        self.names = names or [self.root]
        self.tokenizer = AutoTokenizer.from_pretrained(base)
        self.stop_ids = _stop_ids(generation_config or base, self.tokenizer.eos_token_id)
        self.model: Any = AutoModelForCausalLM.from_pretrained(base)
        self.model.eval()
        self.adapters: dict[str, str] = {}
        self.broken: str | None = None
        self.lock = threading.Lock()

    def models(self) -> list[dict[str, Any]]:
        entries = [
            {"id": name, "object": "model", "root": self.root, "parent": None}
            for name in self.names
        ]
        entries += [
            {"id": name, "object": "model", "root": root, "parent": self.names[0]}
            for name, root in sorted(self.adapters.items())
        ]
        return entries

    def load(self, name: str, path: str) -> None:
        """Load the PEFT adapter folder `path` under `name`; a failed load leaves no trace of it,
        or, when it left LoRA layers in the base itself, the server refuses every later request."""
        from peft import PeftModel
        from safetensors import SafetensorError

        self._check_usable()
        if name in self.names:
            raise RequestRefused(
                400,
                f"The lora adapter '{name}' conflicts with a served base model.",
                "InvalidUserInput",
            )
        if name in self.adapters:
            raise RequestRefused(
                400,
                f"The lora adapter '{name}' has already been loaded. If you want to load the "
                "adapter in place, set 'load_inplace' to True.",
                "InvalidUserInput",
            )
        folder = Path(path)
        if not (folder / ADAPTER_CONFIG).is_file():
            raise RequestRefused(
                404, f"Loading lora {name} failed: No adapter found for {path}", "NotFoundError"
            )
        rank = _rank(folder / ADAPTER_CONFIG)
        if self.max_lora_rank is not None and rank > self.max_lora_rank:
            raise RequestRefused(
                500,
                f"{ADD_FAILED}LoRA rank {rank} is greater than max_lora_rank {self.max_lora_rank}.",
                "InternalServerError",
            )
        if not any((folder / weights).is_file() for weights in ADAPTER_WEIGHTS):
            raise RequestRefused(
                500, f"{ADD_FAILED}{path} doesn't contain tensors", "InternalServerError"
            )
        try:
            if isinstance(self.model, PeftModel):
                self.model.load_adapter(path, adapter_name=name)
            else:
                self.model = PeftModel.from_pretrained(self.model, path, adapter_name=name)
                self.model.eval()
        except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as exc:
            self._undo(name)
            raise RequestRefused(500, f"{ADD_FAILED}{exc}", "InternalServerError") from exc
        self.adapters[name] = path

    def _undo(self, name: str) -> None:
        from peft import PeftModel
        from peft.tuners.tuners_utils import BaseTunerLayer

        if isinstance(self.model, PeftModel):
            if name in self.model.peft_config:
                self.model.delete_adapter(name)
        elif any(isinstance(module, BaseTunerLayer) for module in self.model.modules()):
            self.broken = (
                f"the failed load of adapter {name} left LoRA layers in the base model; "
                f"restart the server"
            )

    def _check_usable(self) -> None:
        if self.broken is not None:
            raise RequestRefused(500, self.broken, "InternalServerError")

    def unload(self, name: str) -> None:
        """Drop adapter `name`; the last one goes with its LoRA layers, as peft serves no model
        without an adapter."""
        if name not in self.adapters:
            raise RequestRefused(
                404, f"The lora adapter '{name}' cannot be found.", "NotFoundError"
            )
        if len(self.adapters) == 1:
            self.model = self.model.unload()
        else:
            self.model.delete_adapter(name)
        del self.adapters[name]

    def complete(self, model: str, messages: Any, max_tokens: Any) -> dict[str, Any]:
        """Greedy decoding up to `max_tokens` new tokens or eos, the base with adapters off."""
        import torch

        self._check_usable()
        if model not in self.names and model not in self.adapters:
            raise RequestRefused(404, f"The model `{model}` does not exist.", "NotFoundError")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise RequestRefused(400, f"max_tokens must be at least 1, got {max_tokens}.")
        if not _chat_messages(messages):
            raise RequestRefused(
                400,
                "messages must be a non-empty list of {role, content} objects whose "
                "role and content are strings (the CPU stand-in takes no content parts)",
            )
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        inputs = self.tokenizer(text, return_tensors="pt")
        prompt_tokens = int(inputs["input_ids"].shape[1])
        options = {
            "max_new_tokens": max_tokens,
            "do_sample": False,
            "eos_token_id": self.stop_ids,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        with torch.no_grad():
            if model in self.adapters:
                self.model.set_adapter(model)
                output = self.model.generate(**inputs, **options)
            elif self.adapters:
                with self.model.disable_adapter():
                    output = self.model.generate(**inputs, **options)
            else:
                output = self.model.generate(**inputs, **options)
        generated = output[0, prompt_tokens:].tolist()
        stopped = bool(generated) and generated[-1] in self.stop_ids
        return {
            "id": f"chatcmpl-{time.monotonic_ns()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": self.tokenizer.decode(generated, skip_special_tokens=True),
                    },
                    "finish_reason": "stop" if stopped else "length",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(generated),
                "total_tokens": prompt_tokens + len(generated),
            },
        }


def _chat_messages(messages: Any) -> bool:
    return (
        isinstance(messages, list)
        and bool(messages)
        and all(
            isinstance(message, dict)
            and isinstance(message.get("role"), str)
            and isinstance(message.get("content"), str)
            for message in messages
        )
    )


def _stop_ids(folder: Path, tokenizer_eos: int | None) -> list[int]:
    """The tokens generation ends on, as vLLM reads them: the tokenizer's eos and the
    `eos_token_id` (one or a list) of `folder`'s generation_config.json when it has one."""
    ids = [] if tokenizer_eos is None else [tokenizer_eos]
    path = folder / "generation_config.json"
    try:
        eos = json.loads(path.read_text(encoding="utf-8")).get("eos_token_id")
    except FileNotFoundError:
        return ids
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise CraError(f"{path}: not a generation config: {exc}") from exc
    for token in [eos] if isinstance(eos, int) else eos or []:
        if token not in ids:
            ids.append(token)
    return ids


def parse_lora_module(value: str) -> tuple[str, str]:
    """One `--lora-modules` value as vLLM reads it: `NAME=PATH` when it holds an `=` and no
    comma, else a JSON object with `name` and `path`."""
    name: object
    path: object
    if "=" in value and "," not in value:
        name, _, path = value.partition("=")
    else:
        try:
            data = json.loads(value)
        except json.JSONDecodeError as exc:
            raise CraError(f"Invalid JSON format for --lora-modules: {value!r}: {exc}") from exc
        if not isinstance(data, dict) or set(data) - {"name", "path", "base_model_name"}:
            raise CraError(f"--lora-modules {value!r}: not an object of name and path")
        name, path = data.get("name"), data.get("path")
    if not isinstance(name, str) or not name or not isinstance(path, str) or not path:
        raise CraError(f"--lora-modules {value!r}: needs a name and a path")
    return name, path


def runtime_updates_allowed() -> bool:
    """vLLM's reading of `VLLM_ALLOW_RUNTIME_LORA_UPDATING`: without it the runtime LoRA
    endpoints are not routes at all."""
    value = os.environ.get(RUNTIME_UPDATES_ENV, "0").strip().lower()
    return value in ("1", "true")


def _rank(config: Path) -> int:
    try:
        rank = json.loads(config.read_text(encoding="utf-8")).get("r")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise RequestRefused(
            500, f"{ADD_FAILED}{config}: not an adapter config: {exc}", "InternalServerError"
        ) from exc
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise RequestRefused(
            500, f"{ADD_FAILED}{config}: r is {rank!r}, not a LoRA rank", "InternalServerError"
        )
    return rank


def _handler(model: Model, runtime_updates: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/v1/models":
                self._send(404, NOT_FOUND)
                return
            with model.lock:
                self._send(200, {"object": "list", "data": model.models()})

        def do_POST(self) -> None:
            routes = (*RUNTIME_LORA_ENDPOINTS, CHAT) if runtime_updates else (CHAT,)
            if self.path not in routes:
                self._send(404, NOT_FOUND)
                return
            try:
                body = self._body()
                with model.lock:
                    answer = self._answer(body)
            except RequestRefused as exc:
                self._error(exc)
                return
            self._send(200, answer)

        def _body(self) -> dict[str, Any]:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                body = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise RequestRefused(400, f"{self.path}: the body is not JSON: {exc}") from exc
            if not isinstance(body, dict):
                raise RequestRefused(400, f"{self.path}: the body is not a JSON object")
            return body

        def _string(self, body: dict[str, Any], key: str) -> str:
            value = body.get(key)
            if not isinstance(value, str) or not value:
                raise RequestRefused(400, f"{self.path}: field '{key}' must be a non-empty string")
            return value

        def _answer(self, body: dict[str, Any]) -> Any:
            if self.path == "/v1/load_lora_adapter":
                name = self._string(body, "lora_name")
                model.load(name, self._string(body, "lora_path"))
                return f"Success: LoRA adapter '{name}' added successfully."
            if self.path == "/v1/unload_lora_adapter":
                name = self._string(body, "lora_name")
                model.unload(name)
                return f"Success: LoRA adapter '{name}' removed successfully."
            return model.complete(
                self._string(body, "model"), body.get("messages"), body.get("max_tokens")
            )

        def _error(self, exc: RequestRefused) -> None:
            error = {"message": str(exc), "type": exc.kind, "param": None, "code": exc.status}
            self._send(exc.status, {"error": error})

        def _send(self, status: int, payload: Any) -> None:
            text = isinstance(payload, str)
            data = (payload if text else json.dumps(payload)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain" if text else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            print(f"{self.address_string()} {format % args}", flush=True)

    return Handler


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.serving.cpu_server")
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--served-model-name", nargs="+", default=None, metavar="NAME")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--lora-modules", nargs="*", default=[], metavar="NAME=PATH|JSON")
    parser.add_argument("--max-lora-rank", type=int, default=None)
    parser.add_argument("--generation-config", type=Path, default=None)
    parser.add_argument("--ready-file", type=Path)
    args = parser.parse_args(argv)
    base = args.base.absolute()
    if not (base / "config.json").is_file():
        print(f"error: {base}: not a model folder (no config.json)", file=sys.stderr)
        return 2
    try:
        modules = [parse_lora_module(module) for module in args.lora_modules]
    except CraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    os.environ.update(OFFLINE_ENV)
    signal.signal(signal.SIGTERM, _stop)
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)
    model = Model(base, args.served_model_name, args.max_lora_rank, args.generation_config)
    for name, path in modules:
        try:
            model.load(name, path)
        except RequestRefused as exc:
            print(f"error: --lora-modules {name} ({path}): {exc}", file=sys.stderr)
            return 2
    server = ThreadingHTTPServer((args.host, args.port), _handler(model, runtime_updates_allowed()))
    host, port = server.socket.getsockname()[:2]
    url = f"http://{host}:{port}"
    if args.ready_file is not None:
        partial = args.ready_file.with_name(args.ready_file.name + ".partial")
        partial.write_text(url, encoding="utf-8")
        partial.rename(args.ready_file)
    print(f"serving {base} at {url}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


@contextmanager
def cpu_server(
    base: Path,
    log_path: Path,
    adapters: Mapping[str, Path] | None = None,
    port: int = 0,
    timeout_s: float = 120.0,
    max_lora_rank: int | None = None,
    runtime_updates: bool = True,
) -> Iterator[str]:
    """Run the stand-in on `base` with `adapters` preloaded; yields its URL, stops it after.
    `runtime_updates`: whether it is started as `cra serve` starts vLLM, with its runtime LoRA
    endpoints."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    ready = log_path.with_name(log_path.name + ".url")
    ready.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "engine.serving.cpu_server", "--base", str(base)]
    argv += ["--port", str(port), "--ready-file", str(ready)]
    if adapters:
        argv += ["--lora-modules", *(lora_module(name, path) for name, path in adapters.items())]
    if max_lora_rank is not None:
        argv += ["--max-lora-rank", str(max_lora_rank)]
    env = {key: value for key, value in os.environ.items() if key != RUNTIME_UPDATES_ENV}
    if runtime_updates:
        env[RUNTIME_UPDATES_ENV] = "True"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            argv,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout_s
        while not ready.exists():
            if proc.poll() is not None:
                raise ServingError(
                    f"the CPU model server on {base} exited ({proc.returncode}) before it "
                    f"served: {_tail(log_path)}"
                )
            if time.monotonic() > deadline:
                raise ServingError(
                    f"the CPU model server on {base} did not start within {timeout_s:g}s: "
                    f"{_tail(log_path)}"
                )
            time.sleep(0.05)
        yield ready.read_text(encoding="utf-8")
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        ready.unlink(missing_ok=True)


def _tail(path: Path, lines: int = 8) -> str:
    text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return " | ".join(text[-lines:]) or "(no output)"


if __name__ == "__main__":
    sys.exit(main())
