"""The `openai` pipeline: one chat completion from an OpenAI-compatible endpoint.

The request's `model` is the task's model: vLLM serving LoRA adapters picks the adapter by that
name, per request. The messages are the built-in prompt's; temperature and seed come from the
task, `max_tokens` from the config. One POST, with no retries and no fallback; environment
proxy settings are ignored, since the endpoint is on the operator's own network. The timeout
bounds connecting and each wait for data (a non-streaming answer arrives all at once).

Every failure is a `PipelineResult` with the error and the raw body (or the model's answer)
kept; `malformed` is set only when the endpoint answered and the answer is not a valid plan.
"""

import http.client
import json
import urllib.error
import urllib.request

from pydantic import BaseModel, Field, ValidationError

from engine.core.config import OpenAIPipelineConfig
from engine.core.errors import validation_lines
from engine.harness.pipeline import PipelineResult, PlannerTask
from engine.harness.prompt import MalformedOutput, build_messages, parse_output

ERROR_BODY_CHARS = 500


class _Message(BaseModel):
    content: str


class _Choice(BaseModel):
    message: _Message
    finish_reason: str | None = None


class _Usage(BaseModel):
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)


class _Completion(BaseModel):
    """The part of a chat completions answer the pipeline reads (other keys are ignored)."""

    choices: list[_Choice] = Field(min_length=1)
    usage: _Usage


class _NoAnswer(Exception):
    """The endpoint could not be reached or did not answer in time."""


def propose_openai(config: OpenAIPipelineConfig, task: PlannerTask) -> PipelineResult:
    """Ask the endpoint at `config.base_url` for `task`'s plan and edits."""
    url = f"{config.base_url.rstrip('/')}/chat/completions"
    payload = {
        "model": task.model,
        "messages": build_messages(task),
        "temperature": task.temperature,
        "seed": task.seed,
        "max_tokens": config.max_tokens,
    }
    try:
        status, body = _post(url, payload, config.timeout_s)
    except _NoAnswer as exc:
        return PipelineResult(output=None, raw="", error=str(exc))
    text = body.decode("utf-8", "replace")
    if status != 200:
        return PipelineResult(
            output=None, raw=text, error=f"{url} answered HTTP {status}: {text[:ERROR_BODY_CHARS]}"
        )
    try:
        completion = _Completion.model_validate(json.loads(body))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return PipelineResult(output=None, raw=text, error=f"{url} answered with no JSON: {exc}")
    except ValidationError as exc:
        lines = validation_lines(url, exc)
        return PipelineResult(
            output=None, raw=text, error=f"the answer is not a chat completion:\n{lines}"
        )
    return _result(completion, config.max_tokens)


def _post(url: str, payload: dict[str, object], timeout_s: float) -> tuple[int, bytes]:
    """POST `payload` as JSON; the status and body, for error statuses too."""
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode("utf-8"),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout_s) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, _error_body(exc)
    except TimeoutError as exc:
        raise _NoAnswer(f"{url} did not answer within {timeout_s:g}s") from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise _NoAnswer(f"{url} did not answer within {timeout_s:g}s") from exc
        raise _NoAnswer(f"cannot reach {url}: {exc.reason}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise _NoAnswer(f"the connection to {url} failed: {exc!r}") from exc


def _error_body(exc: urllib.error.HTTPError) -> bytes:
    try:
        return exc.read()
    except (OSError, http.client.HTTPException) as read_exc:
        raise _NoAnswer(
            f"{exc.url} answered HTTP {exc.code}, then the body could not be read: {read_exc!r}"
        ) from read_exc


def _result(completion: _Completion, max_tokens: int) -> PipelineResult:
    choice = completion.choices[0]
    prompt_tokens = completion.usage.prompt_tokens
    completion_tokens = completion.usage.completion_tokens
    try:
        output = parse_output(choice.message.content)
    except MalformedOutput as exc:
        cut = f" (the answer stopped at max_tokens={max_tokens})"
        return PipelineResult(
            output=None,
            raw=choice.message.content,
            error=f"{exc}{cut if choice.finish_reason == 'length' else ''}",
            malformed=True,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )
    return PipelineResult(
        output=output,
        raw=choice.message.content,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
    )
