"""The only door from the edge to the cloud.

Every request is serialized here, written to the privacy ledger byte for byte, and only
then sent. No other edge module may open a connection toward the cloud; a test fails if
one does.

A busy cloud answers 429 or 503 with Retry-After before doing any work; the client waits
that long and sends again while its own timeout (``timeout_s``, from the first send)
allows, for any call, steps included. The streamed outline (``sketch_stream``) is
retried the same way until its first event arrives, never after. Failures come in
three kinds the user is told apart (``CloudError.reason``):

    CloudError                      "cloud error": any failure to get an answer
    ├── CloudUnavailable            no answer at all
    │   ├── CloudUnreachable        "cloud unreachable": no connection, or a gateway's 502
    │   └── CloudTimedOut           "cloud timed out": no answer within the timeout, or 504
    └── CloudRejected               an error status
        └── CloudBusy               "cloud busy": 429/503 not over within the timeout
"""

from __future__ import annotations

import email.utils
import math
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import httpx
from httpx_sse import EventSource, SSEError
from pydantic import BaseModel, TypeAdapter, ValidationError

from shared_protocol import (
    InfoResponse,
    SessionOpenRequest,
    SessionOpenResponse,
    SessionStepRequest,
    SessionStepResponse,
    SketchDoneEvent,
    SketchErrorEvent,
    SketchEvent,
    SketchPointEvent,
    SketchRequest,
    SketchResponse,
)

Reply = TypeVar("Reply", bound=BaseModel)
Attempt = TypeVar("Attempt")
OutlineEvent = SketchPointEvent | SketchDoneEvent
_SKETCH_EVENT: TypeAdapter[SketchEvent] = TypeAdapter(SketchEvent)
SKETCH_STREAM = "/v1/sketch/stream"


class CloudError(RuntimeError):
    """Any failure to get an answer from the cloud. ``str()`` starts with ``reason``."""

    reason = "cloud error"

    def __init__(self, detail: str, *, status: int | None = None, code: str | None = None):
        super().__init__(f"{self.reason}: {detail}")
        self.detail = detail
        self.status = status
        self.code = code


class CloudUnavailable(CloudError):
    """No answer from the cloud (no connection, or none in time)."""


class CloudUnreachable(CloudUnavailable):
    reason = "cloud unreachable"


class CloudTimedOut(CloudUnavailable):
    reason = "cloud timed out"


class CloudRejected(CloudError):
    """The cloud answered with an error status."""


class CloudBusy(CloudRejected):
    """429 or 503 whose Retry-After does not end within the client's timeout."""

    reason = "cloud busy"
    retry_after_s: float | None = None  # the answer's Retry-After, when it had one


