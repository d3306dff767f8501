"""Any OpenAI-compatible chat endpoint, with a cache of its answers on disk.

The dataset pipeline and the judge call an LLM through this: this project's cloud
(`POST /v1/chat/completions`), vLLM's server, or a hosted API. Every answer is kept in
a JSONL cache keyed by the exact request, so a rerun never sends a request twice.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai

from research.jsonl import JsonlTable


class LlmError(RuntimeError):
    """The endpoint could not give an answer (unreachable, refused, bad model)."""


@dataclass(frozen=True)
class Reply:
    text: str
    finish_reason: str | None
    cached: bool = False


def api_key_from_env(variable: str | None) -> str:
    """The key in ``variable``; without one, OPENAI_API_KEY or a placeholder (a local
    server without auth ignores it, and the OpenAI client insists on some key)."""
    if variable:
        value = os.environ.get(variable, "").strip()
        if not value:
            raise LlmError(f"the environment variable {variable} (--api-key-env) is not set")
        return value
    return os.environ.get("OPENAI_API_KEY", "").strip() or "no-key"


class ChatLlm:
    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str,
        cache_path: str | Path | None = None,
        timeout_s: float = 600.0,
        max_retries: int = 2,
    ) -> None:
        self.model = model
        self.base_url = base_url
        # The client retries connection errors, 429 and 5xx with backoff by itself.
        self._client = openai.OpenAI(
            base_url=_v1(base_url), api_key=api_key, timeout=timeout_s, max_retries=max_retries
        )
        self.cache = JsonlTable(cache_path) if cache_path else None
        self.requests_sent = 0

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        seed: int | None = None,
        stop: list[str] | None = None,
    ) -> Reply:
        params: dict[str, Any] = {"max_tokens": max_tokens, "temperature": temperature}
        if seed is not None:
            params["seed"] = seed
        if stop:
            params["stop"] = stop
        key = request_key(self.model, messages, params)
        if self.cache is not None and key in self.cache:
            hit = self.cache.get(key)
            return Reply(hit["text"], hit.get("finish_reason"), cached=True)
        try:
            answer = self._client.chat.completions.create(
                model=self.model, messages=messages, **params
            )
        except openai.APIStatusError as exc:
            raise LlmError(f"{self.base_url} answered {exc.status_code}: {_message(exc)}") from exc
        except openai.APIError as exc:  # connection refused, timeout
            raise LlmError(f"{self.base_url}: {exc}") from exc
        self.requests_sent += 1
        choice = answer.choices[0]
        reply = Reply(choice.message.content or "", choice.finish_reason)
        if self.cache is not None:
            self.cache.put(key, {"text": reply.text, "finish_reason": reply.finish_reason})
        return reply


def request_key(model: str, messages: list[dict[str, str]], params: dict[str, Any]) -> str:
    blob = json.dumps([model, messages, params], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def _v1(base_url: str) -> str:
    """Accept both 'http://host:port' and 'http://host:port/v1'."""
    url = base_url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return str(exc.message)
