"""A CPU stand-in for vLLM's OpenAI-compatible server, for the tiny test model and the demo.

`python -m engine.serving.cpu_server --base PATH [--lora-modules NAME=PATH ...] --port N
[--ready-file FILE]` serves one base with transformers + peft on the CPU and answers the
endpoints the console uses, shaped as vLLM answers them: `/v1/models` (the base's id is its
folder's path; an adapter has `root` and `parent`), `/v1/load_lora_adapter`,
`/v1/unload_lora_adapter` and `/v1/chat/completions`. Decoding is always greedy, whatever the
temperature: the stand-in is deterministic, so an eval run's answers repeat. Requests are
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

from engine.serving.vllm_client import ServingError

ADAPTER_CONFIG = "adapter_config.json"
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}


class _Refused(Exception):
    """A request the server answers with an error status and vLLM's error JSON."""

    def __init__(self, status: int, message: str, kind: str = "BadRequestError") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


class Model:
    """The base model and the adapters loaded on it; every method runs under one lock."""

    def __init__(self, base: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.base_id = str(base)
        self.tokenizer = AutoTokenizer.from_pretrained(base)
        self.model: Any = AutoModelForCausalLM.from_pretrained(base)
        self.model.eval()
        self.adapters: dict[str, str] = {}
        self.lock = threading.Lock()

    def models(self) -> list[dict[str, Any]]:
        entries = [{"id": self.base_id, "object": "model", "root": self.base_id, "parent": None}]
        entries += [
            {"id": name, "object": "model", "root": root, "parent": self.base_id}
            for name, root in sorted(self.adapters.items())
        ]
        return entries

    def load(self, name: str, path: str) -> None:
        from peft import PeftModel

        if name in self.adapters:
            raise _Refused(400, f"The lora adapter '{name}' has already been loaded.")
        if not (Path(path) / ADAPTER_CONFIG).is_file():
            raise _Refused(400, f"No adapter found for {path}")
        if self.adapters:
            self.model.load_adapter(path, adapter_name=name)
        else:
            self.model = PeftModel.from_pretrained(self.model, path, adapter_name=name)
            self.model.eval()
        self.adapters[name] = path

    def unload(self, name: str) -> None:
        if name not in self.adapters:
            raise _Refused(404, f"The lora adapter '{name}' cannot be found.", "NotFoundError")
        self.model.delete_adapter(name)
        del self.adapters[name]

    def complete(self, model: str, messages: list[dict[str, str]], max_tokens: int) -> dict:
        import torch

        if model != self.base_id and model not in self.adapters:
            raise _Refused(404, f"The model `{model}` does not exist.", "NotFoundError")
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        inputs = self.tokenizer(text, return_tensors="pt")
        prompt_tokens = int(inputs["input_ids"].shape[1])
        options = {
            "max_new_tokens": max_tokens,
            "do_sample": False,
            "eos_token_id": self.tokenizer.eos_token_id,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        with torch.no_grad():
            if model == self.base_id and self.adapters:
                with self.model.disable_adapter():
                    output = self.model.generate(**inputs, **options)
            else:
                if self.adapters:
                    self.model.set_adapter(model)
                output = self.model.generate(**inputs, **options)
        generated = output[0, prompt_tokens:].tolist()
        stopped = bool(generated) and generated[-1] == self.tokenizer.eos_token_id
        return {
            "id": f"chatcmpl-{time.monotonic_ns()}",
            "object": "chat.completion",
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


def _handler(model: Model) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/v1/models":
                self._error(_Refused(404, f"Not Found: {self.path}", "NotFoundError"))
                return
            with model.lock:
                self._send(200, {"object": "list", "data": model.models()})

        def do_POST(self) -> None:
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with model.lock:
                    self._send(200, self._answer(body))
            except _Refused as exc:
                self._error(exc)
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                self._error(_Refused(400, f"bad request to {self.path}: {exc!r}"))

        def _answer(self, body: dict[str, Any]) -> Any:
            if self.path == "/v1/load_lora_adapter":
                model.load(body["lora_name"], body["lora_path"])
                return f"Success: LoRA adapter '{body['lora_name']}' added successfully."
            if self.path == "/v1/unload_lora_adapter":
                model.unload(body["lora_name"])
                return f"Success: LoRA adapter '{body['lora_name']}' removed successfully."
            if self.path == "/v1/chat/completions":
                return model.complete(body["model"], body["messages"], int(body["max_tokens"]))
            raise _Refused(404, f"Not Found: {self.path}", "NotFoundError")

        def _error(self, exc: _Refused) -> None:
            payload = {"object": "error", "message": str(exc), "type": exc.kind, "code": exc.status}
            self._send(exc.status, payload)

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
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--lora-modules", nargs="*", default=[], metavar="NAME=PATH")
    parser.add_argument("--ready-file", type=Path)
    args = parser.parse_args(argv)
    os.environ.update(OFFLINE_ENV)
    signal.signal(signal.SIGTERM, _stop)
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)
    base = args.base.resolve()
    if not (base / "config.json").is_file():
        print(f"error: {base}: not a model folder (no config.json)", file=sys.stderr)
        return 2
    model = Model(base)
    for module in args.lora_modules:
        name, sep, path = module.partition("=")
        if not sep or not name or not path:
            print(f"error: --lora-modules {module!r} is not NAME=PATH", file=sys.stderr)
            return 2
        try:
            model.load(name, path)
        except _Refused as exc:
            print(f"error: --lora-modules {module!r}: {exc}", file=sys.stderr)
            return 2
    server = ThreadingHTTPServer((args.host, args.port), _handler(model))
    host, port = server.server_address[:2]
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
) -> Iterator[str]:
    """Run the stand-in on `base` with `adapters` preloaded; yields its URL, stops it after."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    ready = log_path.with_name(log_path.name + ".url")
    ready.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "engine.serving.cpu_server", "--base", str(base)]
    argv += ["--port", str(port), "--ready-file", str(ready)]
    if adapters:
        argv += ["--lora-modules", *(f"{name}={path}" for name, path in adapters.items())]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            argv,
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
