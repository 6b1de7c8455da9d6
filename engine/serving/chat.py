"""One chat completion from an OpenAI-compatible server (vLLM, or the CPU stand-in).

Temperature 0, no retries, environment proxies ignored (the server is on the operator's own
network). Every failure is a `ServingError` naming the server and the model.
"""

import http.client
import json
import urllib.error
import urllib.request
from dataclasses import dataclass

from engine.serving.vllm_client import ServingError, server_message

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Completion:
    """The answer's text, its token counts and why generation stopped."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None


def chat(
    base_url: str,
    model: str,
    messages: list[dict[str, str]],
    max_tokens: int,
    timeout_s: float,
    seed: int = 0,
) -> Completion:
    """Ask `model` at `base_url` (scheme://host:port) for one answer to `messages`."""
    url = f"{base_url.rstrip('/')}/v1/chat/completions"
    payload = {
        "model": model,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": 0,
        "seed": seed,
    }
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    where = f"{url} (model {model})"
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            raise ServingError(f"{where}: HTTP {exc.code}: {_message(exc)}") from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise ServingError(f"{where}: no answer within {timeout_s:g}s") from exc
        raise ServingError(f"{where}: cannot reach the server: {exc.reason}") from exc
    except TimeoutError as exc:
        raise ServingError(f"{where}: no answer within {timeout_s:g}s") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise ServingError(f"{where}: the connection failed: {exc!r}") from exc
    try:
        data = json.loads(body)
        choice = data["choices"][0]
        usage = data["usage"]
        return Completion(
            text=choice["message"]["content"],
            prompt_tokens=int(usage["prompt_tokens"]),
            completion_tokens=int(usage["completion_tokens"]),
            finish_reason=choice.get("finish_reason"),
        )
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, IndexError, TypeError) as exc:
        raise ServingError(f"{where}: not a chat completion ({exc!r}): {body[:200]!r}") from exc


def _message(exc: urllib.error.HTTPError) -> str:
    try:
        return server_message(exc)
    except (OSError, http.client.HTTPException) as read_exc:
        return f"(the body could not be read: {read_exc!r})"
