"""A small JSON API beside the chat, on the same server (mounted at /api/v1 of the Gradio app's FastAPI app).

    POST /api/v1/ask       {"query": str, "top_k": int = 3}  -> the object `coach ask --json` prints for the query
    POST /api/v1/feedback  {"query": str, "passages": [passage ids], "helpful": bool}  -> 201 {"id": row id}
                           (a mark on the card(s) showing those passages; send one passage per card marked)
    GET  /api/v1/health    index build, model, feedback store reachable (200 when answering, 503 while loading)
    POST /api/v1/rebuild   rebuild the shared index from this process (only with COACH_API_TOKEN set)
    GET  /api/v1/openapi.json, /api/v1/docs

For agent desktops (CRM side panels, chat consoles) that integrate over plain HTTP. Bounds are the chat's: questions
longer than the chat's cap are shortened the same way (header `X-Coach-Query-Shortened: 1`), bodies over 64 KiB are
refused (413), at most 4 questions are answered at once with 32 waiting and a busy answer (503, `Retry-After`)
beyond. Every error is JSON, `{"error": message}`, 4xx for a bad request, never a traceback. With
`COACH_API_TOKEN` set, every route but health and the schema needs `Authorization: Bearer <token>`. The server
listens on loopback only (app.py), like the chat.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import threading
import weakref
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .feedback import StoreUnavailable
from .replica import IndexWatcher
from .retrieve import MAX_QUERY_CHARS, sanitize_query
from .ui import CONCURRENCY, LOAD_WAIT_S, QUEUE_MAX_SIZE, detect_lang

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
MAX_BODY_BYTES = 64 * 1024
MAX_TOP_K = 20
MAX_PASSAGES = 20
MAX_RAW_QUERY = MAX_QUERY_CHARS * 4  # what sanitize_query looks at; longer bodies are refused, not cut silently


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    query: str = Field(
        min_length=1,
        max_length=MAX_RAW_QUERY,
        description=f"the situation, in English or Chinese; shortened to {MAX_QUERY_CHARS} characters like the chat's",
    )
    top_k: int = Field(3, ge=1, le=MAX_TOP_K, description="pieces of advice")


class Result(BaseModel):
    id: str = Field(description="the passage id (what /feedback takes)")
    text: str
    source: str = Field(description="the passage id again (the name `coach ask --json` has always used)")
    title: str
    author: str
    section: str
    score: float
    highlight: str


class AskResponse(BaseModel):
    query: str = Field(description="the question as searched (cleaned, possibly shortened)")
    out_of_domain: bool
    results: list[Result] = Field(description="empty when the question is out of the domain")
    nearest: list[Result] | None = Field(None, description="only out of the domain: the passages that came nearest")


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    query: str = Field(min_length=1, max_length=MAX_RAW_QUERY)
    passages: list[str] = Field(max_length=MAX_PASSAGES, description="passage ids (`source` of /ask's results)")
    helpful: bool


class FeedbackResponse(BaseModel):
    id: int


class ErrorResponse(BaseModel):
    error: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": what}
    for code, what in (
        (401, "missing or wrong bearer token"),
        (413, "body over 64 KiB"),
        (422, "a bad body: the message names the field"),
        (503, "busy, still loading, or (feedback) the store cannot take the mark"),
    )
}


class _BodyLimit:
    """Refuse request bodies over MAX_BODY_BYTES before they are read whole (chunked bodies included)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return await _too_large(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > MAX_BODY_BYTES:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _too_large(scope, receive, send)


class _TooLarge(Exception):
    pass


async def _too_large(scope, receive, send):
    await JSONResponse({"error": f"the body is over {MAX_BODY_BYTES // 1024} KiB"}, status_code=413)(
        scope, receive, send
    )


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "bad request: " + "; ".join(parts)


def create_api(coach_app: Any, *, token: str | None = None) -> FastAPI:
    """The API for one running app. `coach_app` is coach/ui.py's CoachApp (its `holder` serves the Coach, its
    `store` keeps the feedback); `token` defaults to $COACH_API_TOKEN (empty or unset: no token needed)."""
    token = token if token is not None else os.environ.get("COACH_API_TOKEN", "")
    api = FastAPI(
        title="Coach API",
        version="1",
        description="Veterans' advice for the situation an agent describes, and helpful / not-helpful "
        "marks. The same answers as `coach ask --json`.",
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    api.add_middleware(_BodyLimit)
    holder, store = coach_app.holder, coach_app.store
    # answered at once (the chat's own queue has the same bounds): one semaphore per event loop (the server has
    # one; test clients may run several), and the count of questions in hand across all of them
    slots: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
    in_hand = {"n": 0}
    in_hand_lock = threading.Lock()

    @api.exception_handler(RequestValidationError)
    async def bad_body(request: Request, exc: RequestValidationError):
        return _error(422, _validation_message(exc))

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @api.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):  # logged here; the client gets no details
        log.exception("API %s failed", request.url.path)
        return _error(503, "Coach could not answer this just now; try again")

    @api.middleware("http")
    async def bearer(request: Request, call_next):
        if token and request.url.path.rstrip("/").rsplit("/", 1)[-1] not in ("health", "openapi.json", "docs"):
            given = request.headers.get("authorization", "")
            scheme, _, value = given.partition(" ")
            sent = value.strip().encode("latin-1", "replace")  # header bytes, compared with the token's UTF-8
            if scheme.lower() != "bearer" or not hmac.compare_digest(sent, token.encode()):
                return _error(
                    401,
                    "a bearer token is required: Authorization: Bearer <COACH_API_TOKEN>",
                    {"WWW-Authenticate": "Bearer"},
                )
        return await call_next(request)

    def serving():
        """The Coach if loaded, else None. Never loads (holder.get may, after a failed load: not on the event loop)."""
        return holder.get(wait=False) if holder.ready else None

    async def loaded_coach():
        coach = serving()
        if coach is None:
            coach = await run_in_threadpool(holder.get, True, LOAD_WAIT_S)
        if coach is None:
            why = f"Coach could not load ({holder.error})" if holder.error else "Coach is still loading"
            return None, _error(503, f"{why}; try again in a few seconds", {"Retry-After": "5"})
        return coach, None

    @api.post(
        "/ask",
        response_model=AskResponse,
        responses=_ERRORS,
        summary="Advice for one situation: exactly what `coach ask --json` prints for it",
    )
    async def ask(body: AskRequest):
        with in_hand_lock:
            if in_hand["n"] >= CONCURRENCY + QUEUE_MAX_SIZE:
                return _error(503, "Coach is busy; try again in a few seconds", {"Retry-After": "2"})
            in_hand["n"] += 1
        try:
            coach, problem = await loaded_coach()
            if problem:
                return problem
            loop = asyncio.get_running_loop()
            with in_hand_lock:
                slot = slots.setdefault(loop, asyncio.Semaphore(CONCURRENCY))
            async with slot:
                answer = await run_in_threadpool(coach.ask, body.query, body.top_k, True)
        finally:
            with in_hand_lock:
                in_hand["n"] -= 1
        if answer.query and answer.out_of_domain:  # like the chat: an uncovered question is counted as a content
            # gap, an answered one stores nothing (never raises: a store fault does not fail this)
            store.record_question(answer.query, lang=detect_lang(answer.query), out_of_domain=True)
        shortened = {"X-Coach-Query-Shortened": "1"} if answer.truncated else None
        return JSONResponse(answer.to_json(), headers=shortened)

    @api.post(
        "/feedback",
        status_code=201,
        response_model=FeedbackResponse,
        responses=_ERRORS,
        summary="Store a helpful / not-helpful mark for the passages shown for a question",
    )
    async def feedback(body: FeedbackRequest):
        query, _ = sanitize_query(body.query)
        if not query:
            return _error(422, "bad request: query: is empty once control characters are removed")
        coach = serving()
        known = coach.index.chunks if coach is not None else None
        passages = []
        if known is not None:
            by_id = {c.id: c for c in known}
            unknown = [p for p in body.passages if p not in by_id]
            if unknown:
                return _error(
                    422,
                    f"bad request: passages: unknown passage id {unknown[0]!r} (use the `source` of /ask's results)",
                )
            passages = [{"id": p, "essay": by_id[p].essay_id, "highlight": ""} for p in body.passages]
        else:  # still loading: stored as given
            passages = [{"id": p, "essay": p.split("#", 1)[0], "highlight": ""} for p in body.passages]
        try:
            row = await run_in_threadpool(
                lambda: store.record_feedback(query, body.helpful, lang=detect_lang(query), passages=passages)
            )
        except StoreUnavailable as exc:  # refused and said so: never acknowledged and lost
            return _error(503, str(exc), {"Retry-After": "10"})
        return JSONResponse({"id": row}, status_code=201)

    @api.get("/health", summary="Index build, model and feedback store")
    async def health():
        coach = serving()
        store_status = await run_in_threadpool(store.status)
        store_status.pop("where", None)  # no host or path names to unauthenticated callers
        out: dict[str, Any] = {
            "status": "ok" if coach is not None else ("failed" if holder.error else "loading"),
            "store": store_status,
        }
        if coach is not None:
            m = coach.index.manifest
            out["index"] = {
                "build": coach.index.build_dir.name,
                "built_at": m.built_at,
                "passages": m.counts.get("chunks"),
                "essays": m.counts.get("essays"),
            }
            out["model"] = {"name": coach.embedder.name, "loaded": True}
        else:
            out["model"] = {"loaded": False}
        return JSONResponse(out, status_code=200 if coach is not None else 503)

    @api.post(
        "/rebuild",
        responses={
            **_ERRORS,
            403: {"model": ErrorResponse, "description": "no token set"},
            409: {"model": ErrorResponse, "description": "already rebuilding"},
        },
        summary="Rebuild the shared index from this process (needs COACH_API_TOKEN); every replica "
        "picks the new build up within seconds",
    )
    async def rebuild():
        if not token:
            return _error(403, "rebuilding over the API is off; set COACH_API_TOKEN to allow it")
        if holder.rebuild_lock.locked():
            return _error(409, "a rebuild is already running in this process")
        message = await run_in_threadpool(coach_app.rebuild)
        coach = serving()
        return {"message": message, "build": coach.index.build_dir.name if coach else None}

    api.state.coach_app = coach_app
    return api


def mount(app: FastAPI, coach_app: Any, *, token: str | None = None, watch: bool = True) -> FastAPI:
    """Mount the API at /api/v1 of `app` (the Gradio server's FastAPI app) and start the index watcher (replicas
    pick up a build made by another process). Returns the API app."""
    api = create_api(coach_app, token=token)
    app.mount(PREFIX, api)
    if watch:
        api.state.watcher = IndexWatcher(coach_app.holder).start()
    return api


def launch_kwargs(demo: Any, base: dict | None = None) -> dict:
    """What `demo.launch(...)` needs to serve the API too: a lifespan hook that mounts it on the server's app
    before the first request (Gradio creates that app inside `launch`). With `base` (coach.ui.launch_kwargs()), the
    chat's own settings come back with the hook added to its `app_kwargs` (the web guard's middleware)."""

    @asynccontextmanager
    async def lifespan(app):
        api = mount(app, demo.coach_app)
        yield
        api.state.watcher.stop()

    kwargs = dict(base or {})
    kwargs["app_kwargs"] = {**kwargs.get("app_kwargs", {}), "lifespan": lifespan}
    return kwargs
