"""HTTP edges shared by intake and publicity: problem+json errors, strict bodies, request metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.common.metrics import HTTP_REQUESTS, HTTP_SECONDS

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"
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


def field_errors(exc: ValidationError | RequestValidationError) -> list[dict[str, str]]:
    errors = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        reason = err.get("msg", "invalid")
        if err.get("type") == "extra_forbidden":
            reason = "unknown field; it is not part of this request"
        errors.append({"field": ".".join(loc) or "body", "reason": reason})
    return errors


async def read_body(request: Request, model: type[B], max_bytes: int) -> tuple[B, bytes]:
    """The raw body (capped) and its strict validation; any failure is a Problem naming the field."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise Problem(413, "Payload too large", f"the body may be at most {max_bytes} bytes")
    raw = bytearray()
    async for chunk in request.stream():
        raw.extend(chunk)
        if len(raw) > max_bytes:
            raise Problem(413, "Payload too large", f"the body may be at most {max_bytes} bytes")
    ctype = request.headers.get("content-type", "")
    if "json" not in ctype:
        raise Problem(415, "Unsupported media type", "send the body as application/json")
    try:
        return model.model_validate_json(bytes(raw), strict=True), bytes(raw)
    except ValidationError as exc:
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            raise Problem(400, "Malformed JSON", "the body is not valid JSON", field_errors(exc)) from exc
        raise Problem(422, "Invalid request", "some fields are missing or invalid", field_errors(exc)) from exc


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

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", extra={"path": request.url.path})
        return Problem(500, "Internal error", "the server failed; nothing was stored for this request").response()

    @app.middleware("http")
    async def _metrics(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        HTTP_REQUESTS.labels(service, template, str(response.status_code)).inc()
        HTTP_SECONDS.labels(service, template).observe(time.perf_counter() - started)
        return response
