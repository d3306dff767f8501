"""One task in one mode, through the real path, with what it cost and what it sent.

- Edge modes (``local``, ``cogenesis-sketch``, ``cogenesis-logits``) run on the edge's
  own gateway in process: the user's context from the edge's store, the guard, the
  outbound client and its ledger, the small model, the real cloud over HTTP. What the
  cloud could read is taken from the ledger rows the request wrote.
- Cloud modes call the cloud's OpenAI-compatible chat route directly, as an app that
  skips the gateway would: ``cloud-no-context`` sends the task alone;
  ``cloud-with-context`` sends the private prompt (profile and writing history), the
  paper's upper bound, which exists only behind an explicit flag.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

from edge_agent.job import MODES as EDGE_MODES
from edge_agent.openai_types import ChatCompletionRequest
from edge_agent.prompts import PUBLIC_SYSTEM, private_messages
from edge_agent.store.ledger import MAX_PAGE
from research.evaluate.leakage import ledger_payloads, measure_leakage, readable_text

CLOUD_MODES = ("cloud-no-context", "cloud-with-context")
ALL_MODES = (*EDGE_MODES, *CLOUD_MODES)
CONTEXT_TO_CLOUD = "cloud-with-context"


@dataclass(frozen=True)
class Answer:
    text: str
    cost: dict[str, Any]  # cloud_calls, bytes_up, bytes_down, seconds
    leakage: dict[str, Any]
    sketch_points: list[str] | None = None
    degraded: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "cost": self.cost,
            "leakage": self.leakage,
            "sketch_points": self.sketch_points,
            "degraded": self.degraded,
        }


class ModeRunner:
    def __init__(
        self,
        services: Any,  # edge_agent.app.EdgeServices
        *,
        cloud_url: str,
        cloud_token: str | None,
        cloud_model: str,
        max_tokens: int,
    ) -> None:
        self.services = services
        self.max_tokens = max_tokens
        self.cloud_model = cloud_model
        headers = {"content-type": "application/json"}
        if cloud_token:
            headers["authorization"] = f"Bearer {cloud_token}"
        self._http = httpx.Client(base_url=cloud_url.rstrip("/"), headers=headers, timeout=900)

    def close(self) -> None:
        self._http.close()

    def run(self, mode: str, record: dict, user_id: str) -> Answer:
        task = str(record["conversations"][0]["value"]).strip()
        ctx = self.services.store.profiles.load_context(user_id)
        if mode in EDGE_MODES:
            return self._edge(mode, record, user_id, ctx, task)
        if mode == "cloud-no-context":
            messages = [
                {"role": "system", "content": PUBLIC_SYSTEM},
                {"role": "user", "content": task},
            ]
        elif mode == CONTEXT_TO_CLOUD:
            messages = private_messages(ctx, task, None)
        else:
            raise ValueError(f"unknown mode {mode!r}")
        return self._cloud(messages, record)

    def _edge(self, mode: str, record: dict, user_id: str, ctx: Any, task: str) -> Answer:
        ledger = self.services.store.ledger
        newest, _ = ledger.query(user_id=user_id, limit=1)
        watermark = newest[0].id if newest else 0
        pieces: list[str] = []
        # The request an app would send, turned into a job by the edge's own code.
        request = ChatCompletionRequest(
            model=mode,
            messages=[{"role": "user", "content": task}],
            user=user_id,
            max_tokens=self.max_tokens,
            temperature=0,
            seed=0,
        )
        job = request.to_job(ctx, request.conversation(), self.services.settings)
        report = self.services.gateway.execute(job, pieces.append)
        rows, _ = ledger.query(user_id=user_id, limit=MAX_PAGE)
        sent = ledger_payloads([r for r in rows if r.id > watermark])
        with self.services.pool.acquire() as slm:
            readable = readable_text(sent, slm.detokenize)
        return Answer(
            text="".join(pieces),
            cost={
                "cloud_calls": report.cloud_calls,
                "bytes_up": report.bytes_up,
                "bytes_down": report.bytes_down,
                "seconds": report.total_s,
                "completion_tokens": report.completion_tokens,
            },
            leakage=measure_leakage(record, readable),
            sketch_points=report.sketch_points,
            degraded=report.degraded,
        )

    def _cloud(self, messages: list[dict[str, str]], record: dict) -> Answer:
        body = json.dumps(
            {
                "model": self.cloud_model,
                "messages": messages,
                "max_tokens": self.max_tokens,
                "temperature": 0,
                "seed": 0,
            },
            ensure_ascii=False,  # the bytes a client sends, names readable as written
        ).encode("utf-8")
        started = time.perf_counter()
        try:
            response = self._http.post("/v1/chat/completions", content=body)
        except httpx.HTTPError as exc:
            raise RuntimeError(f"the cloud's chat route did not answer: {exc}") from exc
        seconds = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"the cloud answered {response.status_code}: {response.text[:200]}")
        reply = response.json()
        return Answer(
            text=reply["choices"][0]["message"]["content"] or "",
            cost={
                "cloud_calls": 1,
                "bytes_up": len(body),
                "bytes_down": len(response.content),
                "seconds": round(seconds, 4),
                "completion_tokens": reply.get("usage", {}).get("completion_tokens", 0),
            },
            leakage=measure_leakage(record, body.decode("utf-8")),
        )
