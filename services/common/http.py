"""HTTP edges shared by intake and publicity: problem+json errors, strict bodies, request metrics."""

from __future__ import annotations

import itertools
import logging
import os
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.logs import CORRELATION_ID
from services.common.metrics import HTTP_REQUESTS, HTTP_SECONDS

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"
# The database down, restarting or out of reach: the request may be sent again (503), not a server bug (500).
DATABASE_UNAVAILABLE = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)
B = TypeVar("B", bound=BaseModel)


class Problem(Exception):
    """An RFC 9457 problem: the status, a short title, what went wrong, and per-field errors."""

    def __init__(
        self, status: int, title: str, detail: str, errors: list[dict[str, str]] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors or []
        self.extra = extra

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {
            "type": f"https://rectify.example/problems/{self.title.lower().replace(' ', '-')}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        headers = {"Retry-After": str(self.extra["retry_after"])} if "retry_after" in self.extra else None
        return JSONResponse(body, status_code=self.status, media_type=PROBLEM, headers=headers)


def field_errors(
    exc: ValidationError | RequestValidationError,
    body: bytes = b"",
    more: Callable[[dict[str, Any]], list[dict[str, str]]] | None = None,
) -> list[dict[str, str]]:
    """Each field the validation refused, and why. ``more``: the caller's own checks, given the JSON object ``body``
    that failed, so that one answer names every field wrong (a field named already is skipped)."""
    errors = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        reason = err.get("msg", "invalid")
        if err.get("type") == "extra_forbidden":
            reason = "unknown field; it is not part of this request"
        errors.append({"field": ".".join(loc) or "body", "reason": reason})
    if more is not None:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:  # JSON that pydantic reads and orjson does not (NaN, Infinity)
            parsed = None
        if isinstance(parsed, dict):
            named = {e["field"] for e in errors}
            errors += [e for e in more(parsed) if e["field"] not in named]
    return errors


def header_map(request: Request | Scope) -> dict[bytes, bytes]:
    """The request's headers by (lowercase, as ASGI gives them) name, the first of a repeated one as starlette's
    ``Headers.get`` answers: one dict built in C instead of a Python scan of the list for every header read."""
    scope = request.scope if isinstance(request, Request) else request
    return dict(reversed(scope.get("headers") or ()))


async def read_body(
    request: Request,
    model: type[B],
    max_bytes: int,
    headers: dict[bytes, bytes] | None = None,
    more_errors: Callable[[dict[str, Any]], list[dict[str, str]]] | None = None,
) -> tuple[B, bytes]:
    """The raw body (capped) and its strict validation; any failure is a Problem naming the field. ``headers``: the
    request's ``header_map`` if the caller has it already; ``more_errors``: as for ``field_errors``."""
    headers = header_map(request) if headers is None else headers
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise Problem(413, "Payload too large", f"the body may be at most {max_bytes} bytes")
    raw = bytearray()
    async for chunk in request.stream():
        raw.extend(chunk)
        if len(raw) > max_bytes:
            raise Problem(413, "Payload too large", f"the body may be at most {max_bytes} bytes")
    if b"json" not in headers.get(b"content-type", b""):
        raise Problem(415, "Unsupported media type", "send the body as application/json")
    body = bytes(raw)
    try:
        return model.model_validate_json(body, strict=True), body
    except ValidationError as exc:
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            raise Problem(400, "Malformed JSON", "the body is not valid JSON", field_errors(exc)) from exc
        errors = field_errors(exc, body, more_errors)
        raise Problem(422, "Invalid request", "some fields are missing or invalid", errors) from exc


def install(app: FastAPI, service: str) -> None:
    """Problem+json for every error, and request metrics with bounded labels (the route template)."""

    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> Response:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        return Problem(422, "Invalid request", "some parameters are missing or invalid", field_errors(exc)).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        titles = {404: "Not found", 405: "Method not allowed"}
        return Problem(exc.status_code, titles.get(exc.status_code, "Error"), str(exc.detail)).response()

    async def _unavailable(request: Request, exc: Exception) -> Response:
        log.warning("database unavailable", extra={"path": request.url.path, "error": repr(exc)})
        return Problem(
            503,
            "Service unavailable",
            "the database is unavailable for a moment; send the request again (with the same Idempotency-Key,"
            " it is never filed twice)",
            retry_after=1,
        ).response()

    for unavailable in DATABASE_UNAVAILABLE:
        app.add_exception_handler(unavailable, _unavailable)

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, _: ClientDisconnect) -> Response:
        # The client left before its body arrived (a timeout, a load generator stopping): nothing was read, so
        # nothing was stored. Not a server fault: no stack trace, and 499 (nginx's "client closed request") keeps
        # it out of the 5xx figures. No one is left to read the answer.
        log.info("client disconnected before its body arrived", extra={"path": request.url.path})
        return Problem(499, "Client closed request", "the connection closed before the body arrived").response()

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", extra={"path": request.url.path})
        return Problem(500, "Internal error", "the server failed; nothing was stored for this request").response()

    app.add_middleware(RequestMetrics, service=service)


class RequestMetrics:
    """Counts and times requests by route template (bounded labels). Plain ASGI: no per-request task. The labelled
    children are looked up once per (route, status), not per request."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}

    def _metrics(self, template: str, status: int) -> tuple[Any, Any]:
        found = self._children.get((template, status))
        if found is None:
            counter = HTTP_REQUESTS.labels(self.service, template, str(status))
            found = counter, HTTP_SECONDS.labels(self.service, template)
            self._children[(template, status)] = found
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        # the caller's X-Correlation-ID (if it looks like one) or a new one: on every log line of this request
        given = header_map(scope).get(b"x-correlation-id", b"").decode("latin-1")  # the first, as everywhere
        correlation = given if 0 < len(given) <= 64 and given.replace("-", "").isalnum() else correlation_id()
        token = CORRELATION_ID.set(correlation)

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-correlation-id", correlation.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            CORRELATION_ID.reset(token)
            requests, seconds = self._metrics(getattr(scope.get("route"), "path", "unmatched"), status)
            requests.inc()
            seconds.observe(time.perf_counter() - started)


# A new correlation id per request without drawing 16 random bytes from the OS each time: this process's random
# prefix (the first 74 random bits of a UUID v4) and a counter, so ids stay unique across processes and restarts.
_correlation_prefix = ""
_correlation_seq = itertools.count(1)


def _new_correlation_prefix() -> None:
    global _correlation_prefix, _correlation_seq
    _correlation_prefix, _correlation_seq = str(uuid.uuid4())[:24], itertools.count(1)


_new_correlation_prefix()
os.register_at_fork(after_in_child=_new_correlation_prefix)  # a forked worker draws its own


def correlation_id() -> str:
    """A UUID-shaped id, unique per request of this process and, by its random prefix, across processes."""
    return f"{_correlation_prefix}{next(_correlation_seq):012x}"


class SecurityHeaders:
    """Adds headers to every response that does not set them itself. Plain ASGI."""

    def __init__(self, app: ASGIApp, headers: dict[str, str]) -> None:
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in self.headers if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, send_with_headers)
