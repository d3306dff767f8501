"""Only the user's own programs reach the edge: a Host check and a same-origin check.

A web page the user opens can make their browser send requests to 127.0.0.1. Two ways
in are closed here, before any route runs:

- **DNS rebinding.** The page's own name is made to resolve to 127.0.0.1, so the
  browser treats the edge as the page's origin. Its requests still carry the page's
  name in ``Host``: only loopback names and the hosts the user configured pass.
- **Cross-site requests that change state.** A form or a "simple" ``fetch`` needs no
  CORS preflight. A request that changes state must come without an ``Origin`` from
  another site, and with a JSON body (a form cannot send ``application/json``).

CORS is off unless the user lists origins (``cors_origins``); then the app adds
Starlette's CORS middleware for exactly those.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from edge_agent.errors import openai_error
from shared_protocol.hosts import is_loopback as is_loopback_address

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WILDCARD_BINDS = frozenset({"0.0.0.0", "::", ""})


def is_loopback(host: str) -> bool:
    """A loopback address, ``localhost``, or a ``*.localhost`` name (RFC 6761: browsers
    resolve those to loopback themselves, so no DNS answer can rebind them)."""
    name = host.strip().rstrip(".").lower()
    return name.endswith(".localhost") or is_loopback_address(name)


def host_name(header: str) -> str:
    """The name in a Host header, without port or IPv6 brackets, lower case."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class HostPolicy:
    """Which Host names and browser origins the edge answers."""

    def __init__(
        self, bind_host: str, allowed_hosts: Iterable[str] = (), cors_origins: Iterable[str] = ()
    ) -> None:
        self.hosts = {host_name(h) for h in allowed_hosts}
        if bind_host not in WILDCARD_BINDS:  # its own address, e.g. a LAN IP the user chose
            self.hosts.add(host_name(bind_host))
        self.origins = {o.rstrip("/").lower() for o in cors_origins}

    def allows_host(self, header: str | None) -> bool:
        if not header:
            return False
        name = host_name(header)
        return is_loopback(name) or name in self.hosts

    def allows_origin(self, origin: str, own_host: str) -> bool:
        """Same origin as the request itself, or one the user listed."""
        origin = origin.rstrip("/").lower()
        if origin in self.origins:
            return True
        _, _, authority = origin.partition("://")
        return authority == own_host.strip().lower()


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(openai_error(message, "invalid_request_error", code), status_code=status)


class LocalOnlyMiddleware:
    """Pure ASGI, outermost: refuses foreign Hosts and cross-site state changes."""

    def __init__(self, app: ASGIApp, policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = self.problem(scope)
        if problem is not None:
            await problem(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def problem(self, scope: Scope) -> JSONResponse | None:
        headers = Headers(scope=scope)
        host = headers.get("host")
        if not self.policy.allows_host(host):
            return _error(
                400,
                "host_not_allowed",
                "this Host is not one the edge answers: use 127.0.0.1 or localhost, or add "
                "the name to COGENESIS_EDGE_ALLOWED_HOSTS",
            )
        if scope["method"] in SAFE_METHODS:
            return None
        origin = headers.get("origin")
        if origin is not None and not self.policy.allows_origin(origin, host or ""):
            return _error(
                403,
                "cross_site_request",
                "requests that change state are not accepted from another site; list the "
                "origin in COGENESIS_EDGE_CORS_ORIGINS to allow it",
            )
        if headers.get("sec-fetch-site") == "cross-site" and origin is None:
            return _error(403, "cross_site_request", "cross-site requests are not accepted")
        content_type = headers.get("content-type", "")
        if _has_body(headers) and not (
            _is_json(content_type) or _is_page_form(scope, content_type)
        ):
            return _error(
                415,
                "unsupported_media_type",
                "send the body as JSON, with 'Content-Type: application/json'",
            )
        return None


def _is_page_form(scope: Scope, content_type: str) -> bool:
    """A form of the privacy page (``/page/...``): urlencoded, as browsers send forms. Its
    route refuses it unless the form carries the signed-in session's CSRF token, and the
    session cookie is SameSite=Strict, so another site cannot send one that works."""
    media = content_type.split(";", 1)[0].strip().lower()
    return scope["path"].startswith("/page/") and media == "application/x-www-form-urlencoded"


def _has_body(headers: Headers) -> bool:
    length = headers.get("content-length")
    return "transfer-encoding" in headers or (length is not None and length.strip() != "0")


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )
