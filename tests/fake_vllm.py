"""A local stand-in for vLLM's OpenAI-compatible server: `/v1/models` and the LoRA endpoints.

It serves one base, keeps the adapters loaded at runtime, and answers like vLLM 0.34.0: an
adapter in `/v1/models` has `root` (its folder) and `parent` (the base); errors are vLLM's nested
error JSON (`{"error": {"message", "type", "param", "code"}}`) with its codes: a name already
loaded or the base's served name 400, a missing adapter folder 404, a load the engine refuses (a
rank above the limit, out of memory) 500. A path that is no route, and the LoRA endpoints when
the server was started without runtime updates, answer `{"detail": "Not Found"}`, as vLLM's web
framework does. Tests can make a named load fail, lower the rank it accepts, or accept a load it
then does not list. Every load request is recorded. With `answer` set, `/v1/chat/completions`
answers a served model's requests with `answer(model, messages)`.
"""

import json
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ADD_FAILED = "Call to add_lora method failed: "
BASE_VOCAB = {"[UNK]": 0, "<|endoftext|>": 1, "<|im_end|>": 2}


def write_base_tokenizer(folder: Path) -> None:
    """A real tokenizer.json, as much of one as serving reads: its end of turn (id 2) differs
    from its eos (id 1)."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel

    Tokenizer(WordLevel(BASE_VOCAB, unk_token="[UNK]")).save(str(folder / "tokenizer.json"))


class QuietServer(ThreadingHTTPServer):
    """Drops the error of answering a client that went away (a killed job was asking): the
    standard server prints it to stderr, where a CliRunner invoked meanwhile captures it."""

    def handle_error(self, request: object, client_address: object) -> None:
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class FakeVllm:
    """Runs in a thread on 127.0.0.1; use as a context manager."""

    def __init__(
        self, base: str, max_lora_rank: int = 16, runtime_updates: bool = True, port: int = 0
    ) -> None:
        self.base = base
        self.runtime_updates = runtime_updates
        self.max_lora_rank = max_lora_rank
        self.loaded: dict[str, str] = {}
        self.fail_loads: set[str] = set()
        self.unlisted: set[str] = set()
        self.load_requests: list[str] = []
        self.answer: Callable[[str, list[dict[str, str]]], str] | None = None
        self._server = QuietServer(("127.0.0.1", port), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "FakeVllm":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def models(self) -> list[dict[str, Any]]:
        entries = [{"id": self.base, "object": "model", "root": self.base, "parent": None}]
        entries += [
            {"id": name, "object": "model", "root": path, "parent": self.base}
            for name, path in sorted(self.loaded.items())
            if name not in self.unlisted
        ]
        return entries

    def load(self, name: str, path: str) -> tuple[int, str | None]:
        self.load_requests.append(name)
        if name == self.base:
            return 400, f"The lora adapter '{name}' conflicts with a served base model."
        if name in self.loaded:
            return 400, (
                f"The lora adapter '{name}' has already been loaded. If you want to load the "
                "adapter in place, set 'load_inplace' to True."
            )
        config = Path(path) / "adapter_config.json"
        if not config.is_file():
            return 404, f"Loading lora {name} failed: No adapter found for {path}"
        if name in self.fail_loads:
            return 500, f"{ADD_FAILED}CUDA out of memory"
        rank = json.loads(config.read_text())["r"]
        if rank > self.max_lora_rank:
            return 500, (
                f"{ADD_FAILED}LoRA rank {rank} is greater than max_lora_rank {self.max_lora_rank}."
            )
        self.loaded[name] = path
        return 200, None

    def unload(self, name: str) -> tuple[int, str | None]:
        if self.loaded.pop(name, None) is None:
            return 404, f"The lora adapter '{name}' cannot be found."
        return 200, None


def _handler(fake: FakeVllm) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/v1/models":
                self._send(404, "application/json", {"detail": "Not Found"})
                return
            self._send(200, "application/json", {"object": "list", "data": fake.models()})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            lora_routes = ("/v1/load_lora_adapter", "/v1/unload_lora_adapter")
            if self.path in lora_routes and not fake.runtime_updates:
                self._send(404, "application/json", {"detail": "Not Found"})
                return
            if self.path == "/v1/load_lora_adapter":
                status, error = fake.load(body["lora_name"], body["lora_path"])
                done = f"Success: LoRA adapter '{body['lora_name']}' added successfully."
            elif self.path == "/v1/chat/completions" and fake.answer is not None:
                self._chat(body)
                return
            elif self.path == "/v1/unload_lora_adapter":
                status, error = fake.unload(body["lora_name"])
                done = f"Success: LoRA adapter '{body['lora_name']}' removed successfully."
            else:
                self._send(404, "application/json", {"detail": "Not Found"})
                return
            if error is not None:
                self._error(status, error)
            else:
                self._send(200, "text/plain", done)

        def _chat(self, body: dict[str, Any]) -> None:
            model = body["model"]
            if model != fake.base and model not in fake.loaded:
                self._error(404, f"The model `{model}` does not exist.")
                return
            assert fake.answer is not None
            content = fake.answer(model, body["messages"])
            choice = {"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            usage = {"prompt_tokens": 10, "completion_tokens": 20}
            self._send(200, "application/json", {"choices": [choice], "usage": usage})

        def _error(self, status: int, message: str) -> None:
            kind = {404: "NotFoundError", 500: "InternalServerError"}.get(status, "BadRequestError")
            error = {"message": message, "type": kind, "param": None, "code": status}
            self._send(status, "application/json", {"error": error})

        def _send(self, status: int, kind: str, payload: Any) -> None:
            data = (json.dumps(payload) if kind == "application/json" else payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
