"""The privacy page at ``/``: what left this device, the profile, and the ledger's check.

Server-rendered (Jinja2) with a little optional JavaScript; every asset comes from the
edge itself, so it works offline. Signing in with a local API key starts a session
(``edge_agent.page.sessions``); every form sends the session's CSRF token back, and the
cookie is HttpOnly and SameSite=Strict. A user key sees its own user; an admin key sees
everyone. Forms post to ``/page/...`` and answer with a redirect (post, redirect, get).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams

from edge_agent.auth import AUTH_OFF, Principal
from edge_agent.dependencies import Services
from edge_agent.page.sessions import COOKIE, PageSession, PageSessions
from edge_agent.page.view import (
    bytes_up_chart,
    findings_by_type,
    human_bytes,
    payload_segments,
    status_of,
    totals_by,
)
from edge_agent.services import EdgeServices
from edge_agent.store import KeyNotFound, UserNotFound
from edge_agent.store.schemas import PROFILE_ATTRIBUTES, ProfileUpdate, UserOut

PACKAGE = Path(__file__).resolve().parents[1]
PAGE_SIZE = 25
MAX_OFFSET = 10**9
# The profile's fields as the form shows them: the name first.
FORM_FIELDS = ("name", *(attr for attr in PROFILE_ATTRIBUTES if attr != "name"))
FORM_TYPE = "application/x-www-form-urlencoded"
# The page never needs anything from elsewhere: say so to the browser.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    # Not "no-referrer": with it the browser sends `Origin: null`, and the same-origin check
    # of the Host policy would refuse the page's own forms.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=PACKAGE / "templates")
templates.env.filters["bytes"] = human_bytes


def install(app: FastAPI) -> None:
    """Mount the page, its assets and its sign-in sessions on the edge's app."""
    app.state.page_sessions = PageSessions[Principal]()
    app.mount("/static", StaticFiles(directory=PACKAGE / "static"), name="static")
    app.include_router(router)

    @app.exception_handler(FormProblem)
    async def form_problem(request: Request, exc: FormProblem) -> Response:
        context = {"title": "Nothing was changed", "message": exc.message, "problem": True}
        return _html(request, "message.html", context, status=exc.status)


