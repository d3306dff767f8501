"""The only door from the edge to the cloud.

Every request is serialized here, written to the privacy ledger byte for byte, and only
then sent. No other edge module may open a connection toward the cloud; a test fails if
one does.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from shared_protocol import (
    InfoResponse,
    SessionOpenRequest,
    SessionOpenResponse,
    SessionStepRequest,
    SessionStepResponse,
    SketchRequest,
    SketchResponse,
)

Reply = TypeVar("Reply", bound=BaseModel)


class CloudError(RuntimeError):
    """Any failure to get an answer from the cloud: down, timeout, or an error status."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class CloudUnavailable(CloudError):
    """The cloud could not be reached in time (connection refused, timeout)."""


class CloudRejected(CloudError):
    """The cloud answered with an error status."""


class Ledger(Protocol):
    """What the outbound client needs of the ledger (see edge_agent.store)."""

    def begin(
        self,
        *,
        user_id: str | None,
        mode: str,
        endpoint: str,
        method: str,
        payload: bytes,
        guard_policy: str | None,
        guard_findings: list | dict | None,
        request_id: str | None,
    ) -> int: ...

    def finish(
        self,
        entry_id: int,
        *,
        status: str,
        http_status: int | None,
        bytes_down: int,
        duration_ms: float,
        error: str | None = None,
        cloud_session: str | None = None,
    ) -> None: ...


@dataclass
class CloudUsage:
    """What one edge request cost on the wire; filled in by every call."""

    calls: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    wait_s: float = 0.0
    errors: list[str] = field(default_factory=list)


@dataclass
class GuardRecord:
    policy: str
    findings: list | dict | None


class CloudClient:
    def __init__(
        self,
        base_url: str,
        *,
        token: str | None,
        ledger: Ledger,
        timeout_s: float = 30.0,
        connect_timeout_s: float = 3.0,
        retries: int = 2,
        backoff_s: float = 0.25,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff_s = backoff_s
        self._ledger = ledger
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    # --- endpoints -------------------------------------------------------------------

    def info(self) -> InfoResponse:
        return self._call(
            "GET", "/v1/info", None, InfoResponse, user_id=None, mode="info", usage=CloudUsage()
        )

    def sketch(
        self,
        req: SketchRequest,
        *,
        user_id: str,
        usage: CloudUsage,
        guard: GuardRecord | None = None,
    ) -> SketchResponse:
        return self._call(
            "POST",
            "/v1/sketch",
            req,
            SketchResponse,
            user_id=user_id,
            mode="sketch",
            usage=usage,
            guard=guard,
        )

    def open_session(
        self,
        req: SessionOpenRequest,
        *,
        user_id: str,
        mode: str,
        usage: CloudUsage,
        guard: GuardRecord | dict | None = None,
    ) -> SessionOpenResponse:
        return self._call(
            "POST",
            "/v1/sessions",
            req,
            SessionOpenResponse,
            user_id=user_id,
            mode=mode,
            usage=usage,
            guard=_as_record(guard),
        )

    def step(
        self,
        session_id: str,
        req: SessionStepRequest,
        *,
        user_id: str,
        mode: str,
        usage: CloudUsage,
        guard: GuardRecord | dict | None = None,
    ) -> SessionStepResponse:
        return self._call(
            "POST",
            f"/v1/sessions/{session_id}/step",
            req,
            SessionStepResponse,
            user_id=user_id,
            mode=mode,
            usage=usage,
            guard=_as_record(guard),
            retry=False,
        )

    def close_session(self, session_id: str, *, user_id: str, mode: str, usage: CloudUsage) -> None:
        self._call(
            "DELETE",
            f"/v1/sessions/{session_id}",
            None,
            None,
            user_id=user_id,
            mode=mode,
            usage=usage,
            retry=False,
        )

    # --- the one place bytes leave ---------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        body: BaseModel | None,
        reply_type: type[Reply] | None,
        *,
        user_id: str | None,
        mode: str,
        usage: CloudUsage,
        guard: GuardRecord | None = None,
        retry: bool = True,
    ) -> Reply | None:
        payload = body.model_dump_json(exclude_none=True).encode() if body is not None else b""
        attempts = 1 + (self.retries if retry else 0)
        last_error: CloudError | None = None
        for attempt in range(attempts):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            entry = self._ledger.begin(
                user_id=user_id,
                mode=mode,
                endpoint=path,
                method=method,
                payload=payload,
                guard_policy=guard.policy if guard else None,
                guard_findings=guard.findings if guard else None,
                request_id=uuid.uuid4().hex,
            )
            started = time.perf_counter()
            usage.calls += 1
            usage.bytes_up += len(payload)
            try:
                response = self._http.request(method, path, content=payload or None)
            except httpx.HTTPError as exc:
                elapsed = time.perf_counter() - started
                usage.wait_s += elapsed
                last_error = CloudUnavailable(f"cloud unreachable at {self.base_url}: {exc!r}")
                self._ledger.finish(
                    entry,
                    status="error",
                    http_status=None,
                    bytes_down=0,
                    duration_ms=elapsed * 1000,
                    error=str(last_error),
                )
                usage.errors.append(str(last_error))
                if isinstance(exc, httpx.ReadTimeout):
                    break  # a slow cloud stays slow: retrying would only double the wait
                continue
            elapsed = time.perf_counter() - started
            usage.wait_s += elapsed
            usage.bytes_down += len(response.content)
            ok = response.status_code < 400
            error = None if ok else _error_message(response)
            self._ledger.finish(
                entry,
                status="ok" if ok else "error",
                http_status=response.status_code,
                bytes_down=len(response.content),
                duration_ms=elapsed * 1000,
                error=error,
                cloud_session=_opened_session(method, path, response) if ok else None,
            )
            if ok:
                return _parse(response, reply_type)
            last_error = CloudRejected(
                f"cloud answered {response.status_code}: {error}",
                status=response.status_code,
                code=_error_code(response),
            )
            usage.errors.append(str(last_error))
            if response.status_code < 500:
                break  # the same request would be rejected again
        assert last_error is not None
        raise last_error


def _as_record(guard: GuardRecord | dict | None) -> GuardRecord | None:
    if guard is None or isinstance(guard, GuardRecord):
        return guard
    return GuardRecord(policy=str(guard.get("policy")), findings=guard.get("findings"))


def _parse(response: httpx.Response, reply_type: type[Reply] | None) -> Reply | None:
    if reply_type is None:
        return None
    try:
        return reply_type.model_validate_json(response.content)
    except ValidationError as exc:
        raise CloudRejected(f"cloud sent a malformed {reply_type.__name__}: {exc}") from exc


def _opened_session(method: str, path: str, response: httpx.Response) -> str | None:
    """The id of the session a POST /v1/sessions opened: the ledger keeps it, so a
    session that a crash leaves open can be closed when the edge starts again."""
    if (method, path) != ("POST", "/v1/sessions"):
        return None
    try:
        return str(response.json()["session_id"])
    except (ValueError, KeyError, TypeError):
        return None


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]


def _error_code(response: httpx.Response) -> str | None:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None