# Statuses that mean "not done, come back later": the request did not run.
RETRY_LATER_STATUSES = frozenset({429, 503})


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
        metrics: Any = None,
        read_timeout_s: float | None = None,
    ) -> None:
        """``metrics``: an ``edge_agent.metrics.EdgeMetrics`` (or None) told of every send.
        ``read_timeout_s``: the longest wait for the next bytes of a stream (its answer's
        headers, then each event), within ``timeout_s`` for the whole; default the latter."""
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.read_timeout_s = min(read_timeout_s or timeout_s, timeout_s)
        self.metrics = metrics
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

    def sketch_stream(
        self,
        req: SketchRequest,
        *,
        user_id: str,
        usage: CloudUsage,
        guard: GuardRecord | None = None,
    ) -> Iterator[OutlineEvent]:
        """The outline as it is written: a ``SketchPointEvent`` per point, then the
        ``SketchDoneEvent``. Raises the CloudError kinds of ``sketch`` (an ``error``
        event is a CloudRejected with its code; a stream cut short, CloudUnreachable).

        Lazy: nothing is sent before the first ``next``. Closing the iterator early
        closes the connection, and the cloud stops generating. ``usage.wait_s`` is not
        counted here: the caller knows how much of the stream it waited for.
        """
        payload = req.model_dump_json(exclude_none=True).encode()
        deadline = time.monotonic() + self.timeout_s

        def first_event(left: float) -> tuple[_Stream, Iterator[OutlineEvent], OutlineEvent]:
            stream = self._open_stream(payload, user_id, usage, guard, left)
            events = stream.events(deadline)
            try:
                return stream, events, next(events)  # events() never ends without done
            except BaseException as exc:
                stream.finish(exc)
                raise

        stream, events, head = self._retrying(first_event, usage=usage, retry=True)
        error: BaseException | None = None
        try:
            yield head
            yield from events
        except BaseException as exc:  # GeneratorExit too: the caller stopped reading
            error = exc
            if isinstance(exc, CloudError):
                usage.errors.append(str(exc))
            raise
        finally:
            stream.finish(error)

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
        """Send, retrying connection failures (``retry``: idempotent calls only) and
        busy answers (any call: the cloud did not run it) while the timeout allows."""
        payload = body.model_dump_json(exclude_none=True).encode() if body is not None else b""

        def attempt(left: float) -> Reply | None:
            response = self._send(method, path, payload, user_id, mode, usage, guard, left)
            if response.status_code >= 400:
                raise _rejection(response)
            return _parse(response, reply_type)

        return self._retrying(attempt, usage=usage, retry=retry)

    def _retrying(
        self, attempt: Callable[[float], Attempt], *, usage: CloudUsage, retry: bool
    ) -> Attempt:
        """``attempt(seconds_left)`` until it returns, or fails in a way not worth (or
        too late for) another try; then its CloudError is raised."""
        deadline = time.monotonic() + self.timeout_s
        retries_left = self.retries if retry else 0
        backoffs = 0
        while True:
            try:
                return attempt(max(deadline - time.monotonic(), 0.001))
            except CloudError as exc:
                error = exc
            wait = error.retry_after_s if isinstance(error, CloudBusy) else None
            if wait is not None:
                if time.monotonic() + wait < deadline:
                    time.sleep(wait)  # busy, and back in time: the call did not run, resend
                    continue
                error = CloudBusy(
                    f"{error.detail}; its Retry-After of {wait:g} s is past this call's "
                    f"{self.timeout_s:g} s timeout",
                    status=error.status,
                    code=error.code,
                )
            elif _worth_retrying(error) and retries_left > 0 and time.monotonic() < deadline:
                retries_left -= 1
                time.sleep(self.backoff_s * 2**backoffs)
                backoffs += 1
                continue
            usage.errors.append(str(error))
            raise error

    def _send(
        self,
        method: str,
        path: str,
        payload: bytes,
        user_id: str | None,
        mode: str,
        usage: CloudUsage,
        guard: GuardRecord | None,
        timeout_s: float,
    ) -> httpx.Response:
        """One send within ``timeout_s``: ledger first, then the wire. Raises
        CloudUnavailable."""
        entry = self._ledgered(method, path, payload, user_id, mode, usage, guard)
        started = time.perf_counter()
        try:
            timeout = httpx.Timeout(timeout_s, connect=min(self.connect_timeout_s, timeout_s))
            response = self._http.request(method, path, content=payload or None, timeout=timeout)
        except httpx.HTTPError as exc:
            elapsed = time.perf_counter() - started
            usage.wait_s += elapsed
            error = self._unavailable(exc)
            self._ledger.finish(
                entry,
                status="error",
                http_status=None,
                bytes_down=0,
                duration_ms=elapsed * 1000,
                error=str(error),
            )
            self._observe(path, error.reason, len(payload), 0, elapsed)
            raise error from exc
        elapsed = time.perf_counter() - started
        usage.wait_s += elapsed
        usage.bytes_down += len(response.content)
        ok = response.status_code < 400
        self._ledger.finish(
            entry,
            status="ok" if ok else "error",
            http_status=response.status_code,
            bytes_down=len(response.content),
            duration_ms=elapsed * 1000,
            error=None if ok else _error_message(response),
            cloud_session=_opened_session(method, path, response) if ok else None,
        )
        self._observe(path, str(response.status_code), len(payload), len(response.content), elapsed)
        return response

    def _ledgered(
        self,
        method: str,
        path: str,
        payload: bytes,
        user_id: str | None,
        mode: str,
        usage: CloudUsage,
        guard: GuardRecord | None,
    ) -> int:
        """Record the exact bytes about to be sent (the ledger entry's id), and count them."""
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
        usage.calls += 1
        usage.bytes_up += len(payload)
        return entry

    def _open_stream(
        self,
        payload: bytes,
        user_id: str,
        usage: CloudUsage,
        guard: GuardRecord | None,
        timeout_s: float,
    ) -> _Stream:
        """Ledger first, then open ``POST /v1/sketch/stream``; raises CloudUnavailable,
        or the rejection of an error status (its ledger entry finished)."""
        entry = self._ledgered("POST", SKETCH_STREAM, payload, user_id, "sketch", usage, guard)
        read = min(self.read_timeout_s, timeout_s)
        timeout = httpx.Timeout(
            timeout_s, connect=min(self.connect_timeout_s, timeout_s), read=read
        )
        request = self._http.build_request(
            "POST",
            SKETCH_STREAM,
            content=payload,
            headers={"accept": "text/event-stream"},
            timeout=timeout,
        )
        stream = _Stream(self, entry, usage, len(payload))
        try:
            stream.response = self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            error = self._unavailable(exc)
            stream.finish(error)
            raise error from exc
        if stream.response.status_code >= 400:
            stream.response.read()
            error = _rejection(stream.response)
            stream.finish(error)
            raise error
        return stream

    def _unavailable(self, exc: httpx.HTTPError) -> CloudUnavailable:
        if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
            return CloudTimedOut(f"no answer from {self.base_url} within {self.timeout_s:g} s")
        return CloudUnreachable(f"cannot connect to {self.base_url}: {exc!r}")

    def _observe(self, path: str, outcome: str, up: int, down: int, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.cloud_call(_call_kind(path), outcome, up, down, seconds)


class _Stream:
    """One streamed outline call on the wire: its events, then its ledger entry closed
    with the bytes that came down."""

    def __init__(self, client: CloudClient, entry: int, usage: CloudUsage, up: int) -> None:
        self._client = client
        self._entry = entry
        self._usage = usage
        self._up = up
        self._started = time.perf_counter()
        self._finished = False
        self.response: httpx.Response | None = None

    def events(self, deadline: float) -> Iterator[OutlineEvent]:
        """Points, then the done event; raises CloudError for anything else."""
        assert self.response is not None
        base_url = self._client.base_url
        try:
            for sse in EventSource(self.response).iter_sse():
                try:
                    event = _SKETCH_EVENT.validate_json(sse.data)
                except ValidationError as exc:
                    raise CloudRejected(f"cloud sent a malformed outline event: {exc}") from exc
                if isinstance(event, SketchErrorEvent):
                    raise CloudRejected(
                        f"the outline failed: {event.error.message}", code=event.error.code
                    )
                yield event
                if isinstance(event, SketchDoneEvent):
                    return
                if time.monotonic() > deadline:
                    timeout = self._client.timeout_s
                    raise CloudTimedOut(f"the outline from {base_url} took over {timeout:g} s")
        except httpx.TimeoutException as exc:
            read = self._client.read_timeout_s
            raise CloudTimedOut(f"no outline event from {base_url} within {read:g} s") from exc
        except (httpx.HTTPError, SSEError) as exc:
            raise CloudUnreachable(f"the outline stream from {base_url} broke: {exc!r}") from exc
        raise CloudUnreachable(f"the outline stream from {base_url} ended before it was done")

    def finish(self, error: BaseException | None) -> None:
        """Close the connection and the ledger entry (once): ok only after done."""
        if self._finished:
            return
        self._finished = True
        response = self.response
        down = 0
        if response is not None:
            response.close()
            down = response.num_bytes_downloaded
        elapsed = time.perf_counter() - self._started
        self._usage.bytes_down += down
        status = response.status_code if response is not None else None
        if error is None:
            message = None
        elif isinstance(error, CloudError):
            message = str(error)
        else:
            message = "stopped by the edge before the outline was done"
        self._client._ledger.finish(
            self._entry,
            status="ok" if error is None else "error",
            http_status=status,
            bytes_down=down,
            duration_ms=elapsed * 1000,
            error=message,
        )
        # A stream that broke after its 200 is counted by how it broke, not as a 200.
        if isinstance(error, CloudError) and (status is None or status < 400):
            outcome = error.reason
        else:
            outcome = str(status) if status is not None else "other"
        self._client._observe(SKETCH_STREAM, outcome, self._up, down, elapsed)


def _call_kind(path: str) -> str:
    """A fixed name per endpoint: session ids stay out of metric labels."""
    if path.endswith("/step"):
        return "step"
    if path.startswith("/v1/sessions/"):
        return "close"
    kinds = {"/v1/sessions": "open", "/v1/sketch": "sketch", SKETCH_STREAM: "sketch"}
    return {**kinds, "/v1/info": "info"}.get(path, "other")


def _worth_retrying(error: CloudError) -> bool:
    """Retried with backoff when the call allows: no connection, a gateway with no
    replica (502), busy without a Retry-After. A timeout is not: it would double."""
    return isinstance(error, CloudUnreachable | CloudBusy)


def _rejection(response: httpx.Response) -> CloudError:
    status, code = response.status_code, _error_code(response)
    detail = f"answered {status}: {_error_message(response)}"
    if status in RETRY_LATER_STATUSES:
        busy = CloudBusy(detail, status=status, code=code)
        busy.retry_after_s = _retry_after_s(response)
        return busy
    if status == 502:  # a load balancer found no live replica, or it died mid-answer
        return CloudUnreachable(detail, status=status, code=code)
    if status == 504:
        return CloudTimedOut(detail, status=status, code=code)
    return CloudRejected(detail, status=status, code=code)


def _retry_after_s(response: httpx.Response | None) -> float | None:
    """Retry-After in seconds (delay-seconds or an HTTP date), None when absent."""
    value = response.headers.get("retry-after") if response is not None else None
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(math.ceil(when.timestamp() - time.time()), 0)


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
        # Not the cloud's error body (a gateway's HTML page, say): its status line.
        return response.reason_phrase or "no error message"


def _error_code(response: httpx.Response) -> str | None:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None