class FormProblem(Exception):
    """A form the page cannot act on; answered as a plain page, never a traceback."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# -- pages -------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def privacy_page(
    request: Request,
    svc: Services,
    user: str | None = None,
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
) -> Response:
    session = _session(request, svc)
    if session is None:
        if svc.settings.auth == "off":  # loopback experiments: everyone is the admin
            session = _sessions(request).start(AUTH_OFF)
            return _signed_in(request, session, "/")
        return _html(request, "signin.html", {})
    who = session.who
    subject = who.user_id if not who.is_admin else (user or None)
    profile = _profile(svc, subject)
    if who.is_admin and subject and profile is None:
        session.flash("error", f"There is no profile {subject!r}.")
        subject = None
    entries, total = svc.store.ledger.query(user_id=subject, limit=PAGE_SIZE, offset=offset)
    totals = svc.store.ledger.totals(subject)
    head_seq, head = svc.store.ledger.head()

    def page_query(at: int) -> str:
        return str(QueryParams({k: v for k, v in (("user", subject), ("offset", at)) if v}))

    context = {
        "session": session,
        "flashes": session.take_flashes(),
        "who": who,
        "who_label": "admin" if who.is_admin else f"signed in as {who.user_id}",
        "subject": subject,
        "subject_label": f"{profile.name} ({subject})" if profile else subject,
        "users": svc.store.profiles.list_users() if who.is_admin else [],
        "profile": profile,
        "profile_fields": _profile_fields(profile) if profile else [],
        "cloud_url": svc.settings.cloud_url,
        "entries": [_entry_view(entry) for entry in entries],
        "total": total,
        "newer": max(offset - PAGE_SIZE, 0) if offset else None,
        "older": offset + PAGE_SIZE if offset + PAGE_SIZE < total else None,
        "page_query": page_query,
        "chart": bytes_up_chart(totals),
        "day_totals": totals_by(totals, "day"),
        "mode_totals": totals_by(totals, "mode"),
        "head": head,
        "head_seq": head_seq,
    }
    return _html(request, "dashboard.html", context)


# -- forms -------------------------------------------------------------------------------


@router.post("/page/sign-in")
async def sign_in(request: Request, svc: Services) -> Response:
    form = await _form(request)
    key = _one(form, "key").strip()
    found = await run_in_threadpool(svc.store.keys.verify, key) if key else None
    if found is None:
        context = {"error": "That key is not valid (unknown, mistyped or revoked)."}
        return _html(request, "signin.html", context, status=401)
    principal = Principal(scope=found.scope, user_id=found.user_id, key_id=found.id)
    _sessions(request).end(request.cookies.get(COOKIE))  # a new session id at every sign-in
    return _signed_in(request, _sessions(request).start(principal), "/")


@router.post("/page/sign-out")
async def sign_out(request: Request, svc: Services) -> Response:
    session, _ = await _checked_form(request, svc)
    _sessions(request).end(session.id)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.post("/page/profile")
async def save_profile(request: Request, svc: Services) -> Response:
    session, form = await _checked_form(request, svc)
    return await run_in_threadpool(_save_profile, svc, session, form)


@router.post("/page/delete")
async def delete_data(request: Request, svc: Services) -> Response:
    session, form = await _checked_form(request, svc)
    return await run_in_threadpool(_delete_data, request, svc, session, form)


@router.post("/page/verify")
async def verify(request: Request, svc: Services) -> Response:
    session, form = await _checked_form(request, svc)
    return await run_in_threadpool(_verify, svc, session, form)


# -- what the forms do (in the thread pool: they read and write the store) ---------------


def _save_profile(
    svc: EdgeServices, session: PageSession[Principal], form: QueryParams
) -> Response:
    user_id = _subject(session, form)
    try:
        current = svc.store.profiles.get_user(user_id)
        changes = ProfileUpdate.model_validate(_profile_changes(form, current))
    except UserNotFound:
        session.flash("error", f"There is no profile {user_id!r} any more.")
        return _back(session, None)
    except ValidationError as exc:
        session.flash("error", f"Nothing was saved: {_validation_summary(exc)}")
        return _back(session, user_id, "#profile")
    updated = svc.store.profiles.update_user(user_id, changes)
    svc.invalidate_prefix(user_id)
    if updated.data_version == current.data_version:
        session.flash("info", "Nothing changed.")
    else:
        session.flash("ok", f"Saved the profile of {updated.name}.")
    return _back(session, user_id, "#profile")


def _delete_data(
    request: Request, svc: EdgeServices, session: PageSession[Principal], form: QueryParams
) -> Response:
    user_id = _subject(session, form)
    if _one(form, "confirm") != "1":
        session.flash("error", "Nothing was deleted: tick the box that confirms it.")
        return _back(session, user_id, "#delete")
    include_ledger = _one(form, "include_ledger") == "1"
    try:
        deleted = svc.store.profiles.delete_user(user_id, include_ledger=include_ledger)
    except UserNotFound:
        session.flash("error", f"There is no profile {user_id!r} any more.")
        return _back(session, None)
    svc.invalidate_prefix(user_id)
    ledger_note = (
        f" and {_count(deleted.ledger_entries, 'ledger entry', 'ledger entries')} (the "
        "chain keeps a note of which entries went, nothing of what they held)"
        if include_ledger
        else "; the ledger of what was sent is kept"
    )
    message = (
        f"Deleted {user_id}: the profile, "
        f"{_count(deleted.writing_samples, 'piece', 'pieces')} of writing, "
        f"{_count(deleted.tasks, 'task', 'tasks')}{ledger_note}."
    )
    if session.who.is_admin:
        session.flash("ok", message)
        return _back(session, None)
    # The user's keys went with the profile: every session of theirs ends here.
    _sessions(request).end_where(lambda who: who.user_id == user_id)
    response = _html(request, "message.html", {"title": "Your data is deleted", "message": message})
    response.delete_cookie(COOKIE, path="/")
    return response


def _verify(svc: EdgeServices, session: PageSession[Principal], form: QueryParams) -> Response:
    subject = _subject(session, form) if _one(form, "user") else None
    if not session.who.is_admin:
        subject = session.who.user_id
    chain = svc.store.ledger.verify()
    if chain.ok:
        session.flash(
            "ok",
            f"The ledger is intact: {_count(chain.entries, 'entry', 'entries')} in "
            f"{_count(chain.links, 'link', 'links')} "
            f"({chain.erased} erased on request), head {chain.head[:16]}….",
        )
    else:
        first = chain.first.describe() if chain.first else "the chain is cut short"
        session.flash(
            "error", f"The ledger is BROKEN ({len(chain.problems)} problems); first: {first}."
        )
    _rescan(svc, session, subject)
    return _back(session, subject, "#verify")


# -- helpers -----------------------------------------------------------------------------


def _sessions(request: Request) -> PageSessions[Principal]:
    return request.app.state.page_sessions


def _session(request: Request, svc: EdgeServices) -> PageSession[Principal] | None:
    """The signed-in session, if its key still works (a revoked key ends it)."""
    session = _sessions(request).get(request.cookies.get(COOKIE))
    if session is None or session.who.key_id is None:
        return session
    try:
        alive = svc.store.keys.get(session.who.key_id).revoked_at is None
    except KeyNotFound:
        alive = False
    if not alive:
        _sessions(request).end(session.id)
        return None
    return session


def _signed_in(request: Request, session: PageSession[Principal], to: str) -> Response:
    response = RedirectResponse(to, status_code=303)
    response.set_cookie(
        COOKIE,
        session.id,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


async def _form(request: Request) -> QueryParams:
    raw = await request.body()
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if raw and media != FORM_TYPE:
        raise FormProblem(415, "The page's forms send application/x-www-form-urlencoded.")
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormProblem(400, "The form was not UTF-8.") from exc
    # Starlette's parser: the same rules as a query string, blank values kept.
    return QueryParams(body)


async def _checked_form(
    request: Request, svc: EdgeServices
) -> tuple[PageSession[Principal], QueryParams]:
    """The form of a signed-in session whose CSRF token matches, or a FormProblem."""
    session = _session(request, svc)
    if session is None:
        raise FormProblem(401, "You are signed out. Sign in again, then repeat what you did.")
    form = await _form(request)
    if not session.csrf_ok(_one(form, "csrf") or None):
        raise FormProblem(403, "This form is not from your session (its CSRF token differs).")
    return session, form


def _one(form: QueryParams, name: str) -> str:
    return form.get(name) or ""


def _subject(session: PageSession[Principal], form: QueryParams) -> str:
    """The user a form acts on: a user key may name only itself."""
    user_id = _one(form, "user")
    who = session.who
    if not who.is_admin and user_id != who.user_id:
        raise FormProblem(403, "This key acts as one user and cannot change another.")
    if not user_id:
        raise FormProblem(400, "The form names no user.")
    return user_id


def _back(session: PageSession[Principal], user_id: str | None, anchor: str = "") -> Response:
    query = f"?{QueryParams({'user': user_id})}" if user_id and session.who.is_admin else ""
    return RedirectResponse(f"/{query}{anchor}", status_code=303)


def _html(request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
    context.setdefault("session", None)
    context.setdefault("flashes", [])
    response = templates.TemplateResponse(request, template, context, status_code=status)
    response.headers.update(SECURITY_HEADERS)
    return response


def _profile(svc: EdgeServices, user_id: str | None) -> UserOut | None:
    if not user_id:
        return None
    try:
        return svc.store.profiles.get_user(user_id)
    except UserNotFound:
        return None


def _profile_fields(profile: UserOut) -> list[dict[str, Any]]:
    return [
        {
            "name": attr,
            "label": attr.replace("_", " ").capitalize(),
            "value": getattr(profile, attr),
        }
        for attr in FORM_FIELDS
    ]


def _profile_changes(form: QueryParams, current: UserOut) -> dict[str, Any]:
    """The form as a ProfileUpdate: empty fields clear, the history is replaced."""
    changes: dict[str, Any] = {}
    for attr in FORM_FIELDS:
        if attr in form:
            value = _one(form, attr).strip()
            changes[attr] = value or (None if attr != "name" else "")
    titles, texts = form.getlist("history_title"), form.getlist("history_text")
    if titles or texts:
        pairs = zip(titles + [""] * (len(texts) - len(titles)), texts, strict=False)
        history = [{"title": t.strip(), "text": x} for t, x in pairs if x.strip()]
        if [(s["title"], s["text"]) for s in history] != [
            (s.title, s.text) for s in current.history
        ]:
            changes["history"] = history
    return changes


def _validation_summary(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error.get("loc", ()))
        parts.append(f"{where.replace('_', ' ')}: {error.get('msg')}")
    return "; ".join(parts)


def _entry_view(entry: Any) -> dict[str, Any]:
    return {
        "entry": entry,
        "status": status_of(entry),
        "segments": payload_segments(entry.payload_text) if entry.payload else [],
        "findings": findings_by_type(entry.guard_findings),
    }


def _rescan(svc: EdgeServices, session: PageSession[Principal], subject: str | None) -> None:
    """Re-scan the payloads for private terms of the profiles as they are now."""
    from edge_agent.guard.verify import verify_ledger

    model = svc.pool.primary

    def detokenize(ids: Any) -> str:
        return model.detokenize(ids).decode("utf-8", errors="replace")

    report = verify_ledger(svc.store, user_id=subject, guard=svc.guard, detokenize=detokenize)
    if not report.entries:
        session.flash("info", "Nothing to re-scan: no payload belongs to a stored profile.")
        return
    if not report.hits:
        payloads = _count(report.entries, "payload", "payloads")
        session.flash("ok", f"The re-scan found no private terms in {payloads}.")
        return
    first = report.hits[0]
    session.flash(
        "error",
        f"The re-scan found {len(report.hits)} private terms that left; first: entry "
        f"#{first.entry_id}, {first.kind} ({first.description}).",
    )


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"
