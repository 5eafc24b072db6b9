"""The public results site: pages, JSON API, feeds and open data. Server-rendered; works without JavaScript.

Read-only over the publicity projection (public facts and published rankings). docs/publicity.md describes it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common import http
from services.common.db import create_pool
from services.publicity.entrypoints import api, ledger_web, open_data, pages
from services.publicity.entrypoints.site import STATIC, Site

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# Swagger UI comes from its CDN and starts with an inline script: only its page allows them.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "frame-ancestors 'none'"
)


class VersionedStatic(StaticFiles):
    """Styles are linked with their content hash (``?v=``), so they may be kept for a year."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        if response.status_code == 200:
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


class HeadAsGet:
    """Answers HEAD as GET without the body (caches and link checkers ask HEAD). Plain ASGI."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app(dict(scope, method="GET"), receive, without_body)


def create_app(dsn: str, page_cache: int = 512) -> FastAPI:
    """The site on ``dsn``; it keeps up to ``page_cache`` rendered pages (0: none)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await create_pool(dsn, "publicity", min_size=2, max_size=16)
        yield
        await app.state.pool.close()

    app = FastAPI(
        title="Rectify public results API",
        version="1.2.0",
        summary="Public facts about complaints against government units, their rectification and the units' "
        "rankings. No personal data: never a complainant's identity or contact; free text only as approved.",
        description="Every page of the public site has a twin here with the same figures. Answers carry "
        "Cache-Control, ETag and (for lists) Last-Modified; send If-None-Match to get 304. See docs/publicity.md.",
        lifespan=lifespan,
        docs_url=None,
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    http.install(app, "publicity")
    app.mount("/static", VersionedStatic(directory=STATIC), name="static")
    site = Site(page_cache)
    app.include_router(pages.router(site))
    app.include_router(api.router(site))
    app.include_router(open_data.router(site))
    app.include_router(ledger_web.router(site))
    app.add_middleware(GZipMiddleware, minimum_size=1024)
    app.add_middleware(http.SecurityHeaders, headers=SECURITY_HEADERS)
    app.add_middleware(HeadAsGet)

    @app.get("/api/docs", include_in_schema=False)
    async def api_docs() -> HTMLResponse:
        page = get_swagger_ui_html(openapi_url="/api/openapi.json", title="Rectify public results API")
        page.headers["Content-Security-Policy"] = DOCS_POLICY
        return page

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        try:
            await request.app.state.pool.fetchval("SELECT 1")
        except (OSError, asyncpg.PostgresError):
            return JSONResponse({"status": "database unavailable"}, status_code=503)
        return JSONResponse({"status": "ready"})

    return app
